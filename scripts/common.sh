# Sourced by train.sh and test.sh (from the repository root): the Python to run and the default -g.

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
