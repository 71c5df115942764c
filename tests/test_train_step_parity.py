"""``GAN.train_step``, the step that training runs, against the PyTorch reference loop.

tests/test_steps.py checks ``d_update`` and ``g_update`` called one by one; this runs the whole
step, as the trainer does: its own noise from ``fold_in(step_key, step)``, the D update, then the G
update scored by the *updated* D, and with ``--d_steps k`` a G update on every k-th batch only
(Algorithm 1). Dropout is off (rate 0) so that no mask has to be shared with PyTorch; the
reference runs in float64 for the reason given in test_steps.py (Adam's sign-like first steps turn
PyTorch's float32 gradient noise into parameter differences of 2 * lr).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from benchmarks import torch_reference as ref
from jaxgan import steps
from tests.conftest import leaves_equal, small_config

BATCH = 32


def setup(tmp_path, d_steps):
    """jaxgan's GAN with its state set to a float64 PyTorch G and D's weights, and those modules."""
    cfg = small_config(tmp_path, g_hidden=(32, 64, 128), d_hidden=(128, 64), latent_dim=16,
                       batch_size=BATCH, d_dropout=0.0, d_steps=d_steps)
    torch.manual_seed(0)
    tg = ref.Generator(cfg.image_shape, cfg.latent_dim, cfg.g_hidden).double()
    td = ref.Discriminator(cfg.image_shape, cfg.d_hidden, dropout=0.0).double()
    gan, state = steps.build(cfg)
    g_params, g_stats, d_params = ref.torch_to_flax(tg, td)
    state = state.replace(g_params=g_params, g_stats=g_stats, d_params=d_params,
                          g_opt=gan.g_tx.init(g_params), d_opt=gan.d_tx.init(d_params))
    return gan, state, tg, td


def step_noise(gan, step):
    """The z's that train_step draws at ``step`` (its documented key schedule), as float64 torch."""
    k_zd, _, k_zg, _ = jax.random.split(jax.random.fold_in(gan.step_key, step), 4)
    return tuple(torch.from_numpy(np.asarray(gan.sample_noise(k, BATCH), np.float64)) for k in (k_zd, k_zg))


def real_batches(n):
    """Float32 images in [-1, 1], and the same values in float64 for PyTorch."""
    x = jax.random.uniform(jax.random.key(42), (n, BATCH, 784), minval=-1, maxval=1)
    return [(x[i], torch.from_numpy(np.asarray(x[i], np.float64))) for i in range(n)]


def torch_d_step(tg, td, opt_d, images, z):
    """The reference's D half of an iteration (train_iteration, lines for D)."""
    bce = torch.nn.BCELoss()
    ones = torch.ones(BATCH, 1, dtype=torch.float64)
    d_loss = bce(td(images), ones) + bce(td(tg(z).detach()), torch.zeros_like(ones))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    return float(d_loss.detach())


def torch_g_step(tg, td, opt_g, z):
    """The reference's G half: G scored by the current D, which is not updated."""
    g_loss = torch.nn.BCELoss()(td(tg(z)), torch.ones(BATCH, 1, dtype=torch.float64))
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return float(g_loss.detach())


def prebn_bias_gaps(state, tg, gaps=None):
    """Per G layer feeding a BatchNorm, |jaxgan's bias - PyTorch's|, elementwise; with ``gaps``,
    the elementwise maximum with those (the largest gap seen so far)."""
    now = [np.abs(np.asarray(state.g_params["linears"][i]["bias"]) - m.bias.detach().numpy())
           for i, m in enumerate(ref.linear_layers(tg)[:-1])]
    return now if gaps is None else [np.maximum(a, b) for a, b in zip(gaps, now)]


def assert_state_equals_torch(gan, state, tg, td, bias_gaps):
    """jaxgan's state against PyTorch's G and D after the same steps. ``bias_gaps``: the largest
    pre-BatchNorm bias gaps (``prebn_bias_gaps``) at any of G's training-mode passes so far."""
    want_g, want_stats, want_d = ref.torch_to_flax(tg, td)

    # The biases of G's Linear layers that feed a BatchNorm have an exactly-zero true gradient
    # (BatchNorm subtracts them again), so Adam's g / (|g| + eps) turns rounding noise of ~1e-9
    # into updates, in PyTorch as in XLA, and the two drift apart by chance (here by up to ~4e-5).
    # They cannot change G's output, which is compared below instead.
    def without_prebn_biases(g):
        return {**g, "linears": {i: {"kernel": layer["kernel"]} for i, layer in g["linears"].items()}}

    for got, want in ((without_prebn_biases(state.g_params), without_prebn_biases(want_g)),
                      (state.d_params, want_d)):
        for x, y in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
            np.testing.assert_allclose(np.asarray(x), y, atol=1e-5, rtol=1e-5)
    # A running mean is a momentum average (weights summing to < 1) of batch means of W h + b, each
    # taken at the bias of its pass, so it may differ by the largest bias gap seen at a pass on top
    # of the usual 1e-5. A variance does not see a shift: no allowance there.
    for i, got in state.g_stats["norms"].items():
        want = want_stats["norms"][i]
        np.testing.assert_allclose(np.asarray(got["var"]), want["var"], atol=1e-5, rtol=1e-5)
        gap = np.abs(np.asarray(got["mean"]) - want["mean"])
        assert np.all(gap <= 1e-5 + 1e-5 * np.abs(want["mean"]) + bias_gaps[i]), (i, gap.max())
    # G's output from jaxgan's own state, pre-BatchNorm biases included (whatever they hold,
    # BatchNorm must cancel them), against PyTorch's G in the same (training) mode. Every other
    # parameter agrees to 1e-5; through G's layers that compounds to a few 1e-5 in the tanh
    # outputs (measured up to 1.2e-5), hence atol 5e-5.
    z = torch.rand(64, gan.latent_dim, dtype=torch.float64)
    tg.train()
    out, _ = gan.apply_g(state.g_params, state.g_stats, jnp.asarray(z.numpy(), jnp.float32), True)
    np.testing.assert_allclose(np.asarray(out), tg(z).detach().reshape(64, -1).numpy(), atol=5e-5)


def test_train_step_equals_the_reference_iteration(tmp_path):
    # Four steps of jaxgan's train_step and of benchmarks.torch_reference.train_iteration (D update,
    # then G scored by the updated D), fed the same real batches and the noise train_step draws.
    gan, state, tg, td = setup(tmp_path, d_steps=1)
    opt_g, opt_d = ref.make_optimizers(tg, td)
    train_step = jax.jit(gan.train_step)
    gaps = None
    for step, (real, images) in enumerate(real_batches(4)):
        gaps = prebn_bias_gaps(state, tg, gaps)  # the biases of this step's two G passes
        z_d, z_g = step_noise(gan, step)
        d_ref, g_ref = ref.train_iteration(tg, td, opt_g, opt_d, images, gan.latent_dim, z_d, z_g)
        state, metrics = train_step(state, real)
        assert float(metrics["d_loss"]) == pytest.approx(float(d_ref), rel=1e-5), step
        assert float(metrics["g_loss"]) == pytest.approx(float(g_ref), rel=1e-5), step
        assert float(metrics["g_updated"]) == 1.0
    assert int(state.step) == 4
    assert_state_equals_torch(gan, state, tg, td, gaps)


def test_train_step_with_three_d_steps_updates_g_on_every_third_batch_like_the_reference(tmp_path):
    # --d_steps 3 (Algorithm 1 with k = 3): D is updated on every batch, G after every third D
    # update, scored by the D just updated. The PyTorch side is the reference iteration split
    # into its D half and its G half, with the G half run on batches 2 and 5 (counting from 0).
    # In between, G's parameters do not change at all.
    gan, state, tg, td = setup(tmp_path, d_steps=3)
    opt_g, opt_d = ref.make_optimizers(tg, td)
    train_step = jax.jit(gan.train_step)
    gaps, updated = None, []
    for step, (real, images) in enumerate(real_batches(6)):
        gaps = prebn_bias_gaps(state, tg, gaps)  # the biases of this step's G passes
        z_d, z_g = step_noise(gan, step)
        d_ref = torch_d_step(tg, td, opt_d, images, z_d)
        g_turn = step % 3 == 2
        g_ref = torch_g_step(tg, td, opt_g, z_g) if g_turn else 0.0
        before = state.g_params
        state, metrics = train_step(state, real)
        updated.append(not leaves_equal(before, state.g_params))
        assert float(metrics["d_loss"]) == pytest.approx(d_ref, rel=1e-5), step
        assert float(metrics["g_updated"]) == float(g_turn), step
        assert float(metrics["g_loss"]) == pytest.approx(g_ref, rel=1e-5), step
    assert updated == [False, False, True, False, False, True]
    assert int(state.step) == 6
    assert_state_equals_torch(gan, state, tg, td, gaps)
