"""Data: torchvision's own loaders read files written in torchvision's on-disk formats; the uint8
cache, normalisation and on-device batching; clear errors for missing or damaged data."""

import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxgan import data as data_lib
from jaxgan.config import ConfigError
from jaxgan.formats import write_cifar10, write_mnist
from tests.conftest import blob_images


@pytest.mark.quick
@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_mnist_format_round_trips_through_torchvision(tmp_path, dataset):
    images, labels = blob_images(50, 28, 28, 1)
    write_mnist(str(tmp_path), images[..., 0], labels, dataset=dataset)
    got, got_labels = data_lib.load_numpy(dataset, str(tmp_path), download=False)
    assert got.dtype == np.uint8 and got.shape == (50, 28, 28, 1)
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.quick
def test_cifar10_pickles_round_trip_and_checksums_are_enforced_by_default(tmp_path):
    images, labels = blob_images(23, 32, 32, 3)
    write_cifar10(str(tmp_path), images, labels)
    with pytest.raises(ConfigError, match="checksums differ.*--skip_checksums") as err:
        data_lib.load_numpy("cifar10", str(tmp_path), download=False)
    assert "\n" not in str(err.value)
    got, got_labels = data_lib.load_numpy("cifar10", str(tmp_path), download=False, skip_checksums=True)
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.quick
def test_cache_is_written_once_and_rebuilt_when_the_files_change(tmp_path):
    images, labels = blob_images(40, 28, 28, 1)
    raw = write_mnist(str(tmp_path), images[..., 0], labels)
    data_lib.load_numpy("mnist", str(tmp_path), download=False)
    caches = glob.glob(os.path.join(raw, "jaxgan-train-*.npz"))
    assert len(caches) == 1
    with np.load(caches[0]) as z:
        np.testing.assert_array_equal(z["images"], images)
    # When a source file changes, the cache is rebuilt from the new files.
    images2, labels2 = blob_images(40, 28, 28, 1, seed=5)
    write_mnist(str(tmp_path), images2[..., 0], labels2)
    os.utime(os.path.join(raw, "train-images-idx3-ubyte"), ns=(1, 1))
    got, _ = data_lib.load_numpy("mnist", str(tmp_path), download=False)
    np.testing.assert_array_equal(got, images2)
    assert len(glob.glob(os.path.join(raw, "jaxgan-train-*.npz"))) == 1


def test_normalize_equals_torchvision_totensor_and_normalize():
    from benchmarks.torch_reference import reference_transform

    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    want = reference_transform(1)(Image.fromarray(pixels)).numpy().reshape(-1)
    got = np.asarray(data_lib.normalize(jnp.asarray(pixels.reshape(-1))))
    np.testing.assert_array_equal(got, want)
    assert got.min() == -1.0 and got.max() == 1.0


def test_flattening_follows_the_reference_chw_order():
    images = np.arange(2 * 4 * 5 * 3, dtype=np.uint8).reshape(2, 4, 5, 3)
    flat = data_lib.flatten_chw(images)
    np.testing.assert_array_equal(flat[1], images[1].transpose(2, 0, 1).reshape(-1))
    np.testing.assert_array_equal(data_lib.unflatten_hwc(flat, (3, 4, 5)), images)


@pytest.mark.quick
def test_epoch_permutation_visits_every_image_once_and_differs_by_epoch():
    key = jax.random.key(0)
    p0, p1 = (np.asarray(data_lib.epoch_permutation(key, e, 1000)) for e in (0, 1))
    np.testing.assert_array_equal(np.sort(p0), np.arange(1000))
    assert not np.array_equal(p0, p1)
    data = jnp.arange(1000, dtype=jnp.uint8)[:, None].repeat(3, axis=1)
    batch = data_lib.gather_batch({"images": data}, jnp.asarray(p0), jnp.int32(2), 10)["images"]
    np.testing.assert_array_equal(np.asarray(batch[:, 0]),
                                  np.asarray(data_lib.normalize(data[p0[20:30], 0])))


def test_missing_files_without_download_say_which_files_go_where(tmp_path):
    with pytest.raises(ConfigError) as err:
        data_lib.load_numpy("mnist", str(tmp_path), download=False)
    msg = str(err.value)
    assert "\n" not in msg and "train-images-idx3-ubyte" in msg
    assert os.path.join(str(tmp_path), "MNIST", "raw") in msg


def test_truncated_idx_file_is_a_one_line_error(tmp_path):
    images, labels = blob_images(40, 28, 28, 1)
    raw = write_mnist(str(tmp_path), images[..., 0], labels)
    path = os.path.join(raw, "train-images-idx3-ubyte")
    with open(path, "r+b") as f:
        f.truncate(1000)
    with pytest.raises(ConfigError, match="cannot read MNIST files") as err:
        data_lib.load_numpy("mnist", str(tmp_path), download=False)
    assert "\n" not in str(err.value)
