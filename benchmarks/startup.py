"""A short run as a user sees it: whole processes, jaxgan against the PyTorch original, side by side.

    python -m benchmarks.startup --json benchmarks/results/startup_cpu.json

Writes ``--images`` MNIST-format images once, then runs, one after the other in each round:

  torch      ``python -m benchmarks.torch_reference``: the reference's run (its DataLoader with
             ``--workers`` workers, its loop, a grid and TensorBoard scalars per epoch), as a user
             runs it (OpenMP's default waiting)
  torch_passive  the same with OMP_WAIT_POLICY=PASSIVE: OpenMP's spinning threads slow eager
             PyTorch many times over when another job shares the CPUs, so this is its best case
  jax_cold   ``python -m jaxgan.train`` with an empty compilation cache folder
  jax_warm   the same command again, same cache folder (fresh sample/log/checkpoint folders)

and records each process's wall time from start to exit (interpreter start-up, imports, data
loading, compilation, training, writing outputs). jaxgan's own dataset cache (.npz) is built once
before the timed runs, so cold and warm differ only in the compilation cache. Threads are left at
each library's defaults, as a user would run them. Writes JSON and markdown beside it.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

from benchmarks.harness import command_line, cpu_model, env_settings, exit_on_sigterm, run_process_group


def fail(message: str) -> None:
    print(f"startup.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def timed(cmd: list[str], env: dict[str, str], cwd: str, log_path: str, timeout: float) -> dict[str, Any]:
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        code = run_process_group(cmd, env, cwd, log, timeout)
    wall = time.perf_counter() - t0
    with open(log_path, errors="replace") as f:
        lines = [ln.rstrip() for ln in f if ln.strip()]
    return {"wall_s": wall, "exit": code, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "output_tail": lines[-8:]}


def main() -> int:
    from jaxgan.config import OneLineParser

    p = OneLineParser(prog="python -m benchmarks.startup", description=__doc__.splitlines()[0])
    p.add_argument("--json", help="write the results here (default: print only); .md beside it")
    p.add_argument("--images", type=int, default=60000, help="dataset size (default 60000)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run (default 3)")
    p.add_argument("--batch_size", type=int, default=64, help="batch size (default 64, the reference's)")
    p.add_argument("--workers", type=int, default=2, help="the reference DataLoader's workers (default 2)")
    p.add_argument("--rounds", type=int, default=1,
                   help="rounds of (torch, torch_passive, jax_cold, jax_warm) (default 1)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds before one process is stopped (default 1800)")
    p.add_argument("--smoke", action="store_true", help="the docs' tiny-size override, not a figure: 64 images, "
                   "1 epoch, batch 8, no DataLoader workers; only torch and jax_cold (the other two are their commands "
                   "again: another OMP_WAIT_POLICY, a filled cache)")
    a = p.parse_args()
    if a.smoke:
        a.images, a.epochs, a.batch_size, a.workers = 64, 1, 8, 0
    exit_on_sigterm()
    if a.images < a.batch_size or a.batch_size < 2 or a.epochs < 1 or a.workers < 0 or a.rounds < 1:
        fail("--images >= --batch_size >= 2, --epochs >= 1, --workers >= 0, --rounds >= 1 are required")
    if a.json and (not a.json.endswith(".json") or not os.path.isdir(os.path.dirname(os.path.abspath(a.json)))):
        fail(f"--json {a.json!r} must be a .json path in an existing folder")

    import dataclasses

    from jaxgan.config import Config  # numpy-only: this process imports neither jax nor torch

    has_flag = "compile_cache" in {f.name for f in dataclasses.fields(Config)}

    from benchmarks.synthetic import write_dataset

    env = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "JAXGAN_COMPILE_CACHE")}
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    doc: dict[str, Any] = {
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line("benchmarks.startup"),
        "device_name": f"{cpu_model()}, {os.cpu_count()} cores", "images": a.images, "epochs": a.epochs,
        "batch_size": a.batch_size, "workers": a.workers, "env": env_settings(),
        "compile_cache_by": "--compile_cache" if has_flag else "JAX_COMPILATION_CACHE_DIR", "runs": []}
    with tempfile.TemporaryDirectory(prefix="jaxgan-startup-") as tmp:
        data = os.path.join(tmp, "data")
        write_dataset(data, a.images)
        # jaxgan's dataset cache, built once so that cold and warm differ only in compilation.
        subprocess.run([sys.executable, "-c", "from jaxgan.data import load_numpy; "
                        f"load_numpy('mnist', {data!r}, download=False)"], env=env, cwd=REPO, check=True)
        for rnd in range(a.rounds):
            cache = os.path.join(tmp, f"xla-cache-{rnd}")
            os.makedirs(cache)
            for kind in ("torch", "jax_cold") if a.smoke else ("torch", "torch_passive", "jax_cold", "jax_warm"):
                out = os.path.join(tmp, f"{kind}-{rnd}")
                os.makedirs(out)
                if kind.startswith("torch"):
                    cmd = [sys.executable, "-m", "benchmarks.torch_reference", "--data_dir", data,
                           "--no-download", "--num_epochs", str(a.epochs), "--batch_size", str(a.batch_size),
                           "--workers", str(a.workers), "--sample_dir", os.path.join(out, "samples"),
                           "--logdir", os.path.join(out, "runs")]
                    child_env = {k: v for k, v in env.items() if k != "OMP_WAIT_POLICY"}
                    if kind == "torch_passive":
                        child_env["OMP_WAIT_POLICY"] = "PASSIVE"
                else:
                    cmd = [sys.executable, "-m", "jaxgan.train", "--dataset", "mnist", "--data_dir", data,
                           "--no-download", "--num_epochs", str(a.epochs), "--batch_size", str(a.batch_size),
                           "--no-progress", "--sample_dir", os.path.join(out, "samples"),
                           "--logdir", os.path.join(out, "runs"), "--ckpt_dir", os.path.join(out, "ckpt")]
                    child_env = dict(env)
                    if has_flag:
                        cmd += ["--compile_cache", cache]
                    else:
                        child_env["JAX_COMPILATION_CACHE_DIR"] = cache
                r = timed(cmd, child_env, out, os.path.join(out, "log.txt"), a.timeout)
                shown = [os.path.basename(c) if c == sys.executable else
                         c.replace(tmp, "$TMP").replace(REPO + os.sep, "") for c in cmd]
                r.update(kind=kind, round=rnd, command=" ".join(shown))
                if kind.startswith("jax"):
                    r["cache_files_after"] = sum(len(f) for _, _, f in os.walk(cache))
                doc["runs"].append(r)
                print(f"  round {rnd + 1} {kind:9s} {r['wall_s']:7.1f} s  exit {r['exit']}  "
                      f"load {r['loadavg_before'][0]:.2f}", flush=True)
    labels = {"torch": f"PyTorch original (DataLoader, {a.workers} workers)",
              "torch_passive": f"PyTorch original (DataLoader, {a.workers} workers), OMP_WAIT_POLICY=PASSIVE",
              "jax_cold": "jaxgan.train, compile cache cold (empty folder)",
              "jax_warm": "jaxgan.train, compile cache warm (second run, same folder)"}
    summary: dict[str, Any] = {}
    for kind, label in labels.items():
        runs = [r for r in doc["runs"] if r["kind"] == kind and r["exit"] == 0]
        if runs:
            summary[kind] = {"label": label, "wall_s": [r["wall_s"] for r in runs],
                             "median_s": statistics.median(r["wall_s"] for r in runs),
                             "command": runs[0]["command"]}
    for base in ("torch", "torch_passive"):
        if base in summary:
            for e in summary.values():
                e[f"speedup_vs_{base}"] = summary[base]["median_s"] / e["median_s"]
    doc["summary"] = summary
    loads = [(r["loadavg_before"][0] + r["loadavg_after"][0]) / 2 for r in doc["runs"]]
    doc["load"] = {"mean_1min": sum(loads) / len(loads), "max_1min": max(loads)}
    failed = [r for r in doc["runs"] if r["exit"] != 0]
    from benchmarks.tables import render_startup

    md = render_startup(doc)
    if failed:
        md += "\n\nFailed: " + "; ".join(f"{r['kind']} round {r['round'] + 1}: exit {r['exit']}: "
                                         f"{(r['output_tail'] or [''])[-1]}" for r in failed)
    print(md)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1)
        with open(os.path.splitext(a.json)[0] + ".md", "w") as f:
            f.write(md + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
