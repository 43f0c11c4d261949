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
from algorithms.config import ScheduleConfig, apply_overrides, preset
from algorithms.runs import load_checkpoint
from algorithms.train import ResumeError, Trainer, micro_batches, scheduled_roles

if "test_token_parity" not in credit.available():

    @credit.register("test_token_parity")
    def _token_parity(groups):
        def share(role):
            return np.array([np.mean([t % 2 for t in e.completions[role].token_ids] or [0])
                             for g in groups for e in g.episodes])

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
        "save_every=2", "optim.ppo_epochs=2", "optim.micro_batch_tokens=400", "tensorboard=false", "eval_every=0",
        f"out={out}", *extra,
    ])


def _rows(out):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("time"), r.pop("time_total"), r.pop("timestamp")
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
                "loss_thinker_0", "loss_solver_0", "clip_frac_thinker_0", "kl_solver_0", "grad_norm_thinker_0",
                "tokens_total"):
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
    with Trainer(tiny(tmp_path, "steps=5", "save_every=100", "credit.name=test_interrupt")) as t, \
            pytest.raises(KeyboardInterrupt):
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
    assert [scheduled_roles(sch, s)[0] for s in range(6)] == ["solver_0", "solver_0", "thinker_0", "thinker_0",
                                                              "solver_0", "solver_0"]
    assert scheduled_roles(ScheduleConfig(mode="simultaneous"), 3) == ["thinker_0", "solver_0"]


def test_micro_batches_respect_the_token_budget():
    lengths = [100, 120, 90, 300, 50, 50, 500]
    batches = micro_batches(lengths, 250)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 250
    assert micro_batches([10] * 8, 10_000) == [list(range(8))]


# --------------------------------------------------------------------------- trustworthy run directories

_TERM_AT = {"call": None, "calls": 0}

if "test_sigterm" not in credit.available():

    @credit.register("test_sigterm")
    def _sigterm(groups):
        _TERM_AT["calls"] += 1
        if _TERM_AT["calls"] == _TERM_AT["call"]:
            os.kill(os.getpid(), signal.SIGTERM)  # what `timeout`, `kill` and schedulers send, mid-step
        return credit.get("test_token_parity")(groups)


def _weights(out):
    return load_checkpoint(out / "checkpoint")["weights"]


def test_sigterm_mid_run_saves_and_resume_equals_the_uninterrupted_run(tmp_path):
    from algorithms.train import TrainingInterrupted

    a, b = tmp_path / "a", tmp_path / "b"
    _TERM_AT.update(call=None, calls=0)
    with Trainer(tiny(a, "steps=4", "save_every=100", "credit.name=test_sigterm"), log=None) as t:
        t.train()
    _TERM_AT.update(call=3, calls=0)
    lines = []
    with Trainer(tiny(b, "steps=4", "save_every=100", "credit.name=test_sigterm"), log=lines.append) as t, \
            pytest.raises(TrainingInterrupted) as info:
        t.train()
    assert info.value.signum == signal.SIGTERM
    assert any(line.strip().startswith("SIGTERM: finishing this step") for line in lines)
    assert load_checkpoint(b / "checkpoint")["step"] == 3  # the step under way finished and was saved
    _TERM_AT.update(call=None)
    with Trainer(tiny(b, "steps=4", "save_every=100", "credit.name=test_sigterm"), resume=True, log=None) as t:
        t.train()
    wa, wb = _weights(a), _weights(b)
    for role in wa:
        for k in wa[role]:
            assert torch.equal(wa[role][k], wb[role][k]), f"{role}.{k}"
    assert _rows(a) == _rows(b) and [r["step"] for r in _rows(b)] == [1, 2, 3, 4]


def test_torn_and_surplus_metrics_rows_are_cut_on_resume_and_kept_aside(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    with Trainer(tiny(a, "steps=3")) as t:
        t.train()
    with Trainer(tiny(b, "steps=2")) as t:
        t.train()
    # What a crash leaves: a row logged after the last checkpoint, then a torn line (no newline).
    surplus = (a / "metrics.jsonl").read_text().splitlines()[2]
    metrics = b / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + surplus + "\n" + '{"step": 4, "joint_acc')
    (b / "eval.jsonl").write_text('{"step": 2, "joint_accuracy": 0.5}\n{"step": 3, "joint_accuracy": 0.25}\n')
    lines = []
    with Trainer(tiny(b, "steps=3"), resume=True, log=lines.append) as t:
        assert t.step_count == 2
        t.train()
    assert [r["step"] for r in _rows(b)] == [1, 2, 3] and _rows(b) == _rows(a)
    (aside,) = b.glob("metrics.jsonl.cut-*")
    assert aside.read_text().splitlines() == [surplus, '{"step": 4, "joint_acc']  # kept, not destroyed
    assert (b / "eval.jsonl").read_text() == '{"step": 2, "joint_accuracy": 0.5}\n'  # evaluations too
    (eval_aside,) = b.glob("eval.jsonl.cut-*")
    assert json.loads(eval_aside.read_text())["step"] == 3
    assert any("moved to" in line for line in lines)


def test_a_fresh_trainer_refuses_an_existing_run_and_sets_old_metrics_aside(tmp_path):
    with Trainer(tiny(tmp_path, "steps=1")) as t:
        t.train()
    before = (tmp_path / "checkpoint" / "meta.json").read_text()
    with pytest.raises(ResumeError, match="already holds a run"):
        Trainer(tiny(tmp_path, "steps=1"), log=None)
    assert (tmp_path / "checkpoint" / "meta.json").read_text() == before  # untouched
    other = tmp_path / "orphan"
    other.mkdir()
    (other / "metrics.jsonl").write_text('{"step": 1}\n{"step": 2}\n')  # an old run's rows, no checkpoint
    lines = []
    with Trainer(tiny(other, "steps=1"), log=lines.append) as t:
        t.train()
    assert [r["step"] for r in _rows(other)] == [1]
    (aside,) = other.glob("metrics.jsonl.cut-*")
    assert aside.read_text() == '{"step": 1}\n{"step": 2}\n' and any("moved to" in line for line in lines)


_HOLDER = r'''
import sys, time
from algorithms.runs import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(60)
'''


def test_one_writer_per_run_directory_and_a_dead_writer_leaves_no_lock(tmp_path):
    import subprocess
    import sys

    from algorithms.runs import RunLock, RunLockedError

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True, cwd=root)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=rf"in use by another training process \(pid {proc.pid} "):
            Trainer(tiny(tmp_path, "steps=1"), log=None)
        assert not (tmp_path / "metrics.jsonl").exists()
    finally:
        proc.kill()  # SIGKILL: no clean-up code runs
        proc.wait()
    with RunLock(tmp_path):  # the kernel freed the lock with the process
        pass
    with Trainer(tiny(tmp_path, "steps=1"), log=None) as t:
        with pytest.raises(RunLockedError):  # a second writer in the same process is refused too
            RunLock(tmp_path).acquire()
        t.train()
    with RunLock(tmp_path):  # close() released it
        pass


@pytest.mark.parametrize("override, msg", [
    ("eval_data=missing.jsonl", r"eval_data='missing.jsonl': problem source 'missing.jsonl': no such file"),
    ("model.device=cuda", r"model.device='cuda' is invalid here: this torch .* allowed: cpu"),
    ("model.name=nobody-here/no-such-model",
     r"model.name='nobody-here/no-such-model' is a hub id, HF_HUB_OFFLINE is set.*"
     r"set model.name=DIR to that local folder"),
])
def test_bad_sources_are_named_before_anything_runs(tmp_path, override, msg):
    from algorithms.config import ConfigError

    if override.startswith("model.device") and torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=msg):
        Trainer(tiny(out, "steps=1", override), log=None)
    assert not out.exists()  # nothing written


def test_a_bad_train_file_is_a_line_numbered_error(tmp_path):
    from algorithms.config import ConfigError

    bad = tmp_path / "train.jsonl"
    bad.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": "2+2?", \n')
    with pytest.raises(ConfigError, match=r"train_data=.*train.jsonl:2: not valid JSON"):
        Trainer(tiny(tmp_path / "run", f"train_data={bad}"), log=None)


def test_out_must_be_a_writable_directory(tmp_path):
    from algorithms.config import ConfigError

    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        Trainer(tiny(f), log=None)
    with pytest.raises(ConfigError, match="cannot create the run directory"):
        Trainer(tiny(f / "sub"), log=None)


# A missing TensorBoard (the deprecated flag notes it; report_to refuses it): tests/test_loggers.py.


def test_progress_lines_off_a_terminal(tmp_path):
    lines = []
    with Trainer(tiny(tmp_path, "steps=3"), log=lines.append) as t:
        t.train()
    progress = [line for line in lines if line.startswith("train: step")]
    assert progress[0].startswith("train: step 1/3") and progress[-1].startswith("train: step 3/3")
    assert "s/step" in progress[0] and "left" in progress[0]
