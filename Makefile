# The two quick-start commands on a fresh Linux machine:
#   make run    set up everything, start the app with the bundled model
#   make test   set up everything, run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Pinned so pip takes the known wheel (the CPU build where one is cached, as in
# CI) instead of resolving a newer multi-GB CUDA build on its own.
TORCH_SPEC ?= torch==2.13.0

.PHONY: run test sysdeps clean

run: $(VENV)/.installed $(VENV)/.sysdeps
	$(BIN)/python main.py

test: $(VENV)/.installed $(VENV)/.sysdeps
	$(BIN)/python -m pytest

sysdeps:
	bash .ci/sysdeps.sh

$(VENV)/.installed: pyproject.toml
	bash .ci/sysdeps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

# Re-checked whenever .ci/sysdeps.sh changes (e.g. new libraries for Qt's xcb
# window), also in a venv set up before the change.
$(VENV)/.sysdeps: .ci/sysdeps.sh $(VENV)/.installed
	bash .ci/sysdeps.sh
	touch $@

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
