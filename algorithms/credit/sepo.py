"""``sepo`` — verifier-anchored self/peer evaluation (METHOD.md §4).

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

Parsing (:func:`parse_rating`): the first balanced ``{...}`` that is a JSON object; then
tolerant fallbacks (``pair: [a, b]``, any bracketed pair, percentages → /100, a pair of
percent-like numbers summing to 100 → /100). A rating that is missing, cannot be parsed, has a
pair outside the set (NaN, huge numbers, …) or states an outcome that disagrees with the
verifier counts as the neutral pair (0.5, 0.5) and as invalid; nothing raises.
``method.metrics["sepo/valid_rate"]`` reports the share of valid ratings of the last call.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from thinksolve_env import prompts as P

from . import register
from .base import RATINGS, SOLVER, THINKER, CreditMethod

__all__ = ["SEPO", "Rating", "parse_rating", "rating_prompts", "NEUTRAL", "RATING_PAIRS", "RATER_ROLES"]

RATING_PAIRS = P.RATING_PAIRS
NEUTRAL = (0.5, 0.5)
#: The role word each rater is addressed with in its rating prompt (defined with the prompts).
RATER_ROLES = P.RATER_ROLES
#: Each rater's rating prompt for one transcript; the prompts live in thinksolve_env.prompts.
rating_prompts = P.rating_prompts
#: Rating text beyond this many characters is ignored.
MAX_RATING_CHARS = 20_000

_CORRECT_WORDS = {"correct", "right", "true", "success", "succeeded", "solved"}
_WRONG_WORDS = {"wrong", "incorrect", "false", "failure", "failed", "unsolved"}
_NUM = r"[-+]?(?:\d{1,400}(?:\.\d{0,400})?|\.\d{1,400})(?:[eE][-+]?\d{1,6})?\s*%?"
_PAIR_KEY_RE = re.compile(r"pair[\"']?\s*[:=]\s*[\[(]\s*(" + _NUM + r")\s*[,;/]\s*(" + _NUM + r")\s*[\])]", re.I)
_BRACKET_RE = re.compile(r"[\[(]\s*(" + _NUM + r")\s*[,;/]\s*(" + _NUM + r")\s*[\])]")
_OUTCOME_RE = re.compile(r"outcome[\"']?\s*[:=]\s*[\"']?\s*([A-Za-z]+)", re.I)


@dataclass(frozen=True)
class Rating:
    """A parsed rating: the pair used, whether it was valid, and why not.

    ``reason`` is ``"ok"``, ``"missing"``, ``"unparsable"``, ``"pair-not-in-set"`` or
    ``"outcome-mismatch"``; an invalid rating carries the neutral pair (0.5, 0.5)."""

    pair: tuple[float, float]
    valid: bool
    reason: str = "ok"


def _invalid(reason: str) -> Rating:
    return Rating(NEUTRAL, False, reason)


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        try:
            return float(v)
        except OverflowError:
            return math.inf
    if isinstance(v, str):
        s = v.strip()
        pct = s.endswith("%")
        s = s.rstrip("%").strip()
        try:
            x = float(s)
        except (ValueError, OverflowError):
            return None
        return x / 100 if pct else x
    return None


def _canonical_pair(values: Any) -> Rating:
    """Match two numbers against :data:`RATING_PAIRS`."""
    if isinstance(values, dict):
        t = [v for k, v in values.items() if "think" in str(k).lower()]
        s = [v for k, v in values.items() if "solv" in str(k).lower()]
        values = [t[0], s[0]] if len(t) == 1 and len(s) == 1 else None
    if not isinstance(values, (list, tuple)) or len(values) != 2:
        return _invalid("unparsable")
    a, b = (_number(v) for v in values)
    if a is None or b is None:
        return _invalid("unparsable")
    if not (math.isfinite(a) and math.isfinite(b)):
        return _invalid("pair-not-in-set")
    if a > 1 and b > 1 and abs(a + b - 100) < 1e-6:  # (70, 30): percent-like
        a, b = a / 100, b / 100
    for pair in RATING_PAIRS:
        if abs(a - pair[0]) < 1e-6 and abs(b - pair[1]) < 1e-6:
            return Rating(pair, True)
    return _invalid("pair-not-in-set")


def _outcome(value: Any) -> bool | None:
    """True/False for a recognisable stated outcome, None otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        w = value.strip().lower()
        if w in _CORRECT_WORDS:
            return True
        if w in _WRONG_WORDS:
            return False
    return None


def _first_json_object(text: str, tries: int = 5) -> dict | None:
    """The first balanced ``{...}`` (string-aware scan) that parses as a JSON object."""
    start = text.find("{")
    while start != -1 and tries > 0:
        tries -= 1
        depth, in_str, esc = 0, False, False
        for i in range(start, len(text)):
            c = text[i]
            if in_str:
                if esc:
                    esc = False
                elif c == "\\":
                    esc = True
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    try:
                        obj = json.loads(text[start : i + 1])
                    except Exception:  # ValueError, RecursionError, huge ints, ...
                        obj = None
                    if isinstance(obj, dict):
                        return obj
                    break
        else:
            return None  # unbalanced to the end
        start = text.find("{", start + 1)
    return None


def parse_rating(rating: Any, correct: bool) -> Rating:
    """Parse one rating (text, or an already-parsed pair) given the verifier's outcome.

    Never raises: anything unusable becomes the neutral pair with ``valid=False``."""
    try:
        return _parse(rating, bool(correct))
    except Exception:  # pragma: no cover - belt and braces: ratings are untrusted text
        return _invalid("unparsable")


def _parse(rating: Any, correct: bool) -> Rating:
    if rating is None:
        return _invalid("missing")
    if isinstance(rating, (list, tuple)):
        return _canonical_pair(rating)
    if not isinstance(rating, str):
        return _invalid("unparsable")
    text = rating[:MAX_RATING_CHARS]
    obj = _first_json_object(text)
    stated = None
    if obj is not None and "outcome" in obj:
        stated = _outcome(obj["outcome"])
        if stated is None:
            return _invalid("outcome-mismatch")
    elif (m := _OUTCOME_RE.search(text)) is not None:
        stated = _outcome(m.group(1))
    if stated is not None and stated != correct:
        return _invalid("outcome-mismatch")
    if obj is not None and obj.get("pair") is not None:
        return _canonical_pair(obj["pair"])
    for regex in (_PAIR_KEY_RE, _BRACKET_RE):
        m = regex.search(text)
        if m is not None:
            return _canonical_pair([m.group(1), m.group(2)])
    return _invalid("unparsable")


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

    def __init__(self, eta: float = 0.3, lam_credit: float = 0.2, lam_blame: float = 0.2, center: str = "group") -> None:
        super().__init__()
        for pname, v in (("eta", eta), ("lam_credit", lam_credit), ("lam_blame", lam_blame)):
            if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(f"sepo: {pname} must be a number in [0, 1], got {v!r}")
        if center not in ("group", "none"):
            raise ValueError(f"sepo: center must be 'group' or 'none', got {center!r}")
        self.eta, self.lam_credit, self.lam_blame, self.center = float(eta), float(lam_credit), float(lam_blame), center

    def compute(self, groups):
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
            **{f"sepo/invalid_{k}": float(v) for k, v in sorted(reasons.items()) if k != "ok"},
        }
        return {a: np.concatenate(v) for a, v in out.items()}
