"""Table-driven and behavioural tests of MathVerifier (real worker processes, no mocks)."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from thinksolve_env.verifier import (
    REASONS,
    MathVerifier,
    Verification,
    Verifier,
    extract_answer,
    find_boxed,
    normalize_answer,
)

B = "\\boxed{{{}}}".format  # B("x") -> "\boxed{x}"

# (category, model text, reference, equal?)
CASES = [
    # ---- integers
    ("int", B("42"), "42", True),
    ("int", B("-7"), "-7", True),
    ("int", B("+7"), "7", True),
    ("int", B("007"), "7", True),
    ("int", B("43"), "42", False),
    ("int", B("-42"), "42", False),
    ("int", B("4 2"), "42", True),  # LaTeX ignores spaces between digits
    ("int", B("\\frac{84}{2}"), "42", True),
    ("int", B("41.9"), "42", False),
    # ---- decimals
    ("decimal", B("0.5"), "0.50", True),
    ("decimal", B("2.50"), "2.5", True),
    ("decimal", B(".5"), "0.5", True),
    ("decimal", B("0.25"), "\\frac{1}{4}", True),
    ("decimal", B("0.33"), "\\frac{1}{3}", False),
    ("decimal", B("2.05"), "2.5", False),
    # ---- fractions
    ("fraction", B("\\frac{1}{2}"), "0.5", True),
    ("fraction", B("\\dfrac{3}{4}"), "\\frac{3}{4}", True),
    ("fraction", B("\\frac34"), "\\frac{3}{4}", True),
    ("fraction", B("6/8"), "\\frac{3}{4}", True),
    ("fraction", B("\\frac{4}{3}"), "\\frac{3}{4}", False),
    ("fraction", B("1\\frac{1}{2}"), "\\frac{3}{2}", True),
    ("fraction", B("-\\frac{1}{2}"), "\\frac{1}{2}", False),
    ("fraction", B("\\frac{1}{2}"), "\\frac{1}{3}", False),
    # ---- scientific notation
    ("scientific", B("1.5e3"), "1500", True),
    ("scientific", B("1.5 \\times 10^{3}"), "1500", True),
    ("scientific", B("2\\times10^{-2}"), "0.02", True),
    ("scientific", B("1.5e4"), "1500", False),
    ("scientific", B("3 \\times 10^{5}"), "3 \\times 10^{6}", False),
    # ---- thousands separators
    ("thousands", B("1,000,000"), "1000000", True),
    ("thousands", B("12{,}345"), "12345", True),
    ("thousands", B("1,000"), "10000", False),
    ("thousands", B("2100"), "2, 100", False),  # "2, 100" is a list of two numbers
    # ---- expressions
    ("expression", B("(x+1)^2"), "x^2+2x+1", True),
    ("expression", B("x^2+2x+1"), "(x+1)^2", True),
    ("expression", B("x(x+2)"), "x^2+2x", True),
    ("expression", B("2x+3"), "3+2x", True),
    ("expression", B("(x-1)^2"), "x^2+2x+1", False),
    ("expression", B("2x+4"), "2x+3", False),
    ("expression", B("\\frac{x^2-1}{x-1}"), "x+1", True),
    ("expression", B("x^3"), "x^2", False),
    ("expression", B("p - q"), "p-q", True),
    ("expression", B("q - p"), "p-q", False),
    # ---- equations against values
    ("equation", B("x = 5"), "5", True),
    ("equation", B("5"), "x=5", True),
    ("equation", B("x = 6"), "5", False),
    ("equation", B("y = 2x+3"), "2x+3", True),
    ("equation", B("y=2x+3"), "y = 3+2x", True),
    ("equation", B("y=2x+4"), "y = 2x+3", False),
    ("equation", B("k = \\frac{1}{2}"), "0.5", True),
    # ---- tuples (ordered)
    ("tuple", B("(1,2)"), "(1, 2)", True),
    ("tuple", B("\\left(3, \\frac{\\pi}{2}\\right)"), "\\left( 3, \\frac{\\pi}{2} \\right)", True),
    ("tuple", B("(3, 1.5708)"), "\\left( 3, \\frac{\\pi}{2} \\right)", False),
    ("tuple", B("(2,1)"), "(1,2)", False),
    ("tuple", B("(1,2,3)"), "(1,2,3)", True),
    ("tuple", B("(1,3,2)"), "(1,2,3)", False),
    ("tuple", B("\\{3,2,1\\}"), "(1,2,3)", False),  # a set does not answer an ordered triple
    ("tuple", B("(0.5, 2)"), "\\left(\\frac{1}{2}, 2\\right)", True),
    # ---- intervals (ends exact)
    ("interval", B("[1,3)"), "[1,3)", True),
    ("interval", B("(1,3)"), "[1,3)", False),
    ("interval", B("[1,3]"), "[1,3)", False),
    ("interval", B("(-\\infty, 2]"), "(-\\infty,2]", True),
    ("interval", B("(-\\infty, 2)"), "(-\\infty,2]", False),
    ("interval", B("[0, \\infty)"), "[0,\\infty)", True),
    ("interval", B("(-\\infty,-1) \\cup (1,\\infty)"), "(-\\infty,-1)\\cup(1,\\infty)", True),
    ("interval", B("(-\\infty,-1] \\cup (1,\\infty)"), "(-\\infty,-1)\\cup(1,\\infty)", False),
    ("interval", B("x \\in [1,3)"), "[1,3)", True),
    # ---- sets (order-insensitive)
    ("set", B("\\{2, 1\\}"), "\\{1,2\\}", True),
    ("set", B("\\{1, 3\\}"), "\\{1,2\\}", False),
    ("set", B("3, 5"), "5, 3", True),
    ("set", B("3, 5, 7"), "3, 5", False),
    ("set", B("-2, 2"), "2, -2", True),
    ("set", B("\\{1,2\\}"), "\\{1,2,3\\}", False),
    # ---- matrices
    ("matrix", B("\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}"), "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", True),
    ("matrix", B("\\begin{pmatrix}1&2\\\\4&3\\end{pmatrix}"), "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", False),
    ("matrix", B("\\begin{pmatrix}0.5\\\\2\\end{pmatrix}"), "\\begin{pmatrix}\\frac{1}{2}\\\\2\\end{pmatrix}", True),
    ("matrix", B("\\begin{bmatrix}1&0\\\\0&1\\end{bmatrix}"), "\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}", True),
    ("matrix", B("\\begin{pmatrix}1\\\\2\\end{pmatrix}"), "\\begin{pmatrix}1&2\\end{pmatrix}", False),
    # ---- pi
    ("pi", B("\\pi/2"), "\\frac{\\pi}{2}", True),
    ("pi", B("\\frac{2\\pi}{4}"), "\\frac{\\pi}{2}", True),
    ("pi", B("2\\pi"), "\\frac{\\pi}{2}", False),
    ("pi", B("3.14"), "\\pi", False),
    ("pi", B("π"), "\\pi", True),
    ("pi", B("\\pi r^2"), "\\pi r^{2}", True),
    # ---- infinity
    ("infinity", B("\\infty"), "\\infty", True),
    ("infinity", B("∞"), "\\infty", True),
    ("infinity", B("-\\infty"), "\\infty", False),
    ("infinity", B("10^{100}"), "\\infty", False),
    # ---- radicals
    ("radical", B("2\\sqrt{2}"), "\\sqrt{8}", True),
    ("radical", B("\\sqrt{2}/2"), "\\frac{1}{\\sqrt{2}}", True),
    ("radical", B("\\sqrt2"), "\\sqrt{2}", True),
    ("radical", B("\\sqrt{3}"), "\\sqrt{2}", False),
    ("radical", B("4\\sqrt{3}"), "\\sqrt{48}", True),
    ("radical", B("3\\sqrt{3}"), "\\sqrt{48}", False),
    ("radical", B("\\sqrt[3]{8}"), "2", True),
    ("radical", B("1.414"), "\\sqrt{2}", False),
    # ---- percent
    ("percent", B("10\\%"), "10\\%", True),
    ("percent", B("10"), "10\\%", True),
    ("percent", B("0.1"), "10\\%", True),
    ("percent", B("20\\%"), "10\\%", False),
    ("percent", B("12.5\\%"), "12.5", True),
    # ---- degrees
    ("degrees", B("30^\\circ"), "30", True),
    ("degrees", B("30"), "30^\\circ", True),
    ("degrees", B("30°"), "30^\\circ", True),
    ("degrees", B("60^\\circ"), "30^\\circ", False),
    ("degrees", B("30 \\text{ degrees}"), "30^{\\circ}", True),
    # ---- units
    ("units", B("10\\text{ cm}"), "10", True),
    ("units", B("10 cm"), "10", True),
    ("units", B("12 \\text{ square units}"), "12", True),
    ("units", B("11 \\text{ cm}"), "10", False),
    ("units", B("\\$5"), "5", True),
    ("units", B("5 \\text{ dollars}"), "\\$5", True),
    ("units", B("\\$6"), "5", False),
    # ---- text answers (case-insensitive)
    ("text", B("\\text{Evelyn}"), "\\text{Evelyn}", True),
    ("text", B("\\text{evelyn}"), "\\text{Evelyn}", True),
    ("text", B("EVELYN"), "\\text{Evelyn}", True),
    ("text", B("\\text{Bob}"), "\\text{Evelyn}", False),
    ("text", B("\\text{(C)}"), "\\text{(C)}", True),
    ("text", B("C"), "\\text{(C)}", True),
    ("text", B("(D)"), "\\text{(C)}", False),
    ("text", B("\\text{odd}"), "\\text{Odd}", True),
    ("text", B("\\text{even}"), "\\text{odd}", False),
    # ---- multiple boxed answers: the last one counts
    ("multi-boxed", B("3") + " wait, no: " + B("5"), "5", True),
    ("multi-boxed", B("5") + " wait, no: " + B("3"), "5", False),
    ("multi-boxed", "first " + B("1") + ", then " + B("\\frac{1}{2}"), "0.5", True),
    ("multi-boxed", B("\\boxed{7}"), "7", True),  # nested boxes count once
    # ---- extraction variants
    ("extraction", "The final answer is $\\frac{1}{2}$.", "0.5", True),
    ("extraction", "Final answer: 12", "12", True),
    ("extraction", "So the answer is \\boxed 9.", "9", True),
    ("extraction", "\\fbox{8}", "8", True),
    ("extraction", "I think it is 12.", "12", False),  # no box, no final-answer phrase
    ("extraction", "\\boxed{12", "12", False),  # the box never closes
    # ---- full-width and other Unicode forms
    ("unicode", B("４２"), "42", True),
    ("unicode", B("2²"), "4", True),
    ("unicode", B("2²"), "22", False),
    ("unicode", B("1½"), "\\frac{3}{2}", True),
    ("unicode", B("1½"), "\\frac{11}{2}", False),
    ("unicode", B("x²+1"), "x^2+1", True),
]

IDS = [f"{i:03d}-{c[0]}-{'eq' if c[3] else 'ne'}" for i, c in enumerate(CASES)]


@pytest.fixture(scope="module")
def verifier():
    with MathVerifier(timeout=10.0, workers=2) as v:
        yield v


@pytest.fixture(scope="module")
def table_results(verifier):
    return verifier.verify_batch([(text, ref) for _, text, ref, _ in CASES])


def test_table_is_large_and_covers_every_category():
    assert len(CASES) >= 100
    cats = {c[0] for c in CASES}
    for needed in ("int", "decimal", "fraction", "scientific", "thousands", "expression", "equation",
                   "tuple", "interval", "set", "matrix", "pi", "infinity", "radical", "percent",
                   "degrees", "units", "text", "multi-boxed"):
        assert needed in cats
        assert any(c[0] == needed and c[3] for c in CASES), f"{needed}: no positive case"
        assert any(c[0] == needed and not c[3] for c in CASES), f"{needed}: no negative case"


@pytest.mark.parametrize("i", range(len(CASES)), ids=IDS)
def test_table(i, table_results):
    category, text, ref, equal = CASES[i]
    v = table_results[i]
    assert isinstance(v, Verification)
    assert v.reason in REASONS
    assert v.correct is equal, f"{category}: {text!r} vs {ref!r} -> {v}"
    assert v.reward == (1.0 if equal else -1.0)
    if equal:
        assert v.reason == "match"
    else:
        assert v.reason in ("mismatch", "parse-error", "no-answer")


def test_table_verdicts_do_not_depend_on_the_fast_path():
    """The symbolic layer alone agrees with the table wherever the string layer is not needed.

    Text and letter answers are the string layer's job (the engine does not lower-case), so
    only the mathematical categories are rerun with the fast path off.
    """
    maths = [c for c in CASES if c[0] not in ("text", "units", "extraction", "multi-boxed")]
    with MathVerifier(timeout=10.0, workers=2, fast_path=False) as v:
        got = v.verify_batch([(text, ref) for _, text, ref, _ in maths])
        wrong_accepts = [(c, r) for c, r in zip(maths, got) if r.correct and not c[3]]
        assert wrong_accepts == []
        missed = [(c, r) for c, r in zip(maths, got) if c[3] and not r.correct]
        # Equal pairs the engine alone misses must all be ones the string layer exists for.
        assert all(normalize_answer(extract_answer(c[1])) == normalize_answer(c[2]) for c, _ in missed), missed
        assert v.stats["fast"] == 0


def test_reasons(verifier):
    assert verifier.verify("no answer here", "5").reason == "no-answer"
    assert verifier.verify(B(""), "5").reason == "no-answer"
    assert verifier.verify(B("1" * 5000), "5").reason == "too-long"
    v = verifier.verify(B("6"), "5")
    assert (v.reason, v.reward, v.correct, v.extracted) == ("mismatch", -1.0, False, "6")
    v = verifier.verify(B("5"), "5")
    assert (v.reason, v.reward, v.correct, v.extracted, v.reference) == ("match", 1.0, True, "5", "5")
    assert verifier.verify(B("\\frac{}{}"), "5").reason == "parse-error"
    assert verifier.verify(B(")("), "5").reason == "parse-error"
    assert verifier.verify("\\boxed{\\frac{", "5").reason == "no-answer"  # box never closes
    assert verifier.verify(None, "5").reason == "parse-error"  # type: ignore[arg-type]
    d = verifier.verify(B("5"), "5").to_dict()
    assert set(d) == {"reward", "correct", "extracted", "reason", "reference"}


def test_reference_may_be_a_full_solution(verifier):
    assert verifier.verify(B("0.5"), "so we get $\\boxed{\\frac12}$.").correct
    assert not verifier.verify(B("0.4"), "so we get $\\boxed{\\frac12}$.").correct


def test_protocol_and_exports():
    with MathVerifier(workers=0) as v:
        assert isinstance(v, Verifier)
        # workers=0: string layer only, nothing started.
        assert v.verify(B("0.5"), "\\frac12").reason == "mismatch"
        assert v.verify(B("0.50"), "0.5").correct
        assert v.worker_pids() == []
    with pytest.raises(ValueError):
        MathVerifier(timeout=0)
    with pytest.raises(ValueError):
        MathVerifier(workers=-1)


def test_construction_is_cheap_and_lazy():
    t = time.perf_counter()
    vs = [MathVerifier() for _ in range(50)]
    assert time.perf_counter() - t < 0.5
    for v in vs:
        assert v.verify(B("3"), "3").correct  # fast path: no process needed
        assert v.worker_pids() == []
        v.close()


def test_cache_hits_and_batch_dedup(verifier):
    before = dict(verifier.stats)
    pairs = [(B("\\frac{10}{4}"), "2.5")] * 6
    out = verifier.verify_batch(pairs)
    assert all(v.correct for v in out)
    assert verifier.stats["symbolic"] - before["symbolic"] <= 1
    again = verifier.verify(B("\\frac{10}{4}"), "2.5")
    assert again.correct
    assert verifier.stats["cache_hits"] - before["cache_hits"] >= 1
    assert verifier.stats["symbolic"] - before["symbolic"] <= 1


def test_threads_share_one_verifier(verifier):
    pairs = [(B(f"\\frac{{{2 * k}}}{{2}}"), str(k)) for k in range(40)]
    pairs += [(B(f"\\frac{{{2 * k}}}{{2}}"), str(k + 1)) for k in range(40)]
    want = [True] * 40 + [False] * 40
    errors: list[BaseException] = []
    results: dict[int, list[bool]] = {}

    def run(t: int) -> None:
        try:
            chunk = pairs[t::4]
            results[t] = [v.correct for v in verifier.verify_batch(chunk)]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors
    for t in range(4):
        assert results[t] == want[t::4]


def test_asyncio(verifier):
    async def main():
        a, b = await asyncio.gather(
            verifier.averify(B("\\sqrt{4}"), "2"),
            verifier.averify_batch([(B("\\sqrt{9}"), "3"), (B("\\sqrt{9}"), "4")]),
        )
        return a, b

    a, b = asyncio.run(main())
    assert a.correct and [v.correct for v in b] == [True, False]


def test_close_kills_workers_and_verifier_recovers():
    v = MathVerifier(timeout=5.0, workers=2)
    assert v.verify(B("\\frac{6}{3}"), "2").correct
    pids = v.worker_pids()
    assert len(pids) == 2
    v.close()
    v.close()  # idempotent
    for pid in pids:
        assert not _alive(pid)
    assert v.verify(B("\\frac{9}{3}"), "3").correct  # starts a fresh pool
    new = v.worker_pids()
    assert new and set(new).isdisjoint(pids)
    v.close()
    for pid in new:
        assert not _alive(pid)


def test_garbage_collected_verifier_leaves_no_process():
    import gc

    v = MathVerifier(timeout=5.0, workers=1)
    assert v.verify(B("2^{3}"), "8").correct
    pids = v.worker_pids()
    del v
    gc.collect()
    for pid in pids:
        assert not _alive(pid)


def test_extraction_helpers():
    assert extract_answer("a \\boxed{1} b \\boxed{\\frac{1}{2}} c") == "\\frac{1}{2}"
    assert extract_answer("\\boxed{a{b}c}") == "a{b}c"
    assert extract_answer("\\boxed{\\{1,2\\}}") == "\\{1,2\\}"
    assert extract_answer("\\boxed{x \\boxed{y}}") == "x \\boxed{y}"
    assert extract_answer("\\boxed{ \\boxed{5}") == "5"  # unclosed outer box
    assert extract_answer("x" * 10 + "\\boxed{1}", max_chars=5) is None
    assert extract_answer("") is None
    assert find_boxed("\\boxed{1}\\fbox{2}") == [(0, 9, "1"), (9, 17, "2")]
    assert normalize_answer("\\left( 1, 2 \\right)") == "(1,2)"
    assert normalize_answer("1,000") == "1000"
    assert normalize_answer("2, 100") == "2,100"
    assert normalize_answer("\\text{Yes}") == "yes"
    assert normalize_answer("1.50") == "1.5"
    assert normalize_answer("２２") == "22"
    assert normalize_answer("2²") != normalize_answer("22")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); treat it as gone (only its exit status is left).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_start_spawns_the_workers_before_the_first_check():
    from thinksolve_env import MathVerifier

    with MathVerifier(workers=2) as v:
        assert v.worker_pids() == []  # lazy by default
        assert v.start() is v and len(v.worker_pids()) == 2  # at once, without waiting for their imports
        pids = v.worker_pids()
        assert v.verify("\\boxed{\\frac{1}{2}}", "0.5").correct  # served by the started workers
        assert v.worker_pids() == pids
    assert v.worker_pids() == []
