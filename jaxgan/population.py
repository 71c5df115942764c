"""Populations: K independent runs of one model trained as one compiled program.

A population is the solo step under ``jax.vmap``: the training state gains a leading member axis,
and so do the few things that make one run differ from another — its random keys (from its own
seed: initialisation, shuffling, noise, dropout) and its optimiser settings (learning rates, G's and D's
too, and betas may differ per member, so a sweep is one command). Nothing else changes: member ``i`` runs
exactly the solo step of the run with seed ``seeds[i]``, so it equals that solo run to float
tolerance (vmap may fuse and round differently, and GAN training amplifies such noise, so
compare early steps; the population itself is bit-for-bit reproducible and resumes exactly).

With several devices and K divisible by their number, members are split over the devices along
the mesh's axis: each device trains whole members, with no communication inside a step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxgan import data as data_lib
from jaxgan import steps
from jaxgan.config import PER_MEMBER, Config, per_member


@dataclasses.dataclass(frozen=True, eq=False)
class Population:
    """The static half of a population (one GAN: graphs, options) plus its per-member values."""

    gan: steps.GAN  # member 0's; the others differ only in the arrays below
    cfg: Config
    seeds: tuple[int, ...]
    hyper: dict[str, jax.Array]  # "lr", "beta1", "beta2", "g_lr", "d_lr" (resolved): float32 (K,)
    step_keys: jax.Array  # (K,) typed keys
    shuffle_keys: jax.Array
    fixed_keys: jax.Array

    @property
    def size(self) -> int:
        return len(self.seeds)

    # -- one member's GAN inside the vmapped program -------------------------------------------
    def _member(self, step_key: jax.Array, hyper: dict[str, jax.Array]) -> steps.GAN:
        g_tx, d_tx = steps.optimizers(self.cfg, hyper["lr"], hyper["beta1"], hyper["beta2"], hyper["g_lr"],
                                      hyper["d_lr"])
        return dataclasses.replace(self.gan, step_key=step_key, g_tx=g_tx, d_tx=d_tx, mesh=None)

    def train_chunk(self, state, data: data_lib.Dataset, perms: jax.Array, start: jax.Array, length: jax.Array):
        """``length`` steps of every member; metrics have shape (K, chunk_steps)."""
        def one(st, key, hyper, perm):
            return self._member(key, hyper).train_chunk(st, data, perm, start, length)
        return jax.vmap(one)(state, self.step_keys, self.hyper, perms)

    def train_tail(self, state, data: data_lib.Dataset, perms: jax.Array, start: int):
        """The epoch's short last batch of every member; metrics (K, 1) like a chunk's."""
        def one(st, key, hyper, perm):
            return self._member(key, hyper).train_tail(st, data, perm, start)
        state, metrics = jax.vmap(one)(state, self.step_keys, self.hyper, perms)
        return state, {k: v if k == "finite" else v[:, None] for k, v in metrics.items()}

    def grid(self, state, fixed: jax.Array):
        return jax.vmap(self.gan.grid)(state, fixed)

    def permutations(self, epoch: jax.Array, n: int) -> jax.Array:
        """(K, n): each member shuffles with its own key."""
        return jax.vmap(lambda k: data_lib.epoch_permutation(k, epoch, n))(self.shuffle_keys)

    def fixed_noise(self, n: int = 64) -> jax.Array:
        return jax.vmap(lambda k: self.gan.grid_noise(k, n))(self.fixed_keys)


def member_values(cfg: Config) -> dict[str, tuple]:
    """Per-member seeds and optimiser settings, each of length ``cfg.population``."""
    k = cfg.population
    seeds = tuple(cfg.seeds) if cfg.seeds else tuple(cfg.seed + i for i in range(k))
    out = {"seed": seeds}
    for name in PER_MEMBER:
        values = per_member(getattr(cfg, name))
        out[name] = values * k if len(values) == 1 else values
    for name in ("g_lr", "d_lr"):  # 0: the member's --lr
        out[name] = tuple(v or lr for v, lr in zip(out[name], out["lr"]))
    return out


def member_config(cfg: Config, i: int) -> Config:
    """The solo run that member ``i`` is."""
    values = member_values(cfg)
    return dataclasses.replace(cfg, population=1, seeds=(), **{name: v[i] for name, v in values.items()})


def build(cfg: Config, abstract: bool = False) -> tuple[Population, Any]:
    """The population and its stacked initial state (member i initialised as its solo run)."""
    members = [member_config(cfg, i) for i in range(cfg.population)]
    built = [steps.build(m, abstract=abstract) for m in members]
    gan = built[0][0]
    if abstract:
        state = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct((len(members),) + x.shape, x.dtype),
                                       built[0][1])
    else:
        state = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *[s for _, s in built])
    keys = [steps.run_keys(m.seed) for m in members]
    values = member_values(cfg)
    pop = Population(gan=gan, cfg=members[0], seeds=values["seed"],
                     hyper={n: jnp.asarray(values[n], jnp.float32) for n in ("lr", "beta1", "beta2", "g_lr", "d_lr")},
                     step_keys=jnp.stack([k["step"] for k in keys]),
                     shuffle_keys=jnp.stack([k["shuffle"] for k in keys]),
                     fixed_keys=jnp.stack([k["fixed_noise"] for k in keys]))
    return pop, state


def member(state: Any, i: int) -> Any:
    """Member ``i``'s state, as a solo run's."""
    return jax.tree_util.tree_map(lambda x: x[i], state)


def member_sharding(mesh, k: int) -> NamedSharding | None:
    """Members split over the mesh's devices when K divides by their number (else None)."""
    if mesh is None or mesh.size == 1 or k % mesh.size:
        return None
    return NamedSharding(mesh, P(mesh.axis_names[0]))
