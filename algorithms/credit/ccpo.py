"""``ccpo`` — counterfactual credit (docs/method.md#ccpo; Li et al., arXiv 2603.21563).

b(x) is the mean of the problem's m solo rewards R_¬T (Thinker removed); R_¬S is the
episode's thought verified alone (Solver removed). Variants (``variant=``):

``event`` (default, reference v2)
    helped = [R_joint > 0 and b < 0], hurt = [R_joint < 0 and b > 0], bonus = helped − hurt
    r_T = R_joint + λ·bonus,  r_S = R_joint.                       requires ``solo``

``margin`` (reference non-event form, generalised to both roles)
    r_T = R_joint + λ·(R_joint − b)/2,  r_S = R_joint + λ·(R_joint − R_¬S)/2.
                                                                    requires ``solo``, ``no_solver``

``value`` (docs/method.md#tree-credit: CCPO's margin with a thought-dependent joint estimate, for tree rollouts)
    Q̂(x, t_j) = mean over the thought's K answers of R_joint;  Δ_T(j) = Q̂(x, t_j) − b
    r_T = Q̂(x, t_j) + λ·Δ_T(j)/2,  r_S = R_joint.                 requires ``solo``
    With K = 1, Q̂ = R_joint and r_T is ``margin``'s Thinker reward.

``normalized`` (reference v1, "global-history-aware normalization")
    Joint episode k is paired with solo sample k (k mod m when m < n): Δ_k = R_joint,k − R_solo,k.
    Exponential moving averages (``decay``) of the mean and variance of Δ, R_joint and R_solo
    standardize the batch with the statistics from *before* it (z = (v − μ)/(σ + ε)); the
    statistics are updated after. Until ``warmup`` (10) samples have been seen, μ = 0, σ = 1
    (raw values pass through).
        r_T = tanh(α·(Δ − μ_Δ)/(σ_Δ + ε))
        r_S = g·z_joint + (1 − g)·z_solo,   g = sigmoid(η·μ_Δ/(σ_Δ + ε))
    Apply GRPO group normalization (with std) on top. The state is checkpointed with
    ``state_dict()`` / ``load_state_dict()``.                        requires ``solo``

Moving-average update after a batch with mean m_B and (population) variance v_B of a quantity:
the first batch sets μ = m_B, σ² = v_B; later ones μ ← d·μ + (1 − d)·m_B, σ² ← d·σ² + (1 − d)·v_B.

A chain of N roles (docs/method.md#teams-of-more-than-two-roles): each role's counterfactual is the
team without it on the same prefix, v̂(N∖{k}) (the first role: the mean of the problem's
samples, b(x) for two roles), and V̂_k the value of role k's text (R_joint with one episode per
text). ``event``: r_k = R_joint + λ·bonus_k for every role but the last (bonus_k from R_joint and
v̂(N∖{k}) as above), r_last = R_joint; ``margin``: r_k = R_joint + λ·(R_joint − v̂(N∖{k}))/2 for
every role; ``value``: r_k = V̂_k + λ·(V̂_k − v̂(N∖{k}))/2 for every role but the last, r_last =
R_joint. They need ``drop``; ``normalized`` is defined for two roles only. With two roles each is
the formula above.

Know this (docs/method.md#ccpo): with b(x) constant within a group, ``event`` makes the Thinker's reward
an affine function of R_joint, r_T = (1 + λ/2)·R_joint ± λ/2, in every group with b ≠ 0 (and
r_T = R_joint when b = 0); ``margin`` gives r_T = (1 + λ/2)·R_joint − λb/2 in every group. Under
a group-centred estimator this only rescales the Thinker's shared-reward advantage by (1 + λ/2),
and divides out entirely with the group std.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..rollout import EpisodeGroup
from .base import (
    DROP,
    NO_SOLVER,
    ROLES,
    SOLO,
    SOLVER,
    THINKER,
    CreditMethod,
    chain_roles,
    joint_rewards,
    no_solver_rewards,
    node_values,
    paired_solo_rewards,
    removal_values,
    solo_baselines,
    thought_values,
)
from .registry import register

__all__ = ["CCPO", "VARIANTS"]

VARIANTS = ("event", "margin", "normalized", "value")
_STATS = ("delta", "joint", "solo")


@register("ccpo")
class CCPO(CreditMethod):
    """Counterfactual credit; see the module docstring for the variants' formulas.

    Args:
        variant: ``"event"`` (default), ``"margin"``, ``"normalized"`` or ``"value"``.
        lam: λ ≥ 0, the bonus weight of ``event``, ``margin`` and ``value`` (0.2).
        alpha: α, the tanh slope of ``normalized`` (1.0).
        eta: η, the gate slope of ``normalized`` (1.0).
        decay: the moving-average decay of ``normalized`` (0.99), in [0, 1).
        eps: ε in the standardizations of ``normalized`` (1e-6).
        warmup: samples seen before ``normalized`` standardizes (10).
    """

    name = "ccpo"

    @property
    def per_group(self) -> bool:
        """Every variant but ``normalized`` (whose moving averages carry over from batch to
        batch) is a pure function of each group."""
        return self.variant != "normalized"

    def __init__(self, variant: str = "event", lam: float = 0.2, alpha: float = 1.0, eta: float = 1.0,
                 decay: float = 0.99, eps: float = 1e-6, warmup: int = 10) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown ccpo variant {variant!r}; available: {', '.join(VARIANTS)}")
        for pname, v in (("lam", lam), ("alpha", alpha), ("eta", eta), ("eps", eps)):
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"ccpo: {pname} must be a finite number, got {v!r}")
        if lam < 0:
            raise ValueError(f"ccpo: lam must be >= 0, got {lam!r}")
        if eps <= 0:
            raise ValueError(f"ccpo: eps must be > 0, got {eps!r}")
        if not 0 <= decay < 1:
            raise ValueError(f"ccpo: decay must be in [0, 1), got {decay!r}")
        self.variant, self.lam, self.alpha, self.eta = variant, float(lam), float(alpha), float(eta)
        self.decay, self.eps, self.warmup = float(decay), float(eps), int(warmup)
        self.requires = frozenset({SOLO, NO_SOLVER}) if variant == "margin" else frozenset({SOLO})
        self._reset_stats()

    def _reset_stats(self) -> None:
        self.count = 0
        self.mean = dict.fromkeys(_STATS, 0.0)
        self.var = dict.fromkeys(_STATS, 1.0)

    def needs_for(self, roles: Sequence[str]) -> frozenset[str]:
        """Two roles: ``requires``; a chain of N roles: ``drop`` (``normalized``: two roles only)."""
        if tuple(roles) == ROLES:
            return self.requires
        if self.variant == "normalized":
            raise ValueError("ccpo variant 'normalized' is defined for two roles (a Thinker and a Solver); for a chain "
                             f"of {len(tuple(roles))} roles use variant 'event', 'margin' or 'value'")
        return frozenset({DROP})

    # -- variants -------------------------------------------------------------------------
    def compute(self, groups: Sequence[EpisodeGroup]) -> dict[str, np.ndarray]:
        roles = chain_roles(groups)
        if roles != ROLES:
            return self._chain(groups, roles)
        R = joint_rewards(groups)
        if self.variant == "event":
            b = solo_baselines(groups)
            bonus = ((R > 0) & (b < 0)).astype(np.float64) - ((R < 0) & (b > 0)).astype(np.float64)
            self.metrics = {"ccpo/helped": float(np.mean(bonus > 0)), "ccpo/hurt": float(np.mean(bonus < 0))}
            return {THINKER: R + self.lam * bonus, SOLVER: R.copy()}
        if self.variant == "margin":
            b = solo_baselines(groups)
            rs = no_solver_rewards(groups)
            return {THINKER: R + self.lam * (R - b) / 2, SOLVER: R + self.lam * (R - rs) / 2}
        if self.variant == "value":
            b = solo_baselines(groups)
            q = thought_values(groups)
            self.metrics = {"ccpo/thought_margin": float(np.mean(q - b))}
            return {THINKER: q + self.lam * (q - b) / 2, SOLVER: R.copy()}
        return self._normalized(R, paired_solo_rewards(groups))

    def _chain(self, groups: Sequence[EpisodeGroup], roles: tuple[str, ...]) -> dict[str, np.ndarray]:
        self.needs_for(roles)  # normalized: a clear error
        R = joint_rewards(groups)
        last = roles[-1]
        out, helped, hurt = {}, [], []
        for k in roles:
            v = removal_values(groups, k)
            if self.variant == "margin":
                out[k] = R + self.lam * (R - v) / 2
            elif k == last:
                out[k] = R.copy()
            elif self.variant == "event":
                bonus = ((R > 0) & (v < 0)).astype(np.float64) - ((R < 0) & (v > 0)).astype(np.float64)
                helped.append(float(np.mean(bonus > 0)))
                hurt.append(float(np.mean(bonus < 0)))
                out[k] = R + self.lam * bonus
            else:  # value
                q = node_values(groups, k)
                out[k] = q + self.lam * (q - v) / 2
        if helped:
            self.metrics = {"ccpo/helped": float(np.mean(helped)), "ccpo/hurt": float(np.mean(hurt))}
        return out

    def _normalized(self, R: np.ndarray, solo: np.ndarray):
        values = {"delta": R - solo, "joint": R, "solo": solo}
        if self.count >= self.warmup:
            mu = dict(self.mean)
            sd = {k: math.sqrt(max(self.var[k], 0.0)) for k in _STATS}
        else:
            mu = dict.fromkeys(_STATS, 0.0)
            sd = dict.fromkeys(_STATS, 1.0)
        z = {k: (values[k] - mu[k]) / (sd[k] + self.eps) for k in _STATS}
        r_T = np.tanh(self.alpha * z["delta"])
        g = 1.0 / (1.0 + math.exp(-self.eta * mu["delta"] / (sd["delta"] + self.eps)))
        r_S = g * z["joint"] + (1 - g) * z["solo"]
        self.metrics = {"ccpo/gate": g, "ccpo/delta_mean": mu["delta"], "ccpo/delta_std": sd["delta"]}
        self._update(values)
        return {THINKER: r_T, SOLVER: r_S}

    def _update(self, values: dict[str, np.ndarray]) -> None:
        d = self.decay
        for k in _STATS:
            m_b, v_b = float(np.mean(values[k])), float(np.var(values[k]))
            if self.count == 0:
                self.mean[k], self.var[k] = m_b, v_b
            else:
                self.mean[k] = d * self.mean[k] + (1 - d) * m_b
                self.var[k] = d * self.var[k] + (1 - d) * v_b
        self.count += len(values["delta"])

    # -- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"count", "mean", "var"}`` of the moving averages (only ``normalized`` uses them)."""
        return {"count": self.count, "mean": dict(self.mean), "var": dict(self.var)}

    def load_state_dict(self, state: dict) -> None:
        try:
            count = int(state["count"])
            mean = {k: float(state["mean"][k]) for k in _STATS}
            var = {k: float(state["var"][k]) for k in _STATS}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"ccpo.load_state_dict: expected {{'count', 'mean', 'var'}} with keys {_STATS}, "
                             f"got {state!r}") from exc
        self.count, self.mean, self.var = count, mean, var

    def __repr__(self) -> str:
        return f"CCPO(variant={self.variant!r}, lam={self.lam}, alpha={self.alpha}, eta={self.eta}, decay={self.decay})"
