"""Evaluation: accuracy with and without the Thinker, and the collaboration diagnostic."""

import re

import pytest

from agents import ScriptedPolicy
from algorithms.evaluate import evaluate
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


def test_removal_modes():
    team = _team()
    alone = evaluate(team, "arith:n=10,difficulty=1,split=test", remove="thinker_0")
    assert set(alone) >= {"solo_accuracy"} and "joint_accuracy" not in alone
    thinker_alone = evaluate(team, "arith:n=10,difficulty=1,split=test", remove="solver_0")
    # the Thinker never boxes its result, so without the Solver nobody answers
    assert thinker_alone["no_solver_accuracy"] == 0.0
    with pytest.raises(ValueError, match="thinker_0"):
        evaluate(team, "arith:n=2,difficulty=1,split=test", remove="both")
