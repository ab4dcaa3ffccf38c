# The two commands: `make data` (the main job so far: build the default data set)
# and `make test` (the test suite). Both run the set-up first (system packages,
# .venv), so they work on a fresh machine.
PY := .venv/bin/python
JOBS ?= 2

.PHONY: setup data test lint bench

setup:
	bash scripts/setup.sh

data: setup
	$(PY) build_dataset.py --jobs $(JOBS)

test: setup
	$(PY) -m pytest -q tests

lint: setup
	.venv/bin/ruff check .

bench: setup
	$(PY) bench/build_data.py
