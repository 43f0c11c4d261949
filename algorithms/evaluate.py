"""Evaluation and the collaboration diagnostic (METHOD.md §7).

:func:`evaluate` plays each problem ``samples`` times (mean@k) with the full team and with the
Thinker removed (the Solver alone, on the solo prompt), in one batched collection, and reports
exact-match accuracies of the Solver's answer; ``remove="solver_0"`` instead verifies the
Thinker's thought on its own. The collaboration diagnostic is ``joint − Thinker removed``: it is
positive when the Solver really uses the thought.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from thinksolve_env import load_problems

from .rollout import collect_groups

__all__ = ["evaluate", "REMOVALS", "load_team"]

REMOVALS = ("thinker_0", "solver_0")


def evaluate(policies: dict, data, *, samples: int = 1, temperature: float = 1.0, seed: int = 0, remove: str | None = None,
             verifier=None, rollout=None, limit: int | None = None) -> dict[str, Any]:
    """Accuracy of ``policies`` on ``data`` (a problem list or anything ``load_problems`` reads).

    Returns ``{"problems", "samples", "temperature", "joint_accuracy", "solo_accuracy",
    "collaboration", "help_rate", "hurt_rate", "seconds"}`` (help: the team is right where the
    paired Thinker-removed sample is wrong; hurt: the reverse; help − hurt = collaboration) (``remove="thinker_0"``: only ``solo_accuracy``;
    ``remove="solver_0"``: ``no_solver_accuracy``, the Thinker alone). ``rollout`` (a
    :class:`~algorithms.config.RolloutConfig`) supplies the token budgets and the prompt set.
    """
    if remove is not None and remove not in REMOVALS:
        raise ValueError(f"remove must be one of {list(REMOVALS)} or None, got {remove!r}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    problems = load_problems(data, limit=limit) if not isinstance(data, (list, tuple)) else list(data)
    budgets = {}
    if rollout is not None:
        budgets = dict(thinker_max_new_tokens=rollout.thinker_max_new_tokens,
                       solver_max_new_tokens=rollout.solver_max_new_tokens, top_p=rollout.top_p)
        from .config import prompt_templates

        budgets["env_options"] = {"prompts": prompt_templates(getattr(rollout, "prompts", "default"))}
    needs = {"solo"} if remove in (None, "thinker_0") else {"no_solver"}
    t0 = time.perf_counter()
    groups = collect_groups(problems, policies, group_size=samples, needs=needs, solo_samples=samples,
                            verifier=verifier, temperature=temperature, seed=seed, **budgets)
    joint = float(np.mean([e.reward > 0 for g in groups for e in g.episodes]))
    out: dict[str, Any] = {"problems": len(problems), "samples": samples, "temperature": temperature}
    if remove is None:
        solo = float(np.mean([r > 0 for g in groups for r in g.solo_rewards]))
        # sample j of the team is paired with solo sample j of the same problem
        pairs = [(e.reward > 0, r > 0) for g in groups for e, r in zip(g.episodes, g.solo_rewards)]
        out.update(joint_accuracy=joint, solo_accuracy=solo, collaboration=joint - solo,
                   help_rate=float(np.mean([j and not s for j, s in pairs])),
                   hurt_rate=float(np.mean([s and not j for j, s in pairs])))
    elif remove == "thinker_0":
        out["solo_accuracy"] = float(np.mean([r > 0 for g in groups for r in g.solo_rewards]))
    else:
        out["no_solver_accuracy"] = float(np.mean([e.no_solver_reward > 0 for g in groups for e in g.episodes]))
    out["seconds"] = time.perf_counter() - t0
    return out


def load_team(model: str, *, solver_model: str | None = None, seed: int = 0, device: str | None = None) -> tuple[dict, Any]:
    """``(policies, rollout config or None)`` for evaluation: a run directory (its ``checkpoint/``,
    with the run's rollout settings: budgets and prompt set), or a model name/path for both roles
    (``solver_model`` for a different Solver)."""
    from pathlib import Path

    from agents import TransformersPolicy

    run = Path(model)
    if (run / "checkpoint" / "meta.json").exists() or (run / "checkpoint.old" / "meta.json").exists():
        from .checkpoint import load_checkpoint
        from .config import TrainerConfig
        from .trainer import Trainer

        ck = load_checkpoint(run / "checkpoint")
        cfg = TrainerConfig.from_dict(ck["config"])
        cfg.out = str(run)
        trainer = Trainer(cfg, resume=True, log=None)
        trainer.close()
        return trainer.rollout_policies, cfg.rollout
    thinker = TransformersPolicy.from_pretrained(model, seed=seed, device=device)
    solver = thinker if solver_model in (None, model) else TransformersPolicy.from_pretrained(solver_model, seed=seed, device=device)
    return {"thinker_0": thinker, "solver_0": solver}, None
