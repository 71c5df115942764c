"""``python -m jaxgan.train``: wires data, steps, checkpoints and reports together; nothing else.

The loop runs whole chunks of steps per compiled call and only talks to the host between them:
to read metrics, update the bar, write grids and checkpoints. It dispatches chunk k+1 before it
reads chunk k's metrics, so the device never waits for the host.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from collections.abc import Sequence

import jax
import numpy as np

from jaxgan import checkpoint as ckpt_lib
from jaxgan import data as data_lib
from jaxgan import parallel, report, steps
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


EVAL_SAMPLES = 2000  # per --eval_every evaluation: enough for stable trends, cheap on a CPU


class Stopped(Exception):
    """Training stopped early; ``code`` is the process exit status."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def check_resume_config(saved: dict, cfg: Config) -> None:
    """Refuse to resume with settings that change the model, the data or the objective; say
    which of the other settings changed."""
    new = cfg.to_dict()
    for name in MODEL_FIELDS:
        if name in saved and saved[name] != new[name]:
            raise ConfigError(f"--resume: the checkpoint was trained with {name}={saved[name]!r}, "
                              f"this run asks for {name}={new[name]!r}; drop the flag or use another --ckpt_dir")
    changed = [f"{k} {saved[k]!r} -> {new[k]!r}" for k in sorted(saved)
               if k in new and k not in MODEL_FIELDS and k != "resume" and saved[k] != new[k]]
    if changed:
        print("resume with changed settings: " + ", ".join(changed), flush=True)


class _Signals:
    """SIGINT/SIGTERM only set a flag; the loop finishes the chunk in flight, checkpoints, exits."""

    CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict = {}

    def __enter__(self) -> "_Signals":
        for sig in self.CODES:
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave the default handlers
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.received is not None:  # a second Ctrl-C while saving: honour it
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train_and_evaluate(cfg: Config) -> steps.TrainState:
    """Train for ``cfg.num_epochs`` epochs (counting those already in a resumed checkpoint)."""
    images, _ = data_lib.load_numpy(cfg.dataset, cfg.data_dir, download=cfg.download,
                                    skip_checksums=cfg.skip_checksums)
    layout = epoch_layout(len(images), cfg)
    mesh = parallel.data_mesh()
    parallel.check_batch(cfg.batch_size, mesh)
    gan, state = steps.build(cfg, mesh)
    state = parallel.put_replicated(state, mesh)
    dirs = run_dirs(cfg)
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    lock = ckpt_lib.RunLock(dirs["ckpt"])
    if parallel.is_primary():  # the run's processes share one folder; process 0 speaks for them
        lock.acquire()
    checkpoints = ckpt_lib.Checkpoints(dirs["ckpt"], keep=cfg.keep_checkpoints)
    try:
        return _train(cfg, layout, gan, state, images, dirs, checkpoints, mesh)
    finally:
        checkpoints.close()
        lock.release()


def _train(cfg: Config, layout: Layout, gan: steps.GAN, state: steps.TrainState, images: np.ndarray,
           dirs: dict[str, str], checkpoints: ckpt_lib.Checkpoints, mesh) -> steps.TrainState:
    primary = parallel.is_primary()
    epoch_record = None
    if cfg.resume:
        restored = checkpoints.restore_newest_good(
            state, check=lambda record: check_resume_config(record.get("config", {}), cfg),
            warn=lambda msg: print(f"warning: {msg}", file=sys.stderr, flush=True))
        if restored is None:
            print(f"--resume: no checkpoint yet in {checkpoints.directory}; starting a new run", flush=True)
        else:
            state, record, at = restored
            epoch_record = record.get("epoch_means")
            print(f"resumed from {os.path.join(checkpoints.directory, str(at))} (step {at})", flush=True)
    elif checkpoints.steps():
        raise ConfigError(f"{checkpoints.directory} already holds checkpoints; pass --resume to continue "
                          "that run or choose another --ckpt_dir")

    devices = jax.devices()
    if primary:
        print(f"jaxgan: {cfg.dataset} {len(images):,} images, batch {cfg.batch_size}, "
              f"{layout.steps_per_epoch} steps/epoch, on {len(devices)} {devices[0].platform} "
              f"device{'s' if len(devices) > 1 else ''} ({devices[0].device_kind}) in "
              f"{jax.process_count()} process{'es' if jax.process_count() > 1 else ''}", flush=True)

    keys = steps.run_keys(cfg.seed)
    rep = parallel.replicated(mesh)
    # Every device holds the uint8 dataset; each gathers only its own rows of every batch.
    data = parallel.put_replicated(data_lib.flatten_chw(images), mesh)
    fixed = jax.jit(steps.fixed_noise, static_argnums=(0, 1), out_shardings=rep)(gan, cfg.seed)
    # Explicit shardings: everything replicated except what the steps split themselves.
    # (With in_shardings jit takes no keyword arguments, so the static ones go by position.)
    chunk_fn = jax.jit(gan.train_chunk, static_argnums=4, donate_argnums=0, in_shardings=rep, out_shardings=rep)
    tail_fn = jax.jit(gan.train_tail, static_argnums=3, donate_argnums=0, in_shardings=rep, out_shardings=rep)
    grid_fn = jax.jit(gan.grid, donate_argnums=0, in_shardings=rep, out_shardings=rep)
    perm_fn = jax.jit(data_lib.epoch_permutation, static_argnums=2, out_shardings=rep)

    evaluator = None
    if cfg.eval_every:
        from jaxgan import evaluate  # the classifier and its reference features, loaded once

        evaluator = evaluate.Evaluator(cfg.dataset, cfg.data_dir, cfg.ckpt_dir, cfg.download, cfg.skip_checksums)

    reporter = report.Reporter(dirs["logs"] if primary else None, cfg.num_epochs, layout.steps_per_epoch,
                               cfg.progress and primary, quiet=not primary)
    record_base = {"config": cfg.to_dict(), "steps_per_epoch": layout.steps_per_epoch}
    last_saved = {"step": None}

    def save(step: int, means: report.EpochMeans | None) -> str:
        path = checkpoints.save(step, state, {**record_base, "step": step,
                                              "epoch_means": means.to_record() if means else None})
        last_saved["step"] = step
        return path

    def non_finite(step: int) -> Stopped:
        good = last_saved["step"] if last_saved["step"] is not None else (checkpoints.steps() or [None])[-1]
        where = f"checkpoint {good} in {checkpoints.directory} is the last good state" if good is not None \
            else "no checkpoint was written"
        return Stopped(f"non-finite loss or parameters by step {step}; stopped without saving them: {where}. "
                       "Try a smaller --lr, or --skip_nonfinite", 1)

    step = int(state.step)
    total = cfg.num_epochs * layout.steps_per_epoch
    try:
        with _Signals() as signals:
            while step < total:
                epoch, pos = divmod(step, layout.steps_per_epoch)
                perm = perm_fn(keys["shuffle"], epoch, layout.n)
                means = report.EpochMeans.from_record(epoch_record if pos else None)
                epoch_record = None
                reporter.start_epoch(epoch, pos)
                speed, epoch_images, t_epoch = report.Throughput(), 0, time.perf_counter()
                pending: list[tuple[dict, int, int]] = []

                def drain(keep: int) -> None:
                    # Read metrics of all but the newest ``keep`` dispatched chunks.
                    while len(pending) > keep:
                        metrics, n_steps, end_step = pending.pop(0)
                        metrics = parallel.to_host(metrics)
                        if not bool(metrics["finite"]):
                            raise non_finite(end_step)
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
                        state, metrics = chunk_fn(state, data, perm, pos, length)
                    else:
                        length = 1
                        state, metrics = tail_fn(state, data, perm, layout.full * cfg.batch_size)
                    step, pos = step + length, pos + length
                    pending.append((metrics, length, step))
                    drain(keep=1)
                    epoch_images += length * cfg.batch_size
                    if signals.received is not None:
                        drain(keep=0)
                        path = save(step, means)
                        name = signal.Signals(signals.received).name
                        raise Stopped(f"{name}: stopped at step {step}; checkpoint written to {path}; "
                                      "continue with --resume", _Signals.CODES[signals.received])
                    if cfg.ckpt_every and step % cfg.ckpt_every == 0 and pos < layout.steps_per_epoch:
                        drain(keep=0)
                        save(step, means)
                drain(keep=0)

                state, fake = grid_fn(state, fixed)
                jax.block_until_ready(state)
                scalars = means.means()
                scalars["img_per_s"] = epoch_images / max(time.perf_counter() - t_epoch, 1e-9)
                grid = report.make_grid(report.to_uint8(
                    data_lib.unflatten_hwc(parallel.to_host(fake), cfg.image_shape)))
                if (epoch + 1) % cfg.interval == 0 and primary:
                    report.save_png(grid, os.path.join(dirs["samples"], f"fake_images_{epoch + 1}.png"))
                reporter.end_epoch(epoch, scalars, grid)
                if evaluator is not None and (epoch + 1) % cfg.eval_every == 0:
                    from jaxgan import sample

                    g_state = state if state.g_ema is None else state.replace(g_params=state.g_ema)
                    fake_u8 = sample.draw(gan, g_state, EVAL_SAMPLES, seed=0, bn="batch", batch=cfg.batch_size)
                    reporter.log_eval(epoch, evaluator.score(fake_u8))
                if not cfg.ckpt_every or step % cfg.ckpt_every == 0 or step == total:
                    save(step, None)
    finally:
        reporter.close()
    if primary:
        print(f"done: checkpoints in {checkpoints.directory}, grids in {dirs['samples']}, "
              f"events in {dirs['logs']}", flush=True)
    return state


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg = parse_args(argv)
        parallel.initialize(cfg.coordinator_address, cfg.num_processes, cfg.process_id)
        train_and_evaluate(cfg)
    except (ConfigError, ckpt_lib.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Stopped as e:
        print(str(e), file=sys.stderr if e.code == 1 else sys.stdout, flush=True)
        return e.code
    except KeyboardInterrupt:
        print("interrupted twice: stopped without a final checkpoint; --resume continues from the last one",
              file=sys.stderr)
        return 130
    except OSError as e:
        where = f" {e.filename!r}" if getattr(e, "filename", None) else ""
        print(f"error: cannot use{where}: {e.strerror or e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
