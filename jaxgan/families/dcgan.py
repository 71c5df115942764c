"""DCGAN (Radford et al., 2016) as dcgan/train.py trains it: the convolutional G and D of
``jaxgan.convnets`` with its ``init_weight`` (N(0, 0.02) weights, zero biases), BCE losses with
D's Sigmoid folded in, Adam(2e-4, (0.5, 0.999)), batch 128, 200 epochs, on 32x32 images (MNIST and
FashionMNIST through torchvision's Resize(32), as the reference prepares them)."""

from __future__ import annotations

from flax import nnx

from jaxgan import convnets, losses, optim
from jaxgan.config import ConfigError
from jaxgan.families import Family

IMAGE_SIZE = 32  # dcgan/train.py's image_size for all three datasets


def check_widths(cfg) -> None:
    """The conv families' networks take 4 channel widths each, and square images whose side is a
    multiple of 16 (the first feature map is side/16)."""
    _, h, _ = cfg.image_shape
    if h % 16 or h < 16:
        raise ConfigError(f"--image_size {h}: --model {cfg.model} makes images whose side is a multiple of 16 "
                          "(16, 32, 64, 128, ...); choose one of those, or --model mlp (any size)")
    for name, ref in (("g_hidden", convnets.G_HIDDEN), ("d_hidden", convnets.D_HIDDEN)):
        if len(getattr(cfg, name)) != 4:
            raise ConfigError(f"--{name} needs exactly 4 channel widths for --model {cfg.model} "
                              f"(the reference's: {','.join(map(str, ref))}), got "
                              f"{','.join(map(str, getattr(cfg, name)))}")


def conv_networks(cfg, g_key, d_key, init: str, d_cls=convnets.Discriminator):
    """The DCGAN-shaped G and D (``d_cls``: another critic on the same conv stack) of a run."""
    conv = convnets.resolve_conv_impl(cfg.conv_impl)
    g = convnets.Generator(cfg.latent_dim, cfg.image_shape, cfg.g_hidden, init=init, compute_dtype=cfg.matmul_dtype,
                           conv_impl=conv, n_classes=cfg.num_classes, conditioning=cfg.conv_cond,
                           rngs=nnx.Rngs(g_key))
    d = d_cls(cfg.image_shape, cfg.d_hidden, init=init, compute_dtype=cfg.matmul_dtype, conv_impl=conv,
              n_classes=cfg.num_classes, conditioning=cfg.conv_cond, rngs=nnx.Rngs(d_key))
    return g, d


class DCGAN(Family):
    name = "dcgan"
    help = "DCGAN's convolutional G and D, BCE losses, Adam (dcgan/)"
    defaults = {"batch_size": 128, "num_epochs": 200, "g_hidden": convnets.G_HIDDEN, "d_hidden": convnets.D_HIDDEN}
    options = frozenset({"loss", "conv_impl", "conv_cond"})
    conditional = True  # label planes or a projection D (--conv_cond; convnets)

    def check(self, cfg):
        check_widths(cfg)

    def image_size(self, native, requested=0):
        return requested or IMAGE_SIZE

    def networks(self, cfg, g_key, d_key):
        return conv_networks(cfg, g_key, d_key, init="dcgan")

    def optimizer(self, cfg, lr, beta1, beta2):
        return optim.adam(lr, beta1, beta2)

    def d_loss(self, real_out, fake_out, cfg):
        return losses.bce_d_loss(real_out, fake_out)

    def g_loss(self, fake_out, cfg):
        return losses.bce_g_loss(fake_out, cfg.loss)


FAMILY = DCGAN()
