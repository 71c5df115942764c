#!/usr/bin/env bash
# The one prepared command for a lent GPU (see README "Benchmarks"): prints the software seen,
# runs the whole comparison, and leaves the JSON, table and plot under $OUT.
#   run: bash benchmarks/gpu_run.sh      (with .whl/ carried, if the machine's flax/optax differ)
set -uo pipefail
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
python3 -c "import jaxgan.steps" 2>/dev/null || { echo "carried wheels unusable; using the machine's"; unset PYTHONPATH; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
python3 - <<'PY'
import jax, flax, optax, torch, torchvision
print("jax", jax.__version__, jax.devices(), "flax", flax.__version__, "optax", optax.__version__,
      "torch", torch.__version__, "torchvision", torchvision.__version__)
PY
python3 benchmarks/throughput.py --device gpu --min_time 2 --json "$OUT/gpu_throughput.json" "$@" 2>&1 \
  | grep -v -E "Warning|warn\(|check_worker|os.fork" | tee "$OUT/gpu_throughput.md"
