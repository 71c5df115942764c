"""Conditional conv families (``--model dcgan|wgan|wgan_gp --conditional``): class-conditional
BatchNorm in G and a projection D (Miyato & Koyama, 2018), against their PyTorch ports in
benchmarks/torch_dcgan.py, in float64 on both sides as tests/test_zoo.py compares the
unconditional ones; and the command training one end to end."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks import torch_dcgan as ref
from jaxgan import steps
from jaxgan.formats import write_mnist
from tests.conftest import blob_images, run_main
from tests.test_zoo import (D_SMALL, F64, G_SMALL, LATENT, SMALL_FLAGS, assert_trees_close, built_for_torch_weights,
                            image_tensor, one_torch_thread, real_batches, zoo_config)

CLASSES = 10
# Convolutions in XLA's own form: XLA:CPU compiles these short programs in about half the time of
# the CPU default (matmul; measured 19 s against 30 s for this file), and they run as fast at
# these sizes. The class conditioning sits outside the convolutions, and both forms are held to
# the reference and to each other by tests/test_zoo.py.
CONV_IMPL = "lax"
__all__ = ["one_torch_thread"]  # the zoo's autouse fixture: torch on one thread here too


def torch_pair(model):
    torch.manual_seed(0)
    tg = ref.ConditionalGenerator(1, 32, LATENT, CLASSES, G_SMALL)
    if model == "wgan_gp":
        td = ref.ProjectionDiscriminator(ref.Critic(1, 32, D_SMALL), CLASSES, sigmoid=False)
    else:
        td = ref.ProjectionDiscriminator(ref.Discriminator(1, 32, D_SMALL, sigmoid=False), CLASSES,
                                         sigmoid=model == "dcgan")
    if model == "dcgan":
        tg.apply(ref.init_weight), td.apply(ref.init_weight)
    # Class tables away from their initial ones and zeros, so that a wrong class would show.
    with torch.no_grad():
        for m in tg.norms:
            m.scale.weight.uniform_(0.5, 1.5), m.bias.weight.uniform_(-0.5, 0.5)
        td.embed.weight.normal_(0, 0.05)
    return tg.double(), td.double()


def with_torch_weights(gan, state, tg, td):
    gp, gs = ref.conditional_generator_to_jaxgan(tg, np.float64)
    dp, ds = ref.projection_to_jaxgan(td, np.float64)
    gp, gs, dp, ds = jax.tree_util.tree_map(jnp.asarray, (gp, gs, dp, ds))
    return state.replace(g_params=gp, g_stats=gs, d_params=dp, d_stats=ds, g_opt=gan.g_tx.init(gp),
                         d_opt=gan.d_tx.init(dp))


# WGAN-GP's critic (no BatchNorm) here; the conditional DCGAN's two networks are held to their ports
# by its train-step test below (same losses to 1e-9, same weights and statistics after 3 steps, in
# which a G or D that ignored its labels would part from the torch side).
@pytest.mark.parametrize("model", ["wgan_gp"])
def test_conditional_conv_networks_equal_their_pytorch_ports(tmp_path, model):
    cfg = zoo_config(tmp_path, model, batch_size=8, conditional=True, conv_impl=CONV_IMPL)
    gan, state = built_for_torch_weights(cfg)
    tg, td = torch_pair(model)
    z = torch.rand(10, LATENT, dtype=torch.float64)
    y = torch.arange(10)
    with jax.enable_x64(True):
        state = with_torch_weights(gan, state, tg, td)
        yj = jnp.asarray(y.numpy(), jnp.int32)
        # Jitted, one program each: op by op, each of the nets' float64 primitives compiled alone.
        generate = jax.jit(gan.generate, static_argnums=2)
        d_forward = jax.jit(gan.d_forward)
        images, _ = generate(state, jnp.asarray(z.numpy()), True, yj)
        t_images = tg(z, y)
        np.testing.assert_allclose(np.asarray(images), t_images.detach().reshape(10, -1).numpy(), **F64)
        out, _ = d_forward(state.d_params, state.d_stats, images, None, yj)
        t_out = td(t_images, y)[:, 0].detach().numpy()
        want = np.log(t_out / (1 - t_out)) if model == "dcgan" else t_out  # DCGAN's Sigmoid is in the loss
        np.testing.assert_allclose(np.asarray(out), want, rtol=1e-7, atol=1e-7)
        # The classes matter to both networks.
        other, _ = generate(state, jnp.asarray(z.numpy()), True, (yj + 1) % CLASSES)
        assert float(jnp.max(jnp.abs(other - images))) > 1e-3
        moved, _ = d_forward(state.d_params, state.d_stats, images, None, (yj + 1) % CLASSES)
        assert float(jnp.max(jnp.abs(moved - out))) > 1e-4


def test_conditional_dcgan_train_step_equals_the_pytorch_port(tmp_path):
    # Three train_steps against conditional_dcgan_iteration: the same weights, batches, labels and
    # noise (jaxgan's own per-step noise and label streams handed to the torch loop).
    n = 8
    cfg = zoo_config(tmp_path, "dcgan", batch_size=n, conditional=True, conv_impl=CONV_IMPL)
    gan, state = built_for_torch_weights(cfg)
    tg, td = torch_pair("dcgan")
    opt_g, opt_d = ref.dcgan_optimizers(tg, td)
    real_y = np.random.default_rng(1).integers(0, CLASSES, (3, n)).astype(np.int32)
    with jax.enable_x64(True):
        state = with_torch_weights(gan, state, tg, td)
        train_step = jax.jit(gan.train_step)
        for s, real in enumerate(real_batches(3, n)):
            key = jax.random.fold_in(gan.step_key, s)
            k_zd, _, k_zg, _ = jax.random.split(key, 4)
            k_yd, k_yg = jax.random.split(jax.random.fold_in(key, steps.LABEL_STREAM))
            z_d, z_g = (torch.from_numpy(np.asarray(gan.sample_noise(k, n), np.float64)) for k in (k_zd, k_zg))
            y_d, y_g = (torch.from_numpy(np.asarray(jax.random.randint(k, (n,), 0, CLASSES, jnp.int32), np.int64))
                        for k in (k_yd, k_yg))
            d_ref, g_ref = ref.conditional_dcgan_iteration(tg, td, opt_g, opt_d, image_tensor(real),
                                                           torch.from_numpy(real_y[s].astype(np.int64)),
                                                           z_d, y_d, z_g, y_g)
            state, m = train_step(state, jnp.asarray(real), jnp.asarray(real_y[s]))
            assert float(m["d_loss"]) == pytest.approx(float(d_ref), rel=1e-9), s
            assert float(m["g_loss"]) == pytest.approx(float(g_ref), rel=1e-9), s
        want = ref.conditional_generator_to_jaxgan(tg, np.float64) + ref.projection_to_jaxgan(td, np.float64)
        # atol 1e-8: the biases of D's convs that feed a BatchNorm have an exactly-zero true gradient,
        # so they move on float64 rounding noise alone (to ~1e-9 here), on both sides alike.
        for got, expected in zip((state.g_params, state.g_stats, state.d_params, state.d_stats), want):
            assert_trees_close(got, expected, rtol=1e-7, atol=1e-8)


def test_conditional_dcgan_command_writes_class_rows(tmp_path):
    # 32 images in batches of 8: one chunk of 4 steps, one training program (the grid is the point;
    # a short chunk or a tail batch would only add compiles).
    images, labels = blob_images(32, 28, 28, 1)
    write_mnist(str(tmp_path / "data"), images[..., 0], labels)
    r = run_main("jaxgan.train", "--model", "dcgan", "--conditional", "--num_epochs", "1",
                 "--data_dir", str(tmp_path / "data"), "--conv_impl", CONV_IMPL, *SMALL_FLAGS, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    grid = np.asarray(Image.open(tmp_path / "samples" / "dcgan" / "mnist" / "fake_images_1.png"))
    assert grid.shape[:2] == (10 * 34 + 2, 8 * 34 + 2)
