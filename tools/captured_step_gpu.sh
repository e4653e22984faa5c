#!/usr/bin/env bash
# Issue #24's GPU measurements in one call (about 8 minutes on one H100/H200; fits a 600 s device call): the
# captured-step tests on CUDA, the training-step benchmark with the captured student and distillation rows beside
# the eager ones (1 and 8 scans), then two scripts/train.sh distillation runs, eager steps vs captured_step, on
# simulated nuScenes sweeps with a random teacher: samples/s, captured graphs and hit share, peak memory, and the
# final losses and validation mIoU of the two runs side by side (runs.md).
#   OUT=/path/to/results bash tools/captured_step_gpu.sh
# Env: CONFIG (distill-ptv3), FRAMES (32 train sweeps), SCALE (1.0), EPOCHS (16), OCTAVE (4: captured_step's
# steps_per_octave), AMP ("enable_amp=True amp_dtype=bfloat16"), TESTS and BENCH (1: run them, 0: skip), BATCHES
# (the benchmark's scans per step, 1,8), BENCH_LIMIT (its seconds, 170), KERNELS (0; N: the benchmark's N most
# expensive kernels of every step), RUN_LIMIT (seconds per training run, 120), MODES (the training runs, "eager
# captured"), OPTIONS (more train.sh options for both runs, e.g. "model.backbone.drop_path=0.0": drop path draws per
# padded row, so with it on the two runs differ by its draws), PYTHON. spconv comes from .devwheels/spconv-cu126.tar.xz when present.
set -uo pipefail
OUT=${OUT:-bench-captured}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
. "$(dirname "$0")/devsite.sh"
PY=${PYTHON:-python3}
CONFIG=${CONFIG:-distill-ptv3}
WORK=${WORK:-$(mktemp -d)}
AMP=${AMP:-enable_amp=True amp_dtype=bfloat16}

"$PY" tools/make_synthetic.py --profile nuscenes --out "$WORK/data" --train "${FRAMES:-32}" --val 2 --seed 0 \
    --scale "${SCALE:-1.0}" > "$OUT/data.log" 2>&1 &
data=$!
if [ "${TESTS:-1}" = 1 ]; then
    timeout 150 "$PY" -m pytest -q -x --tb=short -p no:cacheprovider tests/engine/test_graph_adam.py \
        tests/engine/test_captured_step.py tests/distill/test_captured_distill_step.py \
        tests/models/test_models_cuda.py > "$OUT/tests.log" 2>&1
    echo "tests: exit $?"; tail -n 3 "$OUT/tests.log"
fi
if [ "${BENCH:-1}" = 1 ]; then
    timeout "${BENCH_LIMIT:-170}" "$PY" tools/benchmark.py --device cuda --no-inference --captured-step \
        --train-batches "${BATCHES:-1,8}" --top-kernels "${KERNELS:-0}" --train-inputs 6 --train-warmup 8 \
        --train-repeats 10 --json "$OUT/bench.json" --markdown "$OUT/bench.md" > "$OUT/bench.log" 2>&1
    echo "benchmark: exit $?"; grep "  train " "$OUT/bench.log"
fi
wait $data || { echo "data generation failed"; tail "$OUT/data.log"; exit 1; }
"$PY" -c "import sys; sys.path.insert(0, 'tools'); from pathlib import Path; from multi_gpu import save_random_teacher;
save_random_teacher(Path('$WORK/teacher.pth'), '$CONFIG')"
for mode in ${MODES:-eager captured}; do
    step="captured_step.enabled=False"
    [ $mode = captured ] && step="captured_step.enabled=True captured_step.steps_per_octave=${OCTAVE:-4}"
    EXP_ROOT="$WORK/exp" timeout "${RUN_LIMIT:-120}" sh scripts/train.sh -p "$PY" -g 1 -d nuscenes -c "$CONFIG" \
        -n "$mode" -- data.train.data_root="$WORK/data" data.val.data_root="$WORK/data" \
        data.test.data_root="$WORK/data" teacher_weight="$WORK/teacher.pth" batch_size=1 batch_size_val=1 \
        epoch="${EPOCHS:-16}" eval_epoch="${EPOCHS:-16}" seed=0 $AMP ${OPTIONS:-} $step > "$OUT/train_$mode.out" 2>&1
    echo "$mode run: exit $?"
    cp "$WORK/exp/nuscenes/$mode/train.log" "$OUT/train_$mode.log" 2>/dev/null
done
"$PY" - "$OUT" <<'PY'
import re, statistics, sys
from pathlib import Path


def last(pattern: str, text: str, default: str = "-") -> str:
    found = re.findall(pattern, text)
    return found[-1] if found else default


def row(mode: str, text: str) -> str:
    times = [float(t) for t in re.findall(r"Batch (\d+\.\d+) \(", text)]
    if not times:
        return f"| {mode} | 0 | | | | | | |"
    steady = times[32:] or times
    peak = max(map(int, re.findall(r"Peak CUDA memory of the epoch: (\d+) MiB", text)), default=None)
    graphs = last(r"captured_step: \d+ steps, (\d+) graphs captured .*?, ([\d.]+) % of steps", text, None)
    loss = last(r"Train result: .*?loss: ([\d.]+)", text)
    miou = last(r"Val result: mIoU/mAcc/allAcc ([\d.]+)", text)
    hits = f"{graphs[0]} / {graphs[1]} %" if graphs else "-"
    return (f"| {mode} | {len(times)} | {len(times) / sum(times):.1f} | {1e3 * statistics.median(steady):.1f} | "
            f"{hits} | {peak or '-'} | {loss} | {miou} |")


out = Path(sys.argv[1])
rows = ["| steps | steps logged | samples/s | median step ms (after 32) | graphs captured / hit share | "
        "peak memory MiB | final train loss | val mIoU |", "|---|---|---|---|---|---|---|---|"]
for mode in ("eager", "captured"):
    log = out / f"train_{mode}.log"
    rows.append(row(mode, log.read_text() if log.is_file() else ""))
(out / "runs.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PY
