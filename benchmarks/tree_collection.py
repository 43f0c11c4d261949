"""What tree rollouts cost: ``collect_groups`` with K answers per thought against flat collection
with the same number of Solver answers (docs/method.md#tree-credit).

Per problem every layout generates the same number of joint Solver answers, n·K = ``--answers``
(default 8), plus ``--solo`` Thinker-removed answers: flat is n = 8 thoughts × K = 1, the tree
layouts n = 4 × K = 2 and n = 2 × K = 4. A tree layout generates fewer thoughts (n instead of
n·K), and its K Solver prompts per thought are identical, so ``TransformersPolicy`` prefills each
once (``share_prefill``); the row ``tree, prefill not shared`` turns that off to show what the
sharing itself buys. Policies: the warm-started ``tiny-brief`` team (the testbed's own prompts
and budgets), one torch thread. The layouts are timed interleaved (flat, tree, tree, …, flat,
…) with the same problems and seeds, after one warm-up round, and each row reports the median
seconds per ``collect_groups`` call, the ratio to flat measured in this run, the generated
tokens per phase and the prompt rows actually prefilled.

    python benchmarks/tree_collection.py [--problems 8] [--answers 8] [--solo 4] [--repeats 7]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _results import write_results  # noqa: E402


def _policies(share_prefill: bool):
    import torch

    from agents import TransformersPolicy
    from agents.models import load_model
    from algorithms.config import preset
    from algorithms.team.warmstart import warm_start

    cfg = preset("tiny-brief")
    path = warm_start(cfg.warm_start, model=cfg.model.name, prompts=cfg.rollout.prompts)
    torch.manual_seed(0)
    pols = {}
    for role in ("thinker_0", "solver_0"):
        model, tok = load_model(str(path), seed=0)
        pols[role] = TransformersPolicy(model, tok, seed=0, share_prefill=share_prefill)
    return cfg, pols


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=8, help="problems per collect_groups call")
    ap.add_argument("--answers", type=int, default=8, help="joint Solver answers per problem (n*K) in every layout")
    ap.add_argument("--solo", type=int, default=4, help="Thinker-removed answers per problem")
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds (after one warm-up round)")
    args = ap.parse_args(argv)

    import torch

    from algorithms.config import prompt_templates
    from algorithms.rollout import collect_groups
    from thinksolve_env import MathVerifier, load_problems

    torch.set_num_threads(1)
    cfg, shared = _policies(True)
    _, plain = _policies(False)
    problems = load_problems(cfg.train_data)[: args.problems]
    r = cfg.rollout
    layouts = [("flat", args.answers, 1, shared)]
    for K in (2, 4):
        if args.answers % K == 0 and args.answers // K >= 1:
            layouts.append((f"tree {args.answers // K}x{K}", args.answers // K, K, shared))
    K0 = 2 if args.answers % 2 == 0 else 1
    layouts.append((f"tree {args.answers // K0}x{K0}, prefill not shared", args.answers // K0, K0, plain))

    times = {name: [] for name, *_ in layouts}
    info = {}
    with MathVerifier(workers=0) as verifier:  # the string layer: verification is not what is measured
        for rnd in range(args.repeats + 1):
            for name, n, K, pols in layouts:
                distinct = list({id(p): p for p in pols.values()}.values())
                before = [p.prefill_rows for p in distinct]
                t = time.perf_counter()
                groups = collect_groups(problems, pols, group_size=n, answers_per_thought=K, needs={"solo"},
                                        solo_samples=args.solo, verifier=verifier, seed=1000 + rnd,
                                        temperature=r.temperature, thinker_max_new_tokens=r.thinker_max_new_tokens,
                                        solver_max_new_tokens=r.solver_max_new_tokens,
                                        env_options={"prompts": prompt_templates(r.prompts)})
                dt = time.perf_counter() - t
                if rnd:
                    times[name].append(dt)
                b = groups.budget
                info[name] = {"n": n, "K": K, "thoughts": b["thinker"]["generations"],
                              "solver answers": b["solver"]["generations"] + b["solo"]["generations"],
                              "thinker tokens": b["thinker"]["tokens"],
                              "solver tokens": b["solver"]["tokens"] + b["solo"]["tokens"],
                              "prefilled rows": sum(p.prefill_rows - b0 for p, b0 in zip(distinct, before))}
    flat = statistics.median(times["flat"])
    rows = []
    for name, *_ in layouts:
        med = statistics.median(times[name])
        rows.append({"layout": name, **info[name], "s per collect": f"{med:.3f}", "over flat": f"{med / flat:.2f}"})
    notes = (f"{args.problems} tiny-brief problems per call, {args.answers} joint Solver answers + {args.solo} "
             f"Thinker-removed answers per problem in every layout; median of {args.repeats} interleaved rounds, one "
             "torch thread, string-layer verifier. 'over flat' is measured in this run; tokens and prefilled rows are "
             "those of the last round.")
    command = shlex.join(["python", "benchmarks/tree_collection.py", *(sys.argv[1:] if argv is None else argv)])
    columns = ["layout", "n", "K", "thoughts", "solver answers", "thinker tokens", "solver tokens", "prefilled rows",
               "s per collect", "over flat"]
    print(write_results("tree_collection", columns, rows, notes=notes, command=command))
    print(notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
