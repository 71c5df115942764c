"""Training throughput of jaxgan against the strongest PyTorch, each measurement in its own process.

    python -m benchmarks.throughput --quick --json out.json              # CPU, a few minutes here
    python -m benchmarks.throughput --device gpu --json results/gpu.json # one GPU

This process only orchestrates: it writes 60,000 MNIST-format images once, then starts a fresh
interpreter (``python -m benchmarks.bench_row``) for every measurement, so no framework's threads,
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
measured bandwidth). ``benchmarks.analysis`` derives the rest, ``benchmarks.tables`` writes the markdown.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import tempfile
import time
from typing import Any

from benchmarks import analysis, tables
from benchmarks.harness import command_line, env_settings, exit_on_sigterm, run_child, run_in_turns, source_commit
from benchmarks.rows import IMPLS
from benchmarks.synthetic import write_dataset


SCHEMA = "jaxgan-throughput/2"
QUICK_IMAGES_PER_CALL = 3200  # --quick's jax_scan calls hold at least this many images: 50 steps at batch 64

def fail(message: str) -> None:
    print(f"throughput.py: error: {message}", file=sys.stderr)
    sys.exit(2)

def default_impls(device: str, model: str = "mlp") -> list[str]:
    return [k for k, v in IMPLS.items() if (device == "gpu" or not v.gpu_only) and model in v.models
            and not v.population]

def impl_help() -> str:
    return "; ".join(f"{v.label} {k}: {v.what}{' [GPU only]' if v.gpu_only else ''}" for k, v in IMPLS.items())

def parse_args(argv: list[str] | None = None):
    from jaxgan.config import OneLineParser

    p = OneLineParser(prog="throughput.py", description="jaxgan vs the strongest PyTorch: training throughput, "
                      "each measurement in its own process. Implementations: " + impl_help())
    p.add_argument("--quick", action="store_true", help="batch 64 and 512, rounds of 0.5 s, and jax_scan calls of at least "
                   f"{QUICK_IMAGES_PER_CALL:,} images (50 steps at batch 64, 7 at 512: a 50-step call at batch 512 "
                   "takes seconds, far past a round) (default off)")
    p.add_argument("--smoke", action="store_true", help="the docs' tiny-size override, not a figure: batch 8 of 64 "
                   "images, widths 8,4,4,4/4,4,4,8, 0.05 s per row, population K = 2, float32 peaks at n = 128, "
                   "one bandwidth job, and of the rows asked for the first JAX one only (tests/test_benchmarks.py "
                   "runs the PyTorch rows, alone and in turns)")
    p.add_argument("--plan", action="store_true", help="print what the command would measure (the machine's "
                   "jobs, each row per batch size, rounds, minimum time, threads, the files it writes) and exit "
                   "without measuring or writing anything: a reference-width run takes many minutes (default off)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="cpu or gpu (default cpu)")
    p.add_argument("--json", help="write everything measured as JSON here (default: not written); the "
                   "markdown and the plot go beside it")
    p.add_argument("--plot", help="PNG of images/s against batch size (default: beside --json)")
    p.add_argument("--batch_sizes", help="comma-separated (default 64,512 with --quick, else 64,256,1024,4096)")
    p.add_argument("--impls", help="comma-separated subset, in the order to run (default: every "
                   "implementation the device runs)")
    p.add_argument("--min_time", type=float, help="seconds timed per row and round (default 0.5 with --quick, "
                   "else 2)")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds per row: the rows at one batch size each "
                   "compile once in their own process, then take turns, one round each (A B C A B C ...); a row's "
                   "img/s is its rounds' median (default 5)")
    p.add_argument("--images", type=int, default=60000, help="dataset size (default 60000, MNIST's)")
    p.add_argument("--workers", type=int, default=4, help="the reference DataLoader's workers (default 4, "
                   "as the reference)")
    p.add_argument("--steps_per_call", type=int, help="steps fused per call in the jax_scan rows, at every batch "
                   f"size (default 200, the trainer's; with --quick, {QUICK_IMAGES_PER_CALL:,} images' worth, "
                   "rounded up: 50 at batch 64, 7 at 512)")
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
    p.add_argument("--model", choices=("mlp", "dcgan", "wgan"), default="mlp", help="which reference's model "
                   "and loop every row trains: the MLP GAN, DCGAN, or WGAN (one 'step' is one batch: a WGAN "
                   "iteration of n_critic=5 critic batches counts 5) (default mlp)")
    p.add_argument("--g_hidden", help="dcgan/wgan: G's 4 channel widths, comma-separated (default the "
                   "reference's 1024,512,256,128)")
    p.add_argument("--d_hidden", help="dcgan/wgan: D's 4 channel widths (default the reference's "
                   "128,256,512,1024)")
    p.add_argument("--population", help="comma-separated population sizes K: adds a row (p) per K and batch "
                   "size, K runs under vmap, aggregate img/s of all members; compared with (e), one run at the "
                   "same per-member batch (default: no population rows)")
    return p.parse_args(argv)

def smoke(args, names: list[str]) -> list[str]:
    """``--smoke``: the same command at toy sizes (every code path, no figure)."""
    args.batch_sizes, args.images, args.min_time, args.steps_per_call, args.workers = "8", 64, 0.05, 2, 0
    if args.model != "mlp":
        args.g_hidden, args.d_hidden = "8,4,4,4", "4,4,4,8"
    if args.population:
        args.population = "2"
    rows = [n for n in names if not IMPLS[n].population]
    first = "jax_scan" if "jax_scan" in rows else next((n for n in rows if IMPLS[n].framework == "jax"), None)
    if first is None:  # only PyTorch rows asked for: the first of them
        first = next((n for n in rows if IMPLS[n].framework == "torch"), None)
    return [n for n in [first] if n] + [n for n in names if IMPLS[n].population]

def machine_jobs(args, sizes: list[int]) -> list[tuple[str, dict, str]]:
    """The jobs that measure the machine, after ``env``: (where in the result, spec, name), in order."""
    precisions = ("float32", "tf32", "bfloat16") if args.device == "gpu" else ("float32", "bfloat16")
    size = {"n": 128} if args.smoke else {}
    out = [("peaks", {"job": "peak", "framework": fw, "precision": pr, **size}, f"peak {fw} {pr}")
           for pr in precisions[:1 if args.smoke else None] for fw in ("jax", "torch")]
    if args.device == "cpu":
        out += [("bandwidth", {"job": "bandwidth", "framework": fw, **({"n": 1 << 16} if args.smoke else {})},
                 f"bandwidth {fw}") for fw in ("numpy", "torch", "jax")[:1 if args.smoke else None]]
    return out + [("flops", {"job": "flops", "batch_size": bs}, f"flops batch {bs}") for bs in sizes]


def steps_per_call(args, batch_size: int) -> int:
    """Steps per jax_scan call at one batch size: ``--steps_per_call``, else --quick's images per
    call (rounded up to whole steps), else the trainer's 200."""
    if args.steps_per_call is not None:
        return args.steps_per_call
    return -(-QUICK_IMAGES_PER_CALL // batch_size) if args.quick else 200

def plan_lines(args, machine: list[tuple[str, dict, str]], groups: list[list[tuple]], widths: dict, threads: int,
               interop: int, min_time: float, plot_path: str | None) -> list[str]:
    """``--plan``: what ``main`` would run, in its order, one line each (nothing is measured)."""
    shown = ", ".join(f"{k[0].upper()} {','.join(map(str, w))}" for k, w in widths.items() if w)
    shown = f" at widths {shown}" if shown else " at the reference's widths" if args.model != "mlp" else ""
    out = [f"plan: --model {args.model}{shown}, --device {args.device}, "
           f"threads {threads} (torch inter-op {interop}), OMP_WAIT_POLICY {args.omp_wait_policy}"
           + (", --smoke sizes" if args.smoke else ""),
           "machine jobs, each in its own process: env; " + "; ".join(name for _, _, name in machine)]
    for group in groups:
        rows = " ".join(impl + (f"(K={k})" if IMPLS[impl].population else "") for _, impl, k in group)
        out.append(f"batch {group[0][0]}: {rows} -- each compiled once in its own process, then {args.rounds} "
                   f"rounds{' in turns' if len(group) > 1 else ''} of >= {min_time:g} s, "
                   f"{steps_per_call(args, group[0][0])} steps per call, "
                   f"job timeout {args.job_timeout:g} s")
    if args.budget_s:
        out.append(f"rows not started after {args.budget_s:g} s are skipped")
    if args.json:
        out.append(f"writes {args.json}, {os.path.splitext(args.json)[0]}.md, {plot_path}")
    else:
        out.append("writes " + (plot_path or "nothing (no --json)"))
    return out

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [s.strip() for s in (args.impls or ",".join(default_impls(args.device, args.model))).split(",")
             if s.strip()]
    if not names or any(i not in IMPLS for i in names):
        fail(f"--impls must name some of {', '.join(IMPLS)}")
    if any(args.model not in IMPLS[i].models for i in names):
        fail(f"{', '.join(i for i in names if args.model not in IMPLS[i].models)} do not apply to --model {args.model}")
    if args.smoke:
        names = smoke(args, names)
    try:
        widths = {k: [int(x) for x in getattr(args, k).split(",")] if getattr(args, k) else None
                  for k in ("g_hidden", "d_hidden")}
        members = sorted({int(k) for k in args.population.split(",")}) if args.population else []
    except ValueError:
        fail("--g_hidden, --d_hidden and --population must be comma-separated integers")
    if args.model == "mlp" and any(widths.values()):
        fail("--g_hidden/--d_hidden are for --model dcgan|wgan (the MLP rows train the reference's widths)")
    if any(w is not None and (len(w) != 4 or min(w) < 1) for w in widths.values()):
        fail("--g_hidden and --d_hidden take 4 positive channel widths")
    if any(k < 2 for k in members):
        fail("--population sizes must be >= 2 (K = 1 is row (e), jaxgan's one run)")
    if members:
        if "jax_population" in names:
            names.remove("jax_population")
        if "jax_scan" not in names:
            names.append("jax_scan")  # the one-run baseline at the same per-member batch
        names.append("jax_population")
    elif "jax_population" in names:
        fail("the row jax_population needs --population K")
    if args.device == "cpu" and any(IMPLS[i].gpu_only for i in names):
        fail(f"{', '.join(i for i in names if IMPLS[i].gpu_only)} run on --device gpu only")
    try:
        sizes = [int(s) for s in args.batch_sizes.split(",")] if args.batch_sizes else \
            ([64, 512] if args.quick else [64, 256, 1024, 4096])
    except ValueError:
        fail(f"--batch_sizes must be comma-separated integers, got {args.batch_sizes!r}")
    if min(sizes) < 2 or max(sizes) > args.images:
        fail(f"batch sizes must be in [2, {args.images}] (BatchNorm needs 2; the dataset has {args.images})")
    if args.images < 2 or args.workers < 0 or (args.steps_per_call is not None and args.steps_per_call < 1):
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
    if args.rounds < 1:
        fail("--rounds must be >= 1")
    min_time = args.min_time or (0.5 if args.quick else 2.0)
    if os.environ.get("CUDA_LAUNCH_BLOCKING", "0") not in ("", "0"):
        print("throughput.py: warning: CUDA_LAUNCH_BLOCKING is set; every kernel launch waits (recorded)",
              file=sys.stderr)

    # (batch, impl, members): one population row per K, every other row once.
    runs = [(impl, k) for impl in names for k in (members if IMPLS[impl].population else [1])]
    plan = [(bs, impl, k) for bs in sizes for impl, k in runs] if args.order == "batch" else \
        [(bs, impl, k) for impl, k in runs for bs in sizes]
    # The rows that take turns: every row at one batch size (--order batch), or each row alone.
    groups = [[p for p in plan if p[0] == bs] for bs in sizes] if args.order == "batch" else [[p] for p in plan]
    plot_path = args.plot or (os.path.splitext(args.json)[0] + ".png" if args.json else None)
    machine = machine_jobs(args, sizes)
    if args.plan:
        print("\n".join(plan_lines(args, machine, groups, widths, threads, interop, min_time, plot_path)))
        return 0
    exit_on_sigterm()  # from here on, children run: SIGTERM ends their process groups too

    t_start = time.perf_counter()
    common = {"device": args.device, "threads": threads, "interop_threads": interop, "model": args.model,
              **{k: v for k, v in widths.items() if v}}
    doc: dict[str, Any] = {
        "schema": SCHEMA, "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line("benchmarks.throughput", argv), "commit": source_commit(), "device": args.device,
        "settings": {"batch_sizes": sizes, "impls": names, "min_time": min_time, "images": args.images,
                     "workers": args.workers, "steps_per_call": args.steps_per_call,
                     "steps_per_call_by_batch": {str(bs): steps_per_call(args, bs) for bs in sizes}, "threads": threads,
                     "interop_threads": interop, "budget_s": args.budget_s, "order": args.order, "rounds": args.rounds,
                     "omp_wait_policy": args.omp_wait_policy, "model": args.model, **widths,
                     "population": members, "smoke": args.smoke},
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

        for where, spec, name in machine:  # peaks and bandwidth are lists; FLOPs are keyed by batch size
            if where == "flops":
                doc.setdefault("flops", {})[str(spec["batch_size"])] = job(spec, name)
            else:
                doc.setdefault(where, []).append(job(spec, name))

        data_dir = os.path.join(work, "data")
        write_dataset(data_dir, args.images, args.model)
        row_common = {"job": "row", "data_dir": data_dir, "min_time": min_time, "workers": args.workers}
        doc["rows"], doc["skipped"] = [], []
        for group in groups:
            if args.budget_s and time.perf_counter() - t_start > args.budget_s:
                doc["skipped"] += [{"impl": impl, "batch_size": bs, "members": k, "why": f"--budget_s {args.budget_s:g}"}
                                   for bs, impl, k in group]
                continue
            jobs = [({**common, **row_common, "impl": impl, "batch_size": bs, "members": k,
                      "steps_per_call": steps_per_call(args, bs)},
                     f"{impl} K={k} batch {bs}" if IMPLS[impl].population else f"{impl} batch {bs}",
                     IMPLS[impl].omp_wait or args.omp_wait_policy) for bs, impl, k in group]
            results = run_in_turns(jobs, args.rounds, work, args.device, threads, args.job_timeout)
            for (bs, impl, k), (_, name, _), r in zip(group, jobs, results):
                status = "ok" if r.get("ok") else f"FAILED: {r.get('error')}"
                spread = (f"  img/s {min(r['img_per_s_rounds']):,.0f}..{max(r['img_per_s_rounds']):,.0f} over "
                          f"{len(r['img_per_s_rounds'])} rounds" if r.get("ok") else "")
                print(f"  {name:34s} {r['process_wall_s']:6.1f} s  load {r['loadavg_before'][0]:.2f}  {status}{spread}",
                      flush=True)
                r.update(impl=impl, batch_size=bs, framework=IMPLS[impl].framework, label=IMPLS[impl].label)
                r.setdefault("members", k)
                doc["rows"].append(r)
    doc["total_s"] = time.perf_counter() - t_start
    if not any(r.get("ok") for r in doc["rows"]):  # e.g. jax or torch missing: keep any earlier result
        why = next((r.get("error") for r in doc["rows"]), "no row ran")
        fail(f"no row ran ({why}); nothing written")
    analysis.annotate(doc)  # FLOPs, peak fractions, roofline, summary, load: derived from the above only

    md = tables.render_throughput(doc)
    print()
    print(md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1, default=str)
        with open(os.path.splitext(args.json)[0] + ".md", "w") as f:
            f.write(md + "\n")
    if plot_path:
        try:
            tables.plot(doc, plot_path)
        except ImportError as e:
            print(f"throughput.py: no plot ({e})", file=sys.stderr)
    if args.json:
        print(f"\nwrote {args.json}, {os.path.splitext(args.json)[0]}.md{', ' + plot_path if plot_path else ''}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
