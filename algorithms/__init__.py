"""How the agents learn: batched rollouts with counterfactual replays (:mod:`.rollout`), credit
assignment (:mod:`.credit`), advantage estimators (:mod:`.estimators`), policy losses
(:mod:`.losses`) and per-batch diagnostics (:mod:`.diagnostics`)."""

from . import credit, diagnostics, estimators, losses, rollout
from .diagnostics import collaboration_diagnostics
from .rollout import Episode, EpisodeGroup, collect_groups

__all__ = [
    "credit",
    "estimators",
    "losses",
    "rollout",
    "diagnostics",
    "collect_groups",
    "Episode",
    "EpisodeGroup",
    "collaboration_diagnostics",
]
