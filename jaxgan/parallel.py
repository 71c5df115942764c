"""Data parallelism on JAX's own runtime: a 1-D ``data`` mesh over every device of every process.

The training state is replicated; each global batch is split along the ``data`` axis. XLA's SPMD
partitioner inserts the all-reduces itself (gradients, and BatchNorm's batch mean and variance),
so the mathematics equals one device's: BatchNorm sees the *global* batch. Random numbers are
drawn with partitionable threefry, so a sharded run draws exactly the numbers a single device
draws. Across hosts, ``jax.distributed`` joins the processes; every process holds the (small)
dataset and each device gathers and normalises only its own rows of every batch.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jaxgan.config import ConfigError



def initialize(coordinator_address: str = "", num_processes: int = 0, process_id: int = -1) -> None:
    """Join a multi-process run. With explicit flags use them; without, let JAX auto-detect the
    cluster only where one is there (Slurm with several tasks, Cloud TPU pods, MPI/OMPI)."""
    if coordinator_address:
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise ConfigError("--coordinator_address needs --num_processes N >= 1 and 0 <= --process_id < N")
        # CPU processes exchange collectives through gloo (GPUs use NCCL regardless).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                                   process_id=process_id)
        return
    cluster = (int(os.environ.get("SLURM_NTASKS", "1")) > 1
               or int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1
               or "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""))
    if cluster:
        jax.distributed.initialize()


def data_mesh() -> Mesh:
    """All devices of all processes on one ``data`` axis."""
    return Mesh(np.asarray(jax.devices()), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P("data"))


def check_batch(batch_size: int, mesh: Mesh) -> None:
    n = mesh.size
    if batch_size % n:
        raise ConfigError(f"batch_size {batch_size} does not divide by the {n} devices in use; "
                          f"use a multiple of {n}")


def constrain_batch(x: jax.Array, mesh: Mesh | None) -> jax.Array:
    """Split ``x``'s leading (batch) axis over the mesh, when it divides evenly."""
    if mesh is None or mesh.size == 1 or x.shape[0] % mesh.size:
        return x
    return jax.lax.with_sharding_constraint(x, batch_sharding(mesh))


def put_replicated(tree: Any, mesh: Mesh) -> Any:
    """Host values (identical on every process) -> global arrays replicated over the mesh."""
    return put(tree, replicated(mesh))


def put(tree: Any, sharding: NamedSharding) -> Any:
    """Host values (identical on every process) -> global arrays laid out by ``sharding``; each
    device takes its own slice."""

    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree_util.tree_map(one, tree)


def to_host(tree: Any) -> Any:
    """Global arrays -> numpy, by an explicit ``jax.device_get``. Replicated arrays are read from
    this process's own copy, so this works on every process of a multi-host run."""

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            x = x.addressable_data(0)
        return np.asarray(jax.device_get(x))

    return jax.tree_util.tree_map(get, tree)


def is_primary() -> bool:
    """Process 0 alone writes grids, events and progress output."""
    return jax.process_index() == 0
