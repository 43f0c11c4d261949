"""What every credit method shares: the counterfactual names, the method base class, and
small array helpers over episode groups (METHOD.md §2–§5).

A *credit method* turns the verified outcomes of a batch of episode groups into one scalar
reward per joint episode for each role. It is a pure function of the groups (the one
exception, ``ccpo(variant="normalized")``, keeps moving averages that it exposes through
``state_dict()`` / ``load_state_dict()`` so a trainer can checkpoint them).

Counterfactuals a method can require (its ``.requires``; pass it as ``needs`` to
:func:`algorithms.rollout.collect_groups`):

=============  ====================================================================  ==========================
name           what is collected                                                      cost
=============  ====================================================================  ==========================
``solo``       Thinker removed: the Solver answers the problem alone, m samples per   m Solver generations and
               problem; ``EpisodeGroup.solo_rewards`` (R_¬T), baseline b(x) = mean     m verifier calls / problem
``no_solver``  Solver removed: the Thinker's own text is verified;                    1 verifier call / episode,
               ``Episode.no_solver_reward`` (R_¬S)                                     no generation
``ratings``    SEPO: each role rates the finished transcript; ``Episode.ratings``     1 rating per role / episode
=============  ====================================================================  ==========================

Both removed needs nothing: R_∅ = −1 (:data:`R_EMPTY`).

Groups are duck-typed: a method reads ``group.episodes`` (each with ``.reward`` and, when
collected, ``.no_solver_reward`` and ``.ratings``) and ``group.solo_rewards``. Build them by hand
with :meth:`algorithms.rollout.EpisodeGroup.from_rewards`.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

from thinksolve_env import ROLES, SOLVER, THINKER

from ..rollout.episodes import thought_slices
from ..rollout.needs import COUNTERFACTUALS, NO_SOLVER, R_EMPTY, RATINGS, SOLO, normalize_needs

__all__ = [
    "SOLO",
    "NO_SOLVER",
    "RATINGS",
    "COUNTERFACTUALS",
    "R_EMPTY",
    "ROLES",
    "THINKER",
    "SOLVER",
    "MissingCounterfactualError",
    "CreditMethod",
    "normalize_needs",
    "check_needs",
    "joint_rewards",
    "group_index",
    "solo_baselines",
    "paired_solo_rewards",
    "no_solver_rewards",
    "GROUPINGS",
    "Units",
    "thought_slices",
    "thought_ids",
    "thought_values",
    "role_units",
    "resolve_grouping",
]


#: How a role's rewards can be grouped for a group-centred estimator (METHOD.md §8):
#: ``problem`` — every unit of the problem's group together (the default for both roles);
#: ``thought`` — the Solver's answers to one thought together (siblings), so its baseline is
#: that thought's value Q̂(x, t). The Thinker's units are its thoughts, always grouped by problem.
GROUPINGS = ("problem", "thought")


class MissingCounterfactualError(ValueError):
    """A credit method's ``requires`` is not met by what was (or will be) collected."""


def check_needs(method: Any, needs: Any) -> None:
    """Raise :class:`MissingCounterfactualError` up front (before any generation) when
    ``method.requires`` is not a subset of ``needs``, naming what is missing."""
    missing = sorted(normalize_needs(method) - normalize_needs(needs))
    if missing:
        raise MissingCounterfactualError(
            f"credit method {_label(method)} requires {_describe(missing)}, which the configured collection "
            f"does not provide; add {missing} to needs (or pass needs=method.requires)"
        )


def _label(method: Any) -> str:
    return repr(getattr(method, "name", type(method).__name__))


def _describe(missing: Sequence[str]) -> str:
    return "; ".join(f"the {m!r} counterfactual ({COUNTERFACTUALS[m]})" for m in missing)


def _has(groups: Sequence[Any], need: str) -> bool:
    if need in _NEED_ARRAYS and _precomputed(groups, _NEED_ARRAYS[need]) is not None:
        return True
    if need == SOLO:
        return all(getattr(g, "solo_rewards", None) is not None and len(g.solo_rewards) > 0 for g in groups)
    if need == NO_SOLVER:
        return all(getattr(e, "no_solver_reward", None) is not None for g in groups for e in g.episodes)
    if need == RATINGS:
        return all(getattr(e, "ratings", None) is not None for g in groups for e in g.episodes)
    return True


class CreditMethod:
    """Base class for credit methods (subclass it, or register a plain function).

    Subclasses set ``name``, ``requires`` (and optionally ``grouping``, see :data:`GROUPINGS`)
    and implement :meth:`compute`; calling the method
    checks ``requires`` against the groups, runs :meth:`compute`, and checks that it returned
    one finite reward per joint episode for every agent. ``metrics`` holds the diagnostics of the
    last call (e.g. SEPO's rating valid rate).
    """

    name: str = "credit"
    requires: frozenset[str] = frozenset()
    #: role -> ``"problem"`` | ``"thought"`` (:data:`GROUPINGS`): how the estimator groups this
    #: role's rewards. Missing roles mean ``"problem"``.
    grouping: dict = {}

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}

    def compute(self, groups: Sequence[Any]) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, groups: Iterable[Any]) -> dict[str, np.ndarray]:
        if getattr(groups, "arrays", None) is None:  # an array-backed batch keeps its arrays
            groups = list(groups)
        if not groups:
            raise ValueError(f"credit method {self.name!r} got no episode groups")
        missing = [n for n in sorted(self.requires) if not _has(groups, n)]
        if missing:
            raise MissingCounterfactualError(
                f"credit method {self.name!r} requires {_describe(missing)}, but the groups were collected "
                f"without it; collect with needs={sorted(self.requires)} (method.requires)"
            )
        self.metrics = {}
        out = self.compute(groups)
        return _check_output(self.name, out, sum(len(g.episodes) for g in groups))

    def state_dict(self) -> dict:
        """State to checkpoint (empty for the stateless methods)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output (nothing to do for stateless methods)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, requires={sorted(self.requires)})"


def _check_output(name: str, out: Any, n: int) -> dict[str, np.ndarray]:
    if not isinstance(out, dict):
        raise TypeError(f"credit method {name!r} must return a dict agent -> rewards, got {type(out).__name__}")
    missing = [a for a in ROLES if a not in out]
    if missing:
        raise ValueError(f"credit method {name!r} returned no rewards for {missing}")
    result = {}
    for agent, r in out.items():
        arr = np.asarray(r, dtype=np.float64).reshape(-1) if np.ndim(r) <= 1 else None
        if arr is None or arr.shape != (n,):
            raise ValueError(f"credit method {name!r}: rewards for {agent} must have one value per joint episode ({n}), got shape {np.shape(r)}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"credit method {name!r}: rewards for {agent} contain NaN or inf")
        result[agent] = arr
    return result


# --------------------------------------------------------------------------- array helpers
#
# Fast path: a groups object with an ``arrays`` dict (e.g. a list subclass such as the
# credit-fidelity lab's array-backed batches) may carry the helpers' results precomputed, under
# the helper's name (``joint_rewards``, ``group_index``, ``solo_baselines``, ``paired_solo_rewards``,
# ``no_solver_rewards``, ``thought_ids``); a helper then returns a copy of that array instead of
# reading the episodes (``thought_values`` and ``role_units`` follow). Without ``arrays`` (every
# batch collect_groups makes) nothing changes.

#: The precomputed array that shows a counterfactual was collected (for the ``requires`` check).
_NEED_ARRAYS = {"solo": "solo_baselines", "no_solver": "no_solver_rewards"}


def _precomputed(groups: Any, key: str) -> np.ndarray | None:
    arrays = getattr(groups, "arrays", None)
    if not arrays or arrays.get(key) is None:
        return None
    return np.array(arrays[key], copy=True)


def joint_rewards(groups: Sequence[Any]) -> np.ndarray:
    """R_joint of every joint episode, in the order of the groups and their episodes."""
    if (pre := _precomputed(groups, "joint_rewards")) is not None:
        return pre
    return np.array([float(e.reward) for g in groups for e in g.episodes], dtype=np.float64)


def group_index(groups: Sequence[Any]) -> np.ndarray:
    """The group number of every joint episode (the ``index`` the estimators take)."""
    if (pre := _precomputed(groups, "group_index")) is not None:
        return pre
    return np.array([i for i, g in enumerate(groups) for _ in g.episodes], dtype=np.int64)


def solo_baselines(groups: Sequence[Any]) -> np.ndarray:
    """b(x) = mean of the problem's m solo rewards R_¬T, repeated for each joint episode."""
    if (pre := _precomputed(groups, "solo_baselines")) is not None:
        return pre
    return np.array([float(np.mean(g.solo_rewards)) for g in groups for _ in g.episodes], dtype=np.float64)


def paired_solo_rewards(groups: Sequence[Any]) -> np.ndarray:
    """Joint episode k paired with solo sample k of its problem (k mod m when m < n)."""
    if (pre := _precomputed(groups, "paired_solo_rewards")) is not None:
        return pre
    out = []
    for g in groups:
        solo = np.asarray(g.solo_rewards, dtype=np.float64)
        out.extend(solo[k % len(solo)] for k in range(len(g.episodes)))
    return np.array(out, dtype=np.float64)


def no_solver_rewards(groups: Sequence[Any]) -> np.ndarray:
    """R_¬S of every joint episode (its thought verified on its own)."""
    if (pre := _precomputed(groups, "no_solver_rewards")) is not None:
        return pre
    return np.array([float(e.no_solver_reward) for g in groups for e in g.episodes], dtype=np.float64)


# --------------------------------------------------------------------------- tree rollouts (METHOD.md §8)


def thought_ids(groups: Sequence[Any]) -> np.ndarray:
    """A batch-wide thought number for every joint episode: siblings (the K answers to one
    thought) share it; different thoughts, also across groups, never do. With one answer per
    thought it is simply the episode's position."""
    if (pre := _precomputed(groups, "thought_ids")) is not None:
        return pre
    out, base = [], 0
    for g in groups:
        local = np.empty(len(g.episodes), dtype=np.int64)
        slices = thought_slices(g.episodes)
        for t, positions in enumerate(slices):
            local[positions] = base + t
        out.append(local)
        base += len(slices)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _mean_by(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    counts = np.bincount(ids).astype(np.float64)
    sums = np.bincount(ids, weights=values)
    return sums / np.maximum(counts, 1)


def thought_values(groups: Sequence[Any]) -> np.ndarray:
    """Q̂(x, t_j) = mean_k R(x, t_j, a_jk), the value of each joint episode's thought, repeated
    for each of its K answers (= R_joint when K = 1)."""
    ids = thought_ids(groups)
    R = joint_rewards(groups)
    if ids.size == 0:
        return R
    return _mean_by(R, ids)[ids]


class Units(tuple):
    """One role's training units: ``(rewards, index, episodes)``.

    ``rewards[u]`` the unit's reward, ``index[u]`` its estimator group label, ``episodes[u]`` the
    position (in the flat joint-episode order) of the episode whose prompt and completion the
    unit trains on. For the Thinker a unit is a distinct thought (its reward: the mean of the
    credit method's rewards over the thought's K episodes; the thought's tokens enter the loss
    once); for the Solver a unit is a joint episode."""

    __slots__ = ()

    def __new__(cls, rewards, index, episodes):
        return super().__new__(cls, (rewards, index, episodes))

    @property
    def rewards(self) -> np.ndarray:
        return self[0]

    @property
    def index(self) -> np.ndarray:
        return self[1]

    @property
    def episodes(self) -> np.ndarray:
        return self[2]


def resolve_grouping(method: Any, role: str) -> str:
    """``method.grouping[role]`` (default ``"problem"``), checked against :data:`GROUPINGS`."""
    g = (getattr(method, "grouping", None) or {}).get(role, "problem")
    if g not in GROUPINGS:
        raise ValueError(f"credit method {_label(method)}: grouping for {role} must be one of {GROUPINGS}, got {g!r}")
    return g


def role_units(groups: Sequence[Any], rewards: Any, role: str, grouping: str = "problem") -> Units:
    """The estimator's input for ``role``: see :class:`Units`.

    ``rewards`` holds one value per joint episode (a credit method's output for ``role``);
    ``grouping`` (:data:`GROUPINGS`) picks the Solver's group labels: the problem's group number,
    or the batch-wide thought number (siblings compared with each other). The Thinker's units are
    always grouped by problem. With one answer per thought the Thinker's units are the episodes
    themselves, so K = 1 gives exactly the flat batch."""
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    gidx = group_index(groups)
    if r.shape != gidx.shape:
        raise ValueError(f"role_units: {role} needs one reward per joint episode ({gidx.size}), got shape {np.shape(rewards)}")
    ids = thought_ids(groups)
    if role == THINKER:
        first = np.unique(ids, return_index=True)[1] if ids.size else np.zeros(0, np.int64)
        if first.size == ids.size:  # one answer per thought: the flat batch, bit for bit
            return Units(r.copy(), gidx, np.arange(ids.size, dtype=np.int64))
        return Units(_mean_by(r, ids), gidx[first], first.astype(np.int64))
    return Units(r.copy(), ids if grouping == "thought" else gidx, np.arange(r.size, dtype=np.int64))
