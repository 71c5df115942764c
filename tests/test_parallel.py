"""Data parallelism: 4 simulated CPU devices equal 1 device; two processes joined by
jax.distributed train one run; checkpoints move between topologies.

A topology exists only in processes of its own: simulated devices are read from XLA_FLAGS once,
when jax starts, and jax.distributed joins whole processes. Starting one costs far more than the
tiny runs in it, so each topology is launched once and runs all of its commands in turn
(tests/in_one_process.py): one process with 4 devices, and one pair of processes with 2 devices
each. Those are jobs on the suite's background thread (tests/beside.py), run while other modules
run here; the tests read their runs' outputs and compare them with one-device runs made here."""

import json
import os
import pathlib
import socket
import types

import jax
import numpy as np
import pytest

from jaxgan import checkpoint as ckpt_lib
from jaxgan import data as data_lib
from jaxgan import steps
from jaxgan.formats import write_image_folder, write_mnist
from jaxgan.config import dataset_name
from tests import beside
from tests.conftest import TRAIN_FLAGS, blob_images, cache_data, leaves_equal, restore_newest, small_config

FOUR, TWO, ONE = "parallel: four devices", "parallel: two processes", "parallel: one device"
# Several devices and processes are each a process of their own: the jobs (below) start them,
# on the background thread, and one more runs their one-device twins; every test here reads
# `four`'s results and the twins. Each job's `gb`: its process tree's peak, measured alone with
# psutil sampling every 0.1 s, 2026-12-03.
pytestmark = pytest.mark.beside(FOUR, TWO, ONE)

# small_config's steps_per_call too: the launched runs differ from the one-device runs made here
# in their topology alone.
FLAGS = [*TRAIN_FLAGS, "--data_dir", "data", "--steps_per_call", "4"]


def outputs(name):
    """Folders of their own for one of several runs that share a working folder."""
    return ["--ckpt_dir", f"{name}/checkpoints", "--sample_dir", f"{name}/samples", "--logdir", f"{name}/runs"]


def launch(run, cwd, runs, last=None, devices=4, tag="launch"):
    """Start one process with ``devices`` simulated CPU devices that runs each ``(name, flags)``
    of ``runs`` (jaxgan.train) in turn, then ``last`` as the process's own command; ``run``: the
    job's (tests/beside.py)."""
    spec = {"runs": [{"name": name, "module": "jaxgan.train", "args": [*FLAGS, *args]} for name, args in runs],
            "results": os.path.join(cwd, f"{tag}.results.json"),
            "last": {"module": "jaxgan.train", "args": [*FLAGS, *last]} if last else None}
    path = os.path.join(cwd, f"{tag}.spec.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    # Keep the test run's XLA flags (compiled alike, sharing its compile cache), add the devices.
    xla = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
    proc = run.spawn("tests.in_one_process", path, cwd=str(cwd), env={"XLA_FLAGS": xla, "JAX_PLATFORMS": "cpu"})
    proc.results_path = spec["results"]
    return proc


def finish(proc, timeout=600):
    """Wait for a launch: (exit code, stdout, stderr, {run name: {"code", "out", "err"}})."""
    out, err = proc.communicate(timeout=timeout)
    results = {}
    if os.path.exists(proc.results_path):
        with open(proc.results_path) as f:
            results = json.load(f)
    return proc.returncode, out, err, results


def run_output(results, name):
    """The stdout of run ``name``, which must have ended with exit code 0."""
    assert name in results, f"run {name} did not finish; finished: {sorted(results)}"
    assert results[name]["code"] == 0, results[name]["err"]
    return results[name]["out"]


def make_data(root):
    images, labels = blob_images(200, 28, 28, 1)  # as conftest's workdir: 6 batches of 32 and 8 more
    # In the order a folder of them lists them (by class, then by index): the same images as a PNG
    # folder then train, on any devices, the run these MNIST files train (tests/test_folder.py).
    order = np.argsort(labels, kind="stable")
    images, labels = images[order], labels[order]
    write_mnist(str(root / "data"), images[..., 0], labels)
    return images, labels


# A folder of the same images as PNG files, every one trained on (--held_out 0).
FOLDER_FLAGS = ["--dataset", "folder", "--data_dir", "pics", "--held_out", "0", "--image_size", "28",
                "--channels", "1", "--num_epochs", "2", "--last_batch", "drop"]
FOLDER = dict(dataset="folder", held_out=0.0, image_size=28, channels=1)
# The conditional runs' one-device twins.
COND = dict(conditional=True, num_epochs=2)
COND_POP = dict(conditional=True, num_epochs=1, population=4)
# Under this budget the 200 images (156,800 bytes) stay on the host: each chunk is sent to the devices.
STREAM_BUDGET = "120000"


# The one-device twins of the launched runs (``ONE``): name -> (its flags, small_config's overrides).
TWINS = {"one_drop": (["--num_epochs", "2", "--last_batch", "drop"], dict(num_epochs=2, last_batch="drop")),
         "one_partial": (["--num_epochs", "2"], dict(num_epochs=2)),
         "one_3": (["--num_epochs", "3"], dict(num_epochs=3)),
         "one_pop4": (["--population", "4", "--num_epochs", "1"], dict(num_epochs=1, population=4)),
         "one_cond": (["--conditional", "--num_epochs", "2"], COND),
         "one_condpop4": (["--conditional", "--population", "4", "--num_epochs", "1"], COND_POP)}


def restore_step(ckpt_dir, cfg, step):
    template = steps.build(cfg, abstract=True)[1]
    cks = ckpt_lib.Checkpoints(os.path.join(ckpt_dir, cfg.dataset))
    try:
        return cks.restore(template, step)[0]
    finally:
        cks.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def assert_close(a, b, atol=2e-4, rtol=1e-3):
    xs, ys = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(xs) == len(ys) and xs, (len(xs), len(ys))
    for x, y in zip(xs, ys):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=rtol)


def assert_label_tables_close(a, b):
    """G's and D's label embeddings of two conditional states, to 1e-6: they part from their
    one-device twins' by ~1e-8 (other summation orders), and a label drawn or paired wrongly on some
    device moves them by ~1e-4. (BatchNorm's scales and biases cannot be held so tight: Adam turns
    their near-zero gradients' rounding into steps of ~lr, 5e-5 here.)"""
    for part in ("g_params", "d_params"):
        np.testing.assert_allclose(np.asarray(getattr(a, part)["embed"]["table"]),
                                   np.asarray(getattr(b, part)["embed"]["table"]), atol=1e-6, rtol=1e-5)


def data_and_folder(folder):
    """``make_data``'s MNIST files and the same images as a PNG folder, both cached (a job's
    ``prepare``: on the main thread, so the launched processes need not import torch)."""
    root = pathlib.Path(folder)
    images, labels = make_data(root)
    write_image_folder(str(root / "pics"), images, labels)
    data_lib.load_folder(str(root / "pics"), 28, 1)
    cache_data(root / "data")


def data(folder):
    """``make_data``'s MNIST files, cached (a job's ``prepare``)."""
    make_data(pathlib.Path(folder))
    cache_data(pathlib.Path(folder) / "data")


@beside.job(FOUR, gb=0.56, prepare=data_and_folder)
def four_devices(folder, run):
    """One process with 4 devices: a fresh run, a resume of a one-device checkpoint, populations
    of 4 and 3, then, as its own command, a batch the devices cannot split."""
    root = pathlib.Path(folder)
    # The checkpoint that the 4 devices resume, written on one device first.
    first = run.spawn("jaxgan.train", *FLAGS, "--num_epochs", "1", *outputs("from_one"), cwd=folder)
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    proc = launch(run, root, [
        # 200 images, batch 32: six full batches split 8 per device; the short batch is dropped.
        ("drop", ["--num_epochs", "2", "--last_batch", "drop", *outputs("drop")]),
        # This one trains the short batch of 8 too: 2 images per device.
        ("from_one", ["--num_epochs", "2", "--resume", *outputs("from_one")]),
        # 4 members on 4 devices: each device trains one whole member.
        ("pop4", ["--population", "4", "--num_epochs", "1", *outputs("pop4")]),
        # 3 members do not divide by 4 devices: every device runs all three.
        ("pop3", ["--population", "3", "--num_epochs", "1", *outputs("pop3")]),
        # "drop" again, its data streamed from the host to the 4 devices chunk by chunk, in chunks of
        # 2 steps (two of them fit the budget; the chunk length changes no result: one scan of 4
        # steps is two of 2, bit for bit).
        ("stream4", ["--num_epochs", "2", "--last_batch", "drop", "--data_budget", STREAM_BUDGET,
                     "--steps_per_call", "2", *outputs("stream4")]),
        ("folder4", [*FOLDER_FLAGS, *outputs("folder4")]),
        # Conditional (issue 20): the batch and its labels split over the devices, the short batch
        # included; then a conditional population, one member per device.
        ("cond4", ["--conditional", "--num_epochs", "2", *outputs("cond4")]),
        ("condpop4", ["--conditional", "--population", "4", "--num_epochs", "1", *outputs("condpop4")]),
    ], last=["--batch_size", "30"])
    return (folder, *finish(proc))


@beside.job(TWO, gb=1.02, prepare=data)
def two_processes(folder, run):
    """Two processes of 2 devices each, joined once by the first run's flags; the later runs in
    the same processes are two-process runs as well."""
    root = pathlib.Path(folder)
    address = f"127.0.0.1:{_free_port()}"
    procs = [launch(run, root, [
        ("solo", ["--num_epochs", "2", "--coordinator_address", address, "--num_processes", "2",
                  "--process_id", str(i), *outputs("solo")]),
        ("resume", ["--num_epochs", "3", "--resume", *outputs("solo")]),
        ("pop4", ["--population", "4", "--num_epochs", "1", *outputs("pop4")]),
        ("cond", ["--conditional", "--num_epochs", "2", *outputs("cond")]),
    ], devices=2, tag=f"process{i}") for i in range(2)]
    done = [finish(p) for p in procs]
    for code, _, err, _ in done:
        assert code == 0, err
    return folder, [d[3] for d in done]


@beside.job(ONE, gb=0.5, prepare=data)
def one_device_twins(folder, run):
    """The launched runs' twins, one after another in one process of one device: the same
    flags, the same data."""
    root = pathlib.Path(folder)
    proc = launch(run, root, [(name, [*flags, *outputs(name)]) for name, (flags, _) in TWINS.items()], devices=1,
                  tag="one")
    code, _, err, results = finish(proc)
    assert code == 0, err
    for name in TWINS:
        run_output(results, name)
    return folder


def twins():
    """name -> the final state of each one-device twin, restored from its checkpoint."""
    root = pathlib.Path(beside.result(ONE))
    return {name: restore_newest(str(root / name / "checkpoints"),
                                 small_config(root / name, data_dir=str(root / "data"), **kw))[0]
            for name, (_, kw) in TWINS.items()}


@pytest.fixture(scope="module")
def four():
    """`four_devices`' results, and its runs' one-device twins."""
    folder, code, out, err, results = beside.result(FOUR)
    one = twins()
    ref = {"drop": one["one_drop"], "partial": one["one_partial"], "pop4": one["one_pop4"],
           "cond": one["one_cond"], "condpop4": one["one_condpop4"], 3: one["one_3"]}
    return types.SimpleNamespace(root=pathlib.Path(folder), code=code, out=out, err=err, results=results, ref=ref)


@pytest.fixture(scope="module")
def two(four):
    """`two_processes`' results, and the one-device twins of its runs."""
    folder, results = beside.result(TWO)
    ref = {2: four.ref["partial"], 3: four.ref[3], "pop4": four.ref["pop4"], "cond": four.ref["cond"]}
    return types.SimpleNamespace(root=pathlib.Path(folder), results=results, ref=ref)


def test_four_devices_equal_one_device_and_restore_on_one(four):
    out = run_output(four.results, "drop")
    assert "on 4 cpu devices" in out
    cfg = small_config(four.root / "one_drop", data_dir=str(four.root / "data"), num_epochs=2, last_batch="drop")
    one = four.ref["drop"]
    state, record, step = restore_newest(str(four.root / "drop" / "checkpoints"), cfg)  # written on 4, read on 1
    assert step == int(one.step) == 12
    # Same mathematics, other summation order: equal to float tolerance, not bit for bit.
    assert_close(state.g_params, one.g_params)
    assert_close(state.d_params, one.d_params)
    assert_close(state.g_stats, one.g_stats)


def test_a_streamed_run_on_four_devices_is_the_resident_run_bit_for_bit(four):
    out = run_output(four.results, "stream4")
    assert "on 4 cpu devices" in out and "streaming the data: 156,800 bytes exceed --data_budget" in out
    cfg = small_config(four.root / "one_drop", data_dir=str(four.root / "data"), num_epochs=2, last_batch="drop")
    streamed, _, step = restore_newest(str(four.root / "stream4" / "checkpoints"), cfg)
    resident, _, at = restore_newest(str(four.root / "drop" / "checkpoints"), cfg)
    assert step == at == 12
    assert leaves_equal(streamed, resident)  # the same program on the same devices: bit for bit


def test_a_folder_on_four_devices_is_its_mnist_route_bit_for_bit(four):
    out = run_output(four.results, "folder4")
    assert "on 4 cpu devices" in out and "folder pics: 200 images, 10 classes, 28x28x1" in out
    cfg = small_config(four.root / "one_folder", data_dir=str(four.root / "pics"), **FOLDER)
    ckpt = os.path.join(four.root / "folder4" / "checkpoints", dataset_name("folder", str(four.root / "pics")))
    cks = ckpt_lib.Checkpoints(ckpt)
    try:
        state, _, step = cks.restore(steps.build(cfg, abstract=True)[1])
    finally:
        cks.close()
    mnist = small_config(four.root / "one_drop", data_dir=str(four.root / "data"))
    resident, _, at = restore_newest(str(four.root / "drop" / "checkpoints"), mnist)
    assert step == at == 12
    assert leaves_equal(state, resident)  # the same images through the folder loader: the same run


def test_batch_that_does_not_divide_by_the_devices_is_refused(four):
    # The launch's own command: its exit code and stderr are the process's, as a shell sees them.
    assert four.code == 2, four.err
    assert "batch_size 30 does not divide by the 4 devices" in four.err and len(four.err.strip().splitlines()) == 1


def test_checkpoint_from_one_device_resumes_on_four(four):
    out = run_output(four.results, "from_one")
    assert "resumed from" in out and "(step 7)" in out and "on 4 cpu devices" in out
    # It trained the second epoch alone: a resume that restarted would train both, and end the same.
    assert [line.split()[1] for line in out.splitlines() if line.startswith("epoch ")] == ["2/2"]
    cfg = small_config(four.root / "from_one", data_dir=str(four.root / "data"))
    state, _, step = restore_newest(str(four.root / "from_one" / "checkpoints"), cfg)
    assert step == 14 and bool(steps.is_finite(state))
    # Its second epoch, short batch included, trained on 4 devices as on one.
    assert_close(state.g_params, four.ref["partial"].g_params)


def test_two_processes_train_one_run(two):
    outs = [run_output(r, "solo") for r in two.results]
    assert "on 4 cpu devices (cpu) in 2 processes" in outs[0]
    assert "epoch 2/2" in outs[0] and "epoch" not in outs[1]  # only process 0 reports
    cfg = small_config(two.root / "one_3", data_dir=str(two.root / "data"))
    ckpt = str(two.root / "solo" / "checkpoints")
    assert_close(restore_step(ckpt, cfg, 14).g_params, two.ref[2].g_params)
    # --resume works across processes as well.
    outs = [run_output(r, "resume") for r in two.results]
    assert "resumed from" in outs[0] and "in 2 processes" in outs[0]
    assert [line.split()[1] for line in outs[0].splitlines() if line.startswith("epoch ")] == ["3/3"]
    assert not [line for line in outs[1].splitlines() if line.startswith("epoch ")]
    # One checkpoint per epoch between the processes, grids from process 0 alone, no lock left.
    assert sorted(os.listdir(two.root / "solo" / "checkpoints" / "mnist")) == ["14", "21", "7"]
    assert sorted(os.listdir(two.root / "solo" / "samples" / "mnist")) == [
        "fake_images_1.png", "fake_images_2.png", "fake_images_3.png"]
    assert_close(restore_step(ckpt, cfg, 21).g_params, two.ref[3].g_params)


def test_a_population_splits_its_members_over_devices_and_processes(four, two):
    assert "a population of 4 split over the devices" in run_output(four.results, "pop4")
    cfg = small_config(four.root / "one_pop4", data_dir=str(four.root / "data"), num_epochs=1, population=4)
    one = four.ref["pop4"]  # the same population on one device
    state, _, step = restore_newest(str(four.root / "pop4" / "checkpoints"), cfg)
    assert step == 7
    assert_close(state.g_params, one.g_params)
    assert_close(state.d_params, one.d_params)
    # Two processes of two devices each, one checkpoint between them.
    out = run_output(two.results[0], "pop4")
    assert "a population of 4 split over the devices" in out and "in 2 processes" in out
    state, _, _ = restore_newest(str(two.root / "pop4" / "checkpoints"), cfg)
    assert_close(state.g_params, two.ref["pop4"].g_params)
    assert "a population of 3 on every device" in run_output(four.results, "pop3")


def test_a_conditional_run_on_devices_and_processes_equals_one_device(four, two):
    cfg = small_config(four.root / "one_cond", data_dir=str(four.root / "data"), **COND)
    one = four.ref["cond"]
    assert int(one.step) == 14
    # The batch and its labels split over 4 devices, the short batch of 8 too (2 per device).
    assert "on 4 cpu devices" in run_output(four.results, "cond4")
    state, _, step = restore_newest(str(four.root / "cond4" / "checkpoints"), cfg)
    assert step == 14
    assert_label_tables_close(state, one)
    for part in ("g_params", "d_params", "g_stats"):
        assert_close(getattr(state, part), getattr(one, part))
    # Two processes of 2 devices each, one checkpoint and one class-row grid between them.
    assert "in 2 processes" in run_output(two.results[0], "cond")
    state, _, step = restore_newest(str(two.root / "cond" / "checkpoints"), cfg)
    assert step == 14
    assert_label_tables_close(state, one)
    assert_close(state.g_params, one.g_params)
    assert_close(state.d_params, one.d_params)
    assert sorted(os.listdir(two.root / "cond" / "samples" / "mnist")) == ["fake_images_1.png", "fake_images_2.png"]


def test_a_conditional_population_splits_its_members_over_devices(four):
    assert "a population of 4 split over the devices" in run_output(four.results, "condpop4")
    cfg = small_config(four.root / "one_condpop4", data_dir=str(four.root / "data"), **COND_POP)
    one = four.ref["condpop4"]
    state, _, step = restore_newest(str(four.root / "condpop4" / "checkpoints"), cfg)
    assert step == 7
    assert np.asarray(state.g_params["embed"]["table"]).shape == (4, 10, 10)  # a table per member
    assert_label_tables_close(state, one)
    assert_close(state.g_params, one.g_params)
    assert_close(state.d_params, one.d_params)
