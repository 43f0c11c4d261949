"""Verifier agreement with hand labels: MathVerifier against math-verify called directly.

The labelled set is ``tests/data/verifier_cases.jsonl``: our own cases (none copied from another
project's tests), one class each, covering every class of miss that issue 13 found against
other graders' test suites (multi-box references, answers boxed part by part, final-answer
sentences, chat-template tokens, trailing ``\\\\``/``.`` in references, ``\\mathrm{e}``, unboxed
text, numeric tolerance), the deliberate choices (ordered tuples, relations, degrees) and
ordinary equivalences and near misses. ``label`` says whether the answer the text commits to
equals the reference; a case with ``rel_tol`` is labelled at that relative tolerance.

Systems:

* ``thinksolve``: ``MathVerifier()`` as the environment uses it (``rel_tol`` set from the case
  when it has one; ``unboxed="off"``).
* ``thinksolve unboxed=last``: the same with ``unboxed="last"`` (reads unboxed text).
* ``math-verify``: ``verify(parse(gold), parse(text))`` with math-verify's default configs, the
  gold being the reference itself when it holds a ``\\boxed{}``, else ``"$" + reference + "$"``
  (math-verify has no relative tolerance, so ``rel_tol`` does not apply to it).

A second table reads text not written for these rules: the 500 MATH500 reference solutions
(``--math500``, the shared data file) with every ``\\boxed{}`` replaced by its content, so the
answer stands in an ordinary last sentence ("Thus, the answer is $5$."). Each is scored against its
reference (label True) and against a decoy (label False): the last bare number of the solution
before its box that is not the answer (neither math-verify nor our normal form equates them).
Only ``unboxed="last"`` and math-verify read such text; a decoy accepted is a false positive.

Prints the per-class table and every disagreement with the labels, with the reason, and writes
``benchmarks/results/verifier_agreement.{json,md}``.

Usage::

    python benchmarks/verifier_agreement.py [--cases tests/data/verifier_cases.jsonl] [--math500 PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections import OrderedDict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import write_results  # noqa: E402
from thinksolve_env.verifier import MathVerifier, find_boxed, normalize_answer  # noqa: E402

DEFAULT_CASES = ROOT / "tests" / "data" / "verifier_cases.jsonl"
DEFAULT_MATH500 = ROOT.parent / "shared" / "data" / "math" / "math500.jsonl"
#: A bare number in a solution's prose or maths (not part of a longer number, name or exponent).
_BARE_NUMBER = re.compile(r"(?<![\w.^_{])-?\d+(?:\.\d+)?(?![\w.]*\d)")
SYSTEMS = ("thinksolve", "thinksolve unboxed=last", "math-verify")

#: Why a system disagrees with a label (class or case id → system → reason); see README.
WHY = {
    "unboxed": {
        "thinksolve": "by design: text with neither a box nor a final-answer phrase gives no answer "
                      "(the prompt asks for a box); unboxed='last' reads it",
    },
    "unboxed-sentence": {
        "thinksolve": "by design: text with neither a box nor a final-answer phrase gives no answer "
                      "(the prompt asks for a box); unboxed='last' reads it",
        "math-verify": "reads the last number or expression, not what the sentence asserts "
                       "(an approximation after the exact value, a number after the answer, an explaining clause)",
    },
    "phrase-assertion-28": {"math-verify": "an answer in words after a final-answer phrase (no $..$, no box) is not extracted"},
    "numeric-tolerance": {
        "math-verify": "no relative tolerance (only float_rounding); the cases are labelled at rel_tol=1e-3",
    },
    "equivalence-21": {
        "thinksolve": "i is read as a variable, so e^{i pi} stays symbolic (the same in math-verify)",
        "thinksolve unboxed=last": "i is read as a variable, so e^{i pi} stays symbolic (the same in math-verify)",
        "math-verify": "i is read as a variable, so e^{i pi} stays symbolic",
    },
    "multi-box-reference": {"math-verify": "a reference with several boxes is cut to its last box"},
    "boxed-parts": {"math-verify": "every box of the text is joined, an earlier intermediate result too"},
    "equivalence-27": {"math-verify": "every box of the text is joined, a retracted one too"},
    "reference-trailing": {"math-verify": "a trailing `.` or `\\` of the reference is not cleaned"},
    "mathrm-e": {"math-verify": "\\mathrm{e} is read as a variable e, not Euler's number"},
    "ordered-tuple": {"math-verify": "a set is accepted for a pair read as an open interval"},
}


def load_cases(path: Path) -> list[dict]:
    cases = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            c = json.loads(line)
            missing = {"id", "class", "text", "reference", "label"} - set(c)
            if missing:
                raise ValueError(f"{path}:{n}: case lacks {', '.join(sorted(missing))}")
            cases.append(c)
    return cases


def run_thinksolve(cases: list[dict], **options) -> list[dict]:
    """Verdicts of MathVerifier; cases with ``rel_tol`` go to a verifier with that tolerance."""
    out: list[dict | None] = [None] * len(cases)
    by_tol: dict = OrderedDict()
    for i, c in enumerate(cases):
        by_tol.setdefault(c.get("rel_tol"), []).append(i)
    for tol, idx in by_tol.items():
        with MathVerifier(rel_tol=tol, **options) as v:
            for i, r in zip(idx, v.verify_batch([(cases[i]["text"], cases[i]["reference"]) for i in idx])):
                out[i] = {"correct": r.correct, "detail": f"{r.reason}, extracted {r.extracted!r}"}
    return out  # type: ignore[return-value]


def run_math_verify(cases: list[dict]) -> list[dict]:
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    out = []
    for c in cases:
        ref = c["reference"]
        gold = parse(ref if "\\boxed" in ref else f"${ref}$")
        pred = parse(c["text"])
        try:
            ok = bool(verify(gold, pred))
        except Exception as e:  # report, do not stop
            ok, pred = False, f"error {type(e).__name__}"
        out.append({"correct": ok, "detail": f"gold {gold!r}, pred {pred!r}"[:160]})
    return out


def math500_unboxed_cases(path: Path) -> list[dict]:
    """MATH500 solutions with their boxes opened, each against its answer and against a decoy."""
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    cases = []
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    for r in rows:
        solution, answer = r["solution"], r["answer"]
        boxes = find_boxed(solution)
        pieces, pos = [], 0
        for start, end, content in boxes:
            pieces += [solution[pos:start], content]
            pos = end
        text = "".join(pieces) + solution[pos:]
        cases.append({"id": r["id"], "class": "math500 answer", "text": text, "reference": answer, "label": True})
        gold = parse(f"${answer}$")
        before_box = solution[: boxes[-1][0]] if boxes else solution
        for m in reversed(list(_BARE_NUMBER.finditer(before_box))):
            decoy = m.group()
            if normalize_answer(decoy) != normalize_answer(answer) and not verify(gold, parse(f"${decoy}$")):
                cases.append({"id": r["id"] + "-decoy", "class": "math500 decoy", "text": text,
                              "reference": decoy, "label": False})
                break
    return cases


def run_systems(cases: list[dict]) -> dict[str, list[dict]]:
    """Every system's verdicts on ``cases``, keyed as :data:`SYSTEMS`."""
    return {
        "thinksolve": run_thinksolve(cases),
        "thinksolve unboxed=last": run_thinksolve(cases, unboxed="last"),
        "math-verify": run_math_verify(cases),
    }


def math500_unboxed(path: Path) -> tuple[str, dict]:
    """The MATH500 unboxed-solutions table (markdown) and its record."""
    from benchmarks._results import markdown_table

    cases = math500_unboxed_cases(path)
    t0 = time.perf_counter()
    verdicts = run_systems(cases)
    wall = time.perf_counter() - t0
    pos = [i for i, c in enumerate(cases) if c["label"]]
    neg = [i for i, c in enumerate(cases) if not c["label"]]
    record: dict = {"cases": len(cases), "answers": len(pos), "decoys": len(neg), "wall_s": round(wall, 1)}
    rows = []
    for s in SYSTEMS:
        ok = sum(verdicts[s][i]["correct"] for i in pos)
        fp = sum(verdicts[s][i]["correct"] for i in neg)
        agree = ok + len(neg) - fp
        record[s] = {"answers_accepted": ok, "decoys_accepted": fp, "agree": agree,
                     "missed": [cases[i]["id"] for i in pos if not verdicts[s][i]["correct"]],
                     "false_positives": [cases[i]["id"] for i in neg if verdicts[s][i]["correct"]]}
        rows.append({"system": s, "answers accepted": f"{ok}/{len(pos)}", "decoys accepted (false positives)": f"{fp}/{len(neg)}",
                     "agree with labels": f"{agree}/{len(cases)} ({100 * agree / len(cases):.1f}%)"})
    table = markdown_table(["system", "answers accepted", "decoys accepted (false positives)", "agree with labels"], rows)
    section = (f"MATH500 reference solutions with their boxes opened ({len(pos)} answers, {len(neg)} decoys; "
               f"wall time {wall:.1f} s):\n\n{table}")
    return section, record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    ap.add_argument("--math500", type=Path, default=DEFAULT_MATH500,
                    help="MATH500 jsonl with solutions for the unboxed-solutions table (skipped if missing)")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    cases = load_cases(args.cases)
    t0 = time.perf_counter()
    verdicts = run_systems(cases)
    wall = time.perf_counter() - t0

    classes = list(OrderedDict.fromkeys(c["class"] for c in cases))
    rows = []
    for cls in [*classes, "all"]:
        idx = [i for i, c in enumerate(cases) if cls in ("all", c["class"])]
        row = {"class": cls, "cases": len(idx)}
        for s in SYSTEMS:
            agree = sum(verdicts[s][i]["correct"] == cases[i]["label"] for i in idx)
            row[s] = f"{agree}/{len(idx)}" if cls != "all" else f"{agree}/{len(idx)} ({100 * agree / len(idx):.1f}%)"
        rows.append(row)
    # False positives: an answer accepted that the label says is wrong (the costly error for a reward).
    false_pos = {s: sum(verdicts[s][i]["correct"] and not c["label"] for i, c in enumerate(cases)) for s in SYSTEMS}
    rows.append({"class": "false positives", "cases": sum(not c["label"] for c in cases),
                 **{s: str(false_pos[s]) for s in SYSTEMS}})
    disagreements = []
    for i, c in enumerate(cases):
        for s in SYSTEMS:
            v = verdicts[s][i]
            if v["correct"] != c["label"]:
                disagreements.append({
                    "id": c["id"], "system": s, "label": c["label"], "verdict": v["correct"],
                    "detail": v["detail"],
                    "why": WHY.get(c["id"], {}).get(s) or WHY.get(c["class"], {}).get(s, ""),
                })
    pairwise = sum(ours["correct"] == theirs["correct"]
                   for ours, theirs in zip(verdicts["thinksolve"], verdicts["math-verify"]))

    columns = ["class", "cases", *SYSTEMS]
    lines = ["Disagreements with the labels:"]
    for d in disagreements:
        lines.append(f"- `{d['id']}` {d['system']} said {d['verdict']} ({d['detail']})"
                     + (f": {d['why']}" if d["why"] else ""))
    case_file = args.cases.relative_to(ROOT) if args.cases.is_relative_to(ROOT) else args.cases
    notes = (f"{len(cases)} hand-labelled cases in `{case_file}`; "
             f"thinksolve and math-verify give the same verdict on {pairwise}/{len(cases)}. "
             f"Wall time {wall:.1f} s.\n\n" + "\n".join(lines))
    extra = {"disagreements": disagreements, "same_verdict": pairwise, "false_positives": false_pos}
    from benchmarks._results import markdown_table

    if args.math500.exists():
        section, extra["math500_unboxed"] = math500_unboxed(args.math500)
        notes = section + "\n\n" + notes
    else:
        notes = f"MATH500 unboxed-solutions table skipped: {args.math500} not found.\n\n" + notes
    if args.no_write:
        table = markdown_table(columns, rows)
    else:
        table = write_results("verifier_agreement", columns, rows, notes=notes, extra=extra)
    print(table)
    print()
    print(notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
