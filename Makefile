# make test: create .venv, install the package with its test extras (CPU torch), run the whole suite.
# TORCH_INDEX: pip options for the torch install only, passed unquoted, e.g.
#   make test TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"   (empty: pip's own config)
# make demo: generate simulator data, train a teacher, distill a student, test all, print a table.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: venv test demo clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test,viz]"
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest -q -n 2 --durations=15

demo: venv
	$(PY) tools/demo.py

clean:
	rm -rf $(VENV) exp/demo
