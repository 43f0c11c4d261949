"""What every credit method shares: the counterfactual names, the method base class, and
small array helpers over episode groups.

A *credit method* turns the verified outcomes of a batch of episode groups into one scalar
reward per joint episode for each role. It is a pure function of the groups (the one
exception, ``ccpo(variant="normalized")``, keeps moving averages that it exposes through
``state_dict()`` / ``load_state_dict()`` so a trainer can checkpoint them). A method that is
also a function of each group on its own says so with :attr:`CreditMethod.per_group`: calling
it once on many batches' groups then gives the rewards of calling it batch by batch.

Counterfactuals a method can require (its ``.requires``; pass it as ``needs`` to
:func:`algorithms.rollout.collect_groups`) are named in :mod:`algorithms.rollout.needs`:
``solo`` (Thinker removed, R_¬T), ``no_solver`` (Solver removed, R_¬S) and ``ratings`` (SEPO);
both removed needs nothing (R_∅ = −1, :data:`R_EMPTY`).

Groups are duck-typed: a method reads ``group.episodes`` (each with ``.reward`` and, when
collected, ``.no_solver_reward`` and ``.ratings``) and ``group.solo_rewards``. Build them by hand
with :meth:`algorithms.rollout.EpisodeGroup.from_rewards`.

The array helpers (:func:`joint_rewards`, :func:`group_index`, :func:`solo_baselines`,
:func:`paired_solo_rewards`, :func:`no_solver_rewards`, :func:`thought_ids`,
:func:`thought_values`, :func:`role_units`) all read one object, :class:`Outcomes`: a batch with
its outcomes as flat arrays. ``Outcomes.of(groups)`` reads them from any groups' episodes; a
batch given by its rewards (:meth:`Outcomes.from_rewards`: tabular games, bandit studies, custom
harnesses) *is* an ``Outcomes``, which every credit method accepts like a list of groups and
which builds its :class:`~algorithms.rollout.EpisodeGroup` objects only when something iterates
it (e.g. SEPO, which reads the ratings).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from thinksolve_env import ROLES, SOLVER, THINKER

from ..rollout.episodes import EpisodeGroup, thought_slices
from ..rollout.needs import (
    COALITIONS,
    COUNTERFACTUALS,
    DROP,
    NO_SOLVER,
    R_EMPTY,
    RATINGS,
    SOLO,
    chain_coalitions,
    coalition_label,
    normalize_needs,
)

__all__ = [
    "SOLO",
    "NO_SOLVER",
    "RATINGS",
    "DROP",
    "COALITIONS",
    "COUNTERFACTUALS",
    "chain_coalitions",
    "coalition_label",
    "coalition_values",
    "removal_values",
    "node_ids",
    "node_values",
    "chain_roles",
    "needs_for",
    "R_EMPTY",
    "ROLES",
    "THINKER",
    "SOLVER",
    "MissingCounterfactualError",
    "CreditMethod",
    "Outcomes",
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


#: How a role's rewards can be grouped for a group-centred estimator (docs/method.md#tree-credit):
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


def needs_for(method: Any, roles: Sequence[str] | None = None) -> frozenset[str]:
    """What ``method`` (a credit method, or counterfactual names) needs collected for the chain
    ``roles`` (default the two roles): the method's ``needs_for(roles)`` when it has one (every
    built-in states its N-role needs that way), else its ``requires``."""
    chain = ROLES if roles is None else tuple(roles)
    fn = getattr(method, "needs_for", None)
    if callable(fn) and not isinstance(method, (str, frozenset, set, list, tuple)):
        return normalize_needs(fn(chain))
    return normalize_needs(method)


def _label(method: Any) -> str:
    return repr(getattr(method, "name", type(method).__name__))


def _describe(missing: Sequence[str]) -> str:
    return "; ".join(f"the {m!r} counterfactual ({COUNTERFACTUALS[m]})" for m in missing)


def _has(groups: Sequence[Any], outcomes: Outcomes, need: str) -> bool:
    if need in (DROP, COALITIONS) or outcomes.roles != ROLES and need in (SOLO, NO_SOLVER):
        return all(c in outcomes.coalitions for c in chain_coalitions(outcomes.roles, {need}))
    if need == SOLO:
        return outcomes.solo_baseline is not None
    if need == NO_SOLVER:
        return outcomes.no_solver is not None
    if need == RATINGS:
        return all(getattr(e, "ratings", None) is not None for g in groups for e in g.episodes)
    return True


class CreditMethod:
    """Base class for credit methods (subclass it, or register a plain function).

    Subclasses set ``name``, ``requires`` (and optionally ``grouping``, see :data:`GROUPINGS`,
    and :attr:`per_group`) and implement :meth:`compute`; calling the method
    checks ``requires`` against the groups, runs :meth:`compute`, and checks that it returned
    one finite reward per joint episode for every agent. ``metrics`` holds the diagnostics of the
    last call (e.g. SEPO's rating valid rate). The groups may be any sequence of groups,
    an :class:`Outcomes` included (another iterable is read into a list first); :meth:`compute`
    receives them as an :class:`Outcomes` (a sequence of the same groups, read once).
    """

    name: str = "credit"
    requires: frozenset[str] = frozenset()
    #: role -> ``"problem"`` | ``"thought"`` (:data:`GROUPINGS`): how the estimator groups this
    #: role's rewards. Missing roles mean ``"problem"``.
    grouping: dict = {}
    #: ``True`` when the method is a pure function of each group: it keeps no state from call to
    #: call, and each episode's rewards depend on its own group only, so calling it once on
    #: several batches' groups (concatenated) gives exactly the rewards of calling it batch by
    #: batch. A harness may then call it once for many batches (the credit-fidelity lab does);
    #: ``metrics`` then describe all of them together. ``False`` is always safe and is the
    #: default: a registered function gets it, and so does every subclass that does not state
    #: its own value (it is not inherited, so a subclass of a built-in that adds state stays
    #: safe). It may be a property when it depends on the parameters (``ccpo``: every variant
    #: but ``normalized``).
    per_group: bool = False
    #: For a method that reads ``ratings``: ``rating_stop(text) -> bool``, true once no further
    #: text can change how the method reads a rating (e.g. :func:`~.rating.rating_complete`).
    #: A collection may stop generating a rating there; ``None`` (the default) never stops early.
    rating_stop: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "per_group" not in cls.__dict__:
            cls.per_group = False

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}

    def compute(self, groups: Sequence[Any]) -> dict[str, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def needs_for(self, roles: Sequence[str]) -> frozenset[str]:
        """The counterfactuals this method needs collected for the chain ``roles``: ``requires``
        for the two roles; built-ins that read removals state their N-role needs (``drop``,
        ``coalitions``) by overriding this."""
        return frozenset(self.requires)

    def __call__(self, groups: Iterable[Any]) -> dict[str, np.ndarray]:
        if not isinstance(groups, Sequence):
            groups = list(groups)
        if not len(groups):
            raise ValueError(f"credit method {self.name!r} got no episode groups")
        outcomes = Outcomes.of(groups)
        need = self.requires if outcomes.roles == ROLES else needs_for(self, outcomes.roles)
        missing = [n for n in sorted(need) if not _has(groups, outcomes, n)]
        if missing:
            how = "method.requires" if outcomes.roles == ROLES else "credit.needs_for(method, roles)"
            raise MissingCounterfactualError(
                f"credit method {self.name!r} requires {_describe(missing)}, but the groups were collected "
                f"without it; collect with needs={sorted(need)} ({how})"
            )
        self.metrics = {}
        # compute() gets the Outcomes (a sequence of the same groups): every helper it calls then
        # reads these arrays instead of walking the episodes again
        out = self.compute(outcomes)
        return _check_output(self.name, out, outcomes.size, outcomes.roles)

    def state_dict(self) -> dict:
        """State to checkpoint (empty for the stateless methods)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output (nothing to do for stateless methods)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, requires={sorted(self.requires)})"


def _check_output(name: str, out: Any, n: int, roles: tuple[str, ...] = ROLES) -> dict[str, np.ndarray]:
    if not isinstance(out, dict):
        raise TypeError(f"credit method {name!r} must return a dict agent -> rewards, got {type(out).__name__}")
    missing = [a for a in roles if a not in out]
    if missing:
        raise ValueError(f"credit method {name!r} returned no rewards for {missing}")
    result = {}
    for agent, r in out.items():
        arr = np.asarray(r, dtype=np.float64).reshape(-1) if np.ndim(r) <= 1 else None
        if arr is None or arr.shape != (n,):
            raise ValueError(f"credit method {name!r}: rewards for {agent} must have one value per joint episode ({n}), "
                             f"got shape {np.shape(r)}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"credit method {name!r}: rewards for {agent} contain NaN or inf")
        result[agent] = arr
    return result


# --------------------------------------------------------------------------- array helpers


class Outcomes(Sequence):
    """A batch of episode groups with its outcomes as flat arrays: what every array helper reads.

    One entry per joint episode, in flat order (the groups in order, each group's episodes in
    order); the arrays are read-only, the helpers return copies:

    =================  ===================================================  ===============================
    attribute          per joint episode                                    helper
    =================  ===================================================  ===============================
    ``joint``          R_joint                                              :func:`joint_rewards`
    ``group``          its group's number, 0 … G − 1                        :func:`group_index`
    ``thought``        the batch-wide number of its thought, in order of    :func:`thought_ids`
                       first appearance (siblings share it; thoughts of
                       different groups never do)
    ``solo_baseline``  b(x), the mean of its group's solo rewards R_¬T      :func:`solo_baselines`
    ``paired_solo``    solo sample k mod m of its group, for episode k      :func:`paired_solo_rewards`
    ``no_solver``      R_¬S, its thought verified alone                      :func:`no_solver_rewards`
    =================  ===================================================  ===============================

    ``solo_baseline`` and ``paired_solo`` are ``None`` unless every group has solo rewards,
    ``no_solver`` unless every episode has R_¬S. ``sizes`` holds each group's number of episodes.

    Make one with :meth:`of` (read from any groups) or :meth:`from_rewards` (a rectangular batch
    given by its rewards). It is itself a sequence of groups, so every credit method takes it
    like a list: ``len`` is the number of groups, and indexing or iterating yields
    :class:`~algorithms.rollout.EpisodeGroup` objects — the groups it was read from, or, for
    :meth:`from_rewards`, groups built on first use (a method that reads only the array
    helpers never builds them). ``outcomes[a:b]`` is the Outcomes of groups a … b − 1.
    """

    joint: np.ndarray
    group: np.ndarray
    thought: np.ndarray
    solo_baseline: np.ndarray | None
    paired_solo: np.ndarray | None
    no_solver: np.ndarray | None
    sizes: np.ndarray

    def __init__(self, joint: Any, sizes: Any, thought: Any = None, *, solo_baseline: Any = None, paired_solo: Any = None,
                 no_solver: Any = None, groups: Sequence[Any] | Callable[[], Sequence[Any]] | None = None) -> None:
        """From flat arrays (one entry per joint episode; ``thought`` defaults to one thought
        per episode) and ``sizes`` (episodes per group). ``groups``: the groups themselves, or a
        function that builds them (called once, on first use); without it the batch cannot be
        iterated."""
        joint = np.array(joint, dtype=np.float64).reshape(-1)
        n = joint.size
        sizes = np.array(sizes, dtype=np.int64).reshape(-1)
        if (sizes < 0).any() or int(sizes.sum()) != n:
            raise ValueError(f"Outcomes: sizes must be non-negative and add up to the {n} joint episodes, got {sizes.tolist()}")
        thought = np.arange(n, dtype=np.int64) if thought is None else np.array(thought, dtype=np.int64).reshape(-1)
        per_episode = {"thought": thought, "solo_baseline": solo_baseline, "paired_solo": paired_solo, "no_solver": no_solver}
        for key, v in per_episode.items():
            if v is not None and np.shape(v) != (n,):
                raise ValueError(f"Outcomes: {key} needs one value per joint episode ({n}), got shape {np.shape(v)}")
        if (solo_baseline is None) != (paired_solo is None):
            raise ValueError("Outcomes: give both solo_baseline and paired_solo, or neither")
        if n:
            seen = np.maximum.accumulate(np.concatenate([[-1], thought[:-1]]))
            starts = np.cumsum(sizes) - sizes
            nonempty = sizes > 0
            if (thought < 0).any() or (thought > seen + 1).any() or \
                    (thought < np.repeat(seen[starts[nonempty]] + 1, sizes[nonempty])).any():
                raise ValueError("Outcomes: thought must number the thoughts in order of first appearance, "
                                 "each thought within one group")
        self._set(joint, sizes, thought, None if solo_baseline is None else np.array(solo_baseline, dtype=np.float64),
                  None if paired_solo is None else np.array(paired_solo, dtype=np.float64),
                  None if no_solver is None else np.array(no_solver, dtype=np.float64), groups)

    def _set(self, joint, sizes, thought, solo_baseline, paired_solo, no_solver, groups, group=None, *,
             roles: tuple[str, ...] = ROLES, coalitions: dict | None = None, nodes: tuple | None = None) -> None:
        self.joint, self.sizes, self.thought = joint, sizes, thought
        self.solo_baseline, self.paired_solo, self.no_solver = solo_baseline, paired_solo, no_solver
        self.group = np.repeat(np.arange(sizes.size, dtype=np.int64), sizes) if group is None else group
        self._bounds = np.concatenate([[0], np.cumsum(sizes)])
        self.roles = tuple(roles)
        if coalitions is None:  # two roles: the solo and Solver-removed values are v({S}) and v({T})
            coalitions = {}
            if solo_baseline is not None:
                coalitions[frozenset(self.roles[1:])] = solo_baseline
            if no_solver is not None:
                coalitions[frozenset(self.roles[:-1])] = no_solver
        self.coalitions = dict(coalitions)
        if nodes is None:
            nodes = (thought,) + tuple(np.arange(joint.size, dtype=np.int64) for _ in range(len(self.roles) - 2))
        self.nodes = tuple(nodes)
        for a in (joint, sizes, thought, solo_baseline, paired_solo, no_solver, self.group, *self.coalitions.values(),
                  *self.nodes):
            if a is not None:
                a.flags.writeable = False
        self._groups = None if callable(groups) else groups
        self._build = groups if callable(groups) else None

    @classmethod
    def _unchecked(cls, *arrays, groups=None, group=None, **chain) -> Outcomes:
        out = cls.__new__(cls)
        out._set(*arrays, groups, group, **chain)
        return out

    @classmethod
    def of(cls, groups: Iterable[Any]) -> Outcomes:
        """The outcomes of ``groups`` (any groups with ``.episodes``), read from their episodes;
        ``groups`` itself when it already is an :class:`Outcomes`."""
        if isinstance(groups, Outcomes):
            return groups
        if not isinstance(groups, Sequence):
            groups = list(groups)
        sizes = np.array([len(g.episodes) for g in groups], dtype=np.int64)
        joint = np.array([float(e.reward) for g in groups for e in g.episodes], dtype=np.float64)
        out, base = [], 0
        for g in groups:
            local = np.empty(len(g.episodes), dtype=np.int64)
            slices = thought_slices(g.episodes)
            for t, positions in enumerate(slices):
                local[positions] = base + t
            out.append(local)
            base += len(slices)
        thought = np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
        solo_baseline = paired_solo = no_solver = None
        if all(getattr(g, "solo_rewards", None) is not None and len(g.solo_rewards) > 0 for g in groups):
            solo_baseline = np.array([float(np.mean(g.solo_rewards)) for g in groups for _ in g.episodes], dtype=np.float64)
            paired = []
            for g in groups:
                solo = np.asarray(g.solo_rewards, dtype=np.float64)
                paired.extend(solo[k % len(solo)] for k in range(len(g.episodes)))
            paired_solo = np.array(paired, dtype=np.float64)
        alone = [getattr(e, "no_solver_reward", None) for g in groups for e in g.episodes]
        if all(v is not None for v in alone):
            no_solver = np.array([float(v) for v in alone], dtype=np.float64)
        roles = {tuple(getattr(g, "roles", ROLES)) for g in groups} or {ROLES}
        if len(roles) > 1:
            raise ValueError(f"Outcomes: the groups come from different chains of roles: {sorted(roles)}")
        (chain,) = roles
        if chain == ROLES and not any(getattr(g, "coalition_rewards", None) or
                                      any(getattr(e, "coalition_rewards", None) for e in g.episodes) for g in groups):
            return cls._unchecked(joint, sizes, thought, solo_baseline, paired_solo, no_solver, groups=groups)
        return cls._unchecked(joint, sizes, thought, solo_baseline, paired_solo, no_solver, groups=groups, roles=chain,
                              coalitions=_read_coalitions(groups, chain), nodes=_read_nodes(groups, chain, thought))

    @classmethod
    def from_rewards(cls, joint: Any, *, solo: Any = None, no_solver: Any = None,
                     ratings: Sequence[Sequence[Mapping[str, Any]]] | None = None, answers_per_thought: int = 1,
                     roles: Sequence[str] | None = None, coalitions: Mapping[Any, Any] | None = None) -> Outcomes:
        """A batch of G groups of E joint episodes each, given by its rewards (the batched
        :meth:`EpisodeGroup.from_rewards <algorithms.rollout.EpisodeGroup.from_rewards>`):
        ``joint`` (G, E) R_joint, thought-major with ``answers_per_thought`` K answers per
        thought; ``solo`` (G, m) the solo rewards R_¬T; ``no_solver`` (G, E) R_¬S; ``ratings``
        one ``{rater: text or pair}`` per episode, per group. The groups are built from these
        (``EpisodeGroup.from_rewards``) only when something iterates the batch.

        Chains of N roles: ``roles`` the chain (default the two roles), ``coalitions`` {C: values}
        for coalitions C (frozensets of role names): (G, E) per episode when C holds the first
        role, else (G, m) samples per problem (their mean is each episode's v̂(C))."""
        joint = np.array(joint, dtype=np.float64)
        if joint.ndim != 2:
            raise ValueError(f"Outcomes.from_rewards: joint must be (groups, episodes), got shape {joint.shape}")
        G, E = joint.shape
        K = answers_per_thought
        if isinstance(K, bool) or not isinstance(K, int) or K < 1 or E % K:
            raise ValueError(f"Outcomes.from_rewards: answers_per_thought must be an integer >= 1 dividing {E}, got {K!r}")
        solo_baseline = paired_solo = None
        if solo is not None:
            solo = np.array(solo, dtype=np.float64)
            if solo.ndim != 2 or solo.shape[0] != G or solo.shape[1] == 0:
                raise ValueError(f"Outcomes.from_rewards: solo must be ({G}, m) with m >= 1, got shape {solo.shape}")
            solo_baseline = np.repeat(solo.mean(axis=1), E)
            paired_solo = solo[:, np.arange(E) % solo.shape[1]].reshape(-1)
        if no_solver is not None:
            no_solver = np.array(no_solver, dtype=np.float64)
            if no_solver.shape != (G, E):
                raise ValueError(f"Outcomes.from_rewards: no_solver must be ({G}, {E}), got shape {no_solver.shape}")
        if ratings is not None and (len(ratings) != G or any(len(r) != E for r in ratings)):
            raise ValueError(f"Outcomes.from_rewards: ratings needs one mapping per episode, {G} groups of {E}")

        chain = ROLES if roles is None else _check_roles(roles)
        values: dict[frozenset, np.ndarray] = {}
        raw: dict[frozenset, np.ndarray] = {}
        for c, v in (coalitions or {}).items():
            c = frozenset(c)
            if not c or not c < frozenset(chain):
                raise ValueError(f"Outcomes.from_rewards: coalition {sorted(c)} is not a proper non-empty subset of "
                                 f"the roles {list(chain)}")
            v = np.array(v, dtype=np.float64)
            if chain[0] in c:
                if v.shape != (G, E):
                    raise ValueError(f"Outcomes.from_rewards: coalition {sorted(c)} holds the first role, so it needs "
                                     f"({G}, {E}) values (one per episode), got shape {v.shape}")
                values[c] = v.reshape(-1)
            else:
                if v.ndim != 2 or v.shape[0] != G or v.shape[1] == 0:
                    raise ValueError(f"Outcomes.from_rewards: coalition {sorted(c)} (without the first role) needs "
                                     f"({G}, m) samples with m >= 1, got shape {v.shape}")
                values[c] = np.repeat(v.mean(axis=1), E)
            raw[c] = v

        def build() -> list[EpisodeGroup]:
            rows, solos = joint.tolist(), None if solo is None else solo.tolist()
            alone = None if no_solver is None else no_solver.tolist()
            return [EpisodeGroup.from_rewards(rows[g], solo=None if solos is None else solos[g],
                                              no_solver=None if alone is None else alone[g],
                                              ratings=None if ratings is None else ratings[g], answers_per_thought=K,
                                              roles=chain, coalitions={c: v[g].tolist() for c, v in raw.items()} or None)
                    for g in range(G)]

        thought = np.repeat(np.arange(G * E // K, dtype=np.int64), K)
        arrays = (joint.reshape(-1), np.full(G, E, dtype=np.int64), thought, solo_baseline, paired_solo,
                  None if no_solver is None else no_solver.reshape(-1))
        if chain == ROLES and not values:
            return cls._unchecked(*arrays, groups=build)
        if chain == ROLES:
            values = {**_legacy_coalitions(chain, solo_baseline, arrays[5]), **values}
        return cls._unchecked(*arrays, groups=build, roles=chain, coalitions=values)

    @property
    def size(self) -> int:
        """The number of joint episodes."""
        return int(self.joint.size)

    @property
    def groups(self) -> Sequence[Any]:
        """The groups themselves (built on first use for :meth:`from_rewards`)."""
        if self._groups is None:
            if self._build is None:
                raise TypeError("this Outcomes was made from arrays alone: it has no groups to iterate; "
                                "pass groups= (the groups, or a function that builds them)")
            self._groups = self._build()
        return self._groups

    def __len__(self) -> int:
        return int(self.sizes.size)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.groups)

    def __getitem__(self, key: int | slice) -> Any:
        if not isinstance(key, slice):
            return self.groups[key]
        start, stop, step = key.indices(len(self))
        if step != 1:
            raise ValueError("Outcomes slices with step 1 only")
        stop = max(start, stop)
        lo, hi = int(self._bounds[start]), int(self._bounds[stop])
        thought = self.thought[lo:hi]
        thought = thought - thought[0] if thought.size else thought.copy()
        cut = [None if a is None else a[lo:hi] for a in (self.solo_baseline, self.paired_solo, self.no_solver)]
        groups = self._groups[start:stop] if self._groups is not None else \
            (lambda: self.groups[start:stop]) if self._build is not None else None
        nodes = tuple(ids[lo:hi] - ids[lo] if hi > lo else ids[lo:hi].copy() for ids in self.nodes)
        return Outcomes._unchecked(self.joint[lo:hi], self.sizes[start:stop], thought, *cut, groups=groups,
                                   group=self.group[lo:hi] - start, roles=self.roles,
                                   coalitions={c: v[lo:hi] for c, v in self.coalitions.items()}, nodes=nodes)

    def __repr__(self) -> str:
        have = [k for k in ("solo_baseline", "no_solver") if getattr(self, k) is not None]
        if self.roles != ROLES:
            have = [f"roles {'>'.join(self.roles)}", f"{len(self.coalitions)} coalition value(s)"]
        return f"Outcomes({len(self)} groups, {self.size} joint episodes{', with ' + ', '.join(have) if have else ''})"


def _check_roles(roles: Sequence[str]) -> tuple[str, ...]:
    chain = tuple(roles)
    if len(chain) < 2 or len(set(chain)) != len(chain) or not all(isinstance(r, str) and r for r in chain):
        raise ValueError(f"roles must be at least two distinct non-empty names in chain order, got {list(roles)!r}")
    return chain


def _legacy_coalitions(roles: tuple[str, ...], solo_baseline: np.ndarray | None,
                       no_solver: np.ndarray | None) -> dict[frozenset, np.ndarray]:
    out = {}
    if solo_baseline is not None:
        out[frozenset(roles[1:])] = solo_baseline
    if no_solver is not None:
        out[frozenset(roles[:-1])] = no_solver
    return out


def _read_coalitions(groups: Sequence[Any], roles: tuple[str, ...]) -> dict[frozenset, np.ndarray]:
    """Each coalition's v̂(C) per joint episode: the episode's own replay when C holds the first
    role, the mean of the group's samples otherwise; a coalition only where every episode (or
    group) has it. Two-role groups also give their solo and Solver-removed values."""
    first = roles[0]
    out: dict[frozenset, np.ndarray] = {}
    own = [getattr(e, "coalition_rewards", None) or {} for g in groups for e in g.episodes]
    if own:
        for c in set.intersection(*(set(d) for d in own)):
            if first in c:
                out[frozenset(c)] = np.array([float(d[c]) for d in own], dtype=np.float64)
    shared = [getattr(g, "coalition_rewards", None) or {} for g in groups]
    if shared:
        for c in set.intersection(*(set(d) for d in shared)):
            if first not in c and all(len(d[c]) for d in shared):
                out[frozenset(c)] = np.array([float(np.mean(d[c])) for g, d in zip(groups, shared) for _ in g.episodes],
                                             dtype=np.float64)
    if len(roles) == 2:  # the named two-role counterfactuals, when collected that way
        if all(getattr(g, "solo_rewards", None) for g in groups):
            out.setdefault(frozenset(roles[1:]), np.array([float(np.mean(g.solo_rewards)) for g in groups
                                                           for _ in g.episodes], dtype=np.float64))
        alone = [getattr(e, "no_solver_reward", None) for g in groups for e in g.episodes]
        if alone and all(v is not None for v in alone):
            out.setdefault(frozenset(roles[:-1]), np.array(alone, dtype=np.float64))
    return out


def _read_nodes(groups: Sequence[Any], roles: tuple[str, ...], thought: np.ndarray) -> tuple[np.ndarray, ...]:
    """Batch-wide node numbers per chain position 0 … N − 2 (episodes continuing the same text of
    that role share it), from ``Episode.path``; without paths, position 0 is the thought and every
    later node is the episode's own."""
    n = int(thought.size)
    nodes = [thought]
    for p in range(1, len(roles) - 1):
        ids = np.empty(n, dtype=np.int64)
        seen: dict[Any, int] = {}
        k = 0
        for gi, g in enumerate(groups):
            for e in g.episodes:
                path = getattr(e, "path", None)
                key = (gi, tuple(path[:p + 1])) if path is not None and len(path) > p else ("own", k)
                ids[k] = seen.setdefault(key, len(seen))
                k += 1
        nodes.append(ids)
    return tuple(nodes)


def _collected(values: np.ndarray | None, need: str, helper: str) -> np.ndarray:
    if values is None:
        raise MissingCounterfactualError(f"{helper}: the groups were collected without {_describe([need])}; "
                                         f"collect with needs={{{need!r}}}")
    return values.copy()


def joint_rewards(groups: Sequence[Any]) -> np.ndarray:
    """R_joint of every joint episode, in the order of the groups and their episodes."""
    return Outcomes.of(groups).joint.copy()


def group_index(groups: Sequence[Any]) -> np.ndarray:
    """The group number of every joint episode (the ``index`` the estimators take)."""
    return Outcomes.of(groups).group.copy()


def solo_baselines(groups: Sequence[Any]) -> np.ndarray:
    """b(x) = mean of the problem's m solo rewards R_¬T, repeated for each joint episode."""
    return _collected(Outcomes.of(groups).solo_baseline, SOLO, "solo_baselines")


def paired_solo_rewards(groups: Sequence[Any]) -> np.ndarray:
    """Joint episode k paired with solo sample k of its problem (k mod m when m < n)."""
    return _collected(Outcomes.of(groups).paired_solo, SOLO, "paired_solo_rewards")


def no_solver_rewards(groups: Sequence[Any]) -> np.ndarray:
    """R_¬S of every joint episode (its thought verified on its own)."""
    return _collected(Outcomes.of(groups).no_solver, NO_SOLVER, "no_solver_rewards")


# --------------------------------------------------------------------------- tree rollouts (docs/method.md#tree-credit)


def thought_ids(groups: Sequence[Any]) -> np.ndarray:
    """A batch-wide thought number for every joint episode: siblings (the K answers to one
    thought) share it; different thoughts, also across groups, never do. With one answer per
    thought it is simply the episode's position."""
    return Outcomes.of(groups).thought.copy()


def _mean_by(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    counts = np.bincount(ids).astype(np.float64)
    sums = np.bincount(ids, weights=values)
    return sums / np.maximum(counts, 1)


def thought_values(groups: Sequence[Any]) -> np.ndarray:
    """Q̂(x, t_j) = mean_k R(x, t_j, a_jk), the value of each joint episode's thought, repeated
    for each of its K answers (= R_joint when K = 1)."""
    outcomes = Outcomes.of(groups)
    ids, R = outcomes.thought, outcomes.joint
    if ids.size == 0:
        return R.copy()
    return _mean_by(R, ids)[ids]


# ------------------------------------------------ chains of N roles (docs/method.md#teams-of-more-than-two-roles)


def chain_roles(groups: Sequence[Any]) -> tuple[str, ...]:
    """The chain of roles the groups were collected with, in order."""
    return Outcomes.of(groups).roles


def coalition_values(groups: Sequence[Any]) -> dict[frozenset, np.ndarray]:
    """v̂(C) per joint episode for every collected coalition C (a frozenset of the roles present):
    the episode's own replay on its prefix when C holds the first role, else the mean of the
    problem's samples. The empty coalition (v = R_∅ = −1) and the whole team (v = R_joint) are not
    in it."""
    return {c: v.copy() for c, v in Outcomes.of(groups).coalitions.items()}


def removal_values(groups: Sequence[Any], role: str) -> np.ndarray:
    """v̂(N∖{role}) per joint episode: the team without ``role``, replayed on the episode's prefix
    (the roles before it keep their texts); for the first role the mean of the problem's samples."""
    outcomes = Outcomes.of(groups)
    if role not in outcomes.roles:
        raise ValueError(f"removal_values: {role!r} is not one of the roles {list(outcomes.roles)}")
    c = frozenset(outcomes.roles) - {role}
    if c not in outcomes.coalitions:
        raise MissingCounterfactualError(f"removal_values: the groups were collected without the team minus {role!r}; "
                                         f"collect with needs={{{DROP!r}}}")
    return outcomes.coalitions[c].copy()


def node_ids(groups: Sequence[Any], role: str) -> np.ndarray:
    """Batch-wide numbers of the texts of ``role`` each joint episode continues (tree collection:
    the episodes below one text of the role share it; different texts never do). The last role's
    texts are the episodes themselves."""
    outcomes = Outcomes.of(groups)
    p = _position(outcomes, role)
    if p == len(outcomes.roles) - 1:
        return np.arange(outcomes.size, dtype=np.int64)
    return outcomes.nodes[p].copy()


def node_values(groups: Sequence[Any], role: str) -> np.ndarray:
    """The value of the text of ``role`` each joint episode continues: the mean R_joint of the
    episodes below it (its subtree), repeated for each of them (the last role: R_joint itself;
    the first role of two: the thought value Q̂(x, t))."""
    outcomes = Outcomes.of(groups)
    ids = node_ids(outcomes, role)
    return outcomes.joint.copy() if ids.size == 0 else _mean_by(outcomes.joint, ids)[ids]


def _position(outcomes: Outcomes, role: str) -> int:
    try:
        return outcomes.roles.index(role)
    except ValueError:
        raise ValueError(f"{role!r} is not one of the roles {list(outcomes.roles)}") from None


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
    themselves, so K = 1 gives exactly the flat batch.

    Chains of N roles: a role before the last trains once on each of its texts (reward: the mean
    over the episodes below it), the last role on each episode; ``"thought"`` groups a role's
    units by the text of the role before it (its parent; the first role is always grouped by
    problem). With two roles this is the rule above."""
    if grouping not in GROUPINGS:
        raise ValueError(f"grouping must be one of {GROUPINGS}, got {grouping!r}")
    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    outcomes = Outcomes.of(groups)
    gidx = outcomes.group.copy()
    if r.shape != gidx.shape:
        raise ValueError(f"role_units: {role} needs one reward per joint episode ({gidx.size}), got shape {np.shape(rewards)}")
    p = _position(outcomes, role)
    parent = gidx if p == 0 or grouping == "problem" else outcomes.nodes[p - 1].copy()
    if p == len(outcomes.roles) - 1:
        return Units(r.copy(), parent, np.arange(r.size, dtype=np.int64))
    ids = outcomes.nodes[p]
    first = np.unique(ids, return_index=True)[1] if ids.size else np.zeros(0, np.int64)
    if first.size == ids.size:  # one episode per text: the flat batch, bit for bit
        return Units(r.copy(), parent, np.arange(ids.size, dtype=np.int64))
    return Units(_mean_by(r, ids), parent[first], first.astype(np.int64))
