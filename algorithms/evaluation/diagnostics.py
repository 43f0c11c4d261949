"""Per-batch collaboration diagnostics (docs/method.md#ccpo, #evaluation-and-the-collaboration-diagnostic).

:func:`collaboration_diagnostics` summarises a batch of episode groups. Accuracies are averaged
per problem first (each group weighs the same), with p(x) the problem's solo accuracy (share of
its m solo samples that are correct):

==========================  ===============================================================
key                         meaning
==========================  ===============================================================
``joint_accuracy``          mean_x mean_j [R_joint > 0]
``solo_accuracy``           mean_x p(x)                                   (needs ``solo``)
``collaboration``           joint_accuracy − solo_accuracy                (needs ``solo``)
``thinker_help_rate``       P(R_joint > R_¬T) = mean_x mean_j [R_joint,j > 0]·(1 − p(x))
``thinker_hurt_rate``       P(R_joint < R_¬T) = mean_x mean_j [R_joint,j < 0]·p(x)
                            (R_¬T drawn from the problem's solo samples; help − hurt = collaboration)
``no_solver_accuracy``      mean_x mean_j [R_¬S,j > 0]                     (needs ``no_solver``)
``solver_help_rate``        mean_x mean_j [R_joint,j > R_¬S,j]             (needs ``no_solver``)
``solver_hurt_rate``        mean_x mean_j [R_joint,j < R_¬S,j]             (needs ``no_solver``)
``rating_valid_rate``       share of SEPO ratings that parse to a valid pair (needs ``ratings``)
``adv_corr_<agent>``        Pearson correlation, over the batch, of the agent's advantages
                            under ``rewards`` with the shared-reward advantages (same estimator,
                            over the role's training units: with tree rollouts one per thought
                            for the Thinker; the Solver grouped as ``method.grouping`` says)
``thought_value_std``       mean over problems of the std of Q̂(x, t_j) across its thoughts
                            (tree rollouts only: how much the thoughts of a problem differ)
==========================  ===============================================================

Teams of more than two roles (``EpisodeGroup.roles``): the rows above that name a removal read
the chain's coalitions (``solo``: the first role removed, ``no_solver``: the last), the help and
hurt rates are left out, and for each role k whose removal was collected (the ``drop``
counterfactual, or ``solo``/``no_solver``) two more keys:

==============================  ===========================================================
``without_<role>_accuracy``     mean_x of the accuracy with the role removed
``contribution_<role>``         joint_accuracy − without_<role>_accuracy
==============================  ===========================================================

A credit method that is only a rescaled shared reward shows ``adv_corr`` = 1. A correlation is
``None`` when either advantage vector is constant (e.g. every group is all-correct).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from thinksolve_env import SOLVER, THINKER

from ..credit import joint_rewards, resolve_grouping, role_units
from ..credit.rating import parse_rating
from ..optim import estimators
from .stats import correlation

__all__ = ["collaboration_diagnostics"]


def collaboration_diagnostics(groups: Sequence[Any], rewards: Mapping[str, Any] | None = None, *,
                              estimator: str = "grpo", method: Any = None, **estimator_params: Any) -> dict[str, float | None]:
    """The diagnostics above for ``groups``; with ``rewards`` (a credit method's output) also the
    advantage correlations, computed with ``estimators.get(estimator)(r, index, **estimator_params)``
    on each role's units (``method``, when given, supplies the grouping)."""
    groups = list(groups)
    if not groups:
        raise ValueError("collaboration_diagnostics got no episode groups")
    roles = tuple(getattr(groups[0], "roles", None) or (THINKER, SOLVER))
    if roles != (THINKER, SOLVER):
        return _chain_diagnostics(groups, roles, rewards, estimator=estimator, method=method, **estimator_params)
    out: dict[str, float | None] = {}
    acc, solo, help_, hurt = [], [], [], []
    has_solo = all(getattr(g, "solo_rewards", None) for g in groups)
    for g in groups:
        R = np.array([float(e.reward) for e in g.episodes])
        acc.append(float(np.mean(R > 0)))
        if has_solo:
            p = float(np.mean(np.asarray(g.solo_rewards, dtype=np.float64) > 0))
            solo.append(p)
            help_.append(float(np.mean((R > 0) * (1 - p))))
            hurt.append(float(np.mean((R < 0) * p)))
    out["joint_accuracy"] = float(np.mean(acc))
    if has_solo:
        out["solo_accuracy"] = float(np.mean(solo))
        out["collaboration"] = out["joint_accuracy"] - out["solo_accuracy"]
        out["thinker_help_rate"] = float(np.mean(help_))
        out["thinker_hurt_rate"] = float(np.mean(hurt))
    if all(e.no_solver_reward is not None for g in groups for e in g.episodes):
        ns, sh, su = [], [], []
        for g in groups:
            R = np.array([float(e.reward) for e in g.episodes])
            Rs = np.array([float(e.no_solver_reward) for e in g.episodes])
            ns.append(float(np.mean(Rs > 0)))
            sh.append(float(np.mean(Rs < R)))
            su.append(float(np.mean(Rs > R)))
        out["no_solver_accuracy"] = float(np.mean(ns))
        out["solver_help_rate"] = float(np.mean(sh))
        out["solver_hurt_rate"] = float(np.mean(su))
    rated = [(e, r) for g in groups for e in g.episodes if e.ratings is not None for r in (THINKER, SOLVER)]
    if rated:
        out["rating_valid_rate"] = float(np.mean([parse_rating(e.ratings.get(r), e.reward > 0).valid for e, r in rated]))
    if rewards is not None:
        out.update(_advantage_correlations(groups, (THINKER, SOLVER), rewards, estimator, method, estimator_params))
    out.update(_thought_spread(groups))
    return out


def _advantage_correlations(groups: list, roles: Sequence[str], rewards: Mapping[str, Any], estimator: str,
                            method: Any, estimator_params: dict) -> dict[str, float | None]:
    """``adv_corr_<role>`` for each role of ``roles`` in ``rewards``."""
    out: dict[str, float | None] = {}
    est = estimators.get(estimator)
    R = joint_rewards(groups)
    for agent in roles:
        if agent in rewards:
            grouping = resolve_grouping(method, agent) if method is not None else "problem"
            mine = role_units(groups, rewards[agent], agent, grouping)
            ref = role_units(groups, R, agent, "problem")
            adv = est(mine.rewards, mine.index, **estimator_params).numpy()
            shared = est(ref.rewards, ref.index, **estimator_params).numpy()
            out[f"adv_corr_{agent}"] = correlation(adv, shared)
    return out


def _thought_spread(groups: list) -> dict[str, float]:
    """``thought_value_std`` (tree rollouts only)."""
    spreads = []
    for g in groups:
        vals = getattr(g, "thought_values", None)
        if vals is not None and getattr(g, "answers_per_thought", 1) > 1 and len(vals) > 1:
            spreads.append(float(np.std(vals)))
    return {"thought_value_std": float(np.mean(spreads))} if spreads else {}


def _without(group: Any, roles: tuple[str, ...], role: str) -> list[float] | None:
    """The rewards of ``group`` with ``role`` removed, when collected (else ``None``)."""
    coalition = frozenset(roles) - {role}
    if role == roles[0]:
        values = (group.coalition_rewards or {}).get(coalition)
        return list(values) if values else None
    per = [(e.coalition_rewards or {}).get(coalition) for e in group.episodes]
    return None if any(v is None for v in per) else per


def _chain_diagnostics(groups: list, roles: tuple[str, ...], rewards: Mapping[str, Any] | None, *, estimator: str,
                       method: Any, **estimator_params: Any) -> dict[str, float | None]:
    """The diagnostics of a batch of a chain of three or more roles (see the module docstring)."""
    out: dict[str, float | None] = {}
    out["joint_accuracy"] = float(np.mean([np.mean([e.reward > 0 for e in g.episodes]) for g in groups]))
    for role in roles:
        values = [_without(g, roles, role) for g in groups]
        if any(v is None for v in values):
            continue
        acc = float(np.mean([np.mean(np.asarray(v) > 0) for v in values]))
        out[f"without_{role}_accuracy"] = acc
        out[f"contribution_{role}"] = out["joint_accuracy"] - acc
    if f"without_{roles[0]}_accuracy" in out:
        out["solo_accuracy"] = out[f"without_{roles[0]}_accuracy"]
        out["collaboration"] = out[f"contribution_{roles[0]}"]
    if f"without_{roles[-1]}_accuracy" in out:
        out["no_solver_accuracy"] = out[f"without_{roles[-1]}_accuracy"]
    if rewards is not None:
        out.update(_advantage_correlations(groups, roles, rewards, estimator, method, estimator_params))
    out.update(_thought_spread(groups))
    return out
