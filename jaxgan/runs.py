"""Which trained run a command means: the run-locator flags of ``sample`` and ``evaluate``,
declared once, and the folder they point to (with a hint when the run is elsewhere)."""

from __future__ import annotations

import argparse
import os

from jaxgan import families
from jaxgan.checkpoint import CheckpointError
from jaxgan.config import run_folder


def add_run_flags(p: argparse.ArgumentParser, member_help: str) -> None:
    """--dataset, --data_dir, --ckpt_dir, --model, --step, --member, --best, --seed and --bn, as both
    commands take them."""
    p.add_argument("--dataset", default="mnist", help="the run's dataset (default %(default)s)")
    p.add_argument("--data_dir", default="data",
                   help="the run's --data_dir (default %(default)s; with --dataset folder it names the run)")
    p.add_argument("--ckpt_dir", default="checkpoints",
                   help="the run's --ckpt_dir (default %(default)s; an own judge lives under its classifier/)")
    p.add_argument("--model", choices=families.names(), default="mlp",
                   help="the run's --model: where its checkpoints are (default %(default)s)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the newest)")
    p.add_argument("--member", type=int, default=None, help=member_help)
    p.add_argument("--best", action="store_true",
                   help="the checkpoint kept by training's --keep_best (default: off, the newest)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generator's noise (default %(default)s)")
    p.add_argument("--bn", choices=("batch", "running"), default="batch",
                   help="G's BatchNorm statistics when drawing: of the drawn batch (reference) or running "
                        "averages (default %(default)s)")


def _has_checkpoints(folder: str) -> bool:
    return os.path.isdir(folder) and any(p.isdigit() for p in os.listdir(folder))


def locate(dataset: str, ckpt_dir: str, model: str, best: bool = False) -> str:
    """The checkpoint folder of the run that ``--dataset/--ckpt_dir/--model/--best`` name.
    CheckpointError (one line) when it holds no checkpoint; when another family's run of that
    dataset sits under the same ``ckpt_dir``, the message names it and the flag to pass."""
    where = ["best"] if best else []
    folder = os.path.join(run_folder(ckpt_dir, model, dataset), *where)
    if _has_checkpoints(folder):
        return folder
    what = "no best checkpoint (train with --keep_best)" if best else "no checkpoints"
    message = f"{what} for {dataset} in {folder}"
    others = [(name, os.path.join(run_folder(ckpt_dir, name, dataset), *where)) for name in families.names()
              if name != model]
    found = [(name, path) for name, path in others if _has_checkpoints(path)]
    if found:
        message += "; " + "; ".join(f"a {name} run is in {path}: pass --model {name}" for name, path in found)
    raise CheckpointError(message)
