"""The DCGAN and WGAN models are the reference's, layer for layer: outputs and BatchNorm statistics
equal to the PyTorch modules' given the same weights, equal parameter counts, each script's
initialisation, WGAN's RMSprop and clipping as PyTorch does them. Full training iterations of
both loops against the PyTorch loops (benchmarks/torch_dcgan.py), through jaxgan's own
train_step and both convolution forms, are tests/test_zoo.py's."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
from flax import nnx

from benchmarks import torch_dcgan as ref
from jaxgan import convnets, layers, losses, optim
from jaxgan.families.wgan import clip_params

# Every test here is small (models against torch, no training loop): all of them are in the quick tier.
pytestmark = pytest.mark.quick

G_SMALL, D_SMALL = (64, 32, 16, 8), (8, 16, 32, 64)
LATENT = 100
# Every parity test runs both ways of computing a convolution (--conv_impl lax | matmul).
EACH_CONV = pytest.mark.parametrize("conv_impl", layers.CONV_IMPLS)


def f32(t: torch.Tensor) -> jax.Array:
    return jnp.asarray(t.detach().numpy(), jnp.float32)


def flat(t: torch.Tensor) -> np.ndarray:
    return t.detach().reshape(t.shape[0], -1).numpy()


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # The PyTorch modules here are tiny: on a machine whose cores are shared, torch's thread pool
    # spends more handing the work around than doing it. One thread computes the same values to
    # far within the tolerances.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def graphs(shape, conv_impl, g_hidden=G_SMALL, d_hidden=D_SMALL):
    # The graphs only (the weights come from torch): built abstract, nothing is initialised.
    g = nnx.eval_shape(lambda: convnets.Generator(LATENT, shape, g_hidden, init="torch", conv_impl=conv_impl,
                                               rngs=nnx.Rngs(0)))
    d = nnx.eval_shape(lambda: convnets.Discriminator(shape, d_hidden, init="torch", conv_impl=conv_impl,
                                                   rngs=nnx.Rngs(1)))
    return layers.split(g)[0], layers.split(d)[0]


@functools.partial(jax.jit, static_argnums=0)
def generator_both_modes(graph, params, stats, z):
    """G's pure forward pass in training mode, then in evaluation mode from the statistics the
    training pass left behind, compiled as training compiles them (one program, not one per op)."""
    train_images, new_stats = layers.apply(graph, params, stats, z, True)
    eval_images, eval_stats = layers.apply(graph, params, new_stats, z, False)
    return train_images, new_stats, eval_images, eval_stats


@functools.partial(jax.jit, static_argnums=0)
def discriminator_both_modes(graph, params, stats, x):
    """D's pure forward pass in training mode, then in evaluation mode (as ``generator_both_modes``)."""
    train_logits, new_stats = layers.apply(graph, params, stats, x, True)
    eval_logits, _ = layers.apply(graph, params, new_stats, x, False)
    return train_logits, new_stats, eval_logits


def randomise_batchnorm(module: torch.nn.Module) -> None:
    # PyTorch starts every BatchNorm at weight 1, bias 0: give them values a mix-up would show.
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)


def assert_trees_close(got, want, **tol):
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(
        jax.tree_util.tree_map(np.asarray, want))
    for path, x in jax.tree_util.tree_leaves_with_path(got):
        y = want
        for key in path:
            y = y[key.key]
        np.testing.assert_allclose(np.asarray(x), y, err_msg=jax.tree_util.keystr(path), **tol)


@EACH_CONV
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_equals_pytorch_in_train_and_eval_mode(channels, conv_impl):
    torch.manual_seed(0)
    shape = (channels, 32, 32)
    tg = ref.Generator(channels, 32, LATENT, G_SMALL)
    randomise_batchnorm(tg)
    g_graph, _ = graphs(shape, conv_impl)
    params, stats = ref.generator_to_jaxgan(tg)
    z = torch.rand(16, LATENT)
    images, new_stats, eval_images, same = generator_both_modes(g_graph, params, stats, f32(z))

    # Training mode: batch statistics; the running averages move (momentum 0.1, unbiased var).
    tg.train()
    assert images.shape == (16, channels * 32 * 32)  # flat, torch's (C, H, W) order
    np.testing.assert_allclose(np.asarray(images), flat(tg(z)), atol=1e-5)
    assert_trees_close(new_stats, ref.generator_to_jaxgan(tg)[1], rtol=1e-5, atol=1e-6)

    # Evaluation mode, from the statistics the training pass left behind.
    tg.eval()
    np.testing.assert_allclose(np.asarray(eval_images), flat(tg(z)), atol=1e-5)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(lambda a, b: bool(jnp.all(a == b)), same, new_stats))


@EACH_CONV
@pytest.mark.parametrize("channels", [1, 3])
def test_discriminator_equals_pytorch_in_train_and_eval_mode(channels, conv_impl):
    torch.manual_seed(1)
    shape = (channels, 32, 32)
    td = ref.Discriminator(channels, 32, D_SMALL, sigmoid=True)
    randomise_batchnorm(td)
    _, d_graph = graphs(shape, conv_impl)
    params, stats = ref.discriminator_to_jaxgan(td)
    x = torch.rand(16, *shape) * 2 - 1
    logits, new_stats, eval_logits = discriminator_both_modes(d_graph, params, stats, f32(x.reshape(16, -1)))

    td.train()
    assert logits.shape == (16,)
    # The reference's D ends in a Sigmoid; jaxgan's returns the logit (the losses fold it in).
    np.testing.assert_allclose(np.asarray(jax.nn.sigmoid(logits)), td(x)[:, 0].detach().numpy(), atol=1e-5)
    assert_trees_close(new_stats, ref.discriminator_to_jaxgan(td)[1], rtol=1e-5, atol=1e-6)

    td.eval()
    np.testing.assert_allclose(np.asarray(jax.nn.sigmoid(eval_logits)), td(x)[:, 0].detach().numpy(), atol=1e-5)
    # WGAN's critic is the same network without the Sigmoid: the raw output is its score.
    critic = ref.Discriminator(channels, 32, D_SMALL, sigmoid=False)
    critic.load_state_dict(td.state_dict())
    critic.eval()
    np.testing.assert_allclose(np.asarray(eval_logits), critic(x)[:, 0].detach().numpy(), atol=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_parameter_counts_equal_pytorch_at_reference_widths(channels):
    shape = (channels, 32, 32)
    with torch.device("meta"):
        tg, td = ref.Generator(channels, 32, LATENT), ref.Discriminator(channels, 32)
    g = nnx.eval_shape(lambda: convnets.Generator(LATENT, shape, init="dcgan", rngs=nnx.Rngs(0)))
    d = nnx.eval_shape(lambda: convnets.Discriminator(shape, init="dcgan", rngs=nnx.Rngs(0)))
    for flax_module, torch_module in ((g, tg), (d, td)):
        _, params, stats = layers.split(flax_module)
        assert layers.count_params(params) == sum(p.numel() for p in torch_module.parameters())
        assert layers.count_params(stats) == sum(b.numel() for n, b in torch_module.named_buffers()
                                                if not n.endswith("num_batches_tracked"))
    assert sum(p.numel() for p in tg.parameters()) > 10_000_000  # really the reference's widths


def kernels_and_biases(module):
    layers = [module.fc] if hasattr(module, "fc") else []
    layers += list(getattr(module, "deconvs", [])) + list(getattr(module, "convs", []))
    layers += [module.out] if hasattr(module, "out") else []
    return layers


def test_dcgan_init_is_init_weight():
    shape = (1, 32, 32)
    g = convnets.Generator(LATENT, shape, (256, 128, 64, 32), init="dcgan", rngs=nnx.Rngs(0))
    d = convnets.Discriminator(shape, (32, 64, 128, 256), init="dcgan", rngs=nnx.Rngs(1))
    for module in (g, d):
        for layer in kernels_and_biases(module):
            w = np.asarray(layer.kernel[...])
            if w.size >= 1000:
                assert w.mean() == pytest.approx(0, abs=0.002)
                assert w.std() == pytest.approx(0.02, rel=0.05)
            assert np.all(np.asarray(layer.bias[...]) == 0)
        # init_weight leaves BatchNorm at PyTorch's defaults.
        for bn in module.norms:
            assert np.all(bn.scale[...] == 1) and np.all(bn.bias[...] == 0)
            assert np.all(bn.mean[...] == 0) and np.all(bn.var[...] == 1)


def test_torch_init_follows_pytorch_default_bounds():
    # wgan/train.py initialises nothing: PyTorch's default for each layer type, whose bound is
    # 1/sqrt(fan_in) with fan_in from weight dim 1 times the kernel area; for ConvTranspose2d
    # that dim is the *output* channels. fan_in is asked of PyTorch for its own modules' weights.
    shape, gh, dh = (1, 32, 32), (256, 128, 64, 32), (32, 64, 128, 256)
    torch.manual_seed(0)
    tg, td = ref.Generator(1, 32, LATENT, gh), ref.Discriminator(1, 32, dh)
    g = convnets.Generator(LATENT, shape, gh, init="torch", rngs=nnx.Rngs(0))
    d = convnets.Discriminator(shape, dh, init="torch", rngs=nnx.Rngs(1))
    torch_layers = [tg.fc] + [m for m in tg.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    torch_layers += [m for m in td.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    for layer, t in zip(kernels_and_biases(g) + kernels_and_biases(d), torch_layers):
        for ours in (np.asarray(layer.kernel[...]), np.asarray(layer.bias[...])):
            bound = 1 / math.sqrt(torch.nn.init._calculate_fan_in_and_fan_out(t.weight)[0])
            assert np.abs(ours).max() <= bound, type(t).__name__
            if ours.size >= 5000:
                # U(-b, b): maximum near b, standard deviation b / sqrt(3).
                assert np.abs(ours).max() == pytest.approx(bound, rel=0.01), type(t).__name__
                assert ours.std() == pytest.approx(bound / math.sqrt(3), rel=0.03), type(t).__name__
    for module in (g, d):
        for bn in module.norms:
            assert np.all(bn.scale[...] == 1) and np.all(bn.bias[...] == 0)


def test_rmsprop_equals_torch_rmsprop_over_several_steps():
    # Gradients spanning 1e-9..1 make eps's place (outside the root), the decay (0.99) and the
    # zero initial average all visible; params stay float32 on our side, float64 in PyTorch.
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(6, 50))
    scales = np.array([1.0, 1e-3, 1e-6, 1e-7, 1e-8, 1e-9])[:, None]
    t_param = torch.nn.Parameter(torch.tensor(p0))
    t_opt = torch.optim.RMSprop([t_param], lr=0.01)
    tx = optim.rmsprop(0.01)
    params = {"w": jnp.asarray(p0, jnp.float32)}
    state = tx.init(params)
    for _ in range(6):
        g = rng.normal(size=p0.shape) * scales
        t_param.grad = torch.tensor(g)
        t_opt.step()
        updates, state = tx.update({"w": jnp.asarray(g, jnp.float32)}, state, params)
        params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(np.asarray(params["w"]), t_param.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.asarray(state[0].nu["w"]), t_opt.state[t_param]["square_avg"].numpy(),
                               rtol=1e-5, atol=1e-30)


def test_clip_params_clamps_every_parameter_batchnorm_included():
    d = convnets.Discriminator((1, 32, 32), D_SMALL, init="torch", rngs=nnx.Rngs(0))
    _, params, stats = layers.split(d)
    clipped = clip_params(params, 0.01)
    for x, y in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(clipped)):
        np.testing.assert_array_equal(np.asarray(y), np.clip(np.asarray(x), -0.01, 0.01))
    assert np.all(np.asarray(clipped["norms"][0]["scale"]) == np.float32(0.01))  # 1 -> 0.01


def test_wgan_losses():
    real, fake = jnp.array([1.0, 2.0, 3.0]), jnp.array([-1.0, 0.5, 0.0])
    assert float(losses.wasserstein_critic_loss(real, fake)) == pytest.approx(-1 / 6 - 2)
    assert float(losses.wasserstein_g_loss(fake)) == pytest.approx(1 / 6)


def test_full_batches_forever_is_wgan_scripts_generate():
    # 10 images, batches of 4: each epoch gives two full batches, the short third is skipped and
    # a reshuffled epoch starts.
    data = torch.utils.data.TensorDataset(torch.arange(10.0), torch.zeros(10))
    torch.manual_seed(0)
    batches = ref.full_batches_forever(torch.utils.data.DataLoader(data, batch_size=4, shuffle=True))
    got = [next(batches) for _ in range(8)]
    assert all(len(b) == 4 for b in got)
    epochs = [torch.cat(got[i:i + 2]) for i in range(0, 8, 2)]
    assert all(len(set(e.tolist())) == 8 for e in epochs)  # no image twice within an epoch
    assert len({tuple(e.tolist()) for e in epochs}) == 4  # reshuffled every epoch


def test_bad_shapes_and_options_are_refused():
    with pytest.raises(ValueError, match="multiple of 16"):
        convnets.Generator(LATENT, (1, 28, 28), G_SMALL, init="dcgan", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="4 positive channel widths"):
        convnets.Discriminator((1, 32, 32), (8, 16, 32), init="dcgan", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="init"):
        convnets.Discriminator((1, 32, 32), D_SMALL, init="xavier", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="compute_dtype"):
        convnets.Generator(LATENT, (1, 32, 32), G_SMALL, init="dcgan", compute_dtype="float16", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="conv_impl"):
        convnets.Discriminator((1, 32, 32), D_SMALL, init="dcgan", conv_impl="fft", rngs=nnx.Rngs(0))


def precisions(compute_dtype, conv_impl):
    """Precision and operand dtypes of every convolution and matmul in a G and a D forward pass."""
    shape = (1, 32, 32)
    # Traced only: the modules' shapes are all it needs.
    g, g_params, g_stats = layers.split(nnx.eval_shape(lambda: convnets.Generator(
        LATENT, shape, G_SMALL, init="torch", conv_impl=conv_impl, compute_dtype=compute_dtype, rngs=nnx.Rngs(0))))
    d, d_params, d_stats = layers.split(nnx.eval_shape(lambda: convnets.Discriminator(
        shape, D_SMALL, init="torch", conv_impl=conv_impl, compute_dtype=compute_dtype, rngs=nnx.Rngs(1))))
    z = jax.ShapeDtypeStruct((4, LATENT), jnp.float32)
    x = jax.ShapeDtypeStruct((4, 32 * 32), jnp.float32)
    eqns = jax.make_jaxpr(lambda gp, gs, dp, ds, z, x: (layers.apply(g, gp, gs, z, True),
                                                        layers.apply(d, dp, ds, x, True)))(
        g_params, g_stats, d_params, d_stats, z, x).eqns
    ops = [e for e in eqns if e.primitive.name in ("conv_general_dilated", "dot_general")]
    assert len(ops) == 10  # fc, 4 deconvs; 4 convs, out
    if conv_impl == "matmul":
        assert all(e.primitive.name == "dot_general" for e in ops)
    return [(str(e.params["precision"]), e.invars[0].aval.dtype, e.outvars[0].aval.dtype) for e in ops]


@EACH_CONV
def test_compute_dtypes_set_precision_and_operands(conv_impl):
    # float32 must be true float32 on GPUs too (XLA's default there is TF32): HIGHEST everywhere.
    assert all("HIGHEST" in p and i == o == jnp.float32 for p, i, o in precisions("float32", conv_impl))
    assert all("HIGHEST" not in p and i == o == jnp.float32 for p, i, o in precisions("tf32", conv_impl))
    assert all(i == jnp.bfloat16 and o == jnp.float32 for _, i, o in precisions("bfloat16", conv_impl))


def test_bfloat16_compute_stays_close_with_float32_parameters():
    shape = (1, 32, 32)
    z = jax.random.uniform(jax.random.key(0), (16, LATENT))
    _, params, stats = layers.split(convnets.Generator(LATENT, shape, G_SMALL, init="torch", rngs=nnx.Rngs(0)))
    out = {}
    for dt in ("float32", "bfloat16"):
        # The same weights through each compute dtype's graph; the parameters stay float32.
        graph, dt_params, _ = layers.split(nnx.eval_shape(lambda: convnets.Generator(
            LATENT, shape, G_SMALL, init="torch", compute_dtype=dt, rngs=nnx.Rngs(0))))
        assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(dt_params))
        out[dt] = generator_both_modes(graph, params, stats, z)[0]
    diff = float(jnp.max(jnp.abs(out["float32"] - out["bfloat16"])))
    assert 0 < diff < 0.1


@pytest.mark.parametrize("h,w", [(1, 1), (5, 3), (4, 6), (7, 7)])
def test_matmul_conv_forms_equal_torch_at_odd_and_non_square_sizes(h, w):
    # The models only use square multiples of 16, but the two forms are functions of their own:
    # torch decides their output sizes and values everywhere (float64 on both sides).
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, h, w, 3))
    k = rng.normal(size=(5, 5, 3, 4))
    with jax.enable_x64(True):
        got, got_t = jax.jit(lambda x, k: (layers.conv2d_as_matmul(x, k, "float32"),
                                           layers.conv_transpose2d_as_matmul(x, k, "float32")))(
            jnp.asarray(x), jnp.asarray(k))
    xt = torch.tensor(x).permute(0, 3, 1, 2)
    want = torch.nn.functional.conv2d(xt, torch.tensor(k).permute(3, 2, 0, 1), stride=2, padding=2)
    want_t = torch.nn.functional.conv_transpose2d(xt, torch.tensor(k).permute(2, 3, 0, 1), stride=2, padding=2,
                                                  output_padding=1)
    np.testing.assert_allclose(np.asarray(got), want.permute(0, 2, 3, 1).numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(np.asarray(got_t), want_t.permute(0, 2, 3, 1).numpy(), rtol=1e-10, atol=1e-10)
