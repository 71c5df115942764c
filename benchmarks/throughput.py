"""Training throughput, side by side in one run on one device: the PyTorch original vs jaxgan.

    python benchmarks/throughput.py --quick --json out.json              # CPU, < 5 minutes here
    python benchmarks/throughput.py --device gpu --json results/gpu.json # one GPU

Each row times full D+G training iterations, each implementation with its own data pipeline:

  (a) torch_reference  the reference as written: torchvision MNIST with per-image ToTensor +
                       Normalize, DataLoader(shuffle, 4 workers), its loop
  (b) torch_tuned      the same loop, the dataset held on the device as one uint8 tensor,
                       shuffled and normalised there (faster than any worker count here)
  (c) torch_compile    (b) with G and D under torch.compile
  (d) jax_per_step     jaxgan's step, one jitted call per iteration
  (e) jax_scan         jaxgan's training path: many steps fused in one lax.scan call over the
                       device-resident uint8 dataset, batches drawn on device
  (f) jax_scan_bf16    (e) with --matmul_dtype bfloat16 (bf16 operands, fp32 accumulation)

Warm-up (and compilation, reported as compile_s) is excluded from the timing; the device is
synchronised before the clock is read. FLOPs per image come from XLA's cost analysis of one
jaxgan step lowered for the CPU (the PyTorch loop does the same work, plus D's unused weight
gradients in the G step); peak_fraction divides the achieved FLOP rate by a float32 matmul peak measured on the same
device in the same run. The data is written in torchvision's MNIST format to a temporary folder.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import tempfile
import time
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

IMPLS = ("torch_reference", "torch_tuned", "torch_compile", "jax_per_step", "jax_scan", "jax_scan_bf16")


def fail(message: str) -> None:
    print(f"throughput.py: error: {message}", file=sys.stderr)
    sys.exit(2)


# -- data ------------------------------------------------------------------------------------
def write_dataset(root: str, n: int) -> None:
    """n MNIST-sized uint8 images (random strokes) in torchvision's IDX format under root."""
    from jaxgan.formats import write_mnist

    rng = np.random.default_rng(0)
    images = rng.integers(0, 64, (n, 28, 28), dtype=np.uint8)
    rows = rng.integers(4, 24, n)
    for i, r in enumerate(rows):
        images[i, r:r + 3, 5:23] = 255
    write_mnist(root, images, rng.integers(0, 10, n).astype(np.uint8))


# -- timing helpers --------------------------------------------------------------------------
def timed_loop(run_block: Callable[[int], None], sync: Callable[[], None], min_time: float,
               first_block: int) -> tuple[int, float]:
    """Run blocks of iterations (doubling) until at least ``min_time`` seconds have been timed."""
    done, elapsed, block = 0, 0.0, first_block
    while elapsed < min_time:
        sync()
        t0 = time.perf_counter()
        run_block(block)
        sync()
        elapsed += time.perf_counter() - t0
        done += block
        block *= 2
    return done, elapsed


def matmul_peak(device: str) -> tuple[float, str]:
    """Measured float32 matmul rate (FLOP/s) through XLA on the benchmark's device."""
    import jax
    import jax.numpy as jnp

    n = 8192 if device == "gpu" else 2048
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    f(a, b).block_until_ready()
    times = []
    for _ in range(10 if device == "gpu" else 5):
        t0 = time.perf_counter()
        f(a, b).block_until_ready()
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / float(np.median(times)), f"{n}x{n}x{n} float32 jnp.matmul, median of {len(times)}"


# -- PyTorch ---------------------------------------------------------------------------------
def bench_torch(kind: str, root: str, batch_size: int, device: str, min_time: float, workers: int
                ) -> dict[str, Any]:
    import torch
    from torchvision import datasets

    from benchmarks import torch_reference as ref

    dev = torch.device("cuda" if device == "gpu" else "cpu")
    sync = torch.cuda.synchronize if device == "gpu" else (lambda: None)
    torch.manual_seed(0)
    G, D = ref.Generator((1, 28, 28), 100).to(dev), ref.Discriminator((1, 28, 28)).to(dev)
    opt_g, opt_d = ref.make_optimizers(G, D)
    if kind == "torch_compile":
        G, D = torch.compile(G), torch.compile(D)

    if kind == "torch_reference":
        ds = datasets.MNIST(root=root, train=True, download=False, transform=ref.reference_transform(1))
        loader = ref.reference_loader(ds, batch_size, num_workers=workers,
                                      pin_memory=device == "gpu")
        stream = ref.cycle(loader)

        def next_batch():
            images, _ = next(stream)
            return images.to(dev, non_blocking=True)
    else:
        data = datasets.MNIST(root=root, train=True, download=False).data.to(dev)  # uint8 (N, 28, 28)
        n = data.shape[0]
        state = {"perm": torch.randperm(n, device=dev), "pos": 0}

        def next_batch():
            if state["pos"] + batch_size > n:  # new epoch (the short tail is skipped here)
                state["perm"], state["pos"] = torch.randperm(n, device=dev), 0
            idx = state["perm"][state["pos"]:state["pos"] + batch_size]
            state["pos"] += batch_size
            return (data[idx].float() / 255.0 - 0.5) / 0.5

    def run_block(k: int) -> None:
        for _ in range(k):
            ref.train_iteration(G, D, opt_g, opt_d, next_batch(), 100)

    t0 = time.perf_counter()
    run_block(3)  # warm-up: worker start-up, allocator, cuDNN/cuBLAS handles, compilation
    sync()
    compile_s = time.perf_counter() - t0
    iters, elapsed = timed_loop(run_block, sync, min_time, first_block=5)
    return {"iters": iters, "seconds": elapsed, "compile_s": compile_s}


# -- jaxgan ----------------------------------------------------------------------------------
def bench_jax(kind: str, root: str, batch_size: int, min_time: float, steps_per_call: int
              ) -> dict[str, Any]:
    import jax

    from jaxgan import data as data_lib
    from jaxgan import steps
    from jaxgan.config import Config, validate

    cfg = validate(Config(dataset="mnist", data_dir=root, download=False, batch_size=batch_size,
                          matmul_dtype="bfloat16" if kind.endswith("bf16") else "float32"))
    images, _ = data_lib.load_numpy("mnist", root, download=False)
    gan, state = steps.build(cfg)
    data = jax.device_put(data_lib.flatten_chw(images))
    n = len(images)
    full = n // batch_size
    keys = steps.run_keys(cfg.seed)
    perm_fn = jax.jit(data_lib.epoch_permutation, static_argnums=2)
    chunk = jax.jit(gan.train_chunk, static_argnames="length", donate_argnums=0)
    length = 1 if kind == "jax_per_step" else max(1, min(steps_per_call, full))
    pos = {"epoch": 0, "i": 0, "perm": perm_fn(keys["shuffle"], 0, n)}
    box = {"state": state}

    def call() -> None:
        if pos["i"] + length > full:
            pos["epoch"] += 1
            pos["i"], pos["perm"] = 0, perm_fn(keys["shuffle"], pos["epoch"], n)
        box["state"], _ = chunk(box["state"], data, pos["perm"], pos["i"], length=length)
        pos["i"] += length

    def run_block(k: int) -> None:
        for _ in range(k):
            call()

    def sync() -> None:
        jax.block_until_ready(box["state"])

    flops = step_flops(gan, state, data, pos["perm"]) / batch_size if kind == "jax_per_step" else None
    t0 = time.perf_counter()
    call()
    sync()
    compile_s = time.perf_counter() - t0
    calls, elapsed = timed_loop(run_block, sync, min_time, first_block=2 if length > 1 else 20)
    return {"iters": calls * length, "seconds": elapsed, "compile_s": compile_s, "flops_per_img": flops}


def step_flops(gan, state, data, perm) -> float:
    """FLOPs of one training step by XLA's cost analysis of the step lowered for the CPU.
    (The GPU compiler hands matmuls to cuBLAS as custom calls, which its cost analysis does not
    count, so one device-independent count serves every row.)"""
    import jax

    def abstract(x):
        return jax.ShapeDtypeStruct(x.shape, x.dtype)

    traced = jax.jit(gan.train_chunk, static_argnames="length").trace(
        jax.tree_util.tree_map(abstract, state), abstract(data), abstract(perm), 0, length=1)
    lowered = traced.lower(lowering_platforms=("cpu",))
    cost = lowered.cost_analysis()
    if not cost:  # some JAX releases only analyse compiled programs
        cost = lowered.compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"]) if cost and "flops" in cost else float("nan")


# -- main ------------------------------------------------------------------------------------
def device_name(device: str) -> str:
    if device == "gpu":
        import jax

        return jax.devices()[0].device_kind
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


def plot(rows: list[dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for impl in IMPLS:
        pts = sorted((r["batch_size"], r["img_per_s"]) for r in rows if r["impl"] == impl and r["img_per_s"])
        if pts:
            ax.plot(*zip(*pts), marker="o", label=impl)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("training images / s (D+G iterations)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def markdown(rows: list[dict]) -> str:
    out = ["| impl | device | batch | img/s | step ms | compile s | MFLOP/img | % of matmul peak |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["img_per_s"] is None:
            out.append(f"| {r['impl']} | {r['device']} | {r['batch_size']} | failed: {r.get('error', '')} | | | | |")
            continue
        out.append(f"| {r['impl']} | {r['device']} | {r['batch_size']} | {r['img_per_s']:,.0f} | "
                   f"{r['step_ms']:.3f} | {r['compile_s']:.2f} | {(r['flops_per_img'] or math.nan) / 1e6:.1f} | "
                   f"{100 * (r['peak_fraction'] or math.nan):.1f} |")
    return "\n".join(out)


def main() -> int:
    from jaxgan.config import OneLineParser

    p = OneLineParser(prog="throughput.py", description="jaxgan vs the PyTorch original: training throughput")
    p.add_argument("--quick", action="store_true", help="batch 64 and 512, short timings")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--json", help="write the rows as JSON here")
    p.add_argument("--plot", help="PNG of images/s against batch size (default: beside --json)")
    p.add_argument("--batch_sizes", help="comma-separated, overrides the defaults")
    p.add_argument("--impls", default=",".join(IMPLS), help="comma-separated subset of " + ",".join(IMPLS))
    p.add_argument("--min_time", type=float, help="seconds timed per row (default 1.5 quick, 4 full)")
    p.add_argument("--images", type=int, default=60000, help="dataset size (MNIST's 60,000)")
    p.add_argument("--workers", type=int, default=4, help="the reference DataLoader's workers (4)")
    p.add_argument("--steps_per_call", type=int, default=200, help="steps fused per call in jax_scan")
    args = p.parse_args()

    impls = [s.strip() for s in args.impls.split(",") if s.strip()]
    if not impls or any(i not in IMPLS for i in impls):
        fail(f"--impls must name some of {', '.join(IMPLS)}")
    try:
        sizes = [int(s) for s in args.batch_sizes.split(",")] if args.batch_sizes else \
            ([64, 512] if args.quick else [64, 256, 1024, 4096])
    except ValueError:
        fail(f"--batch_sizes must be comma-separated integers, got {args.batch_sizes!r}")
    if min(sizes) < 2 or max(sizes) > args.images:
        fail(f"batch sizes must be in [2, {args.images}] (BatchNorm needs 2; the dataset has {args.images})")
    if args.images < 2 or args.workers < 0 or args.steps_per_call < 1:
        fail("--images must be >= 2, --workers >= 0, --steps_per_call >= 1")
    for path, exts in ((args.json, (".json",)), (args.plot, (".png",))):
        if path and (not path.lower().endswith(exts) or os.path.isdir(path)):
            fail(f"{path!r} must be a file path ending in {exts[0]}")
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            fail(f"folder of {path!r} does not exist")
    min_time = args.min_time or (1.5 if args.quick else 4.0)

    import jax

    if args.device == "gpu" and jax.default_backend() != "gpu":
        fail("--device gpu, but JAX sees no GPU")
    if args.device == "cpu":
        jax.config.update("jax_platforms", "cpu")
    peak, peak_how = matmul_peak(args.device)
    name = device_name(args.device)
    print(f"device: {name}; measured matmul peak {peak / 1e9:,.0f} GFLOP/s ({peak_how})", flush=True)

    rows: list[dict] = []
    flops_per_img = None
    with tempfile.TemporaryDirectory() as root:
        write_dataset(root, args.images)
        for bs in sizes:
            for impl in impls:
                try:
                    if impl.startswith("torch"):
                        r = bench_torch(impl, root, bs, args.device, min_time, args.workers)
                    else:
                        r = bench_jax(impl, root, bs, min_time, args.steps_per_call)
                    error = None
                except Exception as e:  # a failing implementation is reported, not fatal
                    r, error = None, f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
                if r and r.get("flops_per_img") and math.isfinite(r["flops_per_img"]):
                    flops_per_img = r["flops_per_img"]
                row = {"impl": impl, "device": name, "batch_size": bs,
                       "img_per_s": r["iters"] * bs / r["seconds"] if r else None,
                       "step_ms": 1e3 * r["seconds"] / r["iters"] if r else None,
                       "compile_s": r["compile_s"] if r else None, "flops_per_img": None,
                       "peak_fraction": None, "matmul_peak_flops": peak}
                if error:
                    row["error"] = error
                rows.append(row)
                print(f"  {impl:16s} batch {bs:5d}: " +
                      (f"{row['img_per_s']:12,.0f} img/s" if r else f"failed ({error})"), flush=True)
    for row in rows:  # same work per image for every implementation
        if row["img_per_s"] and flops_per_img:
            row["flops_per_img"] = flops_per_img
            row["peak_fraction"] = row["img_per_s"] * flops_per_img / peak
    table = markdown(rows)
    print()
    print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    plot_path = args.plot or (os.path.splitext(args.json)[0] + ".png" if args.json else None)
    if plot_path:
        plot(rows, plot_path, f"{name}: images/s vs batch size")
        print(f"\nwrote {args.json or ''} {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
