"""Tabular Think–Solve games (thinksolve_env.games) and tabular softmax policies (agents.tabular)."""

from __future__ import annotations

import numpy as np
import pytest

from agents.tabular import TabularSoftmaxPolicy, softmax
from thinksolve_env import prompts as P
from thinksolve_env.games import (
    GAMES,
    RATING_PAIRS,
    TabularGame,
    available_games,
    exact_values,
    make_game,
    sample,
    sample_ratings,
)


def two_by_two() -> TabularGame:
    """1 problem, 2 thoughts, 2 answers; the Solver sees the thought (obs 0, 1) or nothing (obs 2)."""
    success = np.array([[[0.9, 0.5], [0.3, 0.7], [0.6, 0.4]]])
    return TabularGame("2x2", np.array([1.0]), success, thinker_obs=np.array([0]), solver_obs=np.array([[0, 1, 2]]),
                       states=np.array([[0.2, 0.0]]))


def test_exact_values_by_hand_on_a_2x2_game():
    g = two_by_two()
    pi_T = np.array([[0.5, 0.5]])
    pi_S = np.array([[0.75, 0.25], [0.5, 0.5], [0.5, 0.5]])
    ex = exact_values(g, pi_T, pi_S)
    # r = 2p - 1: t0 -> [0.8, 0.0], t1 -> [-0.4, 0.4], no thought -> [0.2, -0.2]
    np.testing.assert_allclose(ex.Q_T, [[0.6, 0.0]], atol=1e-12)
    np.testing.assert_allclose(ex.V, [0.3])
    np.testing.assert_allclose(ex.A_T, [[0.3, -0.3]])
    np.testing.assert_allclose(ex.b, [0.0], atol=1e-15)
    np.testing.assert_allclose(ex.A_S, [[[0.2, -0.6], [-0.4, 0.4]]], atol=1e-12)
    np.testing.assert_allclose(ex.J, 0.3)
    np.testing.assert_allclose(ex.success, 0.65)
    np.testing.assert_allclose(ex.grad_T, [[0.15, -0.15]])
    np.testing.assert_allclose(ex.grad_S, [[0.075, -0.075], [-0.1, 0.1], [0.0, 0.0]], atol=1e-12)
    # the best deterministic joint policy: thought 0, answer 0
    assert g.optimum() == pytest.approx(0.9)


def _fd_grad(game, lT, lS, h=1e-6):
    J = lambda a, b: float(exact_values(game, softmax(a), softmax(b)).J)  # noqa: E731
    out = []
    for logits, other, first in ((lT, lS, True), (lS, lT, False)):
        g = np.zeros_like(logits)
        for i in np.ndindex(logits.shape):
            d = np.zeros_like(logits)
            d[i] = h
            if first:
                g[i] = (J(logits + d, other) - J(logits - d, other)) / (2 * h)
            else:
                g[i] = (J(other, logits + d) - J(other, logits - d)) / (2 * h)
        out.append(g)
    return out


@pytest.mark.parametrize("name", list(GAMES))
def test_exact_gradient_matches_finite_differences(name):
    game = make_game(name)
    rng = np.random.default_rng(1)
    lT = rng.normal(size=(game.n_thinker_obs, game.n_thoughts))
    lS = rng.normal(size=(game.n_solver_obs, game.n_answers))
    ex = exact_values(game, softmax(lT), softmax(lS))
    gT, gS = _fd_grad(game, lT, lS)
    np.testing.assert_allclose(ex.grad_T, gT, atol=1e-8)
    np.testing.assert_allclose(ex.grad_S, gS, atol=1e-8)
    # advantages are centred: Σ_t π_T A_T = 0 and Σ_a π_S A_S = 0
    pT = softmax(lT)[game.thinker_obs]
    np.testing.assert_allclose((pT * ex.A_T).sum(-1), 0, atol=1e-12)


def test_leading_batch_dimensions_match_one_table_at_a_time():
    game = make_game("signalling")
    rng = np.random.default_rng(2)
    lT = rng.normal(size=(5, game.n_thinker_obs, game.n_thoughts))
    lS = rng.normal(size=(5, game.n_solver_obs, game.n_answers))
    ex = exact_values(game, softmax(lT), softmax(lS))
    for s in range(5):
        one = exact_values(game, softmax(lT[s]), softmax(lS[s]))
        np.testing.assert_allclose(ex.grad_S[s], one.grad_S)
        np.testing.assert_allclose(ex.A_T[s], one.A_T)


def test_game_shapes_from_the_literature():
    unif = lambda n_obs, k: np.full((n_obs, k), 1 / k)  # noqa: E731
    hh = make_game("helpful-harmful")
    ex = exact_values(hh, unif(hh.n_thinker_obs, 3), unif(hh.n_solver_obs, 2))
    assert np.all(ex.A_T[:, 0] > 0) and np.all(np.abs(ex.A_T[:, 1]) < 1e-12) and np.all(ex.A_T[:, 2] < 0)
    np.testing.assert_allclose(ex.b, 2 * np.array([0.3, 0.5, 0.7]) - 1)  # Thinker removed: p0
    climb = make_game("climbing")
    ex = exact_values(climb, unif(1, 3), unif(climb.n_solver_obs, 3))
    assert int(np.argmax(ex.Q_T[0])) == 2  # the safe row wins under a uniform Solver
    assert climb.optimum() == pytest.approx(1.0)  # (11 + 30)/41
    two = make_game("two-step")
    ex = exact_values(two, unif(1, 4), unif(two.n_solver_obs, 2))
    assert ex.Q_T[0, :2].min() > ex.Q_T[0, 2:].max()  # state A wins locally
    assert two.optimum() == pytest.approx(1.0)
    sig = make_game("signalling")
    assert sig.n_solver_obs == sig.n_thoughts + 1  # the Solver sees only the message
    assert sig.optimum() == pytest.approx(0.9)
    lazy = make_game("lazy-thinker")
    ex = exact_values(lazy, unif(1, 3), unif(lazy.n_solver_obs, 2))
    assert np.abs(ex.A_T).max() < np.abs(ex.A_S).max() / 5  # the Solver's answer decides


def test_noise_and_removal_parameters():
    clean, noisy = make_game("helpful-harmful"), make_game("helpful-harmful", noise=0.5)
    np.testing.assert_allclose(noisy.success, 0.5 * clean.success + 0.25)
    assert make_game("climbing", state_rate=0.0).states.max() == 0.0
    assert make_game("climbing", state_rate=0.5).states.max() > 0.2
    with pytest.raises(ValueError, match=r"unknown tabular game 'nope'.*helpful-harmful"):
        make_game("nope")
    with pytest.raises(TypeError, match=r"no parameter.*'delta_x'"):
        make_game("helpful-harmful", delta_x=1)
    with pytest.raises(ValueError, match="noise"):
        make_game("climbing", noise=2.0)
    with pytest.raises(ValueError, match="p0 ± delta"):
        make_game("helpful-harmful", p0=(0.9,), delta=0.3)
    assert available_games() == ["helpful-harmful", "lazy-thinker", "climbing", "two-step", "signalling"]


def test_bad_tables_are_named():
    with pytest.raises(ValueError, match="probability vector"):
        TabularGame("bad", np.array([0.5, 0.6]), np.zeros((2, 2, 2)), np.arange(2), np.zeros((2, 2), int),
                    np.zeros((2, 1)))
    game = two_by_two()
    with pytest.raises(ValueError, match="Thinker table must end in"):
        exact_values(game, np.ones((1, 3)) / 3, np.ones((3, 2)) / 2)


def test_sampled_outcomes_match_the_success_table():
    game = two_by_two()
    pi_T, pi_S = np.array([[0.3, 0.7]]), np.array([[0.5, 0.5], [0.2, 0.8], [0.6, 0.4]])
    b = sample(game, pi_T, pi_S, np.random.default_rng(0), groups=4000, thoughts=3, answers_per_thought=4,
               solo_samples=5)
    assert b.shape == (4000, 3, 4) and b.solo_reward.shape == (4000, 5) and b.no_solver_reward.shape == (4000, 3)
    assert np.mean(b.t == 1) == pytest.approx(0.7, abs=0.01)
    for t in (0, 1):
        for a in (0, 1):
            sel = (b.t[:, :, None] == t) & (b.a == a)
            assert np.mean(b.reward[sel]) == pytest.approx(2 * game.success[0, t, a] - 1, abs=0.03)
    assert np.mean(b.solo_a == 0) == pytest.approx(0.6, abs=0.01)
    assert np.mean(b.solo_reward) == pytest.approx(2 * (0.6 * 0.6 + 0.4 * 0.4) - 1, abs=0.02)
    assert np.mean(b.no_solver_reward[b.t == 0] > 0) == pytest.approx(0.2, abs=0.02)
    assert np.all(b.no_solver_reward[b.t == 1] < 0)
    # per-group tables: group g uses its own policy
    pT = np.stack([[[1.0, 0.0]], [[0.0, 1.0]]])
    b2 = sample(game, pT, pi_S, np.random.default_rng(0), groups=2, thoughts=50)
    assert np.all(b2.t[0] == 0) and np.all(b2.t[1] == 1)
    with pytest.raises(ValueError, match="thoughts must be an integer >= 1"):
        sample(game, pi_T, pi_S, np.random.default_rng(0), groups=2, thoughts=0)


def test_sepo_rater_accuracy():
    rng = np.random.default_rng(0)
    adv_T = np.array([0.5, -0.5, 0.0] * 2000)
    adv_S = np.zeros_like(adv_T)
    R = np.array([1.0, 1.0, -1.0] * 2000)
    perfect = sample_ratings(adv_T, adv_S, R, 1.0, rng)
    assert perfect.shape == (6000, 2, 2)
    assert set(map(tuple, perfect.reshape(-1, 2).tolist())) <= set(P.RATING_PAIRS) == set(RATING_PAIRS)
    assert np.all(perfect[0::3, :, 0] > 0.5)  # right, Thinker's advantage larger: the Thinker gets more credit
    assert np.all(perfect[1::3, :, 0] < 0.5)
    assert np.all(perfect[2::3, :, 0] == 0.5)
    noisy = sample_ratings(adv_T, adv_S, R, 0.0, rng)
    assert np.mean(noisy[0::3, :, 0] > 0.5) == pytest.approx(4 / 9, abs=0.03)
    with pytest.raises(ValueError, match="accuracy"):
        sample_ratings(adv_T, adv_S, R, 1.5, rng)


def test_tabular_softmax_policy_gradients_are_exact():
    rng = np.random.default_rng(3)
    pol = TabularSoftmaxPolicy(3, 4, batch=(2,), logits=rng.normal(size=(2, 3, 4)), temperature=0.7)
    obs = rng.integers(0, 3, size=(2, 6))
    act = rng.integers(0, 4, size=(2, 6))
    w = rng.normal(size=(2, 6))
    grad = pol.score_gradient(obs, act, w)
    h = 1e-6
    for idx in np.ndindex(pol.logits.shape):
        up = TabularSoftmaxPolicy(3, 4, batch=(2,), logits=pol.logits, temperature=0.7)
        dn = TabularSoftmaxPolicy(3, 4, batch=(2,), logits=pol.logits, temperature=0.7)
        up.logits[idx] += h
        dn.logits[idx] -= h
        fd = ((up.log_prob(obs, act) - dn.log_prob(obs, act)) * w).sum(axis=1)[idx[0]] / (2 * h)
        assert grad[idx] == pytest.approx(fd, abs=1e-6)
    np.testing.assert_allclose(pol.probs.sum(-1), 1.0)
    before = pol.logits.copy()
    pol.ascend(grad, 0.5)
    np.testing.assert_allclose(pol.logits, before + 0.5 * grad)
    draws = TabularSoftmaxPolicy(1, 3, logits=np.log([[0.2, 0.3, 0.5]])).sample(np.zeros(20000, int), rng)
    assert np.bincount(draws, minlength=3) / 20000 == pytest.approx([0.2, 0.3, 0.5], abs=0.015)
    with pytest.raises(ValueError, match="do not broadcast"):
        TabularSoftmaxPolicy(3, 4, logits=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"actions must be in 0\.\.3"):
        pol.score_gradient(obs, act + 4, w)
