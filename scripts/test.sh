#!/bin/sh
# Test as Pointcept's scripts/test.sh:
#   sh scripts/test.sh [-p PYTHON] -d DATASET -n NAME [-c CONFIG] [-w model_best] [-g GPUS] [-m MACHINES] \
#       [-- KEY=VALUE ...]
# Uses exp/<DATASET>/<NAME>/config.py (or configs/<DATASET>/<CONFIG>.py with -c) and the checkpoint
# exp/<DATASET>/<NAME>/model/<WEIGHT>.pth; writes result/ and test.log there. Python, -g and -m as train.sh.
# Arguments after -- are config overrides, e.g. -- test.single_pass=true, or -- test.submission=true data.test.split=test
# (benchmark submission files in result/submit/, docs/submission.md)
set -e
cd "$(dirname "$0")/.." || exit 1
ROOT_DIR=$(pwd)

. "$ROOT_DIR/scripts/common.sh"
WEIGHT=model_best
parse_flags "p:d:c:n:w:g:m:" "$@"
shift $((OPTIND - 1))
[ "${1:-}" = "--" ] && shift
pick_python
default_num_gpu

EXP_DIR=${EXP_ROOT:-exp}/${DATASET}/${EXP_NAME}
MODEL_DIR=${EXP_DIR}/model
if [ "$CONFIG" = "None" ]; then
  CONFIG_DIR=${EXP_DIR}/config.py
else
  CONFIG_DIR=configs/${DATASET}/${CONFIG}.py
fi
[ -f "$CONFIG_DIR" ] || { echo "Config $CONFIG_DIR does not exist" >&2; exit 1; }
[ -f "$MODEL_DIR/${WEIGHT}.pth" ] || { echo "Checkpoint $MODEL_DIR/${WEIGHT}.pth does not exist" >&2; exit 1; }
resolve_rendezvous

echo "Experiment dir: $ROOT_DIR/$EXP_DIR"
export PYTHONPATH="./${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON_BIN" tools/test.py --config-file "$CONFIG_DIR" --num-gpus "$NUM_GPU" \
  --num-machines "$NUM_MACHINE" --machine-rank "$MACHINE_RANK" --dist-url "$DIST_URL" \
  --options save_path="$EXP_DIR" weight="$MODEL_DIR/${WEIGHT}.pth" "$@"
