#!/bin/sh
# Train as Pointcept's scripts/train.sh:
#   sh scripts/train.sh [-p PYTHON] -d DATASET -c CONFIG -n NAME [-w WEIGHT] [-r true] [-g GPUS] [-m MACHINES] \
#       [-- KEY=VALUE ...]
# Layout: exp/<DATASET>/<NAME>/{config.py,train.log,model/,code/,events.out.tfevents.*} (exp/ is $EXP_ROOT if set).
# Python: -p, else $PYTHON, else the repository's .venv/bin/python if present, else `python` from PATH.
# -g: processes per machine (default: the number of CUDA GPUs, or 1 without CUDA; on a CPU-only machine
#     -g N runs N gloo processes). -m: machines (machine rank from $SLURM_NODEID, rendezvous on the first
#     host of $SLURM_NODELIST; elsewhere set DIST_URL=tcp://<rank-0 host>:<port> and MACHINE_RANK).
# -r true: resume exp/<DATASET>/<NAME> from model/model_last.pth with its saved config.py.
# Arguments after -- are config overrides, passed on as --options KEY=VALUE ...
# An experiment that already holds a run (model/model_last.pth, model/model_best.pth or a non-empty train.log) is
# refused before anything is written, unless -r true or -- overwrite=True (a new run there, replacing the old one).
set -e
cd "$(dirname "$0")/.." || exit 1
ROOT_DIR=$(pwd)

. "$ROOT_DIR/scripts/common.sh"
WEIGHT="None"
parse_flags "p:d:c:n:w:g:m:r:" "$@"
shift $((OPTIND - 1))
[ "${1:-}" = "--" ] && shift

# true when the config overrides ask for overwrite=True (as tools/train.py parses it: true, True, 1)
wants_overwrite() {
  for arg in "$@"; do
    case $arg in overwrite=[Tt]rue|overwrite=TRUE|overwrite=1) return 0 ;; esac
  done
  return 1
}

pick_python
default_num_gpu

EXP_DIR=${EXP_ROOT:-exp}/${DATASET}/${EXP_NAME}
MODEL_DIR=${EXP_DIR}/model
CODE_DIR=${EXP_DIR}/code
CONFIG_DIR=configs/${DATASET}/${CONFIG}.py
resolve_rendezvous

echo "Experiment dir: $ROOT_DIR/$EXP_DIR"
echo "Python: $PYTHON_BIN, processes per machine: $NUM_GPU, machines: $NUM_MACHINE, rank: $MACHINE_RANK"
if [ "$RESUME" = "true" ] && [ -d "$EXP_DIR" ]; then
  CONFIG_DIR=${EXP_DIR}/config.py
  WEIGHT=${MODEL_DIR}/model_last.pth
  [ -f "$WEIGHT" ] || { echo "Cannot resume: $WEIGHT does not exist" >&2; exit 1; }
else
  [ "$RESUME" = "true" ] && echo "No experiment at $EXP_DIR to resume: starting a new run"
  RESUME=false
  [ -f "$CONFIG_DIR" ] || { echo "Config $CONFIG_DIR does not exist" >&2; exit 1; }
  if ! wants_overwrite "$@" && { [ -f "$MODEL_DIR/model_last.pth" ] || [ -f "$MODEL_DIR/model_best.pth" ] ||
                                 [ -s "$EXP_DIR/train.log" ]; }; then
    echo "Experiment $EXP_DIR already holds a run (model/model_last.pth, model/model_best.pth or train.log):" \
         "not overwriting it. Resume it with -r true, choose another name with -n, or pass -- overwrite=True" \
         "to start a new run there (its log, checkpoints and code snapshot are replaced)." >&2
    exit 1
  fi
  mkdir -p "$MODEL_DIR" "$CODE_DIR"
  # code snapshot (as Pointcept) plus the git commit and uncommitted changes it was taken from
  rm -rf "${CODE_DIR:?}"/*
  cp -r scripts tools pointcept_distill "$CODE_DIR"
  find "$CODE_DIR" -name __pycache__ -prune -exec rm -rf {} +
  if git rev-parse HEAD >/dev/null 2>&1; then
    git rev-parse HEAD > "$CODE_DIR/git_commit.txt"
    git status --porcelain >> "$CODE_DIR/git_commit.txt"
    git diff HEAD > "$CODE_DIR/git_diff.patch" || true
  fi
fi

ulimit -n 65536 2>/dev/null || true
case $CODE_DIR in /*) SNAPSHOT=$CODE_DIR ;; *) SNAPSHOT=./$CODE_DIR ;; esac
export PYTHONPATH="$SNAPSHOT${PYTHONPATH:+:$PYTHONPATH}"
echo "Running code in: $CODE_DIR"
if [ "$WEIGHT" = "None" ]; then
  exec "$PYTHON_BIN" "$CODE_DIR/tools/train.py" --config-file "$CONFIG_DIR" --num-gpus "$NUM_GPU" \
    --num-machines "$NUM_MACHINE" --machine-rank "$MACHINE_RANK" --dist-url "$DIST_URL" \
    --options save_path="$EXP_DIR" "$@"
else
  exec "$PYTHON_BIN" "$CODE_DIR/tools/train.py" --config-file "$CONFIG_DIR" --num-gpus "$NUM_GPU" \
    --num-machines "$NUM_MACHINE" --machine-rank "$MACHINE_RANK" --dist-url "$DIST_URL" \
    --options save_path="$EXP_DIR" resume="$RESUME" weight="$WEIGHT" "$@"
fi
