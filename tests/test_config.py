"""Flags, YAML files and their precedence; the shipped configs are the reference's defaults."""

import os

import pytest

from jaxgan.config import MODEL_FIELDS, Config, ConfigError, build_parser, canonical_dataset, flag_table, parse_args
from tests.conftest import REPO


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


def test_readme_flag_table_is_the_declared_flags():
    # The README's table is generated (scripts/readme_flags.py) from the same declarations as
    # the parser: a flag added, renamed or re-documented without regenerating it fails here.
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    block = readme.split("<!-- flags:begin -->\n", 1)[1].split("\n<!-- flags:end -->", 1)[0]
    assert block == flag_table()
    for name in MODEL_FIELDS:  # the refused-on-resume list is the code's
        assert f"| `--{name}` |" in block and f"| refused |" in block.split(f"| `--{name}` |")[1].split("\n")[0]


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
    parse_args(["--config", os.path.join(REPO, "configs", path)])  # unknown keys would be refused
