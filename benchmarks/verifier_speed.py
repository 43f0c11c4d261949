"""Verifier speed on MATH500: thinksolve's isolated MathVerifier against math-verify called directly.

Workloads (500 pairs each, from MATH500):

* ``solutions``: each reference solution (full text, last ``\\boxed{}``) against its answer.
* ``rewritten``: an equivalent rewrite of each answer (``42`` → ``\\frac{84}{2}``, ``\\frac{3}{4}`` →
  ``\\frac{6}{8}``, ``0.25`` → ``\\frac{1}{4}``, ``\\sqrt{2}`` → ``2^{1/2}``, ``p-q`` → ``(p-q)``, ...)
  boxed at the end of a short text. A rewrite is kept only if math-verify itself judges it equal
  (otherwise the answer is used with extra spaces), so both systems do comparable work.
* ``rewritten x4``: the rewritten set with each pair four times, shuffled, as the samples of a
  GRPO group repeat answers (this is where the verdict cache counts).

Systems:

* ``math-verify direct``: ``verify(parse("$" + answer + "$"), parse(text))`` in this process with
  math-verify's default extraction configs and timeouts (signal-based; main thread only).
* ``thinksolve, N worker(s)``: ``MathVerifier(workers=N)``: string fast path in this process,
  the symbolic part in N worker processes with a hard deadline per answer and a verdict cache.
  Each measurement uses a fresh verifier (cold cache) whose pool was started beforehand; the
  start-up time is reported separately.

Throughput = pairs / wall time of one ``verify_batch`` call over the workload (the direct call
loops). Latency = per-pair wall time over sequential single ``verify`` calls on a fresh
verifier. Every number is the median over ``--repeats`` runs.

Usage::

    python benchmarks/verifier_speed.py [--repeats 3] [--workers 1 2] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import re
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal
from fractions import Fraction
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from thinksolve_env.verifier import MathVerifier  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "math" / "math500.jsonl"


# --------------------------------------------------------------------------- workloads

_INT = re.compile(r"-?\d+")
_FRAC = re.compile(r"(-?)\\d?frac\{(\d+)\}\{(\d+)\}")
_DEC = re.compile(r"-?\d*\.\d+")
_SQRT = re.compile(r"\\sqrt\{(\d+)\}")
_COEF_SQRT = re.compile(r"(\d+)\\sqrt\{(\d+)\}")
_PI_FRAC = re.compile(r"\\d?frac\{(\d*)\\pi\}\{(\d+)\}")
_STRUCTURED = re.compile(r",|\\text|=|<|>|\\le|\\ge|\\in|\\cup|matrix|\\\{|\[|\]|\\infty|\\circ|\\%|\\\$")


def rewrite(answer: str) -> str:
    """An equivalent but differently written form of a MATH answer (or the answer spaced out)."""
    a = answer.strip()
    if _INT.fullmatch(a):
        return f"\\frac{{{2 * int(a)}}}{{2}}"
    m = _FRAC.fullmatch(a)
    if m:
        return f"{m.group(1)}\\frac{{{2 * int(m.group(2))}}}{{{2 * int(m.group(3))}}}"
    if _DEC.fullmatch(a):
        f = Fraction(Decimal(a))
        return f"\\frac{{{f.numerator}}}{{{f.denominator}}}"
    m = _SQRT.fullmatch(a)
    if m:
        return f"{m.group(1)}^{{1/2}}"
    m = _COEF_SQRT.fullmatch(a)
    if m:
        return f"\\sqrt{{{int(m.group(1)) ** 2 * int(m.group(2))}}}"
    m = _PI_FRAC.fullmatch(a)
    if m:
        return f"\\frac{{{m.group(1) or 1}}}{{{m.group(2)}}}\\pi"
    if not _STRUCTURED.search(a):
        return f"\\left({a}\\right)"
    return " ".join(a.replace(",", " , ").split())


def wrap(answer: str) -> str:
    return f"We simplify step by step.\n\nTherefore the answer is $\\boxed{{{answer}}}$."


def load_rows(path: Path, limit: int | None) -> list[dict]:
    with open(path) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return rows[:limit] if limit else rows


# --------------------------------------------------------------------------- systems


def _mv():
    from math_verify import parse, verify

    return parse, verify


def direct_judge(text: str, answer: str) -> bool:
    parse, verify = _mv()
    return bool(verify(parse("$" + answer + "$"), parse(text)))


def _direct_loop(pairs: list[tuple[str, str]]) -> dict:
    lat = []
    correct = 0
    t0 = time.perf_counter()
    for text, ref in pairs:
        t = time.perf_counter()
        correct += direct_judge(text, ref)
        lat.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "latencies": lat, "correct": correct}


def run_direct(pairs: list[tuple[str, str]], warm: tuple[str, str]) -> dict:
    """The direct loop in a fresh interpreter, so that it starts as cold as a fresh worker pool
    (sympy's and math-verify's caches would otherwise carry over between repeats)."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"pairs": pairs, "warm": warm}, f)
    try:
        out = subprocess.run([sys.executable, __file__, "--direct-child", f.name],
                             capture_output=True, text=True, check=True)
    finally:
        os.unlink(f.name)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _direct_child(path: str) -> int:
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    with open(path) as f:
        job = json.load(f)
    direct_judge(*job["warm"])
    res = _direct_loop([tuple(p) for p in job["pairs"]])
    print(json.dumps(res))
    return 0


def _fresh_verifier(workers: int, warm: tuple[str, str]) -> tuple[MathVerifier, float]:
    v = MathVerifier(workers=workers, timeout=5.0)
    t = time.perf_counter()
    v.verify(*warm)  # starts (and warms) the pool; never part of a measured workload
    return v, time.perf_counter() - t


def run_verifier(pairs: list[tuple[str, str]], workers: int, warm: tuple[str, str]) -> dict:
    v, start = _fresh_verifier(workers, warm)
    try:
        before = dict(v.stats)
        t0 = time.perf_counter()
        out = v.verify_batch(pairs)
        wall = time.perf_counter() - t0
        stats = {k: v.stats[k] - before[k] for k in before}
    finally:
        v.close()
    v, _ = _fresh_verifier(workers, warm)
    try:
        lat = []
        for text, ref in pairs:
            t = time.perf_counter()
            v.verify(text, ref)
            lat.append(time.perf_counter() - t)
    finally:
        v.close()
    return {"wall_s": wall, "latencies": lat, "correct": sum(r.correct for r in out),
            "pool_start_s": start, "stats": stats}


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def summarise(runs: list[dict], n: int) -> dict:
    walls = [r["wall_s"] for r in runs]
    lat_p50 = [pct(r["latencies"], 50) for r in runs]
    lat_p99 = [pct(r["latencies"], 99) for r in runs]
    out = {
        "pairs": n,
        "pairs_per_s": n / statistics.median(walls),
        "p50_ms": 1000 * statistics.median(lat_p50),
        "p99_ms": 1000 * statistics.median(lat_p99),
        "correct": runs[-1]["correct"],
        "runs": len(runs),
    }
    if "pool_start_s" in runs[-1]:
        out["pool_start_s"] = statistics.median(r["pool_start_s"] for r in runs)
        out["fast_path"] = runs[-1]["stats"]["fast"]
        out["symbolic"] = runs[-1]["stats"]["symbolic"]
        out["cache_hits"] = runs[-1]["stats"]["cache_hits"]
    return out


# --------------------------------------------------------------------------- main


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("math-verify", "latex2sympy2_extended", "sympy", "antlr4-python3-runtime"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    try:
        out["thinksolve_commit"] = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        out["thinksolve_commit"] = None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MATH500 JSONL with `solution` and `answer`")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--limit", type=int, default=None, help="use the first N problems only")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--direct-child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.direct_child:
        return _direct_child(args.direct_child)
    load_start = os.getloadavg()
    logging.getLogger("math_verify").setLevel(logging.ERROR)

    rows = load_rows(args.data, args.limit)
    solutions = [(r["solution"], r["answer"]) for r in rows]
    # Warm-up pair for every system (loads the parser); not in any workload.
    warm = (wrap("\\frac{3}{7}+\\frac{1}{7}"), "\\frac{4}{7}")

    rewritten, kept = [], 0
    for r in rows:
        rw = rewrite(r["answer"])
        if rw != r["answer"] and direct_judge(wrap(rw), r["answer"]):
            kept += 1
        else:
            rw = " ".join(r["answer"].split()) + " "
        rewritten.append((wrap(rw), r["answer"]))
    rng = random.Random(0)
    grouped = [p for p in rewritten for _ in range(4)]
    rng.shuffle(grouped)
    workloads = {"solutions": solutions, "rewritten": rewritten, "rewritten x4": grouped}

    results: dict[str, dict[str, dict]] = {}
    for wname, pairs in workloads.items():
        results[wname] = {}
        runs = [run_direct(pairs, warm) for _ in range(args.repeats)]
        results[wname]["math-verify direct"] = summarise(runs, len(pairs))
        for w in args.workers:
            runs = [run_verifier(pairs, w, warm) for _ in range(args.repeats)]
            results[wname][f"thinksolve, {w} worker{'s' if w > 1 else ''}"] = summarise(runs, len(pairs))
        base = results[wname]["math-verify direct"]["pairs_per_s"]
        for res in results[wname].values():
            res["ratio_vs_direct"] = res["pairs_per_s"] / base

    args_given = argv if argv is not None else sys.argv[1:]
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *args_given])
    meta = {
        "command": command,
        "date_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "processor": platform.processor()},
        "versions": versions(),
        "data": str(args.data),
        "problems": len(rows),
        "rewrites_kept": kept,
        "repeats": args.repeats,
        "load_average_1m": {"start": round(load_start[0], 2), "end": round(os.getloadavg()[0], 2)},
    }
    lines = render(results, meta)
    print("\n".join(lines))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "verifier_speed.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    (args.out / "verifier_speed.md").write_text("\n".join(lines) + "\n")
    return 0


def render(results: dict, meta: dict) -> list[str]:
    v = meta["versions"]
    lines = [
        "# Verifier speed on MATH500",
        "",
        f"Command: `{meta['command']}` (run from the repository root)  ",
        f"Date: {meta['date_utc']}; {meta['machine']['cpus']} CPUs; {meta['machine']['platform']}  ",
        f"Versions: python {v['python']}, math-verify {v['math-verify']}, latex2sympy2_extended "
        f"{v['latex2sympy2_extended']}, sympy {v['sympy']}, antlr4 {v['antlr4-python3-runtime']}; "
        f"thinksolve {v['thinksolve_commit']}  ",
        f"Problems: {meta['problems']}; rewrites math-verify accepts: {meta['rewrites_kept']}; "
        f"median of {meta['repeats']} runs; 1-min load average {meta['load_average_1m']['start']} at the "
        f"start, {meta['load_average_1m']['end']} at the end.",
        "",
        "| workload | system | pairs/s | ratio vs direct | p50 ms | p99 ms | judged equal "
        "| fast path / symbolic / cache hits | pool start s |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for wname, systems in results.items():
        for name, r in systems.items():
            split = f"{r['fast_path']} / {r['symbolic']} / {r['cache_hits']}" if "fast_path" in r else "-"
            start = f"{r['pool_start_s']:.2f}" if "pool_start_s" in r else "-"
            lines.append(
                f"| {wname} | {name} | {r['pairs_per_s']:.0f} | {r['ratio_vs_direct']:.2f} | {r['p50_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {r['correct']}/{r['pairs']} | {split} | {start} |"
            )
    lines += [
        "",
        "Throughput: one `verify_batch` over the workload (direct: a loop in one process). Latency: "
        "sequential single calls on a fresh verifier (cold cache). Every run starts cold: the direct "
        "loop in a fresh interpreter, the verifier with fresh workers. `symbolic` counts distinct "
        "pairs sent to workers (MATH500 repeats many answers, so a batch sends fewer); the pool is "
        "started before timing (its start-up is the last column).",
    ]
    return lines


if __name__ == "__main__":
    sys.exit(main())
