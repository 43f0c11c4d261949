"""``difference`` — difference rewards / wonderful-life utility (docs/method.md#difference): the raw
counterfactual margin used as the reward itself.

    r_T = Δ_T = R_joint − R_¬T,   with R_¬T estimated by the solo baseline b(x)
    r_S = Δ_S = R_joint − R_¬S    (R_¬S: the episode's own thought verified alone)

R_¬T does not depend on the thought, so its best estimate per problem is the mean b(x) of
the m solo samples (the same stand-in CCPO's margin variant uses).

With tree rollouts (K answers per thought, docs/method.md#tree-credit) the Thinker's term uses the thought's
value Q̂(x, t_j) = mean_k R_jk in place of R_joint: r_T = Q̂(x, t_j) − b(x). The Solver's term
keeps its own answer's outcome, r_S = R_jk − R_¬S(j). With K = 1 both are the flat formulas.

A chain of N roles (docs/method.md#teams-of-more-than-two-roles): r_k = V̂_k − v̂(N∖{k}), where V̂_k
is the value of role k's text (the mean R_joint of the episodes below it: R_joint itself for
the last role and with one episode per text) and v̂(N∖{k}) the team without role k replayed on
the same prefix (for the first role the mean of the problem's samples). Needs ``drop``; with two
roles it is the formulas above.
"""

from __future__ import annotations

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
    removal_values,
    solo_baselines,
    thought_values,
)
from .registry import register

__all__ = ["Difference"]


@register("difference")
class Difference(CreditMethod):
    """Difference rewards: r_T = Q̂(x, t) − b(x) (Q̂ = R_joint when K = 1), r_S = R_joint − R_¬S."""

    name = "difference"
    requires = frozenset({SOLO, NO_SOLVER})
    per_group = True

    def needs_for(self, roles: Sequence[str]) -> frozenset[str]:
        return self.requires if tuple(roles) == ROLES else frozenset({DROP})

    def compute(self, groups: Sequence[EpisodeGroup]) -> dict[str, np.ndarray]:
        roles = chain_roles(groups)
        if roles != ROLES:
            return {k: node_values(groups, k) - removal_values(groups, k) for k in roles}
        R = joint_rewards(groups)
        return {THINKER: thought_values(groups) - solo_baselines(groups), SOLVER: R - no_solver_rewards(groups)}
