"""What a run shows a person: image grids, TensorBoard events, the progress bar, summary lines."""

from __future__ import annotations

import math
import os
import sys
import time
from typing import Any

import numpy as np
from PIL import Image


def make_grid(images_hwc: np.ndarray, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """uint8 (N, H, W, C) -> one (H', W', 3) uint8 grid, laid out like ``torchvision.utils.make_grid``."""
    n, h, w, c = images_hwc.shape
    if c == 1:
        images_hwc = np.repeat(images_hwc, 3, axis=-1)
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * (h + padding) + padding, cols * (w + padding) + padding, 3), np.uint8)
    for i in range(n):
        y, x = divmod(i, cols)
        top, left = y * (h + padding) + padding, x * (w + padding) + padding
        grid[top:top + h, left:left + w] = images_hwc[i]
    return grid


def save_png(grid: np.ndarray, path: str) -> None:
    """Write an (H, W, 3) uint8 grid, via a temporary file so a crash never leaves half a PNG."""
    tmp = f"{path}.tmp.png"
    Image.fromarray(grid).save(tmp)
    os.replace(tmp, path)


def summary_writer_class():
    """tensorboardX's ``SummaryWriter``, imported without torch when torch is not loaded yet.

    tensorboardX's package import pulls torch in (about 0.5 GB of memory and 1-3 s per process)
    only so that it can also accept torch tensors, which jaxgan never hands it; its writer treats a
    missing torch as optional. A training process whose dataset cache exists never needs torch, so
    torch is hidden from that one import; a process that has loaded torch already is unaffected."""
    if "torch" in sys.modules or "tensorboardX" in sys.modules:
        from tensorboardX import SummaryWriter
        return SummaryWriter
    sys.modules["torch"] = None  # `import torch` raises ImportError inside tensorboardX's import
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


class Reporter:
    """TensorBoard events (tensorboardX) plus a tqdm bar and one summary line per reporting period
    (an epoch; for WGAN ``interval`` generator iterations)."""

    def __init__(self, logdir: str | None, progress: bool, quiet: bool = False, critic: bool = False):
        self.writer = None
        if logdir is not None:
            SummaryWriter = summary_writer_class()  # imported lazily: slow to import

            # tensorboardX names the file by the second and the host only: a run resumed within the
            # same second (a fast resume after a signal) would overwrite the first run's events.
            self.writer = SummaryWriter(logdir, filename_suffix=f".{time.time_ns()}.{os.getpid()}")
        self.progress = progress and sys.stderr.isatty()
        self.quiet = quiet  # processes other than 0 of a multi-process run say nothing
        self.critic = critic  # WGAN: D is a critic, d_real/d_fake are its raw mean scores
        self.bar = None

    def start_period(self, name: str, total_steps: int, done_steps: int) -> None:
        """A period named ``name`` (e.g. ``epoch 3/100``) of ``total_steps`` steps, ``done_steps``
        of them already done (a resumed run)."""
        if self.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=done_steps, leave=False, unit="step",
                            desc=name, dynamic_ncols=True)

    def advance(self, steps: int, d_loss: float, g_loss: float, img_per_s: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"D {d_loss:.4f}  G {g_loss:.4f}  {img_per_s:,.0f} img/s")
            self.bar.update(steps)

    def end_period(self, name: str, scalars: dict[str, float], grid: np.ndarray | None, scalar_step: int,
                   image_step: int) -> None:
        """The period's summary line and events: scalars at ``scalar_step`` (the epoch; WGAN: the
        generator iteration), the grid at ``image_step`` (WGAN: the grid's number), as the
        references number them."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.quiet:
            return
        members = np.size(scalars["d_loss"])
        shown = {k: float(np.mean(v)) for k, v in scalars.items()}  # a population: its members' mean
        tail = f"  (mean of {members} members)" if members > 1 else ""
        if self.critic:
            print(f"{name}  critic loss {shown['d_loss']:.4f}  G loss {shown['g_loss']:.4f}  "
                  f"critic(x) {shown['d_real']:.4f}  critic(G(z)) {shown['d_fake']:.4f}  "
                  f"{shown['img_per_s']:,.0f} img/s{tail}", flush=True)
        else:
            print(f"{name}  D loss {shown['d_loss']:.4f}  "
                  f"G loss {shown['g_loss']:.4f}  D(x) {shown['d_real']:.3f}  "
                  f"D(G(z)) {shown['d_fake']:.3f}  {shown['img_per_s']:,.0f} img/s{tail}", flush=True)
        if self.writer is not None:
            # The reference's tags (tensorboardX turns spaces into underscores) plus jaxgan's.
            # WGAN: D_real_mean / D_fake_mean are the critic's raw mean scores. A population: each
            # member's under member_<i>/, and mean/min/max across members under <tag>/.
            names = {"d_loss": "Discriminator_Loss", "g_loss": "Generator_Loss", "d_real": "D_real_mean",
                     "d_fake": "D_fake_mean", "img_per_s": "images_per_second"}
            for key, tag in names.items():
                values = np.atleast_1d(scalars[key])
                if members == 1 or key == "img_per_s":
                    self.writer.add_scalar(tag, float(np.mean(values)), scalar_step)
                    continue
                for i, v in enumerate(values):
                    self.writer.add_scalar(f"member_{i}/{tag}", float(v), scalar_step)
                for stat in ("mean", "min", "max"):
                    self.writer.add_scalar(f"{tag}/{stat}", float(getattr(np, stat)(values)), scalar_step)
            if grid is not None:
                self.writer.add_image("Fake_Images", grid, image_step, dataformats="HWC")
            self.writer.flush()

    def log_eval(self, name: str, step: int, result: dict[str, Any]) -> None:
        """Sample-quality metrics (``jaxgan.quality.score_set``) as ``eval/*`` scalars at ``step``
        (the period's scalar step), after period ``name``."""
        if self.quiet:
            return
        keys = ("frechet_distance", "classifier_score", "classes_covered", "kl_to_real", "precision", "recall")
        keys += tuple(k for k in ("label_accuracy", "worst_class_accuracy", "worst_recall_ratio", "class_attainment")
                      if k in result)  # a conditional run's (quality.conditional_goals)
        print(f"  eval at {name} (n={result['n']}): " +
              "  ".join(f"{k} {result[k]:.4g}" for k in keys), flush=True)
        if self.writer is not None:
            for k in keys:
                self.writer.add_scalar(f"eval/{k}", float(result[k]), step)
            self.writer.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


def read_scalars(events_dir: str) -> dict[str, list[tuple[int, float]]]:
    """Scalars (and image widths) back from tensorboardX event files: TFRecord framing around
    Event protos. For plots and tests; no TensorBoard install needed."""
    import glob
    import struct

    summary_writer_class()  # tensorboardX without torch (see there)
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(glob.glob(os.path.join(events_dir, "events.out.tfevents.*"))):
        with open(path, "rb") as f:
            buf = f.read()
        pos = 0
        while pos + 12 <= len(buf):
            (length,) = struct.unpack("<Q", buf[pos:pos + 8])
            event = event_pb2.Event.FromString(buf[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for v in event.summary.value:
                if v.HasField("simple_value"):
                    out.setdefault(v.tag, []).append((event.step, v.simple_value))
                elif v.HasField("image"):
                    out.setdefault(v.tag, []).append((event.step, float(v.image.width)))
    return out


class Throughput:
    """Images per second over a window, read after the device has finished the work."""

    def __init__(self) -> None:
        self.t0, self.images = time.perf_counter(), 0

    def add(self, images: int) -> float:
        self.images += images
        return self.images / max(time.perf_counter() - self.t0, 1e-9)


class EpochMeans:
    """Running sums of per-step metrics within one reporting period (an epoch; WGAN: ``interval``
    generator iterations); saved in checkpoints so that a run resumed mid-period reports the same
    means as an uninterrupted one. A population's metrics carry a leading member axis; its sums
    and means are then arrays with one value per member."""

    KEYS = ("d_loss", "g_loss", "d_real", "d_fake", "g_updated")

    def __init__(self, sums: dict[str, Any] | None = None, steps: int = 0):
        self.sums = {k: 0.0 for k in self.KEYS} if sums is None else {k: _number(sums[k]) for k in self.KEYS}
        self.steps = steps

    def add(self, metrics: dict[str, Any]) -> None:
        """Add one chunk's per-step metrics: shape (steps,) (a single step: ()), or (members, steps)."""
        for k in self.KEYS:
            self.sums[k] = self.sums[k] + _number(np.sum(np.atleast_1d(np.asarray(metrics[k], np.float64)), axis=-1))
        self.steps += int(np.shape(np.atleast_1d(metrics["d_loss"]))[-1])

    def last(self, metrics: dict[str, Any]) -> tuple[float, float]:
        """D and G loss of the latest step that updated G, for the progress bar (a population's:
        the mean over its members)."""
        d = np.atleast_2d(metrics["d_loss"])
        g = np.atleast_2d(metrics["g_loss"])[:, np.atleast_2d(metrics["g_updated"])[0] > 0]
        return float(d[:, -1].mean()), float(g[:, -1].mean()) if g.size else float("nan")

    def means(self) -> dict[str, Any]:
        n = max(self.steps, 1)
        return {"d_loss": self.sums["d_loss"] / n,
                "g_loss": self.sums["g_loss"] / np.maximum(self.sums["g_updated"], 1.0),
                "d_real": self.sums["d_real"] / n, "d_fake": self.sums["d_fake"] / n}

    def to_record(self) -> dict[str, Any]:
        return {"sums": {k: np.asarray(v).tolist() for k, v in self.sums.items()}, "steps": self.steps}

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> "EpochMeans":
        return cls(record["sums"], int(record["steps"])) if record else cls()


def _number(x: Any) -> Any:
    """A float for one run, a float64 array (one per member) for a population."""
    x = np.asarray(x, dtype=np.float64)
    return float(x) if x.ndim == 0 else x
