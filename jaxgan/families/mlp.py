"""The original GAN (Goodfellow et al., 2014) as the PyTorch reference trains it (gan/): MLP G and
D (``jaxgan.models``), BCE losses with D's Sigmoid folded in, Adam(2e-4, (0.5, 0.999)), one epoch
per reporting period. Its outputs keep the reference's layout, ``<dir>/<dataset>``."""

from __future__ import annotations

from flax import nnx

from jaxgan import losses, models, optim
from jaxgan.families import Family


class MLP(Family):
    name = "mlp"
    help = "the original GAN's MLPs (reference gan/)"
    options = frozenset({"loss", "d_dropout"})
    own_folder = False
    conditional = True

    def networks(self, cfg, g_key, d_key):
        g = models.Generator(cfg.latent_dim, cfg.image_shape, cfg.g_hidden, compute_dtype=cfg.matmul_dtype,
                             n_classes=cfg.num_classes, rngs=nnx.Rngs(g_key))
        d = models.Discriminator(cfg.image_shape, cfg.d_hidden, cfg.d_dropout, compute_dtype=cfg.matmul_dtype,
                                 n_classes=cfg.num_classes, rngs=nnx.Rngs(d_key))
        return g, d

    def optimizer(self, cfg, lr, beta1, beta2):
        return optim.adam(lr, beta1, beta2)

    def d_loss(self, real_out, fake_out, cfg):
        return losses.bce_d_loss(real_out, fake_out)

    def g_loss(self, fake_out, cfg):
        return losses.bce_g_loss(fake_out, cfg.loss)


FAMILY = MLP()
