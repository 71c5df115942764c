"""The families' objectives, as pure functions of D's raw outputs (no networks, no state).

The BCE pair folds D's final Sigmoid in (``log sigmoid(l) = -softplus(-l)``): equal to the
references' ``BCELoss`` wherever that loss is finite, and never ``inf``. Shared by the image
families and the 1-D toy (``jaxgan.gan1d``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def probability(logits: jax.Array) -> jax.Array:
    """D's output as the references report it: sigmoid of the logit, in (0, 1)."""
    return jax.nn.sigmoid(logits)


def bce_d_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
    """L_D = -E log D(x) - E log(1 - D(G(z))), each term a batch mean, as BCE(real)+BCE(fake)."""
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def bce_g_loss(fake_logits: jax.Array, kind: str = "nonsaturating") -> jax.Array:
    """Non-saturating L_G = -E log D(G(z)) (the references), or minimax L_G = E log(1 - D(G(z)))
    (the paper's value function)."""
    if kind == "minimax":
        return jnp.mean(-jax.nn.softplus(fake_logits))
    return jnp.mean(jax.nn.softplus(-fake_logits))


def wasserstein_critic_loss(real_out: jax.Array, fake_out: jax.Array) -> jax.Array:
    """The critic minimises E D(G(z)) - E D(x) (wgan/train.py: ``(fake_score - real_score).mean()``,
    equal since both batches have the same size)."""
    return jnp.mean(fake_out) - jnp.mean(real_out)


def wasserstein_g_loss(fake_out: jax.Array) -> jax.Array:
    """G minimises -E D(G(z))."""
    return -jnp.mean(fake_out)

