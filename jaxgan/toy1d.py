"""``python -m jaxgan.toy1d --out DIR``: the paper's 1-D GAN figure, for several seeds at once.

Goodfellow et al. (2014), Fig. 1, for a population of seeds trained together as one compiled,
vmapped program (the method, and why it converges, is described in ``jaxgan.gan1d``).

Writes ``DIR/figure.png`` (the first seed's four stages), ``DIR/toy1d.json`` (per seed: W1 of G's
samples to N(0, 1) and max |D(x) - 1/2| on [-2, 2]; the worst and mean over seeds; the settings)
and ``DIR/samples.npy`` (G's final samples, one row per seed), and prints the per-seed table.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence

import jax
import numpy as np

from jaxgan import gan1d
from jaxgan.config import OneLineParser

DEFAULT_SEEDS = "0,1,2,3,4"


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; ValueError (one line) for anything else."""
    try:
        seeds = [int(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--seeds {text!r} is not a comma-separated list of integers") from None
    if any(not 0 <= s < 2**32 for s in seeds):
        raise ValueError(f"--seeds {text!r}: seeds must be in [0, 2**32)")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {text!r} repeats a seed")
    return seeds


def build_parser() -> OneLineParser:
    """The command's flags; the training flags and their defaults come from ``gan1d.Settings``."""
    p = OneLineParser(prog="python -m jaxgan.toy1d", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="toy1d", help="output folder (default %(default)s)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--seeds", default=DEFAULT_SEEDS,
                       help="comma-separated seeds, trained together as one vmapped program "
                            "(default %(default)s)")
    which.add_argument("--seed", type=int, default=None,
                       help="train this one seed alone instead of --seeds (default: not set)")
    for f in dataclasses.fields(gan1d.Settings):
        p.add_argument(f"--{f.name}", type=type(f.default), default=f.default,
                       help=f"{f.metadata['help']} (default %(default)s)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.seed is not None and not 0 <= args.seed < 2**32:
            raise ValueError(f"--seed {args.seed} must be in [0, 2**32)")
        seeds = parse_seeds(args.seeds) if args.seed is None else [args.seed]
        settings = gan1d.Settings(**{f.name: getattr(args, f.name)
                                     for f in dataclasses.fields(gan1d.Settings)}).validate("--")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise ValueError(f"--out {args.out!r} exists and is not a directory")
        try:
            os.makedirs(args.out, exist_ok=True)
        except OSError as e:
            raise ValueError(f"cannot create --out {args.out!r}: {e.strerror}") from None
    except ValueError as e:
        print(f"python -m jaxgan.toy1d: error: {e}", file=sys.stderr)
        return 2

    toy = gan1d.Toy(settings)
    t0 = time.perf_counter()
    if args.seed is not None:
        result = jax.tree.map(lambda a: a[None], gan1d.run_solo(toy, seeds[0]))
    else:
        result = gan1d.run_population(toy, seeds)
    result = jax.block_until_ready(result)
    seconds = time.perf_counter() - t0

    summary = gan1d.summarise(toy, seeds, result)
    summary["seconds"] = round(seconds, 1)
    summary["figure_seed"] = seeds[0]
    summary["command"] = "python -m jaxgan.toy1d " + " ".join(sys.argv[1:] if argv is None else argv)
    gan1d.figure(toy, result, 0, seeds[0], os.path.join(args.out, "figure.png"))
    np.save(os.path.join(args.out, "samples.npy"), np.asarray(result["samples"][:, -1], np.float32))
    with open(os.path.join(args.out, "toy1d.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(gan1d.table(summary))
    verdict = "all seeds meet" if summary["all_meet_targets"] else "NOT all seeds meet"
    print(f"{verdict} the targets (W1 <= {gan1d.TARGETS['w1']}, max|D-1/2| <= "
          f"{gan1d.TARGETS['max_abs_d_minus_half']}); {len(seeds)} seed(s) in {seconds:.0f} s "
          f"-> {args.out}/figure.png, toy1d.json, samples.npy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
