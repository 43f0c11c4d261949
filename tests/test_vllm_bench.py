"""benchmarks/performance.py's vLLM step row at toy sizes (runs in the vLLM virtualenv)."""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

import pytest

from agents.vllm_policy import VLLM_MISSING, vllm_available

pytestmark = [pytest.mark.vllm, pytest.mark.skipif(not vllm_available(), reason=VLLM_MISSING)]

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "performance.py"


def test_vllm_step_row_alone_at_toy_sizes():
    spec = importlib.util.spec_from_file_location("perf_bench_vllm", SCRIPT)
    perf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(perf)
    res = perf.main(["--only", "vllm-step", "--vllm-preset", "tiny-arith", "--vllm-repeats", "1", "--no-write",
                     "--vllm-override", "warm_start.enabled=false", "rollout.problems_per_step=2",
                     "model.sharing=shared"])
    (row,) = res["rows"]
    assert row["metric"] == "vllm_step_speedup_smollm2" and row["target"] == ">= 1.4"
    assert isinstance(row["value"], float) and math.isfinite(row["value"]) and row["value"] > 0
    r = res["vllm_step"]
    assert r["same_problems"] and r["same_roles"]
    for side in ("transformers", "vllm"):
        assert len(r[side]["step_s"]) == 1 and r[side]["median_step_s"] > 0
        assert r[side]["mean_tokens"]["solver"] > 0
    assert r["vllm_prefix_cache"]["prompt_tokens"] > 0
    _merge_keeps_the_other_rows(perf, r)


def _merge_keeps_the_other_rows(perf, r):
    import json
    import shutil
    import sys
    import tempfile

    results = sys.modules["_results"]
    saved = results.RESULTS
    with tempfile.TemporaryDirectory() as tmp:
        results.RESULTS = Path(tmp)
        try:
            shutil.copy(saved / "performance.json", Path(tmp) / "performance.json")
            before = json.loads((Path(tmp) / "performance.json").read_text())
            others = [x["metric"] for x in before["rows"] if x["metric"] != perf.VLLM_METRIC]
            r["command"] = "test"
            for _ in range(2):  # a second merge replaces the row, it does not add one
                perf.merge_vllm_step(r)
            after = json.loads((Path(tmp) / "performance.json").read_text())
        finally:
            results.RESULTS = saved
    assert [x["metric"] for x in after["rows"]] == others + [perf.VLLM_METRIC]
    assert after["command"] == before["command"] and after["vllm_step"]["speedup"] == r["speedup"]
    assert after["notes"].count("vLLM step:") == 1 and after["notes"].startswith(before["notes"].split("\n\n")[0])
