"""Process-wide switches, set by the commands (never as a side effect of importing a module):
XLA's persistent compilation cache, and the log levels of chatty libraries."""

from __future__ import annotations

import logging
import os

import jax

# The compile cache's events: every compilation that may use the cache asks it; hits are read back.
_REQUESTS, _HITS = "/jax/compilation_cache/compile_requests_use_cache", "/jax/compilation_cache/cache_hits"
_counts = {_REQUESTS: 0, _HITS: 0}
_listening = False


def default_cache_dir() -> str:
    """$JAXGAN_COMPILE_CACHE (``none``: off), else a per-user folder: $XDG_CACHE_HOME/jaxgan/xla
    (~/.cache/jaxgan/xla)."""
    if os.environ.get("JAXGAN_COMPILE_CACHE"):
        return os.environ["JAXGAN_COMPILE_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxgan", "xla")


def setup(compile_cache: str = "") -> str | None:
    """Quiet Orbax/absl logging and turn on the persistent compilation cache, so a second run of
    the same configuration compiles nothing. ``compile_cache``: a folder, "" for the default,
    "none" for off. Returns the folder in use (None: off)."""
    for name in ("absl", "orbax"):  # Orbax logs every save at INFO/WARNING; our own report is enough
        logging.getLogger(name).setLevel(logging.ERROR)
    folder = compile_cache or default_cache_dir()
    folder = None if folder.lower() == "none" else folder  # the flag's or $JAXGAN_COMPILE_CACHE's "none"
    if folder is not None:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError:
            folder = None  # an unwritable cache only costs time: run without it
    if folder is not None:
        jax.config.update("jax_compilation_cache_dir", folder)
        # Cache every program, however small or quick to compile: all of them count at start-up.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        global _listening
        if not _listening:  # once per process: a command called again in-process counts each event once
            jax.monitoring.register_event_listener(_count)
            _listening = True
    return folder


def _count(event: str, **kwargs) -> None:
    if event in _counts:
        _counts[event] += 1


def compile_counts() -> tuple[int, int]:
    """(programs compiled by XLA, programs read back from the cache) since ``setup``."""
    return _counts[_REQUESTS] - _counts[_HITS], _counts[_HITS]
