"""The briefed testbed (``arith:...,brief=1,digit=1``, preset ``tiny-brief``): the Thinker alone
sees the briefing, the digit split keeps train and test disjoint, the digit tokenizer spells a
number the same everywhere, the briefed warm-start targets are what docs/training.md says (the
tiny-brief testbed), and the demo writes its intervals."""

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from agents.models import build_tiny_model, build_tiny_tokenizer
from algorithms.config import preset
from algorithms.evaluation import paired_interval
from algorithms.team.warmstart import (
    BRIEFED_CLEAN,
    BRIEFED_THOUGHTS,
    briefed_example,
    briefed_rating,
    briefed_thought,
    warm_start_examples,
)
from thinksolve_env import MathVerifier, Problem, ThinkSolveEnv, load_problems
from thinksolve_env import prompts as P
from thinksolve_env.problems import parse_arith_spec


def test_brief_and_digit_spec():
    ps = load_problems("arith:n=300,difficulty=1,brief=1,digit=1")
    assert all(0 <= int(p.answer) <= 9 for p in ps)
    for p in ps[:20]:
        assert p.meta["briefing"] == "; ".join(p.meta["steps"])
        assert p.meta["briefing"].endswith(f"= {p.answer}")
    train = {p.problem for p in load_problems("arith:n=3000,difficulty=1,brief=1,digit=1")}
    test = {p.problem for p in load_problems("arith:n=500,difficulty=1,brief=1,digit=1,split=test")}
    assert test and not (train & test)  # disjoint at any n
    plain = load_problems("arith:n=50,difficulty=1")
    assert all("briefing" not in p.meta for p in plain)
    assert [p.problem for p in load_problems("arith:n=50,difficulty=1,brief=1")] == [p.problem for p in plain]
    for bad in ("arith:brief=2", "arith:digit=yes"):
        with pytest.raises(ValueError, match=r"brief|digit"):
            parse_arith_spec(bad)


def test_env_shows_the_briefing_to_the_thinker_only():
    p = Problem(id="b", problem="Compute (2 + 3) * 1.", answer="5", meta={"briefing": "2 + 3 = 5; 5 * 1 = 5"})
    env = ThinkSolveEnv([p], verifier=MathVerifier(workers=0))
    env.reset(options={"problem": 0})
    thinker = env.infos["thinker_0"]["messages"]
    assert "2 + 3 = 5; 5 * 1 = 5" in thinker[-1]["content"]
    env.step("Result: 5")
    solver = env.infos["solver_0"]["messages"]
    assert all("5 * 1" not in m["content"] for m in solver)
    env.step("\\boxed{5}")
    assert env.rewards["solver_0"] == 1.0
    env.reset(options={"problem": 0, "remove": "thinker_0"})
    assert all("5 * 1" not in m["content"] for m in env.infos["solver_0"]["messages"])
    off = ThinkSolveEnv([p], verifier=MathVerifier(workers=0), briefing=False)
    off.reset(options={"problem": 0})
    assert "5 * 1" not in off.infos["thinker_0"]["messages"][-1]["content"]
    bad = Problem(id="x", problem="1+1?", answer="2", meta={"briefing": 3})
    with pytest.raises(TypeError, match="briefing"):
        ThinkSolveEnv([bad], verifier=MathVerifier(workers=0))
    with pytest.raises(TypeError, match="briefing"):
        ThinkSolveEnv([p], verifier=MathVerifier(workers=0), briefing="yes")
    env.close(), off.close()


def test_briefing_template_override():
    ps = P.prompt_set(thinker_briefing_user="[{briefing}] {problem}")
    msgs = P.thinker_messages("Q?", ps, briefing="secret")
    assert msgs[-1]["content"] == "[secret] Q?"
    assert P.thinker_messages("Q?", ps)[-1]["content"] == "Q?"


def test_split_digit_tokenizer_spells_numbers_the_same_everywhere():
    tok = build_tiny_tokenizer(split_digits=True)
    a = tok.encode(" 63", add_special_tokens=False)
    b = tok.encode("{63}", add_special_tokens=False)
    digits = [tok.convert_tokens_to_ids(d) for d in "63"]
    assert a[-2:] == digits and b[1:3] == digits
    text = "Compute (8 * 9) - 9 = 63; \\boxed{-10}"
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
    default = build_tiny_tokenizer()
    assert default.encode(" 63", add_special_tokens=False) != a  # the default merges digits
    model, t = build_tiny_model(0, split_digits=True)
    assert model.config.vocab_size == len(t)


def test_briefed_thoughts_and_ratings():
    p = load_problems("arith:n=5,difficulty=1,brief=1,digit=1")[0]
    rng = random.Random(0)
    ans = int(p.answer)
    assert briefed_thought(p, "relay", rng) == f"Result: {ans}"
    assert briefed_thought(p, "relay+answer", rng) == f"The final answer is {ans}"
    for _ in range(20):
        g = briefed_thought(p, "garbled", rng)
        assert g.startswith("Result: ") and int(g.split()[-1]) != ans and 0 <= int(g.split()[-1]) <= 9
    with MathVerifier(workers=0) as v:  # the Solver-removed outcome varies with the thought
        assert v.verify(briefed_thought(p, "relay+answer", rng), p.answer).correct
        assert not v.verify(briefed_thought(p, "relay", rng), p.answer).correct
    # the rater's rule: whoever was right takes the credit, whoever was wrong the blame
    assert json.loads(briefed_rating(p, f"Result: {ans}", ans, True))["pair"] == [0.8, 0.2]
    assert json.loads(briefed_rating(p, f"Result: {(ans + 1) % 10}", ans, True))["pair"] == [0.2, 0.8]
    assert json.loads(briefed_rating(p, f"Result: {(ans + 1) % 10}", (ans + 1) % 10, False))["pair"] == [0.8, 0.2]
    assert json.loads(briefed_rating(p, f"Result: {ans}", (ans + 1) % 10, False))["pair"] == [0.2, 0.8]
    assert abs(sum(BRIEFED_THOUGHTS.values()) - 1) < 1e-9


def test_briefed_warm_start_examples_clean_then_mixed():
    problems = load_problems("arith:n=200,difficulty=1,brief=1,digit=1")
    ex = warm_start_examples(problems, 1000, prompts="compact")
    clean, mixed = ex[: int(BRIEFED_CLEAN * 1000)], ex[int(BRIEFED_CLEAN * 1000):]
    assert all(t.startswith("Result: ") or t.startswith("\\boxed{") for _, t in clean)
    kinds = Counter(("Notes:" in p[-1]["content"], t.split(":")[0] if t.startswith(("Result", "The")) else t[:6])
                    for p, t in mixed)
    assert any(k[1] == "Work t" for k in kinds)  # vague thoughts appear in the mixed phase
    thinker = [t for p, t in mixed if "Notes:" in p[-1]["content"]]
    assert any(t.startswith("The final answer is") for t in thinker)
    assert any("rating" in p[0]["content"].lower() or "Rater" in p[0]["content"] for p, _ in mixed)
    # the Solver's target copies the thought's number (or slips): never a fresh guess when there is one
    p = problems[0]
    rng = random.Random(1)
    builders = {"thinker": P.thinker_messages, "solver": P.solver_messages, "solo": P.solo_messages,
                "rating": P.rating_messages}
    for _ in range(30):
        prompt, target = briefed_example(p, "solver", rng, builders, clean=True)
        assert target == f"\\boxed{{{p.answer}}}"


def test_paired_interval():
    r = paired_interval([1, 1, 0.5, 1], [0, 0.5, 0.5, 0])
    assert r["mean"] == pytest.approx(0.625)
    d = np.array([1, 0.5, 0, 1])
    assert r["se"] == pytest.approx(d.std(ddof=1) / 2)
    assert r["ci95"][0] < r["mean"] < r["ci95"][1]
    with pytest.raises(ValueError, match="different problems"):
        paired_interval([1, 0], [1])


def test_tiny_brief_preset():
    cfg = preset("tiny-brief")
    assert "brief=1" in cfg.train_data and "split=test" in cfg.eval_data and "brief=1" in cfg.eval_data
    assert cfg.warm_start.enabled and cfg.warm_start.model_config == {"split_digits": True}
    assert cfg.warm_start.data == cfg.train_data


def test_demo_writes_seed_and_intervals(tmp_path):
    """The demo at toy size (a 6-step briefed warm start, 2 training steps): demo.json keeps its
    fields and adds the seed and the paired intervals."""
    from algorithms.cli import main

    out = tmp_path / "demo"
    rc = main(["demo", "--seed", "3", "--out", str(out), "--steps", "2",
               "warm_start.data=arith:n=40,difficulty=1,brief=1,digit=1", "warm_start.steps=6",
               "warm_start.batch_size=4", "eval_data=arith:n=6,difficulty=1,split=test,brief=1,digit=1",
               "eval_samples=2", "rollout.problems_per_step=2", "rollout.group_size=2", "rollout.solo_samples=1"])
    assert rc == 0
    d = json.loads((out / "demo.json").read_text())
    assert d["seed"] == 3 and d["preset"] == "tiny-brief" and d["wall_s"] > 0
    for side in ("before", "after"):
        assert 0 <= d[side]["joint_accuracy"] <= 1 and 0 <= d[side]["solo_accuracy"] <= 1
        assert len(d[side]["per_problem"]["joint"]) == 6
    g = d["gain"]
    assert g["mean"] == pytest.approx(d["after"]["joint_accuracy"] - d["before"]["joint_accuracy"])
    assert g["ci95"][0] <= g["mean"] <= g["ci95"][1]
    assert set(d["collaboration"]) == {"before", "after"}


def test_demo_seeds_runs_seeds_at_once(tmp_path, monkeypatch):
    """``benchmarks/demo_seeds.py --jobs 2``: the seeds run as two ``thinksolve demo`` processes
    at once (the warm start trained first, once); the table holds each seed's own run."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import _results
    import demo_seeds

    monkeypatch.setattr(_results, "RESULTS", tmp_path / "results")
    (tmp_path / "results").mkdir()
    runs = tmp_path / "runs"
    toy = ["warm_start.data=arith:n=40,difficulty=1,brief=1,digit=1", "warm_start.steps=4", "warm_start.batch_size=4",
           "eval_data=arith:n=4,difficulty=1,split=test,brief=1,digit=1", "eval_samples=1", "steps=1",
           "rollout.problems_per_step=2", "rollout.group_size=2", "rollout.solo_samples=1"]
    assert demo_seeds.main(["--seeds", "4", "5", "--jobs", "2", "--runs", str(runs), *toy]) == 0
    record = json.loads((tmp_path / "results" / "demo_seeds.json").read_text())
    assert [r["seed"] for r in record["rows"]] == [4, 5]
    for seed in (4, 5):
        d = json.loads((runs / f"s{seed}" / "demo.json").read_text())
        assert d["seed"] == seed and d["config"]["steps"] == 1 and d["config"]["warm_start"]["steps"] == 4
        assert "thinksolve demo" in (runs / f"s{seed}.log").read_text()
    assert "2 seeds at a time" in record["notes"]
    # a failing seed is reported with its exit code and log, and nothing is tabulated
    assert demo_seeds.main(["--seeds", "6", "7", "--jobs", "2", "--runs", str(tmp_path / "bad"), *toy,
                            "eval_data=no/such/file.jsonl"]) != 0
