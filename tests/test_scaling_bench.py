"""benchmarks/scaling.py at toy sizes: the tiny model on 1 process and on 2 FSDP ranks (one timed
step, a short generation comparison): every row has numbers, and the sharded rank holds half."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scaling.py"


def _load():
    spec = importlib.util.spec_from_file_location("scaling_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_scaling_rows_at_toy_sizes():
    bench = _load()
    res = bench.main(["--models", "tiny", "--layouts", "1 process", "2-rank FSDP", "--steps", "1", "--gen-prompts", "2",
                      "--gen-tokens", "3", "--gen-repeats", "1", "--no-write"])
    one, fsdp = res["jobs"]
    assert one["ok"] and fsdp["ok"], (one["error"], fsdp["error"])
    assert [len(j["ranks"]) for j in res["jobs"]] == [1, 2]
    whole = one["ranks"][0]["state"]
    for rank in fsdp["ranks"]:
        assert rank["sharding"] and rank["peak_rss_mib"] > 0 and rank["step_s"][0] > 0
        for part in ("params", "optimizer", "peak_grads"):
            assert 0.45 <= rank["state"][part] / whole[part] <= 0.6, (part, rank["state"], whole)
        gen = rank["generation"]
        for mode in ("gathered copy", "layer by layer"):
            assert gen[mode]["lengths"] == [3] and gen[mode]["tokens_per_s"] > 0  # EOS suppressed: exactly N tokens
    assert [r["generation on 2 FSDP ranks"] for r in res["generation_rows"]] == ["gathered copy", "layer by layer"]
    assert res["rows"][0]["step s (x 1 process)"].endswith("(1.00x)")
