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


# -- conditional GANs (issue 20): PyTorch-GAN's cgan recipe on the reference's layers -----------------
class ConditionalGenerator(Generator):
    """The cGAN generator (Mirza & Osindero, 2014, as PyTorch-GAN's cgan.py builds it): a label
    embedding ``nn.Embedding(n_classes, n_classes)`` concatenated before z, then the reference's layers."""

    def __init__(self, image_shape, latent_dim: int, n_classes: int = 10, hidden=(128, 256, 512, 1024)):
        super().__init__(image_shape, latent_dim + n_classes, hidden)
        self.label_emb = nn.Embedding(n_classes, n_classes)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.cat([self.label_emb(labels), z], -1))


class ConditionalDiscriminator(Discriminator):
    """The cGAN discriminator: the flattened image, then the label embedding, into the reference's layers."""

    def __init__(self, image_shape, n_classes: int = 10, hidden=(512, 256, 128), dropout: float = 0.3):
        super().__init__((math.prod(image_shape) + n_classes,), hidden, dropout)
        self.label_embedding = nn.Embedding(n_classes, n_classes)

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([images.reshape(images.size(0), -1), self.label_embedding(labels)], -1))


def conditional_train_iteration(G, D, opt_G, opt_D, images: torch.Tensor, labels: torch.Tensor,
                                z_d: torch.Tensor, y_d: torch.Tensor, z_g: torch.Tensor, y_g: torch.Tensor):
    """``train_iteration`` of the cGAN: D scores each real image with its own label and each fake
    with the class it was drawn for (``y_d``); G is then updated on ``(z_g, y_g)``, scored by the new D."""
    criterion = nn.BCELoss()
    m = images.size(0)
    images = images.reshape(m, -1)
    ones = torch.ones(m, 1, dtype=images.dtype)
    d_loss = criterion(D(images, labels), ones) + criterion(D(G(z_d, y_d).detach(), y_d), torch.zeros_like(ones))
    opt_D.zero_grad()
    d_loss.backward()
    opt_D.step()
    g_loss = criterion(D(G(z_g, y_g), y_g), ones)
    opt_G.zero_grad()
    g_loss.backward()
    opt_G.step()
    return d_loss.detach(), g_loss.detach()

# -- the weights as jaxgan holds them ---------------------------------------------------------------
def torch_to_flax(G, D) -> tuple[dict, dict, dict]:
    """Copy the reference's PyTorch weights into jaxgan's parameter trees (kernel = weight.T): the
    tests' oracle and the benchmarks' shared starting point."""
    import numpy as np

    def f32(t):
        return t.detach().numpy().astype(np.float32)

    def lin(m):
        return {"kernel": f32(m.weight).T.copy(), "bias": f32(m.bias)}

    g_lin, g_bn = linear_layers(G), batchnorm_layers(G)
    g_params = {"linears": {i: lin(m) for i, m in enumerate(g_lin[:-1])},
                "norms": {i: {"scale": f32(m.weight), "bias": f32(m.bias)}
                          for i, m in enumerate(g_bn)},
                "out": lin(g_lin[-1])}
    g_stats = {"norms": {i: {"mean": f32(m.running_mean), "var": f32(m.running_var)}
                         for i, m in enumerate(g_bn)}}
    d_lin = linear_layers(D)
    d_params = {"linears": {i: lin(m) for i, m in enumerate(d_lin[:-1])}, "out": lin(d_lin[-1])}
    return g_params, g_stats, d_params


# -- the reference's training run as a whole process (benchmarks/startup.py times it) ----------------
SMOKE_IMAGES = 16


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.torch_reference --data_dir data --num_epochs 3``: the reference's run —
    its DataLoader, its loop, per epoch the mean losses logged to TensorBoard and a grid of
    G(fixed noise) saved (G stays in training mode, as the reference never calls ``eval``)."""
    import argparse
    import os
    import sys
    import time

    class Parser(argparse.ArgumentParser):
        def error(self, message: str):  # one line, exit 2
            print(f"{self.prog}: error: {message}", file=sys.stderr)
            sys.exit(2)

    p = Parser(prog="torch_reference.py", description="the PyTorch original's training run (MNIST)")
    p.add_argument("--data_dir", default="data", help="torchvision root (default data)")
    p.add_argument("--no-download", "--no_download", dest="download", action="store_false",
                   help="never download (default: download when missing)")
    p.add_argument("--num_epochs", type=int, default=100, help="epochs (default 100)")
    p.add_argument("--batch_size", type=int, default=64, help="mini-batch size (default 64)")
    p.add_argument("--latent_dim", type=int, default=100, help="noise dimension (default 100)")
    p.add_argument("--lr", type=float, default=0.0002, help="Adam learning rate (default 0.0002)")
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers (default 4)")
    p.add_argument("--interval", type=int, default=1, help="epochs between saved grids (default 1)")
    p.add_argument("--sample_dir", default="samples_torch", help="grids go here (default samples_torch)")
    p.add_argument("--logdir", default="runs_torch", help="TensorBoard events go here (default runs_torch)")
    p.add_argument("--seed", type=int, default=0, help="torch.manual_seed (default 0)")
    p.add_argument("--save_samples", type=int, default=0, metavar="N",
                   help="after training, save N samples as uint8 (N, 28, 28, 1) .npy for `jaxgan.evaluate "
                        "--samples` (default 0: none)")
    p.add_argument("--samples_out", default=None,
                   help="where --save_samples writes (default <sample_dir>/samples.npy)")
    p.add_argument("--bn", choices=("batch", "running"), default="batch",
                   help="G's BatchNorm for --save_samples: the drawn batch's statistics (the reference's "
                        "train mode, as its grids) or running averages (G.eval()) (default batch)")
    p.add_argument("--smoke", action="store_true", help=f"the docs' tiny-size override, not a figure: 1 epoch on "
                   f"the first {SMOKE_IMAGES} images, batch 8, no DataLoader workers")
    a = p.parse_args(argv)
    if a.smoke:
        a.num_epochs, a.batch_size, a.workers, a.interval = 1, min(a.batch_size, 8), 0, 1
    if a.save_samples < 0:
        p.error("--save_samples must be >= 0")
    if a.num_epochs < 1 or a.batch_size < 2 or a.workers < 0 or a.interval < 1:
        p.error("--num_epochs >= 1, --batch_size >= 2, --workers >= 0 and --interval >= 1 are required")

    from torchvision import datasets
    from torchvision.utils import save_image

    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # the same writer API without the tensorboard package
        from tensorboardX import SummaryWriter

    torch.manual_seed(a.seed)
    try:
        dataset = datasets.MNIST(root=a.data_dir, train=True, download=a.download,
                                 transform=reference_transform(1))
    except RuntimeError as e:
        p.error(str(e).splitlines()[0])
    if a.smoke:
        dataset = torch.utils.data.Subset(dataset, range(min(SMOKE_IMAGES, len(dataset))))
    loader = reference_loader(dataset, a.batch_size, num_workers=a.workers)
    G, D = Generator((1, 28, 28), a.latent_dim), Discriminator((1, 28, 28))
    opt_g, opt_d = make_optimizers(G, D, lr=a.lr)
    fixed_noise = torch.rand(64, a.latent_dim)
    os.makedirs(a.sample_dir, exist_ok=True)
    writer = SummaryWriter(os.path.join(a.logdir, "mnist"))
    for epoch in range(1, a.num_epochs + 1):
        t0, d_sum, g_sum, n = time.perf_counter(), 0.0, 0.0, 0
        for images, _ in loader:
            d_loss, g_loss = train_iteration(G, D, opt_g, opt_d, images, a.latent_dim)
            d_sum, g_sum, n = d_sum + d_loss, g_sum + g_loss, n + 1
        writer.add_scalar("Discriminator_Loss", float(d_sum / n), epoch)
        writer.add_scalar("Generator_Loss", float(g_sum / n), epoch)
        if epoch % a.interval == 0:
            fake = G(fixed_noise).detach() * 0.5 + 0.5
            save_image(fake, os.path.join(a.sample_dir, f"fake_images_{epoch}.png"), nrow=8)
            writer.add_image("Fake_Images", fake[:64].reshape(-1, 1, 28, 28)[0], epoch)
        seconds = time.perf_counter() - t0
        print(f"epoch {epoch}/{a.num_epochs}  D loss {float(d_sum / n):.4f}  G loss {float(g_sum / n):.4f}  "
              f"{len(dataset) / seconds:,.0f} img/s", flush=True)
    writer.close()
    if a.save_samples:
        out = a.samples_out or os.path.join(a.sample_dir, "samples.npy")
        save_samples(G, a.save_samples, a.latent_dim, a.batch_size, a.bn, out)
        print(f"wrote {a.save_samples} samples (--bn {a.bn}) to {out}", flush=True)
    return 0


def save_samples(G, n: int, latent_dim: int, batch_size: int, bn: str, path: str) -> None:
    """``n`` images of G as uint8 (N, 28, 28, 1), drawn in batches of the training size from the
    reference's noise (``torch.rand``) and rounded as ``save_image`` rounds (x * 255 + 0.5, clamped,
    as ``jaxgan.data.to_images`` does); written to a temporary name, then renamed."""
    import os

    import numpy as np

    G.train(bn == "batch")
    parts = []
    with torch.no_grad():  # whole batches (BatchNorm cannot normalise a batch of one), then the first n
        for _ in range(0, n, batch_size):
            fake = G(torch.rand(batch_size, latent_dim)) * 0.5 + 0.5
            parts.append(fake.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).reshape(-1, 28, 28, 1).numpy())
    G.train()
    tmp = f"{path}.tmp.npy"
    np.save(tmp, np.concatenate(parts)[:n])
    os.replace(tmp, path)


if __name__ == "__main__":
    import sys

    sys.exit(main())
