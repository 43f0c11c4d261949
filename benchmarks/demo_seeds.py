"""`make demo` (``thinksolve demo``) with several seeds: how much of its gain is the seed?

Runs the demo — warm start, held-out evaluation, 150 CCPO steps of ``tiny-arith``, evaluation
again — once per seed and tabulates team and Thinker-removed accuracy before and after.

    python benchmarks/demo_seeds.py [--seeds 0 1 2] [--runs runs/demo-seeds]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from _results import write_results  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--runs", default="runs/demo-seeds", help="one demo run directory per seed below this")
    args = ap.parse_args(argv)
    from algorithms.cli import main as cli

    rows = []
    for seed in args.seeds:
        out = Path(args.runs) / f"s{seed}"
        rc = cli(["demo", "--seed", str(seed), "--out", str(out)])
        if rc != 0:
            print(f"demo_seeds: the demo with seed {seed} failed (exit {rc})", file=sys.stderr)
            return rc
        d = json.loads((out / "demo.json").read_text())
        b, a = d["before"], d["after"]
        pct = lambda v, sign="": f"{100 * v:{sign}.1f}"  # noqa: E731  (one decimal in the table)
        rows.append({"seed": seed, "team before %": pct(b["joint_accuracy"]), "team after %": pct(a["joint_accuracy"]),
                     "gain (pts)": pct(a["joint_accuracy"] - b["joint_accuracy"], "+"),
                     "Thinker removed before %": pct(b["solo_accuracy"]), "Thinker removed after %": pct(a["solo_accuracy"]),
                     "collaboration after (pts)": pct(a["collaboration"], "+"), "wall s": round(d["wall_s"]),
                     "before": b, "after": a})
    cfg = d["config"]
    gains = [100 * (r["after"]["joint_accuracy"] - r["before"]["joint_accuracy"]) for r in rows]
    notes = (f"`thinksolve demo --seed S`: {cfg['steps']} steps of tiny-arith, credit {cfg['credit']['name']} "
             f"{cfg['credit']['params'] or '(event)'}; held-out {cfg['eval_data']}, {cfg['eval_samples']} samples per "
             f"problem at temperature {cfg['eval_temperature']}. Mean gain {sum(gains) / len(gains):+.1f} points over "
             f"{len(gains)} seeds.")
    command = shlex.join(["python", "benchmarks/demo_seeds.py", *(sys.argv[1:] if argv is None else argv)])
    columns = [c for c in rows[0] if c not in ("before", "after")]
    print(write_results("demo_seeds", columns, rows, notes=notes, command=command))
    print(notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
