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
    loss, _ = losses.get("grpo")(lp, lp.detach(), adv, torch.tensor([[1, 1], [1, 0]]),
                                 agg="seq-mean-token-sum-norm", max_len=7)
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


# --------------------------------------------------------------------------- random cross-checks
# Reference formulas written out with plain Python loops over numpy arrays (no torch, no verl/TRL
# import): each aggregation mode, the token-level PPO/GRPO loss with dual clip, and GSPO's
# sequence-level ratio, on random shapes, ratios, advantages and masks with empty rows.


def _random_batch(rng, B, T, empty_rows=1):
    logp = rng.normal(-1.0, 0.3, size=(B, T))
    old = logp + rng.normal(0.0, 0.25, size=(B, T))  # ratios around 1, some clipped
    lengths = rng.integers(1, T + 1, size=B)
    lengths[rng.choice(B, size=empty_rows, replace=False)] = 0
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.float64)
    adv = rng.normal(size=B)
    return logp, old, adv, mask


def _ref_aggregate(ell, mask, agg, L):
    B, T = ell.shape
    rows = [i for i in range(B) if mask[i].sum() > 0]
    if agg == "token-mean":
        return sum(ell[i, t] for i in range(B) for t in range(T) if mask[i, t]) / max(mask.sum(), 1)
    sums = {i: sum(ell[i, t] for t in range(T) if mask[i, t]) for i in rows}
    if agg == "seq-mean-token-mean":
        return sum(sums[i] / mask[i].sum() for i in rows) / max(len(rows), 1)
    if agg == "seq-mean-token-sum":
        return sum(sums.values()) / max(len(rows), 1)
    if agg == "seq-mean-token-sum-norm-verl":  # verl: Σ ℓ m / L, no division by the batch
        return sum(sums.values()) / L
    if agg in ("seq-mean-token-sum-norm-trl", "seq-mean-token-sum-norm"):  # TRL dr_grpo: / (B' L)
        return sum(sums.values()) / (max(len(rows), 1) * L)
    raise AssertionError(agg)


def _ref_token_loss(logp, old, adv, lo, hi, dual):
    B, T = logp.shape
    out = np.zeros((B, T))
    for i in range(B):
        for t in range(T):
            rho = math.exp(logp[i, t] - old[i, t])
            a = adv[i]
            ell = max(-a * rho, -a * min(max(rho, 1 - lo), 1 + hi))
            if dual is not None and a < 0:
                ell = min(ell, -a * dual)
            out[i, t] = ell
    return out


def _ref_gspo_loss(logp, old, adv, mask, lo, hi):
    B, T = logp.shape
    out = np.zeros((B, T))
    for i in range(B):
        n = mask[i].sum()
        log_s = sum((logp[i, t] - old[i, t]) for t in range(T) if mask[i, t]) / max(n, 1)
        s = math.exp(min(log_s, 10.0))
        a = adv[i]
        out[i, :] = max(-a * s, -a * min(max(s, 1 - lo), 1 + hi))
    return out


@pytest.mark.parametrize("agg", losses.AGG_MODES)
@pytest.mark.parametrize("seed", range(4))
def test_aggregation_modes_match_the_formulas_on_random_inputs(agg, seed):
    rng = np.random.default_rng(seed)
    B, T = int(rng.integers(2, 7)), int(rng.integers(1, 9))
    ell = rng.normal(size=(B, T))
    _, _, _, mask = _random_batch(rng, B, T, empty_rows=int(rng.integers(0, 2)))
    L = int(rng.integers(T, T + 5))
    got = losses.aggregate(torch.tensor(ell), torch.tensor(mask), agg, max_len=L)
    assert got.item() == pytest.approx(_ref_aggregate(ell, mask, agg, L), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("agg", losses.AGG_MODES)
@pytest.mark.parametrize("dual", [None, 3.0])
def test_grpo_loss_and_gradient_match_the_formulas_on_random_inputs(agg, dual):
    rng = np.random.default_rng(11)
    logp, old, adv, mask = _random_batch(rng, 6, 5, empty_rows=1)
    adv[0] = -abs(adv[0]) - 2  # a strongly negative advantage, for the dual clip
    old[0, 0] = logp[0, 0] - 2.0  # ρ = e² > 3 there: the dual clip engages
    lp = leaf(logp.tolist())
    loss, m = losses.get("grpo")(lp, torch.tensor(old), torch.tensor(adv), torch.tensor(mask), agg=agg,
                                 dual_clip=dual, max_len=5)
    ell = _ref_token_loss(logp, old, adv, 0.2, 0.2, dual)
    assert loss.item() == pytest.approx(_ref_aggregate(ell, mask, agg, 5), rel=1e-10)
    # The gradient by central differences of the reference formula.
    loss.backward()
    eps = 1e-6
    for i, t in [(0, 0), (1, 0), (2, 1), (3, 2), (5, 4)]:
        up, down = logp.copy(), logp.copy()
        up[i, t] += eps
        down[i, t] -= eps
        num = (_ref_aggregate(_ref_token_loss(up, old, adv, 0.2, 0.2, dual), mask, agg, 5)
               - _ref_aggregate(_ref_token_loss(down, old, adv, 0.2, 0.2, dual), mask, agg, 5)) / (2 * eps)
        assert lp.grad[i, t].item() == pytest.approx(num, abs=1e-6), (i, t)


@pytest.mark.parametrize("agg", ["seq-mean-token-mean", "token-mean", "seq-mean-token-sum-norm-verl"])
def test_gspo_loss_matches_the_sequence_formula_on_random_inputs(agg):
    rng = np.random.default_rng(5)
    logp, old, adv, mask = _random_batch(rng, 7, 6, empty_rows=1)
    old = logp + rng.normal(0.0, 2e-4, size=logp.shape)  # sequence ratios near the GSPO band
    lp = leaf(logp.tolist())
    loss, _ = losses.get("gspo")(lp, torch.tensor(old), torch.tensor(adv), torch.tensor(mask), agg=agg)
    ell = _ref_gspo_loss(logp, old, adv, mask, 3e-4, 4e-4)
    assert loss.item() == pytest.approx(_ref_aggregate(ell, mask, agg, 6), rel=1e-10)
    if agg == "seq-mean-token-mean":
        # Its gradient is that of the sequence objective mean_i ℓ_i(s_i): by central differences.
        loss.backward()
        eps = 1e-7
        for i, t in [(1, 0), (2, 0), (4, 1)]:
            if not mask[i, t]:
                continue
            up, down = logp.copy(), logp.copy()
            up[i, t] += eps
            down[i, t] -= eps
            num = (_ref_aggregate(_ref_gspo_loss(up, old, adv, mask, 3e-4, 4e-4), mask, agg, 6)
                   - _ref_aggregate(_ref_gspo_loss(down, old, adv, mask, 3e-4, 4e-4), mask, agg, 6)) / (2 * eps)
            assert lp.grad[i, t].item() == pytest.approx(num, rel=1e-4, abs=1e-7), (i, t)


def test_the_two_dr_grpo_conventions_differ_by_the_number_of_sequences():
    rng = np.random.default_rng(3)
    ell = rng.normal(size=(5, 4))
    _, _, _, mask = _random_batch(rng, 5, 4, empty_rows=1)  # B' = 4
    e, m = torch.tensor(ell), torch.tensor(mask)
    verl = losses.aggregate(e, m, "seq-mean-token-sum-norm-verl", max_len=4)
    trl = losses.aggregate(e, m, "seq-mean-token-sum-norm-trl", max_len=4)
    old = losses.aggregate(e, m, "seq-mean-token-sum-norm", max_len=4)
    assert verl.item() == pytest.approx(4 * trl.item())
    assert old.item() == trl.item()  # the old name is TRL's dr_grpo, as it always was
    assert losses.AGG_ALIASES["seq-mean-token-sum-norm"] == "seq-mean-token-sum-norm-trl"


@pytest.mark.parametrize("agg", ["seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm-trl"])
def test_empty_rows_are_left_out_by_every_seq_mean_mode(agg):
    rng = np.random.default_rng(8)
    ell = rng.normal(size=(3, 4))
    mask = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]], dtype=np.float64)
    with_empty = losses.aggregate(torch.tensor(ell), torch.tensor(mask), agg, max_len=4)
    without = losses.aggregate(torch.tensor(ell[[0, 2]]), torch.tensor(mask[[0, 2]]), agg, max_len=4)
    assert with_empty.item() == pytest.approx(without.item())
    nothing = losses.aggregate(torch.tensor(ell), torch.zeros(3, 4, dtype=torch.float64), agg, max_len=4)
    assert nothing.item() == 0.0


@pytest.mark.parametrize("agg", losses.AGG_MODES)
def test_micro_batch_shares_reassemble_the_whole_batch(agg):
    rng = np.random.default_rng(21)
    logp, old, adv, mask = _random_batch(rng, 7, 5, empty_rows=2)
    args = dict(agg=agg, max_len=5, clip_low=0.2, clip_high=0.2)
    whole = leaf(logp.tolist())
    loss, _ = losses.get("grpo")(whole, torch.tensor(old), torch.tensor(adv), torch.tensor(mask), **args)
    loss.backward()
    n_tok, n_rows = int(mask.sum()), int((mask.sum(1) > 0).sum())
    parts = leaf(logp.tolist())
    total = 0.0
    for idx in ([0, 1, 2], [3], [4, 5, 6]):
        mb_mask = torch.tensor(mask[idx])
        mb, _ = losses.get("grpo")(parts[idx], torch.tensor(old[idx]), torch.tensor(adv[idx]), mb_mask, **args)
        share = losses.micro_batch_share(agg, mb_mask, n_tok, n_rows)
        (mb * share).backward()
        total += mb.item() * share
    assert total == pytest.approx(loss.item(), rel=1e-12)
    torch.testing.assert_close(parts.grad, whole.grad)


def test_micro_batch_share_rejects_unknown_modes():
    with pytest.raises(ValueError, match="unknown aggregation 'mean'"):
        losses.micro_batch_share("mean", torch.ones(1, 1), 1, 1)
