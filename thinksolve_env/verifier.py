"""Answer verification: model text in, a ±1 reward and the reason out.

Layers, cheapest first:

1. **Extraction** (:func:`extract_answer`): the last ``\\boxed{...}`` / ``\\fbox{...}`` (nested
   braces balanced by a linear scan), else a final-answer phrase ("the answer is ...",
   "Final answer: ..."). Text and answers are bounded in size before anything looks at them.
2. **Normalised string comparison** (:func:`normalize_answer`): strips ``$``, ``\\left``/
   ``\\right``, spacing commands, ``\\text{}`` wrappers, trailing punctuation, ``^\\circ``, ...
   Equal normal forms are accepted at once.
3. **Symbolic equivalence** (:meth:`MathVerifier._symbolic`): a hook for the slower engine.
   The first layer ships without it (``symbolic=False`` behaviour); the isolated worker-process
   engine plugs in here without changing the public API.

Model text is never evaluated as code: no ``eval``/``exec``/``sympify``/``parse_expr``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Iterable, Protocol, Sequence, runtime_checkable

__all__ = [
    "Verification",
    "Verifier",
    "MathVerifier",
    "extract_answer",
    "normalize_answer",
    "REASONS",
]

#: Every ``Verification.reason`` the verifiers emit.
REASONS = ("match", "mismatch", "no-answer", "parse-error", "timeout", "too-long")

#: Text longer than this is cut (its *end* is kept: the answer is at the end) before extraction.
DEFAULT_MAX_TEXT_CHARS = 200_000
#: An extracted answer longer than this is not compared at all (``reason="too-long"``).
DEFAULT_MAX_ANSWER_CHARS = 1_000


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
    def judged(cls, correct: bool, extracted: str | None, reason: str, reference: str = "") -> "Verification":
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
_PHRASE_RE = re.compile(
    r"(?:final\s+answer|the\s+answer)\s*(?:is|:|=)?\s*:?\s*(.+)",
    re.IGNORECASE,
)


def _balanced(text: str, open_idx: int) -> tuple[str, int] | None:
    """Content of the brace group whose ``{`` is at ``open_idx`` and the index after it."""
    depth = 0
    i = open_idx
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "{}":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[open_idx + 1 : i], i + 1
        i += 1
    return None


def find_boxed(text: str) -> list[tuple[int, int, str]]:
    """All complete ``\\boxed{}``/``\\fbox{}`` groups as ``(start, end, content)``, in order.

    Nested boxes count once (the outer one). Unbalanced groups are skipped. Linear-ish time:
    the scan resumes after each complete group.
    """
    out = []
    pos = 0
    while True:
        m = _BOX_RE.search(text, pos)
        if m is None:
            break
        got = _balanced(text, m.end() - 1)
        if got is None:
            # Unbalanced: this box never closes, and neither can any later box (they would be
            # nested inside it), except ones that appear after it at depth 0, which we cannot
            # tell apart cheaply; skip past this opener and keep looking.
            pos = m.end()
            continue
        content, end = got
        out.append((m.start(), end, content))
        pos = end
    return out


def extract_answer(text: str, *, max_chars: int = DEFAULT_MAX_TEXT_CHARS) -> str | None:
    """The answer a model text commits to, or ``None``.

    The last ``\\boxed{...}``/``\\fbox{...}`` wins; without one, a final-answer phrase ("The
    final answer is 5.", "Final answer: 5") on the last line that has one.
    """
    if not isinstance(text, str) or not text:
        return None
    if len(text) > max_chars:
        text = text[-max_chars:]
    boxes = find_boxed(text)
    if boxes:
        return boxes[-1][2].strip()
    m = None
    for m in _BOX_SPACE_RE.finditer(text):
        pass
    if m is not None:
        return m.group(1).strip()
    last = None
    for line in text.splitlines():
        pm = _PHRASE_RE.search(line)
        if pm:
            last = pm.group(1)
    if last is None:
        return None
    last = last.strip().strip("$").strip()
    last = re.sub(r"[.\s]+$", "", last)
    return last or None


# --------------------------------------------------------------------------- normalisation

_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_SPACING_RE = re.compile(r"\\[,;:! ]|\\quad|\\qquad|~")
_UNITS_WORDS = (
    "degrees", "degree", "units", "unit", "cm", "meters", "meter", "inches", "inch", "feet",
    "foot", "dollars", "dollar", "cents", "cent", "square", "sq",
)


def _fullwidth_to_ascii(s: str) -> str:
    # NFKC maps full-width digits/letters (U+FF10..) and other compatibility forms to ASCII.
    return unicodedata.normalize("NFKC", s)


def normalize_answer(s: str) -> str:
    """A canonical string form of an answer for the fast equality path.

    Conservative: two answers with equal normal forms are equal; unequal forms decide nothing
    on their own (the symbolic layer may still find them equal).
    """
    s = _fullwidth_to_ascii(s).replace("\x00", "")
    s = s.strip()
    # Outer math delimiters.
    s = s.strip("$")
    s = s.replace("\\(", "").replace("\\)", "").replace("\\[", "").replace("\\]", "")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("\\displaystyle", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = _SPACING_RE.sub("", s)
    # \text{...} and friends → their content (repeat for nesting).
    for _ in range(4):
        new = _TEXT_CMD_RE.sub(r"\1", s)
        if new == s:
            break
        s = new
    s = s.replace("^\\circ", "").replace("^{\\circ}", "").replace("\\circ", "").replace("°", "")
    s = s.replace("\\%", "").replace("%", "")
    s = s.replace("\\$", "")
    s = s.strip()
    # Trailing sentence punctuation.
    s = re.sub(r"[.\s]+$", "", s)
    # "x = 5" → "5" when the left side is a single variable name.
    m = re.fullmatch(r"[A-Za-z](?:_\{?\w+\}?)?\s*=\s*(.+)", s)
    if m and "=" not in m.group(1):
        s = m.group(1)
    # Trailing unit words ("10 cm", "5 degrees").
    low = s.lower()
    for w in _UNITS_WORDS:
        if low.endswith(" " + w) or (low.endswith(w) and low[: -len(w)].strip().replace(".", "").isdigit()):
            s = s[: len(s) - len(w)].strip()
            break
    s = re.sub(r"\s+", "", s)
    # Thousands separators in a plain number: 1,000,000 → 1000000.
    if re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s) or re.fullmatch(r"-?\d{1,3}(?:\{,\}\d{3})+(?:\.\d+)?", s):
        s = s.replace("{,}", "").replace(",", "")
    # Plain decimal numbers: drop trailing zeros / leading plus.
    if re.fullmatch(r"[+-]?\d+\.\d+", s):
        s = s.rstrip("0").rstrip(".")
    if s.startswith("+") and re.fullmatch(r"\+\d+(?:\.\d+)?", s):
        s = s[1:]
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt(\d)", r"\\sqrt{\1}", s)
    # Text answers compare case-insensitively.
    return s.lower() if re.fullmatch(r"[A-Za-z ]+", s) else s


# --------------------------------------------------------------------------- verifier


class MathVerifier:
    """Checks math answers against references and returns :class:`Verification` objects.

    Args:
        timeout: wall-clock seconds allowed for the symbolic check of one answer.
        workers: worker processes for symbolic checks (0 = decide in-process; only the string
            layer runs in-process).
        max_text_chars: model text beyond this is cut from the front before extraction.
        max_answer_chars: extracted answers beyond this are rejected with ``reason="too-long"``.
        symbolic: whether to consult the symbolic layer when the string forms differ.

    Usable as a context manager; :meth:`close` ends any worker processes.
    """

    def __init__(
        self,
        *,
        timeout: float = 3.0,
        workers: int = 0,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
        max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS,
        symbolic: bool = True,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers!r}")
        self.timeout = float(timeout)
        self.workers = int(workers)
        self.max_text_chars = int(max_text_chars)
        self.max_answer_chars = int(max_answer_chars)
        self.symbolic = bool(symbolic)

    # -- public API ---------------------------------------------------------------------
    def verify(self, text: str, reference: str) -> Verification:
        return self.verify_batch([(text, reference)])[0]

    def verify_batch(self, pairs: Iterable[tuple[str, str]]) -> list[Verification]:
        results: list[Verification | None] = []
        pending: list[tuple[int, str, str]] = []  # (index, extracted, reference)
        for text, reference in pairs:
            v, extracted = self._fast(text, reference)
            if v is None:
                pending.append((len(results), extracted, reference))
            results.append(v)
        if pending:
            decided = self._symbolic([(e, r) for _, e, r in pending])
            for (i, extracted, reference), v in zip(pending, decided):
                results[i] = v
        return results  # type: ignore[return-value]

    def close(self) -> None:
        """Release resources (worker processes in the isolated engine)."""

    def __enter__(self) -> "MathVerifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- layers ---------------------------------------------------------------------------
    def _fast(self, text: str, reference: str) -> tuple[Verification | None, str]:
        """String layer: a final verdict, or ``(None, extracted)`` to defer to the symbolic one."""
        reference = "" if reference is None else str(reference)
        if not isinstance(text, str):
            return Verification.judged(False, None, "parse-error", reference), ""
        extracted = extract_answer(text, max_chars=self.max_text_chars)
        if extracted is None:
            return Verification.judged(False, None, "no-answer", reference), ""
        if len(extracted) > self.max_answer_chars:
            return Verification.judged(False, extracted[:200], "too-long", reference), ""
        ref = extract_answer(reference) if "\\boxed" in reference else reference
        ref = ref if ref is not None else reference
        if normalize_answer(extracted) == normalize_answer(ref):
            return Verification.judged(True, extracted, "match", reference), extracted
        if not self.symbolic:
            return Verification.judged(False, extracted, "mismatch", reference), extracted
        return None, extracted

    def _symbolic(self, pairs: list[tuple[str, str]]) -> list[Verification]:
        """Symbolic layer over ``(extracted, reference)`` pairs the string layer left open.

        First layer: no symbolic engine yet, so unequal normal forms are a mismatch.
        """
        return [Verification.judged(False, e, "mismatch", r) for e, r in pairs]
