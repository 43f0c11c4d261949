"""What the agents wrote, in plain sight: ``OUT/samples.jsonl``, the end-of-run summary
(``OUT/summary.json`` and the printed table) and :func:`load_team`'s :class:`Team`, which rolls a
loaded run out as it trained. The real tiny model trains here (a few seconds a run)."""

import json

import numpy as np
import pytest
import torch

from algorithms import collect_groups, credit, load_team
from algorithms.config import PROMPT_SETS, apply_overrides, preset
from algorithms.runs import SAMPLES, format_sample, read_rows, run_summary
from algorithms.train import Trainer, step_seed
from thinksolve_env import load_problems

ROLES = ("thinker_0", "solver_0")

if "test_token_parity" not in credit.available():  # (tests/test_trainer.py registers the same method)

    @credit.register("test_token_parity")
    def _token_parity(groups):  # credit that varies within a group, so advantages are not all 0
        def share(role):
            return np.array([np.mean([t % 2 for t in e.completions[role].token_ids] or [0])
                             for g in groups for e in g.episodes])

        return {"thinker_0": share("thinker_0"), "solver_0": 1.0 - share("solver_0")}


def tiny(out, *extra):
    # the real verifier's ±1 and CCPO's event bonus: credit differs from the reward only where the
    # Thinker helped or hurt, so the rows show the method's own numbers
    return apply_overrides(preset("tiny-arith"), [
        "warm_start.enabled=false", "train_data=arith:n=50,difficulty=1", "rollout.problems_per_step=2",
        "rollout.group_size=2", "rollout.solo_samples=1", "rollout.thinker_max_new_tokens=6",
        "rollout.solver_max_new_tokens=6", "optim.lr=1e-3", "schedule.period=1", "save_every=2",
        "tensorboard=false", "eval_data=arith:n=3,difficulty=1,split=test", f"out={out}", *extra])


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "timestamp"} for r in rows]


def test_samples_hold_what_each_role_wrote_with_its_credit_and_advantage(tmp_path):
    with Trainer(tiny(tmp_path, "steps=4", "samples_every=2", "samples_per_write=3", "credit.name=test_token_parity"),
                 log=None) as t:
        t.train()
        last = t.last_groups
    rows = read_rows(tmp_path / SAMPLES)
    assert [r["step"] for r in rows] == [1] * 3 + [2] * 3 + [4] * 3  # step 1, every 2nd, the last
    assert [(r["group"], r["episode"]) for r in rows[:3]] == [(0, 0), (1, 0), (0, 1)]  # one per problem first
    for r in rows[-3:]:  # the last step's rows are its episodes, as the trainer collected them
        g = last[r["group"]]
        e = g.episodes[r["episode"]]
        assert (r["problem_id"], r["problem"], r["reference"]) == (g.problem.id, g.problem.problem, g.problem.answer)
        assert r["thought"] == e.completions["thinker_0"].text and r["answer"] == e.actions["solver_0"]
        assert r["reward"] == e.reward and r["correct"] == (e.reward > 0)
        assert r["extracted"] == e.verification["extracted"] and r["verdict"] == e.verification["reason"]
        assert g.solo_rewards is None and r["solo_accuracy"] is None  # (this method collects no solo samples)
        assert r["updated"] == ["solver_0"] and set(r["credit"]) == set(r["advantage"]) == set(ROLES)
    # advantages: Dr. GRPO over each problem's two episodes, for both roles (the Thinker's computed
    # although it was not updated at step 4): the credit minus its group's mean
    (a, b) = [r for r in rows[-3:] if r["group"] == 0]
    assert any(a["credit"][role] != b["credit"][role] for role in ROLES)  # (so the check below has teeth)
    for role in ROLES:
        mean = (a["credit"][role] + b["credit"][role]) / 2
        assert a["advantage"][role] == pytest.approx(a["credit"][role] - mean)
        assert b["advantage"][role] == pytest.approx(b["credit"][role] - mean)
    text = format_sample(rows[-1], width=60)
    assert len(text.splitlines()) == 4 and all(len(line) <= 60 for line in text.splitlines())
    assert "credit T" in text and "advantage T" in text


def test_tree_rollouts_give_the_thinker_one_advantage_per_thought(tmp_path):
    with Trainer(tiny(tmp_path, "steps=1", "rollout.answers_per_thought=2", "credit.name=test_token_parity",
                      "samples_per_write=8"), log=None) as t:
        t.train()
        last = t.last_groups
    rows = read_rows(tmp_path / SAMPLES)
    assert len(rows) == 8  # 2 problems x 2 thoughts x 2 answers
    for g, group in enumerate(last):
        mine = sorted((r for r in rows if r["group"] == g), key=lambda r: r["episode"])
        for e in group.episodes:
            same = [r for r in mine if group.episodes[r["episode"]].thought_index == e.thought_index]
            assert len(same) == 2 and len({r["thought"] for r in same}) == 1
            assert len({r["advantage"]["thinker_0"] for r in same}) == 1  # siblings share their thought's
    # each thought's advantage: the mean of its answers' credit, minus the problem's mean of those
    for g in range(2):
        mine = [r for r in rows if r["group"] == g]
        value = {}
        for r in mine:
            value.setdefault(last[g].episodes[r["episode"]].thought_index, []).append(r["credit"]["thinker_0"])
        q = {k: np.mean(v) for k, v in value.items()}
        for r in mine:
            k = last[g].episodes[r["episode"]].thought_index
            assert r["advantage"]["thinker_0"] == pytest.approx(q[k] - np.mean(list(q.values())))
    assert any(r["advantage"]["thinker_0"] != 0 for r in rows)


def test_samples_agree_with_the_checkpoint_on_resume(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    with Trainer(tiny(a, "steps=4", "samples_every=1", "samples_per_write=2"), log=None) as t:
        t.train()
    with Trainer(tiny(b, "steps=3", "samples_every=1", "samples_per_write=2", "save_every=2"), log=None) as t:
        t.train()  # checkpoints at step 2 and 3; then step 3's checkpoint is lost below
    ck = b / "checkpoint" / "meta.json"
    meta = json.loads(ck.read_text())
    assert meta["step"] == 3
    with Trainer(tiny(b / "c", "steps=2", "samples_every=1", "samples_per_write=2"), log=None) as t:
        t.train()  # a run stopped at its step-2 checkpoint ...
    c = b / "c"
    with open(c / SAMPLES, "a") as f:  # ... with rows of a step 3 that was never saved and a torn line
        f.write(json.dumps({"step": 3, "problem": "lost"}) + "\n" + '{"step": 3, "prob')
    with Trainer(tiny(c, "steps=4", "samples_every=1", "samples_per_write=2"), resume=True, log=None) as t:
        t.train()
    assert _strip(read_rows(c / SAMPLES)) == _strip(read_rows(a / SAMPLES))  # as the uninterrupted run wrote
    (aside,) = c.glob(f"{SAMPLES}.cut-*")
    assert '"lost"' in aside.read_text()


def test_the_end_of_a_run_prints_the_last_samples_and_a_summary(tmp_path):
    lines = []
    with Trainer(tiny(tmp_path, "steps=4", "eval_every=2", "eval_samples=1", "samples_per_write=2"),
                 log=lines.append) as t:
        t.train()
    summary = json.loads((tmp_path / "summary.json").read_text())
    evals = read_rows(tmp_path / "eval.jsonl")
    metrics = read_rows(tmp_path / "metrics.jsonl")
    assert summary["steps"] == 4 and summary["eval"]["evaluations"] == len(evals) >= 2
    first, last = summary["eval"]["first"], summary["eval"]["last"]
    assert (first["step"], last["step"]) == (evals[0]["step"], evals[-1]["step"])
    assert (first["joint_accuracy"], last["solo_accuracy"]) == (evals[0]["joint_accuracy"], evals[-1]["solo_accuracy"])
    b = summary["batch"]
    assert b["window"] == 2 and b["first_steps"] == [1, 2] and b["last_steps"] == [3, 4]
    assert b["accuracy_last"] == pytest.approx(np.mean([m["joint_accuracy"] for m in metrics[2:]]))
    assert [s["step"] for s in summary["samples"]] == [1, 4, 4]  # the last three rows: step 1's second, step 4's two
    assert all(0 <= s["solo_accuracy"] <= 1 for s in summary["samples"])  # ccpo collects the Solver alone
    assert summary == t.summary | {"timestamp": summary["timestamp"]}
    printed = "\n".join(lines)
    assert "last samples:" in printed and "held-out accuracy, team" in printed and "batch accuracy, team" in printed
    assert "summary.json" in printed.splitlines()[-1]
    # a run stopped before its last step writes no summary
    with Trainer(tiny(tmp_path / "short", "steps=2"), log=None) as t:
        t.step()
    assert not (tmp_path / "short" / "summary.json").exists()


def test_samples_every_0_writes_none_and_bad_values_are_refused(tmp_path):
    with Trainer(tiny(tmp_path, "steps=1", "samples_every=0"), log=None) as t:
        t.train()
    assert not (tmp_path / SAMPLES).exists()
    assert run_summary(tmp_path)["samples"] == []
    from algorithms.config import ConfigError

    for bad, msg in (("samples_every=-1", "samples_every"), ("samples_per_write=0", "samples_per_write")):
        with pytest.raises(ConfigError, match=msg):
            tiny(tmp_path, bad).validate()


def test_a_loaded_team_rolls_out_as_its_run_trained(tmp_path):
    """load_team → team.collect (or collect_groups with team.env_options and team.sampling) gives
    the prompts and the very tokens the trainer sampled at the next step."""
    cfg = tiny(tmp_path, "steps=1", "credit.name=ccpo")
    assert cfg.rollout.prompts == "compact"
    with Trainer(cfg, log=None) as t:
        t.train()
    team = load_team(str(tmp_path))
    policies, rollout = team  # unpacks as before
    assert policies is team.policies and rollout.prompts == "compact" and team.config.seed == cfg.seed
    # the problems and the sampling seed of step 2 (0-based 1), drawn as Trainer.step draws them
    problems = load_problems(cfg.train_data)
    order = np.random.default_rng([cfg.seed, 1]).choice(len(problems), cfg.rollout.problems_per_step, replace=False)
    batch = [problems[i] for i in order]
    mine = team.collect(batch, seed=step_seed(cfg.seed, 1, 0))
    with Trainer(apply_overrides(cfg, ["steps=2"]), resume=True, log=None) as t:
        t.train()
        theirs = t.last_groups
    for g, h in zip(mine, theirs):
        assert g.problem.id == h.problem.id
        for e, f in zip(g.episodes, h.episodes):
            assert e.prompts == f.prompts
            for role in ROLES:
                assert e.completions[role].token_ids == f.completions[role].token_ids
    thinker_system = mine[0].episodes[0].prompts["thinker_0"][0]["content"]
    assert thinker_system == PROMPT_SETS["compact"]["thinker_system"]
    # without the run's env options the policies would see the env's default prompts
    default = collect_groups(batch[:1], team.policies, group_size=1, needs=(), sampling=team.sampling(0))
    assert default[0].episodes[0].prompts["thinker_0"][0]["content"] != thinker_system
    same = collect_groups(batch[:1], team.policies, group_size=1, needs=(), sampling=team.sampling(0),
                          env_options=team.env_options)
    assert same[0].episodes[0].prompts["thinker_0"][0]["content"] == thinker_system
    assert team.sampling(5).thinker_max_new_tokens == cfg.rollout.thinker_max_new_tokens
    assert team.sampling(5, temperature=0.0).temperature == 0.0
    # a team from model names: the env's defaults, and no training settings to collect with
    named = load_team("tiny")
    assert named.env_options == {} and named.config is None
    with pytest.raises(ValueError, match="model names"):
        named.collect_options()
    assert torch.is_tensor(next(iter(policies["thinker_0"].parameters())))


def test_thinksolve_train_ends_with_the_samples_and_the_table(tmp_path, capsys):
    from algorithms.cli import main

    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny-arith", "--steps", "2", "--out", str(out), "warm_start.enabled=false",
                 "rollout.problems_per_step=2", "rollout.group_size=2", "rollout.solo_samples=1",
                 "rollout.thinker_max_new_tokens=4", "rollout.solver_max_new_tokens=4", "tensorboard=false"]) == 0
    printed = capsys.readouterr().out
    assert "last samples:" in printed and "batch accuracy, team (step 1 → 2)" in printed
    assert f"summary in {out / 'summary.json'}" in printed
    assert all(len(line) <= 100 for line in printed[printed.index("last samples:"):].splitlines()[:13])
    assert json.loads((out / "summary.json").read_text())["steps"] == 2
