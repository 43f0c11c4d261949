"""SEPO's rating parser: model text in, a (Thinker share, Solver share) pair out, never raising.

A rating is the rater's reply to the rating prompt (:func:`thinksolve_env.prompts.rating_prompts`):
JSON ``{"outcome", "pair", "brief_reason"}`` with the pair from the fixed set
{(0.9, 0.1), (0.8, 0.2), …, (0.1, 0.9)}. :func:`parse_rating` takes the first balanced
``{...}`` that is a JSON object; then tolerant fallbacks (``pair: [a, b]``, any bracketed pair,
percentages → /100, a pair of percent-like numbers summing to 100 → /100). A rating that is
missing, cannot be parsed, has a pair outside the set (NaN, huge numbers, …) or states an
outcome that disagrees with the verifier is the neutral pair (0.5, 0.5), marked invalid.

Model text is untrusted: nothing is evaluated, every regular expression is bounded, and text
beyond :data:`MAX_RATING_CHARS` is ignored.

:func:`rating_complete` tells a generator when it may stop writing a rating: it is true only for
a text whose parse no continuation can change (its first JSON object is closed and states both
the outcome and the pair), so a rating cut there parses exactly as the full one would.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from thinksolve_env import prompts as P

__all__ = ["Rating", "parse_rating", "rating_complete", "NEUTRAL", "RATING_PAIRS", "MAX_RATING_CHARS"]

RATING_PAIRS = P.RATING_PAIRS
NEUTRAL = (0.5, 0.5)
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


def rating_complete(text: str) -> bool:
    """True when no text appended to ``text`` can change :func:`parse_rating` of it, for either
    verifier outcome: a stop rule for rating generation (``trigger``: it can only turn true on a
    token that writes a ``}``).

    Why appending cannot matter: :func:`parse_rating` reads the first ``{...}`` that is a JSON
    object, found by a left-to-right scan; once such an object is closed inside ``text`` every
    earlier candidate was already closed (and rejected) inside it too, so a longer text yields the
    same object. When that object has an ``outcome`` key, the outcome comes from the object alone;
    an unrecognisable outcome is invalid whatever follows, and a recognisable one with a ``pair``
    gives a pair read from the object alone. Any other case may still be decided by text that
    follows (the tolerant fallbacks search the whole text), so it is not complete. Text at
    :data:`MAX_RATING_CHARS` or beyond is complete (the rest is ignored)."""
    if not isinstance(text, str):
        return False
    if len(text) >= MAX_RATING_CHARS:
        return True
    try:
        obj = _first_json_object(text)
    except Exception:  # pragma: no cover - belt and braces: untrusted text
        return False
    if obj is None or "outcome" not in obj:
        return False
    return _outcome(obj["outcome"]) is None or obj.get("pair") is not None


#: the characters one of which a token must write before :func:`rating_complete` can turn true
rating_complete.trigger = "}"  # type: ignore[attr-defined]
