"""What the training loop runs next: pure arithmetic over step numbers, no JAX, no I/O.

A run is ``total`` steps; epoch ``e`` covers steps ``e * S .. (e + 1) * S - 1`` (``S`` = steps per
epoch: the full batches, then the optional short tail batch). The loop dispatches *chunks*: runs
of consecutive full batches fused into one compiled call, or the tail batch alone. A chunk never
crosses the end of an epoch (the next epoch has another permutation) nor a checkpoint boundary,
and holds at most ``steps_per_call`` steps. Because every step's randomness comes from its step
number, where a chunk starts (a fresh run, a resume from any checkpoint) never changes the result.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from jaxgan.data import Layout


@dataclass(frozen=True)
class Chunk:
    """One compiled call's worth of training steps."""

    step: int  # global step of the chunk's first batch
    length: int  # steps in the chunk
    epoch: int  # 0-based epoch it belongs to
    pos: int  # index of its first batch within the epoch
    tail: bool  # the epoch's short last batch (then length == 1)
    ends_epoch: bool  # the epoch's last step is in this chunk: end-of-epoch work follows
    save: bool  # a checkpoint is written after this chunk (and after end-of-epoch work)

    @property
    def end(self) -> int:
        """The global step after the chunk: the state's step once it has run."""
        return self.step + self.length


def next_chunk(step: int, layout: Layout, total: int, steps_per_call: int, ckpt_every: int = 0) -> Chunk:
    """The chunk that starts at global ``step`` (< ``total``). ``ckpt_every`` 0 checkpoints once
    per epoch; otherwise every ``ckpt_every`` steps, counted from step 0 (so a resumed run saves
    where the uninterrupted one would), plus at the end of the run."""
    if not 0 <= step < total:
        raise ValueError(f"step {step} is outside the run's 0..{total - 1}")
    epoch, pos = divmod(step, layout.steps_per_epoch)
    stop = layout.steps_per_epoch  # exclusive, within the epoch
    if ckpt_every:
        stop = min(stop, pos + ckpt_every - step % ckpt_every)
    if pos < layout.full:
        length, tail = min(stop, layout.full) - pos, False
        length = min(length, steps_per_call)
    else:
        length, tail = 1, True
    end = step + length
    ends_epoch = pos + length == layout.steps_per_epoch
    save = bool(ckpt_every and end % ckpt_every == 0) or (ends_epoch and (not ckpt_every or end == total))
    return Chunk(step, length, epoch, pos, tail, ends_epoch, save)


def chunks(step: int, layout: Layout, total: int, steps_per_call: int, ckpt_every: int = 0) -> Iterator[Chunk]:
    """Every chunk from ``step`` to the end of the run, in order."""
    while step < total:
        chunk = next_chunk(step, layout, total, steps_per_call, ckpt_every)
        yield chunk
        step = chunk.end
