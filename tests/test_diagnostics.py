"""Collaboration diagnostics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from algorithms import credit
from algorithms.evaluation import collaboration_diagnostics, correlation
from algorithms.rollout import EpisodeGroup

G = EpisodeGroup.from_rewards
T, S = "thinker_0", "solver_0"


def batch():
    return [
        G([1, 1, -1, -1], solo=[1, -1, -1, -1], no_solver=[1, -1, -1, 1]),  # p = 1/4
        G([1, 1], solo=[1, 1], no_solver=[-1, -1]),  # p = 1
    ]


def test_rates_and_collaboration():
    d = collaboration_diagnostics(batch())
    assert d["joint_accuracy"] == 0.75  # (2/4 + 1)/2
    assert d["solo_accuracy"] == 0.625  # (1/4 + 1)/2
    assert d["collaboration"] == pytest.approx(0.125)
    assert d["thinker_help_rate"] == pytest.approx((0.75 / 2 + 0) / 2)  # group 1: [.75, .75, 0, 0]
    assert d["thinker_hurt_rate"] == pytest.approx((0.25 / 2 + 0) / 2)  # group 1: [0, 0, .25, .25]
    assert d["thinker_help_rate"] - d["thinker_hurt_rate"] == pytest.approx(d["collaboration"])
    assert d["no_solver_accuracy"] == pytest.approx((0.5 + 0) / 2)
    assert d["solver_help_rate"] == pytest.approx((0.25 + 1) / 2)  # R > R¬S: ep 1 of g1; both of g2
    assert d["solver_hurt_rate"] == pytest.approx((0.25 + 0) / 2)
    assert "rating_valid_rate" not in d and "adv_corr_thinker_0" not in d


def test_advantage_correlation_exposes_rescaled_shared_reward():
    gs = [G([1, 1, -1, -1], solo=[-1, -1]), G([1, 1], solo=[1, 1]), G([1, -1], solo=[1, -1])]  # b = −1, 1, 0
    d = collaboration_diagnostics(gs, credit.get("ccpo")(gs), estimator="grpo", scale="none")
    # A_shared = [1, 1, −1, −1, 0, 0, 1, −1]; A_T = [1.1, 1.1, −1.1, −1.1, 0, 0, 1, −1]
    assert d["adv_corr_thinker_0"] == pytest.approx(6.4 / math.sqrt(6 * 6.84))
    assert d["adv_corr_solver_0"] == pytest.approx(1.0)
    d1 = collaboration_diagnostics(gs[:2], credit.get("ccpo")(gs[:2]), estimator="grpo", scale="none")
    assert d1["adv_corr_thinker_0"] == pytest.approx(1.0)  # only a rescale: shows as 1


def test_rating_valid_rate_and_undefined_correlation():
    g = G([1, 1], ratings=[{T: "[0.7, 0.3]", S: "?"}, {T: "[0.5, 0.5]", S: '{"outcome": "wrong", "pair": [0.1, 0.9]}'}])
    d = collaboration_diagnostics([g], credit.get("sepo")([g]))
    assert d["rating_valid_rate"] == 0.5
    assert d["adv_corr_thinker_0"] is None  # shared advantages are all zero (one all-correct group)
    # centred: [−1, 0, 1] and [−13/6, −1/6, 14/6] → 4.5 / sqrt(2 · 366/36)
    assert correlation([1, 2, 3], [2, 4, 6.5]) == pytest.approx(4.5 / math.sqrt(2 * 366 / 36))
    with pytest.raises(ValueError, match="no episode groups"):
        collaboration_diagnostics([])
