"""``tree`` — per-thought credit from tree-structured rollouts (docs/method.md#tree-credit; C3's "reward only").

Collect K Solver answers per thought (``collect_groups(..., answers_per_thought=K)``). With
Q̂(x, t_j) = mean_k R(x, t_j, a_jk), the value of thought j:

    r_T(j)    = Q̂(x, t_j)       grouped by problem: a group-centred estimator gives the Thinker
                                 Q̂_j − mean of the problem's thoughts' Q̂ (one unit per thought)
    r_S(j, k) = R_jk             grouped by thought: the Solver's answer is compared with its
                                 siblings, the other answers to the same thought (baseline Q̂_j)

Requires nothing beyond the joint episodes. With K = 1 the Thinker's reward is R_joint (shared
reward) and every Solver group has one member, so the Solver's group-centred advantage is 0:
use K ≥ 2 (C3 uses 2 thoughts × 4 answers; prefer n ≥ 4 thoughts, or ``scale="none"``, since with
n = 2 the group std turns every Thinker advantage into ±1).

A chain of N roles (``answers_per_thought=K`` branches K ways at every position): role k's reward
is the value of its text, the mean outcome of the episodes below it (the last role: its own
R), grouped by its parent text (the first role: by problem).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..rollout import EpisodeGroup
from .base import ROLES, SOLVER, THINKER, CreditMethod, chain_roles, joint_rewards, node_values, thought_values
from .registry import register

__all__ = ["Tree"]


class _ParentGrouping(dict):
    """The Thinker by problem, every other role by its parent text (``"thought"``): a role of a
    chain not named here is grouped by its parent; the first role of any chain is read as
    ``"problem"`` by :func:`~.base.role_units`."""

    def get(self, role, default=None):
        return super().get(role, "thought")


@register("tree")
class Tree(CreditMethod):
    """r_T = Q̂(x, t) (grouped by problem), r_S = R (grouped by thought)."""

    name = "tree"
    requires = frozenset()
    grouping = _ParentGrouping({THINKER: "problem", SOLVER: "thought"})
    per_group = True

    def compute(self, groups: Sequence[EpisodeGroup]) -> dict[str, np.ndarray]:
        roles = chain_roles(groups)
        if roles != ROLES:
            return {k: node_values(groups, k) for k in roles}
        return {THINKER: thought_values(groups), SOLVER: joint_rewards(groups)}
