"""The PyTorch original's behaviour, reproduced: models, data pipeline and training loop.

Written for jaxgan as the baseline it is measured and tested against: the same layers, default
initialisation, BCE losses, Adam settings, U[0, 1) noise, alternating D-then-G updates with G and
D always in training mode, and the same DataLoader (4 workers, per-image ToTensor + Normalize,
shuffle, drop_last=False). The tests import the models from here to prove jaxgan's parity.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch import nn


class Discriminator(nn.Module):
    """[Linear -> LeakyReLU(0.2) -> Dropout(p)] x 3 -> Linear -> Sigmoid, on flattened images."""

    def __init__(self, image_shape: tuple[int, int, int], hidden=(512, 256, 128), dropout: float = 0.3):
        super().__init__()
        layers: list[nn.Module] = []
        width = math.prod(image_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            width = h
        self.model = nn.Sequential(*layers, nn.Linear(width, 1), nn.Sigmoid())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.reshape(images.size(0), -1))


class Generator(nn.Module):
    """[Linear -> BatchNorm1d -> ReLU] x 4 -> Linear -> Tanh, reshaped to (C, H, W)."""

    def __init__(self, image_shape: tuple[int, int, int], latent_dim: int, hidden=(128, 256, 512, 1024)):
        super().__init__()
        self.image_shape = tuple(image_shape)
        layers: list[nn.Module] = []
        width = latent_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU()]
            width = h
        self.model = nn.Sequential(*layers, nn.Linear(width, math.prod(image_shape)), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z).view(-1, *self.image_shape)


def linear_layers(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def batchnorm_layers(module: nn.Module) -> list[nn.BatchNorm1d]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm1d)]


def make_optimizers(G: nn.Module, D: nn.Module, lr=0.0002, beta1=0.5, beta2=0.999):
    return (torch.optim.Adam(G.parameters(), lr=lr, betas=(beta1, beta2)),
            torch.optim.Adam(D.parameters(), lr=lr, betas=(beta1, beta2)))


def train_iteration(G, D, opt_G, opt_D, images: torch.Tensor, latent_dim: int,
                    z_d: torch.Tensor | None = None, z_g: torch.Tensor | None = None):
    """One iteration of the reference loop: a D update, then a G update scored by the new D.
    ``z_d``/``z_g`` may be given (the parity tests do); otherwise drawn with ``torch.rand``."""
    criterion = nn.BCELoss()
    m = images.size(0)
    images = images.reshape(m, -1)
    real_labels = torch.ones(m, 1, device=images.device, dtype=images.dtype)
    fake_labels = torch.zeros(m, 1, device=images.device, dtype=images.dtype)

    d_loss_real = criterion(D(images), real_labels)
    z = torch.rand(m, latent_dim, device=images.device) if z_d is None else z_d
    fake = G(z).detach()
    d_loss_fake = criterion(D(fake), fake_labels)
    d_loss = d_loss_real + d_loss_fake
    opt_D.zero_grad()
    d_loss.backward()
    opt_D.step()

    z = torch.rand(m, latent_dim, device=images.device) if z_g is None else z_g
    g_loss = criterion(D(G(z)), real_labels)
    opt_G.zero_grad()
    g_loss.backward()
    opt_G.step()
    return d_loss.detach(), g_loss.detach()


def reference_loader(dataset, batch_size: int, num_workers: int = 4, **kwargs):
    """The reference's DataLoader: shuffle, ``num_workers`` workers, last batch kept."""
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                       num_workers=num_workers, **kwargs)


def reference_transform(channels: int):
    """``ToTensor()`` then ``Normalize(0.5, 0.5)`` per channel, as the reference builds it."""
    from torchvision import transforms

    return transforms.Compose([transforms.ToTensor(),
                               transforms.Normalize(mean=(0.5,) * channels, std=(0.5,) * channels)])


def cycle(loader) -> Iterator:
    """Batches forever, starting a new (reshuffled) epoch whenever one ends."""
    while True:
        yield from loader
