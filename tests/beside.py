"""The suite's background thread: work that only starts processes and waits for them, run one
job at a time beside the tests that run in this process.

A test whose point is a real process (kill -9, signals, a fresh process's compile cache, several
devices or processes, the docs' benchmark commands) spends most of its time waiting while its
process imports, compiles and trains, and this process, which compiles on one core, leaves the
other idle. Such work is a *job*: ``prepare(folder)`` (optional) writes what its processes need,
here on the main thread when the thread starts (reading data goes through torchvision, which
redirects this process's stdout while it reads); ``drive(folder, run)``, on the thread, gets a
fresh copy of that folder, starts its processes through ``run.spawn``/``run.popen`` and returns
what its tests check (asserting on the way, if it likes: a job that raises fails its tests with the
traceback). It calls no jax and nothing that changes this process's state (stdout, warnings
filters): that belongs to the tests on the main thread. The tests read
the job's result with :func:`result` and do the rest (restores, comparisons, in-process runs)
themselves; marked ``beside`` (conftest), they run after the in-process modules, beside which
the jobs ran.

One job runs at a time, and its process tree beside this process stays within the suite's memory
budget (3 GB, tests/TIMINGS.md): a job declares ``gb``, the peak of its own process tree
(measured alone with psutil sampling), and starts only while this process and it fit under
``TREE_CAP_GB``; the largest first (this process is smallest early on, beside the light modules),
then of those that fit, the largest. While a test
runs beside it the whole tree stays under that cap: past it the job's processes are killed, its
result thrown away, and it runs again later (twice stopped, it waits for a test that needs it). While a test waits for a job nothing else runs here: no gate
and no cap then. Without the thread (a test file run alone, ``-k``), ``result`` runs the job
on a thread of its own and waits for it: the same timeout, the same clean-up, the same record of
other processes beside it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

from tests.conftest import REPO

# A job's processes end here at the latest: its tests fail then, with its output so far.
TIMEOUT_S = 600
# While a test runs beside a job, the whole tree (this process and every descendant) stays under
# this, sampled every 0.2 s; a test can grow between samples, and a stopped job's processes take
# up to a second to go: at 2.6 the suite's peak was 2.63 GB (2026-12-03, with that second; 2.85
# when jaxgan's SIGTERM handler still wrote its checkpoint first). The budget is 3 GB.
TREE_CAP_GB = 2.75
# A child of this process beside an ``alone`` job counts as another test's process from this size
# (a Python process that imported jax is several hundred MB; git, run by render_docs, is not).
BESIDE_MB = 150


@dataclass
class Job:
    name: str
    drive: Callable[[str, Any], Any]
    gb: float  # its process tree's peak: it starts only while this process holds at most TREE_CAP_GB - gb
    alone: bool = False  # record any other test's process seen beside it (the benchmark commands)
    prepare: Callable[[str], None] | None = None  # on the main thread, once: the folder each try copies


_jobs: dict[str, Job] = {}
_folders: list[str] = []  # the runners' folders, removed at the session's end
_beside: list[tuple[str, str, list[int]]] = []  # (job, the test running then, its child pids)


def job(name: str, gb: float, alone: bool = False, prepare: Callable[[str], None] | None = None):
    """Register ``drive`` as the job ``name`` (at import, so at collection)."""
    def register(drive):
        _jobs[name] = Job(name, drive, gb, alone, prepare)
        return drive
    return register


def slug(name: str) -> str:
    """A job's (or a command's) name as a file name."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


class Stopped(Exception):
    """The job's processes were stopped over the memory cap: it runs again later."""


# The environment as the suite set it up (conftest, before the test modules import this): a job's
# processes never inherit what a test on the main thread sets for a moment (monkeypatch.setenv).
_ENV = dict(os.environ)


def child_env(env: dict | None = None) -> dict:
    return dict(_ENV, PYTHONPATH=REPO + os.pathsep + _ENV.get("PYTHONPATH", ""), **(env or {}))


class Runner:
    """Jobs on a thread: ``names``' jobs. ``results``: name -> (value, traceback or None);
    ``spans``: name -> (start, end) s since the thread began; ``again``: (name, the test running
    then) for each stop over the cap (the others' processes seen beside an ``alone`` job go to the
    session's one list, :func:`seen_beside`)."""

    def __init__(self, names: list[str]):
        self.root = tempfile.mkdtemp(prefix="jaxgan-beside-")
        _folders.append(self.root)
        self.seeds = {}
        for n in names:  # here, on the main thread
            if _jobs[n].prepare is not None:
                self.seeds[n] = os.path.join(self.root, slug(n) + "-prepared")
                os.mkdir(self.seeds[n])
                _jobs[n].prepare(self.seeds[n])
        self.queue = sorted((_jobs[n] for n in names), key=lambda j: -j.gb)  # stable: ties in `names`' order
        self.names = set(names)
        self.results: dict[str, tuple[Any, str | None]] = {}
        self.done = {n: threading.Event() for n in names}
        self.spans: dict[str, tuple[float, float]] = {}
        self.again: list[tuple[str, str]] = []
        self.procs: list[subprocess.Popen] = []
        self.waited_for: set[str] = set()  # a test waits for these: nothing else runs here, so no cap
        self.stop = self.finished = False
        self.t0 = time.perf_counter()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="beside-jobs", daemon=True)
        self.thread.start()

    def spawn(self, module: str, *args: str, cwd: str | None = None, env: dict | None = None) -> subprocess.Popen:
        """``python -m <module> args...`` as tests.conftest.spawn starts it, output captured."""
        return self.popen([sys.executable, "-m", module, *args], cwd=cwd, env=child_env(env),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def popen(self, argv: list[str], **kw) -> subprocess.Popen:
        """A process of the running job: stopped with it, and killed when the job ends."""
        with self.lock:
            if self.stop:
                raise Stopped
            proc = subprocess.Popen(argv, **kw)
            self.procs.append(proc)
        return proc

    def _kill(self, grace: float = 10) -> None:
        with self.lock:
            for proc in self.procs:
                terminate(proc, grace)

    def _watch(self, current: Job, started: float, quit: threading.Event) -> None:
        """Every 0.2 s while ``current`` runs: the cap, the timeout, other tests' processes."""
        import psutil

        from scripts.suite_timings import tree_rss  # this process and every descendant, as the budget counts

        me = psutil.Process()
        while not quit.wait(0.2):
            if current.alone:
                others = [pid for pid, rss in others_rss(me, [p.pid for p in self.procs]) if rss > BESIDE_MB * 1e6]
                if others:
                    _beside.append((current.name, os.environ.get("PYTEST_CURRENT_TEST", "?"), others))
            if time.perf_counter() - started > TIMEOUT_S:
                self._kill()
            if not self.waited_for and not self.stop and tree_rss(me) > TREE_CAP_GB * 1e9:
                self.again.append((current.name, os.environ.get("PYTEST_CURRENT_TEST", "?")))
                with self.lock:
                    self.stop = True
                self._kill(grace=1)  # its result is thrown away: no time for a checkpoint on SIGTERM

    def _pick(self, me) -> Job | None:
        """The next job: one a test waits for, else the first whose gate this process's memory
        passes and that has not been stopped twice (such a one waits for its test)."""
        while not self.finished:
            waited = [j for j in self.queue if j.name in self.waited_for]
            if waited:
                return waited[0]
            rss = me.memory_info().rss
            for j in self.queue:
                if rss + j.gb * 1e9 <= TREE_CAP_GB * 1e9 and sum(n == j.name for n, _ in self.again) < 2:
                    return j
            time.sleep(0.2)
        return None

    def _run(self) -> None:
        import psutil

        me = psutil.Process()
        while self.queue and not self.finished:
            current = self._pick(me)
            if current is None:
                return
            self.queue.remove(current)
            folder = tempfile.mkdtemp(prefix=slug(current.name) + "-", dir=self.root)
            with self.lock:  # the session's end (finish) may come between the pick and here
                if self.finished:
                    return
                self.procs, self.stop = [], False
            started, quit = time.perf_counter(), threading.Event()
            watcher = threading.Thread(target=self._watch, args=(current, started, quit), daemon=True)
            watcher.start()
            try:
                if current.name in self.seeds:  # a fresh copy for each try (mtimes kept: the data caches stay valid)
                    shutil.copytree(self.seeds[current.name], folder, dirs_exist_ok=True)
                value, error = current.drive(folder, self), None
            except BaseException:  # its tests fail with it (a Stopped one runs again)
                value, error = None, traceback.format_exc()
            quit.set()
            watcher.join()
            self._kill()  # anything it left running
            if self.stop and not self.finished:
                self.queue.append(current)
                continue
            self.results[current.name] = (value, error)
            self.spans[current.name] = (started - self.t0, time.perf_counter() - self.t0)
            self.done[current.name].set()

    def wait(self, name: str):
        self.waited_for.add(name)
        try:
            while not self.done[name].wait(1.0):
                if not self.thread.is_alive() and not self.done[name].is_set():  # it died: fail, never hang
                    return None, f"the background thread ended before it ran {name!r}"
        finally:
            self.waited_for.discard(name)
        return self.results[name]

    def close(self) -> None:
        """Start nothing more, stop what runs, and wait for the thread."""
        with self.lock:
            self.finished = self.stop = True
        self._kill()
        self.thread.join(timeout=30)


_runner: Runner | None = None


def start(names: list[str]) -> Runner | None:
    """Start the thread with ``names``' jobs (conftest, at the first test beside which they run)."""
    global _runner
    if _runner is None and names:
        _runner = Runner(names)
    return _runner


def runner() -> Runner | None:
    return _runner


def finish() -> None:
    """At the session's end: stop what still runs, start nothing more, remove the jobs' folders."""
    if _runner is not None:
        if os.environ.get("JAXGAN_BESIDE_LOG"):  # each job's span on the thread's clock, and its stops
            import json

            with open(os.environ["JAXGAN_BESIDE_LOG"], "w") as f:
                json.dump({"spans": _runner.spans, "again": _runner.again, "left": [j.name for j in _runner.queue]}, f)
        _runner.close()
    for folder in _folders:
        shutil.rmtree(folder, ignore_errors=True)


def seen_beside() -> list[tuple[str, str, list[int]]]:
    """Every other test's process seen beside an ``alone`` job, by any runner of the session."""
    return list(_beside)


def result(name: str):
    """The job's return value: waited for on the session's thread, or run now on a thread of its
    own. Its error fails the calling test, with the job's traceback."""
    import pytest

    if _runner is not None and name in _runner.names:
        value, error = _runner.wait(name)
    else:
        alone = Runner([name])
        try:
            value, error = alone.wait(name)
        finally:
            alone.close()
    if error is not None:
        pytest.fail(f"job {name!r} failed:\n{error}", pytrace=False)
    return value


def terminate(proc: subprocess.Popen, grace: float = 10) -> None:
    """SIGTERM ``proc``, SIGKILL it after ``grace`` s, then whatever it started that outlived it
    (a benchmark row in a session of its own is still its child)."""
    import psutil

    if proc.poll() is None:
        try:
            kids = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            kids = []
        proc.terminate()  # the benchmarks' SIGTERM handler ends their process groups too
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for kid in kids:
            with contextlib.suppress(psutil.Error):
                kid.kill()


def others_rss(me, mine: list[int]) -> list[tuple[int, int]]:
    """(pid, resident bytes) of each descendant of ``me`` (a psutil.Process) that neither is one of
    ``mine`` nor descends from one (by its own ancestry, so a process one of them starts while this
    reads is still theirs), read every 0.2 s: a process that lives less than that, or is still
    importing when read, may pass unseen."""
    import psutil

    try:
        kids = me.children(recursive=True)
    except psutil.Error:
        return []
    out = []
    for c in kids:
        try:
            if c.pid not in mine and not set(mine) & {p.pid for p in c.parents()}:
                out.append((c.pid, c.memory_info().rss))
        except psutil.Error:  # it ended between the listing and the read
            pass
    return out
