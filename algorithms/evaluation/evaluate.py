"""Evaluation and the collaboration diagnostic (docs/method.md#evaluation-and-the-collaboration-diagnostic).

:func:`evaluate` plays each problem ``samples`` times (mean@k) with the full team and with the
Thinker removed (the Solver alone, on the solo prompt), in one batched collection, and reports
exact-match accuracies of the Solver's answer; ``remove="solver_0"`` instead verifies the
Thinker's thought on its own. The collaboration diagnostic is ``joint − Thinker removed``: it is
positive when the Solver really uses the thought.

Progress: with ``chunk=k`` the problems are collected ``k`` at a time (chunk ``j`` sampled with
seed ``seed + j``) and ``progress(info)`` is called after each chunk with ``done``, ``total``
(problems), ``tokens``, ``seconds``, ``tokens_per_s`` and ``eta_s`` (the time left at the rate so
far); :func:`eval_progress` turns that into one printed line. Without ``chunk`` everything is one
batch (one ``generate`` call per role and phase), as in training.

Verification: every chunk uses the same verifier, ``verifier`` when one is passed (the trainer's,
``thinksolve eval``'s), else one :class:`~thinksolve_env.MathVerifier` made for this call and
closed at its end. Its worker processes start once per evaluation, not once per chunk (starting
them costs about a second each, more than a chunk of a small model's generations).

Teams of more than two roles (``rollout.roles``, or ``roles=``): each problem is played with the
whole chain and with each role removed in turn (the ``drop`` counterfactual: the roles before the
removed one keep their texts, the later ones answer afresh; without the first role, ``samples``
fresh plays of the others), in one batched collection. The result holds the team's accuracy, the
accuracy without each role (``removed``), and each role's contribution, the paired difference
team − without it, with its interval over the problems (``intervals["contribution_<role>"]``):
what "the middle role matters" means, measured.

Runs and models are loaded for evaluation by :func:`algorithms.team.load_team`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import numpy as np

from thinksolve_env import ROLES, MathVerifier, Problem, load_problems

from ..config import RolloutConfig, env_options, prompt_templates
from ..rollout import Sampling, collect_groups
from ..runs import clock
from .stats import paired_interval

__all__ = ["evaluate", "REMOVALS", "eval_progress", "intervals", "without_rewards"]

REMOVALS = ("thinker_0", "solver_0")


def evaluate(policies: dict, data: str | Sequence[Problem], *, samples: int = 1, temperature: float = 1.0,
             seed: int = 0, remove: str | None = None, verifier: Any = None, rollout: RolloutConfig | None = None,
             limit: int | None = None, chunk: int | None = None,
             progress: Callable[[dict], Any] | None = None, roles: Sequence[str] | None = None) -> dict[str, Any]:
    """Accuracy of ``policies`` on ``data`` (a problem list or anything ``load_problems`` reads).

    Returns ``{"problems", "samples", "temperature", "joint_accuracy", "solo_accuracy",
    "collaboration", "help_rate", "hurt_rate", "per_problem", "ids", "intervals", "seed",
    "sampling", "tokens", "seconds"}`` (``per_problem``: the share of each problem's samples that are correct,
    ``{"joint": [...], "solo": [...]}`` in problem order, for paired intervals; see
    :func:`paired_interval`; ``ids``: the problems' :attr:`~thinksolve_env.Problem.id` in the same
    order; ``intervals``: :func:`intervals` of ``per_problem``; ``sampling``: the settings used,
    ``{"temperature", "top_p", "thinker_max_new_tokens", "solver_max_new_tokens", "samples",
    "prompts"}``; ``tokens``: tokens generated) (help:
    the team is right where the paired Thinker-removed sample is wrong; hurt: the reverse; help −
    hurt = collaboration) (``remove="thinker_0"``: only ``solo_accuracy``;
    ``remove="solver_0"``: ``no_solver_accuracy``, the Thinker alone, with ``per_problem["no_solver"]``). ``rollout`` (a
    :class:`~algorithms.config.RolloutConfig`, e.g. the run's) supplies the sampling settings
    (:meth:`~algorithms.config.RolloutConfig.sampling`: token budgets, ``top_p``) and the prompt
    set, with this evaluation's own ``temperature`` and ``seed``; without it, the defaults of
    :class:`~algorithms.rollout.Sampling` and the env's prompts.

    ``roles`` (default ``rollout.roles``, else the keys of ``policies`` when they are not the two
    default roles): a team of three or more roles is evaluated with each role removed in turn (see
    the module docstring and :func:`_evaluate_chain`); ``remove`` then names one role.
    """
    chain = _team(policies, rollout, roles)
    if chain != ROLES:
        return _evaluate_chain(policies, data, chain, samples=samples, temperature=temperature, seed=seed,
                               remove=remove, verifier=verifier, rollout=rollout, limit=limit, chunk=chunk,
                               progress=progress)
    problems, sampling = _prepare(data, REMOVALS, remove=remove, samples=samples, chunk=chunk, limit=limit,
                                  rollout=rollout, seed=seed, temperature=temperature)
    options = {"prompts": prompt_templates(rollout.prompts)} if rollout is not None else None
    needs = {"solo"} if remove in (None, "thinker_0") else {"no_solver"}
    t0 = time.perf_counter()
    groups, tokens = _collect(problems, policies, needs=needs, samples=samples, sampling=sampling, seed=seed,
                              verifier=verifier, env_options=options, chunk=chunk, progress=progress)
    joint = float(np.mean([e.reward > 0 for g in groups for e in g.episodes]))
    out: dict[str, Any] = {"problems": len(problems), "samples": samples, "temperature": temperature}
    settings = {"temperature": temperature, "top_p": sampling.top_p, "thinker_max_new_tokens": sampling.thinker_max_new_tokens,
                "solver_max_new_tokens": sampling.solver_max_new_tokens, "samples": samples,
                "prompts": rollout.prompts if rollout is not None else "default"}
    # per problem, in order: the share of its samples that are correct (for paired intervals)
    per: dict[str, list[float]] = {}
    if remove is None:
        per = {"joint": [float(np.mean([e.reward > 0 for e in g.episodes])) for g in groups],
               "solo": [float(np.mean([r > 0 for r in g.solo_rewards])) for g in groups]}
    elif remove == "thinker_0":
        per = {"solo": [float(np.mean([r > 0 for r in g.solo_rewards])) for g in groups]}
    else:
        per = {"no_solver": [float(np.mean([e.no_solver_reward > 0 for e in g.episodes])) for g in groups]}
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
    out["per_problem"] = per
    out["ids"] = [p.id for p in problems]
    out["intervals"] = intervals(per)
    out["seed"], out["sampling"] = seed, settings
    out["tokens"] = tokens
    out["seconds"] = time.perf_counter() - t0
    return out


def _team(policies: dict, rollout: RolloutConfig | None, roles: Sequence[str] | None) -> tuple[str, ...]:
    """The chain an evaluation plays: ``roles``, else the run's ``rollout.roles``, else the keys of
    ``policies`` (the two default roles when they hold those)."""
    if roles is not None:
        return tuple(roles)
    if rollout is not None:
        return tuple(rollout.roles)
    keys = tuple(policies)
    return ROLES if set(keys) == set(ROLES) else keys


def _collect(problems: Sequence[Problem], policies: dict, *, needs: Any, samples: int, sampling: Any, seed: int,
             verifier: Any, env_options: dict | None, chunk: int | None, progress: Callable[[dict], Any] | None,
             **kw: Any) -> tuple[list, int]:
    """The collection of an evaluation, ``chunk`` problems at a time (chunk ``j`` seeded
    ``seed + j``), one verifier for every chunk: the groups and the tokens generated."""
    t0 = time.perf_counter()
    size = chunk or len(problems)
    groups, tokens = [], 0
    own = verifier is None  # one verifier (one worker pool) for every chunk, closed here if made here
    verifier = MathVerifier() if own else verifier
    try:
        for j, lo in enumerate(range(0, len(problems), size)):
            part = collect_groups(problems[lo:lo + size], policies, group_size=samples, needs=needs, solo_samples=samples,
                                  verifier=verifier, sampling=sampling.replace(seed=seed + j), env_options=env_options,
                                  **kw)
            groups += list(part)
            tokens += sum(v["tokens"] for k, v in part.budget.items() if k != "generate_calls" and "tokens" in v)
            if progress is not None:
                done, dt = min(lo + size, len(problems)), time.perf_counter() - t0
                progress({"done": done, "total": len(problems), "tokens": tokens, "seconds": dt,
                          "tokens_per_s": tokens / dt if dt > 0 else 0.0,
                          "eta_s": dt / done * (len(problems) - done)})
    finally:
        if own:
            verifier.close()
    return groups, tokens


def without_rewards(group: Any, role: str) -> list[float]:
    """The rewards of ``group``'s problem with ``role`` removed from its chain: one per joint
    episode (the replay on the episode's prefix) when the first role stays, else the problem's
    samples of the team without its first role."""
    roles = tuple(group.roles)
    coalition = frozenset(roles) - {role}
    if role == roles[0]:
        values = (group.coalition_rewards or {}).get(coalition)
        return list(values if values is not None else group.solo_rewards or [])
    return [e.coalition_rewards[coalition] for e in group.episodes]


def _prepare(data: Any, removable: Any, *, remove: str | None, samples: int, chunk: int | None, limit: int | None,
             rollout: RolloutConfig | None, seed: int, temperature: float) -> tuple[list, Sampling]:
    """The arguments every evaluation checks, then its problems and sampling settings."""
    if remove is not None and remove not in removable:
        raise ValueError(f"remove must be one of {list(removable)} or None, got {remove!r}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be >= 1 or None, got {chunk}")
    problems = load_problems(data, limit=limit) if not isinstance(data, (list, tuple)) else list(data)
    sampling = (rollout.sampling(seed) if rollout is not None else Sampling()).replace(temperature=temperature)
    return problems, sampling


def _evaluate_chain(policies: dict, data: str | Sequence[Problem], roles: tuple[str, ...], *, samples: int,
                    temperature: float, seed: int, remove: str | None, verifier: Any, rollout: RolloutConfig | None,
                    limit: int | None, chunk: int | None, progress: Callable[[dict], Any] | None) -> dict[str, Any]:
    """:func:`evaluate` for a chain of three or more roles.

    Returns ``{"problems", "samples", "temperature", "roles", "joint_accuracy", "removed",
    "contribution", "solo_accuracy", "per_problem", "ids", "intervals", "seed", "sampling",
    "tokens", "seconds"}``: ``removed[role]`` the accuracy with ``role`` removed, ``contribution[role]``
    the team's accuracy minus it; ``per_problem`` holds ``joint`` and ``without_<role>`` (the share
    of each problem's samples that are correct), and ``intervals`` their paired 95% intervals and
    ``contribution_<role>`` (team − without the role, paired over the problems). ``solo_accuracy``
    is the accuracy without the first role (the two-role name, so that a log line reads the same).
    ``remove=role``: only that removal (no joint accuracy, as for two roles)."""
    problems, sampling = _prepare(data, roles, remove=remove, samples=samples, chunk=chunk, limit=limit,
                                  rollout=rollout, seed=seed, temperature=temperature)
    options = env_options(rollout) if rollout is not None else {"roles": roles}
    options["roles"] = roles
    t0 = time.perf_counter()
    groups, tokens = _collect(problems, policies, needs={"drop"}, samples=samples, sampling=sampling, seed=seed,
                              verifier=verifier, env_options=options, chunk=chunk, progress=progress)
    removed = [remove] if remove is not None else list(roles)
    per: dict[str, list[float]] = {}
    if remove is None:
        per["joint"] = [float(np.mean([e.reward > 0 for e in g.episodes])) for g in groups]
    for role in removed:
        per[f"without_{role}"] = [float(np.mean([r > 0 for r in without_rewards(g, role)])) for g in groups]
    out: dict[str, Any] = {"problems": len(problems), "samples": samples, "temperature": temperature, "roles": list(roles)}
    if remove is None:
        out["joint_accuracy"] = float(np.mean([e.reward > 0 for g in groups for e in g.episodes]))
    out["removed"] = {role: float(np.mean([r > 0 for g in groups for r in without_rewards(g, role)])) for role in removed}
    if remove is None:
        out["contribution"] = {role: out["joint_accuracy"] - out["removed"][role] for role in roles}
        out["solo_accuracy"] = out["removed"][roles[0]]
    out["per_problem"] = per
    out["ids"] = [p.id for p in problems]
    out["intervals"] = intervals(per)
    if remove is None:
        for role in roles:
            out["intervals"][f"contribution_{role}"] = _clean(paired_interval(per["joint"], per[f"without_{role}"]))
    out["seed"] = seed
    out["sampling"] = {"temperature": temperature, "top_p": sampling.top_p,
                       "thinker_max_new_tokens": sampling.thinker_max_new_tokens,
                       "solver_max_new_tokens": sampling.solver_max_new_tokens,
                       "role_max_new_tokens": rollout.budgets() if rollout is not None else None,
                       "samples": samples, "prompts": rollout.prompts if rollout is not None else "default"}
    out["tokens"] = tokens
    out["seconds"] = time.perf_counter() - t0
    return out


def _clean(r: dict) -> dict:
    """A :func:`paired_interval` result as JSON can hold it (a standard error that needs two
    problems is ``None`` with one)."""
    se = None if r["se"] != r["se"] else r["se"]
    return {"mean": r["mean"], "se": se, "ci95": r["ci95"] if se is not None else [None, None]}


def intervals(per_problem: dict[str, Sequence[float]]) -> dict[str, dict[str, Any]]:
    """Paired 95% intervals over problems (:func:`paired_interval`) of an evaluation's
    ``per_problem`` values: each accuracy measured (``joint`` = the team, ``solo`` = the Thinker
    removed, ``no_solver``) and, with both ``joint`` and ``solo``, ``collaboration`` (their paired
    difference). A standard error that needs two problems is ``None`` with one (JSON has no NaN)."""

    out = {k: _clean(paired_interval(v)) for k, v in per_problem.items() if len(v)}
    if len(per_problem.get("joint", ())) and len(per_problem.get("solo", ())):
        out["collaboration"] = _clean(paired_interval(per_problem["joint"], per_problem["solo"]))
    return out


def eval_progress(prefix: str = "eval", out: TextIO | None = None) -> Callable[[dict], None]:
    """A ``progress`` callback for :func:`evaluate` that prints one line per chunk (to ``out``,
    default stderr): problems done, tokens/s, elapsed time and an estimate of the time left.
    Plain lines, so they show under ``tee``, ``nohup`` or in a log file as on a terminal."""

    def report(info: dict) -> None:
        print(f"{prefix}: {info['done']}/{info['total']} problems, {info['tokens_per_s']:.0f} tok/s, "
              f"{clock(info['seconds'])} elapsed, ~{clock(info['eta_s'])} left", file=out or sys.stderr, flush=True)

    return report
