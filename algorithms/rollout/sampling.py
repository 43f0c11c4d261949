"""Sampling settings of one collection: one frozen value that rollout, trainer and evaluation
pass around instead of a dozen loose keywords.

::

    s = Sampling(temperature=0.7, seed=3, thinker_max_new_tokens=64, solver_max_new_tokens=64)
    collect_groups(problems, policies, group_size=4, needs={"solo"}, sampling=s)
    s.replace(temperature=0.0)          # a changed copy (greedy)
    RolloutConfig().sampling(seed=7)    # a training step's settings (algorithms.config)

``collect_groups`` still takes the settings as keywords (``temperature=0.7, seed=3``; see
:meth:`Sampling.from_keywords`), which build a :class:`Sampling`.

Each phase of a collection draws from its own random stream: the Thinker samples with ``seed``,
the Solver (joint and solo prompts) with ``seed + 1``, the ratings of the Thinker and the Solver
with ``seed + 2`` and ``seed + 3`` (:meth:`Sampling.generate_kwargs`).
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any

__all__ = ["Sampling", "SamplingError", "SAMPLING_DEFAULTS", "PHASE_SEEDS"]

#: Seed offset of each generating phase (``seed + offset``; every phase its own random stream).
PHASE_SEEDS = {"thinker": 0, "solver": 1, "rating_thinker": 2, "rating_solver": 3}


class SamplingError(ValueError):
    """An invalid sampling setting: ``field``, ``value`` and ``allowed`` say which and why."""

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field, self.value, self.allowed = field, value, allowed
        super().__init__(f"{field}={value!r} is invalid: allowed {allowed}")


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


@dataclass(frozen=True)
class Sampling:
    """How a collection samples (every field checked when the value is made)."""

    temperature: float = 1.0
    """Sampling temperature of the Thinker's and the Solver's generations (0 = greedy)."""
    top_p: float = 1.0
    """Nucleus sampling threshold, in (0, 1]."""
    seed: int | None = None
    """Seed of the Thinker's phase; the other phases use ``seed + 1``, ... (:data:`PHASE_SEEDS`);
    ``None``: unseeded."""
    thinker_max_new_tokens: int = 4096
    """Thinker generation budget (tokens)."""
    solver_max_new_tokens: int = 6144
    """Solver generation budget (tokens), joint and solo answers."""
    rating_max_new_tokens: int = 512
    """Budget of each SEPO rating (tokens)."""
    rating_temperature: float | None = None
    """Temperature of the ratings; ``None`` = ``temperature`` (see :attr:`resolved_rating_temperature`)."""
    role_max_new_tokens: tuple[tuple[str, int], ...] = ()
    """Chains of N roles: ``(role, tokens)`` budgets by role name (a mapping is accepted and kept
    as sorted pairs); a role not named uses ``thinker_max_new_tokens`` before the last position
    and ``solver_max_new_tokens`` at it (:meth:`chain_kwargs`)."""

    def __post_init__(self) -> None:
        if not _is_number(self.temperature) or self.temperature < 0:
            raise SamplingError("temperature", self.temperature, ">= 0 (0 = greedy)")
        if not _is_number(self.top_p) or not 0 < self.top_p <= 1:
            raise SamplingError("top_p", self.top_p, "(0, 1]")
        if self.seed is not None and not _is_int(self.seed):
            raise SamplingError("seed", self.seed, "an integer or None")
        for name in ("thinker_max_new_tokens", "solver_max_new_tokens", "rating_max_new_tokens"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise SamplingError(name, v, "an integer >= 1")
        rt = self.rating_temperature
        if rt is not None and (not _is_number(rt) or rt < 0):
            raise SamplingError("rating_temperature", rt, ">= 0 (0 = greedy) or None (= temperature)")
        budgets = self.role_max_new_tokens
        pairs = sorted(budgets.items()) if isinstance(budgets, dict) else budgets
        try:
            pairs = tuple((r, t) for r, t in pairs)
        except (TypeError, ValueError):
            raise SamplingError("role_max_new_tokens", budgets, "a mapping role -> tokens") from None
        for r, t in pairs:
            if not isinstance(r, str) or not _is_int(t) or t < 1:
                raise SamplingError("role_max_new_tokens", budgets, "a mapping role name -> an integer >= 1")
        object.__setattr__(self, "role_max_new_tokens", pairs)

    @classmethod
    def from_keywords(cls, **keywords: Any) -> Sampling:
        """The settings ``collect_groups``' sampling keywords name: the fields, plus
        ``max_new_tokens`` (the budget of both roles unless ``thinker_max_new_tokens`` /
        ``solver_max_new_tokens`` is given). Unknown keywords are a ``TypeError``."""
        unknown = sorted(set(keywords) - set(SAMPLING_DEFAULTS))
        if unknown:
            raise TypeError(f"unknown sampling keyword(s) {unknown}; accepted: {', '.join(SAMPLING_DEFAULTS)}")
        both = keywords.pop("max_new_tokens", None)
        if both is not None:
            for role in ("thinker", "solver"):
                keywords.setdefault(f"{role}_max_new_tokens", both)
        return cls(**keywords)

    def replace(self, **changes: Any) -> Sampling:
        """A copy with ``changes`` (checked like a new value)."""
        return dataclasses.replace(self, **changes)

    @property
    def resolved_rating_temperature(self) -> float:
        """The ratings' temperature: ``rating_temperature``, or ``temperature`` when it is ``None``."""
        return self.temperature if self.rating_temperature is None else self.rating_temperature

    def phase_seed(self, phase: str) -> int | None:
        """The seed of a generating phase (``thinker``, ``solver``, ``rating_thinker``,
        ``rating_solver``): ``seed + offset`` (:data:`PHASE_SEEDS`), ``None`` when unseeded."""
        return None if self.seed is None else self.seed + PHASE_SEEDS[phase]

    def generate_kwargs(self, phase: str) -> dict[str, Any]:
        """The ``Policy.generate`` keywords of a phase: ``max_new_tokens``, ``temperature``,
        ``top_p`` and ``seed``."""
        if phase not in PHASE_SEEDS:
            raise ValueError(f"unknown generating phase {phase!r}; phases: {', '.join(PHASE_SEEDS)}")
        rating = phase.startswith("rating_")
        budget = self.rating_max_new_tokens if rating else getattr(self, f"{phase}_max_new_tokens")
        return {"max_new_tokens": budget,
                "temperature": self.resolved_rating_temperature if rating else self.temperature,
                "top_p": self.top_p, "seed": self.phase_seed(phase)}


    def chain_kwargs(self, roles: tuple[str, ...], position: int) -> dict[str, Any]:
        """The ``Policy.generate`` keywords of the role at ``position`` of a chain of N roles (its
        joint texts and every replay it writes): its budget (:attr:`role_max_new_tokens`, else the
        Thinker's before the last position, the Solver's at it) and its own random stream — the
        first role ``seed``, the last ``seed + 1`` (as for two roles), a middle role at position p
        ``seed + 3 + p`` (clear of the rating phases)."""
        role, last = roles[position], position == len(roles) - 1
        budget = dict(self.role_max_new_tokens).get(
            role, self.solver_max_new_tokens if last else self.thinker_max_new_tokens)
        offset = 0 if position == 0 else 1 if last else 3 + position
        return {"max_new_tokens": budget, "temperature": self.temperature, "top_p": self.top_p,
                "seed": None if self.seed is None else self.seed + offset}


#: Sampling keywords ``collect_groups`` accepts, with their defaults (``max_new_tokens``: both
#: roles' budget when given; ``rating_temperature`` None: ``temperature``).
SAMPLING_DEFAULTS: dict[str, Any] = {
    "temperature": Sampling.temperature,
    "top_p": Sampling.top_p,
    "seed": Sampling.seed,
    "max_new_tokens": None,
    "thinker_max_new_tokens": Sampling.thinker_max_new_tokens,
    "solver_max_new_tokens": Sampling.solver_max_new_tokens,
    "rating_max_new_tokens": Sampling.rating_max_new_tokens,
    "rating_temperature": Sampling.rating_temperature,
    "role_max_new_tokens": Sampling.role_max_new_tokens,
}
