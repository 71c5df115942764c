"""A judge for your folder, and conditional GANs on it: ``evaluate --train_classifier`` on a
labelled folder trains the metric classifier on its training split, keyed to that folder; every
command then scores with it (``--eval_every``, ``evaluate``, ``evaluate --samples``) against the
folder's held-out split; ``--conditional`` reads the folder's class subfolders as its labels. An
unlabelled folder is told, in one line, why it gets no metrics. Real PNG folders, read through
torchvision."""

import hashlib
import json
import os
import types

import numpy as np
import pytest
from PIL import Image

from jaxgan import data as data_lib
from jaxgan.config import Config, dataset_name
from jaxgan.formats import write_image_folder
from tests.conftest import TRAIN_FLAGS, blob_images, run_main

HELD_OUT = 0.25  # not the default 0.1: the judge's split must reach every command that scores
CLASSES = 10
SIDE = 28  # MNIST's shape: the judge and the runs compile the suite's MNIST programs (shared cache)


def held_out_paths(paths, fraction):
    # The documented rule (docs/data.md), computed here from the rule itself: held out when the
    # SHA-256 of the '/'-separated relative path, read as a number in [0, 1), is below the fraction.
    return [p for p in paths if int.from_bytes(hashlib.sha256(p.encode()).digest()[:8], "big") / 2**64 < fraction]


def run_flags(work, *extra):
    return [*TRAIN_FLAGS, "--dataset", "folder", "--image_size", str(SIDE), "--num_epochs", "1",
            "--ckpt_dir", str(work / "ck"), "--sample_dir", str(work / "samples"), "--logdir", str(work / "runs"),
            *extra]


@pytest.fixture(scope="module")
def judged(tmp_path_factory):
    """A labelled folder of ten classes (``a/pics``), its judge, and a run scored while it trains."""
    work = tmp_path_factory.mktemp("folder_judge")
    images, labels = blob_images(300, SIDE, SIDE, 1, seed=4)  # a bright bar's position is the class
    root = str(work / "a" / "pics")
    paths = write_image_folder(root, images, labels)
    judge = run_main("jaxgan.evaluate", "--dataset", "folder", "--data_dir", root, "--train_classifier",
                     "--image_size", str(SIDE), "--held_out", str(HELD_OUT), "--classifier_epochs", "2",
                     "--ckpt_dir", str(work / "ck"))
    assert judge.returncode == 0, judge.stderr
    train = run_main("jaxgan.train", *run_flags(work, "--data_dir", root, "--held_out", str(HELD_OUT),
                                                "--eval_every", "1", "--keep_best", "fd"))
    assert train.returncode == 0, train.stderr
    return types.SimpleNamespace(work=work, root=root, images=images, labels=labels, paths=paths,
                                 key=dataset_name("folder", root), judge=judge, train=train)


def test_a_labelled_folders_judge_is_keyed_to_the_folder_and_learns_its_classes(judged):
    from jaxgan import classifier as clf_lib

    assert judged.key.startswith("pics-") and judged.key != "pics"
    record = clf_lib.record(str(judged.work / "ck"), judged.key)
    held = held_out_paths(judged.paths, HELD_OUT)
    assert 0 < len(held) < len(judged.paths)
    assert record["num_classes"] == CLASSES and record["image_shape"] == [1, SIDE, SIDE]
    assert record["held_out"] == HELD_OUT and record["classes"] == [str(c) for c in range(CLASSES)]
    assert (record["train_images"], record["test_images"]) == (len(judged.paths) - len(held), len(held))
    # The bar's position is the class: a judge that learned anything reads it far above chance.
    assert record["test_accuracy"] > 0.6
    assert f"classifier for {judged.key}: test accuracy" in judged.judge.stdout


def test_every_command_scores_a_folder_run_with_its_judge_against_its_held_out_split(judged, tmp_path):
    held = held_out_paths(judged.paths, HELD_OUT)
    # --eval_every: the trainer scored each epoch with the folder's judge and kept the best.
    assert "eval at epoch 1" in judged.train.stdout and "best so far by frechet_distance" in judged.train.stdout
    best = judged.work / "ck" / judged.key / "best"
    assert any(p.isdigit() for p in os.listdir(best))
    out = str(tmp_path / "e.json")
    r = run_main("jaxgan.evaluate", "--dataset", "folder", "--data_dir", judged.root, "--ckpt_dir",
                 str(judged.work / "ck"), "--json", out)
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        result = json.load(f)
    assert result["dataset"] == judged.key and result["judge"]["name"].startswith(f"own:{judged.key}@")
    assert result["held_out_images"] == len(held)
    assert result["reference_images"] == len(judged.paths) - len(held)
    ceiling = result["rows"]["held-out real (ceiling)"]
    assert ceiling["n"] == len(held) and ceiling["num_classes"] == CLASSES
    # --samples: the folder's own held-out images, handed in as a file, score as the ceiling does.
    theirs = judged.images[[int(os.path.splitext(os.path.basename(p))[0]) for p in held]]  # <class>/<index>.png
    np.save(tmp_path / "theirs.npy", theirs)
    r = run_main("jaxgan.evaluate", "--dataset", "folder", "--data_dir", judged.root, "--ckpt_dir",
                 str(judged.work / "ck"), "--samples", str(tmp_path / "theirs.npy"), "--json", out)
    assert r.returncode == 0, r.stderr
    with open(out) as f:
        rows = json.load(f)["rows"]
    mine = rows["samples (theirs.npy)"]
    for key in ("frechet_distance", "classifier_score", "classes_covered", "precision", "recall"):
        assert mine[key] == rows["held-out real (ceiling)"][key], key


def test_a_folder_of_the_same_name_elsewhere_has_no_judge_and_its_own_is_another(judged, tmp_path):
    other = str(tmp_path / "b" / "pics")
    write_image_folder(other, judged.images[:60], judged.labels[:60])
    key = dataset_name("folder", other)
    assert key.startswith("pics-") and key != judged.key
    ck = str(judged.work / "ck")
    r = run_main("jaxgan.evaluate", "--dataset", "folder", "--data_dir", other, "--ckpt_dir", ck,
                 "--samples", os.path.join(judged.root, "0"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert f"no classifier for {key}" in r.stderr and "--train_classifier --dataset folder" in r.stderr


def test_an_unlabelled_folder_is_told_why_it_has_no_metrics(tmp_path):
    flat = str(tmp_path / "flat")
    write_image_folder(flat, blob_images(20, SIDE, SIDE, 1)[0])  # fewer images than a batch, too
    ck = str(tmp_path / "ck")
    for command in (["jaxgan.evaluate", "--dataset", "folder", "--data_dir", flat, "--ckpt_dir", ck,
                     "--train_classifier"],
                    ["jaxgan.evaluate", "--dataset", "folder", "--data_dir", flat, "--ckpt_dir", ck],
                    ["jaxgan.train", *run_flags(tmp_path, "--data_dir", flat, "--eval_every", "1")]):
        r = run_main(*command)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, (command, r.stderr)
        assert "has no class subfolders, so no labels" in r.stderr and "none remains" in r.stderr
        assert r.stdout == ""  # said before the folder was read
    assert not os.path.exists(ck)  # nothing written: no judge, no run folder
    assert not os.path.exists(os.path.join(flat, ".jaxgan"))  # and nothing in the user's folder


def test_a_folder_whose_classes_cannot_all_be_learned_is_refused(tmp_path):
    images, labels = blob_images(40, SIDE, SIDE, 1)
    ck = str(tmp_path / "ck")
    judge = ["jaxgan.evaluate", "--dataset", "folder", "--ckpt_dir", ck, "--train_classifier", "--image_size",
             str(SIDE)]
    one = str(tmp_path / "one")
    write_image_folder(one, images, np.zeros(40, int))  # one class folder: nothing to tell apart
    r = run_main(*judge, "--data_dir", one)
    assert r.returncode == 2 and "has one class ('0')" in r.stderr and r.stderr.count("\n") == 1
    empty = str(tmp_path / "empty_class")  # a class folder without images, as ImageFolder refuses it
    write_image_folder(empty, images, labels % 2)
    os.makedirs(os.path.join(empty, "zz"))
    r = run_main(*judge, "--data_dir", empty)
    assert r.returncode == 2 and "class folder 'zz' holds no images" in r.stderr and r.stderr.count("\n") == 1
    write_image_folder(str(tmp_path / "two"), images, labels % 2)  # fine, but for a split too small below
    unread = str(tmp_path / "unreadable_class")  # a class whose every image fails to decode
    write_image_folder(unread, images, labels % 2)
    os.makedirs(os.path.join(unread, "junk"))
    for i in range(3):
        with open(os.path.join(unread, "junk", f"{i}.png"), "wb") as f:
            f.write(b"not a png")
    r = run_main(*judge, "--data_dir", unread)
    assert r.returncode == 2 and "no image of class 'junk' could be read" in r.stderr and r.stderr.count("\n") == 1
    r = run_main(*judge, "--data_dir", unread.replace("unreadable_class", "two"), "--held_out", "0.001")
    assert r.returncode == 2 and "each needs at least 2" in r.stderr, r.stderr
    r = run_main(*judge, "--data_dir", str(tmp_path / "empty_class" / "0"), "--held_out", "0.01")
    assert r.returncode == 2 and "has no class subfolders" in r.stderr  # a class folder alone is flat
    assert not os.path.exists(ck)


def test_a_run_and_a_judge_of_other_splits_or_channels_are_refused_before_anything_is_written(judged, tmp_path):
    ck = judged.work / "ck"
    runs_before = sorted(os.listdir(ck))
    # The judge holds out 0.25 of the folder: a run that held out 0.1 trained on part of its ceiling.
    r = run_main("jaxgan.train", *run_flags(tmp_path, "--data_dir", judged.root, "--eval_every", "1",
                                            "--ckpt_dir", str(ck)))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "the run holds out 0.1 of the folder (--held_out), its judge 0.25" in r.stderr
    r = run_main("jaxgan.train", *run_flags(tmp_path, "--data_dir", judged.root, "--eval_every", "1",
                                            "--held_out", str(HELD_OUT), "--channels", "3", "--ckpt_dir", str(ck)))
    assert r.returncode == 2 and "reads 1-channel ones" in r.stderr and r.stderr.count("\n") == 1
    # Neither left a run folder behind: no samples, no logs, no new checkpoint folder.
    assert not (tmp_path / "samples").exists() and not (tmp_path / "runs").exists()
    assert sorted(os.listdir(ck)) == runs_before
    r = run_main("jaxgan.evaluate", "--dataset", "mnist", "--train_classifier", "--image_size", "16")
    assert r.returncode == 2 and "for --train_classifier on --dataset folder only" in r.stderr


def test_a_conditional_run_on_a_labelled_folder_asks_for_its_classes(judged, tmp_path):
    flags = run_flags(tmp_path, "--data_dir", judged.root, "--held_out", str(HELD_OUT), "--conditional")
    r = run_main("jaxgan.train", *flags)
    assert r.returncode == 0, r.stderr
    # The classic grid: one row per class of the folder, 8 columns, each SIDE pixels with
    # torchvision's make_grid padding of 2.
    grid = Image.open(tmp_path / "samples" / judged.key / "fake_images_1.png")
    assert grid.size == (8 * (SIDE + 2) + 2, CLASSES * (SIDE + 2) + 2)
    out = str(tmp_path / "twos.npz")
    ck = ["--dataset", "folder", "--data_dir", judged.root, "--ckpt_dir", str(tmp_path / "ck")]
    r = run_main("jaxgan.sample", *ck, "--label", "2", "--num_samples", "5", "--out", out)
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:
        assert z["images"].shape == (5, SIDE, SIDE, 1) and z["labels"].tolist() == [2] * 5
    r = run_main("jaxgan.sample", *ck, "--label", "10", "--out", out)
    assert r.returncode == 2 and "the run has 10 classes (0..9)" in r.stderr
    # Its judge is the folder's, copied here: evaluate reports the asked classes, one row each.
    import shutil

    shutil.copytree(judged.work / "ck" / "classifier", tmp_path / "ck" / "classifier")
    r = run_main("jaxgan.evaluate", *ck, "--json", str(tmp_path / "c.json"))
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "c.json") as f:
        assert sorted(map(int, json.load(f)["conditional"].popitem()[1]["classes"])) == list(range(CLASSES))
    # The folder's class count is read, not assumed: three subfolders are three classes, and the
    # grids of a folder of fewer classes than --grid_classes show each of them once.
    three = str(tmp_path / "three")
    keep = judged.labels < 3
    write_image_folder(three, judged.images[keep], judged.labels[keep])
    r = run_main("jaxgan.train", *run_flags(tmp_path, "--data_dir", three, "--conditional", "--classes", "4",
                                            "--ckpt_dir", str(tmp_path / "ck4")))
    assert r.returncode == 2 and "--classes 4, but folder" in r.stderr and "has 3 class subfolders" in r.stderr
    assert data_lib.resolve_folder(Config(dataset="folder", data_dir=three, conditional=True)).grid_rows == 3
    flat = str(tmp_path / "flat")
    write_image_folder(flat, judged.images[:40])
    r = run_main("jaxgan.train", *run_flags(tmp_path, "--data_dir", flat, "--conditional",
                                            "--ckpt_dir", str(tmp_path / "ckf")))
    assert r.returncode == 2 and "--conditional needs class labels" in r.stderr and r.stderr.count("\n") == 1
    assert not os.path.exists(os.path.join(flat, ".jaxgan"))  # refused before its images were read
    assert not os.path.exists(tmp_path / "ck4") and not os.path.exists(tmp_path / "ckf")
