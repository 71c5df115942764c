#!/usr/bin/env bash
# The one prepared command for a lent GPU, under 6 minutes in all (per-step timeouts: 20 + 40 + 120 +
# 70 + 60 + 45 s = 355 s); everything lands in $OUT as two
# files (the device tool brings back at most 8): gpu_run.log (what was seen: nvidia-smi, versions,
# settings, every step's output) and gpu_results.tgz holding
#   profile_torch_gpu.json/.md        torch.profiler: where the tuned PyTorch loop's iteration goes
#   gpu_throughput.json/.md/.png      MLP GAN: every row in its own process, peaks, FLOPs
#   gpu_population.json/.md/.png      populations: K = 8, 64, 256, 1024 at batch 64 per member vs one run
#   gpu_dcgan.json/.md/.png           DCGAN at the reference widths, batch 128: both conv forms, channels_last
#   gpu_train.log                     the trainer itself: 3 epochs of 60,000 MNIST-format images
# Run it through the device tool with command "bash benchmarks/gpu_run.sh" and timeout_s 420;
# carry .whl if it holds the tensorboardX wheel the trainer needs (the GPU image lacks it):
#   pip download --no-deps --only-binary=:all: -d .whl tensorboardX==2.6.5
# Knobs (environment): GPU_BATCH_SIZES (default 64,4096), GPU_BUDGET_S (seconds after which the MLP
# throughput run starts no new row; default 70), GPU_MIN_TIME (seconds timed per row and round, 5
# rounds; default 0.3),
# GPU_POPULATION (default 8,64,256,1024: a K that does not fit shows as a failed row).
# Afterwards unpack gpu_results.tgz into benchmarks/results/: `python -m scripts.render_docs`
# then shows the MLP rows in docs/benchmarks.md.
# CPU check of the same script (no GPU needed): GPU_RUN_CPU_CHECK=1 bash benchmarks/gpu_run.sh
set -uo pipefail
OUT=${OUT:-/tmp/gpu_run_out}
mkdir -p "$OUT"
RES=$(mktemp -d)  # packed into $OUT/gpu_results.tgz at the end
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python3}
SIZES=${GPU_BATCH_SIZES:-64,4096}
BUDGET=${GPU_BUDGET_S:-70}
POP=${GPU_POPULATION:-8,64,256,1024}
DCGAN_WIDTHS=""  # the reference's
DCGAN_IMPLS=torch_tuned,jax_scan,jax_scan_other_conv,torch_channels_last,torch_fused_adam,torch_reference
MIN_TIME=${GPU_MIN_TIME:-0.3}
ROUNDS=5
TS=1  # step timeouts are multiplied by this (the CPU check compiles on a CPU)
DEV=gpu
# Which rows first: with --order impl the budget drops the last-named. The rows that decide the
# headlines (tuned, fused Adam, the reference as written, jaxgan's path, CUDA graphs, the TF32
# pair) come before the rest.
IMPLS=torch_tuned,jax_scan,torch_fused_adam,torch_reference,torch_cudagraphs,jax_scan_tf32,torch_fused_adam_tf32,torch_compile,jax_scan_bf16,jax_per_step
PROFILE_SIZES=64,4096
PROFILE_ITERS=20
TRAIN_IMAGES=60000
if [ "${GPU_RUN_CPU_CHECK:-0}" = 1 ]; then  # tiny, on the CPU: checks the script's plumbing only
  DEV=cpu SIZES=64 BUDGET=60 MIN_TIME=0.05 ROUNDS=2 TS=4 PROFILE_SIZES=64 PROFILE_ITERS=3 TRAIN_IMAGES=1000
  IMPLS=torch_tuned,jax_scan,torch_fused_adam POP=2 DCGAN_IMPLS=torch_tuned,jax_scan
  DCGAN_WIDTHS="--g_hidden 64,32,16,8 --d_hidden 8,16,32,64"
fi
LOG="$OUT/gpu_run.log"
WORK=$(mktemp -d)  # the trainer's data, checkpoints, grids, events and compile cache
T0=$(date +%s)
step() { echo "== $(( $(date +%s) - T0 )) s: $*" | tee -a "$LOG"; }

if ! $PY -c "import tensorboardX" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
step "smoke: versions and the device, or stop here (20 s)"
if ! timeout 20 $PY -c "import jax, torch; print('jax', jax.__version__, jax.devices(), 'torch', torch.__version__, 'cuda', torch.cuda.is_available()); assert '$DEV' == 'cpu' or (jax.default_backend() == 'gpu' and torch.cuda.is_available()), 'no GPU seen'" 2>&1 | tee -a "$LOG"; then
  step "smoke failed: no usable GPU or libraries; nothing else run"
  exit 1
fi
step "environment"
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.sm --format=csv 2>&1
  $PY -c "import jax, flax, optax, torch, torchvision; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__, 'torch', torch.__version__, 'cuda', torch.version.cuda, 'torchvision', torchvision.__version__)" 2>&1
  env | grep -E '^(CUDA_|XLA_|JAX_|TORCH|PYTORCH|NVIDIA_TF32|OMP_|MKL_)' | sort
  nproc; uptime
} >> "$LOG" 2>&1

step "profile of the tuned PyTorch loop (torch.profiler)"
timeout $(( 40 * TS )) $PY -m benchmarks.profile_torch --device $DEV --batch_sizes $PROFILE_SIZES --iters $PROFILE_ITERS \
  --images $TRAIN_IMAGES --json "$RES/profile_torch_gpu.json" >> "$LOG" 2>&1 || step "profile exited $?"

step "throughput: every row in its own process, peaks per precision, FLOPs per batch size"
timeout $(( (${BUDGET%.*} + 50) * TS )) $PY -m benchmarks.throughput --device $DEV --batch_sizes $SIZES \
  --impls $IMPLS --order impl --budget_s $BUDGET --min_time $MIN_TIME --rounds $ROUNDS --job_timeout $(( 45 * TS )) \
  --images $TRAIN_IMAGES --json "$RES/gpu_throughput.json" >> "$LOG" 2>&1 || step "throughput exited $?"

step "populations: K members under vmap against one run, batch 64 per member"
timeout $(( 70 * TS )) $PY -m benchmarks.throughput --device $DEV --batch_sizes 64 --impls jax_scan --population $POP \
  --order impl --budget_s 30 --min_time $MIN_TIME --rounds $ROUNDS --job_timeout $(( 35 * TS )) --images $TRAIN_IMAGES --json "$RES/gpu_population.json" >> "$LOG" 2>&1 \
  || step "population throughput exited $?"

step "DCGAN at the reference widths, batch 128 (dcgan/train.py's)"
timeout $(( 60 * TS )) $PY -m benchmarks.throughput --device $DEV --model dcgan $DCGAN_WIDTHS --batch_sizes 128 \
  --impls $DCGAN_IMPLS --order impl --budget_s 20 --min_time $MIN_TIME --rounds $ROUNDS --job_timeout $(( 35 * TS )) --steps_per_call 50 \
  --images $TRAIN_IMAGES --json "$RES/gpu_dcgan.json" >> "$LOG" 2>&1 || step "dcgan throughput exited $?"

step "the trainer: python -m jaxgan.train, 3 epochs, cold compile cache"
$PY -c "from benchmarks.synthetic import write_dataset; write_dataset('$WORK/data', $TRAIN_IMAGES)" >> "$LOG" 2>&1
timeout $(( 45 * TS )) $PY -m jaxgan.train --dataset mnist --data_dir "$WORK/data" --no-download --num_epochs 3 \
  --no-progress --sample_dir "$WORK/s" --logdir "$WORK/r" --ckpt_dir "$WORK/c" --compile_cache "$WORK/xla" \
  > "$RES/gpu_train.log" 2>&1 || step "trainer exited $?"
step "done; packing $RES into $OUT/gpu_results.tgz:"
ls -la "$RES" | tee -a "$LOG"
tar -czf "$OUT/gpu_results.tgz" -C "$RES" . && rm -rf "$RES"
rm -rf "$WORK"
