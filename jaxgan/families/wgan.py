"""WGAN (Arjovsky et al., 2017) as wgan/train.py trains it: DCGAN's networks with PyTorch's default
initialisation, the critic without a Sigmoid, critic loss E D(G(z)) - E D(x) and G loss -E D(G(z)),
RMSprop(5e-5), every critic parameter clamped to +-clip_limit after each critic step, n_critic 5
critic steps (each on the next full batch) per G step, and reports every ``interval`` generator
iterations."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxgan import convnets, losses, optim
from jaxgan.config import ConfigError
from jaxgan.families import Family
from jaxgan.families.dcgan import IMAGE_SIZE, check_widths, conv_networks


def clip_params(params, limit: float):
    """Every critic parameter, BatchNorm's scale and bias included (torch's ``D.parameters()``),
    clamped to [-limit, limit]; running statistics are buffers and are not clipped."""
    return jax.tree_util.tree_map(lambda p: jnp.clip(p, -limit, limit), params)


class WGAN(Family):
    name = "wgan"
    help = "the same networks as a weight-clipped WGAN critic and generator, RMSprop (wgan/)"
    # wgan/train.py: RMSprop(5e-5), batch 64, 100,000 generator iterations of 5 critic steps, a grid
    # every 1,000 generator iterations; its batch generator skips each epoch's short batch.
    defaults = {"lr": 0.00005, "batch_size": 64, "d_steps": 5, "interval": 1000, "last_batch": "drop",
                "g_hidden": convnets.G_HIDDEN, "d_hidden": convnets.D_HIDDEN}
    options = frozenset({"clip_limit", "conv_impl", "conv_cond"})
    critic = True
    conditional = True  # label planes or a projection critic (--conv_cond; convnets)
    full_batches_why = "the reference skips each epoch's short last batch"

    @property
    def periods(self):
        from jaxgan.schedule import GENERATOR_ITERATIONS

        return GENERATOR_ITERATIONS

    def check(self, cfg):
        check_widths(cfg)
        if cfg.last_batch != "drop":
            raise ConfigError(f"--model {cfg.model} trains on full batches only ({self.full_batches_why}); "
                              "--last_batch partial does not apply")
        if cfg.loss != "nonsaturating":
            raise ConfigError(f"--loss applies to the BCE models (mlp, dcgan); {cfg.model}'s losses are the critic's")

    def image_size(self, native, requested=0):
        return requested or IMAGE_SIZE

    def networks(self, cfg, g_key, d_key):
        # wgan/train.py applies no init_weight: PyTorch's defaults.
        return conv_networks(cfg, g_key, d_key, init="torch")

    def optimizer(self, cfg, lr, beta1, beta2):
        return optim.rmsprop(lr)

    def d_loss(self, real_out, fake_out, cfg):
        return losses.wasserstein_critic_loss(real_out, fake_out)

    def g_loss(self, fake_out, cfg):
        return losses.wasserstein_g_loss(fake_out)

    def after_d_update(self, d_params, cfg):
        return clip_params(d_params, cfg.clip_limit)


FAMILY = WGAN()
