"""The pure D and G steps: what each changes, parity with the PyTorch loop, scan fusion,
determinism, and Algorithm 1's k D steps per G step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from benchmarks import torch_reference as ref
from jaxgan import data as data_lib
from jaxgan import models, steps
from jaxgan.data import epoch_layout
from tests.conftest import leaves_all_differ, leaves_equal, small_config, torch_to_flax
from tests.test_train_step_parity import assert_state_equals_torch, prebn_bias_gaps


@pytest.fixture
def gan_and_state(tmp_path):
    return steps.build(small_config(tmp_path))


def real_batch(n=32, dim=784, seed=0):
    return jax.random.uniform(jax.random.key(seed), (n, dim), minval=-1, maxval=1)


def test_d_step_changes_d_and_leaves_g_parameters_alone(gan_and_state):
    gan, state = gan_and_state
    z = gan.sample_noise(jax.random.key(1), 32)
    new, metrics = gan.d_update(state, real_batch(), z, jax.random.key(2))
    assert leaves_all_differ(new.d_params, state.d_params)
    assert leaves_equal(new.g_params, state.g_params) and leaves_equal(new.g_opt, state.g_opt)
    # As in PyTorch, G's forward pass in training mode moves its BatchNorm running averages.
    assert leaves_all_differ(new.g_stats, state.g_stats)
    assert int(new.step) == int(state.step)
    assert 0 < float(metrics["d_real"]) < 1 and 0 < float(metrics["d_fake"]) < 1


def test_g_step_changes_g_and_leaves_d_alone(gan_and_state):
    gan, state = gan_and_state
    new, loss = gan.g_update(state, gan.sample_noise(jax.random.key(1), 32), jax.random.key(2))
    assert leaves_all_differ(new.g_params, state.g_params)
    assert leaves_all_differ(new.g_stats, state.g_stats)
    assert leaves_equal(new.d_params, state.d_params) and leaves_equal(new.d_opt, state.d_opt)
    assert np.isfinite(float(loss))


def test_generator_gets_gradient_through_discriminator(gan_and_state):
    gan, state = gan_and_state
    z = gan.sample_noise(jax.random.key(1), 32)

    def g_loss(g_params):
        fake, _ = models.apply_generator(gan.g_graph, g_params, state.g_stats, z, True)
        return steps.g_loss_from_logits(gan.d_logits(state.d_params, fake, None), "nonsaturating")

    grads = jax.grad(g_loss)(state.g_params)
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
    g_params, g_stats, d_params = torch_to_flax(tg, td)
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


def test_scan_fused_steps_equal_single_steps(gan_and_state):
    # One compiled call per step (a chunk of length 1) and one call for four fused steps give
    # bit-identical states; so do other splits. Resume relies on this.
    gan, state = gan_and_state
    data = jnp.asarray(np.random.default_rng(0).integers(0, 256, (200, 784), dtype=np.uint8))
    perm = data_lib.epoch_permutation(jax.random.key(0), 0, 200)
    chunk = jax.jit(gan.train_chunk)
    fused, metrics = chunk(state, data, perm, 1, 4)
    for parts in ([1, 1, 1, 1], [3, 1]):
        single, losses, pos = state, [], 1
        for length in parts:
            single, m = chunk(single, data, perm, pos, length)
            losses += list(np.asarray(m["d_loss"])[:length])
            pos += length
        assert int(fused.step) == int(single.step) == 4
        assert leaves_equal(fused, single), parts
        np.testing.assert_array_equal(np.asarray(metrics["d_loss"])[:4], np.asarray(losses, np.float32))
    # The fused steps visited batches 1..4 of the epoch, in order.
    step = jax.jit(gan.train_step)
    ref_state = state
    for i in range(1, 5):
        ref_state, m = step(ref_state, data_lib.gather_batch(data, perm, jnp.int32(i), gan.batch_size))
    assert float(m["d_loss"]) == pytest.approx(float(metrics["d_loss"][-1]), rel=1e-4)


def test_same_seed_gives_same_state_and_another_seed_does_not(tmp_path):
    data = jnp.asarray(np.random.default_rng(0).integers(0, 256, (200, 784), dtype=np.uint8))
    perm = data_lib.epoch_permutation(jax.random.key(0), 0, 200)

    def run(seed):
        gan, state = steps.build(small_config(tmp_path, seed=seed))
        return jax.jit(gan.train_chunk)(state, data, perm, 0, 3)[0]

    assert leaves_equal(run(7), run(7))
    assert leaves_all_differ(run(7).g_params, run(8).g_params)


def test_d_steps_k_updates_g_on_every_kth_batch(tmp_path):
    gan, state = steps.build(small_config(tmp_path, d_steps=3))
    step = jax.jit(gan.train_step)
    updated = []
    for i in range(6):
        before = state.g_params
        state, m = step(state, real_batch(seed=i))
        updated.append(not leaves_equal(before, state.g_params))
        assert float(m["g_updated"]) == float(updated[-1])
    assert updated == [False, False, True, False, False, True]


def test_minimax_and_normal_noise_options(tmp_path):
    gan, state = steps.build(small_config(tmp_path, loss="minimax", noise="normal"))
    z = gan.sample_noise(jax.random.key(0), 4096)
    assert float(z.min()) < -2 and float(z.max()) > 2  # N(0, 1), not U[0, 1)
    _, loss = gan.g_update(state, z[:32], jax.random.key(1))
    assert float(loss) < 0  # E log(1 - D) is negative
    gan_u, _ = steps.build(small_config(tmp_path))
    u = gan_u.sample_noise(jax.random.key(0), 4096)
    assert float(u.min()) >= 0 and float(u.max()) < 1


def test_partial_last_batch_trains_on_exactly_the_leftover_images(tmp_path):
    # 200 images in batches of 64: three full batches, then the reference's last batch
    # (drop_last=False) of the 8 images perm[192:]. The layout rules are pinned in test_schedule.py.
    assert epoch_layout(200, 64, "partial").tail == 8
    gan, state = steps.build(small_config(tmp_path, batch_size=64))
    data = jnp.asarray(np.random.default_rng(0).integers(0, 256, (200, 784), dtype=np.uint8))
    perm = data_lib.epoch_permutation(jax.random.key(0), 0, 200)
    new, m = jax.jit(gan.train_tail, static_argnames="start")(state, data, perm, start=192)
    # The same step on those 8 images, normalised as the reference's ToTensor + Normalize(0.5, 0.5).
    rows = np.asarray(data)[np.asarray(perm)[192:]]
    want, want_m = jax.jit(gan.train_step)(state, jnp.asarray((rows / 255 - 0.5) / 0.5, jnp.float32))
    assert int(new.step) == 1
    for name in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert float(m[name]) == pytest.approx(float(want_m[name]), rel=1e-6), name
    # D's parameters: G's pre-BatchNorm biases take Adam steps on rounding noise, so two compiled
    # programs disagree there (see assert_state_equals_torch in test_train_step_parity.py).
    for x, y in zip(jax.tree_util.tree_leaves(new.d_params), jax.tree_util.tree_leaves(want.d_params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)


def test_g_ema_tracks_an_exponential_average_of_g(tmp_path):
    gan, state = steps.build(small_config(tmp_path, g_ema=0.9))
    assert leaves_equal(state.g_ema, state.g_params)
    new, _ = gan.g_update(state, gan.sample_noise(jax.random.key(1), 32), jax.random.key(2))
    for e, old, p in zip(*(jax.tree_util.tree_leaves(t) for t in (new.g_ema, state.g_params, new.g_params))):
        np.testing.assert_allclose(np.asarray(e), 0.9 * np.asarray(old) + 0.1 * np.asarray(p), rtol=1e-6, atol=1e-7)
    assert steps.build(small_config(tmp_path))[1].g_ema is None  # off by default: the reference
