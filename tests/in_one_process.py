"""``python -m tests.in_one_process SPEC.json``: run several jaxgan commands one after another in
this one process, each as ``tests.conftest.run_main`` runs it in the test process.

For the tests whose point is the process itself: its simulated devices (XLA_FLAGS, read once,
when jax starts) or its place among processes joined by jax.distributed. Such a topology needs a
process of its own, but not one per command: starting a process costs seconds of imports and
compilation, a run of the tests' tiny models a fraction of that.

SPEC holds ``runs``, a list of ``{"name", "module", "args"}``, and ``results``, a path: after
each run, the exit codes and outputs of all runs so far are written there as JSON (a later run
that dies leaves the earlier ones readable). ``last`` (optional, ``{"module", "args"}``) runs
after them uncaptured, as ``python -m`` runs a command: its exit code and output are this
process's own, as a shell sees them.
"""

from __future__ import annotations

import importlib
import json
import sys

from tests.conftest import release_compiled_programs, run_main


def main(spec_path: str) -> int:
    with open(spec_path) as f:
        spec = json.load(f)
    results = {}
    for run in spec["runs"]:
        done = run_main(run["module"], *run["args"])
        results[run["name"]] = {"code": done.returncode, "out": done.stdout, "err": done.stderr}
        with open(spec["results"], "w") as f:
            json.dump(results, f)
        release_compiled_programs()  # several runs' programs at once would double this process's memory
    last = spec.get("last")
    if last:
        return importlib.import_module(last["module"]).main(last["args"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
