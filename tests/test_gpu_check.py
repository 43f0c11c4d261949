"""scripts/gpu_check.py on the CPU (its --dry-run): where no GPU is lent, the same checks run
here, so the script is known to work before a GPU machine ever runs it: every credit method, tree
rollouts, exact resume, and on two CPU ranks (gloo, ``torch.distributed.run``) fsdp against ddp,
the idle role's offload, a sharded checkpoint resumed bit for bit, and the export loaded back
with transformers."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_dry_run_passes_every_check_on_the_cpu(tmp_path, capsys):
    gc = _load()
    assert gc.main(["--dry-run", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = lines[-1]
    assert summary.startswith("gpu_check: PASS device=cpu") and "dtype=bfloat16" in summary
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["summary"] == summary and report["dry_run"]
    checks = {c["check"]: c for c in report["checks"]}
    from algorithms import credit

    for name in credit.available():
        if name != gc.PARITY and not name.startswith("test_"):
            assert any(c == name or c.startswith(name + " ") for c in checks), name
    single = [c for c in report["checks"] if c["check"] not in {"resume", "export", *gc.DIST_CHECKS}]
    for c in report["checks"]:
        assert c["ok"], c
    for c in single:
        assert c["dtype"] == "bfloat16" and c["device"] == "cpu" and c["updated"] == ["solver_0", "thinker_0"]
        assert c["step_s"] > 0 and c["peak_memory_mib"] is None  # no GPU: no CUDA peak
    assert any(" K=2" in c for c in checks)  # tree rollouts ran
    resume = checks["resume"]
    assert resume["exact"] and resume["metrics_rows_equal"] and resume["max_grad_norm"] > 0

    # the distributed checks ran on two CPU ranks, in this order, and passed
    assert report["distributed"]["nproc"] == 2 and report["distributed"]["world"] == 2
    assert [c["check"] for c in report["checks"] if c["check"] in gc.DIST_CHECKS] == list(gc.DIST_CHECKS)
    fsdp = checks["fsdp_vs_ddp"]
    assert fsdp["sharded"] and fsdp["same_roles_updated"] and fsdp["update_cosine"] >= 0.9
    assert {f["role"] for f in fsdp["first_step"]} == {"thinker_0", "solver_0"}
    assert fsdp["max_abs_update"] > 0  # the weights moved, so agreeing updates are not trivially agreeing
    for run in ("ddp", "fsdp"):  # per rank: step time and (on GPU) peak memory, for the docs
        ranks = fsdp[run]["ranks"]
        assert [r["rank"] for r in ranks] == [0, 1] and all(r["steps"] == 2 and r["step_s"] > 0 for r in ranks)
        assert all("peak_memory_mib" in r for r in ranks)
    assert fsdp["fsdp"]["ranks"][0]["param_dtype"] == "float32"  # fsdp: float32 master shards
    idle = checks["offload_idle"]
    assert idle["roles_alternate"] and [u["role"] for u in idle["updates"]] == ["thinker_0", "solver_0"] * 2
    assert idle["idle_role"] == "thinker_0" and idle["idle_state_mib"] > 0
    sharded = checks["sharded_resume"]
    assert sharded["exact"] and sharded["metrics_rows_equal"] and sharded["max_abs_weight_diff"] == 0.0
    assert sharded["checkpoint_format"] == 3 and sharded["shard_files"] == ["__0_0.distcp", "__1_0.distcp"]
    offload = checks["fsdp_offload"]  # FSDP2's CPU offload wants an accelerator: recorded, not failed
    assert offload["checked"] or offload["note"].startswith("not checked on CPU")
    if importlib.util.find_spec("algorithms.team.export") is not None:
        export = checks["export"]
        assert export["checked"] and export["max_abs_logprob_diff"] <= export["tolerance"]
        for role in ("thinker_0", "solver_0"):
            r = export["roles"][role]
            assert r["safetensors"] and "config.json" in r["files"] and r["tokens_compared"] > 0
    else:
        assert checks["export"]["note"].startswith("skipped: export not available")
    for part in ("fsdp~ddp ok", "offload_idle ok", "sharded-resume exact", "fsdp+offload", "export"):
        assert part in summary, part


def test_the_update_comparison_tells_a_missing_gradient_reduction_from_bfloat16_rounding():
    torch = pytest.importorskip("torch")
    gc = _load()
    g = torch.Generator().manual_seed(0)
    initial = {"r": {"w": torch.randn(4096, generator=g) * 0.05}}
    update = torch.randn(4096, generator=g).sign() * 1e-3  # Adam's first steps: about lr per element
    rows = [{"step": 1, "loss_thinker_0": 1e-5, "grad_norm_thinker_0": 0.5, "advantage_abs_mean_thinker_0": 0.1}]

    def run(delta, grad_norm=0.5):
        return {"rows": [{**rows[0], "grad_norm_thinker_0": grad_norm}],
                "weights": {"r": {"w": initial["r"]["w"] + delta}}}

    rounded = (initial["r"]["w"] + update).bfloat16().float() - initial["r"]["w"]  # ddp: bfloat16 weights
    assert gc.compare_runs(run(rounded), run(update, 0.503), initial, "bfloat16")["ok"]
    local = update.clone()
    local[torch.rand(4096, generator=g) < 0.4] *= -1  # a rank's own gradient: many signs differ
    bad = gc.compare_runs(run(update), run(local, 0.77), initial, "bfloat16")
    assert not bad["ok"] and bad["update_cosine"] < 0.9


def test_a_missing_gpu_is_one_failing_line(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    assert _load().main(["--methods", "shared"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("gpu_check: FAIL") and "cuda" in out[-1]


def test_the_wheel_list_matches_the_installed_versions():
    from importlib import metadata

    for name, version in _load().WHEELS.items():
        assert metadata.version(name) == version, name
