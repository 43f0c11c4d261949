"""The ``thinksolve`` command line.

Subcommands:

* ``demo`` — the main job until the trainer lands: plays MATH500 episodes with scripted
  policies through :class:`~thinksolve_env.ThinkSolveEnv` and prints the team's accuracy with
  nobody, the Thinker, the Solver, and both removed (the counterfactuals CCPO is built on).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser", "scripted_team"]

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "math" / "math500.jsonl"

_MATH_SPAN = re.compile(r"\$([^$]{1,200})\$")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def scripted_team(problems):
    """A scripted Thinker and Solver for demos and smoke tests.

    * Thinker: "has read the worked solution" — it writes the problem's reference solution
      (``meta["solution"]``) with its ``\\boxed{}`` wrappers removed, as the Thinker prompt asks
      (no boxed final answer), or a restatement when there is no solution.
    * Solver: with a thought, it boxes the last inline-math span of the thought (the env has
      already stripped a trailing ``\\boxed{}``, so it must find the result in the working);
      alone (solo prompt) it boxes the last number in the problem statement — a weak guess.
    """
    from agents import ScriptedPolicy

    from thinksolve_env.verifier import find_boxed

    def unbox(text: str) -> str:
        out, last = [], 0
        for start, end, content in find_boxed(text):
            out += [text[last:start], content]
            last = end
        return "".join(out) + text[last:]

    solutions = {p.problem: unbox(p.meta.get("solution") or f"Restate: {p.problem}") for p in problems}

    def thinker(messages):
        return solutions.get(messages[-1]["content"], "No idea.")

    def solver(messages):
        user = messages[-1]["content"]
        if "\n\nThinker's thought:\n" in user:
            thought = user.split("\n\nThinker's thought:\n", 1)[1]
            spans = _MATH_SPAN.findall(thought)
            if spans:
                return f"From the thought, the result is $\\boxed{{{spans[-1].strip()}}}$."
            nums = _NUMBER.findall(thought)
            return f"\\boxed{{{nums[-1]}}}" if nums else "I cannot tell."
        nums = _NUMBER.findall(user)
        return f"A guess: \\boxed{{{nums[-1] if nums else 0}}}"

    return ScriptedPolicy(thinker, name="worked-solution-thinker"), ScriptedPolicy(solver, name="copy-solver")


def _play(env, policies, options, seed=None):
    """One episode, driven the way PettingZoo users drive any AEC env."""
    env.reset(seed=seed, options=options)
    for agent in env.agent_iter():
        obs, reward, term, trunc, info = env.last()
        if term or trunc:
            action = None
        else:
            action = policies[agent].generate([info["messages"]], max_new_tokens=4096)[0].text
        env.step(action)
    return env.unwrapped.outcome


def cmd_demo(args) -> int:
    from thinksolve_env import MathVerifier, env as make_env, load_problems

    data = Path(args.data)
    problems = load_problems(data, limit=args.episodes, seed=args.seed)
    thinker, solver = scripted_team(problems)
    policies = {"thinker_0": thinker, "solver_0": solver}
    modes = [
        ("nobody", None),
        ("thinker_0", ["thinker_0"]),
        ("solver_0", ["solver_0"]),
        ("both", ["thinker_0", "solver_0"]),
    ]
    print(f"thinksolve demo: {len(problems)} problems from {data.name}, scripted Thinker/Solver (see `scripted_team`)")
    rows = []
    with MathVerifier() as verifier:
        e = make_env(problems, verifier=verifier)
        for name, remove in modes:
            t0 = time.perf_counter()
            rewards = [_play(e, policies, {"problem": i, "remove": remove})["reward"] for i in range(len(problems))]
            dt = time.perf_counter() - t0
            acc = sum(r > 0 for r in rewards) / len(rewards)
            rows.append((name, len(rewards), acc, len(rewards) / dt))
        e.close()
    print()
    print("| removed    | episodes | accuracy | episodes/s |")
    print("|------------|---------:|---------:|-----------:|")
    for name, n, acc, eps in rows:
        print(f"| {name:<10} | {n:>8} | {acc:>8.1%} | {eps:>10.1f} |")
    joint, solo = rows[0][2], rows[1][2]
    print()
    print(f"collaboration diagnostic (joint - Thinker removed): {joint - solo:+.1%}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thinksolve", description="Think–Solve multi-agent RL toolkit")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="play MATH500 episodes with scripted policies in every removal mode")
    demo.add_argument("--data", default=str(DEFAULT_DATA), help="problem file (JSONL/parquet); default: shared MATH500")
    demo.add_argument("--episodes", type=int, default=48, help="problems to play per mode (default 48)")
    demo.add_argument("--seed", type=int, default=0, help="seed for choosing the problems")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "episodes", 1) < 1:
        print("thinksolve: --episodes must be >= 1", file=sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
