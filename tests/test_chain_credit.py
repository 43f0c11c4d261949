"""Chains of N roles: collection through the real env and verifier, coalition values, and every
built-in credit method's N-role formula (docs/method.md#teams-of-more-than-two-roles)."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest

from agents import ScriptedPolicy
from algorithms import credit
from algorithms.credit import MissingCounterfactualError, Outcomes, needs_for, role_units
from algorithms.rollout import collect_groups
from algorithms.rollout.needs import chain_coalitions, coalition_label
from thinksolve_env import ROLES, MathVerifier, Problem

CHAIN = ("planner_0", "relay_0", "solver_0")
PROBLEMS = [Problem(id="a", problem="Add 2 and 3.", answer="5"), Problem(id="b", problem="Add 4 and 4.", answer="8")]


def _user(messages) -> str:
    return messages[-1]["content"]


def _team():
    """The planner knows the answer and boxes it (the box is stripped before others see it, the
    number stays); the relay passes on a number it was shown; the solver boxes the last number
    its teammates showed it (0 when none). So v(C) = +1 exactly when the planner is present."""
    def planner(m):
        ans = "5" if "2 and 3" in _user(m) else "8"
        return f"The key is {ans}, so \\boxed{{{ans}}}"

    def relay(m):
        nums = re.findall(r"key is (\d+)", _user(m))
        return f"I pass on \\boxed{{{nums[-1]}}}" if nums else "nothing to pass"

    def solver(m):
        text = _user(m).split("Messages from your teammates:")[-1] if "teammates" in _user(m) else ""
        nums = re.findall(r"(?<!\w)\d+", text)  # not the 0 of a role name
        return f"\\boxed{{{nums[-1] if nums else 0}}}"

    return {"planner_0": ScriptedPolicy(planner), "relay_0": ScriptedPolicy(relay), "solver_0": ScriptedPolicy(solver)}


@pytest.fixture(scope="module")
def verifier():
    v = MathVerifier()
    yield v
    v.close()


def test_chain_coalitions_by_need():
    assert chain_coalitions(CHAIN, {"solo"}) == [frozenset({"relay_0", "solver_0"})]
    assert chain_coalitions(CHAIN, {"no_solver"}) == [frozenset({"planner_0", "relay_0"})]
    assert len(chain_coalitions(CHAIN, {"drop"})) == 3
    assert len(chain_coalitions(CHAIN, {"coalitions"})) == 6
    assert len(chain_coalitions(CHAIN + ("x",), {"coalitions"})) == 14
    assert coalition_label(CHAIN, frozenset({"planner_0", "solver_0"})) == "without:relay_0"
    assert coalition_label(CHAIN, frozenset({"relay_0"})) == "only:relay_0"


def test_collection_values_and_credit_through_the_env(verifier):
    """Every coalition replayed through the real env: exact values, exact budgets, and each
    method's credit (planner essential: Shapley 2, difference 2; relay and solver 0)."""
    method = credit.get("shapley")
    assert needs_for(method, CHAIN) == {"coalitions"}
    groups = collect_groups(PROBLEMS, _team(), group_size=3, needs=method, roles=CHAIN, verifier=verifier, seed=0,
                            solo_samples=2)
    assert [g.roles for g in groups] == [CHAIN, CHAIN]
    assert all(e.reward == 1.0 for g in groups for e in g.episodes)
    for g in groups:
        assert {C: set(v) for C, v in g.coalition_rewards.items()} == {
            frozenset({"relay_0", "solver_0"}): {-1.0}, frozenset({"relay_0"}): {-1.0}, frozenset({"solver_0"}): {-1.0}}
        assert g.solo_rewards == [-1.0, -1.0]  # the team without its first role, as two-role solo samples
        for e in g.episodes:
            assert e.coalition_rewards == {frozenset({"planner_0", "relay_0"}): 1.0,
                                           frozenset({"planner_0", "solver_0"}): 1.0, frozenset({"planner_0"}): 1.0}
            assert e.no_solver_reward == 1.0
            # the solver saw both teammates, box stripped, number kept
            assert "Message from planner_0" in e.shown["solver_0"] and "Message from relay_0" in e.shown["solver_0"]
            assert "\\boxed" not in e.shown["solver_0"]
    b = groups.budget
    assert b["generate_calls"] == {"planner_0": 1, "relay_0": 1, "solver_0": 1}  # replays ride in the joint calls
    assert b["planner_0"]["generations"] == b["relay_0"]["generations"] == b["solver_0"]["generations"] == 6
    assert b["solver_0"]["verifier_calls"] == 6
    # prefix replays: one per distinct prefix (6 episodes, flat); per-problem ones: m = 2 per problem
    assert b["without:relay_0"] == {"generations": 6, "tokens": 0, "verifier_calls": 6, "by_role": {"solver_0": 6}}
    assert b["without:solver_0"]["generations"] == 0 and b["without:solver_0"]["verifier_calls"] == 6
    assert b["only:planner_0"]["verifier_calls"] == 6
    assert b["without:planner_0"]["by_role"] == {"relay_0": 4, "solver_0": 4}
    assert b["only:relay_0"]["by_role"] == {"relay_0": 4} and b["only:solver_0"]["by_role"] == {"solver_0": 4}
    phi = method(groups)
    np.testing.assert_allclose(phi["planner_0"], 2.0)
    np.testing.assert_allclose(phi["relay_0"], 0.0, atol=1e-12)
    np.testing.assert_allclose(phi["solver_0"], 0.0, atol=1e-12)
    diff = credit.get("difference")
    with pytest.raises(MissingCounterfactualError):
        # collected without 'drop': shapley's coalitions include it, so this works; a shared-only
        # collection does not
        diff(collect_groups(PROBLEMS[:1], _team(), group_size=1, needs=credit.get("shared"), roles=CHAIN,
                            verifier=verifier))
    d = diff(groups)
    np.testing.assert_allclose(d["planner_0"], 2.0)
    np.testing.assert_allclose(d["relay_0"], 0.0)
    np.testing.assert_allclose(d["solver_0"], 0.0)
    margin = credit.get("ccpo", variant="margin", lam=1.0)(groups)
    np.testing.assert_allclose(margin["planner_0"], 1.0 + (1.0 - -1.0) / 2)
    np.testing.assert_allclose(margin["relay_0"], 1.0)


def test_removing_the_middle_role_shows_the_last_only_the_first(verifier):
    groups = collect_groups(PROBLEMS[:1], _team(), group_size=1, needs={"drop"}, roles=CHAIN, verifier=verifier, seed=0)
    e = groups[0].episodes[0]
    assert e.coalition_rewards[frozenset({"planner_0", "solver_0"})] == 1.0
    assert groups[0].coalition_rewards[frozenset({"relay_0", "solver_0"})] == [-1.0]


def test_tree_collection_per_position(verifier):
    K = 2
    groups = collect_groups(PROBLEMS, _team(), group_size=2, needs=credit.get("difference"), roles=CHAIN,
                            verifier=verifier, answers_per_thought=K, seed=0)
    g = groups[0]
    assert len(g.episodes) == 2 * K * K
    assert [e.path for e in g.episodes] == [(t, r) for t in range(2) for r in range(K)
                                            for _ in range(K)]
    assert groups.budget["relay_0"]["generations"] == 2 * 2 * K
    assert groups.budget["solver_0"]["generations"] == 2 * 2 * K * K
    # the team without the solver verifies the relay's text: once per relay text, not per answer
    assert groups.budget["without:solver_0"]["verifier_calls"] == 2 * 2 * K
    # the team without the relay: once per planner text
    assert groups.budget["without:relay_0"]["generations"] == 2 * 2
    rewards = np.arange(len(g.episodes) * 2, dtype=np.float64)
    units = {r: role_units(groups, rewards, r, "thought") for r in CHAIN}
    assert units["planner_0"].rewards.size == 4 and units["relay_0"].rewards.size == 8
    assert units["solver_0"].rewards.size == 16
    np.testing.assert_array_equal(units["planner_0"].index, [0, 0, 1, 1])  # by problem
    np.testing.assert_array_equal(units["relay_0"].index, [0, 0, 1, 1, 2, 2, 3, 3])  # by planner text
    np.testing.assert_array_equal(units["solver_0"].index, np.repeat(np.arange(8), 2))  # by relay text
    np.testing.assert_allclose(units["planner_0"].rewards, [1.5, 5.5, 9.5, 13.5])
    tree = credit.get("tree")(groups)
    assert set(tree) == set(CHAIN)


def _random_chain(n_roles: int, G: int, E: int, m: int, rng) -> tuple[Outcomes, tuple[str, ...]]:
    roles = tuple(f"r{k}" for k in range(n_roles))
    joint = rng.choice([-1.0, 1.0], size=(G, E))
    co = {}
    for size in range(1, n_roles):
        for c in itertools.combinations(roles, size):
            c = frozenset(c)
            co[c] = rng.choice([-1.0, 1.0], size=(G, E) if roles[0] in c else (G, m))
    return Outcomes.from_rewards(joint, roles=roles, coalitions=co), roles


def test_shapley_exact_by_hand_and_efficient():
    roles = ("a", "b", "c")
    v = {frozenset(): -1.0, frozenset("a"): 1.0, frozenset("b"): -1.0, frozenset("c"): -1.0, frozenset("ab"): 1.0,
         frozenset("ac"): -1.0, frozenset("bc"): 1.0, frozenset("abc"): 1.0}
    co = {C: [[x]] if "a" in C else [[x]] for C, x in v.items() if C and len(C) < 3}
    o = Outcomes.from_rewards([[v[frozenset("abc")]]], roles=roles, coalitions=co)
    phi = credit.get("shapley")(o)

    def by_hand(k):
        others = [r for r in roles if r != k]
        total = 0.0
        for size in range(3):
            for c in itertools.combinations(others, size):
                c = frozenset(c)
                total += math.factorial(size) * math.factorial(2 - size) / 6 * (v[c | {k}] - v[c])
        return total
    # a: ⅓(2) + ⅙(2) + ⅙(0) + ⅓(0) = 1; b: ⅓(0) + ⅙(0) + ⅙(2) + ⅓(2) = 1; c: ⅓(0) + ⅙(-2) + ⅙(2) + ⅓(0) = 0
    assert [by_hand(k) for k in roles] == pytest.approx([1.0, 1.0, 0.0])
    assert [float(phi[k][0]) for k in roles] == pytest.approx([1.0, 1.0, 0.0])
    rng = np.random.default_rng(0)
    for n_roles in (3, 4):
        o, rs = _random_chain(n_roles, G=3, E=4, m=2, rng=rng)
        phi = credit.get("shapley")(o)
        np.testing.assert_allclose(sum(phi[k] for k in rs), o.joint - (-1.0), atol=1e-12)


def test_sampled_shapley_averages_to_exact():
    rng = np.random.default_rng(1)
    o, roles = _random_chain(5, G=2, E=3, m=2, rng=rng)
    exact = credit.get("shapley", exact_max_roles=5)(o)
    sampled = [credit.get("shapley", permutations=40, seed=s)(o) for s in range(60)]
    for k in roles:
        mean = np.mean([s[k] for s in sampled], axis=0)
        se = np.std([s[k] for s in sampled], axis=0) / np.sqrt(len(sampled)) + 1e-9
        assert np.all(np.abs(mean - exact[k]) < 4 * se + 1e-6), (k, mean, exact[k])
    m = credit.get("shapley", permutations=40)
    m(o)
    assert m.metrics["shapley/permutations"] == 40 and 0 < m.metrics["shapley/coalitions"] <= 30


def test_two_role_formulas_are_the_chain_formulas():
    """The N-role code on a two-role chain under other names gives the two-role built-ins'
    rewards, for every method that reads removals (flat and tree)."""
    rng = np.random.default_rng(2)
    for K in (1, 2):
        joint = rng.choice([-1.0, 1.0], size=(4, 4))
        solo = rng.choice([-1.0, 1.0], size=(4, 3))
        alone = rng.choice([-1.0, 1.0], size=(4, 4 // K))
        alone = np.repeat(alone, K, axis=1)
        two = Outcomes.from_rewards(joint, solo=solo, no_solver=alone, answers_per_thought=K)
        renamed = Outcomes.from_rewards(joint, answers_per_thought=K, roles=("t", "s"),
                                        coalitions={frozenset({"s"}): solo, frozenset({"t"}): alone})
        for name, params in [("shared", {}), ("difference", {}), ("shapley", {}), ("tree", {}),
                             ("ccpo", {"variant": "margin"}), ("ccpo", {"variant": "event"}),
                             ("ccpo", {"variant": "value"})]:
            a = credit.get(name, **params)(two)
            b = credit.get(name, **params)(renamed)
            for old, new in zip(ROLES, ("t", "s")):
                np.testing.assert_allclose(b[new], a[old], err_msg=f"{name} {params} K={K} {old}")


def test_two_role_only_methods_refuse_chains():
    with pytest.raises(ValueError, match="not defined for the chain"):
        needs_for(credit.get("sepo"), CHAIN)
    with pytest.raises(ValueError, match="two roles"):
        needs_for(credit.get("ccpo", variant="normalized"), CHAIN)
    assert needs_for(credit.get("sepo"), ROLES) == {"ratings"}
    assert needs_for(credit.get("difference"), ROLES) == {"solo", "no_solver"}


def test_registered_function_gets_the_chain(credit_registry_restored):  # its probes leave the registry as they found it
    seen = {}

    @credit.register("chain_probe_test", replace=True)
    def probe(groups):
        seen["roles"] = credit.chain_roles(groups)
        seen["values"] = credit.coalition_values(groups)
        r = credit.joint_rewards(groups)
        return dict.fromkeys(seen["roles"], r)

    rng = np.random.default_rng(3)
    o, roles = _random_chain(3, G=2, E=2, m=1, rng=rng)
    out = credit.get("chain_probe_test")(o)
    assert seen["roles"] == roles and len(seen["values"]) == 6 and set(out) == set(roles)

    @credit.register("chain_probe_bad_test", replace=True)
    def bad(groups):
        r = credit.joint_rewards(groups)
        return {"r0": r, "r2": r}

    with pytest.raises(ValueError, match="no rewards for"):
        credit.get("chain_probe_bad_test")(o)
