# The README's two commands (demo, test), lint, and bench (one benchmark script by name).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of PyTorch (training and the test suite only; inference needs no torch).
TORCH  ?= torch==2.13.0

.PHONY: demo test test-quick lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Editable, as `make test` installs it: one never replaces the other, and nothing is built in
# the tree (a plain `pip install .` leaves a build/ folder here).
demo: $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[demo]'
	$(BIN)/tcnn demo $(if $(IMAGE),"$(IMAGE)")

test: $(BIN)/python
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pytest

# Day-to-day: the tests marked slow left out (under a minute here); `make test` runs them all.
test-quick: $(BIN)/python
	$(BIN)/python -m pytest -m 'not slow'

# One benchmark by name (benchmarks/README.md): make bench NAME=bench_5pt ARGS='--models vanilla5'.
# Without NAME it lists them, with what each answers and how long it takes.
bench: $(BIN)/python
	$(BIN)/python -m benchmarks $(NAME) $(ARGS)

lint: $(BIN)/python
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build src/*.egg-info tcnn-demo tcnn-out
