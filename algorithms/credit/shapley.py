"""``shapley`` — exact Shapley values of the two-player game (docs/method.md#shapley).

The coalition values are v(∅) = R_∅ = −1, v({T}) = R_¬S, v({S}) = R_¬T, v({T, S}) = R_joint:

    φ_T = ½[(R_¬S − R_∅) + (R_joint − R_¬T)]
    φ_S = ½[(R_¬T − R_∅) + (R_joint − R_¬S)]

so φ_T + φ_S = R_joint − R_∅ (efficiency). R_¬T is estimated by the solo baseline b(x)
(it does not depend on the thought); efficiency holds for any value used.

With tree rollouts (K answers per thought, docs/method.md#tree-credit) the Thinker's marginal uses the
thought's value Q̂(x, t_j) = mean_k R_jk in place of R_joint, φ_T = ½[(R_¬S − R_∅) + (Q̂_j − b)],
and the Solver's keeps its own answer, φ_S = ½[(b − R_∅) + (R_jk − R_¬S)]; efficiency then holds
on average over the thought's answers (φ_T + mean_k φ_S = Q̂_j − R_∅). With K = 1 both are the
flat formulas.

A chain of N roles (docs/method.md#teams-of-more-than-two-roles): φ_k = Σ_{C ⊆ N∖{k}}
|C|!(N−|C|−1)!/N! · (v̂(C ∪ {k}) − v̂(C)), with v̂(∅) = −1, v̂(N) the value of role k's text (R_joint
with one episode per text) and every other v̂(C) read from the replays of the coalitions
(``coalitions``: all 2^N − 2 proper non-empty ones; a coalition holding the first role on the
episode's prefix, the others per problem). Exact enumeration up to ``exact_max_roles`` (4) roles;
beyond, ``permutations`` sampled orders of the roles (seeded, the same for every episode): φ_k is
the mean of k's marginal over them, unbiased for the exact value. ``metrics`` report the
coalitions read (``shapley/coalitions``) and the permutations (``shapley/permutations``).
With two roles it is the formula above.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from ..rollout import EpisodeGroup
from .base import (
    COALITIONS,
    NO_SOLVER,
    R_EMPTY,
    ROLES,
    SOLO,
    SOLVER,
    THINKER,
    CreditMethod,
    MissingCounterfactualError,
    chain_roles,
    coalition_values,
    joint_rewards,
    no_solver_rewards,
    node_values,
    solo_baselines,
    thought_values,
)
from .registry import register

__all__ = ["Shapley"]


@register("shapley")
class Shapley(CreditMethod):
    """φ_T = ½[(R_¬S − R_∅) + (R_joint − b)], φ_S = ½[(b − R_∅) + (R_joint − R_¬S)], R_∅ = −1."""

    name = "shapley"
    requires = frozenset({SOLO, NO_SOLVER})
    per_group = True

    def __init__(self, exact_max_roles: int = 4, permutations: int = 64, seed: int = 0) -> None:
        super().__init__()
        for pname, v, lo in (("exact_max_roles", exact_max_roles, 2), ("permutations", permutations, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"shapley: {pname} must be an integer >= {lo}, got {v!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"shapley: seed must be an integer, got {seed!r}")
        self.exact_max_roles, self.permutations, self.seed = exact_max_roles, permutations, seed

    def needs_for(self, roles: Sequence[str]) -> frozenset[str]:
        return self.requires if tuple(roles) == ROLES else frozenset({COALITIONS})

    def compute(self, groups: Sequence[EpisodeGroup]) -> dict[str, np.ndarray]:
        roles = chain_roles(groups)
        if roles != ROLES:
            return self._chain(groups, roles)
        R = joint_rewards(groups)
        b = solo_baselines(groups)
        rs = no_solver_rewards(groups)
        return {
            THINKER: 0.5 * ((rs - R_EMPTY) + (thought_values(groups) - b)),
            SOLVER: 0.5 * ((b - R_EMPTY) + (R - rs)),
        }

    def _orders(self, roles: tuple[str, ...]) -> list[tuple[str, ...]] | None:
        """``None`` (exact enumeration) up to ``exact_max_roles`` roles, else the sampled orders."""
        if len(roles) <= self.exact_max_roles:
            return None
        rng = np.random.default_rng(self.seed)
        return [tuple(roles[i] for i in rng.permutation(len(roles))) for _ in range(self.permutations)]

    def _chain(self, groups: Sequence[EpisodeGroup], roles: tuple[str, ...]) -> dict[str, np.ndarray]:
        values = coalition_values(groups)
        n = len(roles)
        everyone = frozenset(roles)
        used: set[frozenset] = set()

        def v(c: frozenset, k: str) -> np.ndarray | float:
            if not c:
                return R_EMPTY
            if c == everyone:
                return own[k]
            if c not in values:
                raise MissingCounterfactualError(
                    f"shapley: the groups were collected without the coalition {sorted(c)}; collect with "
                    f"needs={{{COALITIONS!r}}} (credit.needs_for(method, roles))")
            used.add(c)
            return values[c]

        own = {k: node_values(groups, k) for k in roles}
        orders = self._orders(roles)
        out = {}
        for k in roles:
            others = [r for r in roles if r != k]
            if orders is None:
                phi = 0.0
                for size in range(n):
                    w = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                    for c in itertools.combinations(others, size):
                        c = frozenset(c)
                        phi = phi + w * (v(c | {k}, k) - v(c, k))
            else:
                phi = 0.0
                for order in orders:
                    before = frozenset(order[:order.index(k)])
                    phi = phi + (v(before | {k}, k) - v(before, k))
                phi = phi / len(orders)
            out[k] = np.broadcast_to(np.asarray(phi, dtype=np.float64), (len(joint_rewards(groups)),)).copy()
        self.metrics = {"shapley/coalitions": float(len(used)),
                        "shapley/permutations": float(0 if orders is None else len(orders))}
        return out
