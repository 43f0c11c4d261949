"""Verdicts do not depend on machine load (issue 13).

The deadline is the answer's own CPU time in its worker, so with every core kept busy by other
processes the verdicts, timeouts included, must equal the verdicts on an idle machine. The
corpus puts hostile answers (which time out and get their worker replaced) right before answers
that need the symbolic engine, the sequence that used to fail under load: a fresh worker's
start-up, or its first lazy import, ate the next answer's wall-clock deadline.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from thinksolve_env.verifier import MathVerifier

BUDGET = 1.0  # CPU seconds per answer
BUSY_S = 180  # each busy process ends itself after this long, whatever happens to the test

# Pairs the string layer cannot decide (they go to the workers), hostile ones among them.
CORPUS = [
    ("\\boxed{(x+1)^2}", "x^2+2x+1"),
    ("\\boxed{2^{2^{2^{2^{2^{2^{2}}}}}}}", "7"),          # power tower: runs out of its CPU budget
    ("\\boxed{(x+1)^2}", "x^2+2x+1"),                      # first answer of the replacement worker
    ("\\boxed{\\frac{\\sqrt{2}}{2}}", "\\frac{1}{\\sqrt{2}}"),
    ("\\boxed{[1, 4)}", "[1,4)"),
    ("\\boxed{\\{3, 1\\}}", "\\{1, 3\\}"),
    ("\\boxed{\\sum_{k=1}^{10^{15}} \\frac{1}{k^2}}", "5"),
    ("\\boxed{\\sin^2 x + \\cos^2 x}", "1"),
    ("\\boxed{x^2-1}", "(x-1)(x+1)"),
    ("\\boxed{(x-1)^2}", "x^2+1"),
    ("\\boxed{\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}}", "\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}"),
    ("\\boxed{9^{9^{9^{9}}}}", "1"),
    ("\\boxed{0.25}", "\\frac{1}{4}"),
    ("\\boxed{\\frac{3}{4}}", "0.7"),
    ("\\boxed{x = 2, y = 3}", "y=3, x=2"),
    ("\\boxed{25\\%}", "0.25"),
    ("\\boxed{\\sqrt{12}}", "2\\sqrt{3}"),
    ("\\boxed{\\log_2 8}", "3"),
]


def _verdicts() -> list[tuple[bool, str]]:
    with MathVerifier(timeout=BUDGET, workers=2, cache_size=0) as v:
        return [(r.correct, r.reason) for r in v.verify_batch(CORPUS)]


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@pytest.mark.slow
def test_verdicts_under_full_cpu_load_equal_the_idle_verdicts():
    idle = _verdicts()
    assert ("timeout" in {reason for _, reason in idle}), "the corpus must exercise the deadline"
    assert idle[0] == idle[2] == (True, "match")

    # Two busy processes per core: the verifier's workers get a fraction of a core each.
    spin = f"import time\nend = time.monotonic() + {BUSY_S}\nwhile time.monotonic() < end: pass\n"
    busy = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(2 * _cores())]
    try:
        time.sleep(0.5)
        loaded = _verdicts()
        assert all(p.poll() is None for p in busy), "the load ended before the measurement"
    finally:
        for p in busy:
            p.kill()
        for p in busy:
            p.wait(timeout=10)
    assert loaded == idle


def _stopped_worker_verdict(v: MathVerifier, stop_s: float):
    """Verify one symbolic pair while the only worker is stopped (SIGSTOP) for ``stop_s``."""
    import signal
    import threading

    assert v.verify("\\boxed{\\frac{4}{2}}", "2").correct  # the worker is up and warm
    (pid,) = v.worker_pids()
    box: list = []
    os.kill(pid, signal.SIGSTOP)
    try:
        t = threading.Thread(target=lambda: box.append(v.verify("\\boxed{(x+2)^2}", "x^2+4x+4")))
        t.start()
        time.sleep(stop_s)
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:  # already ended by the wall-clock net
            pass
    t.join(60)
    return box[0]


def test_wall_clock_time_without_cpu_does_not_count():
    """A worker that gets no CPU for three times the budget (stopped, as on a machine too busy
    to schedule it) still gives the right verdict: only the answer's own CPU time counts."""
    with MathVerifier(timeout=0.5, workers=1, cache_size=0) as v:
        r = _stopped_worker_verdict(v, 1.5)
        assert (r.correct, r.reason) == (True, "match")
        assert v.stats["timeouts"] == 0


def test_wall_clock_net_still_ends_an_unscheduled_worker():
    with MathVerifier(timeout=0.5, wall_timeout=1.0, workers=1, cache_size=0) as v:
        r = _stopped_worker_verdict(v, 2.5)
        assert (r.correct, r.reason) == (False, "timeout")
        assert v.verify("\\boxed{(x+3)^2}", "x^2+6x+9").correct  # replaced, and warm


def test_cpu_rlimit_stage_ends_a_process_spinning_in_the_kernel_or_in_c():
    """Stage 3 of the worker's deadline: RLIMIT_CPU at the time used so far + 1 s ends a process
    that never returns to Python (here a spin loop), by SIGXCPU, whatever the wall-clock time."""
    import signal

    worker_dir = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "thinksolve_env")
    code = (
        f"import sys, signal; sys.path.insert(0, {worker_dir!r}); import _verify_worker as w\n"
        "signal.signal(signal.SIGXCPU, signal.SIG_DFL); w._no_core_files(); w._cpu_rlimit(1.0)\n"
        "while True: pass\n"
    )
    t = time.monotonic()
    p = subprocess.run([sys.executable, "-c", code], timeout=120)
    assert p.returncode == -signal.SIGXCPU
    assert time.monotonic() - t < 60
