"""Episodes and episode groups: what a collection returns and what credit methods read.

An :class:`EpisodeGroup` holds the joint episodes of one problem, in order, and the problem-level
counterfactual (the Thinker-removed rewards); an :class:`Episode` one Thinker → Solver episode and
its per-episode counterfactuals. With tree rollouts (several Solver answers per thought) the
episodes of a group are thought-major and :func:`thought_slices` finds each thought's answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents import Completion, Messages
from thinksolve_env import ROLES, THINKER, Problem

__all__ = ["Episode", "EpisodeGroup", "Collected", "thought_slices"]


def thought_slices(episodes: Sequence[Any]) -> list[list[int]]:
    """The positions of each distinct thought's episodes, in order of first appearance: episodes
    with the same ``thought_index`` are siblings; one whose ``thought_index`` is ``None`` (or
    missing, e.g. built by hand) is a thought of its own."""
    order: dict[Any, list[int]] = {}
    for j, e in enumerate(episodes):
        t = getattr(e, "thought_index", None)
        order.setdefault(("own", j) if t is None else int(t), []).append(j)
    return list(order.values())


@dataclass
class Episode:
    """One joint episode (Thinker → Solver) and its per-episode counterfactuals.

    ``reward`` is R_joint (±1); ``completions[agent]`` the sampled :class:`Completion`;
    ``prompts[agent]`` the chat prompt it answered; ``actions[agent]`` the text the env accepted
    (after its length cut); ``thought`` what the Solver was shown (trailing box stripped, cut);
    ``verification`` the verifier's record. ``no_solver_reward`` (R_¬S) and ``ratings``
    (rater agent → rating text, or a pair) are filled when collected. ``thought_index`` is the
    thought of its group this episode answers (tree rollouts; ``j`` for the j-th episode when
    there is one answer per thought; ``None``, e.g. for an episode built by hand, means a
    thought of its own).
    """

    reward: float
    completions: dict[str, Completion] = field(default_factory=dict)
    prompts: dict[str, Messages] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=dict)
    thought: str = ""
    verification: dict = field(default_factory=dict)
    no_solver_reward: float | None = None
    no_solver_verification: dict | None = None
    ratings: dict[str, Any] | None = None
    rating_completions: dict[str, Completion] = field(default_factory=dict)
    rating_prompts: dict[str, Messages] = field(default_factory=dict)
    thought_index: int | None = None
    #: Chains of N roles: ``path[p]`` numbers this episode's node at position p (0 … N − 2) among
    #: its parent's children — the text of role p that it continues (tree collection; ``None``: a
    #: flat episode, every node its own); ``path[0]`` is ``thought_index``.
    path: tuple[int, ...] | None = None
    #: Chains of N roles: v(C) for the coalitions holding the first role, replayed on this
    #: episode's prefix (``algorithms.rollout.needs``); ``shown[role]``: what each role was shown.
    coalition_rewards: dict[frozenset, float] | None = None
    shown: dict[str, str] = field(default_factory=dict)

    @property
    def correct(self) -> bool:
        return self.reward > 0


@dataclass
class EpisodeGroup:
    """The joint episodes of one problem (in order) and the problem-level counterfactual.

    ``solo_rewards`` are the m Thinker-removed rewards R_¬T (``None`` when not collected);
    ``solo_baseline`` is their mean b(x). With tree rollouts the episodes are thought-major
    (see the module docstring): ``thoughts`` holds the distinct thoughts, ``thought_values`` their
    values Q̂(x, t_j) = mean of the thought's K rewards."""

    problem: Problem | None
    episodes: list[Episode]
    solo_rewards: list[float] | None = None
    solo_completions: list[Completion] = field(default_factory=list)
    solo_prompt: Messages | None = None
    solo_verifications: list[dict] = field(default_factory=list)
    #: The chain of roles, in order (two roles: :data:`~thinksolve_env.ROLES`).
    roles: tuple[str, ...] = ROLES
    #: Chains of N roles: the m samples of v(C) for each coalition without the first role.
    coalition_rewards: dict[frozenset, list[float]] | None = None

    @property
    def rewards(self) -> np.ndarray:
        return np.array([e.reward for e in self.episodes], dtype=np.float64)

    @property
    def solo_baseline(self) -> float | None:
        return None if not self.solo_rewards else float(np.mean(self.solo_rewards))

    def _thought_slices(self) -> list[list[int]]:
        return thought_slices(self.episodes)

    @property
    def thought_episodes(self) -> list[list[Episode]]:
        """The joint episodes of each distinct thought, in thought order."""
        return [[self.episodes[k] for k in ks] for ks in self._thought_slices()]

    @property
    def thoughts(self) -> list[Completion | None]:
        """One Thinker completion per distinct thought (``None`` for groups built from rewards)."""
        return [eps[0].completions.get(THINKER) for eps in self.thought_episodes]

    @property
    def answers_per_thought(self) -> int:
        """K, the Solver answers per thought (1 for flat collection)."""
        slices = self._thought_slices()
        return max((len(ks) for ks in slices), default=1)

    @property
    def thought_values(self) -> np.ndarray:
        """Q̂(x, t_j) for each distinct thought: the mean of its answers' rewards."""
        return np.array([np.mean([e.reward for e in eps]) for eps in self.thought_episodes], dtype=np.float64)

    @classmethod
    def from_rewards(cls, joint: Sequence[float], *, solo: Sequence[float] | None = None,
                     no_solver: Sequence[float] | None = None, ratings: Sequence[Mapping[str, Any]] | None = None,
                     problem: Problem | None = None, answers_per_thought: int = 1, roles: Sequence[str] | None = None,
                     coalitions: Mapping[frozenset, Sequence[float]] | None = None) -> EpisodeGroup:
        """A group built by hand from outcomes (tests, bandit studies, custom harnesses):
        ``joint`` R_joint per episode, ``solo`` the m values R_¬T, ``no_solver`` R_¬S per
        episode, ``ratings`` one ``{rater: text or pair}`` per episode. With
        ``answers_per_thought=K`` the joint rewards are thought-major (K per thought).

        Chains of N roles: ``roles`` the chain, ``coalitions`` {C: values}: one value per episode
        for a coalition holding the first role, else the m samples of the problem."""
        n = len(joint)
        K = answers_per_thought
        if isinstance(K, bool) or not isinstance(K, int) or K < 1:
            raise ValueError(f"answers_per_thought must be an integer >= 1, got {K!r}")
        if n % K:
            raise ValueError(f"joint holds {n} rewards, not a multiple of answers_per_thought={K}")
        for name, seq in (("no_solver", no_solver), ("ratings", ratings)):
            if seq is not None and len(seq) != n:
                raise ValueError(f"{name} needs one entry per joint episode ({n}), got {len(seq)}")
        roles = ROLES if roles is None else tuple(roles)
        per_episode, per_problem = {}, {}
        for c, values in (coalitions or {}).items():
            c = frozenset(c)
            if not c or not c < frozenset(roles):
                raise ValueError(f"coalition {sorted(c)} is not a proper non-empty subset of the roles {list(roles)}")
            values = [float(v) for v in values]
            if roles[0] in c:
                if len(values) != n:
                    raise ValueError(f"coalition {sorted(c)} holds the first role: one value per joint episode ({n}), "
                                     f"got {len(values)}")
                per_episode[c] = values
            else:
                if not values:
                    raise ValueError(f"coalition {sorted(c)}: no samples")
                per_problem[c] = values
        episodes = [
            Episode(
                reward=float(joint[j]),
                no_solver_reward=None if no_solver is None else float(no_solver[j]),
                ratings=None if ratings is None else dict(ratings[j]),
                thought_index=j // K,
                coalition_rewards={c: v[j] for c, v in per_episode.items()} if per_episode else None,
            )
            for j in range(n)
        ]
        return cls(problem=problem, episodes=episodes, solo_rewards=None if solo is None else [float(v) for v in solo],
                   roles=roles, coalition_rewards=per_problem or None)


class Collected(list):
    """``list[EpisodeGroup]`` with the collection's ``budget`` (see the module docstring)."""

    budget: dict
