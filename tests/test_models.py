"""The Flax models are the reference's, layer for layer: shapes, ranges, parameter counts,
initialisation, and outputs equal to the PyTorch modules' given the same weights."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

from benchmarks import torch_reference as ref
from jaxgan import layers, losses, models
from jaxgan.config import DATASETS
from benchmarks.torch_reference import torch_to_flax

G_HIDDEN, D_HIDDEN = (128, 256, 512, 1024), (512, 256, 128)  # the reference's widths (the flags' defaults)


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_output_shapes_for_every_dataset(dataset):
    shape = DATASETS[dataset][1]
    g = models.Generator(100, shape, G_HIDDEN, rngs=nnx.Rngs(0))
    d = models.Discriminator(shape, D_HIDDEN, rngs=nnx.Rngs(1))
    z = jax.random.uniform(jax.random.key(0), (5, 100))
    images = g(z)
    assert images.shape == (5, math.prod(shape))
    assert float(jnp.max(jnp.abs(images))) <= 1.0  # tanh range
    assert d(images, True, dropout_key=jax.random.key(2)).shape == (5,)


def test_discriminator_probability_equals_torch_where_logits_are_huge():
    # The reference's D ends in nn.Sigmoid; jaxgan's returns logits and applies the sigmoid in
    # losses.probability. Scale the last layer so |logit| reaches the hundreds: both must still give
    # the same finite probabilities in [0, 1] (float32 sigmoid saturates to exactly 0 or 1 from
    # |logit| ~ 17 on, in PyTorch as in XLA) and strictly inside (0, 1) where float32 can say so.
    torch.manual_seed(0)
    td = ref.Discriminator((1, 28, 28), dropout=0.0)
    x = torch.rand(64, 784) * 2 - 1
    with torch.no_grad():
        td.model[-2].weight.mul_(3000.0)
        td.model[-2].bias.sub_(td.model[:-1](x).median())  # logits of both signs
    _, _, d_params = torch_to_flax(ref.Generator((1, 28, 28), 100), td)
    d_graph, _, _ = layers.split(models.Discriminator((1, 28, 28), D_HIDDEN, rngs=nnx.Rngs(0)))
    logits = layers.apply(d_graph, d_params, {}, jnp.asarray(x.numpy()), True, None)[0]
    t_logits = td.model[:-1](x)[:, 0].detach().numpy()
    # Float32 rounding in the 784-wide sums, amplified 3000x, leaves logits of magnitude up to ~140
    # apart by up to ~1.4e-4 (measured: jaxgan against torch float32, and each against a float64
    # copy of D); 5e-4 bounds it. The sigmoid's slope is at most 1/4: probabilities within 1.25e-4.
    np.testing.assert_allclose(np.asarray(logits), t_logits, rtol=0, atol=5e-4)
    assert t_logits.max() > 100 and t_logits.min() < -100  # far past float32 saturation and exp overflow
    p = np.asarray(losses.probability(logits))
    np.testing.assert_allclose(p, td(x)[:, 0].detach().numpy(), rtol=0, atol=1.25e-4)
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))
    moderate = np.abs(t_logits) < 15
    assert moderate.any() and np.all((p[moderate] > 0) & (p[moderate] < 1))


def test_discriminator_scores_each_example_independently():
    # D has no batch statistics, so one pass over [real; fake] (what steps.d_update does) equals
    # two passes; a batch-coupled D (e.g. BatchNorm) would make them differ.
    d = models.Discriminator((1, 28, 28), D_HIDDEN, dropout=0.0, rngs=nnx.Rngs(0))
    a = jax.random.uniform(jax.random.key(1), (8, 784), minval=-1, maxval=1)
    b = jax.random.uniform(jax.random.key(2), (5, 784), minval=-1, maxval=1)
    together = d(jnp.concatenate([a, b]), dropout_key=None)
    np.testing.assert_allclose(np.asarray(together), np.concatenate([d(a, dropout_key=None), d(b, dropout_key=None)]), rtol=1e-5, atol=1e-6)
    one_by_one = jnp.stack([d(a[i:i + 1], dropout_key=None)[0] for i in range(8)])
    np.testing.assert_allclose(np.asarray(together[:8]), np.asarray(one_by_one), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_parameter_counts_equal_pytorch(shape):
    g = models.Generator(100, shape, G_HIDDEN, rngs=nnx.Rngs(0))
    d = models.Discriminator(shape, D_HIDDEN, rngs=nnx.Rngs(0))
    tg, td = ref.Generator(shape, 100), ref.Discriminator(shape)
    assert layers.count_params(layers.split(g)[1]) == sum(p.numel() for p in tg.parameters())
    assert layers.count_params(layers.split(d)[1]) == sum(p.numel() for p in td.parameters())


def test_initialisation_follows_torch_linear_bounds():
    g = models.Generator(100, (1, 28, 28), G_HIDDEN, rngs=nnx.Rngs(0))
    for linear in list(g.linears) + [g.out]:
        fan_in = linear.kernel[...].shape[0]
        bound = 1 / math.sqrt(fan_in)
        for w in (linear.kernel[...], linear.bias[...]):
            assert float(jnp.max(jnp.abs(w))) <= bound
        # U(-b, b) has standard deviation b / sqrt(3); flax's default (lecun normal) would not.
        assert float(jnp.std(linear.kernel[...])) == pytest.approx(bound / math.sqrt(3), rel=0.05)
    bn = g.norms[0]
    assert np.all(bn.scale[...] == 1) and np.all(bn.bias[...] == 0)
    assert np.all(bn.mean[...] == 0) and np.all(bn.var[...] == 1)


@pytest.mark.quick
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_forward_equals_pytorch_with_copied_weights(shape):
    torch.manual_seed(0)
    tg, td = ref.Generator(shape, 100), ref.Discriminator(shape)
    g_params, g_stats, d_params = torch_to_flax(tg, td)
    g_graph, _, _ = layers.split(models.Generator(100, shape, G_HIDDEN, rngs=nnx.Rngs(0)))
    d_graph, _, _ = layers.split(models.Discriminator(shape, D_HIDDEN, rngs=nnx.Rngs(0)))
    z = torch.rand(16, 100)

    # Training mode (batch statistics; running averages move with torch's momentum and unbiased var).
    tg.train()
    t_images = tg(z)
    images, new_stats = layers.apply(g_graph, g_params, g_stats, jnp.asarray(z.numpy()), True)
    np.testing.assert_allclose(np.asarray(images), t_images.detach().reshape(16, -1).numpy(), atol=1e-5)
    for i, bn in enumerate(ref.batchnorm_layers(tg)):
        np.testing.assert_allclose(np.asarray(new_stats["norms"][i]["mean"]), bn.running_mean.numpy(), atol=1e-6)
        np.testing.assert_allclose(np.asarray(new_stats["norms"][i]["var"]), bn.running_var.numpy(), rtol=1e-5)

    # Eval mode (running statistics), from the updated statistics.
    tg.eval()
    t_images = tg(z)
    images, _ = layers.apply(g_graph, g_params, new_stats, jnp.asarray(z.numpy()), False)
    np.testing.assert_allclose(np.asarray(images), t_images.detach().reshape(16, -1).numpy(), atol=1e-5)

    # D without dropout; images in the reference's (C, H, W) flattening.
    td.eval()
    x = torch.rand(16, *shape) * 2 - 1
    probs = losses.probability(layers.apply(d_graph, d_params, {}, jnp.asarray(x.reshape(16, -1).numpy()), True, None)[0])
    np.testing.assert_allclose(np.asarray(probs), td(x)[:, 0].detach().numpy(), atol=1e-5)


def test_dropout_keeps_the_expectation_and_has_the_reference_rate():
    # One hidden layer: out = w . (mask * h / (1 - p)) + b. Over masks its mean is the
    # dropout-free output and its variance sum_j w_j^2 h_j^2 p / (1 - p).
    p = 0.3
    d = models.Discriminator((1, 28, 28), hidden=(256,), dropout=p, rngs=nnx.Rngs(0))
    x = jax.random.uniform(jax.random.key(0), (1, 784), minval=-1, maxval=1)
    outs = jax.vmap(lambda k: d(x, dropout_key=k))(jax.random.split(jax.random.key(1), 4000))[:, 0]
    h = jax.nn.leaky_relu(d.linears[0](x), 0.2)[0]
    w = d.out.kernel[...][:, 0]
    expected_var = float(jnp.sum(w**2 * h**2) * p / (1 - p))
    assert float(outs.var()) == pytest.approx(expected_var, rel=0.1)
    assert float(outs.mean()) == pytest.approx(float(d(x, dropout_key=None)[0]), abs=4 * math.sqrt(expected_var / 4000))
    np.testing.assert_array_equal(np.asarray(d(x, dropout_key=jax.random.key(3))), np.asarray(d(x, dropout_key=jax.random.key(3))))
