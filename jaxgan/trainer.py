"""The training loop: restore or start, dispatch chunks of fused steps, end each period, save.

The device runs whole chunks of steps per compiled call (``steps.GAN.train_chunk``); the host
only talks to it between chunks: to read metrics, update the bar, write grids and checkpoints.
Chunk k+1 is dispatched before chunk k's metrics are read, so the device never waits for the
host. What runs next is decided by the pure ``schedule.next_chunk``. A dataset beyond
``--data_budget`` stays on the host, and each chunk's batches are sent ahead (``jaxgan.stream``).
The periodic work (grid, scalars, checkpoint) follows each reporting period, of the kind the
model family reports by (``schedule.Periods``: an epoch for the MLP GAN and DCGAN, ``interval``
generator iterations for WGAN), as their references do it.
"""

from __future__ import annotations

import collections
import os
import signal
import sys
import time
from typing import Any

import jax
import numpy as np

from jaxgan import checkpoint as ckpt_lib
from jaxgan import data as data_lib
from jaxgan import generate, parallel, program, report, schedule, steps, stream
from jaxgan.config import Config, ConfigError, check_resume_config, run_folder
from jaxgan.metrics import BEST_BY

EVAL_SAMPLES = 2000  # per --eval_every evaluation: enough for stable trends, cheap on a CPU


class Stopped(Exception):
    """Training stopped early; ``code`` is the process exit status."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class Signals:
    """SIGINT/SIGTERM only set a flag; the loop finishes the chunk in flight (and, when that chunk
    ends a period, the period's grid pass, scalars and grid), checkpoints, and exits."""

    CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}

    def __init__(self) -> None:
        self.received: int | None = None
        self._old: dict = {}

    def __enter__(self) -> "Signals":
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


class Pending:
    """Chunks dispatched to the device whose metrics the host has not read yet, oldest first."""

    def __init__(self) -> None:
        self._queue: collections.deque = collections.deque()

    def push(self, chunk: schedule.Chunk, metrics: steps.Metrics) -> None:
        self._queue.append((chunk, metrics))

    def pop(self, keep: int = 0):
        """Yield ``(chunk, host metrics)`` for all but the newest ``keep`` chunks (blocks on each)."""
        while len(self._queue) > keep:
            chunk, metrics = self._queue.popleft()
            metrics = parallel.to_host(metrics)
            # A chunk's metrics hold one slot per step it could run: keep the steps it ran.
            if not chunk.tail:
                metrics = {k: v if k == "finite" else v[..., :chunk.length] for k, v in metrics.items()}
            yield chunk, metrics


def no_host_arrays():
    """The training programs' dispatch: every argument must already be on the devices, so a host
    array slipping into the hot loop (an implicit copy per call) fails loudly instead. The
    per-chunk scalars are put there explicitly (``Trainer.scalar``). (JAX's CPU backend does not
    guard device-to-host copies, so only this direction is checked here.)"""
    return jax.transfer_guard_host_to_device("disallow")


def run_dirs(cfg: Config) -> dict[str, str]:
    """Per-dataset output folders, as the reference lays them out (conv models one level down)."""
    return {"samples": run_folder(cfg.sample_dir, cfg.model, cfg.data_name),
            "logs": run_folder(cfg.logdir, cfg.model, cfg.data_name),
            "ckpt": run_folder(cfg.ckpt_dir, cfg.model, cfg.data_name)}


def train_and_evaluate(cfg: Config, trainer_class: type | None = None) -> steps.TrainState:
    """Train for ``cfg.num_epochs`` epochs (WGAN: ``cfg.gen_iters`` generator iterations), counting
    those already in a resumed checkpoint. ``trainer_class``: a :class:`Trainer` subclass (the tests
    watch a run's chunks through one)."""
    judge = None
    if cfg.eval_every:  # a missing judge (an unlabelled folder's) is said before the folder is read
        from jaxgan import quality

        judge = quality.load_judge(cfg.dataset, cfg.ckpt_dir, "auto", cfg.data_dir)
    cfg = data_lib.resolve_folder(cfg)  # a folder's own channels and classes, before anything reads them
    if judge:  # and a judge unfit for the run before any folder is made
        quality.check_fit(cfg.dataset, judge, cfg.image_shape[0], cfg.held_out)
    images, labels = data_lib.load_split(cfg, train=True, say=print if parallel.is_primary() else None)
    labels = conditioning_labels(cfg, labels)
    layout = data_lib.epoch_layout(len(images), cfg.batch_size, cfg.last_batch)
    mesh = parallel.data_mesh()
    parallel.check_batch(cfg.batch_size, mesh)
    # Beyond --data_budget the data streams; a budget under two chunks is refused before any folder.
    streamed = stream.streams(cfg, images, labels, stream.budget(cfg))
    dirs = run_dirs(cfg)
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    lock = ckpt_lib.RunLock(dirs["ckpt"])
    if parallel.is_primary():  # the run's processes share one folder; process 0 speaks for them
        lock.acquire()
    checkpoints = ckpt_lib.Checkpoints(dirs["ckpt"], keep=cfg.keep_checkpoints)
    try:
        trainer = (trainer_class or Trainer)(cfg, images, layout, mesh, dirs, checkpoints, labels, streamed, judge)
        return trainer.run()
    finally:
        checkpoints.close()
        lock.release()


def conditioning_labels(cfg: Config, labels: np.ndarray | None) -> np.ndarray | None:
    """The labels a run puts on the device beside its images: a conditional run's, checked
    (every one a class of the dataset); None for an unconditional run, which trains on images alone."""
    if not cfg.conditional:
        return None
    if labels is None:
        raise ConfigError(f"--conditional needs class labels, and {cfg.dataset} in {cfg.data_dir} has none")
    labels = np.asarray(labels)
    if labels.size and not (labels.min() >= 0 and labels.max() < cfg.num_classes):
        raise ConfigError(f"--conditional: {cfg.dataset}'s labels must be classes 0..{cfg.num_classes - 1}, "
                          f"found {int(labels.min())}..{int(labels.max())}")
    return labels


def with_next(items):
    """``(item, the item after it or None)`` for each item."""
    items = iter(items)
    current = next(items, None)
    while current is not None:
        upcoming = next(items, None)
        yield current, upcoming
        current = upcoming


def steps_done(state: steps.TrainState) -> int:
    """The state's step (a population's members all share it)."""
    return int(np.asarray(parallel.to_host(state.step)).reshape(-1)[0])


class Trainer:
    """One run's fixed context (configuration, compiled functions, outputs) and its pieces of work.
    The state itself is passed through, never stored."""

    def __init__(self, cfg: Config, images: np.ndarray, layout: data_lib.Layout, mesh, dirs: dict[str, str],
                 checkpoints: ckpt_lib.Checkpoints, labels: np.ndarray | None = None, streamed: bool = False,
                 judge: tuple | None = None):
        self.cfg, self.layout, self.mesh, self.dirs, self.checkpoints = cfg, layout, mesh, dirs, checkpoints
        self.primary = parallel.is_primary()
        self.data_facts = {"n": len(images), "fingerprint": data_lib.fingerprint(images)}
        self.total, self.period = schedule.run_length(cfg, layout)
        self.members = cfg.population
        self.program = program.compile_run(cfg, mesh)
        # The dataset on the devices, or (beyond --data_budget) each chunk's batches sent ahead.
        self.data, self.stream = None, None
        if streamed:  # stream.streams, decided by train_and_evaluate
            self.stream = stream.Stream(cfg, images, labels, layout, mesh, self.program.state_sharding,
                                        self.permutations)
        else:
            self.data = data_lib.put_dataset(images, mesh, labels=labels)  # labels: a conditional run's
        self.gan, self.initial_state = self.program.gan, self.program.initial_state
        self.state_sharding = self.program.state_sharding
        self.fixed = self.program.fixed_noise()
        self.evaluator = None
        if cfg.eval_every:
            from jaxgan import quality  # the judge and its reference features: paid only with --eval_every

            self.evaluator = quality.Evaluator(  # judge: train_and_evaluate's, checked there (else loaded here)
                cfg.dataset, cfg.data_dir, cfg.ckpt_dir, cfg.download, cfg.skip_checksums, judge or "auto",
                image_size=cfg.image_shape[1], channels=cfg.image_shape[0], strict=cfg.strict_images,
                held_out=cfg.held_out)
        self.best = None  # {"metric", "value", "step"} of the best evaluation so far (--keep_best)
        self.last_saved: int | None = None

    # -- restore or refuse ---------------------------------------------------------------------
    def restore_or_start(self) -> tuple[steps.TrainState, dict | None]:
        """The state to start from, and the running sums of a part-done period (None: none)."""
        cfg, state = self.cfg, parallel.put(self.initial_state, self.state_sharding)
        if not cfg.resume:
            if self.checkpoints.steps():
                raise ConfigError(f"{self.checkpoints.directory} already holds checkpoints; pass --resume "
                                  "to continue that run or choose another --ckpt_dir")
            return state, None
        restored = self.checkpoints.restore_newest_good(
            state, check=self.check_resume,
            warn=lambda msg: print(f"warning: {msg}", file=sys.stderr, flush=True))
        if restored is None:
            print(f"--resume: no checkpoint yet in {self.checkpoints.directory}; starting a new run", flush=True)
            return state, None
        state, record, at = restored
        self.best = record.get("best")
        self.last_saved = at
        print(f"resumed from {os.path.join(self.checkpoints.directory, str(at))} (step {at})", flush=True)
        if record.get("steps_per_period", self.period) != self.period:
            # WGAN's --interval changed: the saved sums belong to a period of another length.
            print(f"--interval changed: the reporting period is now {self.period} steps; the part-done "
                  "period's means restart here", flush=True)
            return state, None
        return state, record.get("epoch_means")

    def check_resume(self, record: dict) -> None:
        """Refuse a resume whose settings or data differ from the checkpoint's."""
        changed = check_resume_config(record.get("config", {}), self.cfg)
        if changed and self.primary:
            print("resume with changed settings: " + ", ".join(changed), flush=True)
        saved = record.get("data")
        if saved and saved != self.data_facts:
            raise ConfigError(f"--resume: the checkpoint was trained on {saved['n']:,} images (fingerprint "
                              f"{saved['fingerprint']}), this run's data has {self.data_facts['n']:,} "
                              f"(fingerprint {self.data_facts['fingerprint']}); use the same --data_dir "
                              "or another --ckpt_dir")

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> steps.TrainState:
        cfg, layout, total, period = self.cfg, self.layout, self.total, self.period
        state, period_record = self.restore_or_start()
        self.announce()
        self.reporter = report.Reporter(self.dirs["logs"] if self.primary else None, cfg.progress and self.primary,
                                        quiet=not self.primary, critic=cfg.family.critic)
        pending, perm, means = Pending(), None, None
        try:
            with Signals() as signals:
                for chunk, upcoming in with_next(schedule.chunks(steps_done(state), layout, total, cfg.steps_per_call,
                                                                 cfg.ckpt_every, period)):
                    data = self.data
                    if self.stream is not None:  # the chunk's own batches, from batch 0
                        data, perm = self.stream.take(chunk)
                    elif perm is None or chunk.pos == 0:  # a new epoch (or the first chunk after a resume)
                        perm = self.permutations(chunk.epoch)
                    if means is None or chunk.period_pos == 0:  # a new period (or the first after a resume)
                        means = report.EpochMeans.from_record(period_record if chunk.period_pos else None)
                        period_record = None
                        length = min(period, total - chunk.step + chunk.period_pos)
                        self.reporter.start_period(self.period_name(chunk)[0], length, chunk.period_pos)
                        speed, t_period, step0 = report.Throughput(), time.perf_counter(), chunk.step
                    with no_host_arrays():
                        state, metrics = self.dispatch(state, chunk, data, perm)
                    pending.push(chunk, metrics)
                    self.read(pending, means, speed, keep=1)
                    if self.stream is not None:  # the chunk before this one is done: gather the next
                        self.stream.ahead(upcoming)
                    if chunk.ends_period:
                        self.read(pending, means, speed)
                        img_per_s = ((chunk.end - step0) * cfg.batch_size * self.members
                                     / max(time.perf_counter() - t_period, 1e-9))
                        state = self.end_period(state, chunk, means, img_per_s)
                    if chunk.save or signals.received is not None:
                        self.read(pending, means, speed)
                        path = self.save(state, chunk.end, None if chunk.ends_period else means)
                    if signals.received is not None:
                        name = signal.Signals(signals.received).name
                        raise Stopped(f"{name}: stopped at step {chunk.end}; checkpoint written to {path}; "
                                      "continue with --resume", Signals.CODES[signals.received])
        finally:
            self.reporter.close()
            if self.stream is not None:
                self.stream.close()
        if self.primary:
            print(f"done: checkpoints in {self.checkpoints.directory}, grids in {self.dirs['samples']}, "
                  f"events in {self.dirs['logs']}", flush=True)
        return state

    # -- its pieces ----------------------------------------------------------------------------
    def announce(self) -> None:
        if not self.primary:
            return
        devices, cfg = jax.devices(), self.cfg
        _, h, w = cfg.image_shape
        run = cfg.family.periods.describe(cfg)
        split = len(self.state_sharding.spec) > 0  # members split over the devices, or all on each
        where = "" if len(devices) == 1 else (" split over the devices" if split else " on every device")
        who = f"a population of {self.members}{where}: " if self.members > 1 else ""
        print(f"jaxgan: {who}{cfg.model} on {cfg.data_name} {self.layout.n:,} images {h}x{w}, batch {cfg.batch_size}, "
              f"{self.layout.steps_per_epoch} steps/epoch, {run}, on {len(devices)} {devices[0].platform} "
              f"device{'s' if len(devices) > 1 else ''} ({devices[0].device_kind}) in "
              f"{jax.process_count()} process{'es' if jax.process_count() > 1 else ''}", flush=True)
        if self.stream is not None:
            print(f"streaming the data: {self.stream.nbytes:,} bytes exceed --data_budget "
                  f"{cfg.data_budget} ({int(stream.budget(cfg)):,}); each chunk's batches are gathered on the host "
                  "and sent ahead", flush=True)

    def permutations(self, epoch: int) -> jax.Array:
        """Epoch ``epoch``'s order(s), drawn on the devices."""
        with no_host_arrays():
            return self.program.permutations(self.scalar(epoch), self.layout.n)

    def dispatch(self, state: steps.TrainState, chunk: schedule.Chunk, data: data_lib.Dataset, perm: jax.Array):
        """Start one chunk on the device (returns at once: JAX dispatches asynchronously). A
        streamed run's ``data`` holds the chunk's own batches, read from batch 0 (``stream.Stream``)."""
        streamed = self.stream is not None
        if chunk.tail:
            return self.program.tail(state, data, perm, 0 if streamed else self.layout.full * self.cfg.batch_size)
        return self.program.chunk(state, data, perm, self.scalar(0 if streamed else chunk.pos),
                                  self.scalar(chunk.length))

    def scalar(self, value: int) -> jax.Array:
        """A per-chunk int32 scalar, put on the devices explicitly (no implicit host transfer)."""
        return jax.device_put(np.int32(value), self.program.replicated)

    def read(self, pending: Pending, means: report.EpochMeans, speed: report.Throughput, keep: int = 0) -> None:
        """Bring finished chunks' metrics to the host: epoch sums, progress bar, finiteness."""
        for chunk, metrics in pending.pop(keep):
            if not bool(np.all(metrics["finite"])):
                raise self.non_finite(chunk.end, metrics["finite"])
            means.add(metrics)
            d_loss, g_loss = means.last(metrics)
            images = chunk.length * self.cfg.batch_size * self.members  # all members together
            self.reporter.advance(chunk.length, d_loss, g_loss, speed.add(images))

    def period_name(self, chunk: schedule.Chunk) -> tuple[str, str, int]:
        """(progress/summary name, short name, scalar step) of the chunk's period: ``epoch 3/100``,
        ``epoch 3``, 3; WGAN: ``gen iter 2000/100000``, ``gen iter 2000``, 2000 (at its end)."""
        return self.cfg.family.periods.name(self.cfg, chunk.period)

    def end_period(self, state: steps.TrainState, chunk: schedule.Chunk, means: report.EpochMeans,
                   img_per_s: float) -> steps.TrainState:
        """The reference's periodic work: G(fixed noise) in training mode (its BatchNorm averages
        move, as in PyTorch), the grid, the period's scalars; then jaxgan's evaluation. Which
        periods get a grid pass and a saved grid, and their numbers, is the family's
        (``schedule.Periods.grid``)."""
        cfg = self.cfg
        name, short, scalar_step = self.period_name(chunk)
        number, do_grid, save_png = cfg.family.periods.grid(cfg, chunk, self.period)
        grid = None
        if do_grid:
            with no_host_arrays():
                state, fake = self.program.grid(state, self.fixed)
            fake = parallel.to_host(fake)
            # A population's grids: one folder per member; TensorBoard shows member 0's.
            for i, member_fake in enumerate(fake if self.members > 1 else [fake]):
                member_grid = report.make_grid(data_lib.to_images(member_fake, cfg.image_shape))
                grid = member_grid if grid is None else grid
                if save_png and self.primary:
                    folder = os.path.join(self.dirs["samples"], f"member_{i}") if self.members > 1 else self.dirs["samples"]
                    os.makedirs(folder, exist_ok=True)
                    report.save_png(member_grid, os.path.join(folder, f"fake_images_{number}.png"))
        scalars = means.means()
        scalars["img_per_s"] = img_per_s
        self.reporter.end_period(name, scalars, grid, scalar_step, number)
        if self.evaluator is not None and (chunk.period + 1) % cfg.eval_every == 0:
            self.evaluate(state, chunk.period, chunk.end, short, scalar_step)
        return state

    def evaluate(self, state: steps.TrainState, epoch: int, step: int, name: str, scalar_step: int) -> None:
        """Score 2,000 samples; with --keep_best, keep the checkpoint when it is the best so far."""
        g_state = state
        if state.g_ema is not None:
            g_state = generate.recalibrate_stats(self.gan, state.replace(g_params=state.g_ema), self.cfg.batch_size)
        fake = generate.draw(self.gan, g_state, EVAL_SAMPLES, seed=0, bn="batch", batch=self.cfg.batch_size)
        result = self.evaluator.score(fake)
        if self.gan.n_classes:  # draw() asked for every class in turn: does the judge see them?
            from jaxgan import quality

            goals = quality.conditional_goals(
                self.evaluator.class_rows(fake, generate.balanced_labels(self.gan, EVAL_SAMPLES)))
            result.update({k: goals[k] for k in quality.CONDITIONAL_GOALS}, class_attainment=goals["attainment"])
        self.reporter.log_eval(name, scalar_step, result)
        if not self.cfg.keep_best:
            return
        key, sign = BEST_BY[self.cfg.keep_best]
        value = float(result[key])
        if self.best is None or sign * value > sign * self.best["value"]:
            self.best = {"metric": self.cfg.keep_best, "value": value, "step": step, "epoch": epoch + 1}
            best_dir = ckpt_lib.Checkpoints(os.path.join(self.checkpoints.directory, "best"), keep=1)
            try:
                best_dir.save(step, state, self.record(step, None))
            finally:
                best_dir.close()
            if self.primary:
                print(f"  best so far by {key}: {value:.4g} at {name}; kept in "
                      f"{best_dir.directory}", flush=True)

    def record(self, step: int, means: report.EpochMeans | None) -> dict[str, Any]:
        """The JSON saved beside the arrays: what a resume, ``sample`` and ``evaluate`` need."""
        return {"config": self.cfg.to_dict(), "steps_per_epoch": self.layout.steps_per_epoch,
                "steps_per_period": self.period, "step": step, "data": self.data_facts, "best": self.best,
                "epoch_means": means.to_record() if means else None}

    def save(self, state: steps.TrainState, step: int, means: report.EpochMeans | None) -> str:
        """A checkpoint at ``step``; ``means``: the sums of a part-done period (None at its end)."""
        if step == self.last_saved:  # e.g. a signal right after a scheduled save
            return os.path.join(self.checkpoints.directory, str(step))
        path = self.checkpoints.save(step, state, self.record(step, means))
        self.last_saved = step
        return path

    def non_finite(self, step: int, finite: Any = True) -> Stopped:
        bad = np.flatnonzero(~np.atleast_1d(np.asarray(finite, bool)))
        who = f" in member{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))}" if self.members > 1 else ""
        good = self.last_saved if self.last_saved is not None else (self.checkpoints.steps() or [None])[-1]
        where = f"checkpoint {good} in {self.checkpoints.directory} is the last good state" if good is not None \
            else "no checkpoint was written"
        return Stopped(f"non-finite loss or parameters{who} by step {step}; stopped without saving them: {where}. "
                       "Try a smaller --lr, or --skip_nonfinite", 1)
