#!/usr/bin/env bash
# The one prepared command for a lent GPU, about 6 minutes in all (7 at most); every result lands flat in
# $OUT (7 files: the device tool brings back at most 8, no deeper than 2 folders):
#   gpu_run.log            what was seen (nvidia-smi, versions, settings) and every step's output
#   profile_torch_gpu.json/.md   torch.profiler: where the tuned PyTorch loop's iteration goes
#   gpu_throughput.json/.md/.png every row in its own process, matmul peaks per precision, FLOPs
#   gpu_train.log          the trainer itself: 3 epochs of 60,000 MNIST-format images
# Run it through the device tool with command "bash benchmarks/gpu_run.sh" and timeout_s 480;
# carry .whl if it holds the tensorboardX wheel the trainer needs (the GPU image lacks it):
#   pip download --no-deps --only-binary=:all: -d .whl tensorboardX==2.6.5
# Knobs (environment): GPU_BATCH_SIZES (default 64,4096), GPU_BUDGET_S (seconds after which the
# throughput run starts no new row; default 240), GPU_MIN_TIME (seconds timed per row; default 1).
# Afterwards copy gpu_throughput.{json,md,png} and profile_torch_gpu.{json,md} into benchmarks/results/:
# `python benchmarks/report.py readme` then shows them in the README section.
# CPU check of the same script (no GPU needed): GPU_RUN_CPU_CHECK=1 bash benchmarks/gpu_run.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu_run_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python3}
SIZES=${GPU_BATCH_SIZES:-64,4096}
BUDGET=${GPU_BUDGET_S:-240}
MIN_TIME=${GPU_MIN_TIME:-1}
DEV=gpu
# Which rows first: with --order impl the budget drops the last-named. The rows that decide the
# headlines (tuned, fused Adam, the reference as written, jaxgan's path, CUDA graphs, the TF32
# pair) come before the rest.
IMPLS=torch_tuned,jax_scan,torch_fused_adam,torch_reference,torch_cudagraphs,jax_scan_tf32,torch_fused_adam_tf32,torch_compile,jax_scan_bf16,jax_per_step
PROFILE_SIZES=64,4096
PROFILE_ITERS=20
TRAIN_IMAGES=60000
if [ "${GPU_RUN_CPU_CHECK:-0}" = 1 ]; then  # tiny, on the CPU: checks the script's plumbing only
  DEV=cpu SIZES=64 BUDGET=150 MIN_TIME=0.2 PROFILE_SIZES=64 PROFILE_ITERS=3 TRAIN_IMAGES=1000
  IMPLS=torch_tuned,jax_scan,torch_fused_adam
fi
LOG="$OUT/gpu_run.log"
WORK=$(mktemp -d)  # the trainer's data, checkpoints, grids, events and compile cache
T0=$(date +%s)
step() { echo "== $(( $(date +%s) - T0 )) s: $*" | tee -a "$LOG"; }

if ! $PY -c "import tensorboardX" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
step "environment"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.sm --format=csv 2>&1
  $PY -c "import jax, flax, optax, torch, torchvision; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda, 'torchvision', torchvision.__version__)" 2>&1
  env | grep -E '^(CUDA_|XLA_|JAX_|TORCH|PYTORCH|NVIDIA_TF32|OMP_|MKL_)' | sort
  nproc; uptime
} >> "$LOG" 2>&1

step "profile of the tuned PyTorch loop (torch.profiler)"
timeout 120 $PY benchmarks/profile_torch.py --device $DEV --batch_sizes $PROFILE_SIZES --iters $PROFILE_ITERS \
  --images $TRAIN_IMAGES --json "$OUT/profile_torch_gpu.json" >> "$LOG" 2>&1 || step "profile exited $?"

step "throughput: every row in its own process, peaks per precision, FLOPs per batch size"
timeout $(( ${BUDGET%.*} + 150 )) $PY benchmarks/throughput.py --device $DEV --batch_sizes $SIZES \
  --impls $IMPLS --order impl --budget_s $BUDGET --min_time $MIN_TIME --job_timeout 140 \
  --images $TRAIN_IMAGES --json "$OUT/gpu_throughput.json" >> "$LOG" 2>&1 || step "throughput exited $?"

step "the trainer: python -m jaxgan.train, 3 epochs, cold compile cache"
$PY -c "from benchmarks.throughput import write_dataset; write_dataset('$WORK/data', $TRAIN_IMAGES)" >> "$LOG" 2>&1
timeout 100 $PY -m jaxgan.train --dataset mnist --data_dir "$WORK/data" --no-download --num_epochs 3 \
  --no-progress --sample_dir "$WORK/s" --logdir "$WORK/r" --ckpt_dir "$WORK/c" --compile_cache "$WORK/xla" \
  > "$OUT/gpu_train.log" 2>&1 || step "trainer exited $?"
step "done; files in $OUT:"
ls -la "$OUT" | tee -a "$LOG"
rm -rf "$WORK"
