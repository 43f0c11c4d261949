"""Evaluation speed: ``thinksolve eval`` through the command line against the library call.

Workload: the first ``--limit`` (50) MATH500 problems; the model (``--model``) is by default the
``tiny`` model warm-started as the ``tiny-arith`` preset does (cached; compact prompts): it boxes
a number, which MATH500's references (fractions, intervals, expressions) send to the verifier's
symbolic layer, in its worker processes, the case where a worker pool's start shows (the random
``tiny`` model's noise rarely gets that far: ``--model tiny`` measures generation and start-up
only). One sample per problem at temperature 1, seed 0, with the Thinker removed as well (the
default evaluation: two collections per problem), ``--max-new-tokens`` per role. Every system
evaluates the same problems with the same seeds, so they generate the same tokens; only how the
verification is organised differs.

Rows:

* ``library, one verifier``: ``evaluate(team, problems, chunk=5)`` in this process on a team
  loaded beforehand; ``evaluate`` makes one :class:`~thinksolve_env.MathVerifier` (one worker
  pool) for all its chunks and closes it; the pool's start is inside the time.
* ``library, a verifier per chunk (before)``: the same chunks (seeds ``seed + j``) evaluated one
  ``evaluate`` call each, so that each chunk starts and ends its own pool, as ``thinksolve eval``
  did before (``collect_groups`` made a verifier per call when none was passed).
* ``thinksolve eval (CLI)``: ``python -m algorithms.cli eval --model tiny ...`` in a subprocess
  of this checkout: wall time of the whole command (interpreter start, imports, model build, the
  evaluation, the record), and the evaluation alone (the ``seconds`` of its record).
* ``library, in a fresh process``: the same library call in a new interpreter (``python -c``:
  imports, ``load_team``, ``evaluate``), i.e. what a script pays that the CLI pays too.
* ``start-up floor (imports + model build)``: a new interpreter that imports torch and
  transformers and builds the model with ``AutoModelForCausalLM.from_pretrained``, nothing else:
  what any process that evaluates this model with transformers pays before its first token.
* ``thinksolve eval (CLI, before)``: the same command in an older checkout (``--baseline-root``,
  e.g. ``git worktree add /tmp/evalbase <commit>``), when given.

Each row is the median over ``--repeats`` runs (rows interleaved within a repeat, so machine load
hits them alike); ``ratio`` is the row's time over ``library, one verifier``. The done-when of
issue #21: the CLI's wall time within 1.5x of the library call.

Usage::

    python benchmarks/eval_speed.py [--limit 50] [--max-new-tokens 64] [--repeats 3] [--baseline-root DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "math" / "math500.jsonl"
WARM = "tiny-arith-warm"


def cli_run(root: Path, args: argparse.Namespace) -> dict:
    """``thinksolve eval`` of checkout ``root`` in a subprocess: wall time and the evaluation's own
    seconds (the new record's ``seconds``; before: the sum of the sources' ``seconds``)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "evals.jsonl"
        cmd = [sys.executable, "-m", "algorithms.cli", "eval", "--model", args.model_path, "--data", str(args.data),
               "--limit", str(args.limit), "--max-new-tokens", str(args.max_new_tokens), "--seed", str(args.seed),
               "--prompts", args.prompts, "--out", str(out)]
        env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS=str(args.threads))
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} (in {root}) failed:\n{proc.stderr[-2000:]}")
        text = out.read_text()
    try:
        record = json.loads(text.splitlines()[-1])  # JSON lines: the last record
    except ValueError:
        record = json.loads(text)  # before: one indented JSON object
    results = record["results"]
    seconds = record.get("seconds") or sum(r["seconds"] for r in results.values())
    r = next(iter(results.values()))
    return {"wall_s": wall, "eval_s": seconds, "joint_accuracy": r["joint_accuracy"], "solo_accuracy": r["solo_accuracy"]}


SCRIPT = """
import json, sys, time
import torch
torch.set_num_threads({threads})
from algorithms.config import RolloutConfig
from algorithms.evaluation import evaluate
from algorithms.team import load_team
from thinksolve_env import load_problems
problems = load_problems({data!r}, limit={limit})
team, _ = load_team({model!r}, seed={seed})
rollout = RolloutConfig(thinker_max_new_tokens={budget}, solver_max_new_tokens={budget}, prompts={prompts!r})
t0 = time.perf_counter()
r = evaluate(team, problems, seed={seed}, chunk={chunk}, samples=1, temperature=1.0, rollout=rollout)
print(json.dumps({{"eval_s": time.perf_counter() - t0, "joint_accuracy": r["joint_accuracy"]}}))
"""


def script_run(args: argparse.Namespace, chunk: int) -> dict:
    """The library call in a fresh interpreter: wall time of the whole process."""
    code = SCRIPT.format(threads=args.threads, data=str(args.data), limit=args.limit, model=args.model_path, seed=args.seed,
                         budget=args.max_new_tokens, prompts=args.prompts, chunk=chunk)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS=str(args.threads))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"the library script failed:\n{proc.stderr[-2000:]}")
    return {"wall_s": wall, **json.loads(proc.stdout.strip().splitlines()[-1])}


FLOOR = """
import torch
torch.set_num_threads({threads})
from transformers import AutoModelForCausalLM
AutoModelForCausalLM.from_pretrained({model!r})
"""


def floor_run(args: argparse.Namespace) -> dict:
    """Start-up floor: a fresh interpreter that imports torch and transformers and builds the model."""
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", FLOOR.format(threads=args.threads, model=args.model_path)], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"the start-up floor script failed:\n{proc.stderr[-2000:]}")
    return {"wall_s": wall, "eval_s": 0.0, "joint_accuracy": None}


def library_runs(team, problems, rollout, args: argparse.Namespace) -> dict:
    from algorithms.evaluation import evaluate

    chunk = max(1, min(32, math.ceil(len(problems) / 10)))  # what thinksolve eval uses
    common = dict(samples=1, temperature=1.0, rollout=rollout)
    t0 = time.perf_counter()
    one = evaluate(team, problems, seed=args.seed, chunk=chunk, **common)
    t_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    parts = [evaluate(team, problems[lo:lo + chunk], seed=args.seed + j, **common)
             for j, lo in enumerate(range(0, len(problems), chunk))]
    t_fresh = time.perf_counter() - t0
    joint = sum(p["joint_accuracy"] * p["problems"] for p in parts) / len(problems)
    assert abs(joint - one["joint_accuracy"]) < 1e-9, "the two library rows should generate the same answers"
    return {"one": {"wall_s": t_one, "eval_s": one["seconds"], "joint_accuracy": one["joint_accuracy"],
                    "solo_accuracy": one["solo_accuracy"], "tokens": one["tokens"]},
            "fresh": {"wall_s": t_fresh, "eval_s": t_fresh, "joint_accuracy": joint}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="problem file (default: shared MATH500)")
    ap.add_argument("--limit", type=int, default=50, help="problems (default 50)")
    ap.add_argument("--model", default=WARM, help=f"a model name or folder (default {WARM}: the tiny model warm-started "
                                                  "as the tiny-arith preset does, with its compact prompts)")
    ap.add_argument("--max-new-tokens", type=int, default=64, help="generation budget per role (default 64)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-root", type=Path, help="an older checkout whose `thinksolve eval` is timed too")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads in every system (default 1: on a shared machine, spinning OpenMP threads "
                         "that wait for a busy core make timings erratic)")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    ap.add_argument("--name", default="eval_speed",
                    help="results name under benchmarks/results (default eval_speed; e.g. eval_speed_default_budget "
                         "for a run at the CLI's default budget)")
    args = ap.parse_args(argv)

    import torch

    from algorithms.config import RolloutConfig, preset
    from algorithms.team import load_team
    from algorithms.team.warmstart import warm_start
    from thinksolve_env import load_problems

    torch.set_num_threads(args.threads)
    problems = load_problems(args.data, limit=args.limit)
    if args.model == WARM:
        cfg = preset("tiny-arith")
        args.model_path = str(warm_start(cfg.warm_start, model=cfg.model.name, prompts=cfg.rollout.prompts))
        args.prompts = cfg.rollout.prompts
    else:
        args.model_path, args.prompts = args.model, "default"
    team, _ = load_team(args.model_path, seed=args.seed)
    rollout = RolloutConfig(thinker_max_new_tokens=args.max_new_tokens, solver_max_new_tokens=args.max_new_tokens,
                            prompts=args.prompts)
    load_before = os.getloadavg()[0]
    runs: dict[str, list[dict]] = {"library": [], "fresh": [], "script": [], "cli": [], "floor": [], "cli_before": []}
    for i in range(args.repeats):
        lib = library_runs(team, problems, rollout, args)
        runs["library"].append(lib["one"])
        runs["fresh"].append(lib["fresh"])
        runs["script"].append(script_run(args, max(1, min(32, math.ceil(len(problems) / 10)))))
        runs["cli"].append(cli_run(ROOT, args))
        runs["floor"].append(floor_run(args))
        if args.baseline_root:
            runs["cli_before"].append(cli_run(args.baseline_root, args))
        print(f"repeat {i + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]['wall_s']:.1f}s" for k, v in runs.items() if v),
              flush=True)
    load_after = os.getloadavg()[0]

    def med(name: str, key: str = "wall_s") -> float:
        return statistics.median(r[key] for r in runs[name])

    base = med("library")
    names = {"library": "library, one verifier", "fresh": "library, a verifier per chunk (before)",
             "script": "library, in a fresh process", "cli": "thinksolve eval (CLI)",
             "floor": "start-up floor (imports + model build)",
             "cli_before": "thinksolve eval (CLI, before)"}
    rows = []
    for key, label in names.items():
        if not runs[key]:
            continue
        wall, ev = med(key), med(key, "eval_s")
        rows.append({"system": label, "wall s": round(wall, 2), "evaluation s": round(ev, 2),
                     "problems/s": round(len(problems) / wall, 2), "ratio": round(wall / base, 2),
                     "team accuracy": runs[key][0]["joint_accuracy"]})
        print(rows[-1], flush=True)
    cli_ratio = med("cli") / base
    ratios = {"cli_over_library": cli_ratio, "cli_evaluation_over_library": med("cli", "eval_s") / base,
              "cli_over_library_fresh_process": med("cli") / med("script"),
              "cli_start_up_s": med("cli") - med("cli", "eval_s"), "start_up_floor_s": med("floor"),
              "cli_over_library_plus_floor": med("cli") / (base + med("floor"))}
    if runs["cli_before"]:
        ratios["cli_before_over_cli"] = med("cli_before") / med("cli")
    model = "the tiny model warm-started as tiny-arith (compact prompts)" if args.model == WARM else f"model {args.model}"
    notes = (f"{len(problems)} problems of {args.data.name}, {model}, temperature 1, 1 sample, Thinker removed too "
             f"(two collections per problem), up to {args.max_new_tokens} new tokens per role, "
             f"{runs['library'][0]['tokens']} tokens generated per evaluation, chunks of "
             f"{max(1, min(32, math.ceil(len(problems) / 10)))} problems; median of {args.repeats} interleaved repeats. "
             "`wall s`: the whole call (for the CLI: interpreter start, imports, model build, evaluation, record); "
             "`evaluation s`: the evaluation alone. `ratio`: wall time over `library, one verifier`. "
             f"CLI / library = {cli_ratio:.2f} (done-when: <= 1.5); the CLI's evaluation alone / library = "
             f"{ratios['cli_evaluation_over_library']:.2f}; CLI / the library call in a fresh process = "
             f"{ratios['cli_over_library_fresh_process']:.2f} (the difference is the start-up every new process pays: "
             "imports, model build); the CLI's start-up (wall minus evaluation) "
             f"{ratios['cli_start_up_s']:.2f} s against the floor of {ratios['start_up_floor_s']:.2f} s that any process "
             "importing torch and transformers and building the model pays; CLI / (library + floor) = "
             f"{ratios['cli_over_library_plus_floor']:.2f}"
             + (f"; CLI before / CLI now = {ratios['cli_before_over_cli']:.2f}" if runs["cli_before"] else "")
             + f". CPU only ({os.cpu_count()} cores), {args.threads} torch "
             "thread(s) in every system (OMP_NUM_THREADS for the CLI); load average "
             f"before/after {load_before:.1f}/{load_after:.1f} (the machine is shared: other jobs slow every row alike).")
    if args.baseline_root:
        head = subprocess.run(["git", "-C", str(args.baseline_root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True)
        notes += f" Before: the checkout at {head.stdout.strip() or args.baseline_root}."
    if args.no_write:
        print(notes)
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _results import write_results

    table = write_results(args.name, ["system", "wall s", "evaluation s", "problems/s", "ratio", "team accuracy"], rows,
                          notes=notes, extra={"runs": runs, "settings": {k: str(v) for k, v in vars(args).items()},
                                              **ratios})
    print(table)
    print(notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
