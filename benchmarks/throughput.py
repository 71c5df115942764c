"""Training throughput of jaxgan against the strongest PyTorch, each measurement in its own process.

    python benchmarks/throughput.py --quick --json out.json              # CPU, a few minutes here
    python benchmarks/throughput.py --device gpu --json results/gpu.json # one GPU

This process only orchestrates: it writes 60,000 MNIST-format images once, then starts a fresh
interpreter (``benchmarks/bench_row.py``) for every measurement, so no framework's threads,
allocator or compilation cache touches another's (each torch.compile row gets its own empty
Inductor cache; JAX's persistent cache is off). Thread counts are set explicitly in every child
(torch intra-/inter-op threads, OMP/MKL, XLA's ``intra_op_parallelism_threads``, and, below the
CPU count, the child's CPU affinity, since XLA has no binding thread setting) and each row
records what it ran with: library versions, device, precision, threads, the settings that change
how the frameworks run (``CUDA_LAUNCH_BLOCKING``, ``XLA_FLAGS``, ...) and the load average
before and after (other jobs may share the machine; it is recorded, not hidden).

Measurements, each in its own process:
  * the rows (implementation x batch size; the implementations are listed in ``--help``)
  * the matmul peak per precision, in JAX and in PyTorch (the faster of the two is the peak)
  * on CPU, the memory bandwidth (triad in numpy, PyTorch and JAX; the fastest is used)
  * per batch size, the FLOPs of one training step from XLA's cost analysis (lowered for the CPU)

From them every row gets its FLOP count, % of the matmul peak at its own precision and, on CPU,
its fraction of the roofline (the step's FLOPs at the matmul peak plus Adam's bytes at the
measured bandwidth). ``benchmarks/report.py`` turns the JSON into the markdown tables.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from benchmarks.bench_row import (IMPLS, command_line, env_settings, exit_on_sigterm,  # noqa: E402
                                  run_process_group)

SCHEMA = "jaxgan-throughput/2"


def fail(message: str) -> None:
    print(f"throughput.py: error: {message}", file=sys.stderr)
    sys.exit(2)


# -- data ------------------------------------------------------------------------------------------
def make_images(n: int) -> np.ndarray:
    """n MNIST-sized uint8 images (random strokes on noise), the same for every run."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 64, (n, 28, 28), dtype=np.uint8)
    rows = rng.integers(4, 24, n)
    for i, r in enumerate(rows):
        images[i, r:r + 3, 5:23] = 255
    return images


def write_dataset(root: str, n: int) -> None:
    """``make_images(n)`` in torchvision's MNIST IDX format under root, and the same images as
    ``root/images.npy`` (N, 28, 28, 1) for the JAX rows, which never import torch."""
    from jaxgan.formats import write_mnist

    images = make_images(n)
    write_mnist(root, images, np.random.default_rng(1).integers(0, 10, n).astype(np.uint8))
    np.save(os.path.join(root, "images.npy"), images[..., None])


# -- children ----------------------------------------------------------------------------------------
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
        code = run_process_group([sys.executable, os.path.join(HERE, "bench_row.py"), spec_path, out_path],
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


def default_impls(device: str) -> list[str]:
    return [k for k, v in IMPLS.items() if device == "gpu" or not v.gpu_only]


def impl_help() -> str:
    return "; ".join(f"{v.label} {k}: {v.what}{' [GPU only]' if v.gpu_only else ''}" for k, v in IMPLS.items())


# -- main ----------------------------------------------------------------------------------------------
def parse_args():
    from jaxgan.config import OneLineParser

    p = OneLineParser(prog="throughput.py", description="jaxgan vs the strongest PyTorch: training throughput, "
                      "each measurement in its own process. Implementations: " + impl_help())
    p.add_argument("--quick", action="store_true", help="batch 64 and 512, 1.5 s timed per row (default off)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="cpu or gpu (default cpu)")
    p.add_argument("--json", help="write everything measured as JSON here (default: not written); the "
                   "markdown and the plot go beside it")
    p.add_argument("--plot", help="PNG of images/s against batch size (default: beside --json)")
    p.add_argument("--batch_sizes", help="comma-separated (default 64,512 with --quick, else 64,256,1024,4096)")
    p.add_argument("--impls", help="comma-separated subset, in the order to run (default: every "
                   "implementation the device runs)")
    p.add_argument("--min_time", type=float, help="seconds timed per row (default 1.5 with --quick, else 4)")
    p.add_argument("--images", type=int, default=60000, help="dataset size (default 60000, MNIST's)")
    p.add_argument("--workers", type=int, default=4, help="the reference DataLoader's workers (default 4, "
                   "as the reference)")
    p.add_argument("--steps_per_call", type=int, default=200, help="steps fused per call in the jax_scan "
                   "rows (default 200, the trainer's)")
    p.add_argument("--threads", type=int, help="CPU threads for every framework (default: the CPUs this "
                   "process may run on)")
    p.add_argument("--interop_threads", type=int, help="torch inter-op threads (default: --threads)")
    p.add_argument("--omp_wait_policy", choices=("passive", "active", "default"), default="passive",
                   help="OMP_WAIT_POLICY of every child (a row may set its own); default: unset, libgomp's "
                   "spin-then-sleep. Spinning threads make eager PyTorch many times slower on a CPU that other "
                   "jobs share (default passive)")
    p.add_argument("--budget_s", type=float, help="stop starting rows after this many seconds; rows not "
                   "started are listed as skipped (default: no limit)")
    p.add_argument("--order", choices=("batch", "impl"), default="batch", help="batch: every implementation at "
                   "one batch size, then the next (side by side in time); impl: each implementation at every "
                   "batch size in --impls order, so that --budget_s drops the last-named first (default batch)")
    p.add_argument("--job_timeout", type=float, default=900, help="seconds before one child is stopped "
                   "(default 900)")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    exit_on_sigterm()
    names = [s.strip() for s in (args.impls or ",".join(default_impls(args.device))).split(",") if s.strip()]
    if not names or any(i not in IMPLS for i in names):
        fail(f"--impls must name some of {', '.join(IMPLS)}")
    if args.device == "cpu" and any(IMPLS[i].gpu_only for i in names):
        fail(f"{', '.join(i for i in names if IMPLS[i].gpu_only)} run on --device gpu only")
    try:
        sizes = [int(s) for s in args.batch_sizes.split(",")] if args.batch_sizes else \
            ([64, 512] if args.quick else [64, 256, 1024, 4096])
    except ValueError:
        fail(f"--batch_sizes must be comma-separated integers, got {args.batch_sizes!r}")
    if min(sizes) < 2 or max(sizes) > args.images:
        fail(f"batch sizes must be in [2, {args.images}] (BatchNorm needs 2; the dataset has {args.images})")
    if args.images < 2 or args.workers < 0 or args.steps_per_call < 1:
        fail("--images must be >= 2, --workers >= 0, --steps_per_call >= 1")
    threads = args.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    interop = args.interop_threads or threads
    if threads < 1 or interop < 1:
        fail("--threads and --interop_threads must be >= 1")
    if (args.min_time is not None and args.min_time <= 0) or (args.budget_s is not None and args.budget_s <= 0) \
            or args.job_timeout <= 0:
        fail("--min_time, --budget_s and --job_timeout must be > 0")
    for path, ext in ((args.json, ".json"), (args.plot, ".png")):
        if path and (not path.lower().endswith(ext) or os.path.isdir(path)):
            fail(f"{path!r} must be a file path ending in {ext}")
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            fail(f"folder of {path!r} does not exist")
    min_time = args.min_time or (1.5 if args.quick else 4.0)
    if os.environ.get("CUDA_LAUNCH_BLOCKING", "0") not in ("", "0"):
        print("throughput.py: warning: CUDA_LAUNCH_BLOCKING is set; every kernel launch waits (recorded)",
              file=sys.stderr)

    from benchmarks import report

    t_start = time.perf_counter()
    common = {"device": args.device, "threads": threads, "interop_threads": interop}
    doc: dict[str, Any] = {
        "schema": SCHEMA, "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(), "device": args.device,
        "settings": {"batch_sizes": sizes, "impls": names, "min_time": min_time, "images": args.images,
                     "workers": args.workers, "steps_per_call": args.steps_per_call, "threads": threads,
                     "interop_threads": interop, "budget_s": args.budget_s, "order": args.order,
                     "omp_wait_policy": args.omp_wait_policy},
        "parent_env": env_settings(), "impls": {k: vars(v) for k, v in IMPLS.items() if k in names},
    }

    with tempfile.TemporaryDirectory(prefix="jaxgan-bench-") as work:
        def job(spec: dict, name: str) -> dict:
            omp = (IMPLS[spec["impl"]].omp_wait if "impl" in spec else None) or args.omp_wait_policy
            r = run_child({**common, **spec}, work, name, args.device, threads, args.job_timeout, omp)
            status = "ok" if r.get("ok") else f"FAILED: {r.get('error')}"
            print(f"  {name:34s} {r['process_wall_s']:6.1f} s  load {r['loadavg_before'][0]:.2f}  {status}",
                  flush=True)
            return r

        doc["host"] = job({"job": "env"}, "env")
        if args.device == "gpu" and doc["host"].get("jax_backend") != "gpu":
            fail("--device gpu, but JAX sees no GPU")
        doc["device_name"] = (doc["host"].get("jax_devices") or ["?"])[0] if args.device == "gpu" else \
            f"{doc['host'].get('cpu')}, {threads} threads"
        print(f"device: {doc['device_name']}", flush=True)

        precisions = ("float32", "tf32", "bfloat16") if args.device == "gpu" else ("float32", "bfloat16")
        doc["peaks"] = [job({"job": "peak", "framework": fw, "precision": pr}, f"peak {fw} {pr}")
                        for pr in precisions for fw in ("jax", "torch")]
        if args.device == "cpu":
            doc["bandwidth"] = [job({"job": "bandwidth", "framework": fw}, f"bandwidth {fw}")
                                for fw in ("numpy", "torch", "jax")]
        doc["flops"] = {str(bs): job({"job": "flops", "batch_size": bs}, f"flops batch {bs}") for bs in sizes}

        data_dir = os.path.join(work, "data")
        write_dataset(data_dir, args.images)
        row_common = {"job": "row", "data_dir": data_dir, "min_time": min_time, "workers": args.workers,
                      "steps_per_call": args.steps_per_call}
        doc["rows"], doc["skipped"] = [], []
        plan = [(bs, impl) for bs in sizes for impl in names] if args.order == "batch" else \
            [(bs, impl) for impl in names for bs in sizes]
        for bs, impl in plan:
            if args.budget_s and time.perf_counter() - t_start > args.budget_s:
                doc["skipped"].append({"impl": impl, "batch_size": bs, "why": f"--budget_s {args.budget_s:g}"})
                continue
            r = job({**row_common, "impl": impl, "batch_size": bs}, f"{impl} batch {bs}")
            r.update(impl=impl, batch_size=bs, framework=IMPLS[impl].framework, label=IMPLS[impl].label)
            doc["rows"].append(r)
    doc["total_s"] = time.perf_counter() - t_start
    report.annotate(doc)  # FLOPs, peak fractions, roofline, summary, load: derived from the above only

    md = report.render_throughput(doc)
    print()
    print(md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1, default=str)
        with open(os.path.splitext(args.json)[0] + ".md", "w") as f:
            f.write(md + "\n")
    plot_path = args.plot or (os.path.splitext(args.json)[0] + ".png" if args.json else None)
    if plot_path:
        try:
            report.plot(doc, plot_path)
        except ImportError as e:
            print(f"throughput.py: no plot ({e})", file=sys.stderr)
    if args.json:
        print(f"\nwrote {args.json}, {os.path.splitext(args.json)[0]}.md{', ' + plot_path if plot_path else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
