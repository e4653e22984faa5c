# Sourced by train.sh and test.sh (from the repository root): their flags, the Python to run, the default -g
# and the machine rank and rendezvous of multi-machine runs.

# Pointcept's flags into PYTHON_BIN (-p), DATASET (-d), CONFIG (-c), EXP_NAME (-n), WEIGHT (-w), RESUME (-r),
# NUM_GPU (-g) and NUM_MACHINE (-m); $1 is the getopts spec of the flags the script takes, the rest its
# arguments. The caller sets WEIGHT's default first and then drops the parsed flags: shift $((OPTIND - 1)).
parse_flags() {
  spec=$1
  shift
  PYTHON_BIN=""
  DATASET=scannet
  CONFIG="None"
  EXP_NAME=debug
  RESUME=false
  NUM_GPU=None
  NUM_MACHINE=1
  while getopts "$spec" opt; do
    case $opt in
      p) PYTHON_BIN=$OPTARG ;;
      d) DATASET=$OPTARG ;;
      c) CONFIG=$OPTARG ;;
      n) EXP_NAME=$OPTARG ;;
      w) WEIGHT=$OPTARG ;;
      r) RESUME=$OPTARG ;;
      g) NUM_GPU=$OPTARG ;;
      m) NUM_MACHINE=$OPTARG ;;
      \?) echo "Invalid option: -$OPTARG" >&2; exit 2 ;;
    esac
  done
}

# PYTHON_BIN: -p, else $PYTHON, else the repository's .venv/bin/python if present, else `python`.
pick_python() {
  if [ -z "$PYTHON_BIN" ]; then
    if [ -n "${PYTHON:-}" ]; then PYTHON_BIN=$PYTHON
    elif [ -x "$ROOT_DIR/.venv/bin/python" ]; then PYTHON_BIN="$ROOT_DIR/.venv/bin/python"
    else PYTHON_BIN=python
    fi
  fi
}

# NUM_GPU: -g, else the number of CUDA GPUs, or 1 process without CUDA.
default_num_gpu() {
  if [ "$NUM_GPU" = "None" ]; then
    NUM_GPU=$("$PYTHON_BIN" -c 'import torch; print(torch.cuda.device_count())')
    [ "$NUM_GPU" -gt 0 ] || NUM_GPU=1
  fi
}

# MACHINE_RANK and DIST_URL: from SLURM when run under it (rank $SLURM_NODEID, rendezvous on the first host of
# $SLURM_NODELIST, a port derived from the experiment), else $MACHINE_RANK (0) and $DIST_URL ("auto").
resolve_rendezvous() {
  MACHINE_RANK=${SLURM_NODEID:-${MACHINE_RANK:-0}}
  DIST_URL=${DIST_URL:-auto}
  if [ -n "${SLURM_NODELIST:-}" ]; then
    MASTER_HOST=$(scontrol show hostnames "$SLURM_NODELIST" | head -n 1)
    MASTER_ADDR=$(getent hosts "$MASTER_HOST" | awk '{print $1; exit}')
    HASH_PORT=$(printf '%s' "${DATASET}/${EXP_NAME}" | md5sum | cut -c1-4)
    DIST_URL=tcp://${MASTER_ADDR}:$((10000 + 0x${HASH_PORT} % 20000))
  fi
}
