"""Advantage estimators: per-rollout rewards in, advantages out (docs/method.md#estimators-and-losses).

A small registry of pure torch functions (``get(name)``, ``register(name)``, ``available()``),
in the style of verl's ``core_algos``. Every estimator has the signature::

    fn(rewards, index=None, *, eps=1e-6, lengths=None, mask=None, dtype=torch.float32, **own)
        -> torch.Tensor  # shape (B,)

(``lengths``/``mask`` are accepted by all, so a trainer can pass them uniformly; only the
REINFORCE++ pair uses them. Unknown keywords are a ``TypeError``.)

``rewards`` holds one scalar per rollout (a credit method's output for one role), ``index``
the prompt group of each rollout (any hashable labels; see
:func:`algorithms.credit.group_index`). The result is one advantage per rollout, to broadcast
over that rollout's tokens. Computation is in float64; the result is float32 unless ``dtype``
says otherwise.

=========================  ======================================================================
name                       advantage
=========================  ======================================================================
``grpo``                   A = (r − mean_g r) / (s + ε); s = std_g r (``scale="group"``, default),
                           the batch std of r (``"batch"``), or 1 with ε = 0 (``"none"``)
``dr_grpo``                A = r − mean_g r  (GRPO with ``scale="none"``)
``rloo``                   A_j = r_j − mean_{k≠j} r_k = n/(n−1)·(r_j − mean_g r)
``reinforce++``            A = whiten(r) over the batch's valid tokens
``reinforce++-baseline``   A = whiten(r − mean_g r) over the batch's valid tokens
=========================  ======================================================================

Conventions: standard deviations are Bessel-corrected (as TRL and verl); a group whose rewards
are all equal (including a group of one) gives exactly zero advantage, never NaN; ε = 1e-6
(verl's value; TRL's GRPO adds 1e-4 to the std: pass ``eps=1e-4`` to reproduce it — the two
differ only for groups whose std is small, e.g. one right answer in a large group).
``whiten(x) = (x − μ)/(σ + ε)`` with μ, σ² the mean and (Bessel-corrected) variance over valid
tokens: a rollout with L tokens counts L times (pass ``lengths``; without it each rollout counts
once). REINFORCE++ may also take a token-level KL penalty in the reward (γ = 1): pass ``mask``,
``kl`` (both (B, T)) and ``kl_coef``; the token rewards are −β·kl_t plus r at the last valid
token, the returns G_t = Σ_{s≥t} of them, and the result is the whitened (B, T) returns.

Each estimator says whether it is *group-local*, as an attribute of the function,
``fn.group_local``: the advantage of a rollout depends on the rewards of its own group (its
``index`` label) only, so one call on several batches concatenated (labels distinct across
batches) gives exactly the advantages of one call per batch, and a harness may make one call for
many batches (the credit-fidelity lab does). The value is a bool or, when it depends on the
keyword parameters, a function of them returning one: ``grpo`` with ``scale="group"`` or
``"none"``, ``dr_grpo`` and ``rloo`` are group-local; ``grpo`` with ``scale="batch"`` and the
REINFORCE++ pair (batch whitening) are not. An estimator without the attribute (a registered one
that does not set it) counts as not group-local, the safe reading.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, get_args

import numpy as np
import torch
from numpy.typing import ArrayLike

from ..registry import Registry

__all__ = ["get", "register", "available", "REGISTRY", "grpo", "dr_grpo", "rloo", "reinforce_pp",
           "reinforce_pp_baseline", "SCALES", "Scale"]

#: The estimators by name (:class:`~algorithms.registry.Registry`).
REGISTRY: Registry[Callable[..., torch.Tensor]] = Registry("advantage estimator")
#: GRPO's std scaling (``grpo(scale=...)``; the trainer's ``optim.scale``).
Scale = Literal["group", "batch", "none"]
SCALES: tuple[str, ...] = get_args(Scale)
EPS = 1e-6


def register(name: str, *, replace: bool = False) -> Callable[[Callable], Callable]:
    """Decorator adding an estimator function under ``name`` (an error if the name is taken,
    unless ``replace=True``)."""
    return REGISTRY.register(name, replace=replace)


def available() -> list[str]:
    """The registered estimator names, in registration order."""
    return REGISTRY.available()


def get(name: str) -> Callable[..., torch.Tensor]:
    """The estimator function ``name``; an unknown name lists the available ones."""
    return REGISTRY.get(name)


# --------------------------------------------------------------------------- helpers


def _rewards(rewards: Any) -> torch.Tensor:
    r = torch.as_tensor(np.asarray(rewards.detach().cpu() if isinstance(rewards, torch.Tensor) else rewards, dtype=np.float64))
    if r.ndim != 1 or r.numel() == 0:
        raise ValueError(f"rewards must be a non-empty 1-D array (one per rollout), got shape {tuple(r.shape)}")
    if not torch.isfinite(r).all():
        raise ValueError("rewards contain NaN or inf")
    return r


def _inverse(index: Any, n: int) -> tuple[torch.Tensor, int]:
    if index is None:
        raise ValueError("this estimator needs index= (the prompt group of each rollout)")
    idx = index.detach().cpu().numpy() if isinstance(index, torch.Tensor) else np.asarray(index)
    if idx.shape != (n,):
        raise ValueError(f"index must have one group label per rollout ({n}), got shape {idx.shape}")
    _, inv = np.unique(idx, return_inverse=True)
    inv = torch.as_tensor(inv.reshape(-1), dtype=torch.long)
    return inv, int(inv.max()) + 1


def _group_centred(r: torch.Tensor, index: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(r − group mean, group std (Bessel), group size), each per rollout; exact zeros for
    groups whose rewards are all equal."""
    inv, G = _inverse(index, r.numel())
    counts = torch.bincount(inv, minlength=G).to(r.dtype)
    mean = torch.zeros(G, dtype=r.dtype).index_add_(0, inv, r) / counts
    gmax = torch.full((G,), -torch.inf, dtype=r.dtype).scatter_reduce(0, inv, r, "amax")
    gmin = torch.full((G,), torch.inf, dtype=r.dtype).scatter_reduce(0, inv, r, "amin")
    flat = (gmax == gmin)[inv]
    centred = torch.where(flat, torch.zeros_like(r), r - mean[inv])
    var = torch.zeros(G, dtype=r.dtype).index_add_(0, inv, centred**2) / (counts - 1).clamp(min=1)
    return centred, var.sqrt()[inv], counts[inv]


def _whiten(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """(x − μ)/(σ + ε) with weights w (token counts); zeros when x is constant where w > 0."""
    valid = w > 0
    if not valid.any():
        return torch.zeros_like(x)
    xv = x[valid]
    if bool((xv.max() == xv.min()).item()):
        return torch.zeros_like(x)
    n = w.sum()
    mu = (w * x).sum() / n
    var = (w * (x - mu) ** 2).sum() / n
    if n > 1:
        var = var * n / (n - 1)
    return torch.where(valid, (x - mu) / (var.sqrt() + eps), torch.zeros_like(x))


def _out(a: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return a.to(dtype)


# --------------------------------------------------------------------------- estimators


@register("grpo")
def grpo(rewards: ArrayLike, index: ArrayLike | None = None, *, scale: Scale = "group", eps: float = EPS,
         lengths: Sequence[int] | None = None, mask: torch.Tensor | None = None,
         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """GRPO: A = (r − mean_g r)/(s + ε).

    ``scale="group"``: s = Bessel std of r within the group (the GRPO paper, TRL's default);
    ``"batch"``: s = Bessel std of r over the whole batch (TRL's ``scale_rewards="batch"``);
    ``"none"``: A = r − mean_g r (Dr. GRPO; the CCPO reference default)."""
    if scale not in SCALES:
        raise ValueError(f"grpo: scale must be one of {SCALES}, got {scale!r}")
    r = _rewards(rewards)
    centred, std, _ = _group_centred(r, index)
    if scale == "none":
        return _out(centred, dtype)
    if scale == "batch":
        std = r.std(unbiased=True) if r.numel() > 1 else torch.zeros((), dtype=r.dtype)
    return _out(centred / (std + eps), dtype)


def _grpo_group_local(scale: str = "group", **params: Any) -> bool:
    """``grpo`` is group-local with the group's std or none; the batch std ties the batch together."""
    return scale in ("group", "none")


grpo.group_local = _grpo_group_local


@register("dr_grpo")
def dr_grpo(rewards: ArrayLike, index: ArrayLike | None = None, *, eps: float = EPS, lengths: Sequence[int] | None = None,
            mask: torch.Tensor | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Dr. GRPO: A = r − mean_g r (no std division)."""
    r = _rewards(rewards)
    return _out(_group_centred(r, index)[0], dtype)


dr_grpo.group_local = True


@register("rloo")
def rloo(rewards: ArrayLike, index: ArrayLike | None = None, *, eps: float = EPS, lengths: Sequence[int] | None = None,
         mask: torch.Tensor | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """RLOO: A_j = r_j − mean_{k≠j} r_k = n/(n−1)·(r_j − mean_g r); 0 for a group of one."""
    r = _rewards(rewards)
    centred, _, n = _group_centred(r, index)
    return _out(torch.where(n > 1, centred * n / (n - 1).clamp(min=1), torch.zeros_like(r)), dtype)


rloo.group_local = True


def _reinforce(r: torch.Tensor, lengths, mask, kl, kl_coef: float, eps: float, dtype) -> torch.Tensor:
    if kl is not None:
        if mask is None:
            raise ValueError("reinforce++ with a KL penalty needs mask= (B, T)")
        m = torch.as_tensor(mask).to(torch.float64)
        k = torch.as_tensor(kl).detach().to(torch.float64)
        if m.shape != k.shape or m.ndim != 2 or m.shape[0] != r.numel():
            raise ValueError(f"mask and kl must both have shape (B, T) with B = {r.numel()}, "
                             f"got {tuple(m.shape)} and {tuple(k.shape)}")
        tok = -kl_coef * k * m
        last = (m * torch.arange(1, m.shape[1] + 1, dtype=torch.float64)).argmax(dim=1)
        has = m.sum(dim=1) > 0
        tok[has, last[has]] += r[has]
        returns = torch.flip(torch.cumsum(torch.flip(tok, [1]), 1), [1]) * m
        valid = m > 0
        out = torch.zeros_like(returns)
        out[valid] = _whiten(returns[valid], torch.ones(int(valid.sum()), dtype=torch.float64), eps)
        return out.to(dtype)
    if lengths is None:
        w = torch.ones_like(r)
    else:
        w = torch.as_tensor(np.asarray(lengths, dtype=np.float64))
        if w.shape != r.shape or (w < 0).any():
            raise ValueError(f"lengths must be one non-negative token count per rollout ({r.numel()}), got {tuple(w.shape)}")
    if mask is not None and lengths is None:
        w = torch.as_tensor(mask).to(torch.float64).sum(dim=-1)
    return _whiten(r, w, eps).to(dtype)


@register("reinforce++")
def reinforce_pp(rewards: ArrayLike, index: ArrayLike | None = None, *, lengths: Sequence[int] | None = None,
                 mask: torch.Tensor | None = None, kl: torch.Tensor | None = None, kl_coef: float = 0.0,
                 eps: float = EPS, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """REINFORCE++: A = r (γ = 1), whitened over the valid tokens of the whole batch:
    A = (r − μ)/(σ + ε), μ and σ token-weighted (``lengths`` or ``mask``). No per-group baseline.
    With ``kl`` (B, T) and ``kl_coef`` β: token rewards −β·kl_t plus r at the last valid token,
    returns G_t = Σ_{s≥t}, whitened over valid tokens; the result is then (B, T)."""
    return _reinforce(_rewards(rewards), lengths, mask, kl, kl_coef, eps, dtype)


reinforce_pp.group_local = False  # the whitening's mean and std are the whole batch's


@register("reinforce++-baseline")
def reinforce_pp_baseline(rewards: ArrayLike, index: ArrayLike | None = None, *, lengths: Sequence[int] | None = None,
                          mask: torch.Tensor | None = None, kl: torch.Tensor | None = None, kl_coef: float = 0.0,
                          eps: float = EPS, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """REINFORCE++-baseline: the group mean is subtracted first, A = whiten(r − mean_g r)."""
    r = _rewards(rewards)
    return _reinforce(_group_centred(r, index)[0], lengths, mask, kl, kl_coef, eps, dtype)


reinforce_pp_baseline.group_local = False  # group-centred, then whitened over the whole batch
