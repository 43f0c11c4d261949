"""Advantage estimators: hand-computed values (docs/method.md#estimators-and-losses) and robustness properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from algorithms import estimators

R = [1.0, -1.0, 1.0, 1.0, 0.5, 0.5, 2.0]
IDX = [0, 0, 0, 0, 1, 1, 2]  # group 1 all equal, group 2 a single rollout
EPS = 1e-6


def test_registry():
    assert estimators.available() == ["grpo", "dr_grpo", "rloo", "reinforce++", "reinforce++-baseline"]
    with pytest.raises(ValueError, match="available: grpo, dr_grpo, rloo, reinforce\\+\\+, reinforce\\+\\+-baseline"):
        estimators.get("gae")
    with pytest.raises(ValueError, match="scale must be one of"):
        estimators.get("grpo")(R, IDX, scale="std")
    with pytest.raises(ValueError, match="needs index="):
        estimators.get("grpo")(R)
    with pytest.raises(ValueError, match="NaN or inf"):
        estimators.get("rloo")([1.0, float("nan")], [0, 0])
    with pytest.raises(TypeError):
        estimators.get("rloo")(R, IDX, scale="none")  # rloo has no scale


def test_grpo_scales():
    grpo = estimators.get("grpo")
    # group 0: mean 0.5, centred [.5, -1.5, .5, .5], Bessel var (0.25+2.25+0.25+0.25)/3 = 1
    a = grpo(R, IDX)
    assert a.dtype == torch.float32
    np.testing.assert_allclose(a.numpy(), np.array([0.5, -1.5, 0.5, 0.5, 0, 0, 0]) / (1 + EPS), rtol=1e-6)
    # batch std of all 7 rewards: Σr² = 8.5, mean 5/7 → SS = 8.5 − 25/7 = 34.5/7, var = SS/6
    a = grpo(R, IDX, scale="batch")
    np.testing.assert_allclose(a.numpy(), np.array([0.5, -1.5, 0.5, 0.5, 0, 0, 0]) / (math.sqrt(34.5 / 42) + EPS),
                               rtol=1e-6)
    np.testing.assert_allclose(grpo(R, IDX, scale="none").numpy(), [0.5, -1.5, 0.5, 0.5, 0, 0, 0])
    np.testing.assert_allclose(estimators.get("dr_grpo")(R, IDX).numpy(), [0.5, -1.5, 0.5, 0.5, 0, 0, 0])


def test_group_labels_may_be_any_hashable_and_interleaved():
    a = estimators.get("dr_grpo")([1.0, 3.0, -1.0, 5.0], ["p", "q", "p", "q"])
    np.testing.assert_allclose(a.numpy(), [1, -1, -1, 1])


def test_rloo():
    a = estimators.get("rloo")(R, IDX)
    # A_j = r_j − mean of the others: 1 − 1/3, −1 − 1, ...; equal group and singleton → 0
    np.testing.assert_allclose(a.numpy(), [2 / 3, -2, 2 / 3, 2 / 3, 0, 0, 0], rtol=1e-6)


def test_reinforce_pp_token_weighted_whitening():
    rpp = estimators.get("reinforce++")
    # tokens: 1 (×1), −1 (×1), 1 (×2), none for the last → mean 0.5, var (¼+9/4+2·¼)/4·4/3 = 1
    a = rpp([1.0, -1.0, 1.0, 1.0], lengths=[1, 1, 2, 0])
    np.testing.assert_allclose(a.numpy(), [0.5 / (1 + EPS), -1.5 / (1 + EPS), 0.5 / (1 + EPS), 0], rtol=1e-6)
    mask = torch.tensor([[1, 0], [1, 0], [1, 1], [0, 0]])
    np.testing.assert_allclose(rpp([1.0, -1.0, 1.0, 1.0], mask=mask).numpy(), a.numpy())


def test_reinforce_pp_baseline():
    a = estimators.get("reinforce++-baseline")([1.0, -1.0, 3.0, 3.0], [0, 0, 1, 1])
    # centred [1, −1, 0, 0]; mean 0, Bessel var 2/3
    s = math.sqrt(2 / 3)
    np.testing.assert_allclose(a.numpy(), [1 / (s + EPS), -1 / (s + EPS), 0, 0], rtol=1e-6)


def test_reinforce_pp_with_token_kl_penalty():
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    kl = torch.tensor([[0.1, 0.2, 5.0], [0.0, 0.3, 0.1]])
    a = estimators.get("reinforce++")([1.0, -1.0], mask=mask, kl=kl, kl_coef=1.0)
    # token rewards [−.1, −.2+1], [0, −.3, −.1−1] → returns [.7, .8], [−1.4, −1.4, −1.1]
    # mean −0.48, Bessel var 5.108/4
    s = math.sqrt(5.108 / 4)
    expected = np.array([[1.18, 1.28, 0.0], [-0.92, -0.92, -0.62]]) / (s + EPS)
    expected[0, 2] = 0.0
    np.testing.assert_allclose(a.numpy(), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", estimators.available())
def test_all_equal_groups_give_exact_zeros(name):
    r = [0.2, 0.2, 0.2, -1.0, -1.0, 7.3]
    a = estimators.get(name)(r, [0, 0, 0, 1, 1, 2])
    if name == "reinforce++":  # no per-group baseline: only an all-equal *batch* is zero
        a = estimators.get(name)([0.2] * 5)
    assert torch.equal(a, torch.zeros_like(a))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([-1.0, 1.0, 0.2, 1e-9, 1e6, -3.5]), st.integers(0, 3)),
                min_size=1, max_size=24),
       st.sampled_from(estimators.available()), st.sampled_from(["group", "batch", "none"]))
def test_advantages_finite(pairs, name, scale):
    r = [p[0] for p in pairs]
    idx = [p[1] for p in pairs]
    kw = {"scale": scale} if name == "grpo" else {}
    a = estimators.get(name)(r, idx, **kw)
    assert a.shape == (len(r),) and torch.isfinite(a).all()


def test_eps_matches_trl_convention_when_asked():
    """ε = 1e-6 by default (verl); eps=1e-4 reproduces TRL's (r − mean)/(std + 1e-4)."""
    import numpy as np

    r = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.001])
    std = r.std(ddof=1)
    for eps in (1e-6, 1e-4):
        a = estimators.get("grpo")(r, np.zeros(8, dtype=int), eps=eps, dtype=torch.float64).numpy()
        np.testing.assert_allclose(a, (r - r.mean()) / (std + eps), rtol=1e-9)
    default = estimators.get("grpo")(r, np.zeros(8, dtype=int), dtype=torch.float64).numpy()
    np.testing.assert_allclose(default, (r - r.mean()) / (std + 1e-6), rtol=1e-9)
