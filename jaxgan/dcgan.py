"""Flax NNX DCGAN generator and discriminator (also WGAN's critic), layer for layer the PyTorch
reference's ``dcgan/dcgan.py`` and ``wgan/wgan.py``, plus WGAN's loss, clipping and RMSprop.

Generator:     Linear -> (c0, s/16, s/16) -> BatchNorm2d -> 3 x [ConvTranspose2d(k5, s2, p2, op1)
               -> BatchNorm2d -> ReLU] -> ConvTranspose2d(k5, s2, p2, op1) -> Tanh
Discriminator: Conv2d(k5, s2, p2) -> LeakyReLU(0.2) -> 3 x [Conv2d -> BatchNorm2d -> LeakyReLU(0.2)]
               -> Flatten (torch's C, H, W order) -> Linear -> one raw output per image
               (DCGAN's Sigmoid is folded into the BCE losses as for the MLP; WGAN's critic has none)

Images enter and leave flat in torch's (C, H, W) order, shape (N, C*H*W), like the MLP's; inside,
activations are NHWC and kernels HWIO, the layouts XLA's convolutions prefer. Kernels are stored
as torch's weights permuted, never flipped (``benchmarks/torch_dcgan.py`` does the copy):
Conv2d (out, in, kh, kw) -> (kh, kw, in, out); ConvTranspose2d (in, out, kh, kw) -> (kh, kw, in, out).
As for the MLP, the modules are split once (``split``) and merged inside pure functions.

Each convolution is computed one of two ways (``conv_impl``, the same mathematics): "lax", XLA's
convolution ops, or "matmul", patches times a kernel matrix. XLA's CPU backend runs the
convolutions' gradients slowly and, inside ``lax.scan``, 10-60x more slowly still, while it runs
dots well everywhere; ``--conv_impl auto`` (the trainer's default) picks matmul on CPU.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxgan.models import Params, count_params, split  # noqa: F401  (part of this module's API)

KERNEL, STRIDE, PADDING, OUTPUT_PADDING = 5, 2, 2, 1
G_HIDDEN = (1024, 512, 256, 128)  # the reference's generator widths
D_HIDDEN = (128, 256, 512, 1024)  # the reference's discriminator widths
COMPUTE_DTYPES = ("float32", "tf32", "bfloat16")
INITS = ("dcgan", "torch")
# How a convolution is computed (the same mathematics, other rounding): "lax" as XLA convolutions,
# "matmul" as patches times a kernel matrix (one dot per layer; XLA's CPU backend runs these many
# times faster than its convolutions, whose gradients are slowest inside lax.scan).
CONV_IMPLS = ("lax", "matmul")
# dcgan/train.py applies its init_weight; wgan/train.py applies none (PyTorch's defaults).
REFERENCE_INIT = {"dcgan": "dcgan", "wgan": "torch"}


# -- initialisation --------------------------------------------------------------------------
def _init(rule: str, fan_in: int, is_bias: bool):
    """dcgan: ``init_weight``'s N(0, 0.02) weights and zero biases. torch: PyTorch's default for
    Linear/Conv2d/ConvTranspose2d, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias alike
    (kaiming_uniform(a=sqrt(5)) has that bound)."""
    if rule == "dcgan":
        if is_bias:
            return lambda key, shape: jnp.zeros(shape, jnp.float32)
        return lambda key, shape: 0.02 * jax.random.normal(key, shape, jnp.float32)
    bound = 1.0 / math.sqrt(fan_in)
    return lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def _operands(x: jax.Array, w: jax.Array, compute_dtype: str) -> tuple[jax.Array, jax.Array, dict]:
    # float32: true float32 products (GPUs would otherwise use TF32 for convolutions and matmuls);
    # tf32: the backend's default precision; bfloat16: bf16 operands, float32 accumulation.
    if compute_dtype == "bfloat16":
        return x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), {"preferred_element_type": jnp.float32}
    precision = jax.lax.Precision.HIGHEST if compute_dtype == "float32" else jax.lax.Precision.DEFAULT
    return x, w, {"precision": precision}


def _matmul(x: jax.Array, w: jax.Array, compute_dtype: str) -> jax.Array:
    x, w, kw = _operands(x, w, compute_dtype)
    return jnp.matmul(x, w, **kw)


def conv2d_as_matmul(x: jax.Array, w: jax.Array, compute_dtype: str) -> jax.Array:
    """Conv2d(k5, s2, p2) on NHWC as im2col: the 25 taps of each output pixel side by side,
    (N, H/2, W/2, 25 C_in), times the kernel (25 C_in, C_out). Equal to the XLA convolution up
    to float rounding (``tests/test_dcgan.py``)."""
    n, h, wd, c = x.shape
    ho, wo = (h - 1) // STRIDE + 1, (wd - 1) // STRIDE + 1  # (h + 2p - k) // s + 1, as torch
    xp = jnp.pad(x, ((0, 0), (PADDING, PADDING), (PADDING, PADDING), (0, 0)))
    taps = [xp[:, i:i + STRIDE * ho:STRIDE, j:j + STRIDE * wo:STRIDE, :]
            for i in range(KERNEL) for j in range(KERNEL)]
    return _matmul(jnp.concatenate(taps, axis=-1), w.reshape(KERNEL * KERNEL * c, -1), compute_dtype)


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
    """ConvTranspose2d(k5, s2, p2, op1) on NHWC ((h, w) -> (2h, 2w)) without dilation: each output 2x2 block
    depends on the 3x3 input neighbourhood of one pixel, so the 9 neighbours side by side,
    (N, s, s, 9 C_in), times a (9 C_in, 4 C_out) matrix gathered from the kernel (zeros where a
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
    y = _matmul(patches, big, compute_dtype).reshape(n, h, wd, STRIDE, STRIDE, c_out)
    return y.transpose(0, 1, 3, 2, 4, 5).reshape(n, STRIDE * h, STRIDE * wd, c_out)


# -- layers ----------------------------------------------------------------------------------
class TorchLinear(nnx.Module):
    """``torch.nn.Linear``; kernel (in, out) = torch's weight transposed."""

    def __init__(self, fan_in: int, fan_out: int, init: str, compute_dtype: str, rngs: nnx.Rngs):
        self.kernel = nnx.Param(_init(init, fan_in, False)(rngs.params(), (fan_in, fan_out)))
        self.bias = nnx.Param(_init(init, fan_in, True)(rngs.params(), (fan_out,)))
        self.compute_dtype = compute_dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        x, w, kw = _operands(x, self.kernel[...], self.compute_dtype)
        return jnp.matmul(x, w, **kw) + self.bias[...]


class TorchConv2d(nnx.Module):
    """``torch.nn.Conv2d(in, out, 5, stride=2, padding=2)`` on NHWC; kernel (5, 5, in, out)."""

    def __init__(self, c_in: int, c_out: int, init: str, compute_dtype: str, rngs: nnx.Rngs,
                 conv_impl: str = "lax"):
        fan_in = c_in * KERNEL * KERNEL
        self.kernel = nnx.Param(_init(init, fan_in, False)(rngs.params(), (KERNEL, KERNEL, c_in, c_out)))
        self.bias = nnx.Param(_init(init, fan_in, True)(rngs.params(), (c_out,)))
        self.compute_dtype, self.conv_impl = compute_dtype, conv_impl

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.conv_impl == "matmul":
            return conv2d_as_matmul(x, self.kernel[...], self.compute_dtype) + self.bias[...]
        x, w, kw = _operands(x, self.kernel[...], self.compute_dtype)
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

    def __init__(self, c_in: int, c_out: int, init: str, compute_dtype: str, rngs: nnx.Rngs,
                 conv_impl: str = "lax"):
        fan_in = c_out * KERNEL * KERNEL
        self.kernel = nnx.Param(_init(init, fan_in, False)(rngs.params(), (KERNEL, KERNEL, c_in, c_out)))
        self.bias = nnx.Param(_init(init, fan_in, True)(rngs.params(), (c_out,)))
        self.compute_dtype, self.conv_impl = compute_dtype, conv_impl

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.conv_impl == "matmul":
            return conv_transpose2d_as_matmul(x, self.kernel[...], self.compute_dtype) + self.bias[...]
        x, w, kw = _operands(x, self.kernel[...][::-1, ::-1], self.compute_dtype)
        lo = KERNEL - 1 - PADDING
        y = jax.lax.conv_general_dilated(x, w, (1, 1), ((lo, lo + OUTPUT_PADDING),) * 2,
                                         lhs_dilation=(STRIDE, STRIDE),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"), **kw)
        return y + self.bias[...]


class TorchBatchNorm2d(nnx.Module):
    """``torch.nn.BatchNorm2d`` on NHWC: per-channel statistics over (N, H, W), momentum 0.1,
    eps 1e-5, running variance updated with the *unbiased* batch variance. Always float32."""

    def __init__(self, features: int, momentum: float = 0.1, eps: float = 1e-5):
        self.scale = nnx.Param(jnp.ones((features,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((features,), jnp.float32))
        self.mean = nnx.BatchStat(jnp.zeros((features,), jnp.float32))
        self.var = nnx.BatchStat(jnp.ones((features,), jnp.float32))
        self.momentum, self.eps = momentum, eps

    def __call__(self, x: jax.Array, use_batch_stats: bool) -> jax.Array:
        if use_batch_stats:
            axes = tuple(range(x.ndim - 1))
            mean = x.mean(axis=axes)
            var = jnp.mean(jnp.square(x - mean), axis=axes)
            n = math.prod(x.shape[:-1])
            m = self.momentum
            self.mean[...] = jax.lax.stop_gradient((1 - m) * self.mean[...] + m * mean)
            self.var[...] = jax.lax.stop_gradient((1 - m) * self.var[...] + m * var * n / max(n - 1, 1))
        else:
            mean, var = self.mean[...], self.var[...]
        return (x - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]


# -- models ----------------------------------------------------------------------------------
def _check(image_shape: tuple[int, int, int], hidden: tuple[int, ...], init: str, compute_dtype: str,
           conv_impl: str) -> int:
    c, h, w = image_shape
    if h != w or h % 16 or h < 16:
        raise ValueError(f"DCGAN needs square images whose size is a multiple of 16, got {h}x{w}")
    if len(hidden) != 4 or min(hidden) < 1:
        raise ValueError(f"DCGAN needs 4 positive channel widths, got {tuple(hidden)}")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be one of {COMPUTE_DTYPES}, got {compute_dtype!r}")
    if conv_impl not in CONV_IMPLS:
        raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {conv_impl!r}")
    return h // 16


class Generator(nnx.Module):
    """Noise (N, latent_dim) -> flat images (N, C*H*W) in [-1, 1], torch's (C, H, W) order.
    ``init``: "dcgan" (dcgan/train.py's init_weight) or "torch" (wgan/train.py: PyTorch default)."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int],
                 hidden: tuple[int, ...] = G_HIDDEN, *, init: str, compute_dtype: str = "float32",
                 conv_impl: str = "lax", rngs: nnx.Rngs):
        q = _check(image_shape, hidden, init, compute_dtype, conv_impl)
        self.image_shape, self.hidden, self.q = tuple(image_shape), tuple(hidden), q
        self.fc = TorchLinear(latent_dim, hidden[0] * q * q, init, compute_dtype, rngs)
        self.norms = nnx.List([TorchBatchNorm2d(c) for c in hidden])
        widths = tuple(hidden) + (image_shape[0],)
        self.deconvs = nnx.List([TorchConvTranspose2d(a, b, init, compute_dtype, rngs, conv_impl)
                                 for a, b in zip(widths[:-1], widths[1:])])

    def __call__(self, z: jax.Array, use_batch_stats: bool = True) -> jax.Array:
        n = z.shape[0]
        # torch's view(-1, c0, q, q) is (C, H, W) order; then to NHWC.
        h = self.fc(z).reshape(n, self.hidden[0], self.q, self.q).transpose(0, 2, 3, 1)
        h = self.norms[0](h, use_batch_stats)
        for deconv, norm in zip(self.deconvs[:-1], self.norms[1:]):
            h = jax.nn.relu(norm(deconv(h), use_batch_stats))
        h = jnp.tanh(self.deconvs[-1](h))
        return h.transpose(0, 3, 1, 2).reshape(n, -1)


class Discriminator(nnx.Module):
    """Flat images (N, C*H*W) in torch's (C, H, W) order -> one raw output per image, (N,): the
    DCGAN discriminator's logit (its Sigmoid lives in the loss) or the WGAN critic's score."""

    def __init__(self, image_shape: tuple[int, int, int], hidden: tuple[int, ...] = D_HIDDEN, *,
                 init: str, compute_dtype: str = "float32", conv_impl: str = "lax", rngs: nnx.Rngs):
        q = _check(image_shape, hidden, init, compute_dtype, conv_impl)
        self.image_shape = tuple(image_shape)
        widths = (image_shape[0],) + tuple(hidden)
        self.convs = nnx.List([TorchConv2d(a, b, init, compute_dtype, rngs, conv_impl)
                               for a, b in zip(widths[:-1], widths[1:])])
        self.norms = nnx.List([TorchBatchNorm2d(c) for c in hidden[1:]])
        self.out = TorchLinear(hidden[-1] * q * q, 1, init, compute_dtype, rngs)

    def __call__(self, x: jax.Array, use_batch_stats: bool = True) -> jax.Array:
        n = x.shape[0]
        h = x.reshape(n, *self.image_shape).transpose(0, 2, 3, 1)
        h = jax.nn.leaky_relu(self.convs[0](h), 0.2)
        for conv, norm in zip(self.convs[1:], self.norms):
            h = jax.nn.leaky_relu(norm(conv(h), use_batch_stats), 0.2)
        # nn.Flatten on (N, C, H, W): back to channel-major before the Linear.
        return self.out(h.transpose(0, 3, 1, 2).reshape(n, -1))[:, 0]


# -- pure forward passes ---------------------------------------------------------------------
def _stats(module: nnx.Module) -> Params:
    state = nnx.state(module, nnx.BatchStat)
    return nnx.to_pure_dict(state) if hasattr(nnx, "to_pure_dict") else state.to_pure_dict()


def apply_generator(graph: nnx.GraphDef, params: Params, stats: Params, z: jax.Array,
                    use_batch_stats: bool = True) -> tuple[jax.Array, Params]:
    """Pure G forward: flat images (N, C*H*W) and G's BatchNorm statistics after the pass
    (moved when ``use_batch_stats``, as a torch module in train mode moves them)."""
    g = nnx.merge(graph, params, stats)
    return g(z, use_batch_stats), _stats(g)


def discriminator_logits(graph: nnx.GraphDef, params: Params, stats: Params, x: jax.Array,
                         use_batch_stats: bool = True) -> tuple[jax.Array, Params]:
    """Pure D forward on flat images: raw outputs (N,) and D's BatchNorm statistics after the
    pass. D has batch statistics: real and fake batches must go through in separate passes."""
    d = nnx.merge(graph, params, stats)
    return d(x, use_batch_stats), _stats(d)


# -- WGAN ------------------------------------------------------------------------------------
def wgan_critic_loss(real_out: jax.Array, fake_out: jax.Array) -> jax.Array:
    """The critic minimises E D(G(z)) - E D(x) (wgan/train.py: ``(fake_score - real_score).mean()``,
    equal since both batches have the same size)."""
    return jnp.mean(fake_out) - jnp.mean(real_out)


def wgan_generator_loss(fake_out: jax.Array) -> jax.Array:
    """G minimises -E D(G(z))."""
    return -jnp.mean(fake_out)


def clip_params(params: Params, limit: float) -> Params:
    """Every critic parameter, BatchNorm's scale and bias included (torch's ``D.parameters()``),
    clamped to [-limit, limit]; running statistics are buffers and are not clipped."""
    return jax.tree_util.tree_map(lambda p: jnp.clip(p, -limit, limit), params)


def rmsprop(lr: float) -> optax.GradientTransformation:
    """``torch.optim.RMSprop(params, lr)`` with its defaults: v = 0.99 v + 0.01 g^2 from v = 0,
    p -= lr * g / (sqrt(v) + 1e-8) (eps outside the root), no momentum, not centered.
    optax's own defaults differ (decay 0.9, eps inside the root)."""
    return optax.rmsprop(lr, decay=0.99, eps=1e-8, initial_scale=0.0, eps_in_sqrt=False,
                         centered=False, momentum=None, bias_correction=False)
