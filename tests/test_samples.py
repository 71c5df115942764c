"""``python -m jaxgan.evaluate --samples PATH``: images made by any tool are scored exactly as a
run's samples are (the same judge, real-image path, matched-size rows and JSON)."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from torchvision import transforms

from jaxgan.formats import write_image_folder, write_mnist
from tests.conftest import blob_images, run_main

METRICS = ("frechet_distance", "classifier_score", "classes_covered", "kl_to_real", "precision", "recall")
CEILING = "held-out real (ceiling)"


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("samples")
    images, labels = blob_images(150, 28, 28, 1)
    test_x, test_y = blob_images(60, 28, 28, 1, seed=9)
    write_mnist(str(root / "data"), images[..., 0], labels, test_x[..., 0], test_y)
    return root, test_x, test_y


def _score(root, samples, *extra):
    out = str(root / "out.json")
    r = run_main("jaxgan.evaluate", "--no_download", "--data_dir", str(root / "data"), "--samples", str(samples),
                 "--json", out, *extra)
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        return json.load(f), r.stdout


def test_the_held_out_images_as_samples_score_as_the_ceiling_from_npy_npz_and_a_folder(digits):
    root, test_x, test_y = digits
    np.save(root / "held.npy", test_x)
    result, stdout = _score(root, root / "held.npy")
    rows = result["rows"]
    assert set(rows) == {"samples (held.npy)", CEILING}
    assert rows["samples (held.npy)"]["n"] == rows[CEILING]["n"] == 60
    for key in METRICS:  # the same 60 images, the same judge: the same numbers
        assert rows["samples (held.npy)"][key] == rows[CEILING][key]
    assert result["generator"]["num_samples"] == 60 and result["judge"]["name"].startswith("shipped:mnist")
    assert "samples (held.npy)" in stdout
    np.savez(root / "held.npz", images=test_x, labels=test_y)
    write_image_folder(str(root / "held_png"), test_x)
    for path in (root / "held.npz", root / "held_png"):
        other, _ = _score(root, path)
        name = f"samples ({os.path.basename(path)})"
        for key in METRICS:
            assert other["rows"][name][key] == rows[CEILING][key]
    assert other["generator"]["labels"] is False and _score(root, root / "held.npz")[0]["generator"]["labels"]
    # ... and what is scored is the samples: the held-out digits upside down, the same pixels in
    # another place, score apart from the ceiling (a scorer reading the held-out set passes the above).
    np.save(root / "flipped.npy", test_x[:, ::-1])
    flipped = _score(root, root / "flipped.npy")[0]["rows"]
    assert flipped["samples (flipped.npy)"]["frechet_distance"] > 2 * flipped[CEILING]["frechet_distance"]


def test_larger_samples_take_the_real_images_through_the_same_path(digits):
    """32x32 samples (a conv model's size): the real images are compared at 32 (torchvision's
    Resize(32), as trained on) and then at the judge's 28, so the held-out digits made 32x32 by
    torchvision score as the ceiling; more samples than held-out images add a row marked not comparable."""
    root, test_x, _ = digits
    up = np.stack([np.asarray(transforms.Resize(32)(Image.fromarray(x[..., 0], "L")))[..., None] for x in test_x])
    np.save(root / "up.npy", np.concatenate([up, up[:10]]))
    result, _ = _score(root, root / "up.npy")
    rows = result["rows"]
    assert "32px" in result["compared_at"]
    for key in METRICS:
        assert rows["samples (up.npy)"][key] == rows[CEILING][key]
    extra = [name for name, row in rows.items() if not row["comparable_with_ceiling"]]
    assert len(extra) == 1 and rows[extra[0]]["n"] == 70


@pytest.mark.quick
@pytest.mark.parametrize("what, message", [
    ("missing.npy", "does not exist"),
    ("float.npy", "expected uint8 square images"),
    ("nokey.npz", "expected the key images"),
    ("colour.npy", "the mnist judge reads 1-channel images, these have 3"),
    ("table.csv", "must be a .npy, an .npz or a folder"),
])
def test_bad_samples_get_one_line_and_exit_2(tmp_path, what, message):
    path = tmp_path / what
    if what == "float.npy":
        np.save(path, np.zeros((4, 28, 28, 1), np.float32))
    if what == "nokey.npz":
        np.savez(path, pictures=np.zeros((4, 28, 28, 1), np.uint8))
    if what == "colour.npy":
        np.save(path, np.zeros((4, 28, 28, 3), np.uint8))
    if what == "table.csv":
        path.write_text("1,2")
    r = run_main("jaxgan.evaluate", "--no_download", "--data_dir", str(tmp_path / "none"), "--samples", str(path))
    assert r.returncode == 2
    assert message in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_the_torch_reference_saves_samples_that_evaluate_scores(digits, tmp_path):
    root, _, _ = digits
    out = str(tmp_path / "torch.npy")
    r = run_main("benchmarks.torch_reference", "--data_dir", str(root / "data"), "--no-download", "--num_epochs", "1",
                 "--workers", "0", "--batch_size", "32", "--save_samples", "33", "--samples_out", out,
                 "--sample_dir", str(tmp_path / "grids"), "--logdir", str(tmp_path / "runs"))
    assert r.returncode == 0, r.stderr
    images = np.load(out)
    assert images.dtype == np.uint8 and images.shape == (33, 28, 28, 1)
    assert len(np.unique(images)) > 2  # drawn from G, not a constant
    result, _ = _score(root, out)
    assert result["rows"]["samples (torch.npy)"]["n"] == 33 == result["rows"][CEILING]["n"]
