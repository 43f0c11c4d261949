"""The trainer on the real tiny transformer: exact resume, config checks on resume, Ctrl-C,
sharing modes, the schedule and micro-batching.

Rewards: a randomly initialised model never solves a problem, so the verifier's ±1 would give
zero advantages and no update. These tests register their own credit method (a user extension
the registry supports) that rewards the parity of the sampled tokens, so every step changes
the weights.
"""

import json
import os
import signal

import numpy as np
import pytest
import torch

from algorithms import credit
from algorithms.checkpoint import load_checkpoint
from algorithms.config import ScheduleConfig, apply_overrides, preset
from algorithms.trainer import ResumeError, Trainer, micro_batches, scheduled_roles

if "test_token_parity" not in credit.available():

    @credit.register("test_token_parity")
    def _token_parity(groups):
        def share(role):
            return np.array([np.mean([t % 2 for t in e.completions[role].token_ids] or [0]) for g in groups for e in g.episodes])

        return {"thinker_0": share("thinker_0"), "solver_0": 1.0 - share("solver_0")}


_INTERRUPT_AT = {"call": None, "calls": 0}

if "test_interrupt" not in credit.available():

    @credit.register("test_interrupt")
    def _interrupt(groups):
        _INTERRUPT_AT["calls"] += 1
        if _INTERRUPT_AT["calls"] == _INTERRUPT_AT["call"]:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does, in the middle of a step
        return credit.get("test_token_parity")(groups)


def tiny(out, *extra):
    return apply_overrides(preset("tiny-arith"), [
        "warm_start.enabled=false", "train_data=arith:n=50,difficulty=1", "rollout.problems_per_step=2",
        "rollout.group_size=2", "rollout.solo_samples=1", "rollout.thinker_max_new_tokens=6",
        "rollout.solver_max_new_tokens=6", "credit.name=test_token_parity", "optim.lr=1e-3", "schedule.period=1",
        "save_every=2", "optim.ppo_epochs=2", "optim.micro_batch_tokens=400", "tensorboard=false", f"out={out}", *extra,
    ])


def _rows(out):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("time"), r.pop("time_total")
    return rows


def test_resume_2_plus_2_equals_4_steps(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    with Trainer(tiny(a, "steps=4")) as t:
        initial = {k: v.clone() for k, v in t.role_weights()["thinker_0"].items()}
        t.train()
        straight = t.role_weights()
    with Trainer(tiny(b, "steps=2")) as t:
        t.train()
    assert load_checkpoint(b / "checkpoint")["step"] == 2
    with Trainer(tiny(b, "steps=4"), resume=True, log=None) as t:
        assert t.step_count == 2
        t.train()
        resumed = t.role_weights()
    assert any(not torch.equal(initial[k], straight["thinker_0"][k]) for k in initial), "training changed nothing"
    for role in straight:
        for k in straight[role]:
            assert torch.equal(straight[role][k], resumed[role][k]), f"{role}.{k} differs after resume"
    ra, rb = _rows(a), _rows(b)
    assert [r["step"] for r in rb] == [1, 2, 3, 4]
    assert ra == rb  # same rewards, losses, clip fractions, tokens at every step
    ck_a, ck_b = load_checkpoint(a / "checkpoint"), load_checkpoint(b / "checkpoint")
    for role in ck_a["optimizers"]:
        sa, sb = ck_a["optimizers"][role]["state"], ck_b["optimizers"][role]["state"]
        assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)


def test_metrics_rows_hold_the_documented_fields(tmp_path):
    with Trainer(tiny(tmp_path, "steps=1", "schedule.mode=simultaneous", "optim.micro_batch_tokens=150")) as t:
        t.train()
    (row,) = _rows(tmp_path)
    for key in ("step", "updated", "reward_thinker_0", "reward_solver_0", "joint_accuracy", "accuracy_solver_0",
                "loss_thinker_0", "loss_solver_0", "clip_frac_thinker_0", "kl_solver_0", "grad_norm_thinker_0", "tokens_total"):
        assert key in row, key
    assert row["updated"] == ["solver_0", "thinker_0"]
    assert row["tokens"]["thinker"] > 0 and row["micro_batches_thinker_0"] >= 2  # a 150-token budget splits 4 rollouts


def test_resume_with_a_different_config_is_refused_with_the_difference(tmp_path):
    with Trainer(tiny(tmp_path, "steps=2")) as t:
        t.train()
    with pytest.raises(ResumeError, match=r"optim\.lr: 0\.001 -> 0\.002"):
        Trainer(tiny(tmp_path, "steps=4", "optim.lr=0.002"), resume=True, log=None)
    with Trainer(tiny(tmp_path, "steps=3", f"out={tmp_path}"), resume=True, log=None) as t:  # steps may change
        assert t.step_count == 2


def test_ctrl_c_finishes_the_step_and_writes_a_checkpoint(tmp_path):
    _INTERRUPT_AT.update(call=2, calls=0)
    with Trainer(tiny(tmp_path, "steps=5", "save_every=100", "credit.name=test_interrupt")) as t:
        with pytest.raises(KeyboardInterrupt):
            t.train()
    ck = load_checkpoint(tmp_path / "checkpoint")
    assert ck["step"] == 2 and len(_rows(tmp_path)) == 2
    _INTERRUPT_AT.update(call=None)
    with Trainer(tiny(tmp_path, "steps=3", "save_every=100", "credit.name=test_interrupt"), resume=True, log=None) as t:
        t.train()
    assert load_checkpoint(tmp_path / "checkpoint")["step"] == 3


@pytest.mark.parametrize("sharing", ["shared", "lora"])
def test_shared_and_lora_models_train_both_roles(tmp_path, sharing):
    cfg = tiny(tmp_path, "steps=1", "schedule.mode=simultaneous", f"model.sharing={sharing}", "optim.kl_coef=0.1",
               "model.lora_rank=4")
    with Trainer(cfg) as t:
        assert (t.policies["thinker_0"] is t.policies["solver_0"]) == (sharing == "shared")
        before = {r: {k: v.clone() for k, v in sd.items()} for r, sd in t.role_weights().items()}
        (row,) = t.train()
        after = t.role_weights()
    assert row["kl_thinker_0"] >= 0 and row["kl_solver_0"] >= 0
    for role in before:
        assert any(not torch.equal(before[role][k], after[role][k]) for k in before[role]), role
    if sharing == "lora":
        assert all(".lora_" in k for sd in after.values() for k in sd)  # only adapters are trained and saved
        assert not set(after["thinker_0"]) & set(after["solver_0"])


def test_alternating_schedule():
    sch = ScheduleConfig(mode="alternate", period=2, start_role="solver_0")
    assert [scheduled_roles(sch, s)[0] for s in range(6)] == ["solver_0", "solver_0", "thinker_0", "thinker_0", "solver_0", "solver_0"]
    assert scheduled_roles(ScheduleConfig(mode="simultaneous"), 3) == ["thinker_0", "solver_0"]


def test_micro_batches_respect_the_token_budget():
    lengths = [100, 120, 90, 300, 50, 50, 500]
    batches = micro_batches(lengths, 250)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 250
    assert micro_batches([10] * 8, 10_000) == [list(range(8))]
