"""Sample-quality metrics on known cases, the classifier's save/load, the evaluate CLI, and the
1-D toy on a tiny budget."""

import json
import math

import numpy as np
import pytest

from jaxgan import classifier as clf_lib
from jaxgan import metrics, toy1d
from jaxgan.formats import write_mnist
from tests.conftest import blob_images, run_cli


def gaussian(n, d, shift=0.0, seed=0):
    return np.random.default_rng(seed).normal(shift, 1.0, (n, d))


def test_frechet_distance_is_zero_for_identical_sets_and_matches_the_closed_form():
    a = gaussian(2000, 8)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # Two sets whose fitted Gaussians differ only in the mean by 3 in every coordinate: 8 * 9.
    b = a + 3.0
    assert metrics.frechet_distance(a, b) == pytest.approx(72.0, rel=1e-6)
    # Scaled covariance: tr(S) + tr(4S) - 2 tr(2S) = tr(S).
    c = (a - a.mean(0)) * 2 + a.mean(0)
    assert metrics.frechet_distance(a, c) == pytest.approx(np.trace(np.cov(a, rowvar=False)), rel=1e-6)


def test_classifier_score_bounds():
    confident_all_classes = np.eye(10)[np.arange(1000) % 10]
    assert metrics.classifier_score(confident_all_classes) == pytest.approx(10.0, rel=1e-6)
    one_class = np.eye(10)[np.zeros(1000, int)]
    assert metrics.classifier_score(one_class) == pytest.approx(1.0, rel=1e-6)
    uniform = np.full((1000, 10), 0.1)
    assert metrics.classifier_score(uniform) == pytest.approx(1.0, rel=1e-6)


def test_mode_coverage_of_one_class_and_of_all_classes():
    one = metrics.mode_coverage(np.full(500, 3), np.ones(10))
    assert one["coverage"] == pytest.approx(0.1) and one["classes_covered"] == 1
    assert one["kl_to_real"] == pytest.approx(math.log(10))
    every = metrics.mode_coverage(np.arange(1000) % 10, np.ones(10))
    assert every["coverage"] == 1.0 and every["kl_to_real"] == pytest.approx(0.0, abs=1e-12)


def test_precision_and_recall_for_identical_and_disjoint_sets():
    real = gaussian(600, 16)
    same = metrics.precision_recall(real, real.copy())
    assert same["precision"] == 1.0 and same["recall"] == 1.0
    far = metrics.precision_recall(real, gaussian(600, 16, shift=50.0, seed=1))
    assert far["precision"] == 0.0 and far["recall"] == 0.0
    # A generator that covers only half the data: precise, but recall about one half.
    half = real[real[:, 0] > 0]
    pr = metrics.precision_recall(real, half)
    assert pr["precision"] == 1.0 and 0.3 < pr["recall"] < 0.8


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    images, labels = blob_images(600, 28, 28, 1)
    test_x, test_y = blob_images(200, 28, 28, 1, seed=3)
    clf = clf_lib.train(images, labels, test_x, test_y, (1, 28, 28), epochs=2, log=lambda m: None)
    root = tmp_path_factory.mktemp("clf")
    clf_lib.save(clf, str(root), "mnist", {"note": "test"})
    return clf, str(root), test_x, test_y


def test_classifier_learns_the_toy_labels_and_round_trips_through_orbax(tiny_classifier):
    clf, root, test_x, _ = tiny_classifier
    assert clf.test_accuracy > 0.9  # the label is where the bright bar is: easy
    loaded = clf_lib.load(root, "mnist", (1, 28, 28))
    assert loaded.test_accuracy == clf.test_accuracy
    f1, p1 = clf.predict(test_x)
    f2, p2 = loaded.predict(test_x)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(p1, p2)
    assert f1.shape == (200, 128) and np.allclose(p1.sum(1), 1, atol=1e-5)


def test_missing_classifier_is_a_one_line_hint(tmp_path):
    with pytest.raises(Exception, match="no classifier for mnist .* --train-classifier"):
        clf_lib.load(str(tmp_path), "mnist", (1, 28, 28))


def test_evaluate_cli_end_to_end(tmp_path):
    images, labels = blob_images(300, 28, 28, 1)
    test_x, test_y = blob_images(100, 28, 28, 1, seed=9)
    write_mnist(str(tmp_path / "data"), images[..., 0], labels, test_x[..., 0], test_y)
    small = ["--g_hidden", "16,32", "--d_hidden", "32,16", "--latent_dim", "8", "--batch_size", "32",
             "--no-download", "--no-progress", "--num_epochs", "1"]
    assert run_cli("jaxgan.train", *small, cwd=str(tmp_path)).returncode == 0
    proc = run_cli("jaxgan.evaluate", "--dataset", "mnist", "--no-download", cwd=str(tmp_path))
    assert proc.returncode == 2 and "--train-classifier" in proc.stderr
    proc = run_cli("jaxgan.evaluate", "--train-classifier", "--classifier_epochs", "6", "--no-download",
                   cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout
    proc = run_cli("jaxgan.evaluate", "--num_samples", "150", "--no-download", "--json", "out.json",
                   cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    rows = result["rows"]
    assert [r["n"] for r in rows.values()] == [150, 100, 100]
    real = rows["held-out real (ceiling)"]
    assert real["classes_covered"] >= 8 and real["precision"] > 0.5
    for r in rows.values():
        assert r["frechet_distance"] >= 0 and 1 <= r["classifier_score"] <= 10
    # Training can log the same metrics every --eval_every epochs.
    proc = run_cli("jaxgan.train", *small[:-1], "2", "--resume", "--eval_every", "1", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "eval at epoch 2 (n=2000)" in proc.stdout
    from jaxgan.report import read_scalars

    assert [step for step, _ in read_scalars(str(tmp_path / "runs" / "mnist"))["eval/classifier_score"]] == [2]
    proc = run_cli("jaxgan.evaluate", "--num_samples", "1", cwd=str(tmp_path))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_wasserstein_to_normal_is_small_for_normal_samples_and_not_for_shifted():
    x = np.random.default_rng(0).normal(size=20000)
    assert toy1d.wasserstein1_to_normal(x) < 0.02
    assert toy1d.wasserstein1_to_normal(x + 1.0) == pytest.approx(1.0, abs=0.02)


def test_toy1d_on_a_tiny_budget_writes_its_files(tmp_path):
    proc = run_cli("jaxgan.toy1d", "--out", str(tmp_path / "t"), "--steps", "60", "--d_refit", "20",
                   "--batch", "64")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "t" / "toy1d.json").read_text())
    assert set(summary) >= {"w1", "max_abs_d_minus_half", "samples"}
    assert summary["w1"] >= 0 and 0 <= summary["max_abs_d_minus_half"] <= 0.5
    samples = np.load(tmp_path / "t" / "samples.npy")
    assert samples.shape == (20000,) and summary["samples"] == 20000
    assert summary["w1"] == pytest.approx(toy1d.wasserstein1_to_normal(samples), rel=1e-4)
    assert (tmp_path / "t" / "figure.png").stat().st_size > 10000
    bad = run_cli("jaxgan.toy1d", "--out", str(tmp_path / "t" / "toy1d.json"))
    assert bad.returncode == 2 and "is not a directory" in bad.stderr
