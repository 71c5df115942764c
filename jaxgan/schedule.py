"""What the training loop runs next: pure arithmetic over step numbers, no JAX, no I/O.

A run is ``total`` steps (D updates). Two clocks divide it:

- **data epochs** of ``S`` steps (``S`` = steps per epoch: the full batches, then the optional
  short tail batch); epoch ``e`` covers steps ``e * S .. (e + 1) * S - 1`` and has its own
  permutation of the images;
- **reporting periods** of ``period`` steps, after each of which the loop does its periodic work
  (the grid, the scalars, by default a checkpoint). Each model family says which kind it uses
  (:class:`Periods`): an epoch (the MLP GAN, DCGAN), or ``interval`` generator iterations, i.e.
  ``interval * n_critic`` steps, independent of the data epochs (WGAN: wgan/train.py draws
  batches endlessly); a run whose total is no multiple of the period ends with a shorter last
  period.

The loop dispatches *chunks*: runs of consecutive full batches fused into one compiled call, or
the tail batch alone. A chunk never crosses the end of an epoch (the next one has another
permutation), a period, a checkpoint boundary or the run, and holds at most ``steps_per_call``
steps. Because every step's randomness comes from its step number, where a chunk starts (a fresh
run, a resume from any checkpoint) never changes the result.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from jaxgan.config import Config
from jaxgan.data import Layout


@dataclass(frozen=True)
class Chunk:
    """One compiled call's worth of training steps."""

    step: int  # global step of the chunk's first batch
    length: int  # steps in the chunk
    epoch: int  # 0-based data epoch it belongs to
    pos: int  # index of its first batch within the epoch
    tail: bool  # the epoch's short last batch (then length == 1)
    ends_epoch: bool  # the epoch's last step is in this chunk: the next chunk takes a new permutation
    save: bool  # a checkpoint is written after this chunk (and after end-of-period work)
    period: int = 0  # 0-based reporting period it belongs to
    period_pos: int = 0  # steps of its period done before the chunk
    ends_period: bool = False  # the period's (or the run's) last step is in it: periodic work follows

    @property
    def end(self) -> int:
        """The global step after the chunk: the state's step once it has run."""
        return self.step + self.length


class Periods:
    """How a family measures and reports a run: its length, its reporting period, the names and
    numbers of its periods and grids. Two kinds: :data:`EPOCHS` and :data:`GENERATOR_ITERATIONS`."""

    length_flag = ""  # the flag that sets the run's length

    def run_length(self, cfg: Config, layout: Layout) -> tuple[int, int]:
        """``(total steps, steps per reporting period)``."""
        raise NotImplementedError

    def describe(self, cfg: Config) -> str:
        """The run's length in words, e.g. ``100 epochs``."""
        raise NotImplementedError

    def name(self, cfg: Config, period: int) -> tuple[str, str, int]:
        """(progress/summary name, short name, scalar step) of 0-based period ``period``."""
        raise NotImplementedError

    def grid(self, cfg: Config, chunk: Chunk, steps_per_period: int) -> tuple[int, bool, bool]:
        """After the period that ``chunk`` ends: (the grid's number, whether G passes over the
        fixed noise, whether the grid is saved as ``fake_images_<number>.png``)."""
        raise NotImplementedError


class _Epochs(Periods):
    """A period is a data epoch (gan/ and dcgan/train.py): ``num_epochs`` of them, a grid pass
    after each, saved every ``interval`` epochs as fake_images_<epoch>.png."""

    length_flag = "num_epochs"

    def run_length(self, cfg: Config, layout: Layout) -> tuple[int, int]:
        return cfg.num_epochs * layout.steps_per_epoch, layout.steps_per_epoch

    def describe(self, cfg: Config) -> str:
        return f"{cfg.num_epochs} epochs"

    def name(self, cfg: Config, period: int) -> tuple[str, str, int]:
        k = period + 1
        return f"epoch {k}/{cfg.num_epochs}", f"epoch {k}", k

    def grid(self, cfg: Config, chunk: Chunk, steps_per_period: int) -> tuple[int, bool, bool]:
        number = chunk.period + 1
        return number, True, number % cfg.interval == 0


class _GeneratorIterations(Periods):
    """A period is ``interval`` generator iterations of ``d_steps`` critic steps each
    (wgan/train.py), independent of the data epochs; the run is ``gen_iters`` of them. After each
    period i: its scalars at generator iteration i, and G over the fixed noise saved as
    fake_images_<i // interval>.png; a shorter last period gets its scalars and checkpoint but no
    grid (wgan/train.py passes G over the fixed noise every ``interval`` iterations only)."""

    length_flag = "gen_iters"

    def run_length(self, cfg: Config, layout: Layout) -> tuple[int, int]:
        return cfg.gen_iters * cfg.d_steps, cfg.interval * cfg.d_steps

    def describe(self, cfg: Config) -> str:
        return f"{cfg.gen_iters:,} generator iterations of {cfg.d_steps} critic steps"

    def name(self, cfg: Config, period: int) -> tuple[str, str, int]:
        it = min((period + 1) * cfg.interval, cfg.gen_iters)
        return f"gen iter {it}/{cfg.gen_iters}", f"gen iter {it}", it

    def grid(self, cfg: Config, chunk: Chunk, steps_per_period: int) -> tuple[int, bool, bool]:
        whole = chunk.end % steps_per_period == 0
        return chunk.end // steps_per_period, whole, whole


EPOCHS: Periods = _Epochs()
GENERATOR_ITERATIONS: Periods = _GeneratorIterations()


def run_length(cfg: Config, layout: Layout) -> tuple[int, int]:
    """``(total steps, steps per reporting period)`` of a run, as its family's periods count them."""
    return cfg.family.periods.run_length(cfg, layout)


def next_chunk(step: int, layout: Layout, total: int, steps_per_call: int, ckpt_every: int = 0,
               period: int | None = None) -> Chunk:
    """The chunk that starts at global ``step`` (< ``total``). ``period``: steps per reporting
    period (default: an epoch). ``ckpt_every`` 0 checkpoints once per period; otherwise every
    ``ckpt_every`` steps, counted from step 0 (so a resumed run saves where the uninterrupted one
    would); both also at the end of the run."""
    if not 0 <= step < total:
        raise ValueError(f"step {step} is outside the run's 0..{total - 1}")
    period = period or layout.steps_per_epoch
    epoch, pos = divmod(step, layout.steps_per_epoch)
    period_index, period_pos = divmod(step, period)
    limit = min(step - pos + layout.steps_per_epoch, step - period_pos + period, total)  # exclusive
    if ckpt_every:
        limit = min(limit, step + ckpt_every - step % ckpt_every)
    if pos < layout.full:
        length, tail = min(limit - step, layout.full - pos, steps_per_call), False
    else:
        length, tail = 1, True
    end = step + length
    ends_epoch = pos + length == layout.steps_per_epoch
    ends_period = period_pos + length == period or end == total
    save = bool(ckpt_every and end % ckpt_every == 0) or end == total or (ends_period and not ckpt_every)
    return Chunk(step, length, epoch, pos, tail, ends_epoch, save, period_index, period_pos, ends_period)


def chunks(step: int, layout: Layout, total: int, steps_per_call: int, ckpt_every: int = 0,
           period: int | None = None) -> Iterator[Chunk]:
    """Every chunk from ``step`` to the end of the run, in order."""
    while step < total:
        chunk = next_chunk(step, layout, total, steps_per_call, ckpt_every, period)
        yield chunk
        step = chunk.end
