"""torchvision -> cached uint8 numpy -> device-resident batches.

torchvision reads (and, if allowed, downloads) the files once; the images are then cached as a
uint8 ``.npz`` beside the dataset, keyed by the source files' names, sizes and modification
times, so later runs skip torchvision entirely. On the device the training set lives as one
uint8 array of flattened images in the reference's (C, H, W) order; batches are gathered and
normalised inside the compiled step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import hashlib
import io
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import parallel
from jaxgan.config import DATASETS, ConfigError

_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_CIFAR_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")


def dataset_folder(dataset: str, data_dir: str) -> str:
    """The folder torchvision keeps a dataset's files in (also where jaxgan's cache goes)."""
    if dataset == "cifar10":
        return os.path.join(data_dir, "cifar-10-batches-py")
    return os.path.join(data_dir, DATASETS[dataset][0], "raw")


def _missing_message(dataset: str, data_dir: str, why: str) -> str:
    folder = dataset_folder(dataset, data_dir)
    if dataset == "cifar10":
        what = "data_batch_1..5, test_batch and batches.meta (unpacked cifar-10-python.tar.gz)"
    else:
        what = ", ".join(_MNIST_FILES) + " (the four .gz files, unpacked)"
    return f"{DATASETS[dataset][0]} data {why} in {folder}: put {what} there"


def _fingerprint(folder: str) -> str:
    h = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(folder, "*"))):
        if os.path.basename(path).startswith("jaxgan-") or os.path.isdir(path):
            continue
        st = os.stat(path)
        h.update(f"{os.path.basename(path)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def _torchvision_load(dataset: str, data_dir: str, train: bool, download: bool,
                      skip_checksums: bool) -> tuple[np.ndarray, np.ndarray]:
    """Read one split through torchvision's own dataset classes; NHWC uint8 + labels."""
    from torchvision import datasets  # imported here: only the first run of a dataset pays for it

    if dataset == "cifar10":
        cls = datasets.CIFAR10
        if skip_checksums:
            # Same loader; check_integrity(path, md5=None) only checks that each file exists.
            cls = type("CIFAR10AnyChecksum", (datasets.CIFAR10,), {
                "train_list": [[n, None] for n, _ in datasets.CIFAR10.train_list],
                "test_list": [[n, None] for n, _ in datasets.CIFAR10.test_list],
                "meta": {**datasets.CIFAR10.meta, "md5": None}})
    else:
        cls = getattr(datasets, DATASETS[dataset][0])
    quiet = io.StringIO()  # torchvision prints download progress; keep our own output clean
    try:
        with contextlib.redirect_stdout(quiet), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = cls(root=data_dir, train=train, download=download)
    except RuntimeError as e:
        if "downloading" in str(e).lower():
            reason = str(e).strip().splitlines()[-1].strip()
            raise ConfigError(_missing_message(dataset, data_dir, f"not found and download failed ({reason})")) from None
        if "not found" in str(e) or "corrupted" in str(e):
            why = "not found or its checksums differ (try --skip_checksums for re-packed files)" \
                if dataset == "cifar10" and not skip_checksums else "not found"
            if download:
                why += " and could not be downloaded"
            raise ConfigError(_missing_message(dataset, data_dir, why)) from None
        raise ConfigError(f"cannot read {DATASETS[dataset][0]} files in {dataset_folder(dataset, data_dir)}: {e}") from None
    except OSError as e:  # no network, permission denied, ...
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        raise ConfigError(_missing_message(dataset, data_dir, f"not found and download failed ({reason})")) from None
    except Exception as e:  # truncated or malformed files surface as assorted errors
        raise ConfigError(f"cannot read {DATASETS[dataset][0]} files in "
                          f"{dataset_folder(dataset, data_dir)} (truncated or malformed?): "
                          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    images = np.asarray(ds.data, dtype=np.uint8)
    if images.ndim == 3:
        images = images[..., None]
    labels = np.asarray(ds.targets, dtype=np.int64)
    expected = DATASETS[dataset][1]
    if images.shape[1:] != (expected[1], expected[2], expected[0]) or len(images) != len(labels):
        raise ConfigError(f"{DATASETS[dataset][0]} files in {dataset_folder(dataset, data_dir)} hold "
                          f"images of shape {images.shape[1:]}, expected {expected[1:] + expected[:1]}")
    return images, labels


def _cache_tag(split: str, size: int | None) -> str:
    return split if size is None else f"{split}-{size}px"


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W, 1) -> (N, size, size, 1) through the reference's own transform: the
    dataset hands ``transforms.Resize(size)`` a PIL image of mode L (torchvision's MNIST does),
    whose uint8 result ``ToTensor`` then divides by 255; so caching that uint8 result and
    normalising it later is the reference's pipeline by construction."""
    from PIL import Image
    from torchvision import transforms

    resize = transforms.Resize(size)
    out = np.empty((len(images), size, size, 1), np.uint8)
    for i, img in enumerate(images):
        out[i, ..., 0] = np.asarray(resize(Image.fromarray(img[..., 0], mode="L")), dtype=np.uint8)
    return out


def load_numpy(dataset: str, data_dir: str = "data", *, train: bool = True, download: bool = True,
               skip_checksums: bool = False, size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)``: uint8 (N, H, W, C) and int64 (N,), cached after the first read.
    ``size``: square images of that side, by torchvision's ``Resize(size)`` as the DCGAN and WGAN
    references prepare MNIST and FashionMNIST (cached separately from the native size)."""
    folder = dataset_folder(dataset, data_dir)
    split = "train" if train else "test"
    _, native_h, native_w = DATASETS[dataset][1]
    if size == native_h == native_w:
        size = None
    if size is not None and dataset == "cifar10":
        raise ConfigError(f"CIFAR-10 is {native_h}x{native_w}; resizing it to {size} is not supported")
    tag = _cache_tag(split, size)
    if os.path.isdir(folder):
        cache = os.path.join(folder, f"jaxgan-{tag}-{_fingerprint(folder)}.npz")
        if os.path.isfile(cache):
            try:
                with np.load(cache) as z:
                    return z["images"], z["labels"]
            except (OSError, ValueError, KeyError, EOFError):
                pass  # damaged cache: rebuild it from the source files below
    images, labels = _torchvision_load(dataset, data_dir, train, download, skip_checksums)
    if size is not None:
        images = _resize(images, size)
    cache = os.path.join(folder, f"jaxgan-{tag}-{_fingerprint(folder)}.npz")
    for old in glob.glob(os.path.join(folder, f"jaxgan-{tag}-*.npz")):
        # Only this split's caches at this size (jaxgan-train-<16 hex>.npz is not jaxgan-train-32px-...).
        if len(os.path.basename(old)) == len(os.path.basename(cache)):
            with contextlib.suppress(OSError):
                os.remove(old)
    tmp = f"{cache}.{os.getpid()}.tmp"
    try:  # written to a temporary name, then renamed: a killed run never leaves half a cache
        with open(tmp, "wb") as f:
            np.savez(f, images=images, labels=labels)
        os.replace(tmp, cache)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(tmp)
    return images, labels


def flatten_chw(images: np.ndarray) -> np.ndarray:
    """(N, H, W, C) -> (N, C*H*W), the reference's ``images.view(m, -1)`` order on NCHW tensors."""
    return np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2).reshape(len(images), -1))


def unflatten_hwc(flat: np.ndarray, image_shape: tuple[int, int, int]) -> np.ndarray:
    """(N, C*H*W) in the reference's order -> (N, H, W, C)."""
    c, h, w = image_shape
    return np.asarray(flat).reshape(-1, c, h, w).transpose(0, 2, 3, 1)


def to_images(flat: np.ndarray, image_shape: tuple[int, int, int]) -> np.ndarray:
    """The way out, the inverse of ``normalize``: G's flat output in [-1, 1], (N, C*H*W) in the
    reference's order -> uint8 (N, H, W, C), rounded as the reference's ``denormalize`` +
    ``save_image`` round them. Grids, ``sample`` and ``evaluate`` all use this one call."""
    x = np.clip((np.asarray(flat, dtype=np.float32) + 1.0) / 2.0, 0.0, 1.0)
    return unflatten_hwc(np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8), image_shape)


# ToTensor() then Normalize(0.5, 0.5), evaluated once per pixel value with IEEE float32 division
# as PyTorch does it; XLA would rewrite the divisions as multiplications and be off by an ulp.
_NORMALIZED = (np.arange(256, dtype=np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)


def normalize(batch_u8: jax.Array) -> jax.Array:
    """uint8 -> float32 in [-1, 1], bit-identical to the reference's transforms."""
    return jnp.asarray(_NORMALIZED)[batch_u8.astype(jnp.int32)]


def epoch_permutation(shuffle_key: jax.Array, epoch: jax.Array | int, n: int) -> jax.Array:
    """The order in which epoch ``epoch`` visits the ``n`` images (int32, on device)."""
    return jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), n).astype(jnp.int32)


Dataset = dict[str, jax.Array]  # {"images": uint8 (N, C*H*W)[, "labels": int32 (N,)]}, on the device


def take_rows(data: Dataset, rows: jax.Array) -> dict[str, jax.Array]:
    """The dataset's ``rows`` as a batch: images normalised to [-1, 1] (``normalize``), labels as
    they are, every other leaf gathered alike."""
    batch = {k: jnp.take(v, rows, axis=0) for k, v in data.items()}
    batch["images"] = normalize(batch["images"])
    return batch


def gather_batch(data: Dataset, perm: jax.Array, index: jax.Array, batch_size: int) -> dict[str, jax.Array]:
    """Batch ``index`` of an epoch: the rows ``perm[index*B : (index+1)*B]`` of the device dataset."""
    return take_rows(data, jax.lax.dynamic_slice_in_dim(perm, index * batch_size, batch_size))


@dataclasses.dataclass(frozen=True)
class Layout:
    """How an epoch of ``n`` images splits into steps: ``full`` batches of ``batch_size``, then
    (unless 0) one shorter ``tail`` batch."""

    n: int
    batch_size: int
    tail: int

    @property
    def full(self) -> int:
        return self.n // self.batch_size

    @property
    def steps_per_epoch(self) -> int:
        return self.full + (1 if self.tail else 0)


def epoch_layout(n: int, batch_size: int, last_batch: str) -> Layout:
    """Full batches per epoch, plus the reference's short last batch unless ``last_batch="drop"``.
    A last batch of a single image is always dropped: BatchNorm cannot train on one example
    (PyTorch raises an error there)."""
    if batch_size > n:
        raise ConfigError(f"batch_size {batch_size} is larger than the dataset ({n} images)")
    rem = n % batch_size
    return Layout(n, batch_size, rem if last_batch == "partial" and rem >= 2 else 0)


def fingerprint(images: np.ndarray) -> str:
    """A short hash of the images' bytes: a resumed run must train on the same data."""
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:16]


def put_dataset(images: np.ndarray, mesh, labels: np.ndarray | None = None) -> Dataset:
    """The way in: uint8 (N, H, W, C) images -> the device-resident dataset the steps gather
    batches from, ``{"images": uint8 (N, C*H*W)}`` (and ``"labels"``: int32 (N,) when given),
    replicated on every device of the mesh (each device gathers only its own rows of each batch;
    normalisation happens inside the compiled step)."""
    data = {"images": flatten_chw(images)}
    if labels is not None:
        data["labels"] = np.asarray(labels, np.int32)
    return parallel.put_replicated(data, mesh)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W, C) -> uint8 (N, size, size, C) with PIL's bilinear (antialiased) filter, the
    one torchvision's ``Resize`` applies to PIL images; used to score 32x32 conv-model samples with
    a judge trained on 28x28 digits."""
    from PIL import Image

    out = np.empty((len(images), size, size, images.shape[-1]), np.uint8)
    for i, img in enumerate(images):
        channels = [np.asarray(Image.fromarray(img[..., c]).resize((size, size), Image.BILINEAR))
                    for c in range(img.shape[-1])]
        out[i] = np.stack(channels, axis=-1)
    return out
