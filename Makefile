# The README's two commands:
#   make demo   create .venv, install smacrl, run the main job on the embedded default
#   make test   create or reuse .venv, install the test extras, run ruff and pytest
#
# torch is installed first and only if the venv has none, so an existing CUDA or CPU build is
# kept. TORCH_SPEC picks the build: the default is the CPU wheel this project's machines carry.

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
# the suite's slow tests are real subprocesses, sweeps and signals, each on one thread: one worker per core
PYTEST_ARGS ?= -n auto
BIN := $(VENV)/bin

.PHONY: install install-test demo test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH_SPEC)"
	@touch $@

# the demo's task, the point maze, is gymnasium-robotics'
install: $(VENV)/.torch
	$(BIN)/pip install -q -e ".[robotics]"

install-test: $(VENV)/.torch
	$(BIN)/pip install -q -e ".[test]"

demo: install
	$(BIN)/smacrl demo --out runs/demo

lint: install-test
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .

# pytest's own exit status is kept in $(VENV)/pytest-rc for .ci/run (5 = no tests collected).
test: lint
	@rm -f $(VENV)/pytest-rc
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; echo $$rc > $(VENV)/pytest-rc; exit $$rc

clean:
	rm -rf $(VENV) runs build *.egg-info
