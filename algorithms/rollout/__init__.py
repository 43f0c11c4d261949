"""Rollouts: batched collection of joint episodes with counterfactual replays and ratings
(:func:`collect_groups`), its sampling settings (:class:`Sampling`), the episodes and groups it
returns, and the names of what it can collect."""

from .collect import PHASES, SAMPLING_DEFAULTS, collect_groups
from .episodes import Collected, Episode, EpisodeGroup, thought_slices
from .needs import COUNTERFACTUALS, NO_SOLVER, R_EMPTY, RATINGS, SOLO, normalize_needs
from .sampling import PHASE_SEEDS, Sampling, SamplingError

__all__ = [
    "collect_groups", "Sampling", "SamplingError", "PHASE_SEEDS", "Episode", "EpisodeGroup", "Collected",
    "thought_slices", "SAMPLING_DEFAULTS", "PHASES",
    "COUNTERFACTUALS", "SOLO", "NO_SOLVER", "RATINGS", "R_EMPTY", "normalize_needs",
]
