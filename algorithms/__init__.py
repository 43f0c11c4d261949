"""How the agents learn.

The public surface (what the docs teach)::

    from algorithms import (Trainer, TrainerConfig, preset, apply_overrides, ConfigError,
                            collect_groups, Sampling, Episode, EpisodeGroup, credit, estimators, losses,
                            evaluate, paired_interval, collaboration_diagnostics, load_team)

One room per concern (docs/architecture.md has the map and the data flow of one step):
:mod:`.rollout` (episodes, collection), :mod:`.credit` (credit methods), :mod:`.optim`
(advantage estimators, policy losses), :mod:`.config` (settings, presets), :mod:`.team`
(models, warm start, rollout engines, loading a team), :mod:`.train` (the loop, the update),
:mod:`.runs` (run directory, metrics, checkpoints), :mod:`.evaluation` (evaluation, diagnostics,
statistics), :mod:`.lab` (the credit-fidelity lab), :mod:`.cli` (the ``thinksolve`` command).
"""

from . import credit
from .config import ConfigError, TrainerConfig, apply_overrides, preset
from .evaluation import collaboration_diagnostics, evaluate, paired_interval
from .optim import estimators, losses
from .rollout import Episode, EpisodeGroup, Sampling, collect_groups
from .team import load_team
from .train import ResumeError, Trainer, TrainingInterrupted, policy_update

__all__ = [
    "Trainer", "TrainerConfig", "ResumeError", "TrainingInterrupted", "ConfigError", "preset", "apply_overrides",
    "policy_update", "collect_groups", "Sampling", "Episode", "EpisodeGroup", "credit", "estimators", "losses", "evaluate",
    "paired_interval", "collaboration_diagnostics", "load_team",
]
