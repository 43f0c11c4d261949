# Two commands (see README): `make demo` runs the main job, `make test` the whole test suite.
# Both set up the virtualenv at .venv first (idempotent; see scripts/bootstrap.sh).
PY := .venv/bin/python

.PHONY: setup demo test test-main test-vllm bench clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(PY) -m algorithms.cli demo

# The whole suite: the main virtualenv, then the vLLM tests in their own virtualenv (.venv-vllm,
# CPU vLLM; built by scripts/vllm_venv.sh). THINKSOLVE_SKIP_VLLM=1 leaves the vLLM part out.
test: test-main
	@if [ "$${THINKSOLVE_SKIP_VLLM:-0}" = "1" ]; then echo "[test] THINKSOLVE_SKIP_VLLM=1: vLLM tests skipped"; else $(MAKE) --no-print-directory test-vllm; fi

test-main: setup
	$(PY) -m pytest -q

test-vllm:
	@bash scripts/vllm_venv.sh
	VLLM_ENABLE_V1_MULTIPROCESSING=0 .venv-vllm/bin/python -m pytest -q -m vllm tests/test_vllm_policy.py

bench: setup
	$(PY) benchmarks/env_throughput.py

clean:
	rm -rf .venv .venv-vllm .pytest_cache .hypothesis build *.egg-info
