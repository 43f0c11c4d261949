# Two commands (see README): `make demo` runs the main job, `make test` the whole test suite.
# Both set up the virtualenv at .venv first (idempotent; see scripts/bootstrap.sh).
PY := .venv/bin/python

.PHONY: setup demo test test-main lint test-vllm bench bench-vllm bench-credit bench-fidelity clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(PY) -m algorithms.cli demo

# The whole suite: the main virtualenv, then the vLLM tests in their own virtualenv (.venv-vllm,
# CPU vLLM; built by scripts/vllm_venv.sh). THINKSOLVE_SKIP_VLLM=1 leaves the vLLM part out.
test: test-main
	@if [ "$${THINKSOLVE_SKIP_VLLM:-0}" = "1" ]; then echo "[test] THINKSOLVE_SKIP_VLLM=1: vLLM tests skipped"; else $(MAKE) --no-print-directory test-vllm; fi

# Two pytest workers (pytest-xdist), a test file per worker at a time, so module fixtures are built once.
test-main: setup lint
	$(PY) -m pytest -q -n 2 --dist loadfile

# ruff (rules in pyproject.toml) over the whole checkout; zero findings, or the test target fails.
lint: setup
	$(PY) -m ruff check .

test-vllm:
	@bash scripts/vllm_venv.sh
	VLLM_ENABLE_V1_MULTIPROCESSING=0 .venv-vllm/bin/python -m pytest -q -m vllm tests/test_vllm_policy.py tests/test_vllm_training.py tests/test_vllm_eval.py tests/test_vllm_bench.py

# The performance table (about 3 min on 2 cores): benchmarks/results/performance.{json,md}.
bench: setup
	$(PY) benchmarks/performance.py --smollm2

# The performance table's vLLM row (smollm2-arith step, vLLM vs transformers; in .venv-vllm),
# merged into benchmarks/results/performance.{json,md}.
bench-vllm:
	@bash scripts/vllm_venv.sh
	.venv-vllm/bin/python benchmarks/performance.py --only vllm-step --vllm-repeats 5

# The credit comparison of docs/benchmarks.md, exactly as its tables were made (about 80 min on 2 idle
# cores; finished runs are stored under runs/ and reused, so it can be interrupted and restarted).
bench-credit: setup
	$(PY) benchmarks/credit_comparison.py --steps 36 --eval-every 12 --eval-samples 8 --results benchmarks/results

# The credit-fidelity lab of docs/fidelity.md: every method x 4 estimators x 5 tabular games against exact
# ground truth (a few minutes on 2 cores): benchmarks/results/credit_fidelity.{json,md} and _plot.png.
bench-fidelity: setup
	$(PY) benchmarks/credit_fidelity.py

clean:
	rm -rf .venv .venv-vllm .pytest_cache .hypothesis build *.egg-info
