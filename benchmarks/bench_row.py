"""One benchmark measurement, alone in this process (the child every benchmark command starts).

    python -m benchmarks.bench_row SPEC.json OUT.json

SPEC's ``job`` is one of

  env        library versions, backends and device names seen by a fresh process
  row        training throughput of one implementation at one batch size (``benchmarks.rows``)
  peak       a large matmul's rate in one framework at one precision (``benchmarks.machine``)
  bandwidth  a large array triad's memory bandwidth in one framework
  flops      XLA's cost analysis of one jaxgan training step at one batch size

Nothing here imports torch or jax at the top: each job imports only what it measures.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from benchmarks.harness import env_settings, os_threads
from benchmarks.machine import job_bandwidth, job_env, job_flops, job_peak
from benchmarks.rows import job_row


JOBS = {"env": job_env, "row": job_row, "peak": job_peak, "bandwidth": job_bandwidth, "flops": job_flops}

def main() -> int:
    spec_path, out_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    # XLA documents no binding thread setting (XLA_FLAGS' intra_op_parallelism_threads is a hint),
    # so fewer threads than CPUs are also enforced by CPU affinity, before any framework starts.
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if spec.get("threads") and spec.get("device") == "cpu" and 0 < spec["threads"] < len(cpus):
        os.sched_setaffinity(0, cpus[:spec["threads"]])
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    result: dict[str, Any] = {"spec": spec, "pid": os.getpid(), "loadavg_before": load_before,
                              "cpu_affinity": sorted(os.sched_getaffinity(0)) if cpus else None}
    try:
        result.update(JOBS[spec["job"]](spec))
        result["ok"] = True
    except Exception as e:  # a failing measurement is reported in its row, not fatal to the run
        import traceback

        result.update(ok=False, error=f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}",
                      traceback=traceback.format_exc()[-3000:])
    result.update(wall_s=time.perf_counter() - t0, loadavg_after=os.getloadavg(),
                  os_threads_at_end=os_threads(), env=env_settings())
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1, default=str)
    os.replace(tmp, out_path)
    return 0 if result["ok"] else 1

if __name__ == "__main__":
    sys.exit(main())
