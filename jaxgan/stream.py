"""Datasets larger than the device: each chunk's batches gathered on the host and sent ahead.

Below ``--data_budget`` the training images live on the device (``data.put_dataset``) and the
compiled chunk gathers its batches there. Above it they stay in host memory, the one host copy
(``load_split``'s array, or a memory map of it): for each chunk the host takes the rows
``perm[pos*B : (pos+length)*B]`` of the epoch's permutation (the same permutation, computed on
the device by ``Program.permutations`` and brought back), flattens just those rows to the
device layout, pads them to ``steps_per_call * B`` rows and puts them on the devices (replicated,
as the resident dataset is). The *same* compiled ``train_chunk`` then runs on that small dataset
with the identity permutation from batch 0: gathering identical rows is exact, so every step sees
the bits it sees in a device-resident run, and the results are identical. One padded shape
serves every chunk, so one program serves the run (the tail batch has a shape of its own, as it
always has).

A single worker thread gathers chunk k+1 while the device runs chunk k (JAX dispatches
asynchronously); it starts once chunk k-1 has finished, so at most two chunks' batches are on the
device at a time, and the budget must hold two.

A population's K members visit the data in K permutations: each chunk gathers K row sets, K times
the traffic of a solo run, stacked into one array whose member k reads its own block (the
population's permutations become ``k * rows + arange(rows)``; the program is unchanged).
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable

import jax
import numpy as np

from jaxgan import data as data_lib
from jaxgan import parallel
from jaxgan.config import Config, ConfigError, data_budget_bytes

AUTO_FRACTION = 0.5  # --data_budget auto: this share of the device's memory (bytes_limit)


def dataset_bytes(images: np.ndarray, labels: np.ndarray | None) -> int:
    """What ``data.put_dataset`` puts on each device: the uint8 images and int32 labels."""
    return int(images.size) + (0 if labels is None else 4 * len(labels))


def chunk_bytes(cfg: Config, row_bytes: int, rows: int | None = None) -> int:
    """One streamed chunk on each device: ``steps_per_call * B`` rows for each member."""
    return cfg.population * (cfg.steps_per_call * cfg.batch_size if rows is None else rows) * row_bytes


def budget(cfg: Config, devices=None) -> float:
    """``--data_budget`` in bytes; ``auto``: :data:`AUTO_FRACTION` of the smallest ``bytes_limit``
    of this process's devices, and unlimited where a backend reports no memory statistics (CPU:
    its "device" memory is the host's, so streaming would only add a copy)."""
    given = data_budget_bytes(cfg.data_budget)
    if given is not None:
        return given
    limits = []
    for d in devices if devices is not None else jax.local_devices():
        stats = d.memory_stats()
        if not stats or "bytes_limit" not in stats:
            return float("inf")
        limits.append(stats["bytes_limit"])
    return AUTO_FRACTION * min(limits) if limits else float("inf")


def streams(cfg: Config, images: np.ndarray, labels: np.ndarray | None, limit: float) -> bool:
    """Whether the run streams its data: the resident dataset would exceed ``limit``. A budget that
    cannot hold two streamed chunks is refused (one line: the sizes, and what to change)."""
    if dataset_bytes(images, labels) <= limit:
        return False
    row = int(np.prod(images.shape[1:])) + (0 if labels is None else 4)
    need = 2 * chunk_bytes(cfg, row)
    if need > limit:
        who = f" x {cfg.population} members" if cfg.population > 1 else ""
        raise ConfigError(f"--data_budget {cfg.data_budget}: the dataset ({dataset_bytes(images, labels):,} bytes) "
                          f"streams, and two chunks of --steps_per_call {cfg.steps_per_call} x batch "
                          f"{cfg.batch_size}{who} take {need:,} bytes, more than the budget ({int(limit):,}); "
                          "raise --data_budget or lower --steps_per_call")
    return True


class Stream:
    """The streamed dataset of one run. ``take(chunk)`` returns ``(data, perms)`` for the chunk's
    compiled call (started from batch 0); ``ahead(chunk)`` starts gathering a later chunk on the
    worker thread. ``permutation(epoch)``: the epoch's device permutation(s), as the trainer
    draws them."""

    def __init__(self, cfg: Config, images: np.ndarray, labels: np.ndarray | None, layout: data_lib.Layout,
                 mesh, perm_sharding, permutation: Callable[[int], jax.Array]):
        self.images, self.labels, self.layout, self.mesh = images, labels, layout, mesh
        self.nbytes = dataset_bytes(images, labels)  # what a device-resident run would put there
        self.members, self.batch = cfg.population, cfg.batch_size
        self.rows = cfg.steps_per_call * cfg.batch_size
        self.permutation = permutation
        self.perms = parallel.put(self._identity(self.rows), perm_sharding)
        self.tail_perms = parallel.put(self._identity(layout.tail), perm_sharding) if layout.tail else None
        self._lock = threading.Lock()
        self._epoch: tuple[int, np.ndarray] | None = None
        self._ahead: dict = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jaxgan-stream")

    def _identity(self, rows: int) -> np.ndarray:
        ident = np.arange(self.members * rows, dtype=np.int32).reshape(self.members, rows)
        return ident if self.members > 1 else ident[0]

    def host_permutation(self, epoch: int) -> np.ndarray:
        """(K, n) int32: the epoch's order of every member (K = 1 for a solo run)."""
        with self._lock:
            if self._epoch is None or self._epoch[0] != epoch:
                perm = np.asarray(parallel.to_host(self.permutation(epoch)), np.int32)
                self._epoch = (epoch, perm.reshape(self.members, -1))
            return self._epoch[1]

    def gather(self, chunk) -> data_lib.Dataset:
        """The chunk's batches, every member's, as a device dataset of ``K * rows`` rows."""
        perm = self.host_permutation(chunk.epoch)
        if chunk.tail:
            lo, rows = self.layout.full * self.batch, self.layout.tail
        else:
            lo, rows = chunk.pos * self.batch, self.rows
        m = self.layout.tail if chunk.tail else chunk.length * self.batch
        flat = int(np.prod(self.images.shape[1:]))
        images = np.zeros((self.members, rows, flat), np.uint8)
        labels = None if self.labels is None else np.zeros((self.members, rows), np.int32)
        for k in range(self.members):
            idx = perm[k, lo:lo + m]
            images[k, :m] = data_lib.flatten_chw(self.images[idx])  # only these rows are copied
            if labels is not None:
                labels[k, :m] = self.labels[idx]
        data = {"images": images.reshape(self.members * rows, flat)}
        if labels is not None:
            data["labels"] = labels.reshape(-1)
        return parallel.put_replicated(data, self.mesh)

    def ahead(self, chunk) -> None:
        if chunk is not None and chunk not in self._ahead:
            self._ahead[chunk] = self._pool.submit(self.gather, chunk)

    def take(self, chunk) -> tuple[data_lib.Dataset, jax.Array]:
        future = self._ahead.pop(chunk, None)
        data = future.result() if future is not None else self.gather(chunk)
        return data, self.tail_perms if chunk.tail else self.perms

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._ahead.clear()
