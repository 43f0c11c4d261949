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
=============  ====================================================================  ==========================

Both removed needs nothing: R_∅ = −1 (:data:`R_EMPTY`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SOLO", "NO_SOLVER", "RATINGS", "COUNTERFACTUALS", "R_EMPTY", "normalize_needs"]

SOLO = "solo"
NO_SOLVER = "no_solver"
RATINGS = "ratings"

#: Every counterfactual name a method may require, with what it means.
COUNTERFACTUALS: dict[str, str] = {
    SOLO: "the Thinker-removed replay (the Solver answers alone; R_¬T, m samples per problem)",
    NO_SOLVER: "the Solver-removed replay (the Thinker's own text is verified; R_¬S, one per episode)",
    RATINGS: "the SEPO ratings (each role rates the finished transcript)",
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
