"""Hostile model text is normal input: nothing runs, nothing hangs, the pool survives.

Every item must come back as a Verification (reward -1 unless truly equal) within the
per-answer deadline plus a little, no injected code may run (a canary file must not appear),
and closing the verifier must leave no worker process behind.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from thinksolve_env.verifier import REASONS, MathVerifier, Verification

TIMEOUT = 0.75  # CPU seconds per answer
# Start-up of a replacement worker (a few tenths of a second) plus scheduling noise on a
# shared 2-core machine.
SLACK = 3.0
MB = 1 << 20


def _load() -> float:
    """How many times slower than idle wall-clock time runs now: the deadline is CPU time, so
    on a loaded machine an answer's wall-clock latency grows with the run queue (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1.0, os.getloadavg()[0] / cores)


def _injections(canary: str) -> list[str]:
    """Strings that create ``canary`` if anything evaluates them as Python."""
    touch = f"open({canary!r}, 'w').write('pwned')"
    return [
        f"\\boxed{{__import__('os').system('touch {canary}')}}",
        f"\\boxed{{{touch}}}",
        f"\\boxed{{eval(\"{touch}\")}}",
        f"\\boxed{{exec(\"{touch}\")}}",
        f"The final answer is {touch}",
        f"Final answer: __import__('os').system('touch {canary}')",
        f"\\boxed{{\\text{{{touch}}}}}",
        f"\\boxed{{\\operatorname{{exec}}(\"{touch}\")}}",
        f"\\boxed{{(lambda: {touch})()}}",
        f"\\boxed{{Symbol('x').__class__.__init__.__globals__['__builtins__']['eval'](\"{touch}\")}}",
        f"\\boxed{{1 + __import__('subprocess').call(['touch', '{canary}'])}}",
        f"\\boxed{{x}} and $ {touch} $",
        f"\\boxed{{\\begin{{pmatrix}}{touch} & 1\\\\ 2 & 3\\end{{pmatrix}}}}",
        f"\\boxed{{[{touch} for _ in (1,)]}}",
    ]


def _hostile() -> list[tuple[str, str, str, bool]]:
    """(name, model text, reference, truly equal?)."""
    nest = 5000
    return [
        # CPU and memory bombs
        ("power-tower-9", "\\boxed{9^{9^{9^{9}}}}", "1", False),
        ("power-tower-2", "\\boxed{2^{2^{2^{2^{2^{2^{2}}}}}}}", "7", False),
        ("power-10-10-10", "\\boxed{10^{10^{10}}}", "10", False),
        ("power-10-10-100", "\\boxed{10^{10^{100}}} ", "10", False),
        ("factorial-1e6", "\\boxed{1000000!}", "5", False),
        ("factorial-1e10", "\\boxed{(10^{10})!}", "5", False),
        ("factorial-tower", "\\boxed{((100!)!)!}", "5", False),
        ("sum-1e15", "\\boxed{\\sum_{i=1}^{10^{15}} i}", "5", False),
        ("sum-1e15-recip", "\\boxed{\\sum_{k=1}^{10^{15}} \\frac{1}{k^2}}", "5", False),
        ("prod-1e15", "\\boxed{\\prod_{k=1}^{10^{15}} k}", "5", False),
        ("integral", "\\boxed{\\int_0^{\\infty} e^{-x^{99}} \\sin(x^{7}) dx}", "5", False),
        ("big-int-vs-big-int", "\\boxed{" + "9" * 900 + "}", "9" * 899, False),
        ("big-int-equal", "\\boxed{" + "9" * 900 + "}", "9" * 900, True),
        # size
        ("megabyte-answer", "\\boxed{" + "1" * MB + "}", "1", False),
        ("long-answer", "\\boxed{" + "x+" * 600 + "1}", "1", False),
        ("megabyte-doc-answer-at-end", "lorem ipsum " * (MB // 12) + "\\boxed{5}", "5", True),
        ("megabyte-doc-no-answer", "the answer is " * (MB // 14), "5", False),
        ("megabyte-one-line-spaces", "the answer is" + " " * MB, "5", False),
        ("megabyte-backslashes", "\\" * MB + "\\boxed{5}", "5", True),
        # braces
        ("nested-braces", "\\boxed{" + "{" * nest + "1" + "}" * nest + "}", "2", False),
        ("nested-frac", "\\boxed{" + "\\frac{" * nest + "1" + "}{2}" * nest + "}", "0", False),
        ("nested-frac-small", "\\boxed{" + "\\frac{1}{" * 90 + "2" + "}" * 90 + "}", "0", False),
        ("nested-braces-small", "\\boxed{" + "{" * 450 + "1" + "}" * 450 + "}", "2", False),
        ("nested-sqrt-small", "\\boxed{" + "\\sqrt{" * 120 + "2" + "}" * 120 + "}", "0", False),
        ("nested-parens", "\\boxed{" + "(" * 400 + "1" + ")" * 400 + "}", "2", False),
        ("nested-boxes", "\\boxed{" * nest + "7" + "}" * nest, "8", False),
        ("unbalanced-open", "\\boxed{" * 20000, "1", False),
        ("unbalanced-close", "}" * 20000 + "\\boxed{3}", "3", True),
        ("unbalanced-mixed", ("\\boxed{{{" + "}" * 2) * 5000, "1", False),
        ("unbalanced-inside", "\\boxed{\\frac{1}{2}" + "{" * 300 + "}", "0.5", False),
        ("left-right-soup", "\\boxed{" + "\\left(" * 300 + "x" + "\\right)" * 300 + "}", "y", False),
        # bytes and encodings
        ("nul-bytes", "\\boxed{5\x00}", "5", True),
        ("nul-doc", "\x00" * MB + "\\boxed{\x004\x00}", "4", True),
        ("nul-mismatch", "\\boxed{\x006}", "5", False),
        ("full-width-equal", "\\boxed{４２}", "42", True),
        ("full-width-mismatch", "\\boxed{４３}", "42", False),
        ("full-width-braces", "\\boxed｛42｝", "42", False),
        ("lone-surrogate", "\\boxed{5\ud800}", "5", False),
        ("bidi-override", "\\boxed{\u202e24\u202c}", "42", False),
        ("zero-width", "\\boxed{4\u200b2}", "43", False),
        ("control-chars", "\\boxed{" + "".join(map(chr, range(1, 32))) + "}", "1", False),
        ("emoji", "\\boxed{🙂}", "1", False),
        # LaTeX oddities
        ("huge-matrix", "\\boxed{\\det\\begin{pmatrix}" + "\\\\".join(
            "&".join(f"x_{{{i}{j}}}" for j in range(8)) for i in range(8)) + "\\end{pmatrix}}", "1", False),
        ("many-commas", "\\boxed{" + ",".join(map(str, range(200))) + "}", "1", False),
        ("repeated-element-set", "\\boxed{" + ",".join(["1"] * 300) + "}", "2", False),
        ("unknown-commands", "\\boxed{\\foo{\\bar{\\baz}}}", "1", False),
        ("begin-without-end", "\\boxed{\\begin{pmatrix}1 & 2}", "1", False),
        ("dollar-soup", "\\boxed{" + "$" * 500 + "}", "1", False),
        ("tiny-exponent", "\\boxed{10^{-10^{10}}}", "0", False),
        # final-answer sentences (what a sentence asserts is read in a bounded window)
        *_hostile_sentences(),
    ]


def _hostile_sentences() -> list[tuple[str, str, str, bool]]:
    """Sentences that attack the reading of what a sentence asserts: the same verdict with
    ``unboxed="off"`` and ``"last"`` (a phrase within the text limit is read in both modes; a
    text cut past its phrase has nothing to read in either)."""
    return [
        ("is-is-is", "Final answer: " + "is " * 100_000, "5", False),
        ("is-is-is-then-answer", "is " * 100_000 + "\nFinal Answer: The sum is 5.", "5", True),
        ("is-number-soup", "Final answer: x " + "is 1 " * 300 + "is 5.", "5", True),
        ("nested-dollars", "Final answer: " + "$" * 100_000 + "5" + "$" * 100_000, "5", False),
        ("nested-dollars-then-answer", "$" * 50_000 + "\nFinal Answer: The largest $n$ is 34.", "34", True),
        ("open-paren-spans", "Final answer: " + "\\(" * 50_000 + " is 5", "5", False),
        ("equals-chain", "Final answer: $" + "x=" * 900 + "5$", "5", True),
        ("equals-chain-huge", "Final answer: " + "x=" * 50_000 + "5", "5", False),
        ("is-not-soup", "Final answer: x " + "is not " * 100_000 + "5", "5", False),
        ("because-soup", "Final answer: 5 " + "because " * 20_000, "5", True),
        ("text-groups", "Final answer: " + "\\text{abc}" * 100_000, "5", False),
        ("open-braces-sentence", "Final answer: the sum is " + "{" * 100_000 + "5", "5", False),
    ]


@pytest.fixture(scope="module")
def verifier():
    with MathVerifier(timeout=TIMEOUT, workers=2) as v:
        yield v


def _worker_children() -> set[int]:
    """Live child processes of this process that run the verifier's worker script."""
    me = os.getpid()
    out = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if fields[0] != "Z" and int(fields[1]) == me and b"_verify_worker.py" in cmd:
            out.add(int(name))
    return out


def test_injected_code_never_runs(tmp_path, verifier):
    canary = str(tmp_path / "canary")
    texts = _injections(canary)
    # Prove the canary would appear if any of these strings were evaluated as Python.
    probe = str(tmp_path / "probe")
    exec(_injections(probe)[1][len("\\boxed{"):-1])  # our own string, in the test
    assert os.path.exists(probe)

    results = verifier.verify_batch([(t, "5") for t in texts])
    results += [verifier.verify(t, "7") for t in texts]
    # References are data too: an injected reference must not run either.
    results += verifier.verify_batch([("\\boxed{5}", t) for t in texts])
    for r in results:
        assert isinstance(r, Verification)
        assert r.reward == -1.0 and r.reason in REASONS
    time.sleep(0.2)
    assert not os.path.exists(canary)


def test_hostile_corpus_single_calls(verifier):
    """Each hostile item, one call at a time: bounded latency, correct verdict."""
    for name, text, ref, equal in _hostile():
        t = time.monotonic()
        v = verifier.verify(text, ref)
        took = time.monotonic() - t
        assert isinstance(v, Verification), name
        assert v.reason in REASONS, name
        assert v.correct is equal, f"{name}: {v.reason}"
        assert v.reward == (1.0 if equal else -1.0), name
        assert took < (TIMEOUT + SLACK) * _load(), f"{name} took {took:.2f}s ({v.reason})"
        if v.extracted is not None:
            assert len(v.extracted) <= verifier.max_answer_chars, name


def test_hostile_sentences_read_unboxed_last():
    """The hostile sentences with ``unboxed="last"`` (which reads every text): the same verdicts,
    bounded latency; text with no phrase at all too."""
    items = _hostile_sentences() + [
        ("unboxed-is-is-is", "x " + "is " * 100_000, "5", False),
        ("unboxed-is-number", "x is 1 " * 100_000 + "so x is 5.", "5", True),
        ("unboxed-open-brackets", "\\[" * 100_000 + " is 5", "5", True),
        ("unboxed-dollar-pairs", "$a" * 100_000 + " is 5", "5", True),
    ]
    with MathVerifier(timeout=TIMEOUT, workers=1, unboxed="last") as v:
        for name, text, ref, equal in items:
            t = time.monotonic()
            r = v.verify(text, ref)
            took = time.monotonic() - t
            assert r.correct is equal, f"{name}: {r.reason}, extracted {r.extracted!r}"
            assert took < (TIMEOUT + SLACK) * _load(), f"{name} took {took:.2f}s ({r.reason})"


def test_hostile_corpus_batch_and_pool_survives(tmp_path):
    items = _hostile()
    before = _worker_children()
    with MathVerifier(timeout=TIMEOUT, workers=2, cache_size=0) as v:
        t = time.monotonic()
        got = v.verify_batch([(text, ref) for _, text, ref, _ in items])
        took = time.monotonic() - t
        for (name, _, _, equal), r in zip(items, got):
            assert r.correct is equal, f"{name}: {r.reason}"
        timeouts = sum(r.reason == "timeout" for r in got)
        assert timeouts >= 1  # the power towers really were cut off
        # Two workers share the deadlines; allow one start-up per replaced worker.
        assert took < ((timeouts / 2 + 1) * TIMEOUT + timeouts * 1.0 + SLACK * 2) * _load()
        # The pool still works, at full strength, and quickly.
        t = time.monotonic()
        ok = v.verify_batch([("\\boxed{\\frac{2}{4}}", "0.5"), ("\\boxed{(x+1)^2}", "x^2+2x+1"),
                             ("\\boxed{3}", "\\frac{9}{3}"), ("\\boxed{4}", "\\frac{9}{3}")])
        assert [r.correct for r in ok] == [True, True, True, False]
        assert time.monotonic() - t < (TIMEOUT + SLACK) * _load()
        assert len(v.worker_pids()) == 2
        assert len(_worker_children() - before) == 2
    assert _worker_children() - before == set()


def test_worker_killed_from_outside_is_replaced():
    before = _worker_children()
    with MathVerifier(timeout=TIMEOUT, workers=1) as v:
        assert v.verify("\\boxed{\\frac{4}{2}}", "2").correct
        (pid,) = v.worker_pids()
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
        assert v.verify("\\boxed{\\frac{6}{2}}", "3").correct
        assert v.worker_pids() and v.worker_pids()[0] != pid
    assert _worker_children() - before == set()


def test_timeout_reason_and_deadline_is_configurable():
    with MathVerifier(timeout=0.5, workers=1, cache_size=0) as v:
        t = time.monotonic()
        r = v.verify("\\boxed{9^{9^{9^{9}}}}", "1")
        took = time.monotonic() - t
        assert (r.reason, r.reward) == ("timeout", -1.0)
        # Includes the first worker's start-up (the pool starts lazily).
        assert took < (0.5 + SLACK) * _load()
        t = time.monotonic()
        r = v.verify("\\boxed{9^{9^{9^{9}}}}", "1")
        assert r.reason == "timeout" and time.monotonic() - t < (0.5 + SLACK) * _load()


def test_repeated_hostile_answer_hits_the_cache(verifier):
    text = "\\boxed{2^{2^{2^{2^{2^{2^{2^{2}}}}}}}}"
    first = verifier.verify(text, "3")
    t = time.monotonic()
    again = verifier.verify_batch([(text, "3")] * 8)
    assert time.monotonic() - t < 0.5
    assert all(r.reason == first.reason and r.reward == -1.0 for r in again)


def test_worker_killed_mid_answer_is_retried_once():
    """An answer whose worker dies under it is retried on a fresh worker, once."""
    import threading

    with MathVerifier(timeout=TIMEOUT, workers=1, cache_size=0) as v:
        assert v.verify("\\boxed{\\frac{4}{2}}", "2").correct
        (pid,) = v.worker_pids()
        box: list = []
        t = threading.Thread(target=lambda: box.append(v.verify("\\boxed{9^{9^{9^{9}}}}", "1")))
        start = time.monotonic()
        t.start()
        time.sleep(TIMEOUT / 3)
        os.kill(pid, signal.SIGKILL)
        t.join((TIMEOUT * 2 + SLACK) * _load())
        assert box, "verify did not return"
        # The retry ran into the deadline (not a parse error from the crash).
        assert (box[0].reason, box[0].reward) == ("timeout", -1.0)
        assert v.stats["crashes"] == 1 and v.stats["timeouts"] == 1
        assert time.monotonic() - start < (TIMEOUT / 3 + TIMEOUT + SLACK) * _load()
        assert v.verify("\\boxed{\\frac{6}{2}}", "3").correct


def test_verifier_source_has_no_code_evaluation():
    """No eval/exec/compile, no sympy string parsing, no pickle, no Expr extraction (parse_expr)."""
    import ast

    import thinksolve_env._verify_worker as worker
    import thinksolve_env.verifier as verifier

    banned_calls = {"eval", "exec", "sympify", "parse_expr", "__import__"}  # also as attributes
    banned_builtins = banned_calls | {"compile"}  # as a bare name (re.compile is fine)
    banned_names = {"pickle", "cPickle", "dill", "cloudpickle", "ExprExtractionConfig", "parse_expr",
                    "sympify", "multiprocessing"}
    for mod in (verifier, worker):
        tree = ast.parse(Path(mod.__file__).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                if isinstance(f, ast.Name):
                    assert f.id not in banned_builtins, f"{mod.__name__}:{node.lineno} calls {f.id}"
                elif isinstance(f, ast.Attribute):
                    assert f.attr not in banned_calls, f"{mod.__name__}:{node.lineno} calls {f.attr}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = {a.name.split(".")[0] for a in node.names} | {a.name for a in node.names}
                if isinstance(node, ast.ImportFrom) and node.module:
                    names.add(node.module.split(".")[0])
                assert not names & banned_names, f"{mod.__name__}:{node.lineno} imports {names & banned_names}"
            if isinstance(node, ast.Name):
                assert node.id not in banned_names, f"{mod.__name__}:{node.lineno} uses {node.id}"


def test_close_while_another_thread_verifies():
    """close() from one thread while another waits on slow answers: the waiting call returns
    promptly with -1 verdicts, and no worker survives."""
    import threading

    before = _worker_children()
    v = MathVerifier(timeout=5.0, workers=2, cache_size=0)
    assert v.verify("\\boxed{\\frac{4}{2}}", "2").correct
    box: list = []
    bombs = [(f"\\boxed{{{k}^{{{k}^{{{k}^{{{k}}}}}}}}}", "1") for k in (7, 8, 9)]
    t = threading.Thread(target=lambda: box.append(v.verify_batch(bombs)))
    t.start()
    time.sleep(0.5)
    start = time.monotonic()
    v.close()
    t.join(SLACK)
    assert box and time.monotonic() - start < SLACK
    assert [r.reward for r in box[0]] == [-1.0] * 3
    assert all(r.reason in ("timeout", "parse-error") for r in box[0])
    assert _worker_children() - before == set()
    # Still usable afterwards (a new pool), and closable again.
    assert v.verify("\\boxed{\\frac{9}{3}}", "3").correct
    v.close()
    assert _worker_children() - before == set()


@pytest.mark.parametrize("how", ["exit-without-close", "parent-killed"])
def test_workers_do_not_outlive_their_parent(tmp_path, how):
    """Interpreter exit without close() (atexit finaliser), or a parent killed outright (the
    workers see end-of-input, or their self-destruct timer fires): no worker stays behind."""
    import subprocess
    import sys

    script = tmp_path / "parent.py"
    end = "pass" if how == "exit-without-close" else "os.kill(os.getpid(), signal.SIGKILL)"
    script.write_text(
        "import os, signal, sys\n"
        f"sys.path.insert(0, {str(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))!r})\n"
        "from thinksolve_env.verifier import MathVerifier\n"
        "v = MathVerifier(timeout=1.0, workers=2)\n"
        "assert v.verify('\\\\boxed{\\\\frac{4}{2}}', '2').correct\n"
        "print(' '.join(map(str, v.worker_pids())), flush=True)\n"
        f"{end}\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2, out.stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
        time.sleep(0.1)
    assert not any(_pid_alive(p) for p in pids)


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[-1].split()[0]
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        return False
    return state != "Z" and b"_verify_worker.py" in cmd
