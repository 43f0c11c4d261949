"""Training teams of more than two roles (issue #22): the team in the config, the schedule that
cycles the chain, one policy per role, checkpoints and exact resume for three roles, per-role
metrics, evaluation with each role removed, and the relay task of the ``tiny-relay`` preset.

As in tests/test_trainer.py, a randomly initialised model never solves a problem, so the runs use
a credit method of their own that rewards the parity of each role's sampled tokens: every
scheduled role's update changes its weights.
"""

import json
import re

import numpy as np
import pytest
import torch

from agents import ScriptedPolicy
from algorithms import credit, evaluate, load_team
from algorithms.config import ConfigError, ScheduleConfig, TrainerConfig, apply_overrides, preset
from algorithms.runs import load_checkpoint
from algorithms.train import Trainer, scheduled_roles
from algorithms.train.preflight import preflight, resume_changes
from thinksolve_env import load_problems

CHAIN = ("planner_0", "relay_0", "solver_0")

if "test_chain_parity" not in credit.available():

    @credit.register("test_chain_parity")
    def _chain_parity(groups):
        roles = groups[0].roles

        def share(role):
            return np.array([np.mean([t % 2 for t in e.completions[role].token_ids] or [0])
                             for g in groups for e in g.episodes])

        return {role: share(role) if k % 2 == 0 else 1.0 - share(role) for k, role in enumerate(roles)}


def tiny_chain(out, *extra):
    return apply_overrides(preset("tiny-arith"), [
        "warm_start.enabled=false", "train_data=arith:n=50,difficulty=1", f"rollout.roles={','.join(CHAIN)}",
        "schedule.start_role=planner_0", "rollout.problems_per_step=2", "rollout.group_size=2",
        "rollout.solo_samples=1", "rollout.thinker_max_new_tokens=5", "rollout.solver_max_new_tokens=5",
        "rollout.role_max_new_tokens={\"relay_0\": 4}", "credit.name=test_chain_parity", "optim.lr=1e-3",
        "schedule.period=1", "save_every=2", "optim.micro_batch_tokens=400", "tensorboard=false", "eval_every=0",
        "samples_every=1", f"out={out}", *extra,
    ])


def _rows(out):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("time"), r.pop("time_total"), r.pop("timestamp")
    return rows


# --------------------------------------------------------------------------- configuration


def test_the_default_team_is_the_thinker_and_the_solver_and_old_records_resume():
    cfg = TrainerConfig()
    assert cfg.rollout.roles == ["thinker_0", "solver_0"] and cfg.schedule.start_role == "thinker_0"
    assert cfg.rollout.budgets() == {"thinker_0": 4096, "solver_0": 6144}
    for name in ("tiny-brief", "tiny-arith", "smollm2-brief", "qwen2.5-1.5b-math"):
        p = preset(name)
        # a run recorded before the team was configurable (no roles, role budgets, role models)
        # resumes under today's preset: the new fields read as their defaults
        old = p.to_dict()
        del old["rollout"]["roles"], old["rollout"]["role_max_new_tokens"], old["model"]["role_models"]
        assert resume_changes(old, p) == []
        assert p.rollout.sampling(3) == p.rollout.sampling(3).replace(role_max_new_tokens={})  # two roles: as before


@pytest.mark.parametrize("override, msg", [
    (["rollout.roles=solo_0"], r"rollout.roles=\['solo_0'\] is invalid: allowed a list of at least two distinct"),
    (["rollout.roles=a_0,a_0"], r"rollout.roles=\['a_0', 'a_0'\] is invalid"),
    (["rollout.roles=a 0,b_0"], r"rollout.roles=\['a 0', 'b_0'\] is invalid"),
    ([f"rollout.roles={','.join(CHAIN)}"], r"schedule.start_role='thinker_0' is invalid: allowed planner_0\|relay_0\|solver_0"),
    (["rollout.role_max_new_tokens={\"critic_0\": 4}"], r"rollout.role_max_new_tokens=.* keys are roles of rollout.roles"),
    (["rollout.role_max_new_tokens={\"solver_0\": 0}"], r"integers >= 1"),
    (["model.sharing=shared", "model.role_models={\"solver_0\": \"tiny\"}"], r"model.role_models=.*sharing=separate"),
])
def test_team_fields_are_checked(override, msg):
    with pytest.raises(ConfigError, match=msg):
        apply_overrides(preset("tiny-arith"), override).validate()


@pytest.mark.parametrize("override, msg", [
    (["credit.name=sepo"], r"credit.name='sepo' is invalid with rollout.roles=\['planner_0', 'relay_0', 'solver_0'\]"),
    (["credit.name=ccpo", 'credit.params={"variant": "normalized"}'], r"variant 'normalized' is defined for two roles"),
    (["credit.name=tree"], r"compares each relay_0 answer"),
])
def test_methods_that_cannot_train_the_chain_are_refused_before_anything_loads(override, msg):
    with pytest.raises(ConfigError, match=msg):
        preflight(apply_overrides(preset("tiny-relay"), ["train_data=arith:n=20,difficulty=1,relay=1", *override]))


def test_each_role_has_its_budget_and_model():
    cfg = apply_overrides(preset("tiny-relay"), ["rollout.role_max_new_tokens={\"relay_0\": 7}",
                                                 "model.role_models={\"relay_0\": \"smollm2-135m\"}",
                                                 "model.solver_name=tiny"])
    r, m = cfg.rollout, cfg.model
    assert r.budgets() == {"planner_0": 16, "relay_0": 7, "solver_0": 16}
    assert dict(r.sampling(0).role_max_new_tokens) == r.budgets()
    assert [m.name_of(role, r.roles) for role in r.roles] == ["tiny", "smollm2-135m", "tiny"]
    assert apply_overrides(cfg, ["schedule.start_role=none"]).validate().schedule.start_role is None


def test_the_schedule_cycles_through_the_chain():
    alt = ScheduleConfig(mode="alternate", period=2, start_role="relay_0")
    assert [scheduled_roles(alt, s, CHAIN)[0] for s in range(8)] == [
        "relay_0", "relay_0", "solver_0", "solver_0", "planner_0", "planner_0", "relay_0", "relay_0"]
    first = ScheduleConfig(mode="alternate", period=1, start_role=None)
    assert [scheduled_roles(first, s, CHAIN)[0] for s in range(4)] == [*CHAIN, "planner_0"]
    assert scheduled_roles(ScheduleConfig(mode="simultaneous"), 5, CHAIN) == list(CHAIN)
    two = ScheduleConfig(mode="alternate", period=1, start_role="thinker_0")
    assert [scheduled_roles(two, s)[0] for s in range(3)] == ["thinker_0", "solver_0", "thinker_0"]  # unchanged


# --------------------------------------------------------------------------- training


def test_a_three_role_run_trains_every_role_in_turn_and_resumes_exactly(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    with Trainer(tiny_chain(a, "steps=3"), log=None) as t:
        assert set(t.policies) == set(CHAIN) and len({id(p) for p in t.policies.values()}) == 3
        initial = {role: {k: v.clone() for k, v in w.items()} for role, w in t.role_weights().items()}
        changed = []
        for _ in range(3):
            before = {role: next(iter(w.values())).clone() for role, w in t.role_weights().items()}
            row = t.step()
            now = {role: next(iter(w.values())) for role, w in t.role_weights().items()}
            changed.append(sorted(r for r in CHAIN if not torch.equal(before[r], now[r])))
            assert row["updated"] == changed[-1]
        t.save()
        straight = t.role_weights()
    assert changed == [["planner_0"], ["relay_0"], ["solver_0"]]  # each role updated at its turn, the others not
    for role in CHAIN:
        assert any(not torch.equal(initial[role][k], straight[role][k]) for k in initial[role]), role

    with Trainer(tiny_chain(b, "steps=2"), log=None) as t:
        t.train()
    ck = load_checkpoint(b / "checkpoint")
    assert ck["step"] == 2 and set(ck["weights"]) == set(CHAIN) and set(ck["optimizers"]) == set(CHAIN)
    with Trainer(tiny_chain(b, "steps=3"), resume=True, log=None) as t:
        assert t.step_count == 2
        t.train()
        resumed = t.role_weights()
    for role in CHAIN:
        for k in straight[role]:
            assert torch.equal(straight[role][k], resumed[role][k]), f"{role}.{k} differs after resume"

    team = load_team(str(b))  # the run rolls out as it trained: its roles, prompts and budgets
    assert list(team.policies) == list(CHAIN) and team.env_options["roles"] == CHAIN
    for role in CHAIN:
        live = team.policies[role].model.state_dict()
        assert all(torch.equal(live[k], v) for k, v in resumed[role].items()), role
    groups = team.collect(load_problems("arith:n=2,difficulty=1"), seed=0, group_size=2)
    assert groups[0].roles == CHAIN and set(groups[0].episodes[0].completions) == set(CHAIN)

    rows = _rows(b)
    assert [r["updated"] for r in rows] == [["planner_0"], ["relay_0"], ["solver_0"]]
    assert all(r.keys() == rows[0].keys() for r in rows)  # every row the same keys
    for role in CHAIN:  # every role's keys in every row, null for the roles a step did not update
        assert f"reward_{role}" in rows[0] and f"loss_{role}" in rows[0]
        assert [r[f"loss_{role}"] is not None for r in rows] == [role == u for u in CHAIN]
    assert rows[0]["accuracy_solver_0"] == rows[0]["joint_accuracy"]
    assert set(rows[0]["tokens"]) >= set(CHAIN)  # the budget counts each role's generations
    samples = [json.loads(line) for line in (b / "samples.jsonl").read_text().splitlines()]
    assert set(samples[0]["messages"]) == set(CHAIN) and set(samples[0]["credit"]) == set(CHAIN)

    # thinksolve eval on the chain run, one role removed by name; an unknown role is one clear line
    from algorithms.cli import main as cli_main

    base = ["eval", "--model", str(b), "--data", "arith:n=2,difficulty=1,relay=1", "--max-new-tokens", "6"]
    assert cli_main(base + ["--remove", "relay_0", "--out", str(tmp_path / "evals.jsonl")]) == 0
    record = json.loads((tmp_path / "evals.jsonl").read_text().splitlines()[-1])
    assert record["remove"] == "relay_0" and set(next(iter(record["results"].values()))["removed"]) == {"relay_0"}
    assert cli_main(base + ["--remove", "critic_0"]) != 0


def test_simultaneous_lora_updates_one_adapter_per_role(tmp_path):
    pytest.importorskip("peft")
    cfg = tiny_chain(tmp_path, "steps=1", "model.sharing=lora", "model.lora_rank=2", "schedule.mode=simultaneous")
    with Trainer(cfg, log=None) as t:
        before = {role: {k: v.clone() for k, v in w.items()} for role, w in t.role_weights().items()}
        assert set(before) == set(CHAIN) and all(f".{role}." in k for role, w in before.items() for k in w)
        row = t.step()
        after = t.role_weights()
    assert row["updated"] == sorted(CHAIN)
    for role in CHAIN:
        assert any(not torch.equal(before[role][k], after[role][k]) for k in before[role]), role


# --------------------------------------------------------------------------- the relay task and its evaluation


def test_the_relay_task_splits_the_answer_between_two_briefings():
    train = load_problems("arith:n=400,difficulty=1,relay=1")
    test = load_problems("arith:n=100,difficulty=1,relay=1,split=test")
    assert {p.problem for p in train}.isdisjoint({p.problem for p in test})
    for p in train[:50]:
        a = int(p.answer)
        assert 10 <= a <= 99 and p.meta["briefings"] == [f"tens digit: {a // 10}", f"ones digit: {a % 10}", None]
    with pytest.raises(ValueError, match="relay=1"):
        load_problems("arith:n=5,relay=1,brief=1")


def _perfect_chain():
    """A chain that plays the relay task perfectly: the planner passes on its digit, the relay
    writes the result from both digits, the solver boxes the last two-digit number it was shown
    (a lone digit when the relay was removed: it cannot know the other one)."""

    def planner(messages):
        return re.search(r"tens digit: \d", messages[-1]["content"]).group(0)

    def relay(messages):
        text = messages[-1]["content"]
        tens = re.search(r"planner_0: tens digit: (\d)", text)
        ones = re.search(r"ones digit: (\d)", text).group(1)
        return f"Result: {tens.group(1) if tens else 1}{ones}"

    def solver(messages):
        found = re.findall(r"Result: (\d\d)", messages[-1]["content"])
        return f"\\boxed{{{found[-1] if found else 0}}}"

    return {"planner_0": ScriptedPolicy(planner), "relay_0": ScriptedPolicy(relay), "solver_0": ScriptedPolicy(solver)}


def test_evaluation_measures_each_role_removed_with_paired_intervals():
    cfg = preset("tiny-relay")
    problems = load_problems("arith:n=30,difficulty=1,relay=1,split=test")
    r = evaluate(_perfect_chain(), problems, samples=2, temperature=1.0, rollout=cfg.rollout)
    assert r["roles"] == list(CHAIN) and r["joint_accuracy"] == 1.0
    assert r["removed"]["relay_0"] == 0.0 and r["removed"]["solver_0"] == 0.0
    # without the planner the relay guesses the tens digit 1: right exactly on the answers 10-19
    teens = np.mean([10 <= int(p.answer) <= 19 for p in problems])
    assert r["removed"]["planner_0"] == pytest.approx(teens)
    middle = r["intervals"]["contribution_relay_0"]
    assert middle["mean"] == 1.0 and middle["ci95"][0] > 0
    assert len(r["per_problem"]["without_relay_0"]) == len(problems) == len(r["ids"])
    assert r["solo_accuracy"] == r["removed"]["planner_0"]


def test_the_relay_warm_start_teaches_each_position_through_the_env():
    from algorithms.team.warmstart import RELAY_CLEAN, chain_examples, warm_start_path

    problems = load_problems("arith:n=60,difficulty=1,relay=1")
    ex = chain_examples(problems, 400, CHAIN, prompts="compact")
    clean = ex[: int(RELAY_CLEAN * 400)]
    for prompt, target in clean:
        user = prompt[-1]["content"]
        if "\nThought: " in user:  # the solver, shown both messages: it boxes the relay's result
            assert target == "\\boxed{" + re.findall(r"Result: (\d+)", user)[-1] + "}"
        elif "Thoughts: planner_0: tens digit:" in user:  # the relay combines the two digits
            t, o = re.search(r"tens digit: (\d)", user).group(1), re.search(r"ones digit: (\d)", user).group(1)
            assert target == f"Result: {t}{o}"
        else:  # the planner copies its briefing
            assert target == re.search(r"tens digit: \d", user).group(0)
    rest = [p[-1]["content"] for p, _ in ex[len(clean):]]
    assert any(u.count("Notes: ones digit") and "Thoughts:" not in u for u in rest)  # the relay without the planner
    assert any("Thought: planner_0:" in u and "relay_0:" not in u for u in rest)  # the solver without the relay
    cfg = preset("tiny-relay")
    here = warm_start_path(cfg.warm_start, "tiny", "compact", CHAIN)
    assert here != warm_start_path(cfg.warm_start, "tiny", "compact", ("a_0", "b_0", "c_0"))  # the prompts name them
    brief = preset("tiny-brief")  # a two-role warm start's key does not depend on the team
    assert warm_start_path(brief.warm_start, "tiny", "compact", CHAIN) == warm_start_path(brief.warm_start, "tiny", "compact")


def test_the_three_role_demo_reports_each_role_with_intervals(tmp_path, capsys):
    from algorithms.cli import main

    out = tmp_path / "demo"
    rc = main(["demo", "--preset", "tiny-relay", "--steps", "1", "--out", str(out), "warm_start.steps=3",
               "warm_start.batch_size=4", "warm_start.data=arith:n=40,difficulty=1,relay=1",
               "eval_data=arith:n=6,difficulty=1,split=test,relay=1", "eval_samples=1", "rollout.problems_per_step=2",
               "rollout.group_size=2", "rollout.solo_samples=1", "eval_every=0", "samples_every=0"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| without planner_0 | without relay_0 | without solver_0 |" in text and "relay_0 at the end" in text
    d = json.loads((out / "demo.json").read_text())
    assert d["roles"] == list(CHAIN) and set(d["contribution"]["after"]) == set(CHAIN)
    assert set(d["after"]["per_problem"]) == {"joint", *(f"without_{r}" for r in CHAIN)}
    c = d["contribution"]["after"]["relay_0"]
    assert c["mean"] == pytest.approx(np.mean(d["after"]["per_problem"]["joint"])
                                      - np.mean(d["after"]["per_problem"]["without_relay_0"]))


def test_the_dry_run_names_the_team(tmp_path, capsys):
    from algorithms.cli import main

    assert main(["train", "--preset", "tiny-relay", "--out", str(tmp_path / "r"), "--dry-run",
                 "train_data=arith:n=20,difficulty=1,relay=1"]) == 0
    out = capsys.readouterr().out
    assert "planner_0 -> relay_0 -> solver_0" in out
    # the preset's ccpo (event) replays the team without each role on the same prefix
    assert "replays      without:solver_0, without:relay_0, without:planner_0" in out
    assert not (tmp_path / "r").exists()
