"""The hand-labelled case file (``tests/data/verifier_cases.jsonl``, our own cases, one class
each) against MathVerifier: every verdict equals its label, except where docs/verifier.md says why
(``KNOWN``). ``benchmarks/verifier_agreement.py`` scores math-verify on the same file."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from thinksolve_env.verifier import MathVerifier

CASE_FILE = Path(__file__).parent / "data" / "verifier_cases.jsonl"
CASES = [json.loads(line) for line in CASE_FILE.read_text(encoding="utf-8").splitlines()]
#: Classes read with ``unboxed="last"`` (text with neither a box nor a final-answer phrase).
UNBOXED_CLASSES = ("unboxed", "unboxed-sentence")
#: Misses we keep, with the reason (docs/verifier.md lists them too, under "Known misses").
KNOWN = {
    "equivalence-21": "e^{i\\pi}: the engine reads i as a variable (math-verify too)",
}


def test_case_file_is_well_formed_and_covers_every_class():
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids)) >= 100
    counts = Counter(c["class"] for c in CASES)
    for cls in ("multi-box-reference", "boxed-parts", "phrase-sentence", "chat-template", "reference-trailing",
                "mathrm-e", "unboxed", "numeric-tolerance", "ordered-tuple", "relation-interval",
                "radians-degrees", "equivalence", "near-miss", "phrase-assertion", "unboxed-sentence"):
        assert counts[cls] >= 3, cls
    assert all(isinstance(c["label"], bool) for c in CASES)
    # Both verdicts occur in every class but the plain-equivalence and near-miss ones.
    for cls in counts:
        if cls not in ("equivalence", "near-miss", "chat-template", "phrase-sentence"):
            assert {c["label"] for c in CASES if c["class"] == cls} == {True, False}, cls


@pytest.fixture(scope="module")
def verdicts():
    out = {}
    groups: dict = {}
    for c in CASES:
        unboxed = "last" if c["class"] in UNBOXED_CLASSES else "off"
        groups.setdefault((c.get("rel_tol"), unboxed), []).append(c)
    for (tol, unboxed), cases in groups.items():
        with MathVerifier(workers=2, rel_tol=tol, unboxed=unboxed) as v:
            for c, r in zip(cases, v.verify_batch([(c["text"], c["reference"]) for c in cases])):
                out[c["id"]] = r
    return out


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_verdict_equals_label(case, verdicts):
    r = verdicts[case["id"]]
    if case["id"] in KNOWN:
        assert r.correct is not case["label"], f"{case['id']} now passes: drop it from KNOWN"
    else:
        assert r.correct is case["label"], f"{case['id']}: {r.reason}, extracted {r.extracted!r}"


def test_unboxed_cases_need_the_option():
    with MathVerifier(workers=0) as v:
        for c in CASES:
            if c["class"] in UNBOXED_CLASSES:
                assert v.verify(c["text"], c["reference"]).reason == "no-answer"
