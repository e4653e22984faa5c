#!/usr/bin/env bash
# A GPU report (BENCHMARKS.md, "Settings"): teacher and paper student, fp32 / bf16 / fp16 autocast and fp16 cast (upstream's
# model.half()), 1, 4 and 8 simulated nuScenes sweeps, the forward breakdown, and student vs distillation
# training steps. Run from the repository root on a CUDA machine with torch; the package need not be installed.
#   OUT=/path/to/results bash tools/gpu_report.sh [extra benchmark.py arguments, which override the above]
# Default OUT: ./bench-gpu. spconv comes from .devwheels/spconv-cu126.tar.xz when present (unpacked into
# .devsite/), else from the environment; without it sparse convolutions take the (slower) plain-torch path.
# Takes about 3-4 minutes on one H100/H200 (2.5 for the GPU part, then a 2-core CPU forward).
set -euo pipefail
OUT=${OUT:-bench-gpu}
mkdir -p "$OUT"
. "$(dirname "$0")/devsite.sh"
PY=${PYTHON:-python3}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv > "$OUT/nvidia-smi.csv" || true
"$PY" -c "import spconv, spconv.pytorch; print('spconv', spconv.__version__)" 2>&1 | tee "$OUT/spconv.txt" || true

"$PY" tools/benchmark.py --device cuda \
    --config configs/nuscenes/semseg-pt-v3m1-0-base.py configs/nuscenes/semseg-pt-v3m1-student.py \
    --dtypes fp32,bf16,fp16,fp16-cast --batches 1,4,8 --repeats 20 --warmup 5 \
    --breakdown-batch 1 --profile-runs 3 \
    --distill-config configs/nuscenes/distill-ptv3.py --train-batches 1,4 --train-dtype bf16 \
    --train-repeats 10 --train-warmup 3 \
    --json "$OUT/gpu.json" --markdown "$OUT/gpu.md" "$@" 2>&1 | tee "$OUT/gpu.log"

# The student's CPU forward on 2 cores of this (otherwise idle) machine, beside BENCHMARKS.md's CPU numbers (another
# processor and torch build).
PIN=""
if command -v taskset > /dev/null; then PIN="taskset -c 0,1"; fi
$PIN "$PY" tools/benchmark.py --device cpu --threads 2 --config configs/nuscenes/semseg-pt-v3m1-student.py \
    --batches 1 --dtypes fp32 --repeats 5 --warmup 1 --no-breakdown --no-train \
    --json "$OUT/cpu2.json" --markdown "$OUT/cpu2.md" 2>&1 | tee "$OUT/cpu2.log"
