"""The PyTorch reference's DCGAN and WGAN, reproduced, and WGAN-GP: models, initialisation,
training iterations.

Written for jaxgan as the baseline it is measured and tested against, from the reference's
``dcgan/dcgan.py``, ``dcgan/train.py``, ``wgan/wgan.py`` and ``wgan/train.py``:

- The modules keep the reference's attribute names (``fc``/``convs`` in G, ``model`` in D), so at the
  reference widths their ``state_dict`` keys and shapes are the reference checkpoints'. The channel
  widths are arguments only so that tests and CPU runs can shrink them.
- DCGAN: ``init_weight`` (N(0, 0.02) weights, zero biases on Linear/Conv2d/ConvTranspose2d; BatchNorm
  keeps PyTorch's weight 1, bias 0), Adam(2e-4, betas (0.5, 0.999)), BCE on separate real and fake
  passes through D, then a G update scored by the updated D; G and D always in training mode.
- WGAN: PyTorch's default initialisation (the script applies none), RMSprop(5e-5) with PyTorch's
  defaults, ``n_critic`` critic steps of E D(G(z)) - E D(x) each followed by clamping every critic
  parameter (BatchNorm's weight and bias included) to +-clip, then one G step of -E D(G(z)).
- Noise is ``torch.rand`` (U[0, 1)) in both scripts.
- WGAN-GP (Gulrajani et al., 2017; not in the reference, written from the paper's Algorithm 1):
  DCGAN's G, a critic without BatchNorm (``Critic``), Adam(1e-4, betas (0, 0.9)), ``n_critic``
  critic steps of E D(G(z)) - E D(x) + lambda E[(||grad D(x_hat)||_2 - 1)^2] with autograd's double
  backward (``create_graph=True``), then one G step of -E D(G(z)).

The reference's ``wgan/train.py`` cannot start: it builds ``Generator(num_channels=C,
latent_dim=...)`` and ``Discriminator(num_channels=C)`` without the required ``image_size``
(TypeError). What it evidently means, and what is done here, is the DCGAN script's
``image_size = 32`` for MNIST, FashionMNIST and CIFAR-10.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from jaxgan.convnets import D_HIDDEN, G_HIDDEN  # the references' widths, declared once


class Generator(nn.Module):
    """Linear -> (c0, s/16, s/16) -> BatchNorm2d -> 3 x [ConvTranspose2d -> BatchNorm2d -> ReLU]
    -> ConvTranspose2d -> Tanh; every ConvTranspose2d is (k5, s2, p2, output_padding 1)."""

    def __init__(self, num_channels: int, image_size: int, latent_dim: int, hidden=G_HIDDEN):
        super().__init__()
        if image_size % 16 != 0:
            raise ValueError("The image size must be a multiple of 16!")
        self.image_size, self.c0 = image_size, hidden[0]
        q = image_size // 16
        self.fc = nn.Linear(latent_dim, hidden[0] * q * q)
        layers: list[nn.Module] = [nn.BatchNorm2d(hidden[0])]
        widths = tuple(hidden) + (num_channels,)
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.ConvTranspose2d(a, b, kernel_size=5, stride=2, padding=2, output_padding=1))
            layers += [nn.BatchNorm2d(b), nn.ReLU()] if i < 3 else [nn.Tanh()]
        self.convs = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        q = self.image_size // 16
        return self.convs(self.fc(z).view(-1, self.c0, q, q))


class Discriminator(nn.Module):
    """Conv2d -> LeakyReLU(0.2) -> 3 x [Conv2d -> BatchNorm2d -> LeakyReLU(0.2)] -> Flatten ->
    Linear -> Sigmoid (DCGAN) or no Sigmoid (``sigmoid=False``: WGAN's critic); convs (k5, s2, p2)."""

    def __init__(self, num_channels: int, image_size: int, hidden=D_HIDDEN, sigmoid: bool = True):
        super().__init__()
        layers: list[nn.Module] = []
        widths = (num_channels,) + tuple(hidden)
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Conv2d(a, b, kernel_size=5, stride=2, padding=2))
            if i > 0:
                layers.append(nn.BatchNorm2d(b))
            layers.append(nn.LeakyReLU(0.2))
        layers += [nn.Flatten(), nn.Linear(hidden[-1] * (image_size // 16) ** 2, 1)]
        if sigmoid:
            layers.append(nn.Sigmoid())
        self.model = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


class Critic(nn.Module):
    """WGAN-GP's critic: DCGAN's discriminator without BatchNorm (the penalty is per example),
    4 x [Conv2d(k5, s2, p2) -> LeakyReLU(0.2)] -> Flatten -> Linear, no Sigmoid."""

    def __init__(self, num_channels: int, image_size: int, hidden=D_HIDDEN):
        super().__init__()
        layers: list[nn.Module] = []
        widths = (num_channels,) + tuple(hidden)
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(a, b, kernel_size=5, stride=2, padding=2), nn.LeakyReLU(0.2)]
        layers += [nn.Flatten(), nn.Linear(hidden[-1] * (image_size // 16) ** 2, 1)]
        self.model = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


def init_weight(module: nn.Module) -> None:
    """dcgan/train.py's initialisation, applied with ``G.apply(init_weight)``."""
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, mean=0, std=0.02)
        nn.init.constant_(module.bias, 0)


def dcgan_optimizers(G: nn.Module, D: nn.Module, lr=0.0002, beta1=0.5, beta2=0.999, **options):
    """Adam(2e-4, betas (0.5, 0.999)) for G and D; ``options`` (e.g. foreach, fused) only change
    how torch computes the same update (the benchmarks' fast rows)."""
    return (torch.optim.Adam(G.parameters(), lr=lr, betas=(beta1, beta2), **options),
            torch.optim.Adam(D.parameters(), lr=lr, betas=(beta1, beta2), **options))


def wgan_optimizers(G: nn.Module, D: nn.Module, lr=0.00005, **options):
    return (torch.optim.RMSprop(G.parameters(), lr=lr, **options),
            torch.optim.RMSprop(D.parameters(), lr=lr, **options))


def wgan_gp_optimizers(G: nn.Module, D: nn.Module, lr=0.0001, betas=(0.0, 0.9), **options):
    """Algorithm 1's Adam(1e-4, betas (0, 0.9)) for G and the critic."""
    return (torch.optim.Adam(G.parameters(), lr=lr, betas=betas, **options),
            torch.optim.Adam(D.parameters(), lr=lr, betas=betas, **options))


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """E[(||grad_x D(x_hat)||_2 - 1)^2] at x_hat = eps real + (1 - eps) fake (``eps``: one per
    example, shape (N,)), the gradient kept in the graph (``create_graph``) so that the penalty's own
    gradient in D's parameters is the double backward."""
    e = eps.reshape(-1, *([1] * (real.dim() - 1)))
    x_hat = (e * real + (1 - e) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1) ** 2).mean()


def wgan_gp_iteration(G, D, opt_g, opt_d, batches: Sequence[torch.Tensor], zs_d: Sequence[torch.Tensor],
                      epss: Sequence[torch.Tensor], z_g: torch.Tensor, n_critic: int, lam: float = 10.0):
    """One generator iteration of WGAN-GP's Algorithm 1: ``n_critic`` critic steps (batch
    ``batches[i]``, noise ``zs_d[i]``, interpolation weights ``epss[i]``), each minimising
    E D(G(z)) - E D(x) + lam * penalty, then one G step of -E D(G(z)). Returns (the critic losses,
    penalty included, one per step; g_loss)."""
    d_losses = []
    for i in range(n_critic):
        fake = G(zs_d[i]).detach()
        d_loss = D(fake).mean() - D(batches[i]).mean() + lam * gradient_penalty(D, batches[i], fake, epss[i])
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        d_losses.append(d_loss.detach())
    g_loss = (-D(G(z_g))).mean()
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_losses, g_loss.detach()


def dcgan_iteration(G, D, opt_g, opt_d, images: torch.Tensor, z_d: torch.Tensor, z_g: torch.Tensor):
    """One iteration of dcgan/train.py's loop on (N, C, H, W) images; returns (d_loss, g_loss).
    As there, the fakes are not detached in the D update: G's gradients from it are discarded by
    ``opt_g.zero_grad()`` before the G update, so only G's BatchNorm statistics are affected."""
    criterion = nn.BCELoss()
    m = images.size(0)
    real_labels = torch.ones(m, 1, dtype=images.dtype, device=images.device)
    fake_labels = torch.zeros(m, 1, dtype=images.dtype, device=images.device)

    d_loss_real = criterion(D(images), real_labels)
    d_loss_fake = criterion(D(G(z_d)), fake_labels)
    d_loss = d_loss_real + d_loss_fake
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()

    g_loss = criterion(D(G(z_g)), real_labels)
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_loss.detach(), g_loss.detach()


def wgan_iteration(G, D, opt_g, opt_d, batches: Sequence[torch.Tensor], zs_d: Sequence[torch.Tensor],
                   z_g: torch.Tensor, n_critic: int, clip: float):
    """One generator iteration of wgan/train.py: ``n_critic`` critic steps (batch ``batches[i]``,
    noise ``zs_d[i]``), each followed by clamping D's parameters, then one G step. Returns
    (mean critic loss over the n_critic steps, g_loss), the values the reference logs."""
    total_d_loss = 0.0
    for i in range(n_critic):
        real_score = D(batches[i])
        fake_score = D(G(zs_d[i]))
        d_loss = (fake_score - real_score).mean()
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        total_d_loss += d_loss.detach()
        with torch.no_grad():
            for p in D.parameters():
                p.clamp_(min=-clip, max=clip)
    g_loss = (-D(G(z_g))).mean()
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return total_d_loss / n_critic, g_loss.detach()


def full_batches_forever(loader) -> Iterator[torch.Tensor]:
    """wgan/train.py's ``generate``: image batches endlessly, a new (reshuffled) epoch whenever
    one ends, the short last batch of each epoch skipped."""
    while True:
        for images, _ in loader:
            if loader.batch_size != len(images):
                break
            yield images


# -- weights into jaxgan's parameter trees (numpy; no jax here) -------------------------------
def _bn(m: nn.BatchNorm2d, a) -> tuple[dict, dict]:
    return ({"scale": a(m.weight), "bias": a(m.bias)}, {"mean": a(m.running_mean), "var": a(m.running_var)})


def _as(dtype):
    return lambda t: t.detach().cpu().numpy().astype(dtype)


def generator_to_jaxgan(G: Generator, dtype=np.float32) -> tuple[dict, dict]:
    """(params, stats) trees of ``jaxgan.convnets.Generator`` holding G's weights; ConvTranspose2d
    weights (in, out, kh, kw) become kernels (kh, kw, in, out), not flipped."""
    a = _as(dtype)
    deconvs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    norms = [_bn(m, a) for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    params = {"fc": {"kernel": a(G.fc.weight).T.copy(), "bias": a(G.fc.bias)},
              "norms": {i: p for i, (p, _) in enumerate(norms)},
              "deconvs": {i: {"kernel": a(m.weight).transpose(2, 3, 0, 1).copy(), "bias": a(m.bias)}
                          for i, m in enumerate(deconvs)}}
    return params, {"norms": {i: s for i, (_, s) in enumerate(norms)}}


def discriminator_to_jaxgan(D: Discriminator, dtype=np.float32) -> tuple[dict, dict]:
    """(params, stats) trees of ``jaxgan.convnets.Discriminator`` holding D's weights; Conv2d
    weights (out, in, kh, kw) become kernels (kh, kw, in, out)."""
    a = _as(dtype)
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    norms = [_bn(m, a) for m in D.modules() if isinstance(m, nn.BatchNorm2d)]
    out = [m for m in D.modules() if isinstance(m, nn.Linear)][-1]
    params = {"convs": {i: {"kernel": a(m.weight).transpose(2, 3, 1, 0).copy(), "bias": a(m.bias)}
                        for i, m in enumerate(convs)},
              "norms": {i: p for i, (p, _) in enumerate(norms)},
              "out": {"kernel": a(out.weight).T.copy(), "bias": a(out.bias)}}
    return params, {"norms": {i: s for i, (_, s) in enumerate(norms)}}


def critic_to_jaxgan(D: Critic, dtype=np.float32) -> tuple[dict, dict]:
    """(params, stats) trees of ``jaxgan.families.wgan_gp.Critic`` holding the critic's weights
    (it has no statistics)."""
    a = _as(dtype)
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    out = [m for m in D.modules() if isinstance(m, nn.Linear)][-1]
    params = {"convs": {i: {"kernel": a(m.weight).transpose(2, 3, 1, 0).copy(), "bias": a(m.bias)}
                        for i, m in enumerate(convs)},
              "out": {"kernel": a(out.weight).T.copy(), "bias": a(out.bias)}}
    return params, {}
