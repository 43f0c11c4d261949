"""The counterfactuals a collection can add to the joint episodes (docs/method.md#counterfactual-removal).

A credit method names what it needs in ``.requires``; :func:`~algorithms.rollout.collect_groups`
takes the same names as ``needs``:

=============  ====================================================================  ==========================
name           what is collected                                                      cost
=============  ====================================================================  ==========================
``solo``       Thinker removed: the Solver answers the problem alone, m samples per   m Solver generations and
               problem; ``EpisodeGroup.solo_rewards`` (R_¬T), baseline b(x) = mean     m verifier calls / problem
``no_solver``  Solver removed: the Thinker's own text is verified;                    1 verifier call / episode,
               ``Episode.no_solver_reward`` (R_¬S)                                     no generation
``ratings``    SEPO: each role rates the finished transcript; ``Episode.ratings``     1 rating per role / episode
``drop``       chains of N roles: every role removed in turn, v(N∖{k}) (below)        see below
``coalitions`` chains of N roles: every proper non-empty coalition C, v(C) (below)    see below
=============  ====================================================================  ==========================

Both removed needs nothing: R_∅ = −1 (:data:`R_EMPTY`).

Chains of N roles (docs/method.md#teams-of-more-than-two-roles). A coalition C is a frozenset of
the roles present; v(C) the team's reward with exactly C present. A coalition holding the first
role is replayed on each episode's own prefix: the texts of the roles before the first position
missing from C are kept, the present roles after it are resampled (none: the last kept text is
verified) — ``Episode.coalition_rewards[C]``, one replay per distinct prefix. A coalition without
the first role does not depend on the episode: m samples per problem,
``EpisodeGroup.coalition_rewards[C]``. :func:`chain_coalitions` says which coalitions each name
means: ``solo`` is N∖{first} (for two roles the Thinker-removed samples), ``no_solver`` N∖{last}
(the Solver-removed replay), ``drop`` every N∖{k}, ``coalitions`` all 2^N − 2 of them (exact
Shapley). Budgets count each coalition's generations per role and its verifier calls.
"""

from __future__ import annotations

import itertools
from typing import Any

__all__ = ["SOLO", "NO_SOLVER", "RATINGS", "DROP", "COALITIONS", "COUNTERFACTUALS", "R_EMPTY", "normalize_needs",
           "chain_coalitions", "coalition_label"]

SOLO = "solo"
NO_SOLVER = "no_solver"
RATINGS = "ratings"
DROP = "drop"
COALITIONS = "coalitions"

#: Every counterfactual name a method may require, with what it means.
COUNTERFACTUALS: dict[str, str] = {
    SOLO: "the Thinker-removed replay (the Solver answers alone; R_¬T, m samples per problem)",
    NO_SOLVER: "the Solver-removed replay (the Thinker's own text is verified; R_¬S, one per episode)",
    RATINGS: "the SEPO ratings (each role rates the finished transcript)",
    DROP: "every role removed in turn, on each episode's prefix (v(N minus k) for every role k)",
    COALITIONS: "every proper non-empty coalition of the roles replayed (v(C) for exact Shapley)",
}

#: Reward when both agents are removed: nobody answers (docs/method.md#counterfactual-removal).
R_EMPTY = -1.0


def normalize_needs(needs: Any) -> frozenset[str]:
    """``needs`` as a frozenset of counterfactual names.

    Accepts a collection of names, a single name, ``None`` (nothing), or any object with a
    ``.requires`` attribute (a credit method). Unknown names are an error that lists the known
    ones."""
    if needs is None:
        return frozenset()
    if hasattr(needs, "requires"):
        needs = needs.requires
    if isinstance(needs, str):
        needs = [needs]
    try:
        names = frozenset(needs)
    except TypeError:
        raise TypeError("needs must be a collection of counterfactual names or a credit method, "
                        f"got {type(needs).__name__}") from None
    unknown = sorted(str(n) for n in names - set(COUNTERFACTUALS))
    if unknown:
        known = ", ".join(f"{k!r} ({v})" for k, v in COUNTERFACTUALS.items())
        raise ValueError(f"unknown counterfactual(s) {unknown}; known: {known}")
    return names


def chain_coalitions(roles: tuple[str, ...] | list[str], needs: Any) -> list[frozenset[str]]:
    """The coalitions (frozensets of present roles) a collection of ``needs`` replays for the
    chain ``roles``, in a fixed order (by size, then chain order): ``solo`` → N∖{first},
    ``no_solver`` → N∖{last}, ``drop`` → every N∖{k}, ``coalitions`` → every proper non-empty
    coalition. ``ratings`` adds none."""
    roles = tuple(roles)
    need = normalize_needs(needs)
    every = frozenset(roles)
    want: set[frozenset[str]] = set()
    if SOLO in need:
        want.add(every - {roles[0]})
    if NO_SOLVER in need:
        want.add(every - {roles[-1]})
    if DROP in need:
        want.update(every - {r} for r in roles)
    if COALITIONS in need:
        for size in range(1, len(roles)):
            want.update(frozenset(c) for c in itertools.combinations(roles, size))
    order = {r: i for i, r in enumerate(roles)}
    return sorted(want, key=lambda c: (-len(c), sorted(order[r] for r in c)))


def coalition_label(roles: tuple[str, ...] | list[str], coalition: frozenset[str]) -> str:
    """A coalition's name in budgets and metrics: ``without:`` and the removed roles in chain order
    joined by ``+`` (``without:relay_0``), or ``only:`` and the present ones when that is shorter."""
    removed = [r for r in roles if r not in coalition]
    present = [r for r in roles if r in coalition]
    if not removed:
        return "joint"
    if len(present) < len(removed):
        return "only:" + "+".join(present)
    return "without:" + "+".join(removed)
