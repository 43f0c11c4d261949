"""Policy losses: clipping where the formulas say, GSPO = GRPO on-policy with one-token
sequences, aggregation modes and KL estimators, all against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from algorithms import losses

ONE = torch.ones


def leaf(values):
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


def test_registry_and_bad_names():
    assert losses.available() == ["grpo", "gspo"]
    with pytest.raises(ValueError, match="available: grpo, gspo"):
        losses.get("ppo2")
    lp = leaf([[0.0]])
    with pytest.raises(ValueError, match="available: token-mean, seq-mean-token-mean"):
        losses.get("grpo")(lp, lp.detach(), torch.zeros(1), ONE(1, 1), agg="mean")
    with pytest.raises(ValueError, match="available: k1, k3"):
        losses.get("grpo")(lp, lp.detach(), torch.zeros(1), ONE(1, 1), ref_logp=lp.detach(), kl_type="k2")
    with pytest.raises(ValueError, match="needs ref_logp"):
        losses.get("grpo")(lp, lp.detach(), torch.zeros(1), ONE(1, 1), kl_coef=0.1)
    with pytest.raises(ValueError, match="dual_clip must be > 1"):
        losses.get("grpo")(lp, lp.detach(), torch.zeros(1), ONE(1, 1), dual_clip=0.5)


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
def test_gspo_equals_grpo_on_policy_with_one_token_sequences(agg):
    torch.manual_seed(0)
    adv = torch.randn(6, dtype=torch.float64)
    values = torch.randn(6, 1, dtype=torch.float64).tolist()
    grads = {}
    for name in ("grpo", "gspo"):
        lp = leaf(values)
        loss, m = losses.get(name)(lp, lp.detach(), adv, ONE(6, 1), agg=agg)
        loss.backward()
        grads[name] = lp.grad.clone()
        assert m["clip_frac"] == 0.0 and m["ratio_mean"] == pytest.approx(1.0)
    torch.testing.assert_close(grads["grpo"], grads["gspo"])
    torch.testing.assert_close(grads["grpo"][:, 0], -adv / 6)  # ρ = 1: ∂ℓ/∂logp = −A, mean over 6


def test_token_clipping_engages_where_the_formula_says():
    # ρ = 1.5 (A=+1, clipped high), 0.5 (A=−1, clipped low), 1.1 (A=+1, inside), 0.7 (A=+1: no clip)
    rho = [1.5, 0.5, 1.1, 0.7]
    lp = leaf([[0.0]] * 4)
    old = torch.tensor([[-math.log(r)] for r in rho], dtype=torch.float64)
    loss, m = losses.get("grpo")(lp, old, torch.tensor([1.0, -1.0, 1.0, 1.0]), ONE(4, 1))
    # ℓ = max(−Aρ, −A·clip(ρ, .8, 1.2)) = [−1.2, 0.8, −1.1, −0.7]
    assert loss.item() == pytest.approx((-1.2 + 0.8 - 1.1 - 0.7) / 4)
    loss.backward()
    np.testing.assert_allclose(lp.grad[:, 0].numpy(), [0, 0, -1.1 / 4, -0.7 / 4])
    assert (m["clip_frac"], m["clip_frac_low"], m["clip_frac_high"]) == (0.5, 0.25, 0.25)


def test_dual_clip_caps_negative_advantages():
    lp = leaf([[0.0], [0.0]])
    old = torch.tensor([[-math.log(5.0)], [-math.log(5.0)]], dtype=torch.float64)  # ρ = 5
    adv = torch.tensor([-1.0, 1.0])
    loss, m = losses.get("grpo")(lp, old, adv, ONE(2, 1), dual_clip=3.0)
    # A=−1: min(max(5, 1.2), 3) = 3 (no gradient); A=+1: max(−5, −1.2) = −1.2 (clipped high)
    assert loss.item() == pytest.approx((3 - 1.2) / 2)
    assert m["dual_clip_frac"] == 0.5
    loss.backward()
    np.testing.assert_allclose(lp.grad.numpy(), [[0.0], [0.0]])
    lp2 = leaf([[0.0], [0.0]])
    loss2, m2 = losses.get("grpo")(lp2, old, adv, ONE(2, 1))
    assert loss2.item() == pytest.approx((5 - 1.2) / 2) and m2["dual_clip_frac"] == 0.0
    loss2.backward()
    assert lp2.grad[0, 0].item() == pytest.approx(5 / 2)  # ∂(−Aρ)/∂logp = −Aρ = 5, over 2 tokens


def test_gspo_clips_whole_sequences_by_the_mean_log_ratio():
    lp = leaf([[0.0, 0.0], [0.0, 0.0]])
    old = torch.tensor([[-0.3, 0.1], [-0.2, 0.2]], dtype=torch.float64)
    # seq 0: mean log ratio 0.1 → s = e^0.1 > 1 + 4e-4, A=+1 → clipped; seq 1: s = 1 → inside
    loss, m = losses.get("gspo")(lp, old, torch.tensor([1.0, 2.0]), ONE(2, 2))
    assert loss.item() == pytest.approx((-(1 + 4e-4) - 2.0) / 2)
    assert m["clip_frac"] == 0.5 and m["clip_frac_high"] == 0.5
    loss.backward()
    # seq 1: ∂/∂logp_t of mean_i mean_t(−A·s) = ½·½·(−2·1) per token; seq 0 clipped → 0
    np.testing.assert_allclose(lp.grad.numpy(), [[0, 0], [-0.5, -0.5]])
    # the token-level ratio e^0.2 of seq 1 would be clipped by GRPO's ε = 0.2 only beyond 1.2
    _, mg = losses.get("grpo")(leaf([[0.0, 0.0], [0.0, 0.0]]), old, torch.tensor([1.0, 2.0]), ONE(2, 2))
    assert mg["clip_frac_high"] == 0.5  # tokens with ρ = e^0.3 and e^0.2 > 1.2


@pytest.mark.parametrize("agg, expected", [
    ("token-mean", 7 / 3),
    ("seq-mean-token-mean", (1.5 + 4) / 2),
    ("seq-mean-token-sum", (3 + 4) / 2),
    ("seq-mean-token-sum-norm", 7 / (2 * 3)),
])
def test_aggregation_modes(agg, expected):
    # ρ = 1, so the per-token loss is −A: ℓ = [[1, 2, ·], [4, ·, ·]]
    adv = -torch.tensor([[1.0, 2.0, 99.0], [4.0, 99.0, 99.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    lp = leaf([[0.0] * 3] * 2)
    loss, _ = losses.get("grpo")(lp, lp.detach(), adv, mask, agg=agg)
    assert loss.item() == pytest.approx(expected)


def test_seq_mean_token_sum_norm_uses_max_len():
    adv = -torch.tensor([[1.0, 2.0], [4.0, 0.0]])
    lp = leaf([[0.0] * 2] * 2)
    loss, _ = losses.get("grpo")(lp, lp.detach(), adv, torch.tensor([[1, 1], [1, 0]]), agg="seq-mean-token-sum-norm", max_len=7)
    assert loss.item() == pytest.approx(7 / 14)


@pytest.mark.parametrize("kl_type, value", [("k1", math.log(2)), ("k3", 0.5 + math.log(2) - 1)])
def test_kl_to_reference(kl_type, value):
    lp = leaf([[math.log(0.5)]])
    ref = torch.tensor([[math.log(0.25)]], dtype=torch.float64)
    loss, m = losses.get("grpo")(lp, lp.detach(), torch.zeros(1), ONE(1, 1), ref_logp=ref, kl_coef=0.1, kl_type=kl_type)
    assert m["kl"] == pytest.approx(value) and loss.item() == pytest.approx(0.1 * value)
    _, m0 = losses.get("grpo")(lp, lp.detach(), torch.zeros(1), ONE(1, 1), ref_logp=ref, kl_type=kl_type)
    assert m0["kl"] == pytest.approx(value) and m0["loss"] == 0.0  # reported, not added, with β = 0


def test_shape_errors():
    lp = leaf([[0.0, 0.0]])
    with pytest.raises(ValueError, match="advantages has 2 rows for 1"):
        losses.get("grpo")(lp, lp.detach(), torch.zeros(2), ONE(1, 2))
    with pytest.raises(ValueError, match="share a shape"):
        losses.get("gspo")(lp, lp.detach(), torch.zeros(1), ONE(1, 3))


@pytest.mark.parametrize("name", ["grpo", "gspo"])
def test_padding_values_never_leak(name):
    lp = torch.tensor([[0.0, float("-inf")], [0.0, float("nan")]], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[0.0, 0.0], [0.0, float("inf")]], dtype=torch.float64)
    loss, m = losses.get(name)(lp, old, torch.tensor([1.0, -1.0]), torch.tensor([[1, 0], [1, 0]]),
                               ref_logp=torch.zeros(2, 2, dtype=torch.float64), kl_coef=0.1)
    loss.backward()
    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(0.0)  # (−1 + 1)/2, KL 0
    assert torch.isfinite(lp.grad).all() and all(math.isfinite(v) for v in m.values())
