#!/usr/bin/env bash
# The one prepared command for a lent GPU: prints the software seen, trains with the real CLI on
# 60,000 MNIST-format images, then runs the whole comparison; results land under $OUT.
#   bash benchmarks/gpu_run.sh    (carry .whl/ holding tensorboardX if the machine lacks it)
set -uo pipefail
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! python3 -c "import tensorboardX" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
python3 -c "import jax, flax, optax, torch, torchvision; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__, 'torch', torch.__version__, 'torchvision', torchvision.__version__)"
python3 -c "from benchmarks.throughput import write_dataset; write_dataset('/tmp/d60', 60000)"
timeout 150 python3 -m jaxgan.train --dataset mnist --data_dir /tmp/d60 --no-download --num_epochs 3 \
  --no-progress --sample_dir /tmp/s --logdir /tmp/r --ckpt_dir /tmp/c 2>&1 | grep -v -i warn | tee "$OUT/gpu_train.log"
python3 benchmarks/throughput.py --device gpu --min_time 1.5 --json "$OUT/gpu_throughput.json" "$@" 2>&1 \
  | grep -v -E "Warning|warn\(|check_worker|os.fork" | tee "$OUT/gpu_throughput.md"
