# NeuralEmu: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test bench clean-kernel

setup:
	bash deploy/install-deps.sh

demo: setup
	$(PY) -m neuralemu.cli demo

# pytest exit code 5 means "no tests collected": treat it as a failure of the
# suite layout, never as success, but report it clearly.
test: setup
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

bench: setup
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean-kernel: setup
	$(PY) -m neuralemu.cli testbed down --all
