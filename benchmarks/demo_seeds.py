"""`make demo` (``thinksolve demo``) with several seeds: how much of its gain is the seed?

Runs the demo — warm start, held-out evaluation, 150 CCPO steps of ``tiny-brief``, evaluation
again — once per seed and tabulates team and Thinker-removed accuracy before and after, with
each seed's paired 95% interval (over the held-out problems) for the gain and for the final
collaboration gap (team − Thinker removed).

    python benchmarks/demo_seeds.py [--seeds 0 1 2] [--runs runs/demo-seeds] [--cold]
                                    [--preset tiny-brief] [--jobs 1] [field=value ...]

``--preset`` runs the demo of another preset (``smollm2-brief``: the real instruct model; its
results go to ``demo_seeds_<preset>``); ``--jobs N`` runs N seeds at once, each a separate
``thinksolve demo`` process (the presets use one torch thread, so 2 jobs fill a 2-core machine;
the warm start is trained first, once, so the jobs share it). Overrides go to every seed's run.

``--preset tiny-relay`` runs the three-role demo (planner_0 → relay_0 → solver_0): its table has,
per seed, the team before and after, the gain, and after training the accuracy without each role
and the middle role's contribution (team − without it, paired 95% interval over the held-out
problems); the notes give each role's contribution as a mean over the seeds with a t interval.

``--cold`` runs the seeds with an empty ``THINKSOLVE_CACHE`` (a fresh temporary directory): the
first seed then trains the warm start, as on a new machine, and its ``wall s`` is the time a new
user waits; the later seeds reuse it (the warm start does not depend on the run's seed).
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


def _pct(v: float, sign: str = "") -> str:
    """A fraction as a percentage with one decimal, as the table shows it."""
    return f"{100 * v:{sign}.1f}"


def _ci(r: dict) -> str:
    """A paired difference and its 95% interval, in signed percentage points."""
    return f"{_pct(r['mean'], '+')} [{_pct(r['ci95'][0], '+')}, {_pct(r['ci95'][1], '+')}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--runs", default="runs/demo-seeds", help="one demo run directory per seed below this")
    ap.add_argument("--cold", action="store_true",
                    help="start from an empty THINKSOLVE_CACHE (the first seed trains the warm start)")
    ap.add_argument("--preset", default="tiny-brief", help="the demo's preset (default tiny-brief)")
    ap.add_argument("--jobs", type=int, default=1, help="seeds run at once, each in its own process")
    ap.add_argument("overrides", nargs="*", metavar="field=value", help="config overrides for every seed's run")
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs must be at least 1, got {args.jobs}")
    import os
    import subprocess
    import tempfile

    if args.cold:
        os.environ["THINKSOLVE_CACHE"] = tempfile.mkdtemp(prefix="thinksolve-cold-cache-")
    from algorithms.cli import main as cli

    def demo_args(seed: int) -> list[str]:
        return ["demo", "--preset", args.preset, "--seed", str(seed), "--out", str(Path(args.runs) / f"s{seed}"),
                *args.overrides]

    if args.jobs == 1:
        for seed in args.seeds:
            rc = cli(demo_args(seed))
            if rc != 0:
                print(f"demo_seeds: the demo with seed {seed} failed (exit {rc})", file=sys.stderr)
                return rc
    else:
        from algorithms import apply_overrides, preset
        from algorithms.team.warmstart import model_source

        cfg = apply_overrides(preset(args.preset), list(args.overrides))
        for name in {cfg.model.name, cfg.model.solver_name or cfg.model.name}:
            model_source(cfg, name)  # the warm start, once, before the jobs share it
        Path(args.runs).mkdir(parents=True, exist_ok=True)
        pending = list(args.seeds)
        running: list[tuple[int, subprocess.Popen]] = []
        failed = 0
        while pending or running:
            while pending and len(running) < args.jobs:
                seed = pending.pop(0)
                log = open(Path(args.runs) / f"s{seed}.log", "w")  # noqa: SIM115 (closed with the process)
                cmd = [sys.executable, "-m", "algorithms.cli", *demo_args(seed)]
                running.append((seed, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)))
            seed, proc = running.pop(0)
            if proc.wait() != 0:
                print(f"demo_seeds: the demo with seed {seed} failed (exit {proc.returncode}); "
                      f"see {Path(args.runs) / f's{seed}.log'}", file=sys.stderr)
                failed = proc.returncode
        if failed:
            return failed

    demos = {seed: json.loads((Path(args.runs) / f"s{seed}" / "demo.json").read_text()) for seed in args.seeds}
    if "roles" in demos[args.seeds[0]]:
        return _chain_table(args, demos, argv)
    rows = []
    for seed in args.seeds:
        d = demos[seed]
        b, a = d["before"], d["after"]
        wall = round(d["wall_s"])
        rows.append({"seed": seed, "team before %": _pct(b["joint_accuracy"]),
                     "team after %": _pct(a["joint_accuracy"]),
                     "gain (pts) [95%]": _ci(d["gain"]),
                     "Thinker removed before %": _pct(b["solo_accuracy"]),
                     "Thinker removed after %": _pct(a["solo_accuracy"]),
                     "collaboration after (pts) [95%]": _ci(d["collaboration"]["after"]),
                     "wall s": f"{wall} (cold cache)" if args.cold and seed == args.seeds[0] else wall,
                     "before": {k: v for k, v in b.items() if k != "per_problem"},
                     "after": {k: v for k, v in a.items() if k != "per_problem"},
                     "gain": d["gain"], "collaboration": d["collaboration"]})
    cfg = d["config"]
    gains = [100 * (r["after"]["joint_accuracy"] - r["before"]["joint_accuracy"]) for r in rows]
    concurrent = f"; {args.jobs} seeds at a time, one process each" if args.jobs > 1 else ""
    notes = (f"`thinksolve demo --preset {args.preset} --seed S`{concurrent}: {cfg['steps']} steps, "
             f"credit {cfg['credit']['name']} "
             f"{cfg['credit']['params'] or '(event)'}; held-out {cfg['eval_data']}, {cfg['eval_samples']} samples per "
             f"problem at temperature {cfg['eval_temperature']}. Mean gain {sum(gains) / len(gains):+.1f} points over "
             f"{len(gains)} seeds.")
    command = shlex.join(["python", "benchmarks/demo_seeds.py", *(sys.argv[1:] if argv is None else argv)])
    columns = [c for c in rows[0] if c not in ("before", "after", "gain", "collaboration")]
    name = "demo_seeds" if args.preset == "tiny-brief" else f"demo_seeds_{args.preset}"
    print(write_results(name, columns, rows, notes=notes, command=command))
    print(notes)
    return 0


#: The 97.5% quantile of Student's t by degrees of freedom (a normal one beyond).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086}


def _over_seeds(values: list[float]) -> dict:
    """Mean over seeds with a t interval (95%, n − 1 degrees of freedom)."""
    import math

    import numpy as np

    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if x.size < 2:
        return {"mean": mean, "ci95": [None, None], "n": int(x.size)}
    half = float(_T975.get(x.size - 1, 1.96) * x.std(ddof=1) / math.sqrt(x.size))
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": int(x.size)}


def _chain_table(args, demos: dict, argv) -> int:
    """The table of a team of more than two roles (``demo.json`` with ``roles``)."""
    first = demos[args.seeds[0]]
    roles = first["roles"]
    middle = roles[1:-1]
    rows = []
    for seed, d in demos.items():
        b, a, c = d["before"], d["after"], d["contribution"]
        row = {"seed": seed, "team before %": _pct(b["joint_accuracy"]), "team after %": _pct(a["joint_accuracy"]),
               "gain (pts) [95%]": _ci(d["gain"])}
        for role in roles:
            row[f"without {role} after %"] = _pct(a["removed"][role])
        for role in middle:
            row[f"{role} contribution before (pts)"] = _pct(c["before"][role]["mean"], "+")
            row[f"{role} contribution after (pts) [95%]"] = _ci(c["after"][role])
        row["wall s"] = f"{round(d['wall_s'])} (cold cache)" if args.cold and seed == args.seeds[0] else round(d["wall_s"])
        row.update({"before": {k: v for k, v in b.items() if k != "per_problem"},
                    "after": {k: v for k, v in a.items() if k != "per_problem"},
                    "gain": d["gain"], "contribution": c})
        rows.append(row)
    cfg = first["config"]
    over = {role: _over_seeds([d["contribution"]["after"][role]["mean"] for d in demos.values()]) for role in roles}
    gain = _over_seeds([d["gain"]["mean"] for d in demos.values()])

    def fmt(r: dict) -> str:
        lo, hi = r["ci95"]
        return f"{100 * r['mean']:+.1f}" + (f" [{100 * lo:+.1f}, {100 * hi:+.1f}]" if lo is not None else "")

    concurrent = f"; {args.jobs} seeds at a time, one process each" if args.jobs > 1 else ""
    notes = (f"`thinksolve demo --preset {args.preset} --seed S`{concurrent}: {' -> '.join(roles)}, {cfg['steps']} steps, "
             f"credit {cfg['credit']['name']} {cfg['credit']['params'] or '(event)'}; held-out {cfg['eval_data']}, "
             f"{cfg['eval_samples']} samples per problem at temperature {cfg['eval_temperature']}; a role's contribution "
             f"is the team's accuracy minus its accuracy without the role (paired over the problems). Over "
             f"{len(demos)} seeds (mean, 95% t interval, points): gain {fmt(gain)}; contribution after training "
             + ", ".join(f"{role} {fmt(over[role])}" for role in roles) + ".")
    command = shlex.join(["python", "benchmarks/demo_seeds.py", *(sys.argv[1:] if argv is None else argv)])
    columns = [c for c in rows[0] if c not in ("before", "after", "gain", "contribution")]
    print(write_results(f"demo_seeds_{args.preset}", columns, rows, notes=notes, command=command))
    print(notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
