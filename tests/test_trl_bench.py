"""benchmarks/trl_step.py at toy sizes: thinksolve's single-role step against a real TRL GRPOTrainer.

The tiny model, 2 prompts x 4 completions x 6 tokens, micro-batches of 4, one warm-up and one
timed step per side (a few seconds). The JSON it writes must hold both sides' records and phases,
and both sides must have generated exactly the same number of tokens."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("trl")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "trl_step.py"
ARGS = ["--model", "tiny", "--prompts", "2", "--generations", "4", "--tokens", "6", "--micro-batch", "4",
        "--repeats", "1", "--warmup", "1"]


def _load():
    spec = importlib.util.spec_from_file_location("trl_step_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_trl_step_at_toy_sizes(tmp_path):
    bench = _load()
    res = bench.main([*ARGS, "--out-dir", str(tmp_path)])
    record = json.loads((tmp_path / "trl_step.json").read_text())
    assert (tmp_path / "trl_step.md").read_text().startswith("# trl_step")
    assert record["name"] == "trl_step" and "trl_step.py" in record["command"]
    assert record["versions"]["trl"] and record["versions"]["torch"]
    assert record["trl_error"] is None and record["same_initial_weights"]

    expected = 2 * 4 * 6
    assert record["expected_tokens_per_step"] == expected
    for side in ("thinksolve", "trl"):
        recs = record["records"][side]
        assert len(recs) == 2  # warm-up + timed
        for r in recs:
            assert r["completions"] == 8
            assert r["tokens"] == expected, (side, r["tokens"])
            assert r["step_s"] > 0
            assert set(bench.PHASES) <= set(r["phases"])
            assert r["phases"]["generate"] > 0 and r["phases"]["forward"] > 0 and r["phases"]["backward"] > 0
            assert r["phases"]["optimizer"] > 0
            # the phases are parts of the step
            assert sum(r["phases"].values()) == pytest.approx(r["step_s"], rel=1e-6, abs=1e-6)
        assert record["sides"][side]["tokens_per_step"] == [expected]
    # the tokens each side generated, step by step, are the same count
    assert [r["tokens"] for r in record["records"]["thinksolve"]] == [r["tokens"] for r in record["records"]["trl"]]
    assert record["same_tokens"] is True
    # and from the same prompts: TRL's prompt token ids equal ours, row by row, at every step
    assert record["same_prompt_ids"] is True
    assert all(r["prompt_tokens"] > 0 for r in record["records"]["trl"])
    # one forward/backward per micro-batch of 4 on our side, as TRL's gradient accumulation does
    assert record["micro_batches_per_step"] == [2]
    assert record["records"]["trl"][0]["phases"]["old_logps"] == 0  # TRL skipped it (num_iterations=1)
    assert math.isfinite(record["ratio"]) and record["ratio"] > 0
    assert [row["side"] for row in record["rows"]] == ["thinksolve", "TRL GRPOTrainer"]
    assert res["ratio"] == record["ratio"]
    assert record["adamw_step_s"]["fused"] > 0 and record["adamw_step_s"]["trainer_default"] > 0
