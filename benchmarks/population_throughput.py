"""A population's aggregate throughput against one run at the same per-member batch, side by side
in one run, each configuration in its own process.

    python benchmarks/population_throughput.py --json benchmarks/results/population_cpu.json
    python benchmarks/population_throughput.py --members 1,8,64 --device gpu --json out.json

Each row trains the reference MLP GAN on 60,000 MNIST-sized uint8 images held on the device:
K = 1 is jaxgan's solo training path (``GAN.train_chunk``), K > 1 the same step under ``vmap``
(``Population.train_chunk``), ``--steps`` steps fused per call. Compilation and one warm-up call
are excluded; the device is synchronised before the clock is read. ``aggregate_img_per_s`` counts
the images of all members; ``vs_one_run`` divides it by the K = 1 row's. The load average before
and after each row is recorded (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def row(k: int, batch: int, steps: int, min_time: float) -> dict:
    import jax
    import numpy as np

    from jaxgan import data as data_lib
    from jaxgan import population, steps as steps_lib
    from jaxgan.config import Config, validate

    n = 60000
    data = jax.device_put(np.random.default_rng(0).integers(0, 256, (n, 784), dtype=np.uint8))
    if k == 1:
        cfg = validate(Config(batch_size=batch, progress=False))
        gan, state = steps_lib.build(cfg)
        perm = data_lib.epoch_permutation(steps_lib.run_keys(cfg.seed)["shuffle"], 0, n)
        fn = jax.jit(gan.train_chunk, static_argnums=4, donate_argnums=0)
    else:
        cfg = validate(Config(batch_size=batch, progress=False, population=k))
        pop, state = population.build(cfg)
        perm = pop.permutations(0, n)
        fn = jax.jit(pop.train_chunk, static_argnums=4, donate_argnums=0)
    t0 = time.perf_counter()
    state, m = fn(state, data, perm, 0, steps)
    jax.block_until_ready(m)
    compile_s = time.perf_counter() - t0
    calls, start = 0, time.perf_counter()
    while True:
        state, m = fn(state, data, perm, (calls * steps) % (n // batch - steps), steps)
        calls += 1
        jax.block_until_ready(m)
        if time.perf_counter() - start >= min_time:
            break
    seconds = time.perf_counter() - start
    return {"members": k, "batch_per_member": batch, "steps_timed": calls * steps, "seconds": seconds,
            "aggregate_img_per_s": k * batch * calls * steps / seconds, "compile_and_first_call_s": compile_s,
            "device": str(jax.devices()[0].device_kind), "backend": jax.default_backend()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", default="1,2,4,8", help="population sizes, 1 first (default %(default)s)")
    p.add_argument("--batch", type=int, default=64, help="per-member batch size (default %(default)s)")
    p.add_argument("--steps", type=int, default=50, help="steps fused per call (default %(default)s)")
    p.add_argument("--min_time", type=float, default=3.0, help="seconds timed per row (default %(default)s)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu", help="JAX platform (default %(default)s)")
    p.add_argument("--json", default=None, help="write the rows here (default: print only)")
    p.add_argument("--_row", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._row is not None:
        print(json.dumps(row(args._row, args.batch, args.steps, args.min_time)))
        return
    try:
        members = [int(k) for k in args.members.split(",")]
    except ValueError:
        sys.exit("population_throughput.py: error: --members must be comma-separated integers")
    if members[0] != 1 or min(members) < 1:
        sys.exit("population_throughput.py: error: --members must start with 1 (the one-run baseline)")
    rows = []
    env = dict(os.environ, JAX_PLATFORMS=args.device.replace("gpu", "cuda"))
    for k in members:
        load0 = os.getloadavg()
        out = subprocess.run([sys.executable, __file__, "--_row", str(k), "--batch", str(args.batch), "--steps",
                              str(args.steps), "--min_time", str(args.min_time)], capture_output=True, text=True,
                             env=env, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r["loadavg_before"], r["loadavg_after"] = list(load0), list(os.getloadavg())
        rows.append(r)
    base = rows[0]["aggregate_img_per_s"]
    print(f"| K | aggregate img/s | x one run | load before/after |\n|---:|---:|---:|---:|")
    for r in rows:
        r["vs_one_run"] = r["aggregate_img_per_s"] / base
        print(f"| {r['members']} | {r['aggregate_img_per_s']:,.0f} | {r['vs_one_run']:.2f} | "
              f"{r['loadavg_before'][0]:.2f}/{r['loadavg_after'][0]:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": " ".join(sys.argv), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
