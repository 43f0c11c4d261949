"""Problems: the :class:`Problem` record, loaders, and the built-in ``arith:`` task.

``load_problems(source)`` understands

* a path to a ``.jsonl`` / ``.json`` / ``.parquet`` file whose records have ``problem`` (or
  ``question``) and ``answer`` fields (an ``id`` field is used when present);
* ``"arith:<key>=<value>,..."`` — the procedural multi-step arithmetic task (see
  :func:`arith_problems`);
* ``"hf:<dataset>[:<split>]"`` or a bare ``owner/name`` that is not a file — a Hugging Face
  dataset, when the ``datasets`` package is installed and the hub is reachable;
* an iterable of :class:`Problem` objects or dicts (validated the same way).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Problem", "load_problems", "arith_problems", "parse_arith_spec", "ProblemFormatError", "check_lengths",
           "MAX_PROBLEM_CHARS", "MAX_ANSWER_CHARS"]


class ProblemFormatError(ValueError):
    """A problem source could not be read; the message names the file, line or field."""


@dataclass
class Problem:
    """One task: ``problem`` text, reference ``answer`` (a string), free-form ``meta``."""

    id: str
    problem: str
    answer: str
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.problem, str) or not self.problem.strip():
            raise ProblemFormatError(f"problem {self.id!r}: 'problem' must be a non-empty string")
        if isinstance(self.answer, (int, float)) and not isinstance(self.answer, bool):
            self.answer = str(self.answer)
        if not isinstance(self.answer, str) or not self.answer.strip():
            raise ProblemFormatError(f"problem {self.id!r}: 'answer' must be a non-empty string")
        self.id = str(self.id)


#: Longest problem text :func:`load_problems` and ``ThinkSolveEnv`` accept, in characters (about
#: 4,000 tokens; the longest problem of the bundled MATH, AIME, AMC, Gaokao and Minerva sets has
#: 4,309). A longer one is refused, not cut: pass ``max_chars`` (``0``: no limit) to change it.
MAX_PROBLEM_CHARS = 16_000
#: Longest reference answer accepted, in characters (the bundled sets' longest has 210).
MAX_ANSWER_CHARS = 2_000


def check_lengths(problems: Iterable[Problem], max_chars: int | None = None, where: str = "the problems",
                  knob: str = "load_problems(..., max_chars=0)") -> None:
    """Refuse (:class:`ProblemFormatError`, naming it) the first problem longer than ``max_chars``
    (default :data:`MAX_PROBLEM_CHARS`, ``0``: no limit) or whose reference answer is longer than
    :data:`MAX_ANSWER_CHARS`."""
    limit = MAX_PROBLEM_CHARS if max_chars is None else max_chars
    if not isinstance(limit, int) or limit < 0:
        raise ValueError(f"max_chars must be a non-negative integer or None, got {max_chars!r}")
    for p in problems:
        if limit and len(p.problem) > limit:
            raise ProblemFormatError(
                f"{where}: problem {p.id!r} is {len(p.problem):,} characters long, over the limit of {limit:,} "
                f"(MAX_PROBLEM_CHARS in thinksolve_env.problems): refused rather than cut, since a cut problem is "
                f"another problem; shorten or drop it, or lift the limit with {knob}")
        if len(p.answer) > MAX_ANSWER_CHARS:
            raise ProblemFormatError(
                f"{where}: problem {p.id!r} has a reference answer of {len(p.answer):,} characters, over the limit "
                f"of {MAX_ANSWER_CHARS:,} (MAX_ANSWER_CHARS): a final answer is a value or an expression, not a text")


# --------------------------------------------------------------------------- records


def _from_record(rec: Any, where: str, default_id: str) -> Problem:
    if not isinstance(rec, dict):
        raise ProblemFormatError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    text = rec.get("problem", rec.get("question"))
    if text is None:
        raise ProblemFormatError(f"{where}: record has no 'problem' (or 'question') field; fields: {sorted(rec)}")
    if "answer" not in rec or rec["answer"] is None:
        raise ProblemFormatError(f"{where}: record has no 'answer' field; fields: {sorted(rec)}")
    meta = {k: v for k, v in rec.items() if k not in ("id", "problem", "question", "answer")}
    try:
        return Problem(id=str(rec.get("id", default_id)), problem=text, answer=rec["answer"], meta=meta)
    except ProblemFormatError as e:
        raise ProblemFormatError(f"{where}: {e}") from None


def _read_jsonl(path: Path) -> list[Problem]:
    out = []
    with path.open("r", encoding="utf-8-sig") as f:  # a byte-order mark at the start is not an error
        for lineno, line in enumerate(f, 1):
            text = line.rstrip("\r\n")  # the column is the line's own: an error at its end is said so
            if not text.strip():
                continue
            try:
                rec = json.loads(text)
            except json.JSONDecodeError as e:
                at = "at the end of the line" if e.pos >= len(text.rstrip()) else f"at column {e.pos + 1}"
                raise ProblemFormatError(f"{path}:{lineno}: not valid JSON ({e.msg} {at})") from None
            out.append(_from_record(rec, f"{path}:{lineno}", f"{path.stem}-{len(out)}"))
    return out


def _read_json(path: Path) -> list[Problem]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ProblemFormatError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    if isinstance(data, dict):
        data = data.get("data", data.get("problems", [data]))
    if not isinstance(data, list):
        raise ProblemFormatError(f"{path}: expected a list of records")
    return [_from_record(r, f"{path}[{i}]", f"{path.stem}-{i}") for i, r in enumerate(data)]


def _read_parquet(path: Path) -> list[Problem]:
    try:
        import pyarrow.parquet as pq  # noqa: PLC0415 (pyarrow is optional)
    except ImportError:
        raise ImportError(
            f"reading {path} needs pyarrow: pip install 'thinksolve[parquet]' (or pip install pyarrow)"
        ) from None
    rows = pq.read_table(path).to_pylist()
    return [_from_record(r, f"{path} row {i}", f"{path.stem}-{i}") for i, r in enumerate(rows)]


def _read_hf(name: str) -> list[Problem]:
    dataset, _, split = name.partition(":")
    try:
        import datasets  # type: ignore  # noqa: PLC0415 (datasets is optional)
    except ImportError:
        raise ImportError(
            f"{name!r} is not a file, so it was read as a Hugging Face dataset name, which needs "
            "the `datasets` package: pip install 'thinksolve[datasets]'"
        ) from None
    try:
        ds = datasets.load_dataset(dataset, split=split or "test")
    except Exception as e:  # network, unknown dataset, ...
        raise ProblemFormatError(
            f"could not load Hugging Face dataset {dataset!r} (split {split or 'test'!r}): {e}"
        ) from e
    return [_from_record(dict(r), f"{dataset}[{i}]", f"{dataset.split('/')[-1]}-{i}") for i, r in enumerate(ds)]


# --------------------------------------------------------------------------- arith task

_ARITH_DEFAULTS = {"n": 1000, "difficulty": 2, "seed": 0, "split": "train"}
#: difficulty → (number of operations, operand range of the start value, of the others)
_ARITH_LEVELS = {
    1: (2, 9, 9),
    2: (3, 20, 9),
    3: (3, 50, 20),
    4: (4, 99, 20),
    5: (5, 99, 50),
}


def parse_arith_spec(spec: str) -> dict[str, Any]:
    """``"arith:n=200,difficulty=3,split=test"`` → a dict of settings (with defaults).

    Keys: ``n`` (count), ``difficulty`` (1–5), ``seed`` (int), ``split`` (``train``/``test``:
    disjoint random streams), ``steps`` (operations; overrides the difficulty's), ``brief``
    (0/1: give the Thinker the worked steps as a briefing only it sees, ``meta["briefing"]``),
    ``digit`` (0/1: keep only problems whose answer is a single digit, 0–9), ``relay`` (0/1: the
    three-role variant, two-digit answers split between two briefings, ``meta["briefings"]``).
    """
    if not spec.startswith("arith:"):
        raise ValueError(f"not an arith spec: {spec!r}")
    cfg: dict[str, Any] = dict(_ARITH_DEFAULTS)
    body = spec[len("arith:"):].strip()
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"arith spec {spec!r}: {part!r} is not key=value")
        key = key.strip()
        if key not in ("n", "difficulty", "seed", "split", "steps", "brief", "digit", "relay"):
            raise ValueError(
                f"arith spec {spec!r}: unknown key {key!r} (known: n, difficulty, seed, split, steps, brief, digit, relay)"
            )
        if key == "split":
            if value not in ("train", "test"):
                raise ValueError(f"arith spec {spec!r}: split must be 'train' or 'test', got {value!r}")
            cfg[key] = value
        else:
            try:
                cfg[key] = int(value)
            except ValueError:
                raise ValueError(f"arith spec {spec!r}: {key} must be an integer, got {value!r}") from None
    if cfg["difficulty"] not in _ARITH_LEVELS:
        raise ValueError(f"arith spec {spec!r}: difficulty must be 1..5, got {cfg['difficulty']}")
    if cfg["n"] < 1:
        raise ValueError(f"arith spec {spec!r}: n must be >= 1, got {cfg['n']}")
    if "steps" in cfg and not 1 <= cfg["steps"] <= 10:
        raise ValueError(f"arith spec {spec!r}: steps must be 1..10, got {cfg['steps']}")
    for flag in ("brief", "digit", "relay"):
        if cfg.get(flag, 0) not in (0, 1):
            raise ValueError(f"arith spec {spec!r}: {flag} must be 0 or 1, got {cfg[flag]}")
        if flag in cfg:
            cfg[flag] = bool(cfg[flag])
    if cfg.get("relay") and (cfg.get("brief") or cfg.get("digit")):
        raise ValueError(f"arith spec {spec!r}: relay=1 has its own briefings and two-digit answers: it does not combine "
                         "with brief=1 or digit=1")
    return cfg


def _text_bucket(text: str, buckets: int = 5) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % buckets


def arith_problems(n: int = 1000, *, difficulty: int = 2, seed: int = 0, split: str = "train",
                   steps: int | None = None, brief: bool = False, digit: bool = False,
                   relay: bool = False) -> list[Problem]:
    """Multi-step integer arithmetic, e.g. ``Compute ((12 + 7) * 3) - 5.`` → ``52``.

    Each problem chains ``steps`` operations (+, −, ×) onto a start value, so writing down the
    intermediate results (``meta["steps"]``: ``["12 + 7 = 19", "19 * 3 = 57", "57 - 5 = 52"]``)
    is exactly the kind of thought that helps a Solver. Deterministic in ``(seed, split)``;
    the ``test`` split uses a disjoint random stream and drops any problem text that the
    ``train`` stream of the same size would contain.

    ``brief=True`` (spec ``brief=1``) is the *briefed* variant, the laptop testbed where the
    Thinker matters: ``meta["briefing"]`` holds the worked steps (``"12 + 7 = 19; 19 * 3 = 57;
    57 - 5 = 52"``), which the env shows to the Thinker alone. A thought that relays them gives
    the Solver what it cannot compute itself; one that garbles them misleads it. The problems
    (and the train/test split) are the same as without ``brief``.

    ``digit=True`` keeps only the problems whose answer is one digit (0–9). That space is small
    (about 1,250 distinct problems at difficulty 1), so its split is by problem text instead: a
    problem is ``test`` when a hash of its text falls in one bucket of five, ``train`` otherwise,
    which keeps the two splits disjoint at any ``n`` (problems repeat within a split).

    ``relay=True`` (spec ``relay=1``) is the laptop testbed of a three-role chain (planner →
    relay → solver) where the middle role matters: only problems with a two-digit answer
    (10–99) are kept, split by text as with ``digit``, and ``meta["briefings"]`` holds one
    briefing per chain position: the first role sees the answer's tens digit (``"tens digit:
    4"``), the middle one its ones digit (``"ones digit: 7"``), the last role nothing. Neither
    briefed role can give the answer alone (the other digit is a guess among ten): the middle
    role has to combine the first role's digit with its own and hand both on, and without it
    (or without the first role) the team guesses.
    """
    if relay and (brief or digit):
        raise ValueError("arith: relay=True has its own briefings and two-digit answers; it does not combine with "
                         "brief or digit")
    n_ops, start_hi, other_hi = _ARITH_LEVELS[difficulty]
    n_ops = steps or n_ops
    stream = 0 if split == "train" else 1
    rng = random.Random(f"thinksolve-arith/{seed}/{0 if digit or relay else stream}/{difficulty}/{n_ops}"
                        + ("/relay" if relay else ""))

    def make(r: random.Random) -> tuple[str, int, list[str]]:
        value = r.randint(2, start_hi)
        expr = str(value)
        trace = []
        for k in range(n_ops):
            op = r.choice("+-*")
            b = r.randint(2, 9) if op == "*" else r.randint(1, other_hi)
            new = value + b if op == "+" else value - b if op == "-" else value * b
            trace.append(f"{value} {op} {b} = {new}")
            expr = f"({expr}) {op} {b}" if k > 0 else f"{expr} {op} {b}"
            value = new
        return f"Compute {expr}.", value, trace

    exclude: set[str] = set()
    by_text = digit or relay  # a small space of problems: split by a hash of the text
    if split == "test" and not by_text:
        train_rng = random.Random(f"thinksolve-arith/{seed}/0/{difficulty}/{n_ops}")
        exclude = {make(train_rng)[0] for _ in range(max(n, 1000))}
    out = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > (500 if by_text else 50) * n + 1000:
            raise ValueError(f"arith: could not draw {n} distinct {split} problems at difficulty {difficulty}")
        text, answer, trace = make(rng)
        if text in exclude or (digit and not 0 <= answer <= 9) or (relay and not 10 <= answer <= 99):
            continue
        if by_text and (_text_bucket(text) == 0) != (split == "test"):
            continue
        out.append(Problem(
            id=f"arith-{split}-{seed}-{len(out)}",
            problem=text,
            answer=str(answer),
            meta={"steps": trace, "difficulty": difficulty, "split": split,
                  **({"briefing": "; ".join(trace)} if brief else {}),
                  **({"briefings": [f"tens digit: {answer // 10}", f"ones digit: {answer % 10}", None]} if relay else {})},
        ))
    return out


# --------------------------------------------------------------------------- entry point


def load_problems(
    source: str | os.PathLike | Iterable[Problem | dict], *, limit: int | None = None, seed: int | None = None,
    max_chars: int | None = None,
) -> list[Problem]:
    """Load problems from a file, a task spec, a Hugging Face dataset or an iterable.

    A problem longer than ``max_chars`` characters (default :data:`MAX_PROBLEM_CHARS`; ``0``
    turns the check off) or a reference answer longer than :data:`MAX_ANSWER_CHARS` is refused
    with a :class:`ProblemFormatError` naming it: cutting it would pose another problem, and one
    such record makes every batch it joins slow.

    ``seed`` shuffles file/dataset records deterministically before ``limit`` is applied (and
    seeds the ``arith:`` generator when the spec gives no ``seed=``). Raises
    :class:`ProblemFormatError` (a ``ValueError``) naming the file and line or the missing
    field, and ``ValueError`` when the result would be empty.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    shuffled = False
    if isinstance(source, (str, os.PathLike)):
        s = os.fspath(source)
        path = Path(s)
        if s.startswith("arith:"):
            cfg = parse_arith_spec(s)
            if seed is not None and "seed=" not in s:
                cfg["seed"] = seed
            if limit is not None:
                cfg["n"] = min(cfg["n"], limit)
            problems = arith_problems(**cfg)
            shuffled = True
            where = s
        elif path.exists():
            suffix = path.suffix.lower()
            if suffix == ".jsonl":
                problems = _read_jsonl(path)
            elif suffix == ".json":
                problems = _read_json(path)
            elif suffix == ".parquet":
                problems = _read_parquet(path)
            else:
                raise ValueError(f"{path}: unsupported file type {suffix!r} (use .jsonl, .json or .parquet)")
            where = str(path)
        elif s.startswith("hf:") or ("/" in s and not s.startswith((".", "/")) and not path.suffix):
            problems = _read_hf(s[3:] if s.startswith("hf:") else s)
            where = s
        else:
            raise FileNotFoundError(
                f"problem source {s!r}: no such file, and not an 'arith:' spec or 'hf:<dataset>' name"
            )
    else:
        items = list(source)
        problems = [
            p if isinstance(p, Problem) else _from_record(p, f"item {i}", f"item-{i}") for i, p in enumerate(items)
        ]
        where = "the given iterable"
    if not problems:
        raise ValueError(f"no problems loaded from {where}: the problem list is empty")
    check_lengths(problems, max_chars, where)
    if seed is not None and not shuffled:
        problems = problems[:]
        random.Random(seed).shuffle(problems)
    if limit is not None:
        problems = problems[:limit]
    return problems
