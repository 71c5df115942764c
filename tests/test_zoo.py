"""--model dcgan | wgan end to end: the data as the references prepare it, jaxgan's own train_step
against the PyTorch reference loops (benchmarks/torch_dcgan.py), scan fusion, the two convolution
forms, exact resume over reporting periods, signals, and the commands (train, sample, bad input).

Compiling a conv model's training program costs far more here than training it, so every run in
this file is one of two programs (``dcgan_config``, ``wgan_config``: the same widths, batch,
critic steps, steps per call and seed, on one dataset of ``N_IMAGES``), compiled once and served
from ``jaxgan.program``'s per-process cache to every later run, command and fused-chunk check."""

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from benchmarks import torch_dcgan as ref
from jaxgan import data as data_lib
from jaxgan import convnets, layers, parallel, program, report, steps
from jaxgan.config import from_dict
from jaxgan.formats import write_mnist
from jaxgan.trainer import train_and_evaluate
from tests.conftest import (blob_images, leaves_all_differ, leaves_equal, release_compiled_programs, replace, run_cli,
                            run_main)

G_SMALL, D_SMALL, LATENT = (64, 32, 16, 8), (8, 16, 32, 64), 16
# 44 images in batches of 8: DCGAN trains 5 full batches and a tail of 4 (6 steps an epoch); WGAN
# drops the tail (5 steps an epoch), so its 4-step periods never line up with its epochs. Batch 8
# as small as BatchNorm is comfortable with: the lax convolutions' gradients run slowly on a CPU.
N_IMAGES, BATCH = 44, 8
SMALL_FLAGS = ["--g_hidden", "64,32,16,8", "--d_hidden", "8,16,32,64", "--latent_dim", str(LATENT),
               "--batch_size", str(BATCH), "--steps_per_call", "4", "--no_download", "--no_progress"]
WGAN_FLAGS = ["--n_critic", "2"]


def zoo_config(root, model, **overrides):
    """A small conv run under ``root``: every flag not given here takes the model's reference default."""
    values = dict(model=model, dataset="mnist", data_dir=str(root / "data"), download=False,
                  sample_dir=str(root / "samples"), logdir=str(root / "runs"), ckpt_dir=str(root / "ckpt"),
                  g_hidden=G_SMALL, d_hidden=D_SMALL, latent_dim=LATENT, progress=False, steps_per_call=4)
    values.update(overrides)
    return from_dict(values)


def dcgan_config(root, data_dir, **run):
    """This file's DCGAN program (the command line's twin: SMALL_FLAGS); ``run``: flags that do not
    change the program (run length, folders, bookkeeping)."""
    return zoo_config(root, "dcgan", data_dir=data_dir, batch_size=BATCH, **run)


def wgan_config(root, data_dir, **run):
    """This file's WGAN program (SMALL_FLAGS + WGAN_FLAGS): n_critic 2, full batches only."""
    return zoo_config(root, "wgan", data_dir=data_dir, batch_size=BATCH, d_steps=2, **run)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # The PyTorch loops here are tiny: on a machine whose cores are shared, torch's thread pool
    # spends far more handing the work around than doing it (measured: three WGAN iterations take
    # 0.17 s on one thread, 2-8 s on two under load). One thread computes the same values (the
    # parity tolerances are orders of magnitude above float64 reordering).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """The one dataset every training run of the file reads (never written to but for its caches)."""
    root = tmp_path_factory.mktemp("zoo_data")
    images, labels = blob_images(N_IMAGES, 28, 28, 1)
    write_mnist(str(root), images[..., 0], labels)
    return str(root)


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


def built_for_torch_weights(cfg):
    """The run's GAN and a fresh state at step 0 whose weights ``with_torch_weights`` fills in
    (built abstract: jaxgan's own initial weights would be replaced anyway)."""
    gan, state = steps.build(cfg, abstract=True)
    return gan, state.replace(step=jnp.zeros((), jnp.int32))


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


def real_batches(count, n, seed=0, channels=1):
    """Normalised uint8 image batches, flat (jaxgan) as float64."""
    u8 = np.random.default_rng(seed).integers(0, 256, (count, n, channels * 32 * 32), dtype=np.uint8)
    return [np.asarray(data_lib.normalize(jnp.asarray(b)), np.float64) for b in u8]


def image_tensor(flat, channels=1):
    return torch.from_numpy(flat).reshape(len(flat), channels, 32, 32)


def assert_same_as_torch(gan, state, tg, td):
    """Every parameter and BatchNorm statistic of ``state`` equals the torch modules' (float64,
    ``F64``), and G and D still compute what torch's do (training mode, as the loops run them)."""
    want = ref.generator_to_jaxgan(tg, np.float64) + ref.discriminator_to_jaxgan(td, np.float64)
    for got, expected in zip((state.g_params, state.g_stats, state.d_params, state.d_stats), want):
        assert_trees_close(got, expected, **F64)

    @jax.jit
    def g_then_d(state, z):
        images, _ = gan.generate(state, z)
        return images, gan.d_forward(state.d_params, state.d_stats, images, None)[0]

    z = torch.rand(8, LATENT, dtype=torch.float64)
    images, out = g_then_d(state, jnp.asarray(z.numpy()))
    t_images = tg(z)
    np.testing.assert_allclose(np.asarray(images), t_images.detach().reshape(len(z), -1).numpy(), **F64)
    t_out = td.model[:-1](t_images) if isinstance(td.model[-1], torch.nn.Sigmoid) else td(t_images)
    np.testing.assert_allclose(np.asarray(out), t_out[:, 0].detach().numpy(), **F64)


# Both ways of computing a convolution (--conv_impl lax | matmul) train exactly as PyTorch does. The
# loops are compared in float64 on both sides (jaxgan's own code under jax.enable_x64): in float32
# against float64, Adam's and RMSprop's sign-like first steps (g / (|g| + eps)) turn the rounding
# of near-zero gradients into parameter differences of up to 2 lr per step (measured: one D kernel
# element in 12800 off by 2.8e-5 after 3 DCGAN iterations), and the biases feeding a BatchNorm,
# whose true gradient is exactly zero, move on noise alone. In float64 every parameter, those
# biases included, and every statistic must agree to ~1e-9. Batches of 8: XLA:CPU runs float64
# convolutions (lax) as plain loops, slowly, and nothing here depends on the batch's size.
EACH_CONV = pytest.mark.parametrize("conv_impl", layers.CONV_IMPLS)


@EACH_CONV
def test_dcgan_train_step_equals_the_reference_loop(tmp_path, conv_impl):
    # dcgan/train.py: init_weight, Adam(2e-4, (0.5, 0.999)), D(real), D(G(z)) as separate passes,
    # then G's step scored by the updated D in training mode. Three iterations; same weights,
    # batches and noise (jaxgan's own per-step noise handed to the torch loop).
    n = 8
    cfg = zoo_config(tmp_path, "dcgan", batch_size=n, conv_impl=conv_impl)
    assert (cfg.lr, cfg.beta1, cfg.beta2) == (0.0002, 0.5, 0.999)
    gan, state = built_for_torch_weights(cfg)
    torch.manual_seed(0)
    tg, td = ref.Generator(1, 32, LATENT, G_SMALL), ref.Discriminator(1, 32, D_SMALL)
    tg.apply(ref.init_weight), td.apply(ref.init_weight)
    tg, td = tg.double(), td.double()
    opt_g, opt_d = ref.dcgan_optimizers(tg, td)
    with jax.enable_x64(True):
        state = with_torch_weights(gan, state, tg, td)
        train_step = jax.jit(gan.train_step)
        for s, real in enumerate(real_batches(3, n)):
            z_d, z_g = step_noise(gan, s, n)
            d_ref, g_ref = ref.dcgan_iteration(tg, td, opt_g, opt_d, image_tensor(real), z_d, z_g)
            state, m = train_step(state, jnp.asarray(real))
            assert float(m["d_loss"]) == pytest.approx(float(d_ref), rel=1e-9), s
            assert float(m["g_loss"]) == pytest.approx(float(g_ref), rel=1e-9), s
        assert int(state.step) == 3
        assert_same_as_torch(gan, state, tg, td)


# WGAN in the CPU's form only (matmul): the two forms' convolutions are the same layers
# (jaxgan.layers), held to the reference in both forms by the DCGAN test above and to each other by
# test_conv_impl_auto_is_matmul_on_cpu_and_both_train_alike.
@pytest.mark.parametrize("conv_impl", ["matmul"])
def test_wgan_train_step_equals_the_reference_loop(tmp_path, conv_impl):
    # wgan/train.py: PyTorch's default init, RMSprop(5e-5), n_critic critic steps each on the next
    # batch and each followed by clamping every critic parameter to +-0.01, then G's step.
    # n_critic 3, three generator iterations = nine train_steps, on 3-channel (CIFAR-10) images.
    n, n_critic = 8, 3
    cfg = zoo_config(tmp_path, "wgan", dataset="cifar10", batch_size=n, d_steps=n_critic, conv_impl=conv_impl)
    assert (cfg.lr, cfg.clip_limit, cfg.image_shape) == (0.00005, 0.01, (3, 32, 32))
    gan, state = built_for_torch_weights(cfg)
    torch.manual_seed(1)
    tg = ref.Generator(3, 32, LATENT, G_SMALL).double()
    td = ref.Discriminator(3, 32, D_SMALL, sigmoid=False).double()
    opt_g, opt_d = ref.wgan_optimizers(tg, td)
    batches = real_batches(3 * n_critic, n, seed=1, channels=3)
    with jax.enable_x64(True):
        state = with_torch_weights(gan, state, tg, td)
        train_step = jax.jit(gan.train_step)
        for it in range(3):
            s0 = n_critic * it
            zs_d = [step_noise(gan, s0 + i, n)[0] for i in range(n_critic)]
            z_g = step_noise(gan, s0 + n_critic - 1, n)[1]  # G's step follows the last critic step
            d_ref, g_ref = ref.wgan_iteration(tg, td, opt_g, opt_d,
                                              [image_tensor(b, 3) for b in batches[s0:s0 + n_critic]],
                                              zs_d, z_g, n_critic, 0.01)
            d_losses = []
            for i in range(n_critic):
                state, m = train_step(state, jnp.asarray(batches[s0 + i]))
                d_losses.append(float(m["d_loss"]))
                assert float(m["g_updated"]) == float(i == n_critic - 1)
            assert np.mean(d_losses) == pytest.approx(float(d_ref), rel=1e-8, abs=1e-12), it
            assert float(m["g_loss"]) == pytest.approx(float(g_ref), rel=1e-6), it  # reported as float32
        assert int(state.step) == 3 * n_critic
        assert max(float(jnp.max(jnp.abs(x))) for x in jax.tree_util.tree_leaves(state.d_params)) <= 0.01
        assert_same_as_torch(gan, state, tg, td)


# -- fused steps, the two convolution forms -----------------------------------------------------
def on_device(p, value):
    """An int32 scalar as the trainer hands it to a program (committed, replicated)."""
    return parallel.put(np.int32(value), p.replicated)


def program_inputs(p, seed=0):
    """A dataset of the runs' shape and epoch 0's order, on the program's devices."""
    images = np.random.default_rng(seed).integers(0, 256, (N_IMAGES, 32 * 32), dtype=np.uint8)
    data = parallel.put({"images": images}, p.replicated)  # data.put_dataset's layout
    return data, p.permutations(on_device(p, 0), N_IMAGES)


def fresh_state(p):
    # A copy of the initial state each time: the program's chunk donates the state it is given.
    return parallel.put(p.initial_state, p.state_sharding)


# DCGAN's is in the quick tier: the conv path of steps.py and program.py, compiled once, in seconds.
@pytest.mark.parametrize("model", [pytest.param("dcgan", marks=pytest.mark.quick), "wgan"])
def test_conv_scan_fused_chunk_equals_single_steps(tmp_path, data_dir, model):
    # The trainer's own compiled chunk (shardings, donation, traced length), the one every run of
    # the model in this file uses. WGAN: n_critic 2, so G updates on every second step.
    cfg = (dcgan_config if model == "dcgan" else wgan_config)(tmp_path, data_dir)
    p = program.compile_run(cfg)
    data, perm = program_inputs(p)
    fused, metrics = p.chunk(fresh_state(p), data, perm, on_device(p, 1), on_device(p, 4))
    assert leaves_all_differ(fused.d_stats, p.initial_state.d_stats)
    for parts in ([1, 1, 1, 1], [3, 1]):
        single, losses, pos = fresh_state(p), [], 1
        for length in parts:
            single, m = p.chunk(single, data, perm, on_device(p, pos), on_device(p, length))
            losses += list(np.asarray(m["d_loss"])[:length])
            pos += length
        assert int(fused.step) == int(single.step) == 4
        assert leaves_equal(fused, single), parts
        np.testing.assert_array_equal(np.asarray(metrics["d_loss"])[:4], np.asarray(losses, np.float32))


def test_conv_impl_auto_is_matmul_on_cpu_and_both_train_alike(tmp_path, data_dir):
    # --conv_impl changes how XLA computes the convolutions, not the mathematics: three fused
    # DCGAN steps from the same state leave the same kernels, and G and D compute the same thing
    # (the biases feeding a BatchNorm are left out: their true gradient is zero, so Adam moves
    # them on rounding noise alone, see the float64 parity tests above).
    cfg = dcgan_config(tmp_path, data_dir)
    auto = "matmul" if jax.default_backend() == "cpu" else "lax"
    assert convnets.resolve_conv_impl(cfg.conv_impl) == auto
    assert convnets.resolve_conv_impl(replace(cfg, conv_impl="lax").conv_impl) == "lax"
    kernels, images, scores = {}, {}, {}
    for impl in layers.CONV_IMPLS:
        p = program.compile_run(replace(cfg, conv_impl=impl))
        gan = p.gan
        # The built models compute the form asked for: XLA convolutions only with lax.
        ops = {e.primitive.name for e in jax.make_jaxpr(
            lambda s: gan.generate(s, jnp.zeros((8, LATENT)))[0].sum() + gan.d_forward(
                s.d_params, s.d_stats, jnp.zeros((8, 32 * 32)), None)[0].sum())(p.initial_state).eqns}
        assert ("conv_general_dilated" in ops) == (impl == "lax"), (impl, sorted(ops))
        data, perm = program_inputs(p)
        state, _ = p.chunk(fresh_state(p), data, perm, on_device(p, 0), on_device(p, 3))
        assert int(state.step) == 3
        kernels[impl] = [np.asarray(x) for path, x in jax.tree_util.tree_leaves_with_path(
            (state.g_params, state.d_params)) if "kernel" in jax.tree_util.keystr(path)]
        # G over the run's fixed noise (the trainer's grid program, which donates the state), then D
        # scoring those images.
        state, images[impl] = p.grid(state, p.fixed_noise())
        scores[impl] = jax.jit(lambda s, x: gan.d_forward(s.d_params, s.d_stats, x, None)[0])(state, images[impl])
    assert len(kernels["lax"]) == 10
    # Adam moves each weight by up to 3 lr = 6e-4 in three steps; the two runs agree to 1/20 of that.
    for a, b in zip(kernels["lax"], kernels["matmul"]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=3e-5)
    np.testing.assert_allclose(np.asarray(images["lax"]), np.asarray(images["matmul"]), atol=1e-4)
    np.testing.assert_allclose(np.asarray(scores["lax"]), np.asarray(scores["matmul"]), rtol=1e-3, atol=1e-4)


# -- resume ------------------------------------------------------------------------------------
def trained_files(root, model):
    folder = root / "samples" / model / "mnist"  # conv models' outputs: <dir>/<model>/<dataset>
    grids = sorted(os.listdir(folder))
    return grids, {g: (folder / g).read_bytes() for g in grids}


def scalars(root, model):
    return report.read_scalars(str(root / "runs" / model / "mnist"))


def checkpoint_steps(root, model):
    folder = root / "ckpt" / model / "mnist"
    return sorted(int(p) for p in os.listdir(folder) if p.isdigit())


def test_dcgan_resume_after_an_epoch_is_bit_exact(tmp_path, data_dir):
    # 6 steps an epoch: 5 full batches and the tail of 4 (DCGAN trains on it, as dcgan/train.py).
    straight = train_and_evaluate(dcgan_config(tmp_path / "a", data_dir, num_epochs=2))
    train_and_evaluate(dcgan_config(tmp_path / "b", data_dir, num_epochs=1))
    resumed = train_and_evaluate(dcgan_config(tmp_path / "b", data_dir, num_epochs=2, resume=True))
    assert int(resumed.step) == int(straight.step) == 12
    assert leaves_equal(resumed, straight)
    assert trained_files(tmp_path / "a", "dcgan") == trained_files(tmp_path / "b", "dcgan")
    assert trained_files(tmp_path / "a", "dcgan")[0] == ["fake_images_1.png", "fake_images_2.png"]
    assert scalars(tmp_path / "a", "dcgan")["Generator_Loss"] == scalars(tmp_path / "b", "dcgan")["Generator_Loss"]


@pytest.fixture(scope="module")
def wgan_straight(tmp_path_factory, data_dir):
    """The uninterrupted WGAN run the resume and signal tests compare with (read only): 4
    generator iterations of 2 critic steps = 8 steps, interval 2, so a period is 4 steps and the
    epochs (5 steps) do not line up with it."""
    root = tmp_path_factory.mktemp("wgan_straight")
    return root, train_and_evaluate(wgan_config(root, data_dir, interval=2, gen_iters=4))


def test_wgan_resume_after_a_period_and_mid_period_is_bit_exact(tmp_path, data_dir, wgan_straight):
    def cfg(root, gen_iters, **kw):
        return wgan_config(root, data_dir, interval=2, gen_iters=gen_iters, **kw)

    a, straight = wgan_straight
    assert checkpoint_steps(a, "wgan") == [4, 8]
    train_and_evaluate(cfg(tmp_path / "b", 2))  # one period
    resumed = train_and_evaluate(cfg(tmp_path / "b", 4, resume=True))
    assert int(resumed.step) == int(straight.step) == 8
    assert leaves_equal(resumed, straight)
    assert trained_files(tmp_path / "b", "wgan") == trained_files(a, "wgan")
    assert trained_files(a, "wgan")[0] == ["fake_images_1.png", "fake_images_2.png"]
    # Scalars at the generator iteration that ends each period, as wgan/train.py numbers them.
    want = scalars(a, "wgan")
    assert [s for s, _ in want["Generator_Loss"]] == [2, 4]
    assert [s for s, _ in want["Fake_Images"]] == [1, 2]
    assert scalars(tmp_path / "b", "wgan")["Discriminator_Loss"] == want["Discriminator_Loss"]
    # Mid-period: checkpoints every 3 steps (3, 6, and the run's end 8); resume from step 3.
    c = tmp_path / "c"
    train_and_evaluate(cfg(c, 4, ckpt_every=3))
    assert checkpoint_steps(c, "wgan") == [3, 6, 8]
    for later in ("6", "8"):
        shutil.rmtree(c / "ckpt" / "wgan" / "mnist" / later)
    shutil.rmtree(c / "samples")
    shutil.rmtree(c / "runs")
    resumed = train_and_evaluate(cfg(c, 4, ckpt_every=3, resume=True))
    assert leaves_equal(resumed, straight)
    assert trained_files(c, "wgan") == trained_files(a, "wgan")
    # The part-done first period's sums came back from checkpoint 3: the resumed run reports the
    # same means for both periods as the straight run.
    got = scalars(c, "wgan")
    for tag in ("Discriminator_Loss", "Generator_Loss", "D_real_mean", "D_fake_mean"):
        assert got[tag] == want[tag], tag
    # 5 generator iterations: the last period is half a one. It gets its scalars (at iteration 5)
    # and a checkpoint, but no grid: wgan/train.py passes G over the fixed noise every interval only.
    d = tmp_path / "d"
    train_and_evaluate(cfg(d, 5))
    assert checkpoint_steps(d, "wgan") == [4, 8, 10]
    assert trained_files(d, "wgan") == trained_files(a, "wgan")
    assert [s for s, _ in scalars(d, "wgan")["Generator_Loss"]] == [2, 4, 5]


def test_wgan_resume_with_another_interval_restarts_the_part_done_periods_means(tmp_path, data_dir, capsys):
    train_and_evaluate(wgan_config(tmp_path, data_dir, interval=2, gen_iters=2, ckpt_every=3))
    # checkpoints at steps 3 and 4; period 0 is steps 0..3
    shutil.rmtree(tmp_path / "ckpt" / "wgan" / "mnist" / "4")
    shutil.rmtree(tmp_path / "runs")
    # Resumed at step 3 with periods of 3 generator iterations (6 steps): the saved sums of 3 steps
    # belong to a 4-step period, so they are not carried into the new one.
    train_and_evaluate(wgan_config(tmp_path, data_dir, interval=3, gen_iters=3, ckpt_every=3, resume=True))
    assert "--interval changed" in capsys.readouterr().out
    assert [s for s, _ in scalars(tmp_path, "wgan")["Generator_Loss"]] == [3]


def test_wgan_sigterm_mid_period_then_resume_equals_the_uninterrupted_run(tmp_path, data_dir, wgan_straight,
                                                                           monkeypatch):
    import signal

    from jaxgan.trainer import Stopped, Trainer

    a, straight = wgan_straight

    def cfg(**kw):
        return wgan_config(tmp_path, data_dir, interval=2, gen_iters=4, **kw)

    # The run's chunks are steps 0-3 (period 1), 4 (its epoch ends), 5-7 (period 2 ends). The
    # signal arrives while step 4's chunk runs: the loop finishes that chunk, then checkpoints
    # the part-done second period (steps 4..7) at step 5, where no checkpoint is scheduled.
    real_dispatch = Trainer.dispatch

    def dispatch_then_signal(self, state, chunk, *args):
        out = real_dispatch(self, state, chunk, *args)
        if chunk.step == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(Trainer, "dispatch", dispatch_then_signal)
    with pytest.raises(Stopped, match="SIGTERM: stopped at step 5;") as stopped:
        train_and_evaluate(cfg())
    monkeypatch.setattr(Trainer, "dispatch", real_dispatch)
    assert stopped.value.code == 143
    assert checkpoint_steps(tmp_path, "wgan") == [4, 5]
    resumed = train_and_evaluate(cfg(resume=True))
    assert leaves_equal(resumed, straight)
    assert trained_files(tmp_path, "wgan") == trained_files(a, "wgan")
    for tag in ("Discriminator_Loss", "Generator_Loss"):
        assert scalars(tmp_path, "wgan")[tag] == scalars(a, "wgan")[tag], tag


@pytest.mark.quick
def test_event_files_of_runs_started_within_one_second_are_all_kept(tmp_path):
    # A resume right after a signal starts a second writer in the same folder at once; tensorboardX
    # alone names files by the second and the host, so the second would overwrite the first.
    for step in (1, 2):
        reporter = report.Reporter(str(tmp_path), progress=False)
        reporter.writer.add_scalar("Generator_Loss", float(step), step)
        reporter.close()
    assert [s for s, _ in report.read_scalars(str(tmp_path))["Generator_Loss"]] == [1, 2]


def test_eval_every_scores_a_conv_models_32px_samples_with_the_28px_judge(tmp_path, data_dir):
    train_and_evaluate(dcgan_config(tmp_path, data_dir, num_epochs=1, eval_every=1))
    logged = scalars(tmp_path, "dcgan")
    assert [s for s, _ in logged["eval/frechet_distance"]] == [1]
    assert np.isfinite(logged["eval/classifier_score"][0][1])


# -- the commands ------------------------------------------------------------------------------
# In this process (jaxgan.train's and jaxgan.sample's main, as python -m runs them): the flags
# make the same programs as the runs above. The reference defaults the flags override here
# (DCGAN's batch 128, WGAN's n_critic 5, ...) are tests/test_config.py's, through the same
# parse_args that main calls.
@pytest.mark.parametrize("model,flags", [("dcgan", ["--num_epochs", "1"]),
                                         ("wgan", [*WGAN_FLAGS, "--gen_iters", "4", "--interval", "2"])])
def test_train_and_sample_commands_for_conv_models(tmp_path, data_dir, model, flags):
    cwd = str(tmp_path)
    proc = run_main("jaxgan.train", "--model", model, "--dataset", "mnist", "--data_dir", data_dir, *SMALL_FLAGS,
                    *flags, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    grids = sorted(os.listdir(tmp_path / "samples" / model / "mnist"))
    ckpts = sorted(int(p) for p in os.listdir(tmp_path / "checkpoints" / model / "mnist") if p.isdigit())
    events = [f for f in os.listdir(tmp_path / "runs" / model / "mnist") if f.startswith("events.out.tfevents")]
    if model == "dcgan":  # 5 full batches and the tail of 4 -> 6 steps, one epoch
        assert grids == ["fake_images_1.png"] and ckpts == [6]
        assert "epoch 1/1  D loss" in proc.stdout
    else:  # 4 generator iterations of 2 critic steps; a grid and a checkpoint every 2
        assert grids == ["fake_images_1.png", "fake_images_2.png"] and ckpts == [4, 8]
        assert "gen iter 4/4  critic loss" in proc.stdout
    assert events
    for out in ("s.png", "s.npy"):
        proc = run_main("jaxgan.sample", "--model", model, "--dataset", "mnist", "--num_samples", "16", "--out", out,
                        cwd=cwd)
        assert proc.returncode == 0, proc.stderr
    images = np.load(tmp_path / "s.npy")
    assert images.shape == (16, 32, 32, 1) and images.dtype == np.uint8
    from PIL import Image
    assert Image.open(tmp_path / "s.png").size == (2 + 8 * 34, 2 + 2 * 34)  # 8 x 2 grid of 32px images


@pytest.mark.parametrize("run,argv,message", [
    # A real process: the exit code and the one line a shell sees.
    pytest.param(run_cli, ["--model", "dcgan", "--g_hidden", "1,2"], "--g_hidden needs exactly 4 channel widths",
                 marks=pytest.mark.processes),
    pytest.param(run_main, ["--model", "wgan", "--n_critic", "0"], "must be positive, got 0",
                 marks=pytest.mark.quick),
], ids=["process", "in_process"])
def test_bad_conv_settings_are_one_line_errors(tmp_path, run, argv, message):
    if run is run_cli:
        release_compiled_programs()  # this module's conv programs: the launched process starts beside them
    proc = run("jaxgan.train", *argv, "--no_download", cwd=str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr
