"""The benchmarks' synthetic data: the same MNIST-sized images for every run, written in
torchvision's MNIST format (and as .npy for the rows that never import torch)."""

from __future__ import annotations

import os

import numpy as np


def make_images(n: int) -> np.ndarray:
    """n MNIST-sized uint8 images (random strokes on noise), the same for every run."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 64, (n, 28, 28), dtype=np.uint8)
    rows = rng.integers(4, 24, n)
    for i, r in enumerate(rows):
        images[i, r:r + 3, 5:23] = 255
    return images


def write_dataset(root: str, n: int, model: str = "mlp") -> None:
    """``make_images(n)`` in torchvision's MNIST IDX format under root, and the same images as
    ``root/images.npy`` (N, 28, 28, 1) for the JAX rows, which never import torch. For dcgan/wgan
    also ``root/images_32.npy``: resized once by torchvision's ``Resize(32)`` (jaxgan's data module,
    as the trainer's cache), for jaxgan's rows and the PyTorch rows that hold the data in memory."""
    from jaxgan.formats import write_mnist

    images = make_images(n)
    write_mnist(root, images, np.random.default_rng(1).integers(0, 10, n).astype(np.uint8))
    np.save(os.path.join(root, "images.npy"), images[..., None])
    if model != "mlp":
        from jaxgan import data as data_lib

        resized, _ = data_lib.load_numpy("mnist", root, download=False, size=32)
        np.save(os.path.join(root, "images_32.npy"), resized)
