"""Flags, YAML files and their precedence; the shipped configs are the reference's defaults."""

import os

import pytest

from jaxgan.config import (MODEL_FIELDS, Config, ConfigError, build_parser, canonical_dataset, check_resume_config,
                           flag_table, parse_args)
from tests.conftest import REPO


@pytest.mark.quick
def test_defaults_are_the_reference_flags():
    cfg = parse_args([])
    assert (cfg.lr, cfg.beta1, cfg.beta2, cfg.batch_size, cfg.num_epochs, cfg.latent_dim) == \
        (0.0002, 0.5, 0.999, 64, 100, 100)
    assert (cfg.sample_dir, cfg.interval, cfg.logdir, cfg.ckpt_dir, cfg.seed) == \
        ("samples", 1, "runs", "checkpoints", 10213)
    assert (cfg.loss, cfg.noise, cfg.d_steps, cfg.last_batch) == ("nonsaturating", "uniform", 1, "partial")


@pytest.mark.parametrize("name,want", [("MNIST", "mnist"), ("FashionMNIST", "fashion_mnist"),
                                       ("fashion_mnist", "fashion_mnist"), ("CIFAR10", "cifar10")])
def test_dataset_names_are_case_insensitive(name, want):
    assert canonical_dataset(name) == want


@pytest.mark.quick
def test_yaml_file_then_command_line_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset: cifar10\nbatch_size: 128\nlr: 0.001\ng_hidden: [64, 128]\n")
    cfg = parse_args(["--config", str(path), "--batch_size", "32"])
    assert (cfg.dataset, cfg.batch_size, cfg.lr, cfg.g_hidden) == ("cifar10", 32, 0.001, (64, 128))


def test_yaml_with_unknown_keys_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("batchsize: 3\n")
    with pytest.raises(ConfigError, match="unknown keys: batchsize"):
        parse_args(["--config", str(path)])


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_shipped_configs_hold_the_reference_defaults(name):
    cfg = parse_args(["--config", os.path.join(REPO, "configs", f"{name}.yaml")])
    assert cfg.dataset == name
    defaults = Config()
    for field in ("lr", "beta1", "beta2", "batch_size", "num_epochs", "latent_dim", "seed", "loss", "noise"):
        assert getattr(cfg, field) == getattr(defaults, field), field


def test_the_docs_flag_table_is_the_declared_flags():
    # docs/flags.md's table is generated (python -m scripts.render_docs) from the same declarations as
    # the parser: a flag added, renamed or re-documented without regenerating it fails here.
    with open(os.path.join(REPO, "docs", "flags.md"), encoding="utf-8") as f:
        readme = f.read()
    block = readme.split("<!-- flags:begin -->\n", 1)[1].split("\n<!-- flags:end -->", 1)[0]
    assert block == flag_table()
    for name in MODEL_FIELDS:  # the refused-on-resume list is the code's
        assert f"| `--{name}` |" in block and f"| refused |" in block.split(f"| `--{name}` |")[1].split("\n")[0]


@pytest.mark.quick
def test_every_declared_flag_parses_and_has_help_with_its_default():
    parser = build_parser()
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    assert set(actions) == set(Config.__dataclass_fields__)
    for dest, action in actions.items():
        assert action.help, dest
        if action.nargs != 0:  # switches are off by default; valued flags say their default
            assert "(default " in action.help, dest


def test_hyphenated_spellings_still_work():
    cfg = parse_args(["--no-download", "--no-progress"])
    assert (cfg.download, cfg.progress) == (False, False)
    assert parse_args(["--no_download"]).download is False


@pytest.mark.parametrize("path", sorted(os.listdir(os.path.join(REPO, "configs"))))
def test_every_shipped_config_holds_only_declared_flags(path):
    cfg = parse_args(["--config", os.path.join(REPO, "configs", path)])  # unknown keys would be refused
    assert path.startswith(f"{cfg.model}_" if cfg.model != "mlp" else "") and path.endswith(f"{cfg.dataset}.yaml")


# -- --model dcgan | wgan: each reference's defaults for the flags a user does not give ------------
DCGAN_REFERENCE = dict(lr=0.0002, beta1=0.5, beta2=0.999, batch_size=128, num_epochs=200, latent_dim=100,
                       interval=1, seed=10213, d_steps=1, g_hidden=(1024, 512, 256, 128),
                       d_hidden=(128, 256, 512, 1024), image_shape=(1, 32, 32))
WGAN_REFERENCE = dict(lr=0.00005, batch_size=64, gen_iters=100000, d_steps=5, clip_limit=0.01, interval=1000,
                      latent_dim=100, seed=10213, last_batch="drop", g_hidden=(1024, 512, 256, 128),
                      d_hidden=(128, 256, 512, 1024), image_shape=(1, 32, 32))


def assert_fields(cfg, want):
    for name, value in want.items():
        assert getattr(cfg, name) == value, name


def test_default_model_is_the_mlp_on_the_datasets_own_size():
    cfg = parse_args([])
    assert (cfg.model, cfg.image_shape, cfg.g_hidden, cfg.d_hidden) == \
        ("mlp", (1, 28, 28), (128, 256, 512, 1024), (512, 256, 128))


@pytest.mark.quick
@pytest.mark.parametrize("model,want", [("dcgan", DCGAN_REFERENCE), ("wgan", WGAN_REFERENCE)])
def test_conv_models_take_their_references_defaults(model, want):
    assert_fields(parse_args(["--model", model]), want)
    assert parse_args(["--model", model.upper(), "--dataset", "cifar10"]).image_shape == (3, 32, 32)


def test_flags_and_yaml_beat_the_model_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: wgan\nbatch_size: 16\nn_critic: 2\n")
    cfg = parse_args(["--config", str(path), "--lr", "0.001", "--g_hidden", "8,8,8,8"])
    assert (cfg.batch_size, cfg.d_steps, cfg.lr, cfg.g_hidden) == (16, 2, 0.001, (8, 8, 8, 8))
    assert (cfg.interval, cfg.d_hidden) == (1000, (128, 256, 512, 1024))  # not given: wgan's
    assert parse_args(["--model", "wgan", "--n_critic", "3"]).d_steps == 3  # --n_critic is --d_steps


@pytest.mark.parametrize("model,want", [("dcgan", DCGAN_REFERENCE), ("wgan", WGAN_REFERENCE)])
@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist", "cifar10"])
def test_shipped_model_configs_hold_each_references_defaults(model, dataset, want):
    cfg = parse_args(["--config", os.path.join(REPO, "configs", f"{model}_{dataset}.yaml")])
    assert (cfg.model, cfg.dataset) == (model, dataset)
    assert_fields(cfg, {k: v for k, v in want.items() if k != "image_shape"})


@pytest.mark.parametrize("argv,message", [
    (["--model", "dcgan", "--g_hidden", "1,2"], "--g_hidden needs exactly 4 channel widths for --model dcgan"),
    (["--model", "wgan", "--d_hidden", "8,16,32,64,128"], "--d_hidden needs exactly 4 channel widths"),
    (["--model", "wgan", "--n_critic", "0"], r"d_steps \(--n_critic\) must be positive, got 0"),
    (["--model", "wgan", "--clip_limit", "0"], "clip_limit must be positive"),
    (["--model", "wgan", "--num_epochs", "3"], "--num_epochs does not apply"),
    (["--model", "dcgan", "--gen_iters", "3"], r"--gen_iters applies to --model wgan\|wgan_gp only"),
    (["--model", "wgan", "--last_batch", "partial"], "full batches only"),
    (["--model", "gan"], "model must be one of mlp, dcgan, wgan"),
])
@pytest.mark.quick
def test_bad_model_settings_are_one_line_errors(argv, message):
    with pytest.raises(ConfigError, match=message) as e:
        parse_args(argv)
    assert "\n" not in str(e.value)


@pytest.mark.quick
def test_a_checkpoint_from_before_model_existed_resumes_only_as_the_mlp():
    # Records written before --model (and its wgan flags) existed hold an MLP run.
    saved = {k: v for k, v in parse_args([]).to_dict().items() if k not in ("model", "gen_iters", "clip_limit")}
    check_resume_config(saved, parse_args([]))
    with pytest.raises(ConfigError, match="trained with model='mlp', this run asks for model='dcgan'"):
        check_resume_config(saved, parse_args(["--model", "dcgan"]))


@pytest.mark.quick
def test_a_record_from_before_conv_cond_reads_as_the_projection_run_it_was():
    # Conditional conv runs recorded before --conv_cond existed were projection runs (planes is the
    # default now): resuming, sampling and evaluating them must rebuild that network, and a run
    # asking for planes is refused in one line, before any checkpoint is read.
    from jaxgan.config import check_resume_config, recorded

    old = parse_args(["--model", "dcgan", "--conditional", "--conv_cond", "projection"]).to_dict()
    del old["conv_cond"]
    assert recorded(old)["conv_cond"] == "projection"
    assert check_resume_config(old, parse_args(["--model", "dcgan", "--conditional", "--conv_cond", "projection"])) == []
    with pytest.raises(ConfigError, match="trained with conv_cond='projection'.*pass --conv_cond projection"):
        check_resume_config(old, parse_args(["--model", "dcgan", "--conditional"]))
    # Runs that never read it resume under today's default, whatever their record says of it.
    for argv in (["--model", "dcgan"], ["--conditional"]):
        rec = parse_args(argv).to_dict()
        del rec["conv_cond"]
        assert recorded(rec)["conv_cond"] == "planes" and check_resume_config(rec, parse_args(argv)) == []
    mlp = dict(parse_args(["--conditional"]).to_dict(), conv_cond="projection")  # a record that named it anyway
    assert check_resume_config(mlp, parse_args(["--conditional"])) == []
