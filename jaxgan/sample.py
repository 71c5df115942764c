"""``python -m jaxgan.sample``: draw images from the newest checkpoint of a run.

    python -m jaxgan.sample --dataset mnist --ckpt_dir checkpoints --num_samples 64 --seed 0 --out samples.png

``--out *.png`` writes an 8-column grid; ``--out *.npy`` a uint8 array (N, H, W, C); ``--out *.npz``
the keys ``images`` (that array) and, for a conditional run, ``labels`` (int32 (N,)).
``--best`` draws from the checkpoint that training's ``--keep_best`` kept.

A conditional run (``--conditional``): ``--label 7`` draws ``--num_samples`` images of class 7;
``--labels 0,1,2`` that many of each listed class, grouped by class in the listed order; neither:
``--num_samples`` in all, every class in turn, grouped by class. With ``--bn batch`` the images
come from mixed-label batches of the training size, as in training (``generate.draw_labelled``):
``--label 7 --bn batch`` gives the 7s of such batches, never a batch of 7s alone.

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
                   help=".png: an 8-column grid; .npy: uint8 (N, H, W, C); .npz: images and labels "
                        "(default %(default)s)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--label", type=int, help="a conditional run: draw --num_samples images of this class")
    which.add_argument("--labels", help="a conditional run: draw --num_samples images of each of these "
                                        "classes, e.g. 0,1,2 (default: every class in turn)")
    return p


def asked_labels(args, classes: int) -> np.ndarray | None:
    """The classes to draw, one per image (None: the run's default draw). ``classes``: the run's
    (0: unconditional, which takes no labels)."""
    if args.label is None and args.labels is None:
        return None
    flag = "--label" if args.label is not None else "--labels"
    if not classes:
        raise ConfigError(f"{flag}: the run is unconditional (trained without --conditional); it takes no labels")
    try:
        wanted = [args.label] if args.label is not None else [int(v) for v in args.labels.split(",")]
    except ValueError:
        raise ConfigError(f"--labels must be class numbers separated by commas, got {args.labels!r}") from None
    bad = [c for c in wanted if not 0 <= c < classes]
    if bad:
        raise ConfigError(f"{flag} {','.join(map(str, bad))}: the run has {classes} classes (0..{classes - 1})")
    return np.repeat(np.asarray(wanted, np.int32), args.num_samples)


def main(argv: Sequence[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    runtime.setup()
    try:
        dataset = canonical_dataset(args.dataset)
        ext = os.path.splitext(args.out)[1].lower()
        if ext not in (".png", ".npy", ".npz"):
            raise ConfigError(f"--out must end in .png or .npy (or .npz: images and labels), got {args.out!r}")
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
        labels = asked_labels(args, gan.n_classes)
        if labels is None and gan.n_classes:  # every class in turn, grouped by class
            labels = np.sort(generate.balanced_labels(gan, args.num_samples), kind="stable")
        if labels is None:
            images = generate.draw(gan, state, args.num_samples, args.seed, args.bn)
        else:
            # With --bn batch, mixed-label batches of the training size (as in training).
            images = generate.draw_labelled(gan, state, labels, args.seed, args.bn)
        if ext == ".npy":
            tmp = f"{args.out}.tmp.npy"
            np.save(tmp, images)
            os.replace(tmp, args.out)
        elif ext == ".npz":
            tmp = f"{args.out}.tmp.npz"
            np.savez(tmp, images=images, **({} if labels is None else {"labels": labels}))
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
    print(f"wrote {len(images)} samples (step {record['step']}{who}, --bn {args.bn}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
