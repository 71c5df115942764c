"""Flax NNX MLP generator and discriminator, layer for layer the PyTorch reference's.

Generator:     [Linear -> BatchNorm1d -> ReLU] x 4 (128, 256, 512, 1024) -> Linear -> Tanh
Discriminator: [Linear -> LeakyReLU(0.2) -> Dropout(0.3)] x 3 (512, 256, 128) -> Linear
               (the reference's final Sigmoid is folded into the losses; see ``probability``)

Images travel flattened in the reference's (C, H, W) order, so weights copy one-to-one from
``torch.nn.Linear`` (transposed). The modules are split into plain pytrees once (``split``) and
merged back inside pure functions (``apply_generator``, ``discriminator_logits``): the training
step is plain ``jax.jit``, never ``nnx.jit``.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

Params = Any  # nested dict of arrays


def _torch_linear(fan_in: int, fan_out: int, rngs: nnx.Rngs, compute_dtype: str = "float32") -> nnx.Linear:
    # torch.nn.Linear.reset_parameters: kaiming_uniform(a=sqrt(5)) on the weight and
    # U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on the bias; both bounds equal 1/sqrt(fan_in).
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    if compute_dtype == "bfloat16":
        # Operands rounded to bfloat16, products accumulated and returned in float32;
        # parameters and optimiser state stay float32.
        return nnx.Linear(fan_in, fan_out, kernel_init=init, bias_init=init, rngs=rngs,
                          dtype=jnp.bfloat16, preferred_element_type=jnp.float32)
    return nnx.Linear(fan_in, fan_out, kernel_init=init, bias_init=init, rngs=rngs,
                      precision=matmul_precision(compute_dtype))


def matmul_precision(compute_dtype: str) -> jax.lax.Precision:
    """``float32`` means true float32 on every backend: XLA's default precision runs float32
    matmuls as TF32 on NVIDIA GPUs and as bf16 passes on TPUs, so it is asked for HIGHEST.
    ``tf32`` is the backend's default (faster) precision; on a CPU both are exact float32."""
    return jax.lax.Precision.HIGHEST if compute_dtype == "float32" else jax.lax.Precision.DEFAULT


class TorchBatchNorm1d(nnx.Module):
    """``torch.nn.BatchNorm1d`` semantics: momentum 0.1, eps 1e-5, and the running variance
    updated with the *unbiased* batch variance (flax's BatchNorm uses the biased one)."""

    def __init__(self, features: int, momentum: float = 0.1, eps: float = 1e-5):
        self.scale = nnx.Param(jnp.ones((features,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((features,), jnp.float32))
        self.mean = nnx.BatchStat(jnp.zeros((features,), jnp.float32))
        self.var = nnx.BatchStat(jnp.ones((features,), jnp.float32))
        self.momentum, self.eps = momentum, eps

    def __call__(self, x: jax.Array, use_batch_stats: bool) -> jax.Array:
        if use_batch_stats:
            mean = x.mean(axis=0)
            var = jnp.mean(jnp.square(x - mean), axis=0)
            n = x.shape[0]
            m = self.momentum
            # Running statistics are state, not a path for gradients.
            self.mean[...] = jax.lax.stop_gradient((1 - m) * self.mean[...] + m * mean)
            self.var[...] = jax.lax.stop_gradient((1 - m) * self.var[...] + m * var * n / max(n - 1, 1))
        else:
            mean, var = self.mean[...], self.var[...]
        return (x - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]


class Generator(nnx.Module):
    """Noise (N, latent_dim) -> flat images (N, C*H*W) in [-1, 1]."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int],
                 hidden: tuple[int, ...] = (128, 256, 512, 1024), *, compute_dtype: str = "float32",
                 rngs: nnx.Rngs):
        sizes = (latent_dim,) + tuple(hidden)
        self.linears = nnx.List([_torch_linear(a, b, rngs, compute_dtype) for a, b in zip(sizes[:-1], sizes[1:])])
        self.norms = nnx.List([TorchBatchNorm1d(b) for b in hidden])
        self.out = _torch_linear(sizes[-1], math.prod(image_shape), rngs, compute_dtype)

    def __call__(self, z: jax.Array, use_batch_stats: bool = True) -> jax.Array:
        h = z
        for linear, norm in zip(self.linears, self.norms):
            h = jax.nn.relu(norm(linear(h), use_batch_stats))
        return jnp.tanh(self.out(h))


class Discriminator(nnx.Module):
    """Flat images (N, C*H*W) -> logits (N,). ``dropout_key=None`` turns dropout off."""

    def __init__(self, image_shape: tuple[int, int, int], hidden: tuple[int, ...] = (512, 256, 128),
                 dropout: float = 0.3, *, compute_dtype: str = "float32", rngs: nnx.Rngs):
        sizes = (math.prod(image_shape),) + tuple(hidden)
        self.linears = nnx.List([_torch_linear(a, b, rngs, compute_dtype) for a, b in zip(sizes[:-1], sizes[1:])])
        self.out = _torch_linear(sizes[-1], 1, rngs, compute_dtype)
        self.rate = dropout

    def __call__(self, x: jax.Array, dropout_key: jax.Array | None = None) -> jax.Array:
        h = x
        keys = jax.random.split(dropout_key, len(self.linears)) if dropout_key is not None else None
        for i, linear in enumerate(self.linears):
            h = jax.nn.leaky_relu(linear(h), 0.2)
            if keys is not None and self.rate > 0:
                keep = jax.random.bernoulli(keys[i], 1.0 - self.rate, h.shape)
                h = jnp.where(keep, h / (1.0 - self.rate), 0.0)
        return self.out(h)[:, 0]


def probability(logits: jax.Array) -> jax.Array:
    """D's output as the reference reports it: sigmoid of the logit, in (0, 1)."""
    return jax.nn.sigmoid(logits)


def _pure(state: nnx.State) -> Params:
    # nnx.to_pure_dict is the current spelling; older Flax releases only have the method.
    return nnx.to_pure_dict(state) if hasattr(nnx, "to_pure_dict") else state.to_pure_dict()


def split(module: nnx.Module) -> tuple[nnx.GraphDef, Params, Params]:
    """Module -> (static graph, parameters, BatchNorm statistics) as plain nested dicts."""
    graph, params, stats = nnx.split(module, nnx.Param, nnx.BatchStat)
    return graph, _pure(params), _pure(stats)


def apply_generator(graph: nnx.GraphDef, params: Params, stats: Params, z: jax.Array,
                    use_batch_stats: bool = True) -> tuple[jax.Array, Params]:
    """Pure G forward: returns flat images and the (possibly updated) BatchNorm statistics."""
    g = nnx.merge(graph, params, stats)
    images = g(z, use_batch_stats)
    return images, _pure(nnx.state(g, nnx.BatchStat))


def discriminator_logits(graph: nnx.GraphDef, params: Params, x: jax.Array,
                         dropout_key: jax.Array | None) -> jax.Array:
    """Pure D forward: logits (N,)."""
    return nnx.merge(graph, params, {})(x, dropout_key)


def count_params(params: Params) -> int:
    """Number of trainable scalars in a parameter tree."""
    return sum(int(p.size) for p in jax.tree_util.tree_leaves(params))
