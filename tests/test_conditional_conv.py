"""Conditional conv families (``--model dcgan|wgan|wgan_gp --conditional``), both conditionings:
label planes (``--conv_cond planes``, the default: the one-hot label beside z, and as planes beside
D's input) and the projection D with class-conditional BatchNorm in G (Miyato & Koyama, 2018),
against their PyTorch ports in benchmarks/torch_conditional_conv.py, in float64 on both sides as
tests/test_zoo.py compares the unconditional ones; and the command training one end to end."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks import torch_conditional_conv as cref
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


def torch_pair(model, cond="planes"):
    """The torch G and D of ``model`` conditioned by ``cond`` (``--conv_cond``), in float64."""
    torch.manual_seed(0)
    if cond == "planes":
        tg = cref.PlanesGenerator(1, 32, LATENT, CLASSES, G_SMALL)
        body = (ref.Critic(1 + CLASSES, 32, D_SMALL) if model == "wgan_gp"
                else ref.Discriminator(1 + CLASSES, 32, D_SMALL, sigmoid=model == "dcgan"))
        td = cref.PlanesDiscriminator(body, CLASSES)
        if model == "dcgan":
            tg.apply(ref.init_weight), td.apply(ref.init_weight)
        return tg.double(), td.double()
    tg = cref.ConditionalGenerator(1, 32, LATENT, CLASSES, G_SMALL)
    if model == "wgan_gp":
        td = cref.ProjectionDiscriminator(ref.Critic(1, 32, D_SMALL), CLASSES, sigmoid=False)
    else:
        td = cref.ProjectionDiscriminator(ref.Discriminator(1, 32, D_SMALL, sigmoid=False), CLASSES,
                                          sigmoid=model == "dcgan")
    if model == "dcgan":
        tg.apply(ref.init_weight), td.apply(ref.init_weight)
    # Class tables away from their initial ones and zeros, so that a wrong class would show.
    with torch.no_grad():
        for m in tg.norms:
            m.scale.weight.uniform_(0.5, 1.5), m.bias.weight.uniform_(-0.5, 0.5)
        td.embed.weight.normal_(0, 0.05)
    return tg.double(), td.double()


def torch_weights(tg, td):
    """jaxgan's (g params, g stats, d params, d stats) holding the torch pair's float64 weights."""
    if isinstance(tg, cref.PlanesGenerator):
        return cref.planes_generator_to_jaxgan(tg, np.float64) + cref.planes_discriminator_to_jaxgan(td, np.float64)
    return cref.conditional_generator_to_jaxgan(tg, np.float64) + cref.projection_to_jaxgan(td, np.float64)


def with_torch_weights(gan, state, tg, td):
    gp, gs, dp, ds = jax.tree_util.tree_map(jnp.asarray, torch_weights(tg, td))
    return state.replace(g_params=gp, g_stats=gs, d_params=dp, d_stats=ds, g_opt=gan.g_tx.init(gp),
                         d_opt=gan.d_tx.init(dp))


# WGAN-GP's critic (no BatchNorm) here; the conditional DCGAN's two networks are held to their ports
# by its train-step test below (same losses to 1e-9, same weights and statistics after 3 steps, in
# which a G or D that ignored its labels would part from the torch side).
@pytest.mark.parametrize("cond", ["planes", "projection"])
def test_conditional_conv_networks_equal_their_pytorch_ports(tmp_path, cond, model="wgan_gp"):
    cfg = zoo_config(tmp_path, model, batch_size=8, conditional=True, conv_cond=cond, conv_impl=CONV_IMPL)
    gan, state = built_for_torch_weights(cfg)
    tg, td = torch_pair(model, cond)
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
        want = td(t_images, y)[:, 0].detach().numpy()  # the critic's raw score: no Sigmoid to undo
        np.testing.assert_allclose(np.asarray(out), want, rtol=1e-7, atol=1e-7)
        # The classes matter to both networks.
        other, _ = generate(state, jnp.asarray(z.numpy()), True, (yj + 1) % CLASSES)
        assert float(jnp.max(jnp.abs(other - images))) > 1e-3
        moved, _ = d_forward(state.d_params, state.d_stats, images, None, (yj + 1) % CLASSES)
        assert float(jnp.max(jnp.abs(moved - out))) > 1e-4


@pytest.mark.parametrize("cond", ["planes", "projection"])
def test_conditional_dcgan_train_step_equals_the_pytorch_port(tmp_path, cond):
    # Three train_steps against conditional_dcgan_iteration: the same weights, batches, labels and
    # noise (jaxgan's own per-step noise and label streams handed to the torch loop).
    n = 8
    cfg = zoo_config(tmp_path, "dcgan", batch_size=n, conditional=True, conv_cond=cond, conv_impl=CONV_IMPL)
    gan, state = built_for_torch_weights(cfg)
    tg, td = torch_pair("dcgan", cond)
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
            d_ref, g_ref = cref.conditional_dcgan_iteration(tg, td, opt_g, opt_d, image_tensor(real),
                                                            torch.from_numpy(real_y[s].astype(np.int64)),
                                                            z_d, y_d, z_g, y_g)
            state, m = train_step(state, jnp.asarray(real), jnp.asarray(real_y[s]))
            assert float(m["d_loss"]) == pytest.approx(float(d_ref), rel=1e-9), s
            assert float(m["g_loss"]) == pytest.approx(float(g_ref), rel=1e-9), s
        want = torch_weights(tg, td)
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


@pytest.mark.parametrize("model", ["dcgan", "wgan_gp"])
def test_label_planes_are_the_one_hot_label_beside_z_and_beside_the_image(tmp_path, model):
    # --conv_cond planes, the conditioning measured against the projection D (docs/quality.md): G is
    # an unconditional G whose noise has the one-hot label after z; D is an unconditional D whose
    # image has 10 more channels, after the image's, each constant: 1 in its label's, 0 elsewhere.
    # The expected inputs are built here in torch's (N, C, H, W) order, by hand.
    from flax import nnx

    from jaxgan.config import parse_args

    cfg = zoo_config(tmp_path, model, conditional=True, conv_cond="planes", conv_impl=CONV_IMPL)
    plain_cfg = zoo_config(tmp_path, model, latent_dim=LATENT + CLASSES, conv_impl=CONV_IMPL)
    g, d = cfg.family.networks(cfg, jax.random.key(0), jax.random.key(1))
    g_plain, _ = plain_cfg.family.networks(plain_cfg, jax.random.key(2), jax.random.key(3))
    d_plain = type(d)((1 + CLASSES, 32, 32), D_SMALL, init="torch", conv_impl=CONV_IMPL, rngs=nnx.Rngs(4))
    assert not hasattr(d, "project") and type(g.norms[0]).__name__ == "TorchBatchNorm"  # no class tables
    nnx.update(g_plain, nnx.state(g))  # the same weights: shapes and names must agree
    nnx.update(d_plain, nnx.state(d))
    n = 10
    z = jax.random.uniform(jax.random.key(5), (n, LATENT))
    y = jnp.asarray([3, 1, 4, 1, 5, 9, 2, 6, 5, 3], jnp.int32)
    one_hot = np.eye(CLASSES, dtype=np.float32)[np.asarray(y)]
    images = g(z, True, labels=y)
    np.testing.assert_allclose(np.asarray(images), np.asarray(g_plain(jnp.concatenate([z, one_hot], 1), True)),
                               rtol=1e-6, atol=1e-6)
    planes = np.broadcast_to(one_hot[:, :, None, None], (n, CLASSES, 32, 32))
    x = np.concatenate([np.asarray(images).reshape(n, 1, 32, 32), planes], axis=1).reshape(n, -1)
    np.testing.assert_allclose(np.asarray(d(images, True, labels=y)), np.asarray(d_plain(jnp.asarray(x), True)),
                               rtol=1e-5, atol=1e-5)
    # Another class, another image and another score.
    assert float(jnp.max(jnp.abs(g(z, True, labels=(y + 1) % CLASSES) - images))) > 1e-4
    assert float(jnp.max(jnp.abs(d(images, True, labels=(y + 1) % CLASSES) - d(images, True, labels=y)))) > 1e-5
    # Only for conditional conv runs.
    for argv, says in ((["--model", model, "--conv_cond", "planes"], "applies to conditional runs only"),
                       (["--model", model, "--conv_cond", "projection"], "applies to conditional runs only"),
                       (["--conditional", "--conv_cond", "planes"], "--conv_cond applies to --model")):
        with pytest.raises(Exception, match=says):
            parse_args(["--no_download", *argv])
