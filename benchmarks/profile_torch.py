"""Where the tuned PyTorch loop's time per iteration goes, by ``torch.profiler``.

    python -m benchmarks.profile_torch --json benchmarks/results/profile_torch_cpu.json
    python -m benchmarks.profile_torch --device gpu --batch_sizes 64,4096 --json profile_gpu.json

For each implementation and batch size: the loop of ``benchmarks/throughput.py``'s row (same
code, same data) is warmed up, timed without the profiler, then profiled for ``--iters``
iterations, each marked as one ``iteration`` range. From the profile: host time per iteration
split into operator self time, CUDA runtime calls (kernel launches) and synchronising calls
(``cudaStreamSynchronize``, ``cudaDeviceSynchronize``, ``cudaEventSynchronize``, blocking
``cudaMemcpy``; host reads of device values show up as ``aten::_local_scalar_dense``),
the rest being Python and dispatch outside operators; on a GPU also the kernels' count and time per
iteration and how much of the iteration the GPU was busy. Writes JSON (and .md beside it).
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import tempfile
import time
from typing import Any

from benchmarks.harness import command_line, cpu_model, env_settings
from benchmarks.rows import IMPLS
from benchmarks.tables import render_profile

SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy",
              "cuStreamSynchronize", "cuCtxSynchronize", "cuEventSynchronize", "cuMemcpyDtoH")
HOST_READS = ("aten::_local_scalar_dense",)  # a host read of a tensor value (under aten::item)
DEVICE_CATS = ("kernel", "gpu_memcpy", "gpu_memset")


def fail(message: str) -> None:
    print(f"profile_torch.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def _union_us(intervals: list[tuple[float, float]]) -> float:
    total, end = 0.0, float("-inf")
    for s, e in sorted(intervals):
        if e > end:
            total += e - max(s, end)
            end = e
    return total


def analyse_trace(trace: dict, iters: int) -> dict[str, Any]:
    """Per-iteration figures from the profiler's Chrome trace (its stable export format)."""
    events = [e for e in trace.get("traceEvents", []) if e.get("ph") == "X"]
    windows = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                     if e.get("cat") == "user_annotation" and e.get("name") == "iteration")
    wall_us = sum(b - a for a, b in windows)
    runtime = [e for e in events if e.get("cat") in ("cuda_runtime", "cuda_driver")]
    syncs = [e for e in runtime if e["name"].startswith(SYNC_CALLS) and "Async" not in e["name"]]
    launches = [e for e in runtime if "Launch" in e["name"]]
    device = [e for e in events if e.get("cat") in DEVICE_CATS]
    kernels = [e for e in device if e.get("cat") == "kernel"]
    busy = _union_us([(e["ts"], e["ts"] + e["dur"]) for e in device])
    out: dict[str, Any] = {
        "iterations_in_trace": len(windows), "ms_per_iter_profiled": wall_us / 1e3 / max(1, len(windows)),
        "cuda_runtime_ms_per_iter": sum(e["dur"] for e in runtime) / 1e3 / iters,
        "launches_per_iter": len(launches) / iters,
        "sync_calls_per_iter": len(syncs) / iters, "sync_ms_per_iter": sum(e["dur"] for e in syncs) / 1e3 / iters,
        "sync_call_names": sorted({e["name"] for e in syncs}),
    }
    if device:
        out.update(kernels_per_iter=len(kernels) / iters,
                   device_kernel_ms_per_iter=sum(e["dur"] for e in device) / 1e3 / iters,
                   device_busy_ms_per_iter=busy / 1e3 / iters,
                   device_busy_fraction=busy / wall_us if wall_us else None)
    else:
        out.update(kernels_per_iter=None, device_kernel_ms_per_iter=None, device_busy_fraction=None)
    return out


def profile_one(spec: dict, impl_name: str, iters: int, trace_dir: str) -> dict[str, Any]:
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    from benchmarks.rows import torch_loop

    run_block, sync, info = torch_loop(spec, IMPLS[impl_name])
    run_block(10)  # warm-up: allocator, cuBLAS handles
    sync()
    t0 = time.perf_counter()
    run_block(iters)
    sync()
    unprofiled_ms = (time.perf_counter() - t0) * 1e3 / iters

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if spec["device"] == "gpu" else [])
    with profile(activities=activities) as prof:
        for _ in range(iters):
            with record_function("iteration"):
                run_block(1)
                sync()  # one sync per iteration so each window holds its own kernels
    path = os.path.join(trace_dir, f"{impl_name}_{spec['batch_size']}.json")
    prof.export_chrome_trace(path)
    with open(path) as f:
        trace = analyse_trace(json.load(f), iters)

    ops = []
    for a in prof.key_averages():
        if a.key == "iteration" or a.key.startswith("ProfilerStep"):
            continue
        dev_us = getattr(a, "self_device_time_total", None)
        if dev_us is None:
            dev_us = getattr(a, "self_cuda_time_total", 0)
        ops.append({"name": a.key, "calls_per_iter": a.count / iters,
                    "host_ms_per_iter": a.self_cpu_time_total / 1e3 / iters,
                    "device_ms_per_iter": dev_us / 1e3 / iters if spec["device"] == "gpu" else None})
    ops.sort(key=lambda o: -o["host_ms_per_iter"])
    aten = [o for o in ops if o["name"].startswith("aten::")]
    host_op_ms = sum(o["host_ms_per_iter"] for o in ops)
    host_reads = [o for o in ops if o["name"] in HOST_READS]
    return {"impl": impl_name, "batch_size": spec["batch_size"], "ms_per_iter_unprofiled": unprofiled_ms,
            **trace, "host_op_ms_per_iter": host_op_ms,
            "aten_ops_per_iter": sum(o["calls_per_iter"] for o in aten),
            "host_reads_per_iter": sum(o["calls_per_iter"] for o in host_reads),
            "outside_ops_ms_per_iter": trace["ms_per_iter_profiled"] - host_op_ms,
            "top_ops": ops[:25], **info}


def main() -> int:
    from jaxgan.config import OneLineParser

    p = OneLineParser(prog="python -m benchmarks.profile_torch", description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="cpu or gpu (default cpu)")
    p.add_argument("--batch_sizes", default="64,512", help="comma-separated (default 64,512)")
    p.add_argument("--impls", default="torch_tuned,torch_fused_adam",
                   help="comma-separated eager torch rows (default torch_tuned,torch_fused_adam)")
    p.add_argument("--iters", type=int, default=20, help="iterations profiled (default 20)")
    p.add_argument("--images", type=int, default=60000, help="dataset size (default 60000)")
    p.add_argument("--threads", type=int, help="torch threads (default: the CPUs this process may use)")
    p.add_argument("--omp_wait_policy", choices=("passive", "active", "default"), default="passive",
                   help="OMP_WAIT_POLICY, as in throughput.py (default passive)")
    p.add_argument("--json", help="write the summary here (default: print only); .md beside it")
    p.add_argument("--keep_traces", help="folder for the Chrome traces (default: a temporary folder)")
    p.add_argument("--smoke", action="store_true", help="the docs' tiny-size override, not a figure: batch 8 "
                   "of 64 images, 2 iterations, the first row asked for")
    a = p.parse_args()
    if a.smoke:
        a.batch_sizes, a.images, a.iters, a.impls = "8", 64, 2, a.impls.split(",")[0]
    try:
        sizes = [int(s) for s in a.batch_sizes.split(",")]
    except ValueError:
        fail(f"--batch_sizes must be comma-separated integers, got {a.batch_sizes!r}")
    impls = [s.strip() for s in a.impls.split(",") if s.strip()]
    eager = [k for k, v in IMPLS.items() if v.framework == "torch" and not v.compile and v.pipeline == "memory"]
    if not impls or any(i not in eager for i in impls):
        fail(f"--impls must name some of {', '.join(eager)}")
    if min(sizes) < 2 or max(sizes) > a.images or a.iters < 1:
        fail(f"batch sizes must be in [2, {a.images}] and --iters >= 1")
    if a.json and (not a.json.endswith(".json") or not os.path.isdir(os.path.dirname(os.path.abspath(a.json)))):
        fail(f"--json {a.json!r} must be a .json path in an existing folder")
    if a.device == "cpu" and any(IMPLS[i].gpu_only for i in impls):
        fail("a GPU-only row was asked for on --device cpu")
    threads = a.threads or len(os.sched_getaffinity(0))
    wanted = None if a.omp_wait_policy == "default" else a.omp_wait_policy.upper()
    if os.environ.get("OMP_WAIT_POLICY") != wanted:  # OpenMP reads it once, at start: start again with it
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if wanted:
            env["OMP_WAIT_POLICY"] = wanted
        repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.profile_torch", *sys.argv[1:]], env)

    import torch

    from benchmarks.synthetic import write_dataset

    if a.device == "gpu" and not torch.cuda.is_available():
        fail("--device gpu, but torch sees no GPU")
    doc: dict[str, Any] = {
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line("benchmarks.profile_torch"), "torch": torch.__version__,
        "device_name": torch.cuda.get_device_name(0) if a.device == "gpu" else f"{cpu_model()}, {threads} threads",
        "threads": threads, "env": env_settings(), "loadavg_before": os.getloadavg(), "profiles": []}
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(os.path.join(tmp, "data"), a.images)
        traces = a.keep_traces or tmp
        os.makedirs(traces, exist_ok=True)
        for impl in impls:
            for bs in sizes:
                spec = {"device": a.device, "batch_size": bs, "data_dir": os.path.join(tmp, "data"),
                        "threads": threads, "interop_threads": threads, "workers": 0}
                try:
                    prof = profile_one(spec, impl, a.iters, traces)
                except Exception as e:  # reported in the summary, the other profiles still run
                    prof = {"impl": impl, "batch_size": bs, "error": f"{type(e).__name__}: {str(e)[:200]}"}
                doc["profiles"].append(prof)
                print(f"  {impl} batch {bs}: " + (prof.get("error") or
                      f"{prof['ms_per_iter_unprofiled']:.2f} ms/iter"), flush=True)
    doc["loadavg_after"] = os.getloadavg()
    md = render_profile(doc)
    print(md)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=1, default=str)
        with open(os.path.splitext(a.json)[0] + ".md", "w") as f:
            f.write(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
