"""Policy-gradient losses: token-level PPO/GRPO clipping and sequence-level GSPO (docs/method.md#estimators-and-losses).

A small registry of pure torch functions (``get(name)``, ``register(name)``, ``available()``).
Every loss has the signature::

    fn(logp, old_logp, advantages, mask, *, clip_low, clip_high, dual_clip=None, agg=...,
       ref_logp=None, kl_coef=0.0, kl_type="k3", max_len=None) -> (loss, metrics)

``logp`` (B, T) are the current per-token log-probs (with gradient), ``old_logp`` the
sampling-time ones, ``advantages`` (B,) or (B, T), ``mask`` (B, T) marks response tokens.
``metrics`` is a dict of floats: ``loss``, ``pg_loss``, ``clip_frac`` (share of valid tokens
where the clipped term is the active one; ``clip_frac_low``/``clip_frac_high`` split it),
``dual_clip_frac``, ``ratio_mean``, ``kl`` (token mean of the KL estimate, 0 without a reference).

Per-token loss, with ρ the importance ratio and A the advantage:

    ℓ = max(−A·ρ, −A·clip(ρ, 1 − ε_low, 1 + ε_high))
    dual clip (c > 1, A < 0 only):  ℓ = min(ℓ, −A·c)
    plus β·KL_t when ``kl_coef`` β > 0:  k1 = log π − log π_ref,
                                         k3 = exp(log π_ref − log π) − (log π_ref − log π) − 1

``grpo`` (token level; defaults ε = 0.2, ``token-mean``): ρ_t = exp(log π_t − log π_old,t)
(the log-ratio clamped to ±20).

``gspo`` (sequence level; defaults ε_low = 3e-4, ε_high = 4e-4, ``seq-mean-token-mean``):
s_i = exp(mean_t(log π − log π_old)) over the sequence's valid tokens, used in its token form
log s_{i,t} = log π_t − sg(log π_t) + sg(log s_i) (value s_i for every token, clamped at
log s ≤ 10): with ``seq-mean-token-mean`` its gradient is that of the sequence objective
−min(s_i·A_i, clip(s_i)·A_i), and under every ``agg`` it equals TRL's
``importance_sampling_level="sequence"`` with the matching ``loss_type`` (one s_i per row there).
With one update per batch (ρ ≡ 1) GSPO equals GRPO.

Aggregation (``agg``) of the masked loss matrix ℓ (B, T), named as in verl. B' is the number
of *non-empty* rows (sequences with at least one valid token): a fully masked row is not a
sequence, so every ``seq-mean-*`` mode leaves it out of the sum and out of the count alike
(verl does the same; TRL's ``grpo`` and ``dr_grpo`` divide by all B rows, so with empty rows
they are ours times B'/B). A batch with no valid token gives 0. L is ``max_len`` or T; the
trainer passes the role's generation budget, a fixed L as TRL's ``max_completion_length`` and
verl's response length (``policy_update`` without ``max_len``: the batch's longest completion).

================================  ==========================================  =====================
``agg``                           formula                                     equal to
================================  ==========================================  =====================
``token-mean``                    Σ ℓ·m / Σ m                                 verl ``token-mean``;
                                                                              TRL ``bnpo`` (local
                                                                              batch), ``dapo``
                                                                              (global batch)
``seq-mean-token-mean``           (1/B') Σ_i (Σ_t ℓ·m / Σ_t m)                verl, TRL ``grpo``
``seq-mean-token-sum``            (1/B') Σ_i Σ_t ℓ·m                          verl
``seq-mean-token-sum-norm-verl``  Σ ℓ·m / L                                   verl
                                                                              ``seq-mean-token-sum-
                                                                              norm`` (Dr. GRPO)
``seq-mean-token-sum-norm-trl``   Σ ℓ·m / (B' · L)                            TRL ``dr_grpo``
``seq-mean-token-sum-norm``       the ``-trl`` one (kept for old configs)      TRL ``dr_grpo``, not
                                                                              verl's mode of the
                                                                              same name
================================  ==========================================  =====================

The two Dr. GRPO conventions differ by the factor B' (verl's is B' times larger): both remove
the per-sequence length normalisation; verl's also drops the division by the number of
sequences ("turns off seq-dim averaging"), TRL's keeps it. Under Adam the factor is nearly
invisible; it matters for plain SGD, gradient clipping and when B' varies between steps.

When a batch is split into micro-batches, :func:`micro_batch_share` gives the weight of each
micro-batch's aggregate so that the weighted sum equals the aggregate of the whole batch. TRL
divides each micro-batch's loss by the number of micro-batches k instead, which is the same for
``dapo`` (its ``num_items_in_batch`` is the whole batch's token count) and, for ``grpo`` and
``dr_grpo``, when the micro-batches hold as many rows; ``bnpo`` needs as many tokens. The mapping
and every difference, each checked against TRL's own ``GRPOTrainer`` by
``tests/test_trl_parity.py``: docs/training.md, "Against TRL's GRPOTrainer".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import torch

from ..registry import Registry

__all__ = ["get", "register", "available", "REGISTRY", "grpo_loss", "gspo_loss", "aggregate", "micro_batch_share",
           "kl_estimate", "AGG_MODES", "AGG_ALIASES", "KL_TYPES", "AggMode", "KLType"]

#: Aggregation modes (the module docstring's table; the trainer's ``optim.agg``).
AggMode = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm-verl",
                  "seq-mean-token-sum-norm-trl", "seq-mean-token-sum-norm"]
AGG_MODES: tuple[str, ...] = get_args(AggMode)
#: Old names and what they are (``seq-mean-token-sum-norm`` has always been TRL's ``dr_grpo``).
AGG_ALIASES = {"seq-mean-token-sum-norm": "seq-mean-token-sum-norm-trl"}
#: KL estimators (:func:`kl_estimate`; the trainer's ``optim.kl_type``).
KLType = Literal["k1", "k3"]
KL_TYPES: tuple[str, ...] = get_args(KLType)
#: The losses by name (:class:`~algorithms.registry.Registry`).
REGISTRY: Registry[Callable] = Registry("policy loss")


def register(name: str, *, replace: bool = False) -> Callable[[Callable], Callable]:
    """Decorator adding a loss function under ``name`` (an error if the name is taken, unless
    ``replace=True``)."""
    return REGISTRY.register(name, replace=replace)


def available() -> list[str]:
    """The registered loss names, in registration order."""
    return REGISTRY.available()


def get(name: str) -> Callable:
    """The loss function ``name``; an unknown name lists the available ones."""
    return REGISTRY.get(name)


# --------------------------------------------------------------------------- pieces


def aggregate(loss_mat: torch.Tensor, mask: torch.Tensor, agg: str, max_len: int | None = None) -> torch.Tensor:
    """Reduce a (B, T) per-token loss to a scalar (formulas in the module docstring)."""
    agg = AGG_ALIASES.get(agg, agg)
    m = mask.to(loss_mat.dtype)
    lm = torch.where(m > 0, loss_mat, torch.zeros_like(loss_mat))  # padding may hold inf/NaN
    if agg == "token-mean":
        return lm.sum() / m.sum().clamp(min=1)
    n = m.sum(dim=-1)
    rows = (n > 0).sum().clamp(min=1)  # B': non-empty rows (empty ones contribute 0 to any sum)
    if agg == "seq-mean-token-mean":
        return (lm.sum(dim=-1) / n.clamp(min=1)).sum() / rows
    if agg == "seq-mean-token-sum":
        return lm.sum() / rows
    if agg in ("seq-mean-token-sum-norm-verl", "seq-mean-token-sum-norm-trl"):
        L = loss_mat.shape[-1] if max_len is None else max_len
        if L < 1:
            raise ValueError(f"max_len must be >= 1, got {L}")
        return lm.sum() / L if agg.endswith("-verl") else lm.sum() / (rows * L)
    raise ValueError(f"unknown aggregation {agg!r}; available: {', '.join(AGG_MODES)}")


def micro_batch_share(agg: str, mask: torch.Tensor, total_tokens: int, total_rows: int) -> float:
    """Weight of one micro-batch's aggregate in the whole batch's (``mask`` is the micro-batch's;
    ``total_tokens`` = Σ m and ``total_rows`` = B' of the whole batch): its share of the valid
    tokens for ``token-mean``, 1 for ``seq-mean-token-sum-norm-verl`` (a plain sum over
    micro-batches), and its share of the non-empty rows for the other ``seq-mean-*`` modes."""
    agg = AGG_ALIASES.get(agg, agg)
    if agg not in AGG_MODES:
        raise ValueError(f"unknown aggregation {agg!r}; available: {', '.join(AGG_MODES)}")
    m = mask.to(torch.float64)
    if agg == "token-mean":
        return float(m.sum()) / max(int(total_tokens), 1)
    if agg == "seq-mean-token-sum-norm-verl":
        return 1.0
    return float((m.sum(dim=-1) > 0).sum()) / max(int(total_rows), 1)


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kl_type: str = "k3") -> torch.Tensor:
    """Per-token KL(π‖π_ref) estimate: k1 = log π − log π_ref;
    k3 = exp(log π_ref − log π) − (log π_ref − log π) − 1 (clamped to [−10, 10])."""
    if kl_type == "k1":
        return logp - ref_logp
    if kl_type == "k3":
        d = (ref_logp - logp).clamp(-20, 20)
        return (torch.exp(d) - d - 1).clamp(-10, 10)
    raise ValueError(f"unknown kl_type {kl_type!r}; available: {', '.join(KL_TYPES)}")


def _prepare(logp, old_logp, advantages, mask, clip_low, clip_high, dual_clip, agg):
    if logp.ndim != 2:
        raise ValueError(f"logp must have shape (B, T), got {tuple(logp.shape)}")
    if old_logp.shape != logp.shape or mask.shape != logp.shape:
        raise ValueError(f"logp, old_logp and mask must share a shape; got {tuple(logp.shape)}, "
                         f"{tuple(old_logp.shape)}, {tuple(mask.shape)}")
    adv = advantages.to(logp.dtype)
    if adv.ndim == 1:
        if adv.shape[0] != logp.shape[0]:
            raise ValueError(f"advantages has {adv.shape[0]} rows for {logp.shape[0]} sequences")
        adv = adv[:, None].expand_as(logp)
    elif adv.shape != logp.shape:
        raise ValueError(f"advantages must have shape (B,) or (B, T) = {tuple(logp.shape)}, got {tuple(adv.shape)}")
    if not (0 <= clip_low < 1 and clip_high >= 0):
        raise ValueError(f"need 0 <= clip_low < 1 and clip_high >= 0, got {clip_low}, {clip_high}")
    if dual_clip is not None and dual_clip <= 1:
        raise ValueError(f"dual_clip must be > 1 (the reference uses 3.0), got {dual_clip}")
    if agg not in AGG_MODES:
        raise ValueError(f"unknown aggregation {agg!r}; available: {', '.join(AGG_MODES)}")
    return adv.detach(), mask.to(logp.dtype), old_logp.detach()


def _log_ratio(logp, old, m):
    """log π − log π_old on valid tokens, 0 on padding (which may hold anything)."""
    return torch.where(m > 0, logp - old, torch.zeros_like(logp))


def _clipped(ratio, adv, m, clip_low, clip_high, dual_clip):
    pg1 = -adv * ratio
    pg2 = -adv * ratio.clamp(1 - clip_low, 1 + clip_high)
    loss = torch.maximum(pg1, pg2)
    r = ratio.detach()
    n = m.sum().clamp(min=1)
    low = ((adv < 0) & (r < 1 - clip_low)).to(m.dtype) * m
    high = ((adv > 0) & (r > 1 + clip_high)).to(m.dtype) * m
    metrics = {"clip_frac_low": float(low.sum() / n), "clip_frac_high": float(high.sum() / n)}
    metrics["clip_frac"] = metrics["clip_frac_low"] + metrics["clip_frac_high"]
    dual = torch.zeros_like(m)
    if dual_clip is not None:
        capped = -adv * dual_clip
        dual = ((adv < 0) & (loss.detach() > capped)).to(m.dtype) * m
        loss = torch.where(adv < 0, torch.minimum(loss, capped), loss)
    metrics["dual_clip_frac"] = float(dual.sum() / n)
    metrics["ratio_mean"] = float((r * m).sum() / n)
    return loss, metrics


def _finish(loss_mat, logp, m, agg, max_len, ref_logp, kl_coef, kl_type, metrics):
    pg = aggregate(loss_mat, m, agg, max_len)
    metrics["pg_loss"] = float(pg.detach())
    metrics["kl"] = 0.0
    if ref_logp is not None:
        ref = ref_logp.detach()
        kl = kl_estimate(torch.where(m > 0, logp, ref), ref, kl_type)
        metrics["kl"] = float(aggregate(kl.detach(), m, "token-mean"))
        if kl_coef:
            loss_mat = loss_mat + kl_coef * kl
    elif kl_coef:
        raise ValueError("kl_coef > 0 needs ref_logp (the reference policy's log-probs)")
    loss = aggregate(loss_mat, m, agg, max_len)
    metrics["loss"] = float(loss.detach())
    return loss, metrics


# --------------------------------------------------------------------------- losses


@register("grpo")
def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
              clip_low: float = 0.2, clip_high: float = 0.2, dual_clip: float | None = None, agg: str = "token-mean",
              ref_logp: torch.Tensor | None = None, kl_coef: float = 0.0, kl_type: str = "k3",
              max_len: int | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Token-level clipped loss: ρ_t = exp(log π_t − log π_old,t),
    ℓ_t = max(−A·ρ_t, −A·clip(ρ_t, 1 − ε_low, 1 + ε_high)) (dual clip: min(ℓ_t, −A·c) for A < 0),
    aggregated by ``agg``; + β·KL_t with a reference."""
    adv, m, old = _prepare(logp, old_logp, advantages, mask, clip_low, clip_high, dual_clip, agg)
    ratio = torch.exp(_log_ratio(logp, old, m).clamp(-20, 20))
    loss_mat, metrics = _clipped(ratio, adv, m, clip_low, clip_high, dual_clip)
    return _finish(loss_mat, logp, m, agg, max_len, ref_logp, kl_coef, kl_type, metrics)


@register("gspo")
def gspo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
              clip_low: float = 3e-4, clip_high: float = 4e-4, dual_clip: float | None = None,
              agg: str = "seq-mean-token-mean", ref_logp: torch.Tensor | None = None, kl_coef: float = 0.0,
              kl_type: str = "k3", max_len: int | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """Sequence-level clipped loss (GSPO): s_i = exp(mean_t(log π − log π_old)) over valid tokens,
    token form log s_{i,t} = log π_t − sg(log π_t) + sg(log s_i) (≤ 10),
    ℓ_{i,t} = max(−A_i·s_{i,t}, −A_i·clip(s_{i,t}, 1 − ε_low, 1 + ε_high)); ``seq-mean-token-mean``
    makes it the sequence objective. Clipping metrics count tokens of clipped sequences."""
    adv, m, old = _prepare(logp, old_logp, advantages, mask, clip_low, clip_high, dual_clip, agg)
    n = m.sum(dim=-1).clamp(min=1)
    log_s = _log_ratio(logp, old, m).sum(dim=-1) / n
    tok = torch.where(m > 0, logp - logp.detach(), torch.zeros_like(logp))
    log_s_tok = (tok + log_s.detach()[:, None]).clamp(max=10)
    loss_mat, metrics = _clipped(torch.exp(log_s_tok), adv, m, clip_low, clip_high, dual_clip)
    return _finish(loss_mat, logp, m, agg, max_len, ref_logp, kl_coef, kl_type, metrics)
