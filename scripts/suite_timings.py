"""Time the test suite as a contributor runs it and write ``tests/TIMINGS.md``.

    python scripts/suite_timings.py                                    # the whole suite (README's `pytest`)
    python scripts/suite_timings.py --coverage --out tests/TIMINGS-quick.md -- -m quick   # the quick tier

It deletes the test XLA cache first (``$TMPDIR/jaxgan-test-xla-cache``, a cold start, as on a
clean clone), runs pytest with ``--junitxml`` in a child process, samples the summed resident
memory of that whole process tree (pytest and every subprocess it starts) every 0.2 s, and
writes the per-file and per-test table with each file's share of the total: shares survive this
machine's day-to-day speed, seconds do not.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

import psutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants (a child's own peak is not enough)."""
    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run(pytest_args: list[str], junit: str, coverage_file: str | None = None) -> dict:
    runner = ["-m", "coverage", "run", f"--data-file={coverage_file}", "--source=jaxgan"] if coverage_file else []
    cmd = [sys.executable, *runner, "-m", "pytest", "-p", "no:cacheprovider", f"--junitxml={junit}", *pytest_args]
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ, JAXGAN_SUITE_COST=junit + ".cost.json",
                                                     JAXGAN_BESIDE_LOG=junit + ".beside.json"))
    proc = psutil.Process(child.pid)
    peak = [0, 0.0]  # bytes, when
    done = threading.Event()

    def sample():
        while not done.is_set():
            rss = tree_rss(proc)
            if rss > peak[0]:
                peak[:] = [rss, time.time()]
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rc = child.wait()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    return {"command": " ".join(["pytest", *pytest_args]), "rc": rc, "wall_s": round(wall, 1),
            "peak_tree_rss_gb": round(peak[0] / 1e9, 2), "peak_at": peak[1], "load_before": [round(x, 2) for x in load0],
            "load_after": [round(x, 2) for x in os.getloadavg()]}


def matmul_peak() -> float:
    """numpy float32 2048x2048 matmul GFLOP/s, best of 5 (this machine's speed varies by day: a
    suite's seconds mean something only beside it)."""
    import numpy as np

    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(5))
    return 2 * 2048 ** 3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def beside_jobs(path: str) -> dict | None:
    """tests/beside.py's log: each background job's span on its thread, and its stops over the cap."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def parse_junit(path: str) -> list[dict]:
    """One row per test: file, name, seconds (setup + call + teardown), outcome, and what
    tests/conftest.py recorded of its cost: XLA trace/lower/compile seconds in the pytest process,
    real subprocesses started."""
    cost = {}
    if os.path.exists(path + ".cost.json"):
        with open(path + ".cost.json") as f:
            cost = json.load(f)
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):
        cls = case.get("classname", "")
        file = cls.replace(".", "/") + ".py" if cls else case.get("file", "?")
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = tag
        c = cost.get(f"{file}::{case.get('name')}", {})
        rows.append({"file": file, "test": case.get("name"), "seconds": float(case.get("time", 0.0)),
                     "outcome": outcome, "xla_s": c.get("trace_s", 0) + c.get("lower_s", 0) + c.get("compile_s", 0),
                     "compile_s": c.get("compile_s", 0.0), "subprocesses": c.get("subprocesses", 0),
                     "start": c.get("start"), "end": c.get("end")})
    return rows


def module_coverage(coverage_file: str) -> list[dict]:
    """Per jaxgan module: statements, statements run, and the share run (coverage.py, this process
    tree's in-process tests; subprocesses are not traced)."""
    out_json = coverage_file + ".json"
    subprocess.run([sys.executable, "-m", "coverage", "json", f"--data-file={coverage_file}", "-o", out_json, "-q"],
                   cwd=REPO, check=True)
    with open(out_json) as f:
        files = json.load(f)["files"]
    rows = []
    for path, info in sorted(files.items()):
        s = info["summary"]
        rows.append({"module": os.path.relpath(os.path.join(REPO, path), REPO), "statements": s["num_statements"],
                     "run": s["covered_lines"], "share": s["percent_covered"] / 100})
    return rows


def peak_test(meta: dict, rows: list[dict]) -> str:
    """The test that was running when the process tree's memory peaked."""
    at = meta.get("peak_at") or 0
    for r in rows:
        if r.get("start") and r["start"] <= at <= r["end"]:
            return f"{r['file']}::{r['test']}"
    return "between tests (collection, fixtures of a module, or teardown)"


# What kind of work a test is, by the first rule its id matches (file::name, lower case): the
# issue's breakdown of the suite's time. A test of several kinds counts once, for the first.
KINDS = [
    ("real processes (kill -9, signals, exit codes, several devices or processes)", lambda r: r["subprocesses"] > 0),
    ("parity with the PyTorch code (float64 iterations, same weights same outputs)",
     lambda r: any(w in r["id"] for w in ("pytorch", "torch", "parity"))),
    ("resume and checkpoints (bit-exact resumes, interrupted runs)",
     lambda r: any(w in r["id"] for w in ("resume", "interrupt", "checkpoint", "sigterm", "kill"))),
    ("commands run in-process (train, sample, evaluate, toy1d, benchmarks)",
     lambda r: any(w in r["id"] for w in ("cli", "command", "evaluate", "sample", "benchmark", "toy1d"))),
    ("the rest (steps, models, data, metrics, config)", lambda r: True),
]


def kind_of(r: dict) -> str:
    r = {**r, "id": f"{r['file']}::{r['test']}".lower()}
    return next(name for name, rule in KINDS if rule(r))


def render(meta: dict, rows: list[dict], coverage: list[dict] | None = None) -> str:
    total = sum(r["seconds"] for r in rows) or 1.0
    files: dict[str, list[float]] = {}
    for r in rows:
        files.setdefault(r["file"], []).append(r["seconds"])
    outcomes = {}
    for r in rows:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    lines = [
        "# Test suite timings",
        "",
        f"Made by `{meta['made_by']}` (test XLA cache deleted first). Seconds vary with this machine's day; "
        "the shares are what to compare.",
        "",
        f"- date: {meta['date']}, commit `{meta['commit']}`, {meta['cpus']} CPUs",
        f"- command: `{meta['command']}` → exit {meta['rc']}, "
        + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())),
        f"- wall: **{meta['wall_s']:.0f} s** ({meta['wall_s'] / 60:.1f} min); sum of test times {total:.0f} s",
        f"- peak resident memory of the whole process tree (summed RSS, sampled every 0.2 s): "
        f"**{meta['peak_tree_rss_gb']:.2f} GB**, during `{peak_test(meta, rows)}`",
        f"- load average before / after: {meta['load_before'][0]:.2f} / {meta['load_after'][0]:.2f}",
        *([f"- numpy float32 2048² matmul peak before / after: {meta['peak_before']:.0f} / {meta['peak_after']:.0f} GFLOP/s"]
          if "peak_before" in meta else []),
        "",
        "## Where the time goes",
        "",
        f"- XLA in the pytest process (tracing, lowering, compiling; cache reads not included): "
        f"{sum(r['xla_s'] for r in rows):.0f} s, of which XLA's backend compile {sum(r['compile_s'] for r in rows):.0f} s",
        f"- real subprocesses started through tests.conftest.spawn (each pays ~3-5 s of imports before it "
        f"does anything, then its own compiles): {sum(r['subprocesses'] for r in rows)}, by "
        f"{sum(1 for r in rows if r['subprocesses'])} tests",
        "",
        "| kind of test (first rule in `KINDS` that matches) | tests | seconds | share | XLA s |",
        "|---|---:|---:|---:|---:|",
        *(f"| {k} | {len(rs)} | {sum(r['seconds'] for r in rs):.0f} | {100 * sum(r['seconds'] for r in rs) / total:.0f}% "
          f"| {sum(r['xla_s'] for r in rs):.0f} |"
          for k in (name for name, _ in KINDS) for rs in [[r for r in rows if kind_of(r) == k]] if rs),
        "",
        "## Per file",
        "",
        "| file | tests | seconds | share | XLA s (in-process) | subprocesses |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    by_file: dict[str, list[dict]] = {}
    for r in rows:
        by_file.setdefault(r["file"], []).append(r)
    for f, secs in sorted(files.items(), key=lambda kv: -sum(kv[1])):
        rs = by_file[f]
        lines.append(f"| `{f}` | {len(secs)} | {sum(secs):.1f} | {100 * sum(secs) / total:.1f}% | "
                     f"{sum(r['xla_s'] for r in rs):.1f} | {sum(r['subprocesses'] for r in rs)} |")
    jobs = meta.get("beside")
    if jobs:
        lines += ["", "## Background jobs (tests/beside.py)", "",
                  "Their processes ran one job at a time on a thread beside the in-process tests; the tests marked "
                  "`beside` then read their results. Seconds since the thread started (at the first test beside them):",
                  "", "| job | from | to | seconds |", "|---|---:|---:|---:|"]
        lines += [f"| {name} | {a:.1f} | {b:.1f} | {b - a:.1f} |" for name, (a, b) in jobs["spans"].items()]
        lines += ["", f"Stopped over the memory cap and run again: {jobs['again'] or 'none'}; "
                      f"left unrun at the end: {jobs['left'] or 'none'}."]
    if coverage is not None:
        lines += ["", "## Coverage of jaxgan/ by this run", "",
                  "Lines of each module that the run executed (coverage.py over the pytest process; the few "
                  "real subprocesses are not traced).", "", "| module | statements | run | share |",
                  "|---|---:|---:|---:|"]
        lines += [f"| `{c['module']}` | {c['statements']} | {c['run']} | {100 * c['share']:.0f}% |" for c in coverage]
    lines += ["", "## Per test (slowest first)", "", "| test | seconds | share | XLA s | subprocesses |",
              "|---|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: -r["seconds"]):
        mark = "" if r["outcome"] == "passed" else f" ({r['outcome']})"
        lines.append(f"| `{r['file']}::{r['test']}`{mark} | {r['seconds']:.2f} | {100 * r['seconds'] / total:.1f}% | "
                     f"{r['xla_s']:.1f} | {r['subprocesses']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=os.path.join(REPO, "tests", "TIMINGS.md"), help="markdown table to write")
    p.add_argument("--json", default=None, help="also write the raw rows here")
    p.add_argument("--keep_cache", action="store_true", help="do not delete the test XLA cache first")
    p.add_argument("--coverage", action="store_true", help="run under coverage.py and add a per-module table")
    p.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest")
    args = p.parse_args(argv)
    if not args.keep_cache:
        shutil.rmtree(os.path.join(tempfile.gettempdir(), "jaxgan-test-xla-cache"), ignore_errors=True)
    work = tempfile.mkdtemp(prefix="suite-timings-")
    junit = os.path.join(work, "junit.xml")
    coverage_file = os.path.join(work, ".coverage") if args.coverage else None
    peak_before = matmul_peak()
    meta = run(args.pytest_args, junit, coverage_file)
    meta.update(peak_before=round(peak_before, 1), peak_after=round(matmul_peak(), 1), beside=beside_jobs(junit + ".beside.json"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                            text=True).stdout.strip() or "?"
    made_by = "python scripts/suite_timings.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:]))
    meta.update(date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), commit=commit, cpus=os.cpu_count(),
                pytest_args=" ".join(args.pytest_args), made_by=made_by.strip())
    if not os.path.exists(junit):
        print(f"error: pytest wrote no {junit} (exit {meta['rc']})", file=sys.stderr)
        return 2
    rows = parse_junit(junit)
    with open(args.out, "w") as f:
        f.write(render(meta, rows, module_coverage(coverage_file) if coverage_file else None))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
    print(f"wall {meta['wall_s']:.0f} s, peak tree RSS {meta['peak_tree_rss_gb']:.2f} GB -> {args.out}")
    return meta["rc"]


if __name__ == "__main__":
    sys.exit(main())
