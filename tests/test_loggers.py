"""Loggers the way TRL users know them: ``report_to`` (tensorboard, wandb, none), the deprecated
``tensorboard`` flag as its alias, and one line naming the extra when a logger is missing.

TensorBoard and Weights & Biases are optional extras; the tests that need one skip (saying which
extra) where it is not installed. Weights & Biases runs offline here (``WANDB_MODE=offline``):
nothing reaches the network. A missing package is made missing for real in-process
(``sys.modules[name] = None`` makes both ``find_spec`` and ``import`` fail as for an absent package)."""

import importlib.util
import json
import sys

import pytest

from algorithms.config import ConfigError, TrainerConfig, apply_overrides, preset
from algorithms.runs import MetricsLogger
from algorithms.train import Trainer


def tiny(out, *extra):
    return apply_overrides(preset("tiny-arith"), [
        "warm_start.enabled=false", "train_data=arith:n=30,difficulty=1", "rollout.problems_per_step=2",
        "rollout.group_size=2", "rollout.solo_samples=1", "rollout.thinker_max_new_tokens=5",
        "rollout.solver_max_new_tokens=5", "schedule.period=1", "save_every=100", "steps=2",
        "eval_data=arith:n=4,difficulty=1,split=test", "eval_samples=1", f"out={out}", *extra])  # (a small last evaluation)


def needs(module, extra):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (pip install -e '.[{extra}]')")


def _rows(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_report_to_names_loggers_and_the_tensorboard_flag_is_its_alias():
    assert TrainerConfig().loggers() == (["tensorboard"], False)  # the default: the old flag, a note when missing
    assert TrainerConfig(tensorboard=False).loggers() == ([], False)
    assert TrainerConfig(report_to=["wandb"]).loggers() == (["wandb"], True)  # report_to wins over the flag
    assert TrainerConfig(tensorboard=False, report_to="tensorboard").loggers() == (["tensorboard"], True)
    assert TrainerConfig(report_to=["none"]).loggers() == ([], True)
    cfg = apply_overrides(TrainerConfig(), ["report_to=tensorboard,wandb"])
    assert cfg.report_to == ["tensorboard", "wandb"] and cfg.loggers() == (["tensorboard", "wandb"], True)
    assert apply_overrides(TrainerConfig(), ["report_to=none"]).loggers() == ([], True)
    for bad in (["mlflow"], ["none", "wandb"], [1]):
        with pytest.raises(ConfigError, match=r"report_to=.* is invalid: allowed a list of tensorboard\|wandb\|none"):
            TrainerConfig(report_to=bad).validate()


@pytest.mark.parametrize("name", ["wandb", "tensorboard"])
def test_a_missing_logger_is_one_line_naming_the_extra(tmp_path, monkeypatch, name):
    monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    with pytest.raises(ConfigError) as e:
        Trainer(tiny(tmp_path / "run", f"report_to={name}"), log=None)
    msg = str(e.value)
    assert "\n" not in msg and f"pip install 'thinksolve[{name}]'" in msg and f"report_to names {name!r}" in msg
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_the_deprecated_flag_only_notes_a_missing_tensorboard(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    lines = []
    with Trainer(tiny(tmp_path, "steps=1", "tensorboard=true"), log=lines.append) as t:
        t.train()
    assert any("tensorboard package is not installed" in line and "thinksolve[tensorboard]" in line for line in lines)
    assert not (tmp_path / "tensorboard").exists()


def test_tensorboard_event_files_hold_the_metric_scalars(tmp_path):
    needs("tensorboard", "tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with Trainer(tiny(tmp_path, "report_to=tensorboard", "eval_every=2", "eval_data=arith:n=3,difficulty=1,split=test",
                      "eval_samples=1"), log=None) as t:
        t.train()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    rows = _rows(tmp_path)
    for key in ("joint_accuracy", "reward_thinker_0", "loss_thinker_0", "grad_norm_solver_0", "tokens/solver",
                "time/collect", "tokens_total", "eval/joint_accuracy"):
        assert key in tags, key
    assert "timestamp" not in tags and "step" not in tags
    for key in ("joint_accuracy", "tokens_total", "tokens/solver"):
        events = acc.Scalars(key)
        assert [e.step for e in events] == [1, 2]
        want = [r[key.split("/")[0]][key.split("/")[1]] if "/" in key else r[key] for r in rows]
        assert [e.value for e in events] == pytest.approx(want)
    assert [e.step for e in acc.Scalars("loss_thinker_0")] == [1]  # the Thinker updated at step 1 only (null at 2)
    evals = [json.loads(x) for x in (tmp_path / "eval.jsonl").read_text().splitlines()]
    assert acc.Scalars("eval/joint_accuracy")[-1].value == pytest.approx(evals[-1]["joint_accuracy"])


def test_wandb_offline_writes_its_run_under_out(tmp_path, monkeypatch):
    needs("wandb", "wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    with Trainer(tiny(tmp_path, "report_to=wandb"), log=None) as t:
        t.train()
    (run,) = (tmp_path / "wandb").glob("offline-run-*")
    (data,) = run.glob("run-*.wandb")
    assert data.stat().st_size > 0
    assert not (tmp_path / "tensorboard").exists()  # report_to named wandb only


def test_metrics_logger_on_its_own(tmp_path):
    needs("tensorboard", "tensorboard")
    logger = MetricsLogger(tmp_path, report_to=["tensorboard"])
    logger.write({"step": 1, "loss": 0.5, "nested": {"a": 1}, "skip": None, "flag": True, "nan": float("nan")})
    logger.close()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == {"loss", "nested/a"}
