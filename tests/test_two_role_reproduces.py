"""Two-role results did not move when teams of N roles arrived: a run of the committed credit
comparison (`benchmarks/results/credit_comparison.json`, recorded before chains existed) is
retrained and re-evaluated at its first evaluation point.

A seeded run repeats exactly on one machine and only in distribution on another (float kernels
differ between CPUs): on the platform and torch the stored results were made with, the held-out
per-problem accuracies must be identical; elsewhere, their paired mean difference must sit
within the evaluation noise."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import pytest

from algorithms.config import apply_credit, apply_optimizer, preset
from algorithms.evaluation import paired_interval
from algorithms.train import Trainer

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "credit_comparison.json"


@pytest.fixture(scope="module")
def stored():
    return json.loads(RESULTS.read_text())


def test_a_stored_two_role_run_reproduces(stored, tmp_path):
    import torch

    torch.set_num_threads(1)
    assert "--eval-samples 8" in stored["command"]
    run = next(r for r in stored["runs"] if (r["method"], r["optimizer"], r["seed"]) == ("ccpo-event", "gspo", 0))
    point = next(c for c in run["curve"] if c["step"] == 12)
    cfg = apply_optimizer(apply_credit(preset("tiny-brief"), "ccpo"), "gspo")
    cfg.credit.params = dict(run["credit"]["params"])
    assert cfg.credit.params == {"variant": "event"}
    cfg.seed, cfg.out, cfg.tensorboard, cfg.steps, cfg.eval_samples, cfg.eval_every = \
        0, str(tmp_path / "run"), False, run["steps"], 8, 0
    with Trainer(cfg.validate(), log=None) as trainer:
        for _ in range(point["step"]):
            trainer.step()
        ev = trainer.evaluate(cfg.eval_data)
    now = np.round(np.asarray(ev["per_problem"]["joint"], dtype=np.float64), 6)
    then = np.asarray(point["per_problem"]["joint"], dtype=np.float64)
    assert now.shape == then.shape
    same_machine = (stored["versions"]["platform"] == platform.platform()
                    and stored["versions"]["torch"] == torch.__version__)
    if same_machine:
        np.testing.assert_array_equal(now, then)
        assert ev["joint_accuracy"] == pytest.approx(point["joint_accuracy"], abs=1e-9)
    else:
        diff = paired_interval(now, then)  # the same problems, the same evaluation seeds
        lo, hi = diff["ci95"]
        assert lo - 0.02 <= 0.0 <= hi + 0.02, diff
