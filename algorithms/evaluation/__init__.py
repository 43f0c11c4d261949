"""Evaluation: team accuracy with and without the Thinker (:func:`evaluate`), per-batch
collaboration diagnostics, and the statistics both report."""

from .diagnostics import collaboration_diagnostics
from .evaluate import REMOVALS, eval_progress, evaluate, intervals
from .stats import correlation, paired_interval

__all__ = ["evaluate", "eval_progress", "intervals", "REMOVALS", "collaboration_diagnostics", "paired_interval", "correlation"]
