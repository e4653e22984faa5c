#!/usr/bin/env bash
# The KD benchmark's GPU size on a CUDA machine whose commands are time-limited (e.g. 600 s a call): run the same
# command again as soon as one ends. Finished runs are reused and a killed run goes on from its last checkpoint
# (tools/kd_bench.py), so each call continues the table until it is complete.
#   OUT=/path/to/results bash tools/kd_bench_gpu.sh DATA_SEED [SEEDS] [ROWS]
# SEEDS: student seeds per row (default 5); ROWS: default "student alone,distill". LIMIT: seconds kd_bench may run
# (default 570); SIZE: the kd_bench size (default gpu); RUNS: where the runs live (default exp/kd_bench), in
# <RUNS>/<SIZE><DATA_SEED>.
# Writes under OUT: kd_bench.log (appended), teacher_train_tail.log, results.tgz (every run's kd_bench_result.json)
# and, once every run is done, kd_bench.json. spconv comes from .devwheels/spconv-cu126.tar.xz when present.
set -uo pipefail
SEED=${1:?usage: bash tools/kd_bench_gpu.sh DATA_SEED [SEEDS] [ROWS]}
SEEDS=${2:-5}
ROWS=${3:-student alone,distill}
SIZE=${SIZE:-gpu}
OUT=${OUT:-bench-kd}
LIMIT=${LIMIT:-570}
DIR="${RUNS:-exp/kd_bench}/$SIZE$SEED"
mkdir -p "$OUT"
. "$(dirname "$0")/devsite.sh"
PY=${PYTHON:-python3}

timeout "$LIMIT" "$PY" tools/kd_bench.py --size "$SIZE" --data-seed "$SEED" --seeds "$SEEDS" --rows "$ROWS" \
    --out "$DIR" >> "$OUT/kd_bench.log" 2>&1
status=$?
tail -n 40 "$DIR/teacher/train.log" > "$OUT/teacher_train_tail.log" 2>/dev/null
[ -f "$DIR/kd_bench.json" ] && cp "$DIR/kd_bench.json" "$OUT/"
find "$DIR" -name kd_bench_result.json -print0 | tar -czf "$OUT/results.tgz" --null -T -
tail -n 20 "$OUT/kd_bench.log"
if [ "$status" -eq 124 ]; then
    echo "kd_bench_gpu: stopped after $LIMIT s; run the same command again to continue"
fi
exit "$status"
