"""scripts/gpu_check.py on the CPU (its --dry-run): where no GPU is lent, the same checks run
here, so the script is known to work before a GPU machine ever runs it."""

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
    for c in report["checks"]:
        assert c["ok"], c
        if c["check"] != "resume":
            assert c["dtype"] == "bfloat16" and c["device"] == "cpu" and c["updated"] == ["solver_0", "thinker_0"]
    assert any(" K=2" in c for c in checks)  # tree rollouts ran
    resume = checks["resume"]
    assert resume["exact"] and resume["metrics_rows_equal"] and resume["max_grad_norm"] > 0


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
