"""Orbax checkpoints: save, list, restore the newest good one. The only module that imports Orbax.

A checkpoint holds the whole training state (G and D parameters, G's BatchNorm statistics, both
Adam states, the step) and a JSON record of the run (its configuration, epoch bookkeeping). The
state is stored as a flat ``{"g_params.linears.0.kernel": array, ...}`` mapping and rebuilt on
restore from the caller's template, so the on-disk layout does not depend on how Flax or optax
register their pytree nodes, and arrays are restored straight into the template's shardings.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

for _name in ("absl", "orbax"):  # Orbax logs every save at INFO/WARNING; our own report is enough
    logging.getLogger(_name).setLevel(logging.ERROR)


class CheckpointError(RuntimeError):
    """No usable checkpoint; the message is one line."""


def _key_name(entry: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def _flatten(tree: Any) -> dict[str, Any]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {".".join(_key_name(k) for k in path): leaf for path, leaf in leaves}


def _unflatten(template: Any, flat: dict[str, Any]) -> Any:
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    return jax.tree_util.tree_unflatten(
        treedef, [flat[".".join(_key_name(k) for k in path)] for path, _ in paths])


class Checkpoints:
    """The checkpoints of one run folder (``<ckpt_dir>/<dataset>``)."""

    def __init__(self, directory: str, keep: int = 3):
        self.directory = os.path.abspath(directory)
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               enable_async_checkpointing=False)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def steps(self) -> list[int]:
        """Saved steps, oldest first."""
        return sorted(self._manager.all_steps(read=True))

    def save(self, step: int, state: Any, record: dict[str, Any]) -> str:
        """Write the state and the JSON ``record`` as checkpoint ``step``; return its folder."""
        host_state = {k: np.asarray(jax.device_get(v)) for k, v in _flatten(state).items()}
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(host_state), record=ocp.args.JsonSave(record)), force=True)
        self._manager.wait_until_finished()
        return os.path.join(self.directory, str(step))

    def read_record(self, step: int) -> dict[str, Any]:
        """The JSON record of checkpoint ``step`` alone (cheap: no arrays are read)."""
        out = self._manager.restore(step, args=ocp.args.Composite(record=ocp.args.JsonRestore()))
        return dict(out["record"])

    def restore(self, template: Any, step: int | None = None) -> tuple[Any, dict[str, Any], int]:
        """Restore checkpoint ``step`` (default: the newest) into ``template``'s structure,
        shapes, dtypes and shardings. Returns ``(state, record, step)``."""
        steps = self.steps()
        if not steps:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        step = steps[-1] if step is None else step
        flat_template = _flatten(template)
        abstract = {k: jax.ShapeDtypeStruct(np.shape(v), v.dtype, sharding=getattr(v, "sharding", None))
                    for k, v in flat_template.items()}
        out = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), record=ocp.args.JsonRestore()))
        return _unflatten(template, out["state"]), dict(out["record"]), step

    def close(self) -> None:
        self._manager.close()
