# Two commands (see README): `make demo` runs the main job, `make test` the whole test suite.
# Both set up the virtualenv at .venv first (idempotent; see scripts/bootstrap.sh).
PY := .venv/bin/python

.PHONY: setup demo test test-main test-vllm bench bench-vllm bench-credit bench-fidelity clean

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
	VLLM_ENABLE_V1_MULTIPROCESSING=0 .venv-vllm/bin/python -m pytest -q -m vllm tests/test_vllm_policy.py tests/test_vllm_training.py tests/test_vllm_eval.py tests/test_vllm_bench.py

# The performance table (about 3 min on 2 cores): benchmarks/results/performance.{json,md}.
bench: setup
	$(PY) benchmarks/performance.py --smollm2

# The performance table's vLLM row (smollm2-arith step, vLLM vs transformers; in .venv-vllm),
# merged into benchmarks/results/performance.{json,md}.
bench-vllm:
	@bash scripts/vllm_venv.sh
	.venv-vllm/bin/python benchmarks/performance.py --only vllm-step

# The credit comparison of the README, exactly as its tables were made (hours on 2 cores;
# finished runs are stored under runs/ and reused, so it can be interrupted and restarted).
bench-credit: setup
	$(PY) benchmarks/credit_comparison.py --plugin examples/event_both.py --methods shared ccpo-event ccpo-margin ccpo-normalized sepo difference shapley event_both --optimizers gspo reinforce++ --steps 100 --eval-every 25
	$(PY) benchmarks/credit_comparison.py --plugin examples/event_both.py --methods shared ccpo-event ccpo-margin ccpo-normalized sepo difference shapley event_both --optimizers grpo --steps 100 --eval-every 25 --name credit_comparison_grpo
	$(PY) benchmarks/credit_comparison.py --preset smollm2-arith --methods shared ccpo-event --optimizers gspo --seeds 0 1 2 --steps 20 --eval-every 10 --eval-data arith:n=100,difficulty=1,split=test --name credit_comparison_smollm2

# The credit-fidelity lab of the README: every method x 4 estimators x 5 tabular games against exact
# ground truth (a few minutes on 2 cores): benchmarks/results/credit_fidelity.{json,md} and _plot.png.
bench-fidelity: setup
	$(PY) benchmarks/credit_fidelity.py

clean:
	rm -rf .venv .venv-vllm .pytest_cache .hypothesis build *.egg-info
