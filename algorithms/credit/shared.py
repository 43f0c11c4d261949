"""``shared`` — the ReMA baseline (METHOD.md §5): both roles get the team reward.

    r_T = r_S = R_joint
"""

from __future__ import annotations

from .registry import register
from .base import ROLES, CreditMethod, joint_rewards

__all__ = ["Shared"]


@register("shared")
class Shared(CreditMethod):
    """Shared reward: r_T = r_S = R_joint. Requires nothing beyond the joint episodes."""

    name = "shared"
    requires = frozenset()
    per_group = True

    def compute(self, groups):
        R = joint_rewards(groups)
        return {a: R.copy() for a in ROLES}
