"""Shared test helpers: tiny datasets in torchvision's on-disk formats, small configs, and the
weight copy from the PyTorch reference modules into jaxgan's Flax ones."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import os
import subprocess
import sys
import tempfile
import time

# Compiling the same small programs again in every test (and in every CLI subprocess) dominates
# the suite's time: share XLA's persistent compilation cache across the session's processes.
# jaxgan's commands read JAXGAN_COMPILE_CACHE (never the user's own cache folder in tests); the
# in-process runs get the same cache through runtime.setup below.
os.environ.setdefault("JAXGAN_COMPILE_CACHE", os.path.join(tempfile.gettempdir(), "jaxgan-test-xla-cache"))
# The tests' programs are tiny: compiling them costs far more than running them. LLVM's
# optimisation passes are half of that (level 0), and XLA:CPU's MLIR fusion emitters most of the
# rest: with its classic emitters a DCGAN training step compiles in 3.2 s instead of 8.4 s. Both
# change how fast the generated code runs, not the mathematics (XLA:CPU never uses fast-math
# reassociation; a fused loop may round a float64 sum in another order, 1e-16 relative), and every
# comparison in the suite is between programs compiled alike or within a float tolerance. Set
# before jax is imported; the CLI subprocesses inherit them, so they share the compile cache with
# the in-process runs (XLA's flags are part of its key). The benchmarks' child rows started here
# inherit them too, and record them in their env: under pytest a row's speed is never a figure.
for _flag in ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false"):
    if _flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

import jax
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from jaxgan import runtime

# numpy's BLAS (the metrics' float64 linear algebra) and torch's intra-op pool (the parity
# oracles) with two threads on two busy cores thrash: a call that takes 5 ms on one thread takes
# 0.02-0.5 s, three small WGAN iterations 2-8 s instead of 0.17 s. One thread each, here and in
# the subprocesses (torch reads OMP_NUM_THREADS when it is imported; the benchmark's child rows
# set their own threads). XLA's own thread pool is not affected.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
threadpool_limits(1, user_api="blas")

runtime.setup()

# Where the suite's time goes (scripts/suite_timings.py reads it): per test, the seconds this
# process spent tracing, lowering and compiling with XLA, and the real subprocesses it started.
_COST_EVENTS = {"/jax/core/compile/jaxpr_trace_duration": "trace_s",
                "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
                "/jax/core/compile/backend_compile_duration": "compile_s"}
_cost = {"trace_s": 0.0, "lower_s": 0.0, "compile_s": 0.0, "subprocesses": 0}
_per_test: dict[str, dict] = {}


def _on_duration(event: str, duration: float, **kwargs) -> None:
    if event in _COST_EVENTS:
        _cost[_COST_EVENTS[event]] += duration


jax.monitoring.register_event_duration_secs_listener(_on_duration)


# Tests whose point is a real process spend most of their time waiting for it, and this process,
# which compiles on one core, leaves the other idle. Their process work runs as jobs on one
# background thread (tests/beside.py), one job at a time, beside the tests that start no process
# of their own. The order: the tests marked `processes` (they start their own processes, a
# module's pytestmark or a test's own mark) first; then the others, beside which the jobs run
# (tests/test_doc_commands.py's benchmark commands first, then each `beside` mark's jobs); then
# the tests marked `beside`, which read their jobs' results (finding them done, or waiting);
# then the doc-command module. The thread records any other child of this process seen beside a
# benchmark command's process, and a test there fails on it (a test that starts a process needs
# the mark). Only the jobs that a selected test reads run; without the thread (nothing to run
# beside), a test runs its job itself.
DOC_COMMANDS = "test_doc_commands.py"
_background_from: str | None = None
_background_jobs: list[str] = []
# Of the others, these grow this process past ~1.6 GB (its resident peak per module, measured
# alone on 2026-12-02: test_zoo 2.20, test_steps 2.11, test_conditional 1.81, test_models and
# test_population 1.71, test_conditional_conv 1.67, test_evaluate and test_wgan_gp 1.61; the
# rest 1.19-1.58). Beside them, this process and a ~1 GB benchmark tree pass the thread's cap and
# the benchmark process is stopped and run again: twice stopped, it waits for the doc-command
# module (session 9: profile_torch and throughput, 41 s waited). So they run after the lighter
# modules, beside which the largest jobs start; the two largest modules come last, after those
# beside which the smaller jobs (~0.5 GB) still fit. Only the suite's time depends on these
# lists: a module missing from them, or listed wrongly, runs all the same.
LARGEST = ("test_zoo.py", "test_steps.py")
HEAVY = ("test_zoo.py", "test_steps.py", "test_conditional.py", "test_models.py", "test_population.py",
         "test_conditional_conv.py", "test_evaluate.py", "test_wgan_gp.py")


def _group(item) -> float:
    """0: starts processes; 1: beside which the jobs start (1.5: the heavy ones after them, 1.6:
    the largest of those); 1.75: reads its jobs' results; 2: the doc-command module."""
    if item.path.name == DOC_COMMANDS:
        return 2
    if item.get_closest_marker("beside"):
        return 1.75
    if item.get_closest_marker("processes"):
        return 0
    if item.path.name in HEAVY:  # the two largest last: the background jobs fit beside the others
        return 1.6 if item.path.name in LARGEST else 1.5
    return 1


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=_group)  # stable: each group's modules and tests in their collected order


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    # After -m/-k deselection: a job runs only when a selected test reads its result.
    global _background_from, _background_jobs
    jobs = []
    if any(_group(i) == 2 and "runs" in getattr(i, "fixturenames", ()) for i in session.items):
        from tests import test_doc_commands

        jobs += test_doc_commands.process_jobs()
    for item in session.items:
        for mark in item.iter_markers("beside"):
            jobs += [name for name in mark.args if name not in jobs]
    beside = [item.nodeid for item in session.items if 1 <= _group(item) < 1.75]
    _background_from, _background_jobs = (beside[0], jobs) if beside and jobs else (None, [])


def pytest_runtest_setup(item):
    if _background_from is not None and item.nodeid == _background_from:
        from tests import beside

        beside.start(_background_jobs)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    # Around setup, call and teardown: module fixtures' work counts for the test that sets them up.
    before, start = dict(_cost), time.time()
    yield
    _per_test[item.nodeid] = {**{k: _cost[k] - before[k] for k in _cost}, "start": start, "end": time.time()}
    if os.environ.get("JAXGAN_SUITE_COST"):
        import psutil

        _per_test[item.nodeid].update(rss_end=psutil.Process().memory_info().rss,
                                      live_bytes=sum(a.nbytes for a in jax.live_arrays()))


def pytest_sessionfinish(session, exitstatus):
    from tests import beside

    beside.finish()  # a job still running at the end is stopped; the jobs' folders go
    path = os.environ.get("JAXGAN_SUITE_COST")
    if path:
        import json

        with open(path, "w") as f:
            json.dump(_per_test, f)



def release_compiled_programs() -> None:
    """Drop every compiled program this process holds and hand the freed heap back to the system.

    JAX keeps each executable it compiles in in-memory caches for the life of the process (and
    jaxgan.program memoizes a few Programs): across the suite's test modules, each compiling its
    own small programs, that grew the pytest process from 1 GB to 5 GB. The persistent disk cache
    still serves any program that comes back."""
    import ctypes
    import gc

    from jaxgan import program

    program._compile_run.cache_clear()
    jax.clear_caches()
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@pytest.fixture(autouse=True, scope="module")
def _release_after_each_module():
    yield
    release_compiled_programs()


from jaxgan.config import Config, validate
from jaxgan.formats import write_cifar10, write_mnist

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def blob_images(n: int, h: int, w: int, c: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Structured uint8 images (a bright bar whose position is the label) plus labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 40, (n, h, w, c)).astype(np.uint8)
    for i, y in enumerate(labels):
        top = 2 + int(y) * (h - 6) // 10
        images[i, top:top + 3, 3:w - 3, :] = 230
    return images, labels


@pytest.fixture
def cifar_root(tmp_path):
    images, labels = blob_images(150, 32, 32, 3, seed=1)
    write_cifar10(str(tmp_path / "data"), images, labels)
    return str(tmp_path / "data")


# The command-line twin of small_config, for tests that run the real commands.
TRAIN_FLAGS = ["--g_hidden", "16,32", "--d_hidden", "32,16", "--latent_dim", "8", "--batch_size", "32",
               "--no_download", "--no_progress"]


def leaves_equal(a, b) -> bool:
    """Every leaf of two pytrees bit-identical."""
    return all(np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def leaves_all_differ(a, b) -> bool:
    """Every leaf of two pytrees changed."""
    return all(not np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def small_config(tmp_path, **overrides) -> Config:
    """A fast config: narrow layers, outputs under tmp_path, no progress bar."""
    values = dict(dataset="mnist", data_dir=str(tmp_path / "data"), download=False,
                  sample_dir=str(tmp_path / "samples"), logdir=str(tmp_path / "runs"),
                  ckpt_dir=str(tmp_path / "ckpt"), g_hidden=(16, 32), d_hidden=(32, 16),
                  batch_size=32, num_epochs=1, latent_dim=8, progress=False, steps_per_call=4)
    values.update(overrides)
    return validate(Config(**values))


def spawn(module: str, *args: str, cwd: str | None = None, env: dict | None = None) -> subprocess.Popen:
    """Start ``python -m <module> args...`` as a user would, capturing its output."""
    _cost["subprocesses"] += 1
    full_env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), **(env or {}))
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_cli(module: str, *args: str, cwd: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``python -m <module> args...`` to completion in a new process; returns its exit code and
    output. For what only a real process shows: exit codes seen by a shell, signals, a fresh
    process's compile cache, several devices or processes. Everything else: :func:`run_main`."""
    proc = spawn(module, *args, cwd=cwd)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_main(module: str, *args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    """Call ``<module>.main(args)`` in this process, in folder ``cwd``, as ``python -m`` would run
    it: its exit code (argparse's ``SystemExit`` included) and what it printed. The command's code
    is the same as in a subprocess; what is saved is the interpreter's start-up and imports (~4 s
    a call) and, since programs are cached per process (``jaxgan.program``), their compilation.
    An exception that would print a traceback in a real process propagates and fails the test."""
    main = importlib.import_module(module).main
    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as e:  # argparse's errors and --help
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(old)
    return subprocess.CompletedProcess([module, *args], code, out.getvalue(), err.getvalue())


@pytest.fixture
def workdir(tmp_path):
    """A folder holding ``data/`` with 200 MNIST-format images (6 batches of 32 and 8 more)."""
    images, labels = blob_images(200, 28, 28, 1)
    write_mnist(str(tmp_path / "data"), images[..., 0], labels)
    return tmp_path


def cache_data(data_dir: str) -> None:
    """Build jaxgan's uint8 cache of the MNIST files in ``data_dir`` in this process, so that runs
    launched on them read the cache instead of the files: torchvision would cost each launched
    process ~0.65 GB of imports (torch) beside this one. For tests whose point is not the loading."""
    from jaxgan import data as data_lib

    data_lib.load_numpy("mnist", str(data_dir), download=False)


def restore_newest(ckpt_dir: str, cfg: Config):
    """(state, record, step) of the newest checkpoint in ``<ckpt_dir>/<dataset>``, on this process's
    default device, built from ``cfg``'s model."""
    from jaxgan import checkpoint as ckpt_lib
    from jaxgan import steps

    from jaxgan import population

    template = population.build(cfg, abstract=True)[1] if cfg.population > 1 else steps.build(cfg, abstract=True)[1]
    cks = ckpt_lib.Checkpoints(os.path.join(ckpt_dir, cfg.dataset))
    try:
        return cks.restore(template)
    finally:
        cks.close()


def replace(cfg: Config, **kw) -> Config:
    return validate(dataclasses.replace(cfg, **kw))
