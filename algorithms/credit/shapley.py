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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..rollout import EpisodeGroup
from .base import (
    NO_SOLVER,
    R_EMPTY,
    SOLO,
    SOLVER,
    THINKER,
    CreditMethod,
    joint_rewards,
    no_solver_rewards,
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

    def compute(self, groups: Sequence[EpisodeGroup]) -> dict[str, np.ndarray]:
        R = joint_rewards(groups)
        b = solo_baselines(groups)
        rs = no_solver_rewards(groups)
        return {
            THINKER: 0.5 * ((rs - R_EMPTY) + (thought_values(groups) - b)),
            SOLVER: 0.5 * ((b - R_EMPTY) + (R - rs)),
        }
