#!/usr/bin/env bash
# Issue #22 item 7's GPU measurement in one call: the paper student (random weights, seed 0) exported by
# tools/export.py on CUDA, as an AOTInductor package and as a torch.export program, each checked against the eager
# model and timed beside CapturedSegmentor at the same capacity (export.json, export_<format>.log).
#   OUT=/path/to/results bash tools/export_gpu.sh
# Env: CONFIG (configs/nuscenes/semseg-pt-v3m1-student.py), CAPACITY (16384), RUNS (50 timed forwards),
# FORMATS ("aoti program"), DEVICE (cuda; cpu for a smoke run), LIMIT (seconds per export, 280), PYTHON. spconv comes from
# .devwheels/spconv-cu126.tar.xz when present. A failed export leaves its exit status, the last lines of its
# log with a Python stack (faulthandler), the kernel's last messages and the host's memory in failure_<format>.txt;
# an artifact it wrote before dying is then checked and timed in a fresh process (tools/export.py --verify,
# verify_<format>.log).
set -uo pipefail
OUT=${OUT:-bench-export}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
. "$(dirname "$0")/devsite.sh"
export PYTHONFAULTHANDLER=1
PY=${PYTHON:-python3}
CONFIG=${CONFIG:-configs/nuscenes/semseg-pt-v3m1-student.py}
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"

"$PY" - "$CONFIG" "$WORK/student.pth" <<'PY'
import sys
import torch
import pointcept_distill.models  # noqa: F401
from pointcept_distill.models import build_model
from pointcept_distill.utils.config import Config
torch.manual_seed(0)
model = build_model(Config.fromfile(sys.argv[1]).model)
torch.save({"epoch": 0, "state_dict": model.state_dict()}, sys.argv[2])
PY
[ -f "$WORK/student.pth" ] || { echo "could not write the model's weights"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/nvidia-smi.csv" 2>&1
run_export() {    # format, more tools/export.py options
    timeout "${LIMIT:-280}" "$PY" tools/export.py --config "$CONFIG" --weight "$WORK/student.pth" \
        --capacity "${CAPACITY:-16384}" --format "$1" --device "${DEVICE:-cuda}" --latency "${RUNS:-50}" \
        --out "$WORK/export_$1" "${@:2}"
}
for fmt in ${FORMATS:-aoti program}; do
    run_export "$fmt" > "$OUT/export_$fmt.log" 2>&1
    status=$?
    echo "export $fmt: exit $status"
    if [ $status = 0 ]; then
        cp "$WORK/export_$fmt/export.json" "$OUT/export_$fmt.json"
        grep "latency\|relative error" "$OUT/export_$fmt.log"
    else
        { echo "exit status $status"; tail -n 60 "$OUT/export_$fmt.log"; echo "--- dmesg"; dmesg 2>&1 | tail -n 20
          echo "--- free -m"; free -m; } > "$OUT/failure_$fmt.txt"
        tail -n 15 "$OUT/export_$fmt.log"
        if ls "$WORK/export_$fmt"/*.pt2 > /dev/null 2>&1; then     # written, then the process died (load, check)
            run_export "$fmt" --verify > "$OUT/verify_$fmt.log" 2>&1
            echo "verify $fmt in a fresh process: exit $?"
            tail -n 4 "$OUT/verify_$fmt.log"
            cp "$WORK/export_$fmt/export.json" "$OUT/export_$fmt.json" 2>/dev/null
        fi
    fi
done
