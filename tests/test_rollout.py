"""collect_groups through the real env and verifier with scripted policies: batching (one
generate call per role and phase), counterfactual replays, budget counts, and a scenario where
the Thinker is redundant on one problem and decisive on another, with every credit method's
rewards asserted exactly."""

from __future__ import annotations

import numpy as np
import pytest

from agents import Completion, ScriptedPolicy
from algorithms import credit
from algorithms.rollout import EpisodeGroup, collect_groups
from thinksolve_env import MathVerifier, Problem

T, S = "thinker_0", "solver_0"
PROBLEMS = [Problem("easy", "What is 2+2?", "4"), Problem("hard", "What is 17*23?", "391")]
GOOD = "17*23 = 340 + 51 = 391, so the answer is 391."


def rating(msgs):
    return "Rate the team's" in msgs[-1]["content"]


def make_team():
    """Problem "easy": the Solver is right alone, the Thinker's thought holds no answer
    (redundant Thinker). Problem "hard": the Solver is wrong alone and right only with the good
    thought, which the Thinker writes on its first episode, not its second (decisive Thinker)."""
    seen = {"hard": 0}

    def thinker(msgs):
        u = msgs[-1]["content"]
        if rating(msgs):
            if "17*23" not in u:
                return '{"outcome": "correct", "pair": [0.2, 0.8], "brief_reason": "solver did it"}'
            if "Verifier outcome: correct" in u:
                return '{"outcome": "correct", "pair": [0.8, 0.2], "brief_reason": "my plan"}'
            return 'Honestly: {"outcome": "wrong", "pair": [0.7, 0.3], "brief_reason": "bad hint"}'
        if "17*23" in u:
            seen["hard"] += 1
            return GOOD if seen["hard"] % 2 == 1 else "Just guess."
        return "Add the two numbers."

    def solver(msgs):
        u = msgs[-1]["content"]
        if rating(msgs):
            if "17*23" not in u:
                return "pair: [0.3, 0.7]"
            return "[0.6, 0.4]" if "Verifier outcome: correct" in u else "No idea."
        if "17*23" in u:
            return "\\boxed{391}" if "340 + 51" in u else "\\boxed{400}"
        return "2+2 = \\boxed{4}"

    return ScriptedPolicy(thinker, name="thinker"), ScriptedPolicy(solver, name="solver")


@pytest.fixture()
def verifier():
    with MathVerifier(workers=0) as v:
        yield v


CF = {"solo", "no_solver"}  # what every method but SEPO needs


def test_scenario_every_method_exactly(verifier):
    th, so = make_team()
    groups = collect_groups(PROBLEMS, {T: th, S: so}, group_size=2, needs=CF, verifier=verifier, seed=3)
    # One Thinker call (4 thoughts) and one Solver call holding 4 joint + 4 solo prompts.
    assert (th.calls, so.calls) == (1, 1)
    assert (th.prompts_seen, so.prompts_seen) == (4, 8)
    assert [g.problem.id for g in groups] == ["easy", "hard"]
    np.testing.assert_array_equal(groups[0].rewards, [1, 1])
    np.testing.assert_array_equal(groups[1].rewards, [1, -1])
    assert groups[0].solo_rewards == [1, 1] and groups[1].solo_rewards == [-1, -1]
    assert [e.no_solver_reward for g in groups for e in g.episodes] == [-1, -1, 1, -1]
    assert groups[1].episodes[0].verification["extracted"] == "391"
    assert groups.budget["generate_calls"] == {T: 1, S: 1}
    assert {p: groups.budget[p]["generations"] for p in ("thinker", "solver", "solo", "no_solver")} == \
        {"thinker": 4, "solver": 4, "solo": 4, "no_solver": 0}
    assert {p: groups.budget[p]["verifier_calls"] for p in ("thinker", "solver", "solo", "no_solver")} == \
        {"thinker": 0, "solver": 4, "solo": 4, "no_solver": 4}

    expected = {  # order: easy0, easy1, hard0, hard1; b = +1 (easy), −1 (hard)
        "shared": ([1, 1, 1, -1], [1, 1, 1, -1]),
        "ccpo": ([1, 1, 1.2, -1], [1, 1, 1, -1]),  # helped only on hard0
        "difference": ([0, 0, 2, 0], [2, 2, 0, 0]),  # R − b;  R − R¬S
        "shapley": ([0, 0, 2, 0], [2, 2, 0, 0]),  # ½[(R¬S+1)+(R−b)], ½[(b+1)+(R−R¬S)]
    }
    for name, (rt, rs) in expected.items():
        r = credit.get(name)(groups)
        np.testing.assert_allclose(r[T], rt, err_msg=name)
        np.testing.assert_allclose(r[S], rs, err_msg=name)
    r = credit.get("ccpo", variant="margin")(groups)  # T: R + .1(R − b), S: R + .1(R − R¬S)
    np.testing.assert_allclose(r[T], [1, 1, 1.2, -1])
    np.testing.assert_allclose(r[S], [1.2, 1.2, 1, -1])


def test_scenario_sepo_ratings(verifier):
    th, so = make_team()
    method = credit.get("sepo")
    groups = collect_groups(PROBLEMS, {T: th, S: so}, group_size=2, needs=method, verifier=verifier)
    # Thinker: thoughts + ratings; Solver: answers + ratings. No solo prompts (not needed).
    assert (th.calls, so.calls) == (2, 2) and (th.prompts_seen, so.prompts_seen) == (8, 8)
    assert groups.budget["rating_thinker"]["generations"] == 4 and groups[0].solo_rewards is None
    e = groups[1].episodes[0]
    assert "Verifier outcome: correct" in e.rating_prompts[T][-1]["content"]
    assert "You are the Solver" in e.rating_prompts[S][-1]["content"]
    r = method(groups)
    # easy: identical ratings → bonus 0. hard: w_T = 66/92 (correct) and 56/92 (wrong; Solver's
    # "No idea." is neutral) → bonus_T = ±5/92, bonus_S = ∓5/92; shaping 0.2·5/92 = 1/92.
    np.testing.assert_allclose(r[T], [1, 1, 1 + 1 / 92, -1 + 1 / 92])
    np.testing.assert_allclose(r[S], [1, 1, 1 - 1 / 92, -1 - 1 / 92])
    assert method.metrics["sepo/valid_rate"] == 7 / 8


def test_prompts_and_thought_hand_over(verifier):
    th, so = make_team()
    groups = collect_groups(PROBLEMS, {T: th, S: so}, group_size=2, needs={"solo"}, verifier=verifier)
    e = groups[1].episodes[0]
    assert e.prompts[T][-1]["content"] == "What is 17*23?"
    assert GOOD in e.prompts[S][-1]["content"] and e.thought == GOOD
    assert "Thinker" not in groups[1].solo_prompt[-1]["content"]
    assert isinstance(e.completions[S], Completion) and e.actions[S] == "\\boxed{391}"
    assert groups[0].episodes[0].no_solver_reward is None  # not asked for: not collected


def test_same_policy_for_both_roles_is_one_call_per_role_and_phase(verifier):
    th, so = make_team()
    def solver_prompt(m):
        return "Thinker's thought" in m[-1]["content"] or "Solve the problem directly" in m[0]["content"]

    both = ScriptedPolicy(lambda m: so.fn(m) if solver_prompt(m) else th.fn(m))
    groups = collect_groups(PROBLEMS, {T: both, S: both}, group_size=3, needs=CF, verifier=verifier)
    assert both.calls == 2 and both.prompts_seen == 6 + 6 + 6
    assert groups.budget["generate_calls"] == {T: 1, S: 1}


def test_fewer_solo_samples_is_a_budget_choice(verifier):
    th, so = make_team()
    groups = collect_groups(PROBLEMS, {T: th, S: so}, group_size=4, needs=CF, solo_samples=1, verifier=verifier)
    assert so.calls == 1 and so.prompts_seen == 8 + 2
    assert [g.solo_rewards for g in groups] == [[1], [-1]]
    assert groups.budget["solo"] == {"generations": 2, "tokens": 0, "verifier_calls": 2}


def test_bad_arguments(verifier):
    th, so = make_team()
    pol = {T: th, S: so}
    with pytest.raises(ValueError, match=r"unknown counterfactual.*known: 'solo'"):
        collect_groups(PROBLEMS, pol, group_size=2, needs={"solo", "both"}, verifier=verifier)
    with pytest.raises(TypeError, match=r"unknown sampling keyword.*'temp'"):
        collect_groups(PROBLEMS, pol, group_size=2, needs=(), verifier=verifier, temp=0.7)
    with pytest.raises(ValueError, match=r"no policy for 'solver_0'.*'solo'"):
        collect_groups(PROBLEMS, {T: th}, group_size=2, needs={"solo"}, verifier=verifier)
    with pytest.raises(ValueError, match="group_size"):
        collect_groups(PROBLEMS, pol, group_size=0, needs=(), verifier=verifier)
    with pytest.raises(ValueError, match="solo_samples=0"):
        collect_groups(PROBLEMS, pol, group_size=2, needs={"solo"}, solo_samples=0, verifier=verifier)

    class Short:
        def generate(self, prompts, **kw):
            return [Completion("x")]

    with pytest.raises(RuntimeError, match="returned 1 completions for 4 prompts"):
        collect_groups(PROBLEMS, {T: Short(), S: so}, group_size=2, needs=(), verifier=verifier)


def test_credit_on_groups_collected_without_its_counterfactual(verifier):
    th, so = make_team()
    groups = collect_groups(PROBLEMS, {T: th, S: so}, group_size=1, needs=(), verifier=verifier)
    with pytest.raises(credit.MissingCounterfactualError, match="'solo' counterfactual"):
        credit.get("ccpo")(groups)


def test_from_rewards_checks_lengths():
    with pytest.raises(ValueError, match="no_solver needs one entry per joint episode"):
        EpisodeGroup.from_rewards([1, -1], no_solver=[1])
