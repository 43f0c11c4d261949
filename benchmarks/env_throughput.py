"""Episodes per second of ThinkSolveEnv with constant-string policies, for each removal mode.

Measures the environment itself (reset, prompts, hand-over, verification of a short boxed
answer) without any model: the ceiling the env puts on rollout speed.

    python benchmarks/env_throughput.py [--episodes 2000] [--data PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_results

from thinksolve_env import MathVerifier, ThinkSolveEnv, load_problems
from thinksolve_env import env as make_env

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "math" / "math500.jsonl"
MODES = {"nobody": None, "thinker_0": ["thinker_0"], "solver_0": ["solver_0"], "both": ["thinker_0", "solver_0"]}


def run(e, episodes: int, remove, n_problems: int, answer: str, thought: str) -> float:
    t0 = time.perf_counter()
    for i in range(episodes):
        e.reset(options={"problem": i % n_problems, "remove": remove})
        for agent in e.agent_iter():
            _, _, term, trunc, _ = e.last()
            e.step(None if term or trunc else (thought if agent == "thinker_0" else answer))
    return episodes / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=2000)
    ap.add_argument("--data", default=str(DATA))
    args = ap.parse_args()
    problems = load_problems(args.data)
    thought = "Consider the structure of the problem; the key step is to simplify first. \\boxed{1}"
    rows = []
    # String layer only (workers=0): the env's own cost plus answer extraction.
    with MathVerifier(workers=0) as verifier:
        for wrapped in (False, True):
            factory = make_env if wrapped else ThinkSolveEnv
            e = factory(problems, verifier=verifier)
            for mode, remove in MODES.items():
                run(e, 50, remove, len(problems), "\\boxed{1}", thought)  # warm-up
                eps = run(e, args.episodes, remove, len(problems), "So the answer is \\boxed{1}.", thought)
                rows.append({"env": "env() (order-enforcing)" if wrapped else "ThinkSolveEnv",
                             "verifier": "string layer (workers=0)", "removed": mode,
                             "episodes": args.episodes, "episodes_per_s": round(eps, 1)})
    # The default verifier with a cold cache: wrong answers go to the symbolic workers once each.
    for mode, remove in MODES.items():
        with MathVerifier() as verifier:
            e = ThinkSolveEnv(problems, verifier=verifier)
            eps = run(e, args.episodes, remove, len(problems), "So the answer is \\boxed{1}.", thought)
        rows.append({"env": "ThinkSolveEnv", "verifier": "default (2 workers), cold cache", "removed": mode,
                     "episodes": args.episodes, "episodes_per_s": round(eps, 1)})
    notes = ("Constant-string policies on MATH500 problems (the answer `1` is wrong for most), one process. "
             "With the string layer only, the rows measure the environment itself; with the default "
             "verifier and a cold cache, each wrong answer costs one symbolic check in a worker process.")
    table = write_results("env_throughput", ["env", "verifier", "removed", "episodes", "episodes_per_s"], rows,
                          notes=notes)
    print(table)


if __name__ == "__main__":
    main()
