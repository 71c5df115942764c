"""How every benchmark measures: each measurement in its own process group with the threads, CPU
affinity and environment it was given; the timed blocks inside it; rows that compile once and
then take turns, round by round; the command line and settings each result records.

A library: the commands (``benchmarks.throughput``, ``startup``, ``profile_torch``) and the child
entry point (``benchmarks.bench_row``) import it; it imports neither torch nor jax.
"""

from __future__ import annotations

import json
import os
import platform
import select
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))


# Settings that change how a framework runs and are recorded with every measurement.
ENV_KEYS = ("CUDA_LAUNCH_BLOCKING", "CUDA_VISIBLE_DEVICES", "CUDA_MODULE_LOADING", "TORCH_USE_CUDA_DSA",
            "PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_NO_CUDA_MEMORY_CACHING", "TORCHINDUCTOR_CACHE_DIR",
            "TORCH_COMPILE_DEBUG", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
            "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_AFFINITY", "GOMP_CPU_AFFINITY", "XLA_FLAGS", "JAX_PLATFORMS",
            "JAX_ENABLE_X64",
            "JAX_COMPILATION_CACHE_DIR", "JAX_DEFAULT_MATMUL_PRECISION", "XLA_PYTHON_CLIENT_PREALLOCATE",
            "XLA_PYTHON_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_ALLOCATOR", "TF_CPP_MIN_LOG_LEVEL",
            "NVIDIA_TF32_OVERRIDE", "PYTHONHASHSEED")

def env_settings() -> dict[str, str | None]:
    return {k: os.environ.get(k) for k in ENV_KEYS}

def command_line(module: str, argv: list[str] | None = None) -> str:
    """The command ``python -m <module> <args>`` as run from the repository root (paths inside the
    repository made relative); ``args`` this process's own, or ``argv`` where main was handed its
    arguments (a caller's sys.argv is not the command's)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def rel(arg: str) -> str:
        full = os.path.abspath(arg)
        return os.path.relpath(full, repo) if os.path.exists(full) and full.startswith(repo + os.sep) else arg

    return " ".join(["python", "-m", module, *(rel(a) for a in (sys.argv[1:] if argv is None else argv))])

def source_commit() -> str | None:
    """The commit of the code that ran (``git describe --always --dirty``: "-dirty" where the tree
    had changes), or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=os.path.dirname(HERE),
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()

def os_threads() -> int | None:
    """Threads this process holds now (Linux), a check on what the thread settings did."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return None

def run_process_group(cmd: list[str], env: dict[str, str], cwd: str, log, timeout: float) -> int | str:
    """Run ``cmd`` in its own process group, output to ``log``; return its exit code, or why it was
    stopped. On a timeout or an interruption of this process the whole group is killed, so no
    DataLoader worker or compiler outlives it."""
    import signal
    import subprocess

    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f} s"
    finally:
        try:  # the group may outlive its leader (e.g. DataLoader workers): end them all
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()

def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``run_process_group``'s cleanup runs."""
    import signal

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)

def timed_blocks(run_block: Callable[[int], None], sync: Callable[[], None], min_time: float
                 ) -> dict[str, Any]:
    """Time equal blocks of calls until ``min_time`` seconds are timed (at least 2 blocks). The
    block size doubles from 1 until a block takes >= min_time / 8; the shorter blocks before it are
    extra warm-up and not counted. Returns the totals and every counted block's seconds."""
    block, blocks = 1, []
    while sum(blocks) < min_time or len(blocks) < 2:
        sync()
        t0 = time.perf_counter()
        run_block(block)
        sync()
        seconds = time.perf_counter() - t0
        if blocks or seconds >= min_time / 8 or block >= 1 << 16:
            blocks.append(seconds)
        else:
            block *= 2
    return {"calls": block * len(blocks), "seconds": sum(blocks), "block_calls": block,
            "block_seconds": blocks}

def tell_parent(message: str, wait: bool) -> None:
    """Tell the parent ``message`` when this row takes turns with others (``BENCH_TURN_FD``) and,
    with ``wait``, block on stdin until the parent says this row may go on (compile, or time its
    next round)."""
    fd = os.environ.get("BENCH_TURN_FD")
    if fd is None:
        return
    os.write(int(fd), (message + "\n").encode())
    if wait and sys.stdin.readline().strip() != "go":
        raise RuntimeError("the parent ended the rounds early")

def wait_for_release() -> float | None:
    """After a row's last round, block until the parent closes its stdin, which it does once every
    row has timed its last round (``TurnChild.release``), and return that wall-clock time (None when
    not taking turns). A row that wrote its result and exited at once would share the CPUs with
    the next row's last round: on 2026-12-02 every row's last round but the first row's ran at
    about half its other rounds' speed."""
    if os.environ.get("BENCH_TURN_FD") is None:
        return None
    sys.stdin.read()
    return time.time()

def timed_rounds(run_block: Callable[[int], None], sync: Callable[[], None], min_time: float, rounds: int
                 ) -> dict[str, Any]:
    """``rounds`` rounds of ``timed_blocks``, each started when the parent gives this row its turn
    (rows interleaved A B C A B C, so that the machine's drift meets every row alike). Totals over
    all rounds, and each round's calls and seconds."""
    per_round, ready = [], time.time()  # the end of this row's build, compilation and warm-up
    for i in range(rounds):
        tell_parent("ready" if i == 0 else "done", wait=True)
        began = time.time()  # wall clock: comparable across the rows' processes
        per_round.append({**timed_blocks(run_block, sync, min_time), "began": began, "ended": time.time()})
    tell_parent("done", wait=False)
    released = wait_for_release()
    return {"released": released, "alone_ended": ready,
            "calls": sum(r["calls"] for r in per_round), "seconds": sum(r["seconds"] for r in per_round),
            "block_calls": per_round[-1]["block_calls"],
            "block_seconds": [s for r in per_round for s in r["block_seconds"]],
            "rounds": [{k: r[k] for k in ("calls", "seconds", "began", "ended")} for r in per_round]}


def child_env(device: str, threads: int, scratch: str, omp_wait: str = "passive") -> dict[str, str]:
    """The environment of one child: explicit thread counts and OpenMP wait policy ("default":
    unset, libgomp's spin-then-sleep), no shared compilation caches."""
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(threads)
    if omp_wait == "default":
        env.pop("OMP_WAIT_POLICY", None)
    else:
        env["OMP_WAIT_POLICY"] = omp_wait.upper()
    flags = env.get("XLA_FLAGS", "")
    if "intra_op_parallelism_threads" not in flags:
        flags += f" --xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={threads}"
    env["XLA_FLAGS"] = flags.strip()
    if device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
    else:  # a group's rows live side by side on one GPU: no JAX process may take 75% of it up front
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # (JAX's documented switch; recorded)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)  # and each child turns JAX's persistent cache off
    env.pop("JAXGAN_COMPILE_CACHE", None)
    env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(scratch, "inductor")  # fresh per child
    env["TRITON_CACHE_DIR"] = os.path.join(scratch, "triton")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.path.dirname(HERE) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env

def run_child(spec: dict, workdir: str, name: str, device: str, threads: int, timeout: float,
              omp_wait: str = "passive") -> dict:
    """Run one measurement in a fresh interpreter and return what it wrote (or why it wrote nothing)."""
    # No spaces in the folder's name: Inductor runs g++ with the path unquoted.
    scratch = tempfile.mkdtemp(prefix=name.replace(" ", "_") + "-", dir=workdir)
    spec_path, out_path, log_path = (os.path.join(scratch, f) for f in ("spec.json", "out.json", "log.txt"))
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    t0 = time.perf_counter()
    load_before = os.getloadavg()
    with open(log_path, "w") as log:
        code = run_process_group([sys.executable, "-m", "benchmarks.bench_row", spec_path, out_path],
                                 child_env(device, threads, scratch, omp_wait), scratch, log, timeout)
    if os.path.isfile(out_path):
        with open(out_path) as f:
            result = json.load(f)
    else:
        result = {"spec": spec, "ok": False, "error": f"child exited ({code}) without a result",
                  "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    result["process_wall_s"] = time.perf_counter() - t0
    if not result.get("ok"):
        with open(log_path, errors="replace") as f:
            result["log_tail"] = f.read()[-2000:]
    return result

class TurnChild:
    """One row's fresh process that compiles and warms up once, then times one round each time the
    parent gives it the turn (``harness.timed_rounds``): the rows' rounds interleave."""

    def __init__(self, spec: dict, workdir: str, name: str, device: str, threads: int, omp_wait: str):
        self.spec, self.name, self.t0 = spec, name, time.perf_counter()
        self.scratch = tempfile.mkdtemp(prefix=name.replace(" ", "_") + "-", dir=workdir)
        spec_path, self.out_path, self.log_path = (os.path.join(self.scratch, f)
                                                   for f in ("spec.json", "out.json", "log.txt"))
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        self.load_before = os.getloadavg()
        self.read_fd, write_fd = os.pipe()
        env = {**child_env(device, threads, self.scratch, omp_wait), "BENCH_TURN_FD": str(write_fd)}
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_row", spec_path, self.out_path],
                                     env=env, cwd=self.scratch, stdin=subprocess.PIPE, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True, pass_fds=(write_fd,),
                                     text=True)
        os.close(write_fd)
        self.buffer, self.alive = b"", True

    def expect(self, word: str, timeout: float) -> bool:
        """Wait for the child to say ``word``; False if it said something else, died or took too long."""
        deadline = time.perf_counter() + timeout
        while self.alive and b"\n" not in self.buffer:
            ready, _, _ = select.select([self.read_fd], [], [], max(0.0, deadline - time.perf_counter()))
            chunk = os.read(self.read_fd, 256) if ready else b""
            if not chunk:
                self.alive = False
                self.why = "timed out" if not ready else "exited"
            self.buffer += chunk
        if not self.alive:
            return False
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode().strip() == word

    def stop(self) -> None:
        """A child that failed an expect (exited, timed out, said the wrong word) is ended at once,
        with its process group: it must not work on while the next rows compile and time."""
        self.alive = False
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def go(self) -> None:
        try:
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.alive = False

    def release(self) -> None:
        """Close the child's stdin: its rounds are over (``wait_for_release``)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def finish(self, timeout: float) -> dict:
        """Wait for the child's result (ending its whole process group), as ``run_child`` returns it."""
        self.release()
        try:
            code: int | str = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = f"timed out after {timeout:.0f} s"
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc.wait()
            self.log.close()
            os.close(self.read_fd)
        if os.path.isfile(self.out_path):
            with open(self.out_path) as f:
                result = json.load(f)
        else:
            result = {"spec": self.spec, "ok": False, "error": f"child exited ({code}) without a result",
                      "loadavg_before": self.load_before, "loadavg_after": os.getloadavg()}
        result["process_wall_s"] = time.perf_counter() - self.t0
        if not result.get("ok"):
            with open(self.log_path, errors="replace") as f:
                result["log_tail"] = f.read()[-2000:]
        return result

def run_in_turns(jobs: list[tuple[dict, str, str]], rounds: int, workdir: str, device: str, threads: int,
                 timeout: float) -> list[dict]:
    """Each (spec, name, omp_wait) in its own process. The processes start together and import
    their frameworks side by side (``rows.preload``); then each builds, compiles and warms up
    alone, one after the other (its compile_s is measured with no other row working), and the rows
    take turns: ``rounds`` rounds of A B C ..., one timed round each. Once the last round ends,
    every row is released at once to write its result."""
    children = [TurnChild({**spec, "rounds": rounds}, workdir, name, device, threads, omp)
                for spec, name, omp in jobs]
    for c in children:
        if not c.expect("loaded", timeout):
            c.stop()
    for c in children:
        if c.alive:
            c.go()
            if not c.expect("ready", timeout):  # its compilation, with no other row working
                c.stop()
    for _ in range(rounds):
        for c in children:
            if c.alive:
                c.go()
                if not c.expect("done", timeout):
                    c.stop()
    for c in children:
        c.release()
    return [c.finish(timeout) for c in children]
