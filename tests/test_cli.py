"""The command lines end to end, as a user runs them, on small datasets in torchvision's formats.

The commands run in this process (``run_main``: the same ``main`` a shell runs, without the
interpreter's start-up per call); what only a real process shows (the exit status and the whole
of stderr as a shell sees them) is checked once per command, in real processes started together."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxgan import data as data_lib
from jaxgan.formats import write_cifar10, write_mnist
from jaxgan.report import read_scalars
from tests.conftest import REPO
from tests.conftest import TRAIN_FLAGS as SMALL
from tests.conftest import blob_images, run_main, spawn

# Before the background jobs (conftest, tests/beside.py): its commands run as processes, for the exit status
# and stderr a shell sees.
pytestmark = pytest.mark.processes

IMAGES_FILE = os.path.join("data", "MNIST", "raw", "train-images-idx3-ubyte")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    images, labels = blob_images(200, 28, 28, 1)
    write_mnist(str(root / "data"), images[..., 0], labels)
    proc = run_main("jaxgan.train", "--dataset", "MNIST", "--num_epochs", "2", *SMALL, cwd=str(root))
    return root, proc


@pytest.mark.quick
def test_train_cli_writes_grids_events_and_checkpoints(trained_run):
    root, proc = trained_run
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("epoch ")]
    assert len(lines) == 2 and "D loss" in lines[0] and "img/s" in lines[0]
    for epoch in (1, 2):
        grid = Image.open(root / "samples" / "mnist" / f"fake_images_{epoch}.png")
        assert grid.size == (8 * 30 + 2, 8 * 30 + 2)  # 8x8 images of 28 px, padding 2
    scalars = read_scalars(str(root / "runs" / "mnist"))
    for tag in ("Discriminator_Loss", "Generator_Loss", "D_real_mean", "D_fake_mean", "images_per_second"):
        assert [step for step, _ in scalars[tag]] == [1, 2], tag
        assert all(np.isfinite(v) for _, v in scalars[tag])
    assert [step for step, _ in scalars["Fake_Images"]] == [1, 2]
    # 7 steps an epoch: 6 full batches of 32 and the short last one of 8 (the reference's default).
    assert sorted(os.listdir(root / "checkpoints" / "mnist")) == ["14", "7"]


@pytest.mark.quick
def test_sample_cli_writes_png_grid_and_npy_array(trained_run):
    root, _ = trained_run
    proc = run_main("jaxgan.sample", "--dataset", "mnist", "--ckpt_dir", "checkpoints",
                    "--num_samples", "64", "--seed", "0", "--out", "samples.png", cwd=str(root))
    assert proc.returncode == 0, proc.stderr
    grid = np.asarray(Image.open(root / "samples.png"))
    assert grid.shape == (242, 242, 3) and grid.std() > 0
    proc = run_main("jaxgan.sample", "--num_samples", "10", "--out", "x.npy", "--bn", "running", cwd=str(root))
    assert proc.returncode == 0, proc.stderr
    arr = np.load(root / "x.npy")
    assert arr.shape == (10, 28, 28, 1) and arr.dtype == np.uint8
    # Same seed, same images; running statistics make each image independent of the batch.
    run_main("jaxgan.sample", "--num_samples", "4", "--out", "y.npy", "--bn", "running", cwd=str(root))
    np.testing.assert_array_equal(np.load(root / "y.npy"), arr[:4])


def test_train_cli_on_cifar10_pickles(tmp_path):
    # A model of its own (3,072 inputs), so its programs compile for this test alone: one hidden
    # layer each, and 96 images (three full batches: no short-batch program it does not test).
    images, labels = blob_images(96, 32, 32, 3)
    write_cifar10(str(tmp_path / "data"), images, labels)
    proc = run_main("jaxgan.train", "--dataset", "cifar10", "--num_epochs", "1", "--skip_checksums",
                    *SMALL, "--g_hidden", "16", "--d_hidden", "16", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    grid = Image.open(tmp_path / "samples" / "cifar10" / "fake_images_1.png")
    assert grid.size == (8 * 34 + 2, 8 * 34 + 2)
    proc = run_main("jaxgan.sample", "--dataset", "cifar10", "--num_samples", "3", "--out", "c.npy", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "c.npy").shape == (3, 32, 32, 3)


def test_resume_flag_continues_the_run(trained_run, tmp_path):
    root, _ = trained_run
    run = tmp_path / "run"
    shutil.copytree(root, run)  # the shared run stays as the other tests read it
    # It may change the learning rates (as --lr; --g_lr/--d_lr unset were 0: --lr).
    proc = run_main("jaxgan.train", "--dataset", "mnist", "--num_epochs", "3", "--resume", *SMALL,
                    "--g_lr", "1e-3", "--d_lr", "1e-4", cwd=str(run))
    assert proc.returncode == 0, proc.stderr
    assert "resumed from" in proc.stdout and "epoch 3/3" in proc.stdout
    assert "epoch 1/3" not in proc.stdout
    assert "resume with changed settings: d_lr 0.0 -> 0.0001, g_lr 0.0 -> 0.001, num_epochs 2 -> 3" in proc.stdout


@pytest.mark.parametrize("args,needle", [
    (["--dataset", "svhn"], "unknown dataset 'svhn'"),
    (["--lr", "-1"], "lr must be positive"),
    (["--seed", "abc"], "seed: cannot read 'abc'"),
    (["--batch_size", "0"], "batch_size must be positive"),
    (["--batch_size", "5000"], "larger than the dataset"),
    (["--loss", "hinge"], "loss must be one of"),
    (["--frobnicate"], "unrecognized arguments"),
    (["--sample_dir", IMAGES_FILE], "exists and is not a directory"),
    (["--ckpt_dir", "data/MNIST/raw/train-labels-idx1-ubyte/sub"], "Not a directory"),
    (["--config", "missing.yaml"], "cannot read config file"),
    (["--data_dir", "empty", "--dataset", "fashion_mnist"], "FashionMNIST data not found"),
    (["--num_epochs", "-3"], "num_epochs must be positive"),
    (["--d_steps", "1.5"], "d_steps: cannot read"),
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(trained_run, args, needle):
    root, _ = trained_run
    before = sorted(p.name for p in root.rglob("*"))
    proc = run_main("jaxgan.train", *SMALL, "--ckpt_dir", "other", *args, cwd=str(root))
    assert proc.returncode == 2
    assert needle in proc.stderr
    # (A traceback would have failed the test already: run_main lets exceptions through.)
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    # Nothing the user had was touched (the rejected run may at most create empty folders).
    assert set(before) <= set(p.name for p in root.rglob("*"))
    assert (root / IMAGES_FILE).stat().st_size == 200 * 784 + 16


@pytest.mark.quick
@pytest.mark.parametrize("args,needle", [
    (["--out", "x.jpg"], "must end in .png or .npy"),
    (["--ckpt_dir", "nowhere"], "no checkpoints for mnist"),
    (["--num_samples", "0"], "--num_samples must be >= 1"),
    (["--dataset", "svhn"], "unknown dataset"),
    (["--out", "no/such/folder/x.png"], "does not exist"),
    (["--seed", "-1"], "--seed must be a non-negative integer"),
])
def test_sample_cli_bad_input(tmp_path, args, needle):
    # These are refused before any checkpoint is read: no trained run needed.
    proc = run_main("jaxgan.sample", *args, cwd=str(tmp_path))
    assert proc.returncode == 2 and needle in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


BENCHMARK_BAD_INPUT = {
    "zero batch": (["--batch_sizes", "0"], "batch sizes must be in"),
    "letters": (["--batch_sizes", "a,b"], "--batch_sizes must be comma-separated integers"),
    "json path": (["--json", "out.txt"], "must be a file path ending in .json"),
    "impl": (["--impls", "tensorflow"], "--impls must name some of"),
    "device": (["--device", "tpu"], "invalid choice"),
}


@pytest.fixture(scope="module")
def benchmark_processes(tmp_path_factory):
    """python -m benchmarks.throughput run as the command it is (its main reads sys.argv), one real
    process per bad input, all started at once: each is quick, and they need not wait in line."""
    procs = {}
    for name, (args, _) in BENCHMARK_BAD_INPUT.items():
        cwd = tmp_path_factory.mktemp("bench")
        env = {**os.environ, "PYTHONPATH": REPO}  # python -m benchmarks.throughput, from another folder
        procs[name] = (cwd, subprocess.Popen([sys.executable, "-m", "benchmarks.throughput", *args], env=env,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(cwd)))
    yield {name: (cwd, *proc.communicate(timeout=120), proc.returncode) for name, (cwd, proc) in procs.items()}


@pytest.mark.quick
@pytest.mark.parametrize("name", list(BENCHMARK_BAD_INPUT))
def test_benchmark_bad_input(benchmark_processes, name):
    cwd, _, stderr, code = benchmark_processes[name]
    needle = BENCHMARK_BAD_INPUT[name][1]
    assert code == 2 and needle in stderr
    assert len(stderr.strip().splitlines()) == 1 and not list(cwd.iterdir())


def test_each_command_exits_2_with_one_line_as_a_shell_sees_it(trained_run):
    # Only a real process shows the exit status a shell gets and all of stderr: whatever the
    # interpreter's start-up, the imports, the backend's initialisation or a library's logging
    # write there, not only what the command prints. Each case fails late, after the command has
    # done most of its work (train: data read and devices set up; sample: the run's checkpoints
    # listed; evaluate: the judge loaded and the real images scored). Started together, they
    # cost one start-up's wall time rather than three.
    root, _ = trained_run
    # The real images as an earlier evaluate leaves them (cached as numpy beside the files), so
    # the process does not spend seconds and a gigabyte importing torchvision to read them.
    data_lib.load_numpy("mnist", str(root / "data"), train=False, download=False)
    before = sorted(p.name for p in root.rglob("*"))
    cases = {
        "train": (["jaxgan.train", *SMALL, "--ckpt_dir", "data/MNIST/raw/train-labels-idx1-ubyte/sub"],
                  "Not a directory"),
        "sample": (["jaxgan.sample", "--step", "999"], "no checkpoint at step 999 in checkpoints/mnist (have [7, 14])"),
        "evaluate": (["jaxgan.evaluate", "--no_download", "--best", "--ckpt_dir", "elsewhere"],
                     "no best checkpoint (train with --keep_best) for mnist"),
    }
    procs = {name: spawn(*argv, cwd=str(root)) for name, (argv, _) in cases.items()}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, (name, err)
        assert cases[name][1] in err, (name, err)
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, (name, err)
    assert set(before) <= set(p.name for p in root.rglob("*"))
    assert (root / IMAGES_FILE).stat().st_size == 200 * 784 + 16


def test_tensorboard_events_are_written_without_importing_torch(tmp_path):
    # tensorboardX's own import pulls torch in (about 0.5 GB and 1-3 s per process), which a run
    # whose dataset cache exists never needs: report.summary_writer_class keeps it out. A real
    # process, since this test process has imported torch long ago.
    code = ("import sys; from jaxgan.report import Reporter, read_scalars; r = Reporter(sys.argv[1], False); "
            "r.writer.add_scalar('Generator_Loss', 0.5, 3); r.close(); "
            "print('torch' in sys.modules, read_scalars(sys.argv[1])['Generator_Loss'])")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=REPO))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "[(3,", "0.5)]"]
