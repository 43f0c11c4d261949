"""Tabular chains of N roles (thinksolve_env.games, docs/method.md#teams-of-more-than-two-roles):
exact coalition values, Shapley values, marginals and gradients, and the sampled replays."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from agents.tabular import softmax
from thinksolve_env.games import (
    CHAIN_GAMES,
    GAMES,
    ChainGame,
    available_chains,
    chain_from_game,
    chain_values,
    coalition_generations,
    exact_values,
    make_chain,
    make_game,
    sample_chain,
)

T, R, S = "thinker_0", "relay_0", "solver_0"


def fs(*roles: str) -> frozenset:
    return frozenset(roles)


def hand_relay() -> tuple[ChainGame, list[np.ndarray]]:
    """relay-chain of 3, two states, right 1, wrong 0, a non-last text verified alone at half
    rate; the thinker copies x w.p. 0.8, the relay copies w.p. 0.75 (a coin when it sees nothing),
    the solver copies w.p. 0.9 (a coin when it sees nothing)."""
    g = make_chain("relay-chain", length=3, states=2, right=1.0, wrong=0.0, state_rate=0.5)
    pis = [np.array([[0.8, 0.2], [0.2, 0.8]]),
           np.array([[0.75, 0.25], [0.25, 0.75], [0.5, 0.5]]),
           np.array([[0.9, 0.1], [0.1, 0.9], [0.5, 0.5]])]
    return g, pis


def random_tables(game: ChainGame, seed: int = 0, scale: float = 1.0, lead: tuple = ()) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [softmax(rng.normal(0, scale, lead + (o, m))) for o, m in zip(game.n_obs, game.n_actions)]


CHAINS = [("relay-chain", {}), ("relay-chain", {"length": 4}), ("free-rider", {}), ("free-rider", {"riders": 2}),
          ("complements", {}), ("complements", {"parts": 3}), ("substitutes", {}), ("substitutes", {"copies": 3})]
IDS = [name + "".join(f"-{k}={v}" for k, v in kw.items()) for name, kw in CHAINS]


def test_the_chains_are_listed_and_the_two_role_games_unchanged():
    assert available_chains() == ["relay-chain", "free-rider", "complements", "substitutes"] == list(CHAIN_GAMES)
    assert "free-rider" not in GAMES and make_game("climbing").name == "climbing"
    assert make_chain("relay-chain", length=4).roles == (T, R, "relay_1", S)
    assert make_chain("free-rider").roles == (T, "rider_0", S)
    assert make_chain("complements").roles == make_chain("substitutes").roles == (T, "thinker_1", S)
    assert make_chain("relay-chain", roles=("a", "b", "c")).roles == ("a", "b", "c")
    with pytest.raises(ValueError, match="available: relay-chain"):
        make_chain("nope")
    with pytest.raises(TypeError, match="parameters: length"):
        make_chain("relay-chain", riders=2)
    with pytest.raises(ValueError, match="needs 3 role names"):
        make_chain("free-rider", roles=("a", "b"))


def test_hand_computed_coalition_values_shapley_and_marginals_on_a_relay_of_three():
    g, pis = hand_relay()
    ex = chain_values(g, pis)
    # P(relay right) = .8·.75 + .2·.25 = .65; P(solver right) = .65·.9 + .35·.1 = .62
    want = {fs(): -1.0, fs(T): 2 * 0.5 * 0.8 - 1, fs(R): 2 * 0.5 * 0.5 - 1, fs(S): 0.0,
            fs(T, R): 2 * 0.5 * 0.65 - 1, fs(T, S): 2 * 0.74 - 1, fs(R, S): 0.0, fs(T, R, S): 2 * 0.62 - 1}
    assert set(ex.v) == set(want)
    for c, v in want.items():
        assert float(ex.v[c]) == pytest.approx(v, abs=1e-12), sorted(c)
    assert float(ex.J) == pytest.approx(0.24) and float(ex.success) == pytest.approx(0.62)
    # φ_k = Σ_C |C|!(2 − |C|)!/3! (v(C ∪ k) − v(C)): weights 1/3, 1/6, 1/6, 1/3
    phi = {T: 0.8 / 3 + 0.15 / 6 + 0.48 / 6 + 0.24 / 3,
           R: 0.5 / 3 - 0.15 / 6 + 0.0 / 6 - 0.24 / 3,
           S: 1.0 / 3 + 0.68 / 6 + 0.5 / 6 + 0.59 / 3}
    for role, value in phi.items():
        assert float(ex.shapley[role]) == pytest.approx(value, abs=1e-12), role
    assert sum(float(ex.shapley[r]) for r in g.roles) == pytest.approx(float(ex.J) + 1)  # efficiency
    # CCPO / difference margins Δ_k = v(N) − v(N∖k): the garbling relay's is negative
    for role, value in {T: 0.24 - 0.0, R: 0.24 - 0.48, S: 0.24 + 0.35}.items():
        assert float(ex.marginal[role]) == pytest.approx(value, abs=1e-12), role
    # the thinker's exact advantage on x = 0: Q(right message) = 2·.7 − 1, Q(wrong) = 2·.3 − 1, V = .24
    np.testing.assert_allclose(ex.Q[0][0], [0.4, -0.4], atol=1e-12)
    np.testing.assert_allclose(ex.A[0][0], [0.16, -0.64], atol=1e-12)
    # the solver's: r − Q over its answers, after thinker 0 and relay 0 wrote 0 (solver copies w.p. .9)
    np.testing.assert_allclose(ex.A[2][0, 0, 0], [1 - 0.8, -1 - 0.8], atol=1e-12)


@pytest.mark.parametrize("name,kw", CHAINS, ids=IDS)
def test_efficiency_and_the_whole_team_at_random_policies(name, kw):
    g = make_chain(name, **kw)
    ex = chain_values(g, random_tables(g, seed=3, lead=(5,)))
    total = sum(ex.shapley[r] for r in g.roles)
    np.testing.assert_allclose(total, ex.v[frozenset(g.roles)] + 1, atol=1e-12)
    np.testing.assert_allclose(ex.v[frozenset(g.roles)], ex.J, atol=1e-12)
    assert np.all(ex.v[frozenset()] == -1)
    # advantages are centred under the role's own policy
    pis = random_tables(g, seed=3, lead=(5,))
    for k in range(g.n_roles):
        obs = g.obs[k][(slice(None),) + tuple(slice(0, m) for m in g.n_actions[:k])]
        np.testing.assert_allclose((pis[k][:, obs, :] * ex.A[k]).sum(-1), 0, atol=1e-12)


def _fd(game: ChainGame, logits: list[np.ndarray], h: float = 1e-6) -> list[np.ndarray]:
    out = []
    for k, lk in enumerate(logits):
        grad = np.zeros_like(lk)
        for i in np.ndindex(lk.shape):
            d = np.zeros_like(lk)
            d[i] = h
            up = [softmax(x + d) if j == k else softmax(x) for j, x in enumerate(logits)]
            down = [softmax(x - d) if j == k else softmax(x) for j, x in enumerate(logits)]
            grad[i] = (float(chain_values(game, up).J) - float(chain_values(game, down).J)) / (2 * h)
        out.append(grad)
    return out


@pytest.mark.parametrize("name,kw", CHAINS[:5] + CHAINS[6:7], ids=IDS[:5] + IDS[6:7])
def test_exact_gradients_match_finite_differences(name, kw):
    g = make_chain(name, **kw)
    rng = np.random.default_rng(1)
    logits = [rng.normal(size=(o, m)) for o, m in zip(g.n_obs, g.n_actions)]
    ex = chain_values(g, [softmax(x) for x in logits])
    for k, (got, want) in enumerate(zip(ex.grad, _fd(g, logits))):
        np.testing.assert_allclose(got, want, atol=1e-7, err_msg=g.roles[k])


def test_leading_batch_dimensions_match_one_table_at_a_time():
    g = make_chain("complements")
    pis = random_tables(g, seed=4, lead=(3,))
    batched = chain_values(g, pis)
    for b in range(3):
        one = chain_values(g, [p[b] for p in pis])
        assert float(one.J) == pytest.approx(float(batched.J[b]))
        for k in range(g.n_roles):
            np.testing.assert_allclose(one.grad[k], batched.grad[k][b], atol=1e-12)
        for c in one.v:
            assert float(one.v[c]) == pytest.approx(float(batched.v[c][b]))


@pytest.mark.parametrize("name", list(GAMES))
def test_a_two_role_game_as_a_chain_has_the_same_values(name):
    game = make_game(name)
    chain = chain_from_game(game)
    rng = np.random.default_rng(2)
    pT = softmax(rng.normal(size=(game.n_thinker_obs, game.n_thoughts)))
    pS = softmax(rng.normal(size=(game.n_solver_obs, game.n_answers)))
    two, n = exact_values(game, pT, pS), chain_values(chain, [pT, pS])
    assert float(n.J) == pytest.approx(float(two.J))
    np.testing.assert_allclose(n.grad[0], two.grad_T, atol=1e-12)
    np.testing.assert_allclose(n.grad[1], two.grad_S, atol=1e-12)
    np.testing.assert_allclose(n.A[0], two.A_T, atol=1e-12)
    px = game.problem_probs
    assert float(n.v[fs("solver_0")]) == pytest.approx(float(px @ two.b))  # the solo value
    assert float(n.v[fs("thinker_0")]) == pytest.approx(float(px @ (pT[game.thinker_obs] * (2 * game.states - 1)).sum(-1)))


def test_free_rider_is_a_null_player():
    for kw in ({}, {"riders": 2}):
        g = make_chain("free-rider", **kw)
        ex = chain_values(g, random_tables(g, seed=5, lead=(4,)))
        for rider in g.roles[1:-1]:
            np.testing.assert_allclose(ex.marginal[rider], 0, atol=1e-12)
            np.testing.assert_allclose(ex.shapley[rider], 0, atol=1e-12)
            for c in ex.v:
                np.testing.assert_allclose(ex.v[c | {rider}], ex.v[c], atol=1e-12)
            np.testing.assert_allclose(ex.grad[g.position(rider)], 0, atol=1e-12)
        assert np.all(np.abs(ex.marginal[S]) > 1e-3)


def test_substitutes_have_zero_marginals_and_shapley_splits_the_value():
    g = make_chain("substitutes")
    ex = chain_values(g, random_tables(g, seed=6, lead=(4,)))
    t0, t1 = g.roles[:2]
    for t in (t0, t1):
        np.testing.assert_allclose(ex.marginal[t], 0, atol=1e-12)
        np.testing.assert_allclose(ex.grad[g.position(t)], 0, atol=1e-12)
    np.testing.assert_allclose(ex.shapley[t0], ex.shapley[t1], atol=1e-12)
    # φ_copy = (v({copy}) + 1)/3 + (v(N) − v({solver}))/6: the key's value is split between the copies
    V, g_solo, alone = ex.v[frozenset(g.roles)], ex.v[fs(S)], ex.v[fs(t0)]
    np.testing.assert_allclose(ex.shapley[t0], (alone + 1) / 3 + (V - g_solo) / 6, atol=1e-12)
    # at the optimum (copies say anything, the solver answers what it is shown)
    best = [np.full((3, 2), 0.5), np.full((3, 2), 0.5), np.eye(3)[[0, 1, 2, 0]]]
    opt = chain_values(g, best)
    assert float(opt.success) == pytest.approx(0.9)
    # v(N) = .8; v({solver}) = (.8 − .8 − .8)/3 (it guesses answer 0); a copy alone: 2·.1·.9 − 1
    assert float(opt.shapley[t0]) == pytest.approx((0.18 / 3) + (0.8 + 0.8 / 3) / 6)
    big = make_chain("substitutes", copies=3)
    exb = chain_values(big, random_tables(big, seed=6))
    for t in big.roles[:3]:
        assert float(exb.marginal[t]) == pytest.approx(0, abs=1e-12)
        assert float(exb.shapley[t]) == pytest.approx(float(exb.shapley[big.roles[0]])) and float(exb.shapley[t]) > 0


def test_complements_each_get_the_whole_value_as_marginal():
    for kw in ({}, {"parts": 3}):
        g = make_chain("complements", **kw)
        ex = chain_values(g, random_tables(g, seed=7, lead=(4,)))
        whole = ex.v[frozenset(g.roles)] + 1
        for role in g.roles:
            np.testing.assert_allclose(ex.marginal[role], whole, atol=1e-12)
            np.testing.assert_allclose(ex.shapley[role], whole / g.n_roles, atol=1e-12)
        assert all(np.allclose(ex.v[c], -1, atol=1e-12) for c in ex.v if len(c) < g.n_roles)


def test_the_stated_optimum_is_the_best_deterministic_team():
    for name, kw in (("relay-chain", {"states": 2}), ("free-rider", {"states": 2}),
                     ("substitutes", {"states": 2, "phrasings": 1}), ("relay-chain", {"states": 2, "noise": 0.2})):
        g = make_chain(name, **kw)
        brute = dataclasses.replace(g, params={})
        assert brute.optimum() == pytest.approx(g.optimum()), name


def test_sampled_coalition_values_average_to_the_exact_ones():
    rng = np.random.default_rng(8)
    for name in available_chains():
        g = make_chain(name)
        pis = random_tables(g, seed=9)
        ex = chain_values(g, pis)
        b = sample_chain(g, pis, rng, groups=3000, episodes=4, samples=3)
        assert b.reward.shape == (3000, 4) and b.actions.shape == (3000, 4, g.n_roles)
        assert set(b.coalitions) == set(g.coalitions(proper=True))
        for c, v in [(frozenset(g.roles), b.reward), *b.coalitions.items()]:
            assert v.shape == ((3000, 4) if g.roles[0] in c else (3000, 3))
            se = max(v.std() / np.sqrt(v.size) * 2, 1e-9)  # episodes of a group share a problem: be generous
            assert abs(v.mean() - float(ex.v[c])) < 4 * se, (name, sorted(c), v.mean(), float(ex.v[c]))


def test_replays_keep_the_episode_prefix():
    g = make_chain("relay-chain", length=3, states=3, right=1.0, wrong=0.0, state_rate=1.0)
    pis = random_tables(g, seed=10)
    b = sample_chain(g, pis, np.random.default_rng(11), groups=500, episodes=2, samples=3,
                     coalitions=[fs(T), fs(T, R), fs(T, S), fs(R, S)])
    right = b.actions == b.x[:, None, None]
    # nobody after the first missing role: the last kept text is verified (right iff it names x)
    np.testing.assert_array_equal(b.coalitions[fs(T)] > 0, right[:, :, 0])
    np.testing.assert_array_equal(b.coalitions[fs(T, R)] > 0, right[:, :, 1])
    assert b.coalitions[fs(R, S)].shape == (500, 3)
    # {T, S}: T's own message kept, the solver resampled on it: its mean given T's message is exact
    ex = chain_values(g, pis)
    ts = b.coalitions[fs(T, S)]
    q = (2 * pis[2][:3] - 1).T  # q[x, m] = E[R | x, S sees m] = 2π_S(x | m) − 1
    want = q[b.x[:, None], b.actions[:, :, 0]]
    assert abs(ts.mean() - want.mean()) < 4 * ts.std() / np.sqrt(ts.size)
    assert float(ex.v[fs(T, S)]) == pytest.approx(float(np.mean([pis[0][x] @ q[x] for x in range(3)])))
    assert b.generations[fs(T)] == {T: 0, R: 0, S: 0}
    assert b.generations[fs(T, S)] == {T: 0, R: 0, S: 2}
    assert b.generations[fs(R, S)] == {T: 0, R: 3, S: 3}
    assert coalition_generations((T, R, "relay_1", S), fs(T, "relay_1", S), 8, 4) == {T: 0, R: 0, "relay_1": 8, S: 8}


def test_per_group_tables_and_exact_advantages_of_sampled_actions():
    g = make_chain("free-rider")
    pis = random_tables(g, seed=12, lead=(6,))
    b = sample_chain(g, pis, np.random.default_rng(13), groups=6, episodes=5, samples=2, coalitions=[])
    assert b.coalitions == {}
    ex = chain_values(g, pis)
    adv = ex.advantages(b, table=np.arange(6))
    assert adv.shape == (6, 5, 3)
    np.testing.assert_allclose(adv[:, :, 1], 0, atol=1e-12)  # the rider's actions change nothing
    i, e = 2, 3
    x, (a0, a1, a2) = b.x[i], b.actions[i, e]
    assert adv[i, e, 0] == pytest.approx(ex.Q[0][i, x, a0] - ex.V[0][i, x])
    assert adv[i, e, 2] == pytest.approx(ex.Q[2][i, x, a0, a1, a2] - ex.V[2][i, x, a0, a1])
    flat = sample_chain(g, g.uniform(), np.random.default_rng(15), groups=400, episodes=2,
                        coalitions=[])
    for k in range(3):  # every episode draws every role afresh: two episodes agree 1/3 of the time
        assert abs(np.mean(flat.actions[:, 0, k] == flat.actions[:, 1, k]) - 1 / 3) < 0.1
    tree = sample_chain(g, [p[0] for p in pis], np.random.default_rng(14), groups=3, episodes=6, branches=3,
                        coalitions=[fs(T, "rider_0")])
    first = tree.actions[:, :, 0].reshape(3, 2, 3)
    assert np.all(first == first[:, :, :1])  # text-major: three continuations of each first-role text
    with pytest.raises(ValueError, match="multiple of branches"):
        sample_chain(g, [p[0] for p in pis], np.random.default_rng(0), groups=2, episodes=5, branches=2)
    with pytest.raises(ValueError, match="needs samples >= 1"):
        sample_chain(g, [p[0] for p in pis], np.random.default_rng(0), groups=2, episodes=1, samples=0)


# --------------------------------------------------------------------------- the N-role lab (algorithms.lab.chains)


def _specs():
    from algorithms.lab import MethodSpec

    return [MethodSpec("shared", "shared"), MethodSpec("ccpo-event", "ccpo", {"variant": "event"}),
            MethodSpec("ccpo-margin", "ccpo", {"variant": "margin"}), MethodSpec("ccpo-value", "ccpo", {"variant": "value"}),
            MethodSpec("difference", "difference"), MethodSpec("shapley", "shapley")]


def test_chain_costs_and_needed_coalitions():
    from algorithms import credit
    from algorithms.lab import FLAT, chain_cost, chain_needs, needed_coalitions

    roles = (T, "rider_0", S)
    assert chain_needs(credit.get("shared"), roles) == frozenset()
    drop = needed_coalitions(chain_needs(credit.get("difference"), roles), roles)
    assert drop == [fs(T, "rider_0"), fs(T, S), fs("rider_0", S)]
    every = needed_coalitions(chain_needs(credit.get("shapley"), roles), roles)
    assert len(every) == 6
    with pytest.raises(ValueError, match="two roles"):
        chain_needs(credit.get("ccpo", variant="normalized"), roles)
    # flat 8x1, m = 4: drop replays S on the rider-less prefix (8), and 4 plays of {rider, S}
    cost = chain_cost(roles, drop, FLAT)
    assert cost["replay_generations_per_episode"] == 2 and cost["last_role_generations_per_problem"] == 20
    cost = chain_cost(roles, every, FLAT)
    assert cost["replay_generations_per_episode"] == 3 and cost["last_role_generations_per_problem"] == 24
    assert chain_cost(roles, [], FLAT)["generations_per_problem"] == 24


def test_credit_on_a_chain_batch_averages_to_the_exact_values():
    """difference's mean credit is the exact marginal, sampled Shapley's the exact Shapley value
    (and it is efficient episode by episode); on the free rider shared pays the team's value,
    difference ≈ 0."""
    from algorithms import credit
    from algorithms.lab import chain_outcomes

    g = make_chain("free-rider")
    pis = random_tables(g, seed=20)
    ex = chain_values(g, pis)
    b = sample_chain(g, pis, np.random.default_rng(21), groups=4000, episodes=4, samples=4)
    out = chain_outcomes(b)
    assert out.roles == g.roles and len(out) == 4000
    R = b.reward.reshape(-1)
    shared, diff, shap = (credit.get(m)(out) for m in ("shared", "difference", "shapley"))
    np.testing.assert_allclose(sum(shap[r] for r in g.roles), R + 1, atol=1e-12)  # efficiency, per episode
    for role in g.roles:
        np.testing.assert_array_equal(shared[role], R)
        for got, want in ((diff[role], ex.marginal[role]), (shap[role], ex.shapley[role])):
            se = got.reshape(4000, 4).mean(1).std() / np.sqrt(4000)
            assert abs(got.mean() - float(want)) < 4 * se + 1e-9, (role, got.mean(), float(want))
    rider = "rider_0"
    assert abs(shared[rider].mean() - float(ex.J)) < 0.05 and abs(float(ex.J)) > 0.1
    assert abs(diff[rider].mean()) < 0.03


def test_chain_fidelity_rows_carry_roles_and_per_role_scores():
    from algorithms.lab import FLAT, TREE, chain_fidelity_scores

    g = make_chain("substitutes")
    rows = chain_fidelity_scores(g, _specs(), [("grpo", {}), ("rloo", {})], (FLAT, TREE), batches=40, problems_per_batch=2)
    assert len(rows) == 2 * 6 * 2
    for r in rows:
        assert r["roles"] == 3 and r["role_names"] == list(g.roles)
        for role in g.roles:
            for key in ("sign_accuracy", "spearman", "grad_cosine", "credit_mean", "bonus_mean", "advantage_mean",
                        "advantage_rms", "exact_shapley", "exact_marginal"):
                assert f"{role}_{key}" in r, (role, key)
        # a substitute's actions are all worth the same: nothing to rank, no gradient to point at
        assert r["thinker_0_sign_accuracy"] is None and r["thinker_0_grad_cosine"] is None
        assert r["solver_0_sign_accuracy"] > 0.6
        assert r["thinker_0_exact_marginal"] == pytest.approx(0, abs=1e-12)
    by = {(r["collection"], r["method"], r["estimator"]): r for r in rows}
    shared, diff = by[("flat 8x1", "shared", "grpo")], by[("flat 8x1", "difference", "grpo")]
    assert shared["thinker_0_credit_mean"] == shared["solver_0_credit_mean"] and shared["thinker_0_bonus_mean"] == 0
    lo, hi = diff["thinker_1_credit_mean_ci95"]
    assert lo < 0 < hi
    assert shared["replay_generations_per_episode"] == 0 and by[("flat 8x1", "shapley", "grpo")][
        "replay_generations_per_episode"] == 3
    assert by[("tree 4x2", "shared", "grpo")]["last_role_generations_per_problem"] == 8


def test_chain_learning_improves_and_is_reproducible():
    from algorithms.lab import FLAT, chain_learning_runs

    g = make_chain("substitutes")
    specs = _specs()[:1] + _specs()[4:5]
    a = chain_learning_runs(g, specs, [("grpo", {})], (FLAT,), seeds=20, updates=15)
    b = chain_learning_runs(g, specs, [("grpo", {})], (FLAT,), seeds=20, updates=15)
    assert [r["success_after"] for r in a] == [r["success_after"] for r in b]
    start = float(chain_values(g, g.uniform()).success)
    for r in a:
        assert r["roles"] == 3 and r["success_after"] > start + 0.2 and r["optimum"] == pytest.approx(0.9)
    assert a[0]["last_role_generations"] == 8 * 2 * 15 and a[1]["last_role_generations"] == 20 * 2 * 15


def test_the_benchmark_runs_the_chains(tmp_path):
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import credit_fidelity

    rc = credit_fidelity.main(["--games", "free-rider", "relay-chain:length=4", "--methods", "shared", "difference",
                               "sepo", "--estimators", "grpo", "--batches", "4", "--seeds", "3", "--updates", "2",
                               "--workers", "1", "--out", str(tmp_path)])
    assert rc == 0
    record = json.loads((tmp_path / "credit_fidelity_chains.json").read_text())
    rows = record["rows"]
    assert {(r["game"], r["roles"]) for r in rows} == {("free-rider", 3), ("relay-chain:length=4", 4)}
    assert {r["method"] for r in rows} == {"shared", "difference"}  # sepo is defined for two roles only
    assert record["games"]["free-rider"]["skipped_methods"] == ["sepo"]
    r = rows[0]
    assert {"rider_0_sign_accuracy", "rider_0_credit_mean", "rider_0_advantage_mean", "success_after",
            "replay_generations_per_episode", "last_role_generations_per_problem"} <= set(r)
    md = (tmp_path / "credit_fidelity_chains.md").read_text()
    assert "## free-rider (3 roles: thinker_0 → rider_0 → solver_0)" in md and "relay_1 credit" in md
    assert (tmp_path / "credit_fidelity_chains_plot.png").stat().st_size > 1000
    assert credit_fidelity.main(["--games", "free-rider:riders=0", "--out", str(tmp_path)]) == 2
    assert credit_fidelity.main(["--games", "free-rider", "--methods", "sepo", "--out", str(tmp_path)]) == 2
