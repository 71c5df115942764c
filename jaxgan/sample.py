"""``python -m jaxgan.sample``: draw images from the newest checkpoint of a run.

    python -m jaxgan.sample --dataset mnist --ckpt_dir checkpoints --num_samples 64 --seed 0 --out samples.png

``--out *.png`` writes an 8-column grid; ``--out *.npy`` a uint8 array (N, H, W, C).

BatchNorm mode: by default G normalises with the statistics of the batch being drawn
(``--bn batch``), because that is how the reference produces every image it shows: it never
calls ``G.eval()``, so its grids use batch statistics. ``--bn running`` uses the running averages
instead (PyTorch's eval mode): then each image depends on its own noise only, not on the batch.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence

import jax
import numpy as np

from jaxgan import checkpoint as ckpt_lib
from jaxgan import data as data_lib
from jaxgan import report, steps
from jaxgan.config import ConfigError, OneLineParser, canonical_dataset, from_dict


def load_generator(dataset: str, ckpt_dir: str, step: int | None = None
                   ) -> tuple[steps.GAN, steps.TrainState, dict]:
    """Rebuild the run's models from the configuration stored in its checkpoint and restore it."""
    folder = os.path.join(ckpt_dir, dataset)
    if not os.path.isdir(folder):
        raise ckpt_lib.CheckpointError(f"no checkpoints for {dataset} in {folder}")
    checkpoints = ckpt_lib.Checkpoints(folder)
    try:
        available = checkpoints.steps()
        if not available:
            raise ckpt_lib.CheckpointError(f"no checkpoint in {os.path.abspath(folder)}")
        if step is not None and step not in available:
            raise ckpt_lib.CheckpointError(f"no checkpoint at step {step} in {folder} (have {available})")
        record = checkpoints.read_record(step if step is not None else available[-1])
        cfg = from_dict({k: v for k, v in record["config"].items() if k != "resume"})
        gan, template = steps.build(cfg)
        state, record, _ = checkpoints.restore(template, step)
    finally:
        checkpoints.close()
    if state.g_ema is not None:  # trained with --g_ema: sample from the averaged weights
        state = state.replace(g_params=state.g_ema)
    return gan, state, record


@functools.partial(jax.jit, static_argnums=(0, 3))
def _generate(gan: steps.GAN, state: steps.TrainState, z: jax.Array, use_batch_stats: bool) -> jax.Array:
    # One compiled function for every call (training's --eval_every draws repeatedly).
    return gan.generate(state, z, use_batch_stats)[0]


def draw(gan: steps.GAN, state: steps.TrainState, num_samples: int, seed: int, bn: str,
         batch: int | None = None) -> np.ndarray:
    """``num_samples`` images as uint8 (N, H, W, C), from noise drawn with ``seed``. With
    ``batch``, G runs on chunks of that many (with ``--bn batch`` each chunk's statistics are
    used, as in training); by default on all of them at once."""
    z = gan.sample_noise(jax.random.key(seed), num_samples)
    batch = batch or num_samples
    parts = []
    for i in range(0, num_samples, batch):
        zi = z[i:i + batch]
        if bn == "batch" and len(zi) < 2:  # BatchNorm needs two: borrow the previous row
            zi = z[i - 1:i + 1]
            parts.append(np.asarray(_generate(gan, state, zi, True))[1:])
            continue
        parts.append(np.asarray(_generate(gan, state, zi, bn == "batch")))
    fake = np.concatenate(parts)
    return report.to_uint8(data_lib.unflatten_hwc(fake, gan.image_shape))


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m jaxgan.sample", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--ckpt_dir", default="checkpoints")
    p.add_argument("--num_samples", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="samples.png", help=".png grid or .npy uint8 array")
    p.add_argument("--bn", choices=("batch", "running"), default="batch",
                   help="BatchNorm statistics: of the drawn batch (reference) or the running averages")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the newest)")
    args = p.parse_args(argv)
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
        gan, state, record = load_generator(dataset, args.ckpt_dir, args.step)
        images = draw(gan, state, args.num_samples, args.seed, args.bn)
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
    print(f"wrote {args.num_samples} samples (step {record['step']}, --bn {args.bn}) to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
