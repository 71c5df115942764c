"""Keep one of several runs of the same benchmark command by the rule in code (``analysis.quietest``:
the lowest mean 1-minute load average), and record which runs it chose between and why.

    python -m benchmarks.select_run run1.json run2.json --copy_to benchmarks/results/cpu_quick.json

The kept run (its .json, .md and .png) is copied to ``--copy_to``; ``<copy_to>.selection.json``
names every candidate with its mean load. Without ``--copy_to`` it only prints.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

from benchmarks.analysis import load, quietest
from jaxgan.config import OneLineParser


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m benchmarks.select_run", description=__doc__.splitlines()[0])
    p.add_argument("json", nargs="+", help="the candidate runs' JSON files")
    p.add_argument("--copy_to", help="copy the chosen run (and its .md/.png) here (default: only print)")
    a = p.parse_args(argv)
    for path in a.json:
        if not os.path.isfile(path):
            p.error(f"no such file: {path}")
        if "load" not in load(path):
            p.error(f"{path} is not a benchmark run (no load summary)")
    best, means = quietest(a.json)
    for path, m in means.items():
        print(f"{path}: mean load {m:.2f}{'  <- kept' if path == best else ''}")
    if a.copy_to:
        src, dst = os.path.splitext(best)[0], os.path.splitext(a.copy_to)[0]
        if os.path.abspath(best) != os.path.abspath(a.copy_to):
            for ext in (".json", ".md", ".png"):
                if os.path.isfile(src + ext):
                    shutil.copyfile(src + ext, dst + ext)
        with open(dst + ".selection.json", "w") as f:  # which runs were compared, and why this one
            json.dump({"rule": "keep the run with the lowest mean 1-minute load average (analysis.quietest)",
                       "kept": load(best).get("created_utc"),
                       "candidates": [{"created_utc": load(p_).get("created_utc"), "mean_load": m}
                                      for p_, m in means.items()]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
