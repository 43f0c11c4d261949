"""benchmarks/performance.py at toy sizes: every row is there and every ratio is a positive number."""

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "performance.py"


def _load():
    spec = importlib.util.spec_from_file_location("perf_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_performance_rows_at_toy_sizes(math500_path):
    perf = _load()
    # The untrained tiny model (no warm start needed), 2 problems per step, one timed step.
    res = perf.main(["--repeats", "1", "--credits", "ccpo", "--rollout-repeats", "1", "--env-episodes", "20",
                     "--verifier-problems", "5", "--data", str(math500_path), "--no-write",
                     "--override", "warm_start.enabled=false", "rollout.problems_per_step=2"])
    rows = {r["metric"]: r for r in res["rows"]}
    for name in ("ccpo_step_over_shared", "rollout_over_raw_generate", "env_episodes_per_s",
                 "env_episodes_per_s_cold_verifier", "verifier_answers_per_s_solutions",
                 "verifier_answers_per_s_rewritten"):
        assert name in rows, name
        v = rows[name]["value"]
        assert isinstance(v, (int, float)) and math.isfinite(v) and v > 0, (name, v)
    assert res["costs"]["same_problems"] and res["costs"]["same_roles"]
    roll = res["rollout"]
    # the raw side decoded the same prompts: as many rows, and greedy gives the policy's tokens
    assert roll["rows"] == {"thinker": 2 * 8, "solver": 2 * 8 + 2 * 4}
    assert roll["raw_rows_matching_policy"]["thinker"] == roll["rows"]["thinker"]
    assert roll["greedy_reproducible"]
