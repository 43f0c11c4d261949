"""A checkpoint written before the reorganisation of algorithms/ (tests/data/run_v0_tiny, from
commit 4d7139d) still loads: its files verify, load_team rebuilds the trained team from it, and
the trainer resumes it and trains on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from algorithms import Trainer, TrainerConfig, load_team
from algorithms.runs import load_checkpoint, recorded_config

FIXTURE = Path(__file__).resolve().parent / "data" / "run_v0_tiny"


@pytest.fixture
def old_run(tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    return run


def test_the_old_checkpoint_verifies_and_its_config_reads(old_run):
    ck = load_checkpoint(old_run / "checkpoint")
    assert ck["step"] == 2 and set(ck["weights"]) == {"thinker_0"}
    cfg = TrainerConfig.from_dict(recorded_config(old_run)["config"])
    assert (cfg.model.sharing, cfg.credit.name, cfg.seed) == ("shared", "ccpo", 5)
    cfg.validate()


def test_load_team_rebuilds_the_trained_weights(old_run):
    team, rollout = load_team(str(old_run))
    assert team["thinker_0"] is team["solver_0"]  # model.sharing=shared
    stored = load_checkpoint(old_run / "checkpoint")["weights"]["thinker_0"]
    live = team["thinker_0"].model.state_dict()
    assert set(stored) <= set(live)
    for name, value in stored.items():
        assert torch.equal(live[name], value), name
    assert rollout.thinker_max_new_tokens == 4
    assert not (old_run / ".lock").exists() or (old_run / ".lock").read_text() == ""  # loading takes no lock


def test_the_trainer_resumes_the_old_run(old_run):
    cfg = TrainerConfig.from_dict(recorded_config(old_run)["config"])
    cfg.out, cfg.steps = str(old_run), 3
    with Trainer(cfg, resume=True, log=None) as trainer:
        assert trainer.step_count == 2
        rows = trainer.train()
    assert [r["step"] for r in rows] == [3]
    assert load_checkpoint(old_run / "checkpoint")["step"] == 3
    steps = [json.loads(line)["step"] for line in (old_run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
