"""Answer verification: model text in, a ±1 reward and the reason out.

Layers, cheapest first:

1. **Extraction** (:func:`extract_answer`): chat-template tokens end a line; the last
   ``\\boxed{...}`` / ``\\fbox{...}`` (braces matched in one linear pass, so unbalanced or
   deeply nested braces cost linear time), or the last boxes joined when the reference holds
   several parts (``\\boxed{3}`` and ``\\boxed{-5}`` for ``3, -5``; never more boxes than the
   reference has parts); else a final-answer phrase ("The final answer is $2.5$. I hope it is
   correct." gives ``2.5``): the answer is what its sentence asserts, after the last "is" or
   "=" ("Final Answer: The largest $n$ is 34" gives ``34``); else, only with
   ``unboxed="last"``, what the last sentence with maths asserts. Model text is cut to its last
   ``max_text_chars`` characters first, and an answer longer than ``max_answer_chars`` is
   rejected (``reason="too-long"``) before anything parses it. A reference with several boxes
   states all of them.
2. **Normalised string comparison** (:func:`normalize_answer`), in the calling process: strips
   ``$``, ``\\left``/``\\right``, spacing commands, ``\\text{}`` wrappers, degrees, percent,
   trailing unit words, thousands separators, trailing zeros, trailing ``.``/``\\\\``/``\\``,
   ``x =``; maps full-width and other Unicode look-alikes to ASCII. Equal normal forms are
   accepted at once (``reason="match"``); most correct answers end here. With ``rel_tol``,
   plain decimals within the tolerance match here too.
3. **Symbolic equivalence**, in worker processes: math-verify (LaTeX extraction only, over
   latex2sympy2_extended and sympy) with its own signal-based timeouts off. Each answer gets a
   budget of ``timeout`` **CPU** seconds of its worker, counted by the kernel (``ITIMER_PROF``)
   from the moment the worker reads it, so machine load cannot use it up and worker start-up
   is never counted. An answer that overruns counts as wrong with ``reason="timeout"``: the
   worker stops it itself and goes on, or, stuck in C code, is ended by a second CPU timer (or
   ``RLIMIT_CPU``) and
   replaced by one that warms up (every lazily imported part of the engine) before it takes
   work. A wall-clock net (``wall_timeout``, default
   ``20 * timeout + 10`` s) covers a worker that is not scheduled at all. Verdicts are cached
   per (answer, reference) pair.

Where it differs from math-verify on purpose: an ordered tuple is not matched by a set of the
same elements, an interval reference ``(1,3)`` is not matched by the relation ``1<x<3``, radians are not
degrees, text without a box or phrase is not read by default (``unboxed="last"`` reads it),
separate boxes count as one answer only when the reference has that many parts, and
``ExprExtractionConfig`` (sympy's ``parse_expr``) is never used.

Safety: model text is never evaluated as code. Nothing here calls ``eval``, ``exec``, sympy's
string parser or ``pickle`` on it: the workers speak JSON over pipes and are started as plain
scripts (see :mod:`thinksolve_env._verify_worker` for the engine-side argument). Workers run
under an address-space limit and end themselves if their parent disappears.

Process start: ``subprocess`` (fork+exec, like the spawn method: safe with threads and torch in
the parent) of a plain script. multiprocessing's spawn and forkserver children re-import the
parent's ``__main__`` (a trainer's torch import included): measured on the 2-core dev box,
1.25 s per worker for those against 0.34 s for the script, which imports only the engine.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import unicodedata
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal, InvalidOperation
from typing import Protocol, runtime_checkable

__all__ = [
    "Verification",
    "Verifier",
    "MathVerifier",
    "extract_answer",
    "normalize_answer",
    "count_parts",
    "UNBOXED_MODES",
    "REASONS",
]

#: Every ``Verification.reason`` the verifiers emit.
REASONS = ("match", "mismatch", "no-answer", "parse-error", "timeout", "too-long")

#: Text longer than this is cut (its *end* is kept: the answer is at the end) before extraction.
DEFAULT_MAX_TEXT_CHARS = 200_000
#: An extracted answer longer than this is not compared at all (``reason="too-long"``).
DEFAULT_MAX_ANSWER_CHARS = 1_000
#: Worker processes by default: two, or one on a single-core machine.
DEFAULT_WORKERS = max(
    1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
)

_WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_verify_worker.py")


@dataclass(frozen=True)
class Verification:
    """Outcome of checking one answer against its reference.

    ``reward`` is +1.0 when ``correct`` and -1.0 otherwise; ``extracted`` is the answer string
    taken from the model text (``None`` if none was found); ``reason`` is one of :data:`REASONS`.
    """

    reward: float
    correct: bool
    extracted: str | None
    reason: str
    reference: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def judged(cls, correct: bool, extracted: str | None, reason: str, reference: str = "") -> Verification:
        return cls(1.0 if correct else -1.0, bool(correct), extracted, reason, reference)


@runtime_checkable
class Verifier(Protocol):
    """What the environment and the rollout engine need from a verifier."""

    def verify(self, text: str, reference: str) -> Verification: ...

    def verify_batch(self, pairs: Sequence[tuple[str, str]]) -> list[Verification]: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- extraction

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BOX_SPACE_RE = re.compile(r"\\boxed +([^\s$]+)")  # "\boxed 5" (no braces)
_BRACE_TOKEN_RE = re.compile(r"\\\\|\\[{}]|[{}]")
_PHRASE_RE = re.compile(r"(?:final\s+answer|the\s+answer)\s*(?:is|:|=)?\s*:?\s*", re.IGNORECASE)
#: Chat-template control tokens (ChatML, Llama 3, Gemma, Mistral, DeepSeek's full-width bars,
#: ``</s>``): they end a turn, so they end an answer line.
_CHAT_TOKEN_RE = re.compile(
    r"<\|[A-Za-z0-9_\-:. ]{1,40}\|>|</?s>|<(?:eos|bos|pad|eot|end_of_turn|start_of_turn)>"
    r"|\[/?INST\]|<\uff5c[^<>\n]{1,40}\uff5c>"
)
#: Modes of reading text that has neither a box nor a final-answer phrase.
UNBOXED_MODES = ("off", "last")
#: How much of the text's end the ``unboxed="last"`` reading looks at.
_UNBOXED_TAIL = 2_000


def _match_braces(text: str) -> dict[int, int]:
    """Map each ``{`` that gets closed to the index of its ``}``, in one left-to-right pass.

    ``\\{``/``\\}`` are literal braces and ``\\\\`` is a LaTeX line break, so neither counts.
    A stray ``}`` with nothing open is ignored; a ``{`` never closed gets no entry.
    """
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_TOKEN_RE.finditer(text):
        tok = m.group()
        if tok == "{":
            stack.append(m.start())
        elif tok == "}" and stack:
            pairs[stack.pop()] = m.start()
    return pairs


def find_boxed(text: str) -> list[tuple[int, int, str]]:
    """All complete ``\\boxed{}``/``\\fbox{}`` groups as ``(start, end, content)``, in order.

    Nested boxes count once (the outer one). A box whose brace never closes is skipped, and
    boxes after it are still found. Linear time in ``len(text)``.
    """
    if "\\boxed" not in text and "\\fbox" not in text:
        return []
    closing = _match_braces(text)
    out = []
    last_end = -1
    for m in _BOX_RE.finditer(text):
        if m.start() < last_end:
            continue  # inside a box already taken
        open_idx = m.end() - 1
        close_idx = closing.get(open_idx)
        if close_idx is None:
            continue
        out.append((m.start(), close_idx + 1, text[open_idx + 1 : close_idx]))
        last_end = close_idx + 1
    return out


def count_parts(answer: str) -> int:
    """How many answers a comma-separated list holds at the top level (outside brackets).

    ``"3, -5"`` holds 2, ``"(1, 2)"``, ``"\\{1,2\\}"`` and ``"[0, 1)"`` hold 1 (one tuple, set or
    interval), and a thousands separator (``"1,000"``) splits nothing. Linear time.
    """
    depth, parts, start = 0, [], 0
    i, n = 0, len(answer)
    while i < n:
        c = answer[i]
        if c == "\\" and i + 1 < n and answer[i + 1] in "{}":
            depth += 1 if answer[i + 1] == "{" else -1
            i += 2
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth <= 0:
            parts.append(answer[start:i])
            start = i + 1
        i += 1
    parts.append(answer[start:])
    merged: list[str] = []
    for piece in parts:  # "1,000,000": digit groups of three continue a number
        if merged and re.fullmatch(r"\d{3}(?:\.\d+)?", piece) and re.search(r"\d$", merged[-1]):
            merged[-1] += "," + piece
        else:
            merged.append(piece)
    return sum(1 for p in merged if p.strip()) or 1


# A sentence is read for what it asserts. It is cut into tokens (math spans, LaTeX commands with
# their brace groups, words, sentence ends, other characters) by one left-to-right pass over at
# most ``_UNBOXED_TAIL`` characters; everything after that is a few passes over the token list.
_TOKEN_RE = re.compile(
    r"(?P<span>\$\$(?:[^$\\]|\\.)+\$\$|\$(?:[^$\\]|\\.)+\$|\\\(.+?\\\)|\\\[.+?\\\]"
    r"|\\begin\{(?P<env>[A-Za-z]{1,20}\*?)\}.*?\\end\{(?P=env)\})"
    r"|(?P<cmd>\\[A-Za-z]+|\\.)"
    r"|(?P<word>[A-Za-z]+(?:'[A-Za-z]+)?)"
    r"|(?P<end>[.!?;](?=\s|$)|\n)"
    r"|(?P<other>.)",
    re.DOTALL,
)
#: Display environments whose rows are steps of a computation: the last row is what they assert.
_ROW_ENVS = frozenset({"align", "align*", "aligned", "eqnarray", "eqnarray*", "gather", "gather*", "multline",
                       "multline*", "split"})
_WHOLE_ENV_RE = re.compile(r"\\begin\{([A-Za-z]{1,20}\*?)\}.*\\end\{\1\}\.?", re.DOTALL)
_ROW_TOKEN_RE = re.compile(r"\\\\|\\begin(?![A-Za-z])|\\end(?![A-Za-z])|\\[{}]|[{}]")
_COMMAND_RE = re.compile(r"\\[A-Za-z]+")
#: Relations: spans holding one are statements, never listed as alternative values.
_RELATION_RE = re.compile(r"[<>]|\\(?:le|ge|leq|geq|lt|gt|ne|neq|in|subset|subseteq|notin)(?![A-Za-z])|\\text\s*\{\s*or\s*\}")
_NEXT_WORD_RE = re.compile(r"\s{0,20}([A-Za-z])")
#: An alignment mark before a relation (``&=``, ``& \\le``), not a matrix's column separator.
_ALIGN_MARK_RE = re.compile(r"&(?=\s*(?:[=<>]|\\[lg]eq?(?![A-Za-z])|\\approx|\\ne(?![A-Za-z])))")
#: Words that assert what follows them: "The largest $n$ is 34".
_ASSERT_WORDS = frozenset({"is", "are", "was", "were", "be", "equals"})
#: An assertion denied: "x is not 5" asserts nothing about 5.
_DENY_WORDS = frozenset({"not", "never", "isn't", "aren't", "wasn't", "weren't", "cannot", "can't"})
#: An assertion hedged: "$\frac{1}{6}$, which is about 0.17" gives the exact value first.
_APPROX_WORDS = frozenset({"about", "approximately", "roughly", "around", "nearly", "almost", "approx"})
#: Words that start a clause explaining an answer already given ("64 because $4^3 = 64$",
#: "I hope it is correct"): the sentence ends there once it holds some maths.
_CUT_WORDS = frozenset({"because", "since", "hope", "where", "whereas"})
#: Words that start a conclusion: typeset maths after them, after an equation, is what it concludes.
_CONSEQUENCE_WORDS = frozenset({"so", "thus", "hence", "therefore", "then"})
#: Letter runs of two or three letters that are maths, not prose (``sin x``, ``xy``, ``ln 2``).
_MATH_WORDS = frozenset({
    "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "lg", "exp", "lim", "max", "min", "gcd",
    "lcm", "mod", "det", "deg", "sinh", "cosh", "tanh", "arcsin", "arccos", "arctan", "pi", "sqrt",
})
#: Two-letter English words (any other pair of letters is a product of variables, like ``xy``).
_SHORT_WORDS = frozenset({
    "am", "an", "as", "at", "be", "by", "do", "go", "he", "if", "in", "is", "it", "me", "my", "no",
    "of", "oh", "ok", "on", "or", "so", "to", "up", "us", "we",
})
#: ``\text{...}``-like commands: with prose inside, the group is prose (``12 \text{ hours}``).
_TEXT_CMDS = frozenset({"\\text", "\\textbf", "\\textit", "\\textrm", "\\textnormal", "\\mbox", "\\mathrm", "\\mathbf"})
_PROSE_IN_GROUP_RE = re.compile(r"[A-Za-z]{3,}")
_APPROX_RE = re.compile(r"\\approx(?![A-Za-z])|≈")
_PMOD_RE = re.compile(r"(?:\\pmod\s*(?:\{[^{}]{0,40}\}|\w{1,20})|\(\s*\\(?:bmod|mod)\s*[^()]{0,40}\))\s*$")
_LONE_VARIABLE_RE = re.compile(r"\s*[A-Za-z](?:_\{?\w{1,5}\}?)?\s*")


def _word_kind(word: str) -> str:
    """``assert``, ``deny``, ``approx``, ``cut``, ``prose`` or ``math`` (a variable or function name)."""
    low = word.lower()
    if low in _ASSERT_WORDS:
        return "assert"
    if low in _DENY_WORDS:
        return "deny"
    if low in _APPROX_WORDS:
        return "approx"
    if low in _CUT_WORDS:
        return "cut"
    if len(word) == 1:
        return "prose" if word in "aAI" else "math"
    if low in _MATH_WORDS:
        return "math"
    if len(word) == 2 and low not in _SHORT_WORDS:
        return "math"
    return "prose"


def _span_content(span: str, env: str | None) -> str:
    """The maths of a span without its delimiters; of a computation laid out in rows (``align``),
    its last row without the alignment marks."""
    if env is not None:
        if env not in _ROW_ENVS:
            return span.strip()
        inner = span[len(env) + 8 : -(len(env) + 6)]  # between \\begin{env} and \\end{env}
        rows, depth, start = [], 0, 0
        for m in _ROW_TOKEN_RE.finditer(inner):  # a row ends at a \\\\ outside braces and inner environments
            tok = m.group()
            if tok in ("{", "\\begin"):
                depth += 1
            elif tok in ("}", "\\end"):
                depth -= 1
            elif tok == "\\\\" and depth <= 0:
                rows.append(inner[start : m.start()])
                start = m.end()
        rows = [r for r in [*rows, inner[start:]] if r.strip()]
        return _ALIGN_MARK_RE.sub("", rows[-1]).strip() if rows else ""
    inner = (span[2:-2] if span[:2] in ("$$", "\\(", "\\[") else span[1:-1]).strip()
    m = _WHOLE_ENV_RE.fullmatch(inner)  # "\\[\\begin{aligned} ... \\end{aligned}\\]"
    return _span_content(inner, m.group(1)) if m else inner


def _tokens(s: str, *, equations: bool) -> list[tuple[str, str]]:
    """``(kind, text)`` tokens of ``s``: ``span`` (the content of a math span), ``math`` (a
    command with its brace group, a variable, a digit, an operator), ``space`` (spaces, commas
    and other separators), ``prose``, ``assert`` (also a ``=`` outside math unless
    ``equations``), ``deny``, ``approx``, ``cut`` and ``end`` (a sentence end; also after a span
    whose maths ends with ``.``, and after a display followed by a capitalised word). Linear in
    ``len(s)`` (a span without its closing delimiter costs one scan to the end of ``s``, which is
    at most ``_UNBOXED_TAIL`` characters)."""
    closing = _match_braces(s) if "{" in s else {}
    out: list[tuple[str, str]] = []
    pos, n = 0, len(s)
    while pos < n:
        m = _TOKEN_RE.match(s, pos)
        if m is None:  # pragma: no cover - the last branch matches any character
            break
        text, pos = m.group(), m.end()
        kind = "span" if m.group("span") is not None else (m.lastgroup or "other")
        if kind == "span":
            inner = _span_content(text, m.group("env"))
            stop = inner.endswith(".")  # "is $3.$": the sentence ends inside the span
            if not stop and text[:2] in ("$$", "\\[", "\\b"):  # a display, then a new sentence ("\\]Since")
                m2 = _NEXT_WORD_RE.match(s, pos)
                stop = m2 is not None and m2.group(1)[0].isupper()
            inner = inner.rstrip(".,;").strip()
            if inner:
                out.append(("span", inner))
            if stop:
                out.append(("end", "."))
            continue
        if kind == "cmd":
            kind = "math"
            if text == "\\\\":
                kind = "space"
            elif pos < n and s[pos] == "{" and pos in closing:  # the command's brace group goes with it
                group = s[pos : closing[pos] + 1]
                pos = closing[pos] + 1
                if text in _TEXT_CMDS and _PROSE_IN_GROUP_RE.search(group):
                    kind = "prose"
                text += group
        elif kind == "word":
            kind = _word_kind(text)
            if kind == "prose" and len(text) == 2 and out and out[-1][0] == "math" and out[-1][1][-1:].isdigit():
                kind = "math"  # "12cm"-like: a unit glued to its number stays with it
        elif kind == "other":
            if text == "{" and pos - 1 in closing:
                text, pos, kind = s[pos - 1 : closing[pos - 1] + 1], closing[pos - 1] + 1, "math"
            elif text == "=" and not equations:
                kind = "assert"
            elif text.isspace() or text in ",:\"'`*":
                kind = "space"
            else:
                kind = "math"
        if out and out[-1][0] == kind and kind in ("math", "space"):
            out[-1] = (kind, out[-1][1] + text)
        else:
            out.append((kind, text))
    return out


def _sentences(tokens: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The token list cut at sentence ends (empty sentences dropped)."""
    out: list[list[tuple[str, str]]] = [[]]
    for tok in tokens:
        if tok[0] == "end":
            if out[-1]:
                out.append([])
        else:
            out[-1].append(tok)
    return [s for s in out if s]


def _strong(tok: tuple[str, str]) -> bool:
    """Whether a token is plainly maths: a span, a digit, a LaTeX command (not a lone variable)."""
    kind, text = tok
    return kind == "span" or (kind == "math" and (any(c.isdigit() for c in text) or "\\" in text))


def _top_level_cut(s: str, sep: str) -> list[str]:
    """``s`` split at ``sep`` outside braces, brackets and parentheses (linear)."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(s):
        if c in "{([":
            depth += 1
        elif c in "})]":
            depth -= 1
        elif c == sep and depth <= 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return parts


def _asserted_value(expr: str, *, equations: bool) -> str:
    """What a math expression asserts: an ``=`` chain gives its last side (``x = 2 + 3 = 5`` gives
    ``5``; with ``equations``, the equation of its first and last sides, ``x = 5``) and an
    approximation after it is dropped (``\\frac{1}{3} \\approx 0.33`` gives ``\\frac{1}{3}``)."""
    m = _APPROX_RE.search(expr)
    if m:
        expr = expr[: m.start()]
    if "\\equiv" in expr and not equations:  # "24 \\equiv 3 \\pmod{7}" asserts the residue 3
        expr = _PMOD_RE.sub("", expr).replace("\\equiv", "=")
    sides = _top_level_cut(expr, "=") if "=" in expr else [expr]
    sides = [p for p in sides if p.strip()]
    if len(sides) > 2 and _LONE_VARIABLE_RE.fullmatch(sides[-1]):
        sides.pop()  # "36 - 7 - 2 - 10 = 17 = x": the value comes before the unknown it names
    if len(sides) == 2 and sides[1].strip() == "0" and any(c.isalpha() for c in _COMMAND_RE.sub("", sides[0])):
        return expr.strip()  # "5x - 7y + 4 = 0" states an equation, not the value 0
    if len(sides) == 1 or (sides and not equations):  # "= 60" (an aligned row) asserts 60 too
        expr = sides[-1]
    elif len(sides) > 2:
        expr = sides[0].strip() + " = " + sides[-1].strip()
    return expr.strip()


def _run_text(run: list[tuple[str, str]], *, equations: bool) -> str:
    pieces = [_asserted_value(t, equations=equations) if k == "span" else t for k, t in run]
    text = _asserted_value("".join(pieces), equations=equations).lstrip(" \t\n,:;\"'`*$")
    return text.rstrip(" \t\n,:;\"'`*$([{").strip()  # "12 (" before a parenthetical remark


def _read_sentence(
    sentence: list[tuple[str, str]], *, asserted: bool, equations: bool, text_answer: bool
) -> str | None:
    """What one sentence asserts (see :func:`extract_answer`, step 3).

    ``asserted``: the sentence follows a final-answer phrase, which asserts what comes after it.
    ``text_answer``: a sentence with no maths at all may answer in words ("The winner is Evelyn").
    """
    # A connective after some maths starts an explanation: the sentence ends there.
    seen_math = False
    for i, tok in enumerate(sentence):
        if tok[0] == "cut" and seen_math:
            sentence = sentence[:i]
            break
        seen_math = seen_math or _strong(tok)
    # Runs of maths between words (a math span is a run of its own); the assertions among them.
    runs: list[tuple[int, list[tuple[str, str]]]] = []  # (index of the run's first token, tokens)
    asserts: list[int] = [-1] if asserted else []
    hedged: set[int] = set()  # token indices after which the next run is denied or approximate
    current: list[tuple[str, str]] = []
    start = 0
    for i, tok in enumerate(sentence):
        kind = tok[0]
        if kind in ("math", "space") and not (current and current[-1][0] == "span"):
            if not current:
                start = i
            current.append(tok)
            continue
        if current:
            runs.append((start, current))
            current = []
        if kind == "span":
            start, current = i, [tok]
        elif kind == "assert":
            asserts.append(i)
        elif kind in ("deny", "approx") and ("'" in tok[1] or tok[1].lower() == "cannot"):
            hedged.add(i)  # "isn't 4", "cannot be 4"
        elif kind in ("deny", "approx") and asserts and all(t[0] == "space" for t in sentence[asserts[-1] + 1 : i]):
            hedged.add(i)  # "is not 4", "is about 0.17": what follows is not what is asserted
            if kind == "deny":
                asserts.pop()
    if current:
        runs.append((start, current))
    maths = [(i, r) for i, r in runs if any(_strong(t) for t in r)]
    if not maths:  # lone variables ("The answer is x")
        maths = [(i, r) for i, r in runs if any(t[0] == "math" and any(c.isalpha() for c in t[1]) for t in r)]
    # The run right after a denial is never the answer; one after a hedge only if nothing else is.
    starts = [i for i, _ in maths]
    hedge_of: dict[int, str] = {}
    for h in sorted(hedged):
        j = bisect.bisect_right(starts, h)
        if j < len(starts) and hedge_of.get(starts[j]) != "deny":
            hedge_of[starts[j]] = sentence[h][0]
    exact = [(i, r) for i, r in maths if i not in hedge_of]
    maths = exact or [(i, r) for i, r in maths if hedge_of.get(i) != "deny"]
    if not maths:
        if text_answer and asserts:
            tail = sentence[asserts[-1] + 1 :]
            if tail and not any(t[0] in ("deny", "assert") for t in tail):
                words = "".join(t[1] for t in tail).strip(" \t\n,:;\"'`*$").strip()
                return words if 0 < len(words.split()) <= 6 else None
        return None
    # The last assertion with maths after it: a word or "=" asserts the first maths after it
    # (typeset maths before a bare number in prose); a span with an "=" asserts its own value,
    # unless typeset maths follows it ("$a = 2b$, so Alice has a $\frac{2}{3}$ chance").
    starts = [i for i, _ in maths]
    sides = [_top_level_cut(r[0][1], "=") if r[0][0] == "span" else [] for _, r in maths]
    equation = [sum(1 for x in sd if x.strip()) > 1 or (len(sd) > 1 and not sd[0].strip()) for sd in sides]
    relation = [r[0][0] == "span" and _RELATION_RE.search(r[0][1]) is not None for _, r in maths]

    def typeset(j: int) -> bool:  # a span that is more than a lone variable
        t = maths[j][1][0]
        return t[0] == "span" and (len(t[1]) > 1 or t[1].isdigit())

    def new_clause(j: int, m: int) -> bool:  # a comma or "so"/"thus"/... between maths[j] and maths[m]
        gap = sentence[maths[j][0] + len(maths[j][1]) : maths[m][0]]
        return any((t[0] == "space" and "," in t[1]) or t[1].lower() in _CONSEQUENCE_WORDS for t in gap)

    k = len(maths) - 1
    marks = sorted([(a, -1) for a in asserts] + [(starts[j], j) for j in range(len(maths)) if equation[j]])
    for pos, j in reversed(marks):
        if j >= 0:  # an equation, or the typeset maths a later clause concludes with
            later = [m for m in range(j + 1, len(maths)) if typeset(m)]
            k = later[-1] if later and new_clause(j, later[0]) else j
            break
        if pos < starts[-1]:  # a word with some maths after it
            j = bisect.bisect_right(starts, pos)
            k = next((m for m in range(j, len(maths)) if typeset(m)), j)
            break

    # Maths listed with it ("$x = 2$ and $x = 3$", "5 or 6") is one answer, a list: hedging pays
    # nothing, and a reference with several parts is met. Equations of different unknowns
    # ("$a = 1$ and $b = 4$") are steps, not a list.
    def listed(j: int) -> bool:  # maths[j] and maths[j + 1] stand side by side
        if relation[j] or relation[j + 1] or equation[j] != equation[j + 1] or (
            equation[j] and sides[j][0].split() != sides[j + 1][0].split()
        ):
            return False
        gap = sentence[maths[j][0] + len(maths[j][1]) : maths[j + 1][0]]
        words = [t[1].lower() for t in gap if t[0] != "space"]
        return all(w in ("and", "or") for w in words) and (bool(words) or any("," in t[1] for t in gap))

    first, last = k, k
    while first > 0 and listed(first - 1):
        first -= 1
    while last + 1 < len(maths) and listed(last):
        last += 1
    chosen = maths[first : last + 1]
    answer = ", ".join(t for t in (_run_text(r, equations=equations) for _, r in chosen) if t)
    return answer or None


def _phrase_answer(rest: str, *, equations: bool = False) -> str | None:
    """The answer in the text after a final-answer phrase: what its first sentence asserts.

    ``"$2.5$. I hope it is correct."`` gives ``2.5``, ``": The largest $n$ is 34."`` gives ``34``.
    """
    rest = rest[:_UNBOXED_TAIL].strip().lstrip("*").strip()  # longer is too long anyway
    for sentence in _sentences(_tokens(rest, equations=equations))[:1]:
        return _read_sentence(sentence, asserted=True, equations=equations, text_answer=True)
    return None


def _last_match(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The last match of ``pattern`` in ``text`` (``None`` if there is none)."""
    tail = deque(pattern.finditer(text), maxlen=1)
    return tail[0] if tail else None


def _last_expression(text: str, *, equations: bool = False) -> str | None:
    """What the last sentence with maths in the text's last characters asserts (``unboxed="last"``)."""
    tail = text[-_UNBOXED_TAIL:]
    if len(text) > _UNBOXED_TAIL:
        # Start outside any $..$ span (an odd number of unescaped $ before the cut means inside
        # one) and at a word boundary, not inside a word cut in two.
        cut = len(text) - _UNBOXED_TAIL
        if (text.count("$", 0, cut) - text.count("\\$", 0, cut)) % 2:
            tail = tail[tail.find("$") + 1 :] if "$" in tail else tail
        m = re.search(r"\s", tail[:100])
        tail = tail[m.end() :] if m else tail
    for sentence in reversed(_sentences(_tokens(tail, equations=equations))):
        got = _read_sentence(sentence, asserted=False, equations=equations, text_answer=False)
        if got is not None:
            return got
    return None


#: Boxes separated only by this (spaces, ``$``, commas, ``or``/``and``, LaTeX spacing; at most
#: ``_GROUP_GAP`` characters, on one line) are listed side by side: one group.
_GROUP_GAP = 24
_GROUP_GAP_RE = re.compile(
    r"(?:[ \t$,;&~]|\\[,;:! ]|\\q?quad|\\text\s*\{\s*(?:or|and|,)?\s*\}|\bor\b|\band\b)*", re.IGNORECASE
)


def _boxed_answer(text: str, boxes: list[tuple[int, int, str]], parts: int) -> str | None:
    """The answer held by the last boxes (see :func:`extract_answer`).

    The *final group* is the last box and the boxes listed just before it, separated only by
    spaces, commas, ``or``/``and`` (``\\boxed{3} or \\boxed{-5}``; not ``\\boxed{1}. Then
    \\boxed{2}``); repeated boxes count once. A group holding
    at least ``parts`` answers is the answer as a whole, so guesses boxed side by side make a
    longer list that matches no reference; a group holding fewer is extended by earlier boxes
    until it holds ``parts`` (``\\boxed{3}`` ... ``\\boxed{-5}`` for ``3, -5``).
    """
    if not boxes[-1][2].strip():
        return None
    first = len(boxes) - 1
    while first > 0:
        gap = text[boxes[first - 1][1] : boxes[first][0]]
        if len(gap) > _GROUP_GAP or not _GROUP_GAP_RE.fullmatch(gap) or not boxes[first - 1][2].strip():
            break
        first -= 1
    chosen = [b[2].strip() for b in boxes[first:]]
    if len(chosen) == 1 and parts <= 1:  # the common case: one last box
        return chosen[0]
    held = sum(count_parts(c) for c in chosen) if parts > 1 else parts
    k = first
    while held < parts and k > 0:
        k -= 1
        content = boxes[k][2].strip()
        if not content:
            break
        chosen.insert(0, content)
        held += count_parts(content)
    got, seen = [], set()
    for content in chosen:
        key = normalize_answer(content)
        if key not in seen:
            seen.add(key)
            got.append(content)
    return ", ".join(got)


def extract_answer(
    text: str, *, max_chars: int = DEFAULT_MAX_TEXT_CHARS, parts: int = 1, unboxed: str = "off",
    equations: bool = False,
) -> str | None:
    """The answer a model text commits to, or ``None``.

    1. Chat-template tokens (``<|im_end|>``, ``<|eot_id|>``, ``</s>``, ...) end a line.
    2. The last ``\\boxed{...}``/``\\fbox{...}`` wins (an empty last box means no answer), with
       the boxes listed right before it (``\\boxed{3} or \\boxed{-5}``), joined
       (``"3, -5"``): boxing several guesses gives a longer list, which does not pay. When the
       reference holds ``parts`` > 1 answers and that group holds fewer, earlier boxes are
       joined until it holds that many (``\\boxed{3}`` ... ``\\boxed{-5}`` answer ``3, -5``)
       (:func:`_boxed_answer`).
    3. Without a box, ``\\boxed 5``; without that, a final-answer phrase ("The final answer is
       $5$. I hope it is correct.", "Final answer: 5") on the last line that has one: its answer
       is what the first sentence after it *asserts* (:func:`_phrase_answer`). A sentence
       asserts what follows its last ``is``/``are``/``was``/``were``/``be``/``equals`` or ``=``
       that has maths after it ("The largest $n$ is 34" gives ``34``, "The number of ways this is
       possible is 12" gives ``12``): the first run of maths after it, up to the next word
       ("45 dollars" gives ``45``, "3 hours ago" gives ``3``). With no such word, the phrase
       itself asserts (``Final answer: Jane started 3 hours ago`` gives ``3``). An ``=`` chain
       gives its last side (``x = 2 + 3 = 5`` gives ``5``), an ``\\approx`` tail is dropped, a
       denied value ("is not 8") is never the answer, and an explaining clause after the maths
       ("because ...", "which is about 0.17", "I hope ...") is not read. A sentence with no maths
       answers in its words ("The winner is Evelyn"). With ``equations`` (the reference is an
       equation) ``=`` is not an assertion and an equation stays whole.
    4. Without either, ``unboxed="last"`` reads the last sentence with maths in the text's last
       2,000 characters the same way, and with no asserting word in it, its last run of maths
       ("Adding them gives 23 stones" gives ``23``); ``"off"`` (default) finds no answer.

    Text longer than ``max_chars`` is cut from the front first.
    """
    if unboxed not in UNBOXED_MODES:
        raise ValueError(f"unboxed must be one of {', '.join(UNBOXED_MODES)}, got {unboxed!r}")
    if not isinstance(text, str) or not text:
        return None
    if len(text) > max_chars:
        text = text[-max_chars:]
    if "<" in text or "[" in text:
        text = _CHAT_TOKEN_RE.sub("\n", text)
    boxes = find_boxed(text)
    if boxes:
        return _boxed_answer(text, boxes, parts)
    m = _last_match(_BOX_SPACE_RE, text)
    if m is not None:
        return m.group(1).strip() or None
    last = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        pm = _last_match(_PHRASE_RE, line)
        if pm:
            last = line[pm.end():]
            if not last.strip() and i + 1 < len(lines):  # "The final answer is:" then the answer
                last = lines[i + 1]
    if last is not None:
        return _phrase_answer(last, equations=equations)
    if unboxed == "last":
        return _last_expression(text, equations=equations)
    return None


# --------------------------------------------------------------------------- cleaning

_CTRL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ⁿ"
_SUBSCRIPTS = "₀₁₂₃₄₅₆₇₈₉₊₋₌₍₎"
_SUP_RE = re.compile(f"[{_SUPERSCRIPTS}]+")
_SUB_RE = re.compile(f"[{_SUBSCRIPTS}]+")
_UNICODE_MATH = {
    "π": "\\pi ", "∞": "\\infty ", "−": "-", "–": "-", "×": "\\times ", "·": "\\cdot ",
    "÷": "\\div ", "≤": "\\le ", "≥": "\\ge ", "≠": "\\ne ", "√": "\\sqrt ", "°": "^\\circ ",
    "∪": "\\cup ", "∩": "\\cap ", "∈": "\\in ", "⁄": "/",
}
_UNICODE_MATH_RE = re.compile("|".join(map(re.escape, _UNICODE_MATH)))


def _vulgar_fraction(ch: str) -> str | None:
    form = unicodedata.normalize("NFKC", ch)
    if "⁄" in form:
        num, _, den = form.partition("⁄")
        return f"\\frac{{{num}}}{{{den}}}"
    return None


def _clean(s: str) -> str:
    """Plain-ASCII LaTeX for an answer: no control characters, Unicode look-alikes mapped.

    Superscripts and subscripts become ``^{..}``/``_{..}`` and vulgar fractions ``\\frac{}{}``
    *before* NFKC folding, which would otherwise turn ``2²`` into ``22`` and ``1½`` into
    ``11⁄2``. NFKC then maps full-width digits and letters to ASCII.
    """
    s = _CTRL_RE.sub("", s)
    if s.isascii():
        return s
    s = _SUP_RE.sub(lambda m: "^{" + unicodedata.normalize("NFKC", m.group()).replace("−", "-") + "}", s)
    s = _SUB_RE.sub(lambda m: "_{" + unicodedata.normalize("NFKC", m.group()) + "}", s)
    s = "".join(_vulgar_fraction(c) or c if not c.isascii() else c for c in s)
    s = unicodedata.normalize("NFKC", s)
    return _UNICODE_MATH_RE.sub(lambda m: _UNICODE_MATH[m.group()], s)


_SCI_RE = re.compile(r"([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:[eE]|\s*\\(?:times|cdot)\s*10\s*\^)\s*\{?\s*([+-]?\d{1,3})\s*\}?")


def _scientific_to_decimal(s: str) -> str:
    """``1.5e3`` / ``1.5\\times10^{3}`` as a whole answer → ``1500`` (exact; Decimal, no eval)."""
    m = _SCI_RE.fullmatch(s)
    if not m:
        return s
    try:
        d = Decimal(m.group(1) + m.group(2) + "e" + m.group(3))
    except InvalidOperation:  # pragma: no cover - the regex admits only valid numbers
        return s
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _strip_trailing(s: str) -> str:
    """Drop what may trail an answer without being part of it: whitespace, a sentence's final
    ``.``, a LaTeX line break ``\\\\``, a lone ``\\`` and LaTeX spacing (``\\,``, ``\\;``, ``\\!``,
    ``\\quad``). Linear time (no backtracking regex)."""
    while True:
        t = s.rstrip()
        if t.endswith("\\\\"):
            t = t[:-2]
        elif t.endswith("\\quad"):
            t = t[:-5]
        elif len(t) >= 2 and t[-2] == "\\" and t[-1] in ",;:! " and not t.endswith("\\\\" + t[-1]):
            t = t[:-2]
        elif t.endswith("\\") or (t.endswith(".") and not t.endswith("\\.")):
            t = t[:-1]
        if t == s:
            return s
        s = t


#: ``\mathrm{e}`` and its look-alikes are Euler's number (math-verify reads a bare ``e`` so).
_EULER_RE = re.compile(r"\\(?:mathrm|mathit|rm|text|textrm|operatorname)\s*\{\s*e\s*\}")


def _engine_form(s: str) -> str:
    """The answer string handed to the symbolic engine: cleaned, delimiters and trailing
    punctuation off (:func:`_strip_trailing`), ``\\mathrm{e}`` → ``e``."""
    s = _clean(s).strip()
    s = s.strip("$").strip()
    for a, b in (("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(a) and s.endswith(b):
            s = s[len(a) : len(s) - len(b)].strip()
    s = _strip_trailing(s).strip("$").strip()
    s = _EULER_RE.sub("e", s)
    return _scientific_to_decimal(s)


# --------------------------------------------------------------------------- normalisation

_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_SPACING_RE = re.compile(r"\\[,;:! ]|\\q?quad(?![a-zA-Z])|~")
_LEFT_RIGHT_RE = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![a-zA-Z])")
_UNIT_WORDS = (
    "degrees", "degree", "units", "unit", "cm", "meters", "meter", "inches", "inch", "feet",
    "foot", "dollars", "dollar", "cents", "cent", "square", "sq",
)
_UNIT_RE = re.compile(r"(?:(?<=\s)|(?<=\d))(?:" + "|".join(_UNIT_WORDS) + r")\.?$", re.IGNORECASE)
_THOUSANDS_RE = re.compile(r"[+-]?\d{1,3}(?:(?:,|\{,\})\d{3})+(?:\.\d+)?")


def normalize_answer(s: str) -> str:
    """A canonical string form of an answer for the fast equality path.

    Conservative: two answers with equal normal forms are equal; unequal forms decide nothing
    on their own (the symbolic layer may still find them equal). Answers made only of letters
    and spaces (``\\text{Evelyn}``, multiple-choice letters) compare case-insensitively.
    """
    s = _clean(s).strip()
    # Outer math delimiters.
    s = s.strip("$")
    s = s.replace("\\(", "").replace("\\)", "").replace("\\[", "").replace("\\]", "")
    s = _LEFT_RIGHT_RE.sub("", s)
    s = s.replace("\\displaystyle", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _SPACING_RE.sub(" ", s)
    # \text{...} and friends → their content (repeat for nesting).
    for _ in range(4):
        new = _TEXT_CMD_RE.sub(r"\1", s)
        if new == s:
            break
        s = new
    s = s.replace("^{\\circ}", "").replace("^\\circ", "").replace("\\circ", "")
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace("\\$", "")
    s = _strip_trailing(s.strip())  # sentence punctuation, line breaks, spacing
    # "x = 5" → "5" when the left side is a single variable name.
    m = re.fullmatch(r"[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(.+)", s)
    if m and "=" not in m.group(1):
        s = m.group(1)
    # Trailing unit words ("10 cm", "5 degrees", "12 square units").
    for _ in range(3):
        new = _UNIT_RE.sub("", s).strip()
        if new == s or not new:
            break
        s = new
    # Thousands separators in a plain number (checked before spaces go: "2, 100" is a list).
    if _THOUSANDS_RE.fullmatch(s):
        s = s.replace("{,}", "").replace(",", "")
    s = re.sub(r"\s+", "", s)
    s = _scientific_to_decimal(s)
    # Plain numbers: no leading plus, no leading zeros, no trailing decimal zeros.
    if re.fullmatch(r"[+-]?\d+(?:\.\d+)?", s):
        sign = "-" if s.startswith("-") else ""
        body = s.lstrip("+-")
        if "." in body:
            body = body.rstrip("0").rstrip(".")
        body = body.lstrip("0") or "0"
        if body.startswith("."):
            body = "0" + body
        s = "" if body == "0" else sign
        s += body
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt(\d)", r"\\sqrt{\1}", s)
    # Multiple-choice letter in parentheses: "(C)" → "C".
    m = re.fullmatch(r"\(([A-Za-z])\)", s)
    if m:
        s = m.group(1)
    # Text answers compare case-insensitively.
    return s.lower() if re.fullmatch(r"[A-Za-z ]+", s) else s


_PLAIN_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def _numbers_close(a: str, b: str, rel_tol: float) -> bool:
    """Two normal forms that are plain decimal numbers within ``rel_tol`` of each other
    (exact Decimal arithmetic; anything else is left to the symbolic layer)."""
    if not (_PLAIN_NUMBER_RE.fullmatch(a) and _PLAIN_NUMBER_RE.fullmatch(b)):
        return False
    x, y = Decimal(a), Decimal(b)
    return abs(x - y) <= Decimal(repr(rel_tol)) * max(abs(x), abs(y))


# --------------------------------------------------------------------------- worker pool


class _Worker:
    """One worker process and the parent's view of it (owned by one thread at a time)."""

    __slots__ = ("popen", "fd", "buf", "state", "task", "deadline", "spawned_at")

    def __init__(self, popen: subprocess.Popen) -> None:
        self.popen = popen
        self.fd = popen.stdout.fileno()
        self.buf = b""
        self.state = "starting"  # starting → idle ⇄ busy; dead at the end
        self.task = None
        self.deadline = 0.0
        self.spawned_at = time.monotonic()

    def exit_code(self) -> int | None:
        """The exit status once the process has ended (``-N`` for signal N); waits briefly,
        as end-of-stream can reach the parent just before the process is reaped."""
        try:
            return self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - pipe closed, process alive
            return None

    def send(self, obj: dict) -> None:
        self.popen.stdin.write(json.dumps(obj).encode() + b"\n")
        self.popen.stdin.flush()

    def pump(self) -> list[dict] | None:
        """Messages that have arrived; ``None`` at end of stream (the process is gone)."""
        try:
            data = os.read(self.fd, 1 << 16)
        except OSError:
            return None
        if not data:
            return None
        self.buf += data
        *lines, self.buf = self.buf.split(b"\n")
        out = []
        for line in lines:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict):
                out.append(msg)
        return out

    def terminate(self) -> None:
        """SIGKILL the process and reap it; the pipes and ``state`` are left to the holder."""
        try:
            self.popen.kill()
        except OSError:
            pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL not honoured
            pass

    def kill(self) -> None:
        """Terminate the process and close the parent's ends of its pipes."""
        self.state = "dead"
        try:
            self.popen.kill()
        except OSError:
            pass
        for f in (self.popen.stdin, self.popen.stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL not honoured
            pass


class _Pool:
    """Worker processes shared by the threads of one :class:`MathVerifier`.

    A thread *holds* the workers it uses; it only ever blocks for a worker while holding none,
    so threads cannot deadlock on each other. Every process is registered under the lock, so
    :meth:`close` finds and kills them all, including ones a thread is using.
    """

    def __init__(self, size: int, config: dict) -> None:
        self.size = size
        self.config = config
        self.cond = threading.Condition()
        self.free: list[_Worker] = []
        self.procs: set[_Worker] = set()
        self.closed = False
        self.started = False
        self.owner_pid = os.getpid()
        self.spawned = 0

    def _spawn(self) -> _Worker:  # caller holds the lock
        popen = subprocess.Popen(
            [sys.executable, _WORKER_SCRIPT, json.dumps(self.config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            start_new_session=True,  # a Ctrl-C aimed at the trainer does not hit its workers
        )
        w = _Worker(popen)
        self.procs.add(w)
        self.spawned += 1
        return w

    def acquire(self, want: int, block: bool) -> list[_Worker]:
        """Up to ``want`` free workers (ready ones first); waits for one only if ``block``."""
        with self.cond:
            while True:
                if self.closed:
                    return []
                if not self.started:
                    self.started = True
                    self.free.extend(self._spawn() for _ in range(self.size))
                if self.free:
                    self.free.sort(key=lambda w: w.state != "idle")
                    got, self.free = self.free[:want], self.free[want:]
                    return got
                if not block:
                    return []
                self.cond.wait()

    def release(self, workers: Iterable[_Worker]) -> None:
        with self.cond:
            orphans = []
            for w in workers:
                if w.state != "dead" and w in self.procs:
                    self.free.append(w)
                elif w.state != "dead":
                    orphans.append(w)  # the pool was closed while this thread held it
            self.cond.notify_all()
        for w in orphans:
            w.kill()

    def replace(self, w: _Worker) -> _Worker | None:
        """Kill ``w`` and return a fresh (starting) worker held by the caller; None once closed."""
        w.kill()
        with self.cond:
            self.procs.discard(w)
            if self.closed:
                return None
            return self._spawn()

    def close(self) -> None:
        """Kill every process. Workers another thread holds are only terminated: that thread
        sees end-of-stream, finds the pool closed and closes their pipes itself (closing file
        descriptors under a thread that polls them could hand it someone else's file)."""
        with self.cond:
            self.closed = True
            procs = list(self.procs)
            free = set(self.free)
            self.procs.clear()
            self.free.clear()
            self.cond.notify_all()
        if os.getpid() != self.owner_pid:
            return  # a forked child: the processes belong to the parent
        for w in procs:
            if w in free:
                w.kill()
            else:
                w.terminate()

    def pids(self) -> list[int]:
        with self.cond:
            return [w.popen.pid for w in self.procs]


# --------------------------------------------------------------------------- verifier


class MathVerifier:
    """Checks math answers against references and returns :class:`Verification` objects.

    Args:
        timeout: CPU seconds the symbolic check of one answer may use in a worker (its own
            user + system time, counted by the kernel from the moment the worker reads the
            answer; start-up and warm-up are not counted, and other processes' load cannot use
            it up). An answer that overruns is judged wrong with ``reason="timeout"``; its
            worker stops it and goes on, or (stuck in C code) is ended at 1.5 × timeout + 0.5
            CPU seconds and replaced by one that is warm before it takes work.
        wall_timeout: wall-clock safety net per answer, for a worker that is not scheduled at
            all (a stopped process, a machine swapping); default ``20 * timeout + 10`` s, far
            above what any load makes of the CPU budget. Also ``"timeout"`` when hit.
        rel_tol: when set, a number also matches a numeric reference within this relative
            tolerance, |a − b| ≤ rel_tol · max(|a|, |b|) (default ``None``: exact, as math-verify).
        unboxed: how text with neither a box nor a final-answer phrase is read: ``"off"``
            (default: no answer, the prompt asks for a box) or ``"last"`` (what the last
            sentence with maths asserts: "The largest $n$ is 34" gives ``34``; see
            :func:`extract_answer`).
        workers: worker processes for the symbolic layer (default: 2, or 1 on a single core).
            ``0`` turns the symbolic layer off (string layer only; nothing is ever evaluated
            in the calling process).
        max_text_chars: model text beyond this is cut from the front before extraction.
        max_answer_chars: extracted answers beyond this are rejected with ``reason="too-long"``.
        symbolic: whether to consult the symbolic layer when the string forms differ.
        cache_size: verdicts of the symbolic layer kept per (answer, reference) pair; ``0``
            disables the cache. Timeouts are cached too, so a repeated hostile answer does not
            cost its deadline again.
        memory_mb: address-space limit of each worker process (``None``: no limit).
        fast_path: whether equal normal forms are accepted without the symbolic layer (turn it
            off only to test the symbolic layer on its own).
        start_timeout: seconds a new worker may take to import its engine before
            :class:`RuntimeError` is raised.

    Worker processes start lazily on the first answer that needs them, so creating a verifier
    is cheap. Safe to share between threads (and from asyncio through :meth:`averify` /
    :meth:`averify_batch`). Usable as a context manager; :meth:`close` (also run when the
    verifier is garbage-collected and at interpreter exit) kills every worker process. A closed
    verifier still answers; it starts a new pool if it needs one.
    """

    def __init__(
        self,
        *,
        timeout: float = 3.0,
        workers: int = DEFAULT_WORKERS,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
        max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS,
        symbolic: bool = True,
        cache_size: int = 65_536,
        memory_mb: int | None = 2048,
        fast_path: bool = True,
        start_timeout: float = 60.0,
        wall_timeout: float | None = None,
        rel_tol: float | None = None,
        unboxed: str = "off",
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 CPU seconds, got {timeout!r}")
        if wall_timeout is not None and not wall_timeout >= timeout:
            raise ValueError(f"wall_timeout must be >= timeout ({timeout!r} s), got {wall_timeout!r}")
        if rel_tol is not None and not 0 <= rel_tol < 1:
            raise ValueError(f"rel_tol must be in [0, 1) or None, got {rel_tol!r}")
        if unboxed not in UNBOXED_MODES:
            raise ValueError(f"unboxed must be one of {', '.join(UNBOXED_MODES)}, got {unboxed!r}")
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers!r}")
        self.timeout = float(timeout)
        self.wall_timeout = float(wall_timeout) if wall_timeout is not None else 20 * self.timeout + 10
        self.rel_tol = float(rel_tol) if rel_tol else None
        self.unboxed = unboxed
        self.workers = int(workers)
        self.max_text_chars = int(max_text_chars)
        self.max_answer_chars = int(max_answer_chars)
        self.symbolic = bool(symbolic)
        self.fast_path = bool(fast_path)
        self.cache_size = int(cache_size)
        self.memory_mb = memory_mb
        self.start_timeout = float(start_timeout)
        self._cache: OrderedDict[tuple[str, str], tuple[bool, str]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._pool: _Pool | None = None
        self._pool_lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None
        self._stats_lock = threading.Lock()
        self.stats = {"pairs": 0, "fast": 0, "cache_hits": 0, "symbolic": 0, "timeouts": 0, "crashes": 0}

    # -- public API ---------------------------------------------------------------------
    def verify(self, text: str, reference: str) -> Verification:
        """Judge one model text against its reference answer."""
        return self.verify_batch([(text, reference)])[0]

    def verify_batch(self, pairs: Iterable[tuple[str, str]]) -> list[Verification]:
        """Judge many (text, reference) pairs; symbolic checks run in parallel on the pool.

        Results come back in input order. Each answer's symbolic check has its own budget of
        ``timeout`` CPU seconds, counted by its worker from the moment it reads the answer
        (``wall_timeout`` wall-clock seconds at most, from the moment it is sent).
        """
        results: list[Verification | None] = []
        pending: list[tuple[int, str, str, str]] = []  # (index, extracted, reference, its answer)
        for text, reference in pairs:
            v, extracted, ref = self._fast(text, reference)
            if v is None:
                pending.append((len(results), extracted, "" if reference is None else str(reference), ref))
            results.append(v)
        with self._stats_lock:
            self.stats["pairs"] += len(results)
            self.stats["fast"] += len(results) - len(pending)
        if pending:
            decided = self._symbolic([(e, r, a) for _, e, r, a in pending])
            for (i, *_rest), v in zip(pending, decided):
                results[i] = v
        return results  # type: ignore[return-value]

    async def averify(self, text: str, reference: str) -> Verification:
        """:meth:`verify` without blocking the event loop (runs in a thread)."""
        return await asyncio.to_thread(self.verify, text, reference)

    async def averify_batch(self, pairs: Sequence[tuple[str, str]]) -> list[Verification]:
        """:meth:`verify_batch` without blocking the event loop (runs in a thread)."""
        return await asyncio.to_thread(self.verify_batch, list(pairs))

    def start(self) -> MathVerifier:
        """Start the worker processes now instead of at the first symbolic check, and return
        ``self``. They import their maths libraries in the background, so a caller that starts the
        verifier before loading a model (``thinksolve eval``) pays that while the model loads.
        Returns at once; a worker that is not ready yet is waited for when it is first needed."""
        pool = self._get_pool()
        pool.release(pool.acquire(pool.size, block=False))
        return self

    def worker_pids(self) -> list[int]:
        """Process ids of the live worker processes (empty before the first symbolic check)."""
        pool = self._pool
        return pool.pids() if pool is not None else []

    def close(self) -> None:
        """Kill every worker process. Idempotent; the verifier stays usable afterwards."""
        with self._pool_lock:
            pool, fin = self._pool, self._finalizer
            self._pool, self._finalizer = None, None
        if fin is not None:
            fin()  # runs pool.close once, whoever gets there first
        elif pool is not None:
            pool.close()

    def __enter__(self) -> MathVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- layers ---------------------------------------------------------------------------
    @staticmethod
    def _reference_answer(reference: str) -> str:
        """The answer a reference states: itself, or the content of its boxes. A reference with
        several boxes (``\\boxed{3}`` and ``\\boxed{-5}``) states all of them, joined
        (``"3, -5"``); repeated boxes count once."""
        if "\\boxed" in reference or "\\fbox" in reference:
            boxes, seen = [], set()
            for _a, _b, content in find_boxed(reference):
                content = content.strip()
                key = normalize_answer(content)
                if content and key not in seen:
                    seen.add(key)
                    boxes.append(content)
            if boxes:
                return ", ".join(boxes)
        return reference

    def _fast(self, text: str, reference: str) -> tuple[Verification | None, str, str]:
        """String layer: a final verdict, or ``(None, extracted, reference answer)`` to defer to
        the symbolic one."""
        reference = "" if reference is None else str(reference)
        if not isinstance(text, str):
            return Verification.judged(False, None, "parse-error", reference), "", ""
        ref = self._reference_answer(reference)
        extracted = extract_answer(text, max_chars=self.max_text_chars, parts=count_parts(ref), unboxed=self.unboxed,
                                   equations="=" in ref)
        if extracted is None:
            return Verification.judged(False, None, "no-answer", reference), "", ref
        if len(extracted) > self.max_answer_chars:
            return Verification.judged(False, extracted[:200], "too-long", reference), "", ref
        if self.fast_path:
            a, b = normalize_answer(extracted), normalize_answer(ref)
            if a == b or (self.rel_tol and _numbers_close(a, b, self.rel_tol)):
                return Verification.judged(True, extracted, "match", reference), extracted, ref
        if not self.symbolic or self.workers == 0:
            return Verification.judged(False, extracted, "mismatch", reference), extracted, ref
        return None, extracted, ref

    def _get_pool(self) -> _Pool:
        with self._pool_lock:
            pool = self._pool
            if pool is not None and pool.owner_pid != os.getpid():
                pool = None  # inherited through fork: leave the parent's workers alone
            if pool is None or pool.closed:
                config = {
                    "memory_mb": self.memory_mb,
                    "self_destruct_s": self.wall_timeout + 5,
                    "cpu_s": self.timeout,
                    "cache_size": 4096,
                }
                pool = _Pool(self.workers, config)
                self._pool = pool
                self._finalizer = weakref.finalize(self, pool.close)
            return pool

    def _cache_get(self, key: tuple[str, str]) -> tuple[bool, str] | None:
        if not self.cache_size:
            return None
        with self._cache_lock:
            got = self._cache.get(key)
            if got is not None:
                self._cache.move_to_end(key)
            return got

    def _cache_put(self, key: tuple[str, str], verdict: tuple[bool, str]) -> None:
        if not self.cache_size:
            return
        with self._cache_lock:
            self._cache[key] = verdict
            self._cache.move_to_end(key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _symbolic(self, pairs: list[tuple[str, str, str]]) -> list[Verification]:
        """Symbolic layer over ``(extracted, reference, reference answer)`` triples the string
        layer left open."""
        keys = [(_engine_form(e), _engine_form(a)) for e, _r, a in pairs]
        verdicts: dict[tuple[str, str], tuple[bool, str]] = {}
        todo: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()
        hits = 0
        for key in keys:
            if key in seen:
                continue
            seen.add(key)
            got = self._cache_get(key)
            if got is not None:
                verdicts[key] = got
                hits += 1
            else:
                todo.append(key)
        if todo:
            decided = self._run(todo)
            for key, verdict in decided.items():
                verdicts[key] = verdict
                self._cache_put(key, verdict)
        with self._stats_lock:
            self.stats["cache_hits"] += hits
            self.stats["symbolic"] += len(todo)
        out = []
        for (extracted, reference, _answer), key in zip(pairs, keys):
            # Every task gets a verdict; only a close() racing this call could leave one open.
            ok, reason = verdicts.get(key, (False, "timeout"))
            out.append(Verification.judged(ok, extracted, reason, reference))
        return out

    def _run(self, tasks: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[bool, str]]:
        """Run ``(pred, gold)`` tasks on the pool under the per-answer deadline."""
        pool = self._get_pool()
        queue = deque(tasks)
        results: dict[tuple[str, str], tuple[bool, str]] = {}
        held: list[_Worker] = []
        retried: set[tuple[str, str]] = set()
        next_id = 0
        poller = select.poll()
        try:
            while queue or any(w.state == "busy" for w in held):
                # 1. Enough workers for what is queued (block only while holding none).
                spare = sum(w.state in ("idle", "starting") for w in held)
                if queue and spare < len(queue):
                    held += pool.acquire(len(queue) - spare, block=not held)
                if not held:  # the pool was closed under us
                    for key in queue:
                        results[key] = (False, "timeout")
                    queue.clear()
                    break
                # 2. Hand queued tasks to idle workers.
                now = time.monotonic()
                for w in list(held):
                    if w.state == "idle" and queue:
                        key = queue.popleft()
                        try:
                            w.send({"id": next_id, "pred": key[0], "gold": key[1], "cpu": self.timeout,
                                    "rel_tol": self.rel_tol})
                        except (OSError, ValueError):  # died while idle
                            queue.appendleft(key)
                            self._swap(pool, held, w)
                            continue
                        # The CPU budget is the worker's (ITIMER_PROF); this is the wall-clock net.
                        w.state, w.task, w.deadline = "busy", (next_id, key), now + self.wall_timeout
                        next_id += 1
                # 3. Wait for an answer, a ready line or the next deadline.
                waiting = [w for w in held if w.state in ("busy", "starting")]
                if not waiting:
                    continue
                due = [w.deadline for w in waiting if w.state == "busy"]
                due += [w.spawned_at + self.start_timeout for w in waiting if w.state == "starting"]
                wait_ms = max(0.0, min(due) - time.monotonic()) * 1000
                by_fd = {w.fd: w for w in waiting}
                for fd in by_fd:
                    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
                try:
                    events = poller.poll(wait_ms + 1)
                finally:
                    for fd in by_fd:
                        poller.unregister(fd)
                for fd, _ev in events:
                    w = by_fd[fd]
                    msgs = w.pump()
                    if msgs is None:  # the process died
                        if w.state == "starting" and not pool.closed:
                            raise RuntimeError(
                                f"verifier worker exited during start-up (exit code {w.popen.poll()}); "
                                f"check that `{sys.executable} -c 'import math_verify'` works"
                            )
                        if w.state == "busy" and w.exit_code() in (-signal.SIGVTALRM, -signal.SIGXCPU, -signal.SIGPROF):
                            # The kernel ended it: this answer used up its CPU budget in C code.
                            results[w.task[1]] = (False, "timeout")
                            with self._stats_lock:
                                self.stats["timeouts"] += 1
                        elif w.state == "busy":
                            # A worker killed from outside (OOM killer, an idle reaper) gets its
                            # answer retried once; one that dies on the same answer twice was
                            # killed by it (allocation failure in C code): a parse error.
                            key = w.task[1]
                            with self._stats_lock:
                                self.stats["crashes"] += 1
                            if key in retried:
                                results[key] = (False, "parse-error")
                            else:
                                retried.add(key)
                                queue.appendleft(key)
                        self._swap(pool, held, w)
                        continue
                    for msg in msgs:
                        if "ready" in msg and w.state == "starting":
                            w.state = "idle"
                        elif w.state == "busy" and msg.get("id") == w.task[0]:
                            results[w.task[1]] = (bool(msg.get("ok")), str(msg.get("reason", "parse-error")))
                            if results[w.task[1]][1] == "timeout":  # the worker stopped itself
                                with self._stats_lock:
                                    self.stats["timeouts"] += 1
                            w.state, w.task = "idle", None
                # 4. Wall-clock net (the CPU budget itself is enforced inside the worker).
                now = time.monotonic()
                for w in list(held):
                    if w.state == "busy" and now >= w.deadline:
                        results[w.task[1]] = (False, "timeout")
                        with self._stats_lock:
                            self.stats["timeouts"] += 1
                        self._swap(pool, held, w)
                    elif w.state == "starting" and now >= w.spawned_at + self.start_timeout:
                        raise RuntimeError(f"verifier worker did not start within {self.start_timeout:.0f} s")
                # 5. Give back what this thread no longer needs.
                if not queue:
                    spare_workers = [w for w in held if w.state in ("idle", "starting")]
                    if spare_workers:
                        held = [w for w in held if w not in spare_workers]
                        pool.release(spare_workers)
        finally:
            for w in [w for w in held if w.state == "busy"]:
                # Only on an exception: this answer will never be read, so the worker goes.
                self._swap(pool, held, w)
            pool.release([w for w in held if w.state in ("idle", "starting")])
        return results

    @staticmethod
    def _swap(pool: _Pool, held: list[_Worker], w: _Worker) -> None:
        """Replace ``w`` (killed) by a fresh worker in ``held``."""
        held.remove(w)
        fresh = pool.replace(w)
        if fresh is not None:
            held.append(fresh)
