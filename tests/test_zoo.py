"""--model dcgan | wgan end to end: the data as the references prepare it, jaxgan's own train_step
against the PyTorch reference loops (benchmarks/torch_dcgan.py), scan fusion, exact resume over
reporting periods, and the commands (train, sample, bad input)."""

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from benchmarks import torch_dcgan as ref
from jaxgan import data as data_lib
from jaxgan import report, steps
from jaxgan.config import from_dict
from jaxgan.formats import write_mnist
from jaxgan.trainer import train_and_evaluate
from tests.conftest import blob_images, leaves_all_differ, leaves_equal, run_cli

G_SMALL, D_SMALL, LATENT = (64, 32, 16, 8), (8, 16, 32, 64), 16
SMALL_FLAGS = ["--g_hidden", "64,32,16,8", "--d_hidden", "8,16,32,64", "--no_download", "--no_progress"]


def zoo_config(root, model, **overrides):
    """A small conv run under ``root``: every flag not given here takes the model's reference default."""
    values = dict(model=model, dataset="mnist", data_dir=str(root / "data"), download=False,
                  sample_dir=str(root / "samples"), logdir=str(root / "runs"), ckpt_dir=str(root / "ckpt"),
                  g_hidden=G_SMALL, d_hidden=D_SMALL, latent_dim=LATENT, progress=False, steps_per_call=4)
    values.update(overrides)
    return from_dict(values)


@pytest.fixture
def mnist_dir(tmp_path):
    images, labels = blob_images(200, 28, 28, 1)
    write_mnist(str(tmp_path / "data"), images[..., 0], labels)
    return tmp_path


# -- data ------------------------------------------------------------------------------------
def test_conv_models_train_on_mnist_resized_by_the_references_transform(mnist_dir):
    from torchvision import datasets, transforms

    cfg = zoo_config(mnist_dir, "dcgan")
    assert cfg.image_shape == (1, 32, 32)
    images, _ = data_lib.load_numpy("mnist", cfg.data_dir, download=False, size=32)
    assert images.shape == (200, 32, 32, 1) and images.dtype == np.uint8
    # dcgan/train.py's transform_mnist, through torchvision's own MNIST class, bit for bit.
    reference = datasets.MNIST(cfg.data_dir, train=True, download=False, transform=transforms.Compose([
        transforms.Resize(32), transforms.ToTensor(), transforms.Normalize(mean=(0.5), std=(0.5))]))
    ours = np.asarray(data_lib.normalize(jnp.asarray(data_lib.flatten_chw(images))))
    for i in (0, 1, 57, 199):
        np.testing.assert_array_equal(ours[i], reference[i][0].numpy().reshape(-1))
    # The native-size cache is another file: the MLP's 28x28 images are untouched by it.
    native, _ = data_lib.load_numpy("mnist", cfg.data_dir, download=False)
    assert native.shape == (200, 28, 28, 1)
    caches = sorted(f for f in os.listdir(data_lib.dataset_folder("mnist", cfg.data_dir)) if f.startswith("jaxgan-"))
    assert len(caches) == 2 and any("-32px-" in f for f in caches)
    again, _ = data_lib.load_numpy("mnist", cfg.data_dir, download=False, size=32)  # from its cache
    np.testing.assert_array_equal(again, images)


# -- train_step against the PyTorch loops (float64 on both sides) ------------------------------
def assert_trees_close(got, want, **tol):
    got_leaves = jax.tree_util.tree_leaves_with_path(got)
    want_leaves = jax.tree_util.tree_leaves_with_path(jax.tree_util.tree_map(np.asarray, want))
    assert [jax.tree_util.keystr(p) for p, _ in got_leaves] == [jax.tree_util.keystr(p) for p, _ in want_leaves]
    for (path, x), (_, y) in zip(got_leaves, want_leaves):
        np.testing.assert_allclose(np.asarray(x), y, err_msg=jax.tree_util.keystr(path), **tol)


F64 = dict(rtol=1e-7, atol=1e-9)


def with_torch_weights(gan, state, tg, td):
    """jaxgan's state holding the torch modules' weights and statistics, in float64, fresh optimisers."""
    gp, gs = ref.generator_to_jaxgan(tg, np.float64)
    dp, ds = ref.discriminator_to_jaxgan(td, np.float64)
    gp, gs, dp, ds = jax.tree_util.tree_map(jnp.asarray, (gp, gs, dp, ds))
    return state.replace(g_params=gp, g_stats=gs, d_params=dp, d_stats=ds, g_opt=gan.g_tx.init(gp),
                         d_opt=gan.d_tx.init(dp))


def step_noise(gan, step, n):
    """The noise jaxgan's train_step draws at ``step`` (fold_in(step_key, step)), as float64 torch."""
    k_zd, _, k_zg, _ = jax.random.split(jax.random.fold_in(gan.step_key, step), 4)
    return [torch.from_numpy(np.asarray(gan.sample_noise(k, n), np.float64)) for k in (k_zd, k_zg)]


def real_batches(count, n, seed=0):
    """Normalised uint8 image batches, flat (jaxgan) as float64."""
    u8 = np.random.default_rng(seed).integers(0, 256, (count, n, 32 * 32), dtype=np.uint8)
    return [np.asarray(data_lib.normalize(jnp.asarray(b)), np.float64) for b in u8]


def image_tensor(flat):
    return torch.from_numpy(flat).reshape(len(flat), 1, 32, 32)


def test_dcgan_train_step_equals_the_reference_loop(tmp_path):
    # dcgan/train.py: init_weight, Adam(2e-4, (0.5, 0.999)), D(real), D(G(z)) as separate passes,
    # then G's step scored by the updated D in training mode. Three iterations; same weights,
    # batches and noise (jaxgan's own per-step noise handed to the torch loop).
    cfg = zoo_config(tmp_path, "dcgan", batch_size=16)
    assert (cfg.lr, cfg.beta1, cfg.beta2) == (0.0002, 0.5, 0.999)
    gan, state = steps.build(cfg)
    torch.manual_seed(0)
    tg, td = ref.Generator(1, 32, LATENT, G_SMALL), ref.Discriminator(1, 32, D_SMALL)
    tg.apply(ref.init_weight), td.apply(ref.init_weight)
    tg, td = tg.double(), td.double()
    opt_g, opt_d = ref.dcgan_optimizers(tg, td)
    with jax.enable_x64(True):
        state = with_torch_weights(gan, state, tg, td)
        train_step = jax.jit(gan.train_step)
        for s, real in enumerate(real_batches(3, 16)):
            z_d, z_g = step_noise(gan, s, 16)
            d_ref, g_ref = ref.dcgan_iteration(tg, td, opt_g, opt_d, image_tensor(real), z_d, z_g)
            state, m = train_step(state, jnp.asarray(real))
            assert float(m["d_loss"]) == pytest.approx(float(d_ref), rel=1e-9), s
            assert float(m["g_loss"]) == pytest.approx(float(g_ref), rel=1e-9), s
        assert int(state.step) == 3
        want_gp, want_gs = ref.generator_to_jaxgan(tg, np.float64)
        want_dp, want_ds = ref.discriminator_to_jaxgan(td, np.float64)
        for got, want in ((state.g_params, want_gp), (state.g_stats, want_gs), (state.d_params, want_dp),
                          (state.d_stats, want_ds)):
            assert_trees_close(got, want, **F64)


def test_wgan_train_step_equals_the_reference_loop(tmp_path):
    # wgan/train.py: PyTorch's default init, RMSprop(5e-5), n_critic critic steps each on the next
    # batch and each followed by clamping every critic parameter to +-0.01, then G's step.
    # n_critic 2, three generator iterations = six train_steps.
    cfg = zoo_config(tmp_path, "wgan", batch_size=16, d_steps=2)
    assert (cfg.lr, cfg.clip_limit) == (0.00005, 0.01)
    gan, state = steps.build(cfg)
    torch.manual_seed(1)
    tg = ref.Generator(1, 32, LATENT, G_SMALL).double()
    td = ref.Discriminator(1, 32, D_SMALL, sigmoid=False).double()
    opt_g, opt_d = ref.wgan_optimizers(tg, td)
    batches = real_batches(6, 16, seed=1)
    with jax.enable_x64(True):
        state = with_torch_weights(gan, state, tg, td)
        train_step = jax.jit(gan.train_step)
        for it in range(3):
            s0 = 2 * it
            zs_d = [step_noise(gan, s0 + i, 16)[0] for i in range(2)]
            z_g = step_noise(gan, s0 + 1, 16)[1]  # G's step follows the second critic step
            d_ref, g_ref = ref.wgan_iteration(tg, td, opt_g, opt_d, [image_tensor(b) for b in batches[s0:s0 + 2]],
                                              zs_d, z_g, 2, 0.01)
            d_losses = []
            for i in range(2):
                state, m = train_step(state, jnp.asarray(batches[s0 + i]))
                d_losses.append(float(m["d_loss"]))
                assert float(m["g_updated"]) == float(i == 1)
            assert np.mean(d_losses) == pytest.approx(float(d_ref), rel=1e-8, abs=1e-12), it
            assert float(m["g_loss"]) == pytest.approx(float(g_ref), rel=1e-6), it  # reported as float32
        assert max(float(jnp.max(jnp.abs(x))) for x in jax.tree_util.tree_leaves(state.d_params)) <= 0.01
        want_gp, want_gs = ref.generator_to_jaxgan(tg, np.float64)
        want_dp, want_ds = ref.discriminator_to_jaxgan(td, np.float64)
        for got, want in ((state.g_params, want_gp), (state.g_stats, want_gs), (state.d_params, want_dp),
                          (state.d_stats, want_ds)):
            assert_trees_close(got, want, **F64)


# -- fused steps, resume -----------------------------------------------------------------------
@pytest.mark.parametrize("model,d_steps", [("dcgan", 1), ("wgan", 2)])
def test_conv_scan_fused_chunk_equals_single_steps(tmp_path, model, d_steps):
    gan, state = steps.build(zoo_config(tmp_path, model, batch_size=16, d_steps=d_steps))
    data = jnp.asarray(np.random.default_rng(0).integers(0, 256, (200, 1024), dtype=np.uint8))
    perm = data_lib.epoch_permutation(jax.random.key(0), 0, 200)
    chunk = jax.jit(gan.train_chunk)
    fused, metrics = chunk(state, data, perm, 1, 4)
    assert leaves_all_differ(fused.d_stats, state.d_stats)
    for parts in ([1, 1, 1, 1], [3, 1]):
        single, losses, pos = state, [], 1
        for length in parts:
            single, m = chunk(single, data, perm, pos, length)
            losses += list(np.asarray(m["d_loss"])[:length])
            pos += length
        assert int(fused.step) == int(single.step) == 4
        assert leaves_equal(fused, single), parts
        np.testing.assert_array_equal(np.asarray(metrics["d_loss"])[:4], np.asarray(losses, np.float32))


def trained_files(root, model):
    folder = root / "samples" / model / "mnist"  # conv models' outputs: <dir>/<model>/<dataset>
    grids = sorted(os.listdir(folder))
    return grids, {g: (folder / g).read_bytes() for g in grids}


def scalars(root, model):
    return report.read_scalars(str(root / "runs" / model / "mnist"))


def test_dcgan_resume_after_an_epoch_is_bit_exact(mnist_dir):
    # 200 images, batch 64: 3 full batches and a tail of 8 -> 4 steps per epoch.
    data = str(mnist_dir / "data")
    straight = train_and_evaluate(zoo_config(mnist_dir / "a", "dcgan", data_dir=data, batch_size=64, num_epochs=2))
    first = zoo_config(mnist_dir / "b", "dcgan", data_dir=data, batch_size=64, num_epochs=1)
    train_and_evaluate(first)
    resumed = train_and_evaluate(zoo_config(mnist_dir / "b", "dcgan", data_dir=data, batch_size=64, num_epochs=2,
                                            resume=True))
    assert int(resumed.step) == int(straight.step) == 8
    assert leaves_equal(resumed, straight)
    assert trained_files(mnist_dir / "a", "dcgan") == trained_files(mnist_dir / "b", "dcgan")
    assert trained_files(mnist_dir / "a", "dcgan")[0] == ["fake_images_1.png", "fake_images_2.png"]
    assert scalars(mnist_dir / "a", "dcgan")["Generator_Loss"] == scalars(mnist_dir / "b", "dcgan")["Generator_Loss"]


def test_wgan_resume_after_a_period_and_mid_period_is_bit_exact(mnist_dir):
    # 200 images, batch 64, short batch dropped: 3 steps per epoch. n_critic 2, interval 2: a period
    # is 4 steps, so periods and epochs do not line up. 4 generator iterations = 8 steps.
    data = str(mnist_dir / "data")

    def cfg(root, gen_iters, **kw):
        return zoo_config(root, "wgan", data_dir=data, d_steps=2, interval=2, gen_iters=gen_iters, **kw)

    straight = train_and_evaluate(cfg(mnist_dir / "a", 4))
    assert sorted(int(p) for p in os.listdir(mnist_dir / "a" / "ckpt" / "wgan" / "mnist") if p.isdigit()) == [4, 8]
    train_and_evaluate(cfg(mnist_dir / "b", 2))  # one period
    resumed = train_and_evaluate(cfg(mnist_dir / "b", 4, resume=True))
    assert int(resumed.step) == int(straight.step) == 8
    assert leaves_equal(resumed, straight)
    assert trained_files(mnist_dir / "a", "wgan") == trained_files(mnist_dir / "b", "wgan")
    assert trained_files(mnist_dir / "a", "wgan")[0] == ["fake_images_1.png", "fake_images_2.png"]
    # Scalars at the generator iteration that ends each period, as wgan/train.py numbers them.
    want = scalars(mnist_dir / "a", "wgan")
    assert [s for s, _ in want["Generator_Loss"]] == [2, 4]
    assert [s for s, _ in want["Fake_Images"]] == [1, 2]
    assert scalars(mnist_dir / "b", "wgan")["Discriminator_Loss"] == want["Discriminator_Loss"]
    # Mid-period: checkpoints every 3 steps (3, 6, and the run's end 8); resume from step 3.
    train_and_evaluate(cfg(mnist_dir / "c", 4, ckpt_every=3))
    ck = mnist_dir / "c" / "ckpt" / "wgan" / "mnist"
    assert sorted(int(p) for p in os.listdir(ck) if p.isdigit()) == [3, 6, 8]
    for later in ("6", "8"):
        shutil.rmtree(ck / later)
    shutil.rmtree(mnist_dir / "c" / "samples")
    shutil.rmtree(mnist_dir / "c" / "runs")
    resumed = train_and_evaluate(cfg(mnist_dir / "c", 4, ckpt_every=3, resume=True))
    assert leaves_equal(resumed, straight)
    assert trained_files(mnist_dir / "c", "wgan") == trained_files(mnist_dir / "a", "wgan")
    # The part-done first period's sums came back from checkpoint 3: the resumed run reports the
    # same means for both periods as the straight run.
    got = scalars(mnist_dir / "c", "wgan")
    for tag in ("Discriminator_Loss", "Generator_Loss", "D_real_mean", "D_fake_mean"):
        assert got[tag] == want[tag], tag
    # 5 generator iterations: the last period is half a one. It gets its scalars (at iteration 5)
    # and a checkpoint, but no grid: wgan/train.py passes G over the fixed noise every interval only.
    train_and_evaluate(cfg(mnist_dir / "d", 5))
    assert sorted(int(p) for p in os.listdir(mnist_dir / "d" / "ckpt" / "wgan" / "mnist") if p.isdigit()) == [4, 8, 10]
    assert trained_files(mnist_dir / "d", "wgan") == trained_files(mnist_dir / "a", "wgan")
    assert [s for s, _ in scalars(mnist_dir / "d", "wgan")["Generator_Loss"]] == [2, 4, 5]


# -- the commands ------------------------------------------------------------------------------
@pytest.mark.parametrize("model,flags", [("dcgan", ["--num_epochs", "1"]),
                                         ("wgan", ["--gen_iters", "20", "--interval", "10"])])
def test_train_and_sample_commands_for_conv_models(mnist_dir, model, flags):
    cwd = str(mnist_dir)
    proc = run_cli("jaxgan.train", "--model", model, "--dataset", "mnist", *SMALL_FLAGS, *flags, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    grids = sorted(os.listdir(mnist_dir / "samples" / model / "mnist"))
    ckpts = sorted(int(p) for p in os.listdir(mnist_dir / "checkpoints" / model / "mnist") if p.isdigit())
    events = [f for f in os.listdir(mnist_dir / "runs" / model / "mnist") if f.startswith("events.out.tfevents")]
    if model == "dcgan":  # batch 128: one full batch and a tail of 72 -> 2 steps, one epoch
        assert grids == ["fake_images_1.png"] and ckpts == [2]
        assert "epoch 1/1  D loss" in proc.stdout
    else:  # 20 generator iterations of 5 critic steps; a grid and a checkpoint every 10
        assert grids == ["fake_images_1.png", "fake_images_2.png"] and ckpts == [50, 100]
        assert "gen iter 20/20  critic loss" in proc.stdout
    assert events
    for out in ("s.png", "s.npy"):
        proc = run_cli("jaxgan.sample", "--model", model, "--dataset", "mnist", "--num_samples", "16", "--out", out,
                       cwd=cwd)
        assert proc.returncode == 0, proc.stderr
    images = np.load(mnist_dir / "s.npy")
    assert images.shape == (16, 32, 32, 1) and images.dtype == np.uint8
    from PIL import Image
    assert Image.open(mnist_dir / "s.png").size == (2 + 8 * 34, 2 + 2 * 34)  # 8 x 2 grid of 32px images


@pytest.mark.parametrize("argv,message", [
    (["--model", "dcgan", "--g_hidden", "1,2"], "--g_hidden needs exactly 4 channel widths"),
    (["--model", "wgan", "--n_critic", "0"], "must be positive, got 0"),
])
def test_bad_conv_settings_are_one_line_errors(tmp_path, argv, message):
    proc = run_cli("jaxgan.train", *argv, "--no_download", cwd=str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr


def test_wgan_resume_with_another_interval_restarts_the_part_done_periods_means(mnist_dir, capsys):
    data = str(mnist_dir / "data")
    cfg = zoo_config(mnist_dir, "wgan", data_dir=data, d_steps=2, interval=2, gen_iters=2, ckpt_every=3)
    train_and_evaluate(cfg)  # checkpoints at steps 3 and 4; period 0 is steps 0..3
    shutil.rmtree(mnist_dir / "ckpt" / "wgan" / "mnist" / "4")
    shutil.rmtree(mnist_dir / "runs")
    # Resumed at step 3 with periods of 3 generator iterations (6 steps): the saved sums of 3 steps
    # belong to a 4-step period, so they are not carried into the new one.
    train_and_evaluate(zoo_config(mnist_dir, "wgan", data_dir=data, d_steps=2, interval=3, gen_iters=3,
                                  ckpt_every=3, resume=True))
    assert "--interval changed" in capsys.readouterr().out
    assert [s for s, _ in scalars(mnist_dir, "wgan")["Generator_Loss"]] == [3]


def test_wgan_sigterm_mid_period_then_resume_equals_the_uninterrupted_run(mnist_dir, monkeypatch):
    import signal

    from jaxgan.trainer import Stopped

    data = str(mnist_dir / "data")

    def cfg(root, **kw):
        return zoo_config(root, "wgan", data_dir=data, d_steps=2, interval=2, gen_iters=4, steps_per_call=1, **kw)

    straight = train_and_evaluate(cfg(mnist_dir / "a"))
    real_advance, seen = report.Reporter.advance, {"steps": 0}

    def advance_then_signal(self, steps_done, *args):
        seen["steps"] += steps_done
        if seen["steps"] == 5:  # inside the second period (steps 4..7)
            os.kill(os.getpid(), signal.SIGTERM)
        return real_advance(self, steps_done, *args)

    monkeypatch.setattr(report.Reporter, "advance", advance_then_signal)
    with pytest.raises(Stopped, match="SIGTERM: stopped at step [67];") as stopped:
        train_and_evaluate(cfg(mnist_dir / "b"))
    monkeypatch.setattr(report.Reporter, "advance", real_advance)
    assert stopped.value.code == 143
    resumed = train_and_evaluate(cfg(mnist_dir / "b", resume=True))
    assert leaves_equal(resumed, straight)
    assert trained_files(mnist_dir / "b", "wgan") == trained_files(mnist_dir / "a", "wgan")
    for tag in ("Discriminator_Loss", "Generator_Loss"):
        assert scalars(mnist_dir / "b", "wgan")[tag] == scalars(mnist_dir / "a", "wgan")[tag], tag


def test_event_files_of_runs_started_within_one_second_are_all_kept(tmp_path):
    # A resume right after a signal starts a second writer in the same folder at once; tensorboardX
    # alone names files by the second and the host, so the second would overwrite the first.
    for step in (1, 2):
        reporter = report.Reporter(str(tmp_path), progress=False)
        reporter.writer.add_scalar("Generator_Loss", float(step), step)
        reporter.close()
    assert [s for s, _ in report.read_scalars(str(tmp_path))["Generator_Loss"]] == [1, 2]


def test_eval_every_scores_a_conv_models_32px_samples_with_the_28px_judge(mnist_dir):
    cfg = zoo_config(mnist_dir, "dcgan", batch_size=64, num_epochs=1, eval_every=1)
    train_and_evaluate(cfg)
    logged = scalars(mnist_dir, "dcgan")
    assert [s for s, _ in logged["eval/frechet_distance"]] == [1]
    assert np.isfinite(logged["eval/classifier_score"][0][1])
