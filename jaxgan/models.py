"""The original GAN's networks in Flax NNX, layer for layer the PyTorch reference's (gan/gan.py).

Generator:     [Linear -> BatchNorm1d -> ReLU] x 4 (128, 256, 512, 1024) -> Linear -> Tanh
Discriminator: [Linear -> LeakyReLU(0.2) -> Dropout(0.3)] x 3 (512, 256, 128) -> Linear
               (the reference's final Sigmoid is folded into the losses; see ``losses.probability``)

With ``n_classes`` (``--conditional``), the PyTorch cGAN recipe (Mirza & Osindero, 2014, as
PyTorch-GAN's ``cgan.py`` builds it): a label embedding ``nn.Embedding(n_classes, n_classes)``
concatenated before z for G, and after the flattened image for D; the layers are otherwise the
reference's. Both are then called with ``labels=`` (int (N,)).

Images travel flattened in the reference's (C, H, W) order, so weights copy one-to-one from
``torch.nn.Linear`` (transposed). Every network in jaxgan has the same two call signatures,
``G(z, use_batch_stats)`` and ``D(x, use_batch_stats, dropout_key)``, and runs as a pure function
through ``layers.apply``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from jaxgan.layers import TorchBatchNorm, TorchEmbedding, TorchLinear, given_labels


class Generator(nnx.Module):
    """Noise (N, latent_dim) -> flat images (N, C*H*W) in [-1, 1]. The reference's widths are
    ``--g_hidden``'s default (128, 256, 512, 1024); D's are ``--d_hidden``'s (512, 256, 128)."""

    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int], hidden: tuple[int, ...], *,
                 compute_dtype: str = "float32", n_classes: int = 0, rngs: nnx.Rngs):
        sizes = (latent_dim + n_classes,) + tuple(hidden)
        self.linears = nnx.List([TorchLinear(a, b, compute_dtype=compute_dtype, rngs=rngs)
                                 for a, b in zip(sizes[:-1], sizes[1:])])
        self.norms = nnx.List([TorchBatchNorm(b) for b in hidden])
        self.out = TorchLinear(sizes[-1], math.prod(image_shape), compute_dtype=compute_dtype, rngs=rngs)
        self.n_classes = n_classes
        if n_classes:
            self.embed = TorchEmbedding(n_classes, n_classes, rngs=rngs)

    def __call__(self, z: jax.Array, use_batch_stats: bool = True, labels: jax.Array | None = None) -> jax.Array:
        h = z if not self.n_classes else jnp.concatenate([self.embed(given_labels(labels)), z], axis=-1)
        for linear, norm in zip(self.linears, self.norms):
            h = jax.nn.relu(norm(linear(h), use_batch_stats))
        return jnp.tanh(self.out(h))


class Discriminator(nnx.Module):
    """Flat images (N, C*H*W) -> logits (N,). ``dropout_key=None`` turns dropout off. It has no
    batch statistics: each image is scored on its own (``use_batch_stats`` changes nothing)."""

    def __init__(self, image_shape: tuple[int, int, int], hidden: tuple[int, ...], dropout: float = 0.3,
                 *, compute_dtype: str = "float32", n_classes: int = 0, rngs: nnx.Rngs):
        sizes = (math.prod(image_shape) + n_classes,) + tuple(hidden)
        self.linears = nnx.List([TorchLinear(a, b, compute_dtype=compute_dtype, rngs=rngs)
                                 for a, b in zip(sizes[:-1], sizes[1:])])
        self.out = TorchLinear(sizes[-1], 1, compute_dtype=compute_dtype, rngs=rngs)
        self.rate = dropout
        self.n_classes = n_classes
        if n_classes:
            self.embed = TorchEmbedding(n_classes, n_classes, rngs=rngs)

    def __call__(self, x: jax.Array, use_batch_stats: bool = True, dropout_key: jax.Array | None = None,
                 labels: jax.Array | None = None) -> jax.Array:
        h = x if not self.n_classes else jnp.concatenate([x, self.embed(given_labels(labels))], axis=-1)
        keys = jax.random.split(dropout_key, len(self.linears)) if dropout_key is not None else None
        for i, linear in enumerate(self.linears):
            h = jax.nn.leaky_relu(linear(h), 0.2)
            if keys is not None and self.rate > 0:
                keep = jax.random.bernoulli(keys[i], 1.0 - self.rate, h.shape)
                h = jnp.where(keep, h / (1.0 - self.rate), 0.0)
        return self.out(h)[:, 0]
