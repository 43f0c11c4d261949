"""Worker process for :class:`thinksolve_env.verifier.MathVerifier`'s symbolic layer (private).

The parent starts this file *as a script* (``python _verify_worker.py '<json config>'``), never
as ``thinksolve_env._verify_worker``: that way the worker imports only the math engine
(math-verify over latex2sympy2_extended and sympy), not the package, torch, or the parent's
``__main__``, and it starts in a few tenths of a second.

Protocol (no pickle anywhere; JSON cannot carry code):

* stdin: one JSON object a line, ``{"id": int, "pred": str, "gold": str}``.
* stdout: first ``{"ready": pid}`` once the engine is imported and warmed up, then one
  ``{"id": int, "ok": bool, "reason": str}`` a line per request, in order.
  Anything else that writes to fd 1 (a stray ``print``) is redirected to stderr, so it cannot
  corrupt the protocol.

Safety nets, besides the parent's wall-clock kill:

* ``RLIMIT_AS`` caps the address space (``memory_mb``), so a power tower that tries to build a
  gigabyte integer fails with ``MemoryError`` (or the process dies) instead of swapping the host.
* While a request runs, ``ITIMER_REAL`` is armed with ``SIGALRM`` left at its default action
  (terminate): if the parent ever fails to kill an overrunning worker (the parent died, say),
  the worker ends itself after ``self_destruct_s`` even inside C code that holds the GIL.
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
import os
import sys


def _set_limits(memory_mb: int | None) -> None:
    if not memory_mb:
        return
    try:
        import resource

        limit = int(memory_mb) * 1024 * 1024
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY and hard < limit:
            limit = hard
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):  # pragma: no cover - non-POSIX or locked down
        pass


class Engine:
    """The symbolic judge: ``judge(pred, gold) -> (equal, reason)``; gold is the reference.

    Both strings are answers already taken out of the model text (no ``\\boxed{}`` around them)
    and bounded in size by the parent. Parsed forms are cached per string.
    """

    def __init__(self, cache_size: int = 4096) -> None:
        import logging
        from functools import lru_cache

        from math_verify import LatexExtractionConfig, parse, verify

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

    def judge(self, pred: str, gold: str) -> tuple[bool, str]:
        """Whether ``pred`` equals ``gold``, and the reason: match, mismatch or parse-error."""
        try:
            g = self._parse(gold)
            p = self._parse(pred)
        except Exception:  # noqa: BLE001 - any engine failure on hostile text is a parse error
            return False, "parse-error"
        if not g or not p:
            return False, "parse-error"
        try:
            ok = bool(self._verify(list(g), list(p), timeout_seconds=None))
        except Exception:  # noqa: BLE001
            return False, "parse-error"
        if ok and self._order_lost(g, p):
            return False, "mismatch"
        if ok:
            return True, "match"
        # Only string fallbacks on the model side: the engine could not read the answer at all.
        if all(isinstance(x, str) for x in p):
            return False, "parse-error"
        return False, "mismatch"


    @staticmethod
    def _order_lost(gold: tuple, pred: tuple) -> bool:
        """True when the reference is an ordered tuple and the answer only an unordered set.

        math-verify lets a set stand for a tuple with the same elements, so ``\\{3,2,1\\}``
        would pass for the ordered triple ``(1,2,3)``: a reward a policy could learn to farm.
        Sets of equations (``x=1, y=2``) keep their names, so they are left to math-verify.
        """
        from sympy import Tuple
        from sympy.core.relational import Relational
        from sympy.sets.sets import FiniteSet

        if not any(isinstance(x, Tuple) for x in gold):
            return False
        for x in pred:
            if isinstance(x, FiniteSet) and len(x) >= 2:
                if not all(isinstance(a, Relational) for a in x.args):
                    return True
        return False


def main(argv: list[str]) -> int:
    config = json.loads(argv[1]) if len(argv) > 1 else {}
    # Protocol channel = a private copy of fd 1; fd 1 itself now points at stderr.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    _set_limits(config.get("memory_mb"))

    import signal

    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    self_destruct = float(config.get("self_destruct_s", 30.0))

    engine = Engine(cache_size=int(config.get("cache_size", 4096)))
    engine.judge("\\frac{1}{2}", "0.5")  # load the ANTLR parser and sympy's caches
    out.write(json.dumps({"ready": os.getpid()}).encode() + b"\n")

    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return 0
        try:
            req = json.loads(line)
            rid, pred, gold = req["id"], str(req["pred"]), str(req["gold"])
        except (ValueError, KeyError, TypeError):
            continue
        signal.setitimer(signal.ITIMER_REAL, self_destruct)
        ok, reason = engine.judge(pred, gold)
        signal.setitimer(signal.ITIMER_REAL, 0)
        out.write(json.dumps({"id": rid, "ok": ok, "reason": reason}).encode() + b"\n")


if __name__ == "__main__":
    # Started as a script: drop this file's folder from the import path so sibling modules of
    # the package can never shadow a library module.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.exit(main(sys.argv))
