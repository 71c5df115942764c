"""DCGAN's networks in Flax NNX, layer for layer the PyTorch references' ``dcgan/dcgan.py`` (also
``wgan/wgan.py``'s, which are the same networks; WGAN's critic drops the final Sigmoid).

Generator:     Linear -> (c0, s/16, s/16) -> BatchNorm2d -> 3 x [ConvTranspose2d(k5, s2, p2, op1)
               -> BatchNorm2d -> ReLU] -> ConvTranspose2d(k5, s2, p2, op1) -> Tanh
Discriminator: Conv2d(k5, s2, p2) -> LeakyReLU(0.2) -> 3 x [Conv2d -> BatchNorm2d -> LeakyReLU(0.2)]
               -> Flatten (torch's C, H, W order) -> Linear -> one raw output per image

Images enter and leave flat in torch's (C, H, W) order, shape (N, C*H*W), like the MLP's; inside,
activations are NHWC and kernels HWIO, the layouts XLA's convolutions prefer. Each convolution
is computed one of two ways (``conv_impl``, the same mathematics): "lax", XLA's convolution ops,
or "matmul", patches times a kernel matrix (``jaxgan.layers``). XLA's CPU backend runs the
convolutions' gradients slowly and, inside a compiled loop, 10-60x more slowly still, while it
runs dots well everywhere; ``--conv_impl auto`` picks matmul on CPU (``resolve_conv_impl``).

Conditional (``n_classes``, ``--conditional``), two ways (``conditioning``, ``--conv_cond``), both
then called with ``labels=``:
- "planes" (the default, chosen by the measurement in docs/quality.md): the one-hot label
  concatenated to z, and as ``n_classes`` constant planes to D's input channels; BatchNorm
  unconditional, no projection.
- "projection", the choice of Miyato & Koyama (2018, "cGANs with Projection Discriminator"), also
  StudioGAN's: G's every BatchNorm class-conditional (``layers.ClassBatchNorm``: shared statistics,
  a scale and bias per class), and D's output plus the projection <embed(y), phi(x)> of the
  flattened features its output layer reads (``layers.Projection``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxgan.layers import (COMPUTE_DTYPES, INITS, ClassBatchNorm, Projection, TorchBatchNorm, TorchConv2d,
                           TorchConvTranspose2d, TorchLinear, given_labels)

G_HIDDEN = (1024, 512, 256, 128)  # the references' generator widths, from the first (deepest) layer
D_HIDDEN = (128, 256, 512, 1024)  # the references' discriminator widths, from the first layer


CONDITIONINGS = ("planes", "projection")  # --conv_cond, the default first


def label_planes(h: jax.Array, labels: jax.Array | None, n_classes: int) -> jax.Array:
    """NHWC images with each row's one-hot label appended as ``n_classes`` constant planes (torch's
    ``cat([x, planes], dim=1)``: the image's channels first)."""
    planes = jax.nn.one_hot(given_labels(labels), n_classes, dtype=h.dtype)[:, None, None, :]
    return jnp.concatenate([h, jnp.broadcast_to(planes, h.shape[:3] + (n_classes,))], axis=-1)


def resolve_conditioning(n_classes: int, conditioning: str) -> str:
    """"" (unconditional), "projection" or "planes"."""
    if conditioning not in CONDITIONINGS:
        raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}")
    return conditioning if n_classes else ""


def d_input(d: nnx.Module, x: jax.Array, labels: jax.Array | None) -> jax.Array:
    """A conv D's flat images (N, C*H*W) as NHWC, with the label planes appended when it conditions
    on them."""
    h = x.reshape(x.shape[0], *d.image_shape).transpose(0, 2, 3, 1)
    return label_planes(h, labels, d.n_classes) if d.conditioning == "planes" else h


def d_in_channels(image_shape: tuple[int, int, int], n_classes: int, conditioning: str) -> int:
    """What a conv D's first convolution reads: the image's channels, plus the label planes."""
    return image_shape[0] + (n_classes if resolve_conditioning(n_classes, conditioning) == "planes" else 0)


def resolve_conv_impl(name: str) -> str:
    """A ``--conv_impl`` value with auto resolved for the backend JAX runs on: matmul on CPU
    (XLA:CPU's convolution gradients are slow, and many times slower inside a compiled loop), lax
    elsewhere."""
    if name != "auto":
        return name
    return "matmul" if jax.default_backend() == "cpu" else "lax"


def first_map(image_shape: tuple[int, int, int], hidden: tuple[int, ...]) -> int:
    """The side of the first feature map, s/16 (four stride-2 layers); ValueError for a shape or
    widths the architecture cannot make."""
    c, h, w = image_shape
    if h != w or h % 16 or h < 16:
        raise ValueError(f"DCGAN needs square images whose size is a multiple of 16, got {h}x{w}")
    if len(hidden) != 4 or min(hidden) < 1:
        raise ValueError(f"DCGAN needs 4 positive channel widths, got {tuple(hidden)}")
    return h // 16


def _check(init: str, compute_dtype: str) -> None:
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be one of {COMPUTE_DTYPES}, got {compute_dtype!r}")


class Generator(nnx.Module):
    """Noise (N, latent_dim) -> flat images (N, C*H*W) in [-1, 1], torch's (C, H, W) order.
    ``init``: "dcgan" (dcgan/train.py's init_weight) or "torch" (wgan/train.py: PyTorch default)."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], hidden: tuple[int, ...] = G_HIDDEN, *,
                 init: str, compute_dtype: str = "float32", conv_impl: str = "lax", n_classes: int = 0,
                 conditioning: str = "planes", rngs: nnx.Rngs):
        q = first_map(image_shape, hidden)
        _check(init, compute_dtype)
        self.image_shape, self.hidden, self.q = tuple(image_shape), tuple(hidden), q
        self.n_classes, self.conditioning = n_classes, resolve_conditioning(n_classes, conditioning)
        planes = self.conditioning == "planes"
        opts = dict(init=init, compute_dtype=compute_dtype)
        self.fc = TorchLinear(latent_dim + (n_classes if planes else 0), hidden[0] * q * q, **opts, rngs=rngs)
        self.norms = nnx.List([ClassBatchNorm(c, n_classes) if self.conditioning == "projection" else TorchBatchNorm(c)
                               for c in hidden])
        widths = tuple(hidden) + (image_shape[0],)
        self.deconvs = nnx.List([TorchConvTranspose2d(a, b, **opts, conv_impl=conv_impl, rngs=rngs)
                                 for a, b in zip(widths[:-1], widths[1:])])

    def __call__(self, z: jax.Array, use_batch_stats: bool = True, labels: jax.Array | None = None) -> jax.Array:
        n = z.shape[0]
        cond = {"labels": labels} if self.conditioning == "projection" else {}  # a ClassBatchNorm's
        if self.conditioning == "planes":
            z = jnp.concatenate([z, jax.nn.one_hot(given_labels(labels), self.n_classes, dtype=z.dtype)], axis=-1)
        # torch's view(-1, c0, q, q) is (C, H, W) order; then to NHWC.
        h = self.fc(z).reshape(n, self.hidden[0], self.q, self.q).transpose(0, 2, 3, 1)
        h = self.norms[0](h, use_batch_stats, **cond)
        for deconv, norm in zip(self.deconvs[:-1], self.norms[1:]):
            h = jax.nn.relu(norm(deconv(h), use_batch_stats, **cond))
        h = jnp.tanh(self.deconvs[-1](h))
        return h.transpose(0, 3, 1, 2).reshape(n, -1)


class Discriminator(nnx.Module):
    """Flat images (N, C*H*W) in torch's (C, H, W) order -> one raw output per image, (N,): the
    DCGAN discriminator's logit (its Sigmoid lives in the loss) or the WGAN critic's score. It has
    BatchNorm: real and fake batches go through it in separate passes. ``dropout_key`` is unused
    (the networks share one signature)."""

    def __init__(self, image_shape: tuple[int, int, int], hidden: tuple[int, ...] = D_HIDDEN, *,
                 init: str, compute_dtype: str = "float32", conv_impl: str = "lax", n_classes: int = 0,
                 conditioning: str = "planes", rngs: nnx.Rngs):
        q = first_map(image_shape, hidden)
        _check(init, compute_dtype)
        self.image_shape = tuple(image_shape)
        self.n_classes, self.conditioning = n_classes, resolve_conditioning(n_classes, conditioning)
        opts = dict(init=init, compute_dtype=compute_dtype)
        widths = (d_in_channels(image_shape, n_classes, conditioning),) + tuple(hidden)
        self.convs = nnx.List([TorchConv2d(a, b, **opts, conv_impl=conv_impl, rngs=rngs)
                               for a, b in zip(widths[:-1], widths[1:])])
        self.norms = nnx.List([TorchBatchNorm(c) for c in hidden[1:]])
        self.out = TorchLinear(hidden[-1] * q * q, 1, **opts, rngs=rngs)
        if self.conditioning == "projection":
            self.project = Projection(n_classes, hidden[-1] * q * q, init=init, rngs=rngs)

    def __call__(self, x: jax.Array, use_batch_stats: bool = True, dropout_key: jax.Array | None = None,
                 labels: jax.Array | None = None) -> jax.Array:
        n = x.shape[0]
        h = jax.nn.leaky_relu(self.convs[0](d_input(self, x, labels)), 0.2)
        for conv, norm in zip(self.convs[1:], self.norms):
            h = jax.nn.leaky_relu(norm(conv(h), use_batch_stats), 0.2)
        # nn.Flatten on (N, C, H, W): back to channel-major before the Linear.
        return project(self, h.transpose(0, 3, 1, 2).reshape(n, -1), labels)


def project(d: nnx.Module, phi: jax.Array, labels: jax.Array | None) -> jax.Array:
    """A conv D's raw output from its flattened features ``phi``: its output layer, plus a
    projection D's class term (``d.project``) for ``labels``."""
    out = d.out(phi)[:, 0]
    if d.conditioning != "projection":
        return out
    return out + d.project(phi, given_labels(labels))
