"""``sepo`` — verifier-anchored self/peer evaluation (docs/method.md#sepo).

After verification each role rates the finished transcript (problem, thought, answer), told
the verifier's outcome: a pair (Thinker share, Solver share) from the fixed set
{(0.9, 0.1), (0.8, 0.2), …, (0.1, 0.9)}, as JSON ``{"outcome", "pair", "brief_reason"}``.
For a correct outcome the pair allocates credit, for a wrong one blame. With self weight η:

    s_T = η·(Thinker's own rating of T) + (1 − η)·(Solver's rating of T)
    s_S = η·(Solver's own rating of S) + (1 − η)·(Thinker's rating of S)
    w_i = s_i / (s_T + s_S)
    bonus_i = w_i − mean of w_i over the prompt group   (center="group")
            = w_i − 0.5                                 (center="none")
    r_i = R + λ_credit·bonus_i   if R = +1
    r_i = R − λ_blame·bonus_i    if R = −1

With λ ≤ 1 the shaping stays below 0.8 in size, so the verifier always dominates: a correct
episode always out-scores a wrong one.

Ratings are parsed by :func:`~algorithms.credit.rating.parse_rating` (its own module): a
rating that is missing, cannot be parsed, has a pair outside the set or states an outcome that
disagrees with the verifier counts as the neutral pair (0.5, 0.5) and as invalid; nothing raises.
``method.metrics["sepo/valid_rate"]`` reports the share of valid ratings of the last call.

``SEPO.rating_stop`` is :func:`~algorithms.credit.rating.rating_complete`: a collection may stop
generating a rating once its parse is final, which changes no parsed pair.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from thinksolve_env.prompts import RATER_ROLES, rating_prompts

from ..rollout import EpisodeGroup
from .base import RATINGS, ROLES, SOLVER, THINKER, CreditMethod, chain_roles
from .rating import MAX_RATING_CHARS, NEUTRAL, RATING_PAIRS, Rating, parse_rating, rating_complete
from .registry import register

__all__ = ["SEPO", "Rating", "parse_rating", "rating_prompts", "NEUTRAL", "RATING_PAIRS", "RATER_ROLES", "MAX_RATING_CHARS"]


@register("sepo")
class SEPO(CreditMethod):
    """Self/peer evaluation shaping; formulas in the module docstring.

    Args:
        eta: η, the weight of a role's rating of itself (0.3), in [0, 1].
        lam_credit: λ_credit, shaping on correct episodes (0.2), in [0, 1].
        lam_blame: λ_blame, shaping on wrong episodes (0.2), in [0, 1].
        center: ``"group"`` (subtract the group mean of w_i) or ``"none"`` (subtract 0.5).

    ``Episode.ratings`` maps each rater (``thinker_0``, ``solver_0``) to its rating text (or a
    pair); a missing rater counts as an invalid, neutral rating.
    """

    name = "sepo"
    requires = frozenset({RATINGS})
    per_group = True  # the group-mean centring is within each group
    #: a rating may stop as soon as its parse is final (its JSON object closed with outcome and pair)
    rating_stop = staticmethod(rating_complete)

    def __init__(self, eta: float = 0.3, lam_credit: float = 0.2, lam_blame: float = 0.2, center: str = "group") -> None:
        super().__init__()
        for pname, v in (("eta", eta), ("lam_credit", lam_credit), ("lam_blame", lam_blame)):
            if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(f"sepo: {pname} must be a number in [0, 1], got {v!r}")
        if center not in ("group", "none"):
            raise ValueError(f"sepo: center must be 'group' or 'none', got {center!r}")
        self.eta, self.lam_credit, self.lam_blame, self.center = float(eta), float(lam_credit), float(lam_blame), center

    def needs_for(self, roles: Sequence[str]) -> frozenset[str]:
        """``ratings``; defined for the two roles only (a rating is a Thinker/Solver share pair)."""
        if tuple(roles) != ROLES:
            raise ValueError(f"sepo rates a Thinker and a Solver (a pair of shares); it is not defined for the chain "
                             f"{list(roles)}: use shared, ccpo, difference, shapley or tree")
        return self.requires

    def compute(self, groups: Sequence[EpisodeGroup]) -> dict[str, np.ndarray]:
        self.needs_for(chain_roles(groups))
        eta = self.eta
        reasons: Counter = Counter()
        valid_by = Counter()
        out = {THINKER: [], SOLVER: []}
        for g in groups:
            R = np.array([float(e.reward) for e in g.episodes])
            w = np.zeros((len(g.episodes), 2))
            for j, e in enumerate(g.episodes):
                correct = e.reward > 0
                ratings = e.ratings or {}
                rt = parse_rating(ratings.get(THINKER), correct)
                rs = parse_rating(ratings.get(SOLVER), correct)
                for rater, r in ((THINKER, rt), (SOLVER, rs)):
                    reasons[r.reason] += 1
                    valid_by[rater] += r.valid
                s_T = eta * rt.pair[0] + (1 - eta) * rs.pair[0]
                s_S = eta * rs.pair[1] + (1 - eta) * rt.pair[1]
                w[j] = (s_T / (s_T + s_S), s_S / (s_T + s_S))
            bonus = w - (w.mean(axis=0, keepdims=True) if self.center == "group" else 0.5)
            shaping = np.where(R[:, None] > 0, self.lam_credit * bonus, -self.lam_blame * bonus)
            out[THINKER].append(R + shaping[:, 0])
            out[SOLVER].append(R + shaping[:, 1])
        n = sum(reasons.values())
        n_ep = n // 2
        self.metrics = {
            "sepo/valid_rate": reasons["ok"] / n,
            "sepo/valid_rate_thinker": valid_by[THINKER] / n_ep,
            "sepo/valid_rate_solver": valid_by[SOLVER] / n_ep,
            "sepo/ratings": float(n),
            # every reason in every step (0 when it did not occur), so that metrics rows keep their keys
            **{f"sepo/invalid_{k}": float(reasons[k])
               for k in dict.fromkeys(["missing", "unparsable", "pair-not-in-set", "outcome-mismatch", *sorted(reasons)])
               if k != "ok"},
        }
        return {a: np.concatenate(v) for a, v in out.items()}
