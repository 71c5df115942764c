"""One compiled run: the jitted chunk, tail, grid, permutation and fixed-noise functions of a
configuration, with their shardings and donation. The trainer, the benchmarks and the memory
script all build theirs with :func:`compile_run`, so a benchmark times exactly the program that
``python -m jaxgan.train`` runs.

A solo run (``steps.GAN``) and a population (``population.Population``, the same steps under
``vmap``) expose one interface — ``train_chunk``, ``train_tail``, ``grid``, ``permutations``,
``fixed_noise`` — so nothing below branches on which one it is. A solo run is never run as a
population of one: ``vmap`` may fuse and round differently, and a solo run must stay the program
it has always been, bit for bit.

Programs are cached per process by everything that defines them (``config.program_key``: the
configuration without its folders, run length and bookkeeping, plus the mesh): a second run with
the same settings in one process (a resume, a sweep, a test) traces and compiles nothing.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding

from jaxgan import parallel, population, steps
from jaxgan.config import Config, program_key


@dataclasses.dataclass(frozen=True, eq=False)
class Program:
    """A configuration's compiled functions. ``chunk(state, data, perms, start, length)`` runs
    ``length`` (<= ``cfg.steps_per_call``) fused full batches from batch ``start`` of the epoch;
    ``tail(state, data, perms, start)`` the epoch's short last batch ``perms[start:]`` (``start``
    static); ``grid(state, fixed)`` G over the fixed noise; ``permutations(epoch, n)`` the epoch's
    order(s); ``fixed_noise()`` the grids' noise. ``state`` is donated to chunk, tail and grid."""

    cfg: Config
    run: Any  # steps.GAN or population.Population
    gan: steps.GAN  # the solo run's GAN; for a population, member 0's (its static half)
    initial_state: Any  # a fresh run's state as host (numpy) arrays, which no donation can consume;
    # shapes only when built abstract. Put it on the devices with parallel.put(initial_state, state_sharding).
    state_sharding: NamedSharding
    replicated: NamedSharding
    chunk: Callable
    tail: Callable
    grid: Callable
    permutations: Callable
    fixed_noise: Callable

    @property
    def members(self) -> int:
        return self.cfg.population


def compile_run(cfg: Config, mesh: Mesh | None = None, abstract: bool = False) -> Program:
    """The compiled program of ``cfg`` on ``mesh`` (default: every device on one ``data`` axis).
    ``abstract``: the initial state as shapes only, to lower and analyse without allocating it."""
    mesh = parallel.data_mesh() if mesh is None else mesh
    return _compile_run(program_key(cfg), mesh, abstract)


@functools.lru_cache(maxsize=8)
def _compile_run(cfg: Config, mesh: Mesh, abstract: bool) -> Program:
    rep = parallel.replicated(mesh)
    if cfg.population > 1:
        run, initial_state = population.build(cfg, abstract=abstract)
        gan = run.gan
        # Whole members per device when they divide evenly; else every device runs them all.
        shard = population.member_sharding(mesh, cfg.population) or rep
    else:
        run, initial_state = steps.build(cfg, mesh, abstract=abstract)
        gan, shard = run, rep
    # Explicit shardings: everything replicated except what the steps split themselves (a
    # population: its members). With in_shardings jit takes no keyword arguments, so the static
    # ones go by position. (state, data, perms, start[, length])
    ins = (shard, rep, shard)
    if not abstract:
        initial_state = jax.device_get(initial_state)
    return Program(
        cfg=cfg, run=run, gan=gan, initial_state=initial_state, state_sharding=shard, replicated=rep,
        chunk=jax.jit(run.train_chunk, donate_argnums=0, in_shardings=(*ins, rep, rep), out_shardings=shard),
        tail=jax.jit(run.train_tail, static_argnums=3, donate_argnums=0, in_shardings=ins, out_shardings=shard),
        grid=jax.jit(run.grid, donate_argnums=0, in_shardings=(shard, shard), out_shardings=shard),
        permutations=jax.jit(run.permutations, static_argnums=1, in_shardings=(rep,), out_shardings=shard),
        fixed_noise=jax.jit(run.fixed_noise, out_shardings=shard))
