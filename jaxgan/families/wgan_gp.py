"""WGAN-GP (Gulrajani et al., 2017, "Improved Training of Wasserstein GANs"): WGAN's critic and
generator losses with a gradient penalty in place of weight clipping.

- G: DCGAN's generator (``jaxgan.convnets.Generator``, BatchNorm included, as the paper's DCGAN
  architecture keeps it in G).
- The critic: DCGAN's convolutional stack *without* BatchNorm or any other normalisation (the
  penalty is per example, and batch normalisation would couple the examples), Conv2d(k5, s2, p2)
  -> LeakyReLU(0.2) four times, then Linear to one raw score.
- Critic loss: E D(G(z)) - E D(x) + lambda E[(||grad D(x_hat)||_2 - 1)^2], x_hat = eps x + (1 - eps) G(z),
  eps ~ U[0, 1) per example, lambda = 10 (the paper's). The eps come from
  ``fold_in(step key, steps.PENALTY_STREAM)``: no other family's random numbers move.
- G loss: -E D(G(z)). Adam(1e-4, betas (0, 0.9)) for both, n_critic 5, as Algorithm 1.
- PyTorch's default initialisation (as wgan/), no clipping, reported every ``interval`` generator
  iterations like WGAN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxgan import convnets, layers, optim
from jaxgan.families import Family
from jaxgan.families.dcgan import conv_networks
from jaxgan.families.wgan import WGAN

GP_WEIGHT = 10.0  # the paper's lambda


class Critic(nnx.Module):
    """Flat images (N, C*H*W) in torch's (C, H, W) order -> one raw score per image, (N,): DCGAN's
    discriminator without BatchNorm. It has no batch statistics (``use_batch_stats`` and
    ``dropout_key`` change nothing; the networks share one signature)."""

    def __init__(self, image_shape: tuple[int, int, int], hidden: tuple[int, ...] = convnets.D_HIDDEN, *,
                 init: str, compute_dtype: str = "float32", conv_impl: str = "lax", n_classes: int = 0,
                 conditioning: str = "planes", rngs: nnx.Rngs):
        q = convnets.first_map(image_shape, hidden)
        self.image_shape = tuple(image_shape)
        self.n_classes, self.conditioning = n_classes, convnets.resolve_conditioning(n_classes, conditioning)
        widths = (convnets.d_in_channels(image_shape, n_classes, conditioning),) + tuple(hidden)
        self.convs = nnx.List([layers.TorchConv2d(a, b, init=init, compute_dtype=compute_dtype, conv_impl=conv_impl,
                                                  rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])
        self.out = layers.TorchLinear(hidden[-1] * q * q, 1, init=init, compute_dtype=compute_dtype, rngs=rngs)
        if self.conditioning == "projection":  # --conditional --conv_cond projection (convnets)
            self.project = layers.Projection(n_classes, hidden[-1] * q * q, init=init, rngs=rngs)

    def __call__(self, x: jax.Array, use_batch_stats: bool = True, dropout_key: jax.Array | None = None,
                 labels: jax.Array | None = None) -> jax.Array:
        n = x.shape[0]
        h = convnets.d_input(self, x, labels)
        for conv in self.convs:
            h = jax.nn.leaky_relu(conv(h), 0.2)
        return convnets.project(self, h.transpose(0, 3, 1, 2).reshape(n, -1), labels)


def gradient_penalty(critic, real: jax.Array, fake: jax.Array, key: jax.Array) -> jax.Array:
    """E[(||grad_x D(x_hat)||_2 - 1)^2] at x_hat = eps x + (1 - eps) G(z), one eps ~ U[0, 1) per
    example from ``key``; the norm is over each example's whole image. Differentiable in the
    critic's parameters (the paper's double backward)."""
    eps = jax.random.uniform(key, (real.shape[0], 1), real.dtype)
    x_hat = eps * real + (1.0 - eps) * fake
    grads = jax.grad(lambda x: jnp.sum(critic(x)))(x_hat)
    norms = jnp.sqrt(jnp.sum(jnp.square(grads), axis=1))
    return jnp.mean(jnp.square(norms - 1.0))


class WGANGP(WGAN):
    """WGAN's critic and generator losses, generator-iteration periods, checks and image size; its
    own critic, optimiser and penalty in place of clipping."""

    name = "wgan_gp"
    help = ("WGAN with a gradient penalty (Gulrajani et al., 2017): DCGAN's G, the conv critic without "
            "normalisation, lambda 10, Adam(1e-4, (0, 0.9)), n_critic 5")
    defaults = {"lr": 0.0001, "beta1": 0.0, "beta2": 0.9, "batch_size": 64, "d_steps": 5, "interval": 1000,
                "last_batch": "drop", "g_hidden": convnets.G_HIDDEN, "d_hidden": convnets.D_HIDDEN}
    options = frozenset({"conv_impl", "conv_cond"})
    full_batches_why = "as WGAN"

    def networks(self, cfg, g_key, d_key):
        return conv_networks(cfg, g_key, d_key, init="torch", d_cls=Critic)

    def optimizer(self, cfg, lr, beta1, beta2):
        return optim.adam(lr, beta1, beta2)

    def d_penalty(self, critic, real, fake, key, cfg):
        return GP_WEIGHT * gradient_penalty(critic, real, fake, key)

    after_d_update = Family.after_d_update  # the penalty replaces WGAN's clipping


FAMILY = WGANGP()
