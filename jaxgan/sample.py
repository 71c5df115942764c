"""``python -m jaxgan.sample``: draw images from the newest checkpoint of a run.

    python -m jaxgan.sample --dataset mnist --ckpt_dir checkpoints --num_samples 64 --seed 0 --out samples.png

``--out *.png`` writes an 8-column grid; ``--out *.npy`` a uint8 array (N, H, W, C).
``--best`` draws from the checkpoint that training's ``--keep_best`` kept.

BatchNorm mode: by default G normalises with the statistics of the batch being drawn
(``--bn batch``), because that is how the reference produces every image it shows: it never
calls ``G.eval()``, so its grids use batch statistics. ``--bn running`` uses the running averages
instead (PyTorch's eval mode): then each image depends on its own noise only, not on the batch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import numpy as np

from jaxgan import checkpoint as ckpt_lib
from jaxgan import generate, report, runs, runtime
from jaxgan.config import ConfigError, OneLineParser, canonical_dataset, dataset_name


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="python -m jaxgan.sample", description=__doc__.splitlines()[0])
    runs.add_run_flags(p, member_help="which member of a --population run to draw from (default 0)")
    p.add_argument("--num_samples", type=int, default=64, help="images to draw (default %(default)s)")
    p.add_argument("--out", default="samples.png",
                   help=".png: an 8-column grid; .npy: uint8 (N, H, W, C) (default %(default)s)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    runtime.setup()
    try:
        dataset = canonical_dataset(args.dataset)
        ext = os.path.splitext(args.out)[1].lower()
        if ext not in (".png", ".npy"):
            raise ConfigError(f"--out must end in .png or .npy, got {args.out!r}")
        if args.num_samples < 1 or (args.bn == "batch" and args.num_samples < 2):
            raise ConfigError("--num_samples must be >= 1 (>= 2 with --bn batch: BatchNorm needs a batch)")
        if args.seed < 0:
            raise ConfigError(f"--seed must be a non-negative integer, got {args.seed}")
        if os.path.isdir(args.out):
            raise ConfigError(f"--out {args.out!r} is a directory")
        out_dir = os.path.dirname(os.path.abspath(args.out))
        if not os.path.isdir(out_dir):
            raise ConfigError(f"--out: folder {out_dir!r} does not exist")
        gan, state, record = generate.load_generator(dataset_name(dataset, args.data_dir), args.ckpt_dir, args.step, best=args.best, member=args.member, model=args.model)
        images = generate.draw(gan, state, args.num_samples, args.seed, args.bn)
        if ext == ".npy":
            tmp = f"{args.out}.tmp.npy"
            np.save(tmp, images)
            os.replace(tmp, args.out)
        else:
            report.save_png(report.make_grid(images), args.out)
    except (ConfigError, ckpt_lib.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot write {args.out!r}: {e.strerror}", file=sys.stderr)
        return 2
    who = f", member {record['member']}" if args.member is not None or record["config"].get("population", 1) > 1 else ""
    print(f"wrote {args.num_samples} samples (step {record['step']}{who}, --bn {args.bn}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
