"""``python -m jaxgan.train``: wires data, steps, checkpoints and reports together; nothing else.

The loop runs whole chunks of steps per compiled call and only talks to the host between them:
to read metrics, update the bar, write grids and checkpoints. It dispatches chunk k+1 before it
reads chunk k's metrics, so the device never waits for the host.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Sequence

import jax
import numpy as np

from jaxgan import checkpoint as ckpt_lib
from jaxgan import data as data_lib
from jaxgan import report, steps
from jaxgan.config import MODEL_FIELDS, Config, ConfigError, parse_args


@dataclasses.dataclass(frozen=True)
class Layout:
    """How an epoch of ``n`` images splits into steps."""

    n: int
    batch_size: int
    tail: int  # size of the epoch's last, shorter batch (0: none)

    @property
    def full(self) -> int:
        return self.n // self.batch_size

    @property
    def steps_per_epoch(self) -> int:
        return self.full + (1 if self.tail else 0)


def epoch_layout(n: int, cfg: Config) -> Layout:
    """Full batches per epoch, plus the reference's short last batch unless ``--last_batch drop``.
    A last batch of a single image is always dropped: BatchNorm cannot train on one example
    (PyTorch raises an error there)."""
    if cfg.batch_size > n:
        raise ConfigError(f"batch_size {cfg.batch_size} is larger than the dataset ({n} images)")
    rem = n % cfg.batch_size
    return Layout(n, cfg.batch_size, rem if cfg.last_batch == "partial" and rem >= 2 else 0)


def run_dirs(cfg: Config) -> dict[str, str]:
    """Per-dataset output folders, as the reference lays them out."""
    return {"samples": os.path.join(cfg.sample_dir, cfg.dataset),
            "logs": os.path.join(cfg.logdir, cfg.dataset),
            "ckpt": os.path.join(cfg.ckpt_dir, cfg.dataset)}


def check_resume_config(saved: dict, cfg: Config) -> None:
    """Refuse to resume with settings that change the model, the data or the objective."""
    for name in MODEL_FIELDS:
        new = cfg.to_dict()[name]
        if name in saved and saved[name] != new:
            raise ConfigError(f"--resume: the checkpoint was trained with {name}={saved[name]!r}, "
                              f"this run asks for {name}={new!r}; drop the flag or use another --ckpt_dir")


def train_and_evaluate(cfg: Config) -> steps.TrainState:
    """Train for ``cfg.num_epochs`` epochs (counting those already in a resumed checkpoint)."""
    images, _ = data_lib.load_numpy(cfg.dataset, cfg.data_dir, download=cfg.download,
                                    skip_checksums=cfg.skip_checksums)
    layout = epoch_layout(len(images), cfg)
    gan, state = steps.build(cfg)
    dirs = run_dirs(cfg)
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    checkpoints = ckpt_lib.Checkpoints(dirs["ckpt"], keep=cfg.keep_checkpoints)
    epoch_record = None
    if cfg.resume:
        saved = checkpoints.steps()
        if not saved:
            raise ckpt_lib.CheckpointError(f"--resume: no checkpoint in {checkpoints.directory}")
        check_resume_config(checkpoints.read_record(saved[-1]).get("config", {}), cfg)
        state, record, at = checkpoints.restore(state, saved[-1])
        epoch_record = record.get("epoch_means")
        print(f"resumed from {os.path.join(checkpoints.directory, str(at))} (step {at})", flush=True)
    elif checkpoints.steps():
        raise ConfigError(f"{checkpoints.directory} already holds checkpoints; pass --resume to continue "
                          "that run or choose another --ckpt_dir")

    devices = jax.devices()
    print(f"jaxgan: {cfg.dataset} {len(images):,} images, batch {cfg.batch_size}, "
          f"{layout.steps_per_epoch} steps/epoch, on {len(devices[:1])} {devices[0].platform} device "
          f"({devices[0].device_kind})", flush=True)

    keys = steps.run_keys(cfg.seed)
    data = jax.device_put(data_lib.flatten_chw(images))
    fixed = steps.fixed_noise(gan, cfg.seed)
    chunk_fn = jax.jit(gan.train_chunk, static_argnames="length", donate_argnums=0)
    tail_fn = jax.jit(gan.train_tail, static_argnames="start", donate_argnums=0)
    grid_fn = jax.jit(gan.grid, donate_argnums=0)
    perm_fn = jax.jit(data_lib.epoch_permutation, static_argnums=2)

    reporter = report.Reporter(dirs["logs"], cfg.num_epochs, layout.steps_per_epoch, cfg.progress)
    record_base = {"config": cfg.to_dict(), "steps_per_epoch": layout.steps_per_epoch}

    def save(step: int, means: report.EpochMeans | None) -> None:
        checkpoints.save(step, state, {**record_base, "step": step,
                                       "epoch_means": means.to_record() if means else None})

    step = int(state.step)
    total = cfg.num_epochs * layout.steps_per_epoch
    try:
        while step < total:
            epoch, pos = divmod(step, layout.steps_per_epoch)
            perm = perm_fn(keys["shuffle"], epoch, layout.n)
            means = report.EpochMeans.from_record(epoch_record if pos else None)
            epoch_record = None
            reporter.start_epoch(epoch, pos)
            speed, epoch_images, t_epoch = report.Throughput(), 0, time.perf_counter()
            pending: list[tuple[dict, int]] = []

            def drain(keep: int) -> None:
                # Read metrics of all but the newest ``keep`` dispatched chunks.
                while len(pending) > keep:
                    metrics, n_steps = pending.pop(0)
                    metrics = jax.device_get(metrics)
                    means.add(metrics)
                    d_loss, g_loss = means.last(metrics)
                    reporter.advance(n_steps, d_loss, g_loss, speed.add(n_steps * cfg.batch_size))

            while pos < layout.steps_per_epoch:
                end = layout.steps_per_epoch
                if cfg.ckpt_every:
                    end = min(end, pos + cfg.ckpt_every - step % cfg.ckpt_every)
                if pos < layout.full:
                    length = min(end, layout.full) - pos
                    length = min(length, cfg.steps_per_call)
                    state, metrics = chunk_fn(state, data, perm, pos, length=length)
                else:
                    length = 1
                    state, metrics = tail_fn(state, data, perm, start=layout.full * cfg.batch_size)
                pending.append((metrics, length))
                drain(keep=1)
                step, pos = step + length, pos + length
                epoch_images += length * cfg.batch_size
                if cfg.ckpt_every and step % cfg.ckpt_every == 0 and pos < layout.steps_per_epoch:
                    drain(keep=0)
                    save(step, means)
            drain(keep=0)

            state, fake = grid_fn(state, fixed)
            jax.block_until_ready(state)
            scalars = means.means()
            scalars["img_per_s"] = epoch_images / max(time.perf_counter() - t_epoch, 1e-9)
            grid = report.make_grid(report.to_uint8(data_lib.unflatten_hwc(np.asarray(fake), cfg.image_shape)))
            if (epoch + 1) % cfg.interval == 0:
                report.save_png(grid, os.path.join(dirs["samples"], f"fake_images_{epoch + 1}.png"))
            reporter.end_epoch(epoch, scalars, grid)
            if not cfg.ckpt_every or step % cfg.ckpt_every == 0 or step == total:
                save(step, None)
    finally:
        reporter.close()
        checkpoints.close()
    print(f"done: checkpoints in {checkpoints.directory}, grids in {dirs['samples']}, "
          f"events in {dirs['logs']}", flush=True)
    return state


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg = parse_args(argv)
        train_and_evaluate(cfg)
    except (ConfigError, ckpt_lib.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
