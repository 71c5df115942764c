"""How a population's memory grows with K: XLA's own memory analysis of the compiled training
chunk (arguments = the state, the dataset and the permutations; temporaries = activations and
gradients of one step), for K = 1, 2, 4, ... members of the reference MLP GAN at one batch size.

    python -m benchmarks.population_memory --json benchmarks/results/population_memory_cpu.json

Compiled for this machine's backend (the CPU here); nothing is trained.
"""

from __future__ import annotations

import datetime
import json
import os
import sys

import jax
import jax.numpy as jnp

from benchmarks.harness import command_line, cpu_model
from jaxgan import program
from jaxgan.config import Config, OneLineParser, validate


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


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m benchmarks.population_memory", description=__doc__.splitlines()[0])
    p.add_argument("--members", default="1,2,4,8,16,32,64", help="population sizes (default %(default)s)")
    p.add_argument("--batch", type=int, default=64, help="per-member batch size (default %(default)s)")
    p.add_argument("--json", default=None, help="write the rows here (default: print only)")
    p.add_argument("--smoke", action="store_true", help="the docs' tiny-size override, not a figure: K = 2 at "
                   "batch 8 over 64 images")
    args = p.parse_args(argv)
    if args.json and (not args.json.endswith(".json") or not os.path.isdir(os.path.dirname(os.path.abspath(args.json)))):
        p.error(f"--json {args.json!r} must be a .json path in an existing folder")
    try:
        members = [int(k) for k in ("2" if args.smoke else args.members).split(",")]
    except ValueError:
        p.error(f"--members must be comma-separated integers, got {args.members!r}")
    batch, n = (8, 64) if args.smoke else (args.batch, 60000)
    rows = [analyse(k, batch, n) for k in members]
    out = {"created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "command": command_line("benchmarks.population_memory", argv), "cpu": cpu_model(), "backend": jax.default_backend(), "jax": jax.__version__,
           "smoke": args.smoke, "rows": rows}
    print("| K | state MB | XLA arguments MB | temporaries MB |\n|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['members']} | {r['state_bytes'] / 1e6:.1f} | {r['argument_bytes'] / 1e6:.1f} | "
              f"{r['temp_bytes'] / 1e6:.1f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
