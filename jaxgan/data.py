"""torchvision -> cached uint8 numpy -> device-resident batches.

torchvision reads (and, if allowed, downloads) the files once; the images are then cached as a
uint8 ``.npz`` beside the dataset, keyed by the source files' names, sizes and modification
times, so later runs skip torchvision entirely and map the cache into memory (``load_npz``). On
the device the training set lives as one uint8 array of flattened images in the reference's
(C, H, W) order; batches are gathered and normalised inside the compiled step. (A training set
larger than ``--data_budget`` stays on the host instead: ``jaxgan.stream``.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import glob
import hashlib
import io
import os
import struct
import sys
import warnings
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from jaxgan import parallel
from jaxgan.config import DATASETS, FOLDER, ConfigError, validate

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


def _cache_tag(split: str, size: int | None, channels: int | None = None) -> str:
    return split + ("" if size is None else f"-{size}px") + ("" if channels is None else f"-{channels}c")


def image_transform(size: int | None, channels: int | None):
    """The preparation applied once, when a cache is built, to each PIL image: ``--channels`` by
    torchvision's ``Grayscale`` (first, so that a gray image stays exactly itself: L -> RGB -> L is
    the identity), then ``--image_size`` by ``Resize(N)`` + ``CenterCrop(N)``, the DCGAN
    tutorials' preparation; None: left as it is."""
    from torchvision import transforms

    steps = [] if channels is None else [transforms.Grayscale(channels)]
    if size is not None:
        steps += [transforms.Resize(size), transforms.CenterCrop(size)]
    return transforms.Compose(steps)


def _transform_all(images: np.ndarray, size: int | None, channels: int | None) -> np.ndarray:
    """uint8 (N, H, W, C) through :func:`image_transform`. On gray MNIST at a new size this is the
    reference's own pipeline: the dataset hands ``transforms.Resize(size)`` a PIL image of mode L
    (torchvision's MNIST does), whose uint8 result ``ToTensor`` then divides by 255; so caching
    that uint8 result and normalising it later is the reference's pipeline by construction."""
    from PIL import Image

    transform = image_transform(size, channels)
    out = [np.asarray(transform(Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)), dtype=np.uint8)
           for img in images]
    out = np.stack(out) if out else np.zeros((0,) + images.shape[1:], np.uint8)
    return out[..., None] if out.ndim == 3 else out


def load_numpy(dataset: str, data_dir: str = "data", *, train: bool = True, download: bool = True,
               skip_checksums: bool = False, size: int | None = None,
               channels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, labels)``: uint8 (N, H, W, C) and int64 (N,), cached after the first read.
    ``size``: square images of that side, by torchvision's ``Resize(size)`` (+ ``CenterCrop``) as
    the DCGAN and WGAN references prepare MNIST and FashionMNIST; ``channels``: 1 or 3 by
    torchvision's ``Grayscale`` (each cached separately from the native images)."""
    folder = dataset_folder(dataset, data_dir)
    split = "train" if train else "test"
    native_c, native_h, native_w = DATASETS[dataset][1]
    if size == native_h == native_w:
        size = None
    if channels == native_c:
        channels = None
    tag = _cache_tag(split, size, channels)
    if os.path.isdir(folder):
        cache = os.path.join(folder, f"jaxgan-{tag}-{_fingerprint(folder)}.npz")
        if os.path.isfile(cache):
            try:
                z = load_npz(cache)
                return z["images"], z["labels"]
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                pass  # damaged cache: rebuild it from the source files below
    images, labels = _torchvision_load(dataset, data_dir, train, download, skip_checksums)
    if size is not None or channels is not None:
        images = _transform_all(images, size, channels)
    cache = os.path.join(folder, f"jaxgan-{tag}-{_fingerprint(folder)}.npz")
    for old in glob.glob(os.path.join(folder, f"jaxgan-{tag}-*.npz")):
        # Only this split's caches at this size (jaxgan-train-<16 hex>.npz is not jaxgan-train-32px-...).
        if len(os.path.basename(old)) == len(os.path.basename(cache)):
            with contextlib.suppress(OSError):
                os.remove(old)
    _save_npz(cache, images=images, labels=labels)
    with contextlib.suppress(OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        z = load_npz(cache)  # the cache's map: the decoded copy goes when this returns
        return z["images"], z["labels"]
    return images, labels


def load_npz(path: str) -> dict[str, np.ndarray]:
    """Every array of an ``.npz``, each member stored uncompressed (as ``np.savez`` writes jaxgan's
    caches) memory-mapped read-only: its pages are the system's file cache, read as they are
    touched, so a dataset larger than the device is never a second copy in the process (a
    compressed member is read whole). A damaged file raises OSError, ValueError or BadZipFile."""
    out = {}
    with zipfile.ZipFile(path) as z, open(path, "rb") as f:
        for info in z.infolist():
            name = info.filename.removesuffix(".npy")
            if info.compress_type != zipfile.ZIP_STORED:
                with z.open(info) as member:
                    out[name] = np.lib.format.read_array(member, allow_pickle=False)
                continue
            f.seek(info.header_offset)
            local = f.read(30)  # the member's local header: its own name and extra field lengths
            if len(local) != 30 or local[:4] != b"PK\x03\x04":
                raise ValueError(f"{path}: damaged member {info.filename}")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            f.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(f)
            fmt = np.lib.format
            shape, fortran, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
            if dtype.hasobject:
                raise ValueError(f"{path}: {info.filename} holds Python objects")
            offset = f.tell()
            if offset + int(np.prod(shape)) * dtype.itemsize > info.header_offset + 30 + name_len + extra_len \
                    + info.file_size:
                raise ValueError(f"{path}: {info.filename} is truncated")
            out[name] = np.zeros(shape, dtype) if not np.prod(shape) else \
                np.memmap(path, dtype, "r", offset, shape, "F" if fortran else "C")
    return out


def _save_npz(path: str, **arrays) -> None:
    """Written to a temporary name, then renamed: a killed run never leaves half a cache. A folder
    that cannot be written (read-only data) only costs the cache."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.remove(tmp)


# -- your own images: a folder is a dataset (--dataset folder --data_dir PATH) ------------------
CACHE_DIR = ".jaxgan"  # inside the image folder; dot-folders are never classes nor images
SHOWN = 3  # unreadable files named on the console; the full list goes to a file beside the cache


def image_extensions() -> tuple[str, ...]:
    """Every extension PIL has registered a reader for (lower case, with the dot): the rule for
    what counts as an image."""
    from PIL import Image

    Image.init()
    return tuple(sorted(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN))


@dataclasses.dataclass(frozen=True)
class Folder:
    """A folder of images as a dataset: uint8 (N, H, W, C) images in the order torchvision's
    ``ImageFolder`` lists them (classes sorted, then paths sorted), their labels (None for a flat
    folder: one class, no labels), their paths relative to the folder, and what was left out."""

    root: str
    images: np.ndarray
    labels: np.ndarray | None
    paths: tuple[str, ...]
    classes: tuple[str, ...]
    ignored: int  # files that are not images (README.txt, .DS_Store)
    loose: tuple[str, ...]  # files beside class folders: not in any class, so not used
    unreadable: tuple[str, ...]  # images that failed to decode, skipped
    unreadable_list: str | None  # the file that lists them all

    @property
    def num_classes(self) -> int:
        """The dataset's class count (0: a flat folder, unlabelled)."""
        return len(self.classes) if self.labels is not None else 0

    def split(self, held_out: float) -> np.ndarray:
        """Whether each image is held out: fixed by a hash of its relative path, so adding files
        never moves an image from one split to the other."""
        return np.array([held_out_by_path(p, held_out) for p in self.paths], bool).reshape(-1)

    def summary(self, held_out: float) -> str:
        """One line: what the folder holds and what was left out."""
        test = int(self.split(held_out).sum())
        k = len(self.classes)
        what = f"{k} class{'es' if k != 1 else ''}" if self.labels is not None else "one class (no labels)"
        line = (f"folder {self.root}: {len(self.images):,} images, {what}, {self.images.shape[1]}x"
                f"{self.images.shape[2]}x{self.images.shape[3]}; {len(self.images) - test:,} train, {test:,} held out")
        if self.ignored:
            line += f"; {self.ignored:,} non-image files ignored"
        if self.loose:
            line += (f"; {len(self.loose):,} loose files beside the class folders not used "
                     f"({', '.join(self.loose[:SHOWN])}{', ...' if len(self.loose) > SHOWN else ''})")
        if self.unreadable:
            line += (f"; {len(self.unreadable):,} unreadable images skipped ({', '.join(self.unreadable[:SHOWN])}"
                     f"{', ...' if len(self.unreadable) > SHOWN else ''}; all listed in {self.unreadable_list})")
        return line


def held_out_by_path(relpath: str, fraction: float) -> bool:
    """An image is held out when the SHA-256 of its relative path ('/'-separated), read as a
    number in [0, 1), is below ``fraction``."""
    digest = hashlib.sha256(relpath.replace(os.sep, "/").encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < fraction


def _find_classes(directory: str) -> tuple[list[str], dict[str, int]]:
    """ImageFolder's ``find_classes``, except that a flat folder is one class (``""``: its own
    files; ImageFolder refuses one) and a dot-folder (``.jaxgan``, ``.ipynb_checkpoints``) is never
    a class."""
    classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
    classes = classes or [""]
    return classes, {c: i for i, c in enumerate(classes)}


def _scan(root: str, extensions: tuple[str, ...]) -> tuple[list[str], list[tuple[str, int]], int]:
    """``(classes, samples, ignored)`` as torchvision's ``ImageFolder`` lists them (its
    ``make_dataset`` walk: classes in order, each walked sorted, files sorted), without importing
    torch: a run whose cache is current never pays for it. ``ignored``: files that are not images
    (files inside dot-folders, jaxgan's own cache among them, are not counted)."""
    classes, class_to_idx = _find_classes(root)
    samples, ignored = [], 0
    for name in classes:
        target = os.path.join(root, name)
        for dirpath, _, fnames in sorted(os.walk(target, followlinks=True)):
            if any(part.startswith(".") for part in os.path.relpath(dirpath, root).split(os.sep) if part != "."):
                continue
            for fname in sorted(fnames):
                if fname.lower().endswith(extensions):
                    samples.append((os.path.join(dirpath, fname), class_to_idx[name]))
                else:
                    ignored += 1
    return classes, samples, ignored


def _image_folder(root: str, extensions: tuple[str, ...], transform):
    """torchvision's ``ImageFolder`` on ``root``, with :func:`_find_classes` and the image rule."""
    from torchvision import datasets

    def is_image(path: str) -> bool:
        rel = os.path.relpath(path, root).split(os.sep)
        return not any(part.startswith(".") for part in rel[:-1]) and path.lower().endswith(extensions)

    class _Folder(datasets.ImageFolder):
        def find_classes(self, directory):
            return _find_classes(directory)

    return _Folder(root, transform=transform, is_valid_file=is_image, allow_empty=True)


def _file_list_key(root: str, paths: list[str]) -> str:
    h = hashlib.sha256(b"v1;")
    for p in paths:
        st = os.stat(p)
        h.update(f"{os.path.relpath(p, root)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # PIL modes without colour


def folder_channels(root: str) -> int:
    """A folder's own channels (``--channels 0``): 1 when every image is gray (PIL modes
    ``GRAY_MODES``, read from each file's header), else 3. Remembered beside the cache, keyed by the
    file list."""
    from PIL import Image

    paths = [p for p, _ in _scan(root, image_extensions())[1]] if os.path.isdir(root) else []
    if not paths:  # a missing folder, a file, no images: load_folder's one-line error, nothing written
        return load_folder(root, 1, 1).images.shape[-1]
    memo = os.path.join(root, CACHE_DIR, f"channels-{_file_list_key(root, paths)}.txt")
    with contextlib.suppress(OSError, ValueError):
        with open(memo) as f:
            return int(f.read().strip())
    channels = 1
    for p in paths:
        try:
            with Image.open(p) as img:
                if img.mode not in GRAY_MODES:
                    channels = 3
                    break
        except (OSError, ValueError, SyntaxError):
            continue  # unreadable: load_folder names it
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(memo), exist_ok=True)
        with open(memo, "w") as f:
            f.write(f"{channels}\n")
    return channels


def folder_classes(root: str) -> list[str]:
    """A folder's class subfolders, as its loader numbers them ([]: a flat folder, unlabelled, or
    no folder at all)."""
    if not os.path.isdir(root):
        return []
    classes = _find_classes(root)[0]
    return [] if classes == [""] else classes


def resolve_folder(cfg):
    """``cfg`` with what a folder run reads from its folder when it starts, so that the run's
    record, its model and ``sample``/``evaluate`` all see it: ``--channels 0`` made the folder's own
    (:func:`folder_channels`), and with ``--conditional`` its class count (``classes``, from its
    class subfolders)."""
    if cfg.dataset != FOLDER:
        return cfg
    changes = {}
    if cfg.conditional:  # first: a flat folder is refused before anything is read or written
        found = len(folder_classes(cfg.data_dir))
        if not found:
            raise ConfigError(f"--conditional needs class labels, and folder {cfg.data_dir!r} has no class "
                              "subfolders (a flat folder is one class, unlabelled): sort its images into one "
                              "subfolder per class")
        if cfg.classes and cfg.classes != found:
            raise ConfigError(f"--classes {cfg.classes}, but folder {cfg.data_dir!r} has {found} class subfolders")
        changes["classes"] = found
    if not cfg.channels:
        changes["channels"] = folder_channels(cfg.data_dir)
    return validate(dataclasses.replace(cfg, **changes)) if changes else cfg


def load_folder(root: str, size: int, channels: int, *, strict: bool = False, progress: bool = False) -> Folder:
    """Every image of a folder (``--dataset folder``), through torchvision's ``ImageFolder`` and
    :func:`image_transform`, cached as uint8 in ``<root>/.jaxgan/`` keyed by the file list (names,
    sizes, modification times) and the transform. An image is a file whose extension PIL has
    registered; other files are ignored and counted; an image that fails to decode is skipped and
    named (``strict``: refused); files beside class folders are reported."""
    if not os.path.exists(root):
        raise ConfigError(f"--data_dir {root!r} does not exist (--dataset folder reads the images in it)")
    if not os.path.isdir(root):
        raise ConfigError(f"--data_dir {root!r} is a file; --dataset folder needs a folder of images")
    extensions = image_extensions()
    classes, samples, ignored = _scan(root, extensions)
    labelled = classes != [""]
    loose = tuple(sorted(e.name for e in os.scandir(root) if e.is_file() and not e.name.startswith("."))) \
        if labelled else ()
    paths = [p for p, _ in samples]
    if labelled:  # torchvision's ImageFolder refuses a class without images too (its allow_empty=False)
        present = {t for _, t in samples}
        empty = [c for i, c in enumerate(classes) if i not in present]
        if empty and paths:
            raise ConfigError(f"folder {root!r}: class folder{'s' if len(empty) > 1 else ''} "
                              f"{', '.join(repr(c) for c in empty[:SHOWN])} hold{'' if len(empty) > 1 else 's'} "
                              "no images: add images or remove the folder (each subfolder is a class)")
    if not paths:
        common = [e for e in (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp") if e in extensions]
        raise ConfigError(f"folder {root!r} holds no images ({ignored} other files ignored; an image is a file "
                          f"whose extension PIL reads, e.g. {', '.join(common)})")
    cache_dir = os.path.join(root, CACHE_DIR)
    key = _file_list_key(root, paths)
    cache = os.path.join(cache_dir, f"images-{size}px-{channels}c-{key}.npz")
    listing = os.path.join(cache_dir, f"unreadable-{key}.txt")
    rel = [os.path.relpath(p, root).replace(os.sep, "/") for p in paths]
    bad: list[str] = []
    loaded = None
    if os.path.isfile(cache):
        with contextlib.suppress(OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            z = load_npz(cache)
            loaded = z["images"], z["labels"], [str(p) for p in z["paths"]]
            if os.path.isfile(listing):
                with open(listing, encoding="utf-8") as f:
                    bad = [line.rstrip("\n") for line in f if line.strip()]
    if loaded is None:
        ds = _image_folder(root, extensions, image_transform(size, channels))
        if ds.samples != samples:  # the folder changed between the listing and now
            raise ConfigError(f"folder {root!r} changed while it was being read; run again")
        images, labels, kept, bad = _decode_all(ds, rel, progress)
        if not bad and not kept:
            raise ConfigError(f"folder {root!r}: none of its {len(paths)} images could be read")
        loaded = images, labels, kept
        with contextlib.suppress(OSError):
            os.makedirs(cache_dir, exist_ok=True)
            for old in glob.glob(os.path.join(cache_dir, f"images-{size}px-{channels}c-*.npz")):
                os.remove(old)  # the same transform of an older file list
            if bad:
                with open(listing, "w", encoding="utf-8") as f:
                    f.writelines(f"{p}\n" for p in bad)
            _save_npz(cache, images=images, labels=labels, paths=np.array(kept, dtype=str))
    images, labels, kept = loaded
    if bad and strict:
        raise ConfigError(f"folder {root!r}: {len(bad)} unreadable images ({', '.join(bad[:SHOWN])}"
                          f"{', ...' if len(bad) > SHOWN else ''}); --strict_images refuses them: remove "
                          "or repair them, or drop --strict_images to skip them")
    if not len(images):
        raise ConfigError(f"folder {root!r}: none of its {len(paths)} images could be read "
                          f"({', '.join(bad[:SHOWN])}, ...)")
    if labelled:
        unread = [c for c, n in zip(classes, np.bincount(labels, minlength=len(classes))) if n == 0]
        if unread:
            raise ConfigError(f"folder {root!r}: no image of class {', '.join(repr(c) for c in unread[:SHOWN])} "
                              f"could be read (listed in {listing}): repair them or remove the class")
    return Folder(root, images, labels if labelled else None, tuple(kept), tuple(classes), ignored, loose,
                  tuple(bad), listing if bad else None)


def _decode_all(ds, rel: list[str], progress: bool):
    """Decode and transform every image of ``ds`` (its ``transform``) on a pool of threads (PIL
    releases the GIL while it decodes), in ``ds.samples`` order; the unreadable ones are set aside
    by name."""
    import concurrent.futures

    from PIL import Image

    def one(i: int):
        try:
            img, label = ds[i]
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            return None, None  # truncated, empty or not what its extension says
        out = np.asarray(img, dtype=np.uint8)
        return (out[..., None] if out.ndim == 2 else out), label

    bar = None
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(rel), unit="img", desc="caching images", leave=False)
    results = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        for r in pool.map(one, range(len(rel)), chunksize=64):
            results.append(r)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    good = [i for i, (img, _) in enumerate(results) if img is not None]
    images = np.stack([results[i][0] for i in good]) if good else np.zeros((0, 1, 1, 1), np.uint8)
    labels = np.array([results[i][1] for i in good], np.int64)
    return images, labels, [rel[i] for i in good], [rel[i] for i, (img, _) in enumerate(results) if img is None]


def load_samples(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Images made by any tool, to be scored (``evaluate --samples``): a ``.npy`` of uint8
    (N, H, W, C) (or (N, H, W): gray), an ``.npz`` with the keys ``images`` (and ``labels``, as the
    conditional sampler writes them), or a folder of images (the folder rule; prepared at the
    side of its first image, by ``Resize`` + ``CenterCrop``, with the folder's own channels).
    Returns ``(images, labels or None)``; a one-line ConfigError for anything else."""
    if not os.path.exists(path):
        raise ConfigError(f"--samples {path!r} does not exist")
    labels = None
    if os.path.isdir(path):
        from PIL import Image

        _, samples, _ = _scan(path, image_extensions())
        if not samples:
            raise ConfigError(f"--samples folder {path!r} holds no images")
        with Image.open(samples[0][0]) as first:
            side = min(first.size)
        return load_folder(path, side, folder_channels(path)).images, None
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            images = np.load(path, mmap_mode="r", allow_pickle=False)
        elif ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "images" not in z.files:
                    raise ConfigError(f"--samples {path!r} holds {', '.join(z.files) or 'no arrays'}; "
                                      "expected the key images (and optionally labels)")
                images = z["images"]
                labels = z["labels"] if "labels" in z.files else None
        else:
            raise ConfigError(f"--samples must be a .npy, an .npz or a folder of images, got {path!r}")
    except ConfigError:
        raise
    except (OSError, ValueError, EOFError) as e:
        raise ConfigError(f"--samples {path!r} is not a readable {ext} file ({type(e).__name__})") from None
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3) \
            or images.shape[1] != images.shape[2]:
        raise ConfigError(f"--samples {path!r}: expected uint8 square images (N, H, W, C) with C 1 or 3, "
                          f"got {images.dtype} {tuple(images.shape)}")
    if labels is not None and np.shape(labels) != (len(images),):
        raise ConfigError(f"--samples {path!r}: labels has shape {np.shape(labels)}, expected ({len(images)},)")
    return np.asarray(images), labels


def load_split(cfg, train: bool = True, say=print) -> tuple[np.ndarray, np.ndarray | None]:
    """The images (and labels, None for an unlabelled folder) of one split of a run's dataset,
    prepared at its ``image_shape``: a built-in dataset's train or test files, or a folder's
    training part or held-out part (``cfg.held_out``). ``say``: where a folder's summary goes."""
    c, size, _ = cfg.image_shape
    if cfg.dataset != FOLDER:
        return load_numpy(cfg.dataset, cfg.data_dir, train=train, download=cfg.download,
                          skip_checksums=cfg.skip_checksums, size=size, channels=c)
    folder = load_folder(cfg.data_dir, size, c, strict=cfg.strict_images, progress=cfg.progress)
    if say is not None:
        say(folder.summary(cfg.held_out))
    keep = folder.split(cfg.held_out) != train
    if not keep.any():
        raise ConfigError(f"folder {cfg.data_dir!r}: its {'training' if train else 'held-out'} split is empty "
                          f"(--held_out {cfg.held_out} of {len(folder.images)} images)")
    labels = None if folder.labels is None else folder.labels[keep]
    return folder.images[keep], labels


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


def fingerprint(images: np.ndarray, rows: int = 4096) -> str:
    """A short hash of the images' bytes: a resumed run must train on the same data. Hashed
    ``rows`` images at a time (the hash of their bytes in order, as one ``tobytes()`` would give),
    so a dataset larger than the device, perhaps memory-mapped, is never copied whole."""
    h = hashlib.sha256()
    for i in range(0, len(images), rows):
        h.update(memoryview(np.ascontiguousarray(images[i:i + rows])).cast("B"))
    return h.hexdigest()[:16]


PUT_ROWS = 8192  # images flattened and sent at a time by put_dataset


def put_dataset(images: np.ndarray, mesh, labels: np.ndarray | None = None, rows: int = PUT_ROWS) -> Dataset:
    """The way in: uint8 (N, H, W, C) images -> the device-resident dataset the steps gather
    batches from, ``{"images": uint8 (N, C*H*W)}`` (and ``"labels"``: int32 (N,) when given),
    replicated on every device of the mesh (each device gathers only its own rows of each batch;
    normalisation happens inside the compiled step). Flattened and sent ``rows`` images at a
    time into one device array, updated in place: the host never holds a flattened copy of the
    whole dataset beside its own (perhaps memory-mapped) one."""
    data = {} if labels is None else {"labels": parallel.put_replicated(np.asarray(labels, np.int32), mesh)}
    if len(images) <= rows:
        return {"images": parallel.put_replicated(flatten_chw(images), mesh), **data}
    rep = parallel.replicated(mesh)
    shape = (len(images), int(np.prod(images.shape[1:])))
    out = jax.jit(lambda: jnp.zeros(shape, jnp.uint8), out_shardings=rep)()
    for start in range(0, len(images), rows):
        block = parallel.put_replicated(flatten_chw(images[start:start + rows]), mesh)
        out = _write_rows(out, block, parallel.put_replicated(np.int32(start), mesh))
    return {"images": out, **data}


@functools.partial(jax.jit, donate_argnums=0)
def _write_rows(dataset: jax.Array, block: jax.Array, start: jax.Array) -> jax.Array:
    return jax.lax.dynamic_update_slice_in_dim(dataset, block, start, 0)


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
