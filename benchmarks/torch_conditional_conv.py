"""The conditional conv GANs' PyTorch ports (issue 20), on ``benchmarks.torch_dcgan``'s layers:
Miyato & Koyama (2018), class-conditional BatchNorm in G and a projection discriminator
(``--conv_cond projection``); and the one-hot label beside z for G and as constant planes beside
the image's channels for D (``--conv_cond planes``, the default, chosen by the measurement in
docs/quality.md). The weight copies into jaxgan's trees come with each."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmarks.torch_dcgan import G_HIDDEN, Generator, _as, critic_to_jaxgan, discriminator_to_jaxgan, generator_to_jaxgan


# -- conditional conv GANs (issue 20): Miyato & Koyama (2018), class-conditional BatchNorm in G and
# a projection discriminator, on the reference's layers ---------------------------------------------
class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm2d's statistics without its affine, then a scale and a bias per class (embeddings
    initialised to ones and zeros, BatchNorm's own initial affine)."""

    def __init__(self, features: int, n_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(features, affine=False)
        self.scale = nn.Embedding(n_classes, features)
        self.bias = nn.Embedding(n_classes, features)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.bn(x) * self.scale(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]


class ConditionalGenerator(nn.Module):
    """``Generator`` with every BatchNorm2d class-conditional (``ConditionalBatchNorm2d``)."""

    def __init__(self, num_channels: int, image_size: int, latent_dim: int, n_classes: int = 10, hidden=G_HIDDEN):
        super().__init__()
        self.image_size, self.c0 = image_size, hidden[0]
        q = image_size // 16
        self.fc = nn.Linear(latent_dim, hidden[0] * q * q)
        widths = tuple(hidden) + (num_channels,)
        self.norms = nn.ModuleList([ConditionalBatchNorm2d(c, n_classes) for c in hidden])
        self.deconvs = nn.ModuleList([nn.ConvTranspose2d(a, b, kernel_size=5, stride=2, padding=2, output_padding=1)
                                      for a, b in zip(widths[:-1], widths[1:])])

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        q = self.image_size // 16
        h = self.norms[0](self.fc(z).view(-1, self.c0, q, q), labels)
        for deconv, norm in zip(self.deconvs[:-1], self.norms[1:]):
            h = torch.relu(norm(deconv(h), labels))
        return torch.tanh(self.deconvs[-1](h))


class ProjectionDiscriminator(nn.Module):
    """A ``Discriminator(sigmoid=False)`` or ``Critic`` (``body``) whose output gains the projection
    <embed(y), phi(x)>, phi the flattened features its final Linear reads; ``sigmoid``: DCGAN's."""

    def __init__(self, body: nn.Module, n_classes: int = 10, sigmoid: bool = True):
        super().__init__()
        self.body, self.sigmoid = body, sigmoid
        out = body.model[-1]
        self.embed = nn.Embedding(n_classes, out.in_features)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        phi = self.body.model[:-1](images)
        out = self.body.model[-1](phi) + (self.embed(labels) * phi).sum(1, keepdim=True)
        return torch.sigmoid(out) if self.sigmoid else out


def conditional_dcgan_iteration(G, D, opt_g, opt_d, images: torch.Tensor, labels: torch.Tensor,
                                z_d: torch.Tensor, y_d: torch.Tensor, z_g: torch.Tensor, y_g: torch.Tensor):
    """``dcgan_iteration`` of the conditional networks: D scores each real image with its label and
    each fake with the class it was drawn for; then G's step on (z_g, y_g), scored by the new D."""
    criterion = nn.BCELoss()
    ones = torch.ones(images.size(0), 1, dtype=images.dtype)
    d_loss = criterion(D(images, labels), ones) + criterion(D(G(z_d, y_d), y_d), torch.zeros_like(ones))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = criterion(D(G(z_g, y_g), y_g), ones)
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_loss.detach(), g_loss.detach()


def conditional_generator_to_jaxgan(G: ConditionalGenerator, dtype=np.float32) -> tuple[dict, dict]:
    """(params, stats) of ``jaxgan.convnets.Generator(n_classes=...)`` holding G's weights."""
    a = _as(dtype)
    params = {"fc": {"kernel": a(G.fc.weight).T.copy(), "bias": a(G.fc.bias)},
              "norms": {i: {"scale": a(m.scale.weight), "bias": a(m.bias.weight)} for i, m in enumerate(G.norms)},
              "deconvs": {i: {"kernel": a(m.weight).transpose(2, 3, 0, 1).copy(), "bias": a(m.bias)}
                          for i, m in enumerate(G.deconvs)}}
    stats = {"norms": {i: {"mean": a(m.bn.running_mean), "var": a(m.bn.running_var)} for i, m in enumerate(G.norms)}}
    return params, stats


def projection_to_jaxgan(D: ProjectionDiscriminator, dtype=np.float32) -> tuple[dict, dict]:
    """(params, stats) of a conditional ``convnets.Discriminator`` or ``wgan_gp.Critic``."""
    body = discriminator_to_jaxgan if any(isinstance(m, nn.BatchNorm2d) for m in D.body.modules()) else critic_to_jaxgan
    params, stats = body(D.body, dtype)
    return {**params, "project": {"embed": _as(dtype)(D.embed.weight)}}, stats


# -- the conditioning it was measured against, and chosen by (docs/quality.md): the one-hot label
# beside z for G, and as constant planes beside the image's channels for D ----------------------------
def one_hot(labels: torch.Tensor, n_classes: int, dtype: torch.dtype) -> torch.Tensor:
    return nn.functional.one_hot(labels, n_classes).to(dtype)


class PlanesGenerator(nn.Module):
    """A ``Generator`` of ``latent_dim + n_classes`` inputs, given z with the one-hot label after it."""

    def __init__(self, num_channels: int, image_size: int, latent_dim: int, n_classes: int = 10, hidden=G_HIDDEN):
        super().__init__()
        self.n_classes = n_classes
        self.body = Generator(num_channels, image_size, latent_dim + n_classes, hidden)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.body(torch.cat([z, one_hot(labels, self.n_classes, z.dtype)], 1))


class PlanesDiscriminator(nn.Module):
    """A ``Discriminator`` or ``Critic`` (``body``, built for the image's channels + ``n_classes``)
    given the image with ``n_classes`` constant planes after its channels: 1 in its class's plane,
    0 in the others."""

    def __init__(self, body: nn.Module, n_classes: int = 10):
        super().__init__()
        self.body, self.n_classes = body, n_classes

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        planes = one_hot(labels, self.n_classes, images.dtype)[:, :, None, None].expand(n, self.n_classes, h, w)
        return self.body(torch.cat([images, planes], 1))


def planes_generator_to_jaxgan(G: PlanesGenerator, dtype=np.float32) -> tuple[dict, dict]:
    """(params, stats) of ``convnets.Generator(n_classes=..., conditioning="planes")``: its body's."""
    return generator_to_jaxgan(G.body, dtype)


def planes_discriminator_to_jaxgan(D: PlanesDiscriminator, dtype=np.float32) -> tuple[dict, dict]:
    """(params, stats) of a planes ``convnets.Discriminator`` or ``wgan_gp.Critic``: its body's."""
    body = discriminator_to_jaxgan if any(isinstance(m, nn.BatchNorm2d) for m in D.body.modules()) else critic_to_jaxgan
    return body(D.body, dtype)
