"""``shared`` — the ReMA baseline (docs/method.md#shared): both roles get the team reward.

    r_T = r_S = R_joint            (a chain of N roles: r_k = R_joint for every role)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..rollout import EpisodeGroup
from .base import CreditMethod, chain_roles, joint_rewards
from .registry import register

__all__ = ["Shared"]


@register("shared")
class Shared(CreditMethod):
    """Shared reward: r_T = r_S = R_joint. Requires nothing beyond the joint episodes."""

    name = "shared"
    requires = frozenset()
    per_group = True

    def compute(self, groups: Sequence[EpisodeGroup]) -> dict[str, np.ndarray]:
        R = joint_rewards(groups)
        return {a: R.copy() for a in chain_roles(groups)}
