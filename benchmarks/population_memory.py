"""How a population's memory grows with K: XLA's own memory analysis of the compiled training
chunk (arguments = the state, the dataset and the permutations; temporaries = activations and
gradients of one step), for K = 1, 2, 4, ... members of the reference MLP GAN at one batch size.

    python -m benchmarks.population_memory --json benchmarks/results/population_memory_cpu.json

Compiled for this machine's backend (the CPU here); nothing is trained.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp

from jaxgan import program
from jaxgan.config import Config, validate


def analyse(k: int, batch: int, n: int = 60000, length: int = 10) -> dict:
    cfg = validate(Config(population=k, batch_size=batch, progress=False, steps_per_call=length))
    # The trainer's own program (jaxgan.program), lowered from shapes: nothing is allocated.
    prog = program.compile_run(cfg, abstract=True)
    state = prog.initial_state
    data = {"images": jax.ShapeDtypeStruct((n, 784), jnp.uint8)}  # data.put_dataset's layout
    perms = jax.ShapeDtypeStruct((k, n) if k > 1 else (n,), jnp.int32)  # a solo run: one permutation
    scalar = jax.ShapeDtypeStruct((), jnp.int32)
    compiled = prog.chunk.lower(state, data, perms, scalar, scalar).compile()
    mem = compiled.memory_analysis()
    state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(state))
    return {"members": k, "batch": batch, "state_bytes": int(state_bytes),
            "argument_bytes": int(mem.argument_size_in_bytes), "output_bytes": int(mem.output_size_in_bytes),
            "temp_bytes": int(mem.temp_size_in_bytes)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", default="1,2,4,8,16,32,64", help="population sizes (default %(default)s)")
    p.add_argument("--batch", type=int, default=64, help="per-member batch size (default %(default)s)")
    p.add_argument("--json", default=None, help="write the rows here (default: print only)")
    args = p.parse_args()
    rows = [analyse(int(k), args.batch) for k in args.members.split(",")]
    out = {"backend": jax.default_backend(), "jax": jax.__version__, "rows": rows}
    print("| K | state MB | XLA arguments MB | temporaries MB |\n|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['members']} | {r['state_bytes'] / 1e6:.1f} | {r['argument_bytes'] / 1e6:.1f} | "
              f"{r['temp_bytes'] / 1e6:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
