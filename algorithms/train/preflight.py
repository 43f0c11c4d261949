"""What a training checks before it loads a model or writes a file, shared by the :class:`Trainer`
(at construction) and ``thinksolve train --dry-run`` (which stops there).

:func:`preflight` loads the plugins, validates the configuration, builds the credit method, loads
every data source and checks the model names; :func:`resume_changes` lists how a configuration
differs from a run's recorded one in the fields a resumed run may not change
(:data:`RESUMABLE_CHANGES` may).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from thinksolve_env import Problem, load_problems

from ..config import ConfigError, TrainerConfig
from ..credit import resolve_grouping
from ..credit.base import needs_for
from ..credit.registry import plugin_source
from ..optim import estimators
from ..runs.checkpoint import config_diff
from ..runs.loggers import LoggerMissing, check_loggers
from ..runs.state import ResumeError
from ..team.sources import check_model_source
from ..team.warmstart import warm_start_path

__all__ = ["RESUMABLE_CHANGES", "Preflight", "preflight", "check_models", "check_collection", "resume_changes",
           "check_resume", "load_data"]

#: Config fields (and sections) a resumed run may change: none of them changes what a step
#: computes (``parallel``: how ranks share the work; a sharded checkpoint loads at any world size;
#: ``report_to``/``tensorboard``: where the metrics are mirrored).
RESUMABLE_CHANGES = ("steps", "out", "save_every", "eval_every", "tensorboard", "report_to", "samples_every",
                     "samples_per_write", "parallel")


def load_data(field: str, source: str) -> list[Problem]:
    """``load_problems(source)``, its errors named after the config field."""
    try:
        return load_problems(source)
    except (OSError, ValueError) as e:
        raise ConfigError(f"{field}={source!r}: {e}") from None


@dataclass
class Preflight:
    """What :func:`preflight` found: the credit method, the problems, whether the warm start is
    cached."""

    credit: Any
    problems: list[Problem]
    eval_problems: list[Problem]
    warm_start_cached: bool | None
    """``None``: no warm start; ``True``: cached (reused); ``False``: trained first."""


def check_models(cfg: TrainerConfig) -> None:
    """The models first: a mistyped path or a hub id that cannot be loaded here is the real
    problem, to be named before any setting that depends on the model (the warm start is for the
    built-in ones) is judged."""
    names = [(f"model.{f}", getattr(cfg.model, f)) for f in ("name", "solver_name")]
    role_models = cfg.model.role_models if isinstance(cfg.model.role_models, dict) else {}
    names += [(f"model.role_models.{role}", name) for role, name in role_models.items()]
    for field_name, name in names:
        if isinstance(name, str) and name:
            try:
                check_model_source(name, field=field_name)
            except ValueError as e:
                raise ConfigError(str(e)) from None


def _centres_each_group(cfg: TrainerConfig) -> bool:
    """Whether the configured estimator gives a group of one member a zero advantage (it centres
    each group on its own mean: grpo, dr_grpo, rloo, reinforce++-baseline), probed on two
    one-member groups with different rewards, so a registered estimator is judged the same way."""
    params = {"scale": cfg.optim.scale} if cfg.optim.estimator == "grpo" else {}
    try:
        adv = estimators.get(cfg.optim.estimator)([1.0, -1.0], [0, 1], lengths=[1, 1], **params)
    except Exception:  # an estimator that cannot take the probe is judged when it runs
        return False
    return not bool(torch.any(torch.as_tensor(adv).abs() > 1e-12))


def check_collection(credit: Any, cfg: TrainerConfig) -> None:
    """Refuse a credit method that is not defined for the team's chain of roles (``sepo`` for
    more than two), and a collection on which a role would train on nothing: a role whose answers are
    compared with their siblings (grouping ``"thought"``, e.g. the Solver under ``tree``) with one
    answer per thought (``rollout.answers_per_thought=1``) and an estimator that centres each
    group (every built-in but ``reinforce++``): every group has one member, the role's advantage
    is 0 on every step, and the run would look healthy and learn nothing.
    tests/test_silent_zero.py checks, for every built-in method and estimator on flat and tree
    collections, that every accepted setting gives each role a non-zero advantage when its
    rewards vary."""
    roles = tuple(cfg.rollout.roles)
    if len(roles) > 2:  # what the method needs for the chain; a two-role method says it is one
        try:
            needs_for(credit, roles)
        except ValueError as e:
            raise ConfigError(f"credit.name={cfg.credit.name!r} is invalid with rollout.roles={list(roles)}: {e}") from None
    K = cfg.rollout.answers_per_thought
    for role in roles if len(roles) == 2 else roles[1:]:  # (a chain's first role is grouped by problem)
        if resolve_grouping(credit, role) == "thought" and K < 2 and _centres_each_group(cfg):
            raise ConfigError(
                f"credit {cfg.credit.name!r} compares each {role} answer with the other answers to the same thought, but "
                f"rollout.answers_per_thought={K} collects one answer per thought: with {cfg.optim.estimator!r}, which "
                f"centres each group, every such group has one member, so {role}'s advantage would be 0 on every step and "
                f"it would learn nothing. Set rollout.answers_per_thought=K with K >= 2 (e.g. 4; rollout.group_size is "
                f"then the thoughts per problem)")


def preflight(cfg: TrainerConfig, *, world: int = 1, loggers: bool = True) -> Preflight:
    """Everything that can be checked before a model is loaded or a file written: the plugins
    loaded first (their credit methods can then be named), the configuration, the credit method
    built (its parameters' values) and its collection, the loggers named in ``report_to``
    (``loggers=False``: a process that writes no metrics), the world size, every data source and
    the model names. Raises
    :class:`~algorithms.config.ConfigError` naming the first problem."""
    cfg.load_plugins()
    check_models(cfg)
    cfg.validate()
    credit = cfg.credit.build()
    check_collection(credit, cfg)
    names, explicit = cfg.loggers()
    if loggers and explicit:  # a logger asked for by name must be there (the deprecated tensorboard flag only notes it)
        try:
            check_loggers(names)
        except LoggerMissing as e:
            raise ConfigError(str(e)) from None
    if cfg.rollout.problems_per_step < world:
        raise ConfigError(f"rollout.problems_per_step={cfg.rollout.problems_per_step} is invalid with "
                          f"{world} processes: allowed >= {world} (each rank needs a problem)")
    problems = load_data("train_data", cfg.train_data)
    eval_problems = load_data("eval_data", cfg.eval_data)
    ws, cached = cfg.warm_start, None
    if ws.enabled:
        cached = (warm_start_path(ws, cfg.model.name, cfg.rollout.prompts, cfg.rollout.roles) / "config.json").exists()
        if not cached:
            load_data("warm_start.data", ws.data)
    return Preflight(credit=credit, problems=problems, eval_problems=eval_problems, warm_start_cached=cached)


def resume_changes(recorded: dict, config: TrainerConfig) -> list[str]:
    """The differences (``field: recorded -> now``) between a run's recorded configuration and
    ``config`` outside :data:`RESUMABLE_CHANGES`: what a resume must refuse. Fields added since the
    checkpoint was written read as their defaults; a recorded configuration this version cannot
    read is a :class:`~algorithms.config.ConfigError`."""
    old = TrainerConfig.from_dict(recorded).to_dict()
    # a run recorded before plugin files were kept by absolute path: the same files, said the new way
    old["plugins"] = list(dict.fromkeys(plugin_source(p) for p in old.get("plugins") or []))
    return [d for d in config_diff(old, config.to_dict()) if d.split(":")[0].split(".")[0] not in RESUMABLE_CHANGES]


def check_resume(out: Any, recorded: dict, config: TrainerConfig) -> None:
    """Refuse to resume run ``out`` (recorded configuration ``recorded``) with ``config``: a
    :class:`~algorithms.runs.ResumeError` listing every difference :func:`resume_changes` finds,
    or saying that the recorded configuration is not one this version reads."""
    try:  # fields added since the checkpoint was written read as their defaults
        diff = resume_changes(recorded, config)
    except ConfigError as e:
        raise ResumeError(f"cannot resume {out}: its checkpoint's configuration is not one this version reads: {e}") from None
    if diff:
        raise ResumeError(f"cannot resume {out}: the checkpoint was written with a different configuration "
                          f"(only {', '.join(RESUMABLE_CHANGES)} may change):\n  " + "\n  ".join(diff))
