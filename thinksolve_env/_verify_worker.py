"""Worker process for :class:`thinksolve_env.verifier.MathVerifier`'s symbolic layer (private).

The parent starts this file *as a script* (``python _verify_worker.py '<json config>'``), never
as ``thinksolve_env._verify_worker``: that way the worker imports only the math engine
(math-verify over latex2sympy2_extended and sympy), not the package, torch, or the parent's
``__main__``, and it starts in a few tenths of a second.

Protocol (no pickle anywhere; JSON cannot carry code):

* stdin: one JSON object a line, ``{"id": int, "pred": str, "gold": str, "cpu": float,
  "rel_tol": float | null}`` (``cpu``: the answer's CPU-time budget in seconds, default from
  the config; ``rel_tol``: optional relative tolerance for numbers).
* stdout: first ``{"ready": pid}`` once the engine is imported and warmed up, then one
  ``{"id": int, "ok": bool, "reason": str}`` a line per request, in order.
  Anything else that writes to fd 1 (a stray ``print``) is redirected to stderr, so it cannot
  corrupt the protocol.

Deadline: the answer's own CPU time, in two kernel-timed stages armed when the worker has read
the request (so reading it, start-up and warm-up are never counted, and however busy the
machine is, other processes cannot use the budget up):

1. ``ITIMER_PROF`` (process CPU time, user + system) fires ``SIGPROF`` after the budget
   ``"cpu"``; its handler raises :class:`OverBudget` (a ``BaseException``, so no ``except
   Exception`` in the engine swallows it) at the next Python bytecode, and the worker answers
   ``{"ok": false, "reason": "timeout"}`` and stays alive: no restart, no warm-up to pay.
2. ``ITIMER_VIRTUAL`` (user CPU time) fires ``SIGVTALRM``, left at its default action
   (terminate), after ``1.5 × budget + 0.5`` s: a computation stuck in C code that holds the
   GIL (a huge integer power) never reaches a bytecode boundary, so the kernel ends the worker.
   The parent sees it die by ``SIGVTALRM`` and scores the answer ``"timeout"``.
3. ``RLIMIT_CPU`` (user + system, whole seconds) is set to the CPU time used so far plus
   ``2 × budget + 1`` s, so time spent in the kernel on the answer's behalf (page faults of a
   huge allocation), which stage 2 does not count, also ends the worker (``SIGXCPU``).

Warm-up: before it says ``ready`` the worker judges a few pairs that pull in every lazily
imported part of the engine (polynomial simplification, intervals, sets, matrices, relations,
percentages), so the first real answer of a fresh or replacement worker costs what it costs any
later worker, not an import.

Other safety nets:

* ``RLIMIT_AS`` caps the address space (``memory_mb``), so a power tower that tries to build a
  gigabyte integer fails with ``MemoryError`` (or the process dies) instead of swapping the host.
* While a request runs, ``ITIMER_REAL`` is armed with ``SIGALRM`` left at its default action:
  if the parent ever disappears while the worker is inside C code, the worker still ends after
  ``self_destruct_s`` wall-clock seconds (far above any CPU budget; it is not the deadline).
* End of stdin (the parent closed the pipe or died) ends the worker.

Model text is never evaluated: parsing goes through math-verify's LaTeX extraction only
(``LatexExtractionConfig``; the ANTLR grammar of latex2sympy2_extended builds sympy objects
node by node). math-verify's ``ExprExtractionConfig`` is deliberately not used, because it
hands strings to sympy's ``parse_expr``, which is ``eval``. The one place the engine turns a
string into a number, ``sympy.Number(token)``, only ever sees a NUMBER token the lexer limited to
digits, separators and an exponent.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import signal
import sys
from functools import lru_cache


def _set_limits(memory_mb: int | None) -> None:
    if not memory_mb:
        return
    try:
        limit = int(memory_mb) * 1024 * 1024
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY and hard < limit:
            limit = hard
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ValueError, OSError):  # pragma: no cover - locked down
        pass


class Engine:
    """The symbolic judge: ``judge(pred, gold) -> (equal, reason)``; gold is the reference.

    Both strings are answers already taken out of the model text (no ``\\boxed{}`` around them)
    and bounded in size by the parent. Parsed forms are cached per string.
    """

    def __init__(self, cache_size: int = 4096) -> None:
        # the engine loads here, in the worker process, after main() has set its limits
        from math_verify import LatexExtractionConfig, parse, verify  # noqa: PLC0415

        # "Timeout is disabled ..." warnings: the deadline is the parent's job.
        logging.getLogger("math_verify").setLevel(logging.CRITICAL)
        config = [LatexExtractionConfig()]
        self._verify = verify

        @lru_cache(maxsize=cache_size)
        def parse_answer(s: str) -> tuple:
            # Wrapping in \boxed{} points math-verify's extractor at the whole answer (its
            # highest-priority anchor) instead of at whichever fragment its regexes like best.
            return tuple(parse("\\boxed{" + s + "}", extraction_config=config, parsing_timeout=None))

        self._parse = parse_answer

    def judge(self, pred: str, gold: str, rel_tol: float | None = None) -> tuple[bool, str]:
        """Whether ``pred`` equals ``gold``, and the reason: match, mismatch or parse-error.

        With ``rel_tol`` a number also matches a numeric reference when
        |pred − gold| ≤ rel_tol · max(|pred|, |gold|) (both real and finite).
        """
        try:
            g = self._parse(gold)
            p = self._parse(pred)
        except Exception:  # any engine failure on hostile text is a parse error
            return False, "parse-error"
        if not g or not p:
            return False, "parse-error"
        try:
            ok = bool(self._verify(list(g), list(p), timeout_seconds=None))
        except Exception:
            return False, "parse-error"
        if ok and self._order_lost(g, p):
            return False, "mismatch"
        if not ok and rel_tol:
            ok = self._close(g[0], p[0], float(rel_tol))
        if ok:
            return True, "match"
        # Only string fallbacks on the model side: the engine could not read the answer at all.
        if all(isinstance(x, str) for x in p):
            return False, "parse-error"
        return False, "mismatch"

    @staticmethod
    def _close(gold, pred, rel_tol: float) -> bool:
        """|pred − gold| ≤ rel_tol · max(|pred|, |gold|) for two real numbers (sympy objects
        without free symbols); anything else is not close. Runs under the CPU deadline."""
        from sympy import Expr  # noqa: PLC0415 (the engine loads in the worker, after its limits)

        try:
            if not (isinstance(gold, Expr) and isinstance(pred, Expr)):
                return False
            if gold.free_symbols or pred.free_symbols:
                return False
            a, b = complex(gold.evalf(30)), complex(pred.evalf(30))
        except Exception:  # not a number
            return False
        if a.imag or b.imag or a.real != a.real or b.real != b.real:
            return False
        a, b = a.real, b.real
        if a in (float("inf"), float("-inf")) or b in (float("inf"), float("-inf")):
            return False
        return abs(a - b) <= rel_tol * max(abs(a), abs(b))

    @staticmethod
    def _order_lost(gold: tuple, pred: tuple) -> bool:
        """True when the reference is an ordered tuple or an interval and the answer only an
        unordered set of values.

        math-verify lets a set stand for a tuple with the same elements, so ``\\{3,2,1\\}``
        would pass for the ordered triple ``(1,2,3)``, and ``\\{1,4\\}`` for ``(1,4)`` read as an
        open interval: rewards a policy could learn to farm. Sets of equations (``x=1, y=2``)
        keep their names, so they are left to math-verify.
        """
        # the engine loads in the worker, after its limits
        from sympy import Interval, Tuple  # noqa: PLC0415
        from sympy.core.relational import Relational  # noqa: PLC0415
        from sympy.sets.sets import FiniteSet  # noqa: PLC0415

        if not any(isinstance(x, (Tuple, Interval)) for x in gold):
            return False
        return any(
            isinstance(x, FiniteSet) and len(x) >= 2 and not all(isinstance(a, Relational) for a in x.args)
            for x in pred
        )


class OverBudget(BaseException):
    """Raised in the engine by ``SIGPROF`` once an answer has used its CPU budget."""


def _over_budget(signum, frame):  # the signal handler's signature
    raise OverBudget()


def _disarm() -> None:
    for timer in (signal.ITIMER_PROF, signal.ITIMER_VIRTUAL, signal.ITIMER_REAL):
        signal.setitimer(timer, 0)
    _cpu_rlimit(None)


def _cpu_rlimit(extra: float | None) -> None:
    """``RLIMIT_CPU`` at the CPU time used so far plus ``extra`` seconds (``None``: no limit,
    or the hard limit the worker was started under)."""
    try:
        _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        if extra is None:
            soft = hard
        else:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            soft = math.ceil(usage.ru_utime + usage.ru_stime + extra)
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except (ValueError, OSError):  # pragma: no cover - locked down
        pass


def judge_within(engine: Engine, pred: str, gold: str, rel_tol: float | None, cpu: float,
                 wall: float) -> tuple[bool, str]:
    """``engine.judge`` under the CPU budget ``cpu`` (stage 1: ``timeout`` verdict; stage 2 at
    ``1.5·cpu + 0.5`` s of user time: the process ends) and the wall-clock self-destruct ``wall``.
    The timers are one-shot, so once :class:`OverBudget` was raised it cannot be raised again."""
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, wall)
            _cpu_rlimit(2 * cpu + 1)
            signal.setitimer(signal.ITIMER_VIRTUAL, 1.5 * cpu + 0.5)
            signal.setitimer(signal.ITIMER_PROF, cpu)
            return engine.judge(pred, gold, rel_tol)
        finally:
            _disarm()
    except OverBudget:
        _disarm()
        return False, "timeout"


def _no_core_files() -> None:
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):  # pragma: no cover
        pass


#: Pairs judged once at start-up so that no lazily imported engine part is paid for by an answer.
_WARM_UP = (
    ("\\frac{1}{2}", "0.5"),
    ("(x+1)^2", "x^2+2x+1"),
    ("\\sqrt{2}/2", "\\frac{1}{\\sqrt{2}}"),
    ("[1,3)", "[1, 3)"),
    ("(1,2)", "1<x<2"),
    ("\\{1,2\\}", "\\{2,1\\}"),
    ("x \\in [0,1]", "[0,1]"),
    ("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}"),
    ("x=2, y=3", "y=3, x=2"),
    ("10\\%", "0.1"),
    ("\\text{Evelyn}", "Evelyn"),
    ("\\sin(x)^2+\\cos(x)^2", "1"),
    ("3.1416", "\\pi"),
)


def main(argv: list[str]) -> int:
    config = json.loads(argv[1]) if len(argv) > 1 else {}
    # Protocol channel = a private copy of fd 1; fd 1 itself now points at stderr.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    _set_limits(config.get("memory_mb"))

    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.signal(signal.SIGVTALRM, signal.SIG_DFL)
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    signal.signal(signal.SIGPROF, _over_budget)
    _no_core_files()
    self_destruct = float(config.get("self_destruct_s", 30.0))

    engine = Engine(cache_size=int(config.get("cache_size", 4096)))
    default_cpu = float(config.get("cpu_s", 3.0))
    for pred, gold in _WARM_UP:  # load the ANTLR parser, sympy's caches and lazy imports
        engine.judge(pred, gold, 1e-9)
    out.write(json.dumps({"ready": os.getpid()}).encode() + b"\n")

    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return 0
        try:
            req = json.loads(line)
            rid, pred, gold = req["id"], str(req["pred"]), str(req["gold"])
            cpu = float(req.get("cpu") or default_cpu)
            rel_tol = req.get("rel_tol")
            rel_tol = float(rel_tol) if rel_tol else None
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        ok, reason = judge_within(engine, pred, gold, rel_tol, cpu, self_destruct)
        out.write(json.dumps({"id": rid, "ok": ok, "reason": reason}).encode() + b"\n")

if __name__ == "__main__":
    # Started as a script: drop this file's folder from the import path so sibling modules of
    # the package can never shadow a library module.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.exit(main(sys.argv))
