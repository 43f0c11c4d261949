"""Evaluation: accuracy with and without the Thinker, and the collaboration diagnostic."""

import re

import pytest

from agents import ScriptedPolicy
from algorithms.evaluation import evaluate
from thinksolve_env import load_problems


def _team():
    """A Thinker that writes the intermediate results, and a Solver that boxes the last number
    of the thought (alone, it boxes the first number of the problem: a poor guess)."""
    problems = {p.problem: p for p in load_problems("arith:n=400,difficulty=1,split=test")}

    def thinker(messages):
        p = problems[messages[-1]["content"]]
        return " ".join(s + "." for s in p.meta["steps"])

    def solver(messages):
        user = messages[-1]["content"]
        if "Thinker's thought:" in user:
            number = re.findall(r"-?\d+", user.split("Thinker's thought:")[1])[-1]
        else:
            number = re.findall(r"-?\d+", user)[0]
        return "\\boxed{" + number + "}"

    return {"thinker_0": ScriptedPolicy(thinker), "solver_0": ScriptedPolicy(solver)}


def test_collaboration_diagnostic_is_joint_minus_thinker_removed():
    r = evaluate(_team(), "arith:n=20,difficulty=1,split=test", samples=2, temperature=0.0)
    assert r["problems"] == 20 and r["samples"] == 2
    assert r["joint_accuracy"] == 1.0  # the thought carries the answer
    assert r["solo_accuracy"] < 0.5
    assert r["collaboration"] == pytest.approx(r["joint_accuracy"] - r["solo_accuracy"])
    # joint always right: it helps exactly where the solo guess is wrong, and never hurts
    assert r["help_rate"] == pytest.approx(1.0 - r["solo_accuracy"]) and r["hurt_rate"] == 0.0
    assert r["help_rate"] - r["hurt_rate"] == pytest.approx(r["collaboration"])


def test_help_and_hurt_pair_each_team_sample_with_a_solo_sample():
    """A Thinker that misleads: its thought names a wrong number, while the Solver alone is
    right on problems whose first number is the answer; the Solver copies the thought."""
    problems = {p.problem: p for p in load_problems("arith:n=60,difficulty=1,split=test")}
    def solver(m):
        text = m[-1]["content"]
        if "Thinker's thought:" in text:
            return "\\boxed{" + re.findall(r"-?\d+", text.split("Thought")[-1])[-1] + "}"
        return "\\boxed{" + problems[text].answer + "}"

    team = {"thinker_0": ScriptedPolicy(lambda m: "maybe 99999"), "solver_0": ScriptedPolicy(solver)}
    r = evaluate(team, list(problems.values()), samples=1, temperature=0.0)
    assert r["joint_accuracy"] == 0.0 and r["solo_accuracy"] == 1.0
    assert r["hurt_rate"] == 1.0 and r["help_rate"] == 0.0 and r["collaboration"] == -1.0


def test_removal_modes():
    team = _team()
    alone = evaluate(team, "arith:n=10,difficulty=1,split=test", remove="thinker_0")
    assert set(alone) >= {"solo_accuracy"} and "joint_accuracy" not in alone
    thinker_alone = evaluate(team, "arith:n=10,difficulty=1,split=test", remove="solver_0")
    # the Thinker never boxes its result, so without the Solver nobody answers
    assert thinker_alone["no_solver_accuracy"] == 0.0
    with pytest.raises(ValueError, match="thinker_0"):
        evaluate(team, "arith:n=2,difficulty=1,split=test", remove="both")


def test_chunked_evaluation_reports_progress_and_keeps_the_result():
    """Greedy, the result does not depend on how the problems are batched; each chunk reports."""
    from thinksolve_env import MathVerifier

    data = "arith:n=10,difficulty=1,split=test"
    with MathVerifier(workers=0) as v:  # integer answers: the string layer decides them all
        whole = evaluate(_team(), data, samples=2, temperature=0.0, verifier=v)
        seen = []
        chunked = evaluate(_team(), data, samples=2, temperature=0.0, chunk=4, progress=seen.append, verifier=v)
    for k in ("problems", "joint_accuracy", "solo_accuracy", "collaboration", "help_rate", "hurt_rate"):
        assert chunked[k] == whole[k], k
    assert [s["done"] for s in seen] == [4, 8, 10] and all(s["total"] == 10 for s in seen)
    assert seen[-1]["eta_s"] == 0 and seen[0]["eta_s"] >= 0 and seen[-1]["seconds"] >= seen[0]["seconds"]
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        evaluate(_team(), data, chunk=0)


def test_evaluation_and_the_trainer_do_not_import_each_other():
    """No import of the trainer or of the team loader anywhere in the evaluation package, lazy
    imports inside functions included (tests/test_architecture.py checks for cycles in general)."""
    import ast
    import pathlib

    for src in (pathlib.Path(__file__).resolve().parents[1] / "algorithms" / "evaluation").glob("*.py"):
        imported = {n.module for n in ast.walk(ast.parse(src.read_text()))
                    if isinstance(n, ast.ImportFrom) and n.module}
        assert imported, src
        assert not {m for m in imported if m.split(".")[0] in ("train", "trainer", "team")}, (src, imported)


def _fraction_team():
    """The Solver boxes the answer as a fraction (``\\frac{2a}{2}``), which only the verifier's
    symbolic layer (its worker processes) can decide; the Thinker restates the problem."""
    answers = {p.problem: p.answer for p in load_problems("arith:n=400,difficulty=1,split=test")}

    def solver(messages):
        user = messages[-1]["content"]
        for problem, answer in answers.items():
            if problem in user:
                return f"\\boxed{{\\frac{{{2 * int(answer)}}}{{2}}}}"
        return "\\boxed{0}"

    return {"thinker_0": ScriptedPolicy(lambda m: "Let us see."), "solver_0": ScriptedPolicy(solver)}


def test_one_verifier_pool_serves_every_chunk(monkeypatch):
    """Without a verifier, evaluate() makes one (one worker pool) for all its chunks and closes it:
    the same worker processes check every chunk's answers (before, each chunk started its own)."""
    import importlib

    from thinksolve_env import MathVerifier

    ev = importlib.import_module("algorithms.evaluation.evaluate")  # the module (the package's `evaluate` is the function)

    made: list[MathVerifier] = []

    class Recorded(MathVerifier):  # the real verifier; it only records its instances
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(ev, "MathVerifier", Recorded)
    pids = []
    r = evaluate(_fraction_team(), "arith:n=9,difficulty=1,split=test", temperature=0.0, chunk=3,
                 progress=lambda info: pids.append(tuple(made[-1].worker_pids())))
    assert r["joint_accuracy"] == 1.0 and r["solo_accuracy"] == 1.0  # the workers did decide the fractions
    assert len(made) == 1 and len(pids) == 3
    assert pids[0] and pids[0] == pids[1] == pids[2]  # one pool, started once
    assert made[0].worker_pids() == []  # and ended with the evaluation
    v = MathVerifier()
    try:  # a verifier passed in is used as it is and left open for its owner
        evaluate(_fraction_team(), "arith:n=2,difficulty=1,split=test", temperature=0.0, chunk=1, verifier=v)
        assert len(made) == 1 and v.worker_pids()
    finally:
        v.close()


def test_results_carry_problem_ids_intervals_seed_and_sampling():
    problems = load_problems("arith:n=6,difficulty=1,split=test")
    r = evaluate(_team(), problems[::-1], samples=2, temperature=0.0, seed=7)
    assert r["ids"] == [p.id for p in problems[::-1]] and len(r["ids"]) == len(r["per_problem"]["joint"]) == 6
    assert r["seed"] == 7 and r["tokens"] == 0  # scripted policies generate no tokens (a model's count: test_eval_cli)
    assert r["sampling"] == {"temperature": 0.0, "top_p": 1.0, "thinker_max_new_tokens": 4096,
                             "solver_max_new_tokens": 6144, "samples": 2, "prompts": "default"}
    ci = r["intervals"]
    assert set(ci) == {"joint", "solo", "collaboration"}
    assert ci["joint"]["mean"] == r["joint_accuracy"] and ci["collaboration"]["mean"] == pytest.approx(r["collaboration"])
    lo, hi = ci["solo"]["ci95"]
    assert lo <= r["solo_accuracy"] <= hi
    one = evaluate(_team(), problems[:1], temperature=0.0, remove="thinker_0")
    assert set(one["intervals"]) == {"solo"} and one["intervals"]["solo"]["se"] is None  # no NaN in a JSON record
