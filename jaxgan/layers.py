"""Layers with PyTorch's semantics, in Flax NNX, and the few helpers every network shares.

- initialisers: PyTorch's defaults (``torch``) and DCGAN's ``init_weight`` (``dcgan``);
- the matmul precision of ``--matmul_dtype``, set here once for every matmul and convolution;
- ``TorchLinear``; ``TorchEmbedding`` (a conditional run's label embedding); ``ClassBatchNorm`` and
  ``Projection`` (the conv families' ``--conv_cond projection``); ``TorchBatchNorm`` for 1-D features (N, F) and NHWC images alike;
- ``TorchConv2d`` (k5, s2, p2) and ``TorchConvTranspose2d`` (k5, s2, p2, op1), each computed as
  XLA convolutions (``lax``) or as patches times a kernel matrix (``matmul``);
- ``split`` / ``apply``: a module as (static graph, parameters, BatchNorm statistics) of plain
  dicts, and a pure forward pass over them, so training steps are plain ``jax.jit``, never
  ``nnx.jit``.

Kernels are stored as torch's weights permuted, never flipped: Linear (out, in) -> (in, out);
Conv2d (out, in, kh, kw) -> (kh, kw, in, out); ConvTranspose2d (in, out, kh, kw) -> (kh, kw, in, out).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

Params = Any  # nested dict of arrays
INITS = ("torch", "dcgan")
COMPUTE_DTYPES = ("float32", "tf32", "bfloat16")
CONV_IMPLS = ("lax", "matmul")
KERNEL, STRIDE, PADDING, OUTPUT_PADDING = 5, 2, 2, 1  # the DCGAN references' convolutions


# -- initialisation and precision ----------------------------------------------------------------
def initializer(rule: str, fan_in: int, is_bias: bool):
    """torch: PyTorch's default for Linear/Conv2d/ConvTranspose2d, U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    for weight and bias alike (kaiming_uniform(a=sqrt(5)) has that bound). dcgan: ``init_weight``'s
    N(0, 0.02) weights and zero biases."""
    if rule not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {rule!r}")
    if rule == "dcgan":
        if is_bias:
            return lambda key, shape: jnp.zeros(shape, jnp.float32)
        return lambda key, shape: 0.02 * jax.random.normal(key, shape, jnp.float32)
    bound = 1.0 / math.sqrt(fan_in)
    return lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def precision(compute_dtype: str) -> jax.lax.Precision:
    """``float32`` means true float32 on every backend: XLA's default runs float32 matmuls as TF32
    on NVIDIA GPUs and as bf16 passes on TPUs, so it is asked for HIGHEST. ``tf32`` is the backend's
    default (faster) precision; on a CPU both are exact float32."""
    return jax.lax.Precision.HIGHEST if compute_dtype == "float32" else jax.lax.Precision.DEFAULT


def operands(x: jax.Array, w: jax.Array, compute_dtype: str) -> tuple[jax.Array, jax.Array, dict]:
    """The operands of a matmul or convolution and its keyword arguments: bfloat16 rounds both
    operands and accumulates in float32; the others keep float32 at ``precision(compute_dtype)``."""
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be one of {COMPUTE_DTYPES}, got {compute_dtype!r}")
    if compute_dtype == "bfloat16":
        return x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), {"preferred_element_type": jnp.float32}
    return x, w, {"precision": precision(compute_dtype)}


def matmul(x: jax.Array, w: jax.Array, compute_dtype: str) -> jax.Array:
    x, w, kw = operands(x, w, compute_dtype)
    return jnp.matmul(x, w, **kw)


# -- layers ------------------------------------------------------------------------------------
class TorchLinear(nnx.Module):
    """``torch.nn.Linear``; kernel (in, out) = torch's weight transposed. Parameters stay float32
    whatever ``compute_dtype``; the bias is added in float32."""

    def __init__(self, fan_in: int, fan_out: int, *, init: str = "torch", compute_dtype: str = "float32",
                 rngs: nnx.Rngs):
        self.kernel = nnx.Param(initializer(init, fan_in, False)(rngs.params(), (fan_in, fan_out)))
        self.bias = nnx.Param(initializer(init, fan_in, True)(rngs.params(), (fan_out,)))
        self.compute_dtype = compute_dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        return matmul(x, self.kernel[...], self.compute_dtype) + self.bias[...]


class TorchEmbedding(nnx.Module):
    """``torch.nn.Embedding(n, dim)``: a (n, dim) table, initialised N(0, 1) as torch's default;
    integer labels (N,) -> rows (N, dim)."""

    def __init__(self, n: int, dim: int, *, rngs: nnx.Rngs):
        self.table = nnx.Param(jax.random.normal(rngs.params(), (n, dim), jnp.float32))

    def __call__(self, labels: jax.Array) -> jax.Array:
        return jnp.take(self.table[...], labels, axis=0)


class TorchBatchNorm(nnx.Module):
    """``torch.nn.BatchNorm1d`` on (N, F) and ``BatchNorm2d`` on NHWC: per-feature statistics over
    every axis but the last, momentum 0.1, eps 1e-5, and the running variance updated with the
    *unbiased* batch variance (flax's BatchNorm uses the biased one). Always float32."""

    def __init__(self, features: int, momentum: float = 0.1, eps: float = 1e-5):
        self.scale = nnx.Param(jnp.ones((features,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((features,), jnp.float32))
        self.mean = nnx.BatchStat(jnp.zeros((features,), jnp.float32))
        self.var = nnx.BatchStat(jnp.ones((features,), jnp.float32))
        self.momentum, self.eps = momentum, eps

    def __call__(self, x: jax.Array, use_batch_stats: bool) -> jax.Array:
        return self.standardize(x, use_batch_stats) * self.scale[...] + self.bias[...]

    def standardize(self, x: jax.Array, use_batch_stats: bool) -> jax.Array:
        """(x - mean) / sqrt(var + eps), with the batch's statistics (moving the running ones) or
        the running ones; the affine part is the caller's."""
        if use_batch_stats:
            axes = tuple(range(x.ndim - 1))
            mean = x.mean(axis=axes)
            var = jnp.mean(jnp.square(x - mean), axis=axes)
            n = math.prod(x.shape[:-1])
            m = self.momentum
            # Running statistics are state, not a path for gradients.
            self.mean[...] = jax.lax.stop_gradient((1 - m) * self.mean[...] + m * mean)
            self.var[...] = jax.lax.stop_gradient((1 - m) * self.var[...] + m * var * n / max(n - 1, 1))
        else:
            mean, var = self.mean[...], self.var[...]
        return (x - mean) * jax.lax.rsqrt(var + self.eps)


def given_labels(labels: jax.Array | None) -> jax.Array:
    """A conditional network's ``labels=`` (int (N,)); a ValueError when the caller gave none."""
    if labels is None:
        raise ValueError("a conditional network needs labels= (the class of each row)")
    return labels


class ClassBatchNorm(TorchBatchNorm):
    """Class-conditional BatchNorm (de Vries et al., 2017; the generator of Miyato & Koyama, 2018):
    ``TorchBatchNorm``'s statistics, shared by every class, and a scale and bias per class, tables
    (n_classes, F) initialised to ones and zeros (BatchNorm's own initial affine), picked by each
    row's label. Called as ``norm(x, use_batch_stats, labels)``."""

    def __init__(self, features: int, n_classes: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__(features, momentum, eps)
        self.scale = nnx.Param(jnp.ones((n_classes, features), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((n_classes, features), jnp.float32))

    def __call__(self, x: jax.Array, use_batch_stats: bool, labels: jax.Array | None = None) -> jax.Array:
        if labels is None:
            raise ValueError("a class-conditional BatchNorm needs labels= (the class of each row)")
        shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
        scale = jnp.take(self.scale[...], labels, axis=0).reshape(shape)
        bias = jnp.take(self.bias[...], labels, axis=0).reshape(shape)
        return self.standardize(x, use_batch_stats) * scale + bias


class Projection(nnx.Module):
    """The projection discriminator's class term (Miyato & Koyama, 2018): <embed(y), phi(x)>, added
    to D's output, ``phi`` being the features D's output layer reads. The embedding (n_classes, F)
    is initialised as that layer's weight (``init`` with fan-in F)."""

    def __init__(self, n_classes: int, features: int, *, init: str = "torch", rngs: nnx.Rngs):
        self.embed = nnx.Param(initializer(init, features, False)(rngs.params(), (n_classes, features)))

    def __call__(self, phi: jax.Array, labels: jax.Array) -> jax.Array:
        return jnp.sum(jnp.take(self.embed[...], labels, axis=0) * phi, axis=-1)


def conv2d_as_matmul(x: jax.Array, w: jax.Array, compute_dtype: str) -> jax.Array:
    """Conv2d(k5, s2, p2) on NHWC as im2col: the 25 taps of each output pixel side by side,
    (N, H/2, W/2, 25 C_in), times the kernel (25 C_in, C_out). Equal to the XLA convolution up
    to float rounding (``tests/test_dcgan.py``)."""
    n, h, wd, c = x.shape
    ho, wo = (h - 1) // STRIDE + 1, (wd - 1) // STRIDE + 1  # (h + 2p - k) // s + 1, as torch
    xp = jnp.pad(x, ((0, 0), (PADDING, PADDING), (PADDING, PADDING), (0, 0)))
    taps = [xp[:, i:i + STRIDE * ho:STRIDE, j:j + STRIDE * wo:STRIDE, :]
            for i in range(KERNEL) for j in range(KERNEL)]
    return matmul(jnp.concatenate(taps, axis=-1), w.reshape(KERNEL * KERNEL * c, -1), compute_dtype)


def _transpose_taps() -> np.ndarray:
    """ConvTranspose2d(k5, s2, p2, op1) writes output row 2a + r from input rows a + e, e in
    {-1, 0, 1}, through kernel row k = r + 2 - 2e (when 0 <= k < 5): taps[r, e + 1] = k or -1."""
    taps = np.full((STRIDE, 3), -1)
    for r in range(STRIDE):
        for e in (-1, 0, 1):
            k = r + PADDING - STRIDE * e
            if 0 <= k < KERNEL:
                taps[r, e + 1] = k
    return taps


TRANSPOSE_TAPS = _transpose_taps()


def conv_transpose2d_as_matmul(x: jax.Array, w: jax.Array, compute_dtype: str) -> jax.Array:
    """ConvTranspose2d(k5, s2, p2, op1) on NHWC ((h, w) -> (2h, 2w)) without dilation: each output
    2x2 block depends on the 3x3 input neighbourhood of one pixel, so the 9 neighbours side by side,
    (N, h, w, 9 C_in), times a (9 C_in, 4 C_out) matrix gathered from the kernel (zeros where a
    phase skips a tap: 36 products per 25 useful), then the 4 phases interleaved. ``w`` is
    (5, 5, C_in, C_out), torch's weight permuted (not flipped)."""
    n, h, wd, c = x.shape
    c_out = w.shape[-1]
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    patches = jnp.concatenate([xp[:, i:i + h, j:j + wd, :] for i in range(3) for j in range(3)], axis=-1)
    taps = TRANSPOSE_TAPS
    rows = np.broadcast_to(taps[:, :, None, None], (2, 3, 2, 3))  # [r, e, c, f] -> kernel row
    cols = np.broadcast_to(taps[None, None, :, :], (2, 3, 2, 3))  # [r, e, c, f] -> kernel column
    used = (rows >= 0) & (cols >= 0)
    big = w[np.where(used, rows, 0), np.where(used, cols, 0)] * used[..., None, None]
    big = big.transpose(1, 3, 4, 0, 2, 5).reshape(9 * c, 4 * c_out)  # (e, f, C_in) x (r, c, C_out)
    y = matmul(patches, big, compute_dtype).reshape(n, h, wd, STRIDE, STRIDE, c_out)
    return y.transpose(0, 1, 3, 2, 4, 5).reshape(n, STRIDE * h, STRIDE * wd, c_out)


def _check_conv_impl(conv_impl: str) -> None:
    if conv_impl not in CONV_IMPLS:
        raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}")


class TorchConv2d(nnx.Module):
    """``torch.nn.Conv2d(in, out, 5, stride=2, padding=2)`` on NHWC; kernel (5, 5, in, out)."""

    def __init__(self, c_in: int, c_out: int, *, init: str = "torch", compute_dtype: str = "float32",
                 conv_impl: str = "lax", rngs: nnx.Rngs):
        _check_conv_impl(conv_impl)
        fan_in = c_in * KERNEL * KERNEL
        self.kernel = nnx.Param(initializer(init, fan_in, False)(rngs.params(), (KERNEL, KERNEL, c_in, c_out)))
        self.bias = nnx.Param(initializer(init, fan_in, True)(rngs.params(), (c_out,)))
        self.compute_dtype, self.conv_impl = compute_dtype, conv_impl

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.conv_impl == "matmul":
            return conv2d_as_matmul(x, self.kernel[...], self.compute_dtype) + self.bias[...]
        x, w, kw = operands(x, self.kernel[...], self.compute_dtype)
        y = jax.lax.conv_general_dilated(x, w, (STRIDE, STRIDE), ((PADDING, PADDING),) * 2,
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"), **kw)
        return y + self.bias[...]


class TorchConvTranspose2d(nnx.Module):
    """``torch.nn.ConvTranspose2d(in, out, 5, stride=2, padding=2, output_padding=1)`` on NHWC
    (s -> 2s); kernel (5, 5, in, out) = torch's (in, out, 5, 5) weight permuted.

    The transposed convolution is the gradient of a strided convolution: a stride-1 convolution
    of the input dilated by 2, padded by k-1-p before and k-1-p+output_padding after, with the
    kernel flipped in space. PyTorch's default init takes fan_in from the weight's dim 1, which
    for ConvTranspose2d is the *output* channels: bound 1/sqrt(out * 25)."""

    def __init__(self, c_in: int, c_out: int, *, init: str = "torch", compute_dtype: str = "float32",
                 conv_impl: str = "lax", rngs: nnx.Rngs):
        _check_conv_impl(conv_impl)
        fan_in = c_out * KERNEL * KERNEL
        self.kernel = nnx.Param(initializer(init, fan_in, False)(rngs.params(), (KERNEL, KERNEL, c_in, c_out)))
        self.bias = nnx.Param(initializer(init, fan_in, True)(rngs.params(), (c_out,)))
        self.compute_dtype, self.conv_impl = compute_dtype, conv_impl

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.conv_impl == "matmul":
            return conv_transpose2d_as_matmul(x, self.kernel[...], self.compute_dtype) + self.bias[...]
        x, w, kw = operands(x, self.kernel[...][::-1, ::-1], self.compute_dtype)
        lo = KERNEL - 1 - PADDING
        y = jax.lax.conv_general_dilated(x, w, (1, 1), ((lo, lo + OUTPUT_PADDING),) * 2,
                                         lhs_dilation=(STRIDE, STRIDE),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"), **kw)
        return y + self.bias[...]


# -- modules as pure functions -------------------------------------------------------------------
def pure(state: nnx.State) -> Params:
    """An nnx.State as plain nested dicts of arrays."""
    # nnx.to_pure_dict is the current spelling; older Flax releases only have the method.
    return nnx.to_pure_dict(state) if hasattr(nnx, "to_pure_dict") else state.to_pure_dict()


def split(module: nnx.Module) -> tuple[nnx.GraphDef, Params, Params]:
    """Module -> (static graph, parameters, BatchNorm statistics) as plain nested dicts."""
    graph, params, stats = nnx.split(module, nnx.Param, nnx.BatchStat)
    return graph, pure(params), pure(stats)


def apply(graph: nnx.GraphDef, params: Params, stats: Params, *args, **kwargs) -> tuple[Any, Params]:
    """A pure forward pass: the module rebuilt from its parts, called, and its BatchNorm statistics
    after the call (moved when it ran in training mode, as a torch module in train mode moves them)."""
    module = nnx.merge(graph, params, stats)
    return module(*args, **kwargs), pure(nnx.state(module, nnx.BatchStat))


def count_params(params: Params) -> int:
    """Number of scalars in a parameter tree."""
    return sum(int(p.size) for p in jax.tree_util.tree_leaves(params))
