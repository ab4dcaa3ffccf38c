# The two commands: `make demo` (the main job: build demo data, train, refine,
# evaluate both ways, identify pieces, write reports/demo) and `make test` (the
# test suite). Every target runs the set-up first (system packages, .venv), so
# they work on a fresh machine. DEVICE=cuda0 runs the demo on a GPU.
PY := .venv/bin/python
JOBS ?= 2
DEVICE ?= cpu

.PHONY: setup demo demo-quick data test lint bench

setup:
	bash scripts/setup.sh

demo: setup
	$(PY) run_demo.py --device $(DEVICE) --jobs $(JOBS)

demo-quick: setup
	$(PY) run_demo.py --quick --device $(DEVICE) --jobs $(JOBS)

data: setup
	$(PY) build_dataset.py --jobs $(JOBS)

test: setup
	$(PY) -m pytest -q tests

lint: setup
	.venv/bin/ruff check .

bench: setup
	$(PY) bench/build_data.py
