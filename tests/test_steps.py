"""The pure D and G steps: what each changes, parity with the PyTorch loop, scan fusion,
determinism, the epoch's short last batch, the loss and noise options and G's average. Algorithm
1's k D steps per G step is pinned in test_train_step_parity.py, with the whole step's parity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import torch

from benchmarks import torch_reference as ref
from jaxgan import data as data_lib
from jaxgan import losses, parallel, program, steps
from jaxgan.data import epoch_layout
from tests.conftest import leaves_all_differ, leaves_equal, replace, small_config
from tests.test_train_step_parity import assert_state_equals_torch, prebn_bias_gaps

# 200 images: in batches of 32, six full batches and a short one of 8.
DATA = np.random.default_rng(0).integers(0, 256, (200, 784), dtype=np.uint8)
DATASET = {"images": DATA}  # data.put_dataset's layout


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """small_config's run as the trainer compiles it (jaxgan.program, cached per process: the
    trainer's tests compile nothing more for it), and its two updates, jitted once for the module."""
    prog = program.compile_run(small_config(tmp_path_factory.mktemp("small")))
    return prog, jax.jit(prog.run.d_update), jax.jit(prog.run.g_update)


def fresh(prog):
    """A new copy of the run's initial state: its chunk and tail programs donate the state they get."""
    return parallel.put(prog.initial_state, prog.state_sharding)


def perm():
    return data_lib.epoch_permutation(jax.random.key(0), 0, 200)


def real_batch(n=32, dim=784, seed=0):
    return jax.random.uniform(jax.random.key(seed), (n, dim), minval=-1, maxval=1)


def test_d_step_changes_d_and_leaves_g_parameters_alone(small):
    prog, d_update, _ = small
    gan, state = prog.run, fresh(prog)
    z = gan.sample_noise(jax.random.key(1), 32)
    new, metrics = d_update(state, real_batch(), z, jax.random.key(2))
    assert leaves_all_differ(new.d_params, state.d_params)
    assert leaves_equal(new.g_params, state.g_params) and leaves_equal(new.g_opt, state.g_opt)
    # As in PyTorch, G's forward pass in training mode moves its BatchNorm running averages.
    assert leaves_all_differ(new.g_stats, state.g_stats)
    assert int(new.step) == int(state.step)
    assert 0 < float(metrics["d_real"]) < 1 and 0 < float(metrics["d_fake"]) < 1


def test_g_step_changes_g_and_leaves_d_alone(small):
    prog, _, g_update = small
    gan, state = prog.run, fresh(prog)
    new, loss = g_update(state, gan.sample_noise(jax.random.key(1), 32), jax.random.key(2))
    assert leaves_all_differ(new.g_params, state.g_params)
    assert leaves_all_differ(new.g_stats, state.g_stats)
    assert leaves_equal(new.d_params, state.d_params) and leaves_equal(new.d_opt, state.d_opt)
    assert np.isfinite(float(loss))


def test_generator_gets_gradient_through_discriminator(small):
    prog, _, _ = small
    gan, state = prog.run, fresh(prog)
    z = gan.sample_noise(jax.random.key(1), 32)

    def g_loss(g_params):
        fake, _ = gan.apply_g(g_params, state.g_stats, z, True)
        return losses.bce_g_loss(gan.d_forward(state.d_params, state.d_stats, fake, None)[0], "nonsaturating")

    grads = jax.jit(jax.grad(g_loss))(state.g_params)
    for leaf in jax.tree_util.tree_leaves(grads):
        assert float(jnp.max(jnp.abs(leaf))) > 0


@pytest.mark.parametrize("shape,dataset", [((1, 28, 28), "mnist"), ((3, 32, 32), "cifar10")])
def test_training_iterations_equal_pytorch_reference(tmp_path, shape, dataset):
    # Same weights, same real batches, same noise, dropout off (its masks cannot be shared):
    # three iterations of the reference loop and of jaxgan's steps give the same parameters,
    # BatchNorm statistics, losses and G outputs (assert_state_equals_torch says how close).
    # The reference runs in float64: PyTorch's own float32 CPU gradients differ from float64 by
    # up to ~1e-5 here, jaxgan's by <1e-9, and Adam's sign-like first steps would turn float32
    # noise into differences of 2 * lr.
    torch.manual_seed(0)
    tg, td = ref.Generator(shape, 100).double(), ref.Discriminator(shape, dropout=0.0).double()
    opt_g, opt_d = ref.make_optimizers(tg, td)
    cfg = small_config(tmp_path, dataset=dataset, g_hidden=(128, 256, 512, 1024), d_hidden=(512, 256, 128),
                       latent_dim=100, d_dropout=0.0)
    gan, state = steps.build(cfg)
    g_params, g_stats, d_params = ref.torch_to_flax(tg, td)
    state = state.replace(g_params=g_params, g_stats=g_stats, d_params=d_params,
                          g_opt=gan.g_tx.init(g_params), d_opt=gan.d_tx.init(d_params))
    d_update, g_update = jax.jit(gan.d_update), jax.jit(gan.g_update)

    def f32(t):
        return jnp.asarray(t.numpy(), jnp.float32)

    gaps = None
    for it in range(3):
        gaps = prebn_bias_gaps(state, tg, gaps)  # the biases of this iteration's two G passes
        images = torch.rand(48, *shape, dtype=torch.float64) * 2 - 1
        z_d, z_g = torch.rand(48, 100, dtype=torch.float64), torch.rand(48, 100, dtype=torch.float64)
        d_ref, g_ref = ref.train_iteration(tg, td, opt_g, opt_d, images, 100, z_d, z_g)
        state, metrics = d_update(state, f32(images.reshape(48, -1)), f32(z_d), None)
        state, g_loss = g_update(state, f32(z_g), None)
        assert float(metrics["d_loss"]) == pytest.approx(float(d_ref), rel=1e-5), it
        assert float(g_loss) == pytest.approx(float(g_ref), rel=1e-5), it
    assert_state_equals_torch(gan, state, tg, td, gaps)


@pytest.mark.quick
def test_scan_fused_steps_equal_single_steps(small):
    # One compiled call per step (a chunk of length 1) and one call for four fused steps give
    # bit-identical states; so do other splits. Resume relies on this.
    prog, _, _ = small
    order = perm()
    fused, metrics = prog.chunk(fresh(prog), DATASET, order, np.int32(1), np.int32(4))
    for parts in ([1, 1, 1, 1], [3, 1]):
        single, losses, pos = fresh(prog), [], 1
        for length in parts:
            single, m = prog.chunk(single, DATASET, order, np.int32(pos), np.int32(length))
            losses += list(np.asarray(m["d_loss"])[:length])
            pos += length
        assert int(fused.step) == int(single.step) == 4
        assert leaves_equal(fused, single), parts
        np.testing.assert_array_equal(np.asarray(metrics["d_loss"])[:4], np.asarray(losses, np.float32))
    # The fused steps visited batches 1..4 of the epoch, in order.
    step = jax.jit(prog.run.train_step)
    ref_state = fresh(prog)
    for i in range(1, 5):
        ref_state, m = step(ref_state, data_lib.gather_batch({"images": jnp.asarray(DATA)}, order, jnp.int32(i), 32)["images"])
    assert float(m["d_loss"]) == pytest.approx(float(metrics["d_loss"][-1]), rel=1e-4)


def test_same_seed_gives_same_state_and_another_seed_does_not(small, tmp_path):
    # Each run builds its initial state from the seed anew and trains it with small_config's
    # program: the same seed twice gives the same state, another seed's model starts elsewhere.
    prog = small[0]

    def run(seed):
        _, state = steps.build(replace(prog.cfg, seed=seed))  # laid out as the trainer lays it out
        return prog.chunk(parallel.put(state, prog.state_sharding), DATASET, perm(), np.int32(0), np.int32(3))[0]

    first = run(prog.cfg.seed)
    assert leaves_equal(first, run(prog.cfg.seed))
    assert leaves_all_differ(first.g_params, run(prog.cfg.seed + 1).g_params)


def test_minimax_and_normal_noise_options(small, tmp_path):
    gan, state = steps.build(small_config(tmp_path, loss="minimax", noise="normal"))
    z = gan.sample_noise(jax.random.key(0), 4096)
    assert float(z.min()) < -2 and float(z.max()) > 2  # N(0, 1), not U[0, 1)
    _, loss = jax.jit(gan.g_update)(state, z[:32], jax.random.key(1))
    assert float(loss) < 0  # E log(1 - D) is negative
    u = small[0].run.sample_noise(jax.random.key(0), 4096)  # small_config: the defaults
    assert float(u.min()) >= 0 and float(u.max()) < 1


@pytest.mark.quick
def test_partial_last_batch_trains_on_exactly_the_leftover_images(small):
    # 200 images in batches of 32: six full batches, then the reference's last batch
    # (drop_last=False) of the 8 images perm[192:]. The layout rules are pinned in test_schedule.py.
    assert epoch_layout(200, 32, "partial").tail == 8
    prog, _, _ = small
    order = perm()
    new, m = prog.tail(fresh(prog), DATASET, order, 192)
    # The same step on those 8 images, normalised as the reference's ToTensor + Normalize(0.5, 0.5).
    rows = DATA[np.asarray(order)[192:]]
    want, want_m = jax.jit(prog.run.train_step)(fresh(prog), jnp.asarray((rows / 255 - 0.5) / 0.5, jnp.float32))
    assert int(new.step) == 1
    for name in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert float(m[name]) == pytest.approx(float(want_m[name]), rel=1e-6), name
    # D's parameters: G's pre-BatchNorm biases take Adam steps on rounding noise, so two compiled
    # programs disagree there (see assert_state_equals_torch in test_train_step_parity.py).
    for x, y in zip(jax.tree_util.tree_leaves(new.d_params), jax.tree_util.tree_leaves(want.d_params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)


def test_g_ema_tracks_an_exponential_average_of_g(small, tmp_path):
    gan, state = steps.build(small_config(tmp_path, g_ema=0.9))
    assert leaves_equal(state.g_ema, state.g_params)
    new, _ = jax.jit(gan.g_update)(state, gan.sample_noise(jax.random.key(1), 32), jax.random.key(2))
    for e, old, p in zip(*(jax.tree_util.tree_leaves(t) for t in (new.g_ema, state.g_params, new.g_params))):
        np.testing.assert_allclose(np.asarray(e), 0.9 * np.asarray(old) + 0.1 * np.asarray(p), rtol=1e-6, atol=1e-7)
    assert small[0].initial_state.g_ema is None  # off by default: the reference
