# Two commands (see README): `make demo` runs the main job, `make test` the whole test suite.
# Both set up the virtualenv at .venv first (idempotent; see scripts/bootstrap.sh).
PY := .venv/bin/python

.PHONY: setup demo test bench clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(PY) -m algorithms.cli demo

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/env_throughput.py

clean:
	rm -rf .venv .pytest_cache .hypothesis build *.egg-info
