"""``difference`` — difference rewards / wonderful-life utility (METHOD.md §5): the raw
counterfactual margin used as the reward itself.

    r_T = Δ_T = R_joint − R_¬T,   with R_¬T estimated by the solo baseline b(x)
    r_S = Δ_S = R_joint − R_¬S    (R_¬S: the episode's own thought verified alone)

R_¬T does not depend on the thought, so its best estimate per problem is the mean b(x) of
the m solo samples (the same stand-in CCPO's margin variant uses).
"""

from __future__ import annotations

from . import register
from .base import NO_SOLVER, SOLO, SOLVER, THINKER, CreditMethod, joint_rewards, no_solver_rewards, solo_baselines

__all__ = ["Difference"]


@register("difference")
class Difference(CreditMethod):
    """Difference rewards: r_T = R_joint − b(x), r_S = R_joint − R_¬S."""

    name = "difference"
    requires = frozenset({SOLO, NO_SOLVER})

    def compute(self, groups):
        R = joint_rewards(groups)
        return {THINKER: R - solo_baselines(groups), SOLVER: R - no_solver_rewards(groups)}
