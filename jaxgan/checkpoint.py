"""Orbax checkpoints: save, list, restore the newest good one. The only module that imports Orbax.

A checkpoint holds the whole training state (G and D parameters, G's BatchNorm statistics, both
Adam states, the step) and a JSON record of the run (its configuration, epoch bookkeeping). The
state is stored as a flat ``{"g_params.linears.0.kernel": array, ...}`` mapping and rebuilt on
restore from the caller's template, so the on-disk layout does not depend on how Flax or optax
register their pytree nodes, and arrays are restored straight into the template's shardings.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

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
        # Orbax writes each checkpoint under a temporary name and renames it when complete, so a
        # kill mid-write leaves only a temporary folder, which is ignored and cleaned up here.
        self._options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                                     enable_async_checkpointing=False,
                                                     cleanup_tmp_directories=True)
        self._manager = ocp.CheckpointManager(self.directory, options=self._options)

    def steps(self) -> list[int]:
        """Saved steps, oldest first."""
        self._manager.reload()  # another process (or a kill) may have changed the folder
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, record: dict[str, Any]) -> str:
        """Write the state and the JSON ``record`` as checkpoint ``step``; return its folder."""
        # Global jax.Arrays go to Orbax as they are: with several processes it writes each shard
        # once, collectively. (Every process must call save.)
        arrays = _flatten(state)
        try:
            self._manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(arrays), record=ocp.args.JsonSave(record)), force=True)
            self._manager.wait_until_finished()
        except Exception as e:  # disk full, permissions, ...: older checkpoints are untouched
            kept = [s for s in self.steps() if s != step]
            raise CheckpointError(f"could not write checkpoint {step} in {self.directory} ({_reason(e)}); "
                                  f"kept: {kept[-1] if kept else 'none'}") from None
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
        # A template without shardings (shapes only, e.g. steps.build(abstract=True)) restores onto
        # this process's first device, whatever topology wrote the checkpoint.
        here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        abstract = {k: jax.ShapeDtypeStruct(np.shape(v), v.dtype, sharding=getattr(v, "sharding", None) or here)
                    for k, v in flat_template.items()}
        out = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), record=ocp.args.JsonRestore()))
        return _unflatten(template, out["state"]), dict(out["record"]), step

    def restore_newest_good(self, template: Any, check: Callable[[dict], None] | None = None,
                            warn: Callable[[str], None] = print) -> tuple[Any, dict[str, Any], int] | None:
        """Restore the newest checkpoint that reads back whole, saying in one line why each newer
        one was skipped. ``check(record)`` may veto a run (its exceptions propagate). Returns
        None when the folder holds no checkpoint; raises CheckpointError when none is usable."""
        steps = self.steps()
        for step in reversed(steps):
            try:
                record = self.read_record(step)
                if check is not None:
                    check(record)
                return self.restore(template, step)
            except Exception as e:
                if not _is_damage(e):
                    raise
                moved = self._set_aside(step)
                warn(f"checkpoint {step} is damaged ({_reason(e)}); moved to {moved}; trying the previous one")
        if steps:
            raise CheckpointError(f"no usable checkpoint in {self.directory}: all of {steps} are damaged")
        return None

    def _set_aside(self, step: int) -> str:
        # Never delete a user's checkpoint, even a damaged one: move it out of Orbax's view so
        # that the resumed run can write that step again.
        target = os.path.join(self.directory, "damaged", f"{step}-{int(time.time())}")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.rename(os.path.join(self.directory, str(step)), target)
        self._manager.close()
        self._manager = ocp.CheckpointManager(self.directory, options=self._options)
        return target

    def close(self) -> None:
        self._manager.close()


def _is_damage(e: BaseException) -> bool:
    """Errors that mean 'this checkpoint cannot be read back', as opposed to a refused resume."""
    from jaxgan.config import ConfigError

    return not isinstance(e, (ConfigError, KeyboardInterrupt))


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:160]}" if text else type(e).__name__


class RunLock:
    """One training run per checkpoint folder: an exclusive lock file holding host and pid.
    A lock left by a process that no longer runs on this host is stale and taken over."""

    def __init__(self, directory: str):
        self.path = os.path.join(os.path.abspath(directory), ".jaxgan-run.lock")
        self.held = False

    def acquire(self, warn: Callable[[str], None] = print) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and self._alive(*owner):
                    raise CheckpointError(f"{os.path.dirname(self.path)} is in use by process {owner[1]} "
                                          f"on {owner[0]}; stop it or choose another --ckpt_dir") from None
                warn(f"removing a stale lock in {os.path.dirname(self.path)} (its process is gone)")
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me + "\n")
            self.held = True
            return
        raise CheckpointError(f"could not lock {os.path.dirname(self.path)}")

    def _owner(self) -> tuple[str, int] | None:
        try:
            host, pid = open(self.path).read().split()
            return host, int(pid)
        except (OSError, ValueError):
            return None  # unreadable or half-written: treated as stale

    @staticmethod
    def _alive(host: str, pid: int) -> bool:
        if host != socket.gethostname():
            return True  # another machine's process: cannot check, so respect it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def release(self) -> None:
        if self.held:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
            self.held = False
