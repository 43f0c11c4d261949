"""Which credit assignment helps, and at what cost? Credit methods compared under matched budgets.

Every (method, optimizer, seed) is one training run of a preset (default ``tiny-arith``: the
warm-started ``tiny`` model, arithmetic problems, 150 steps). Each run is evaluated on held-out
problems before training and every ``--eval-every`` steps, with and without the Thinker, so
two budget views come from the same runs:

* **equal steps** — every method after the same number of training steps;
* **equal Solver generations** — every method at the last evaluation where its cumulative
  Solver generations (joint answers + Thinker-removed answers + SEPO ratings of both raters;
  the Solver-removed replay generates nothing) fit the smallest final budget of any method
  (shared reward's, which generates the least). Training is deterministic in the seed and the
  learning rate is constant, so a run read at step k is the run that stopped at step k.

Table columns (mean ± std over seeds): held-out team accuracy, Thinker-removed accuracy, their
difference (the collaboration diagnostic, METHOD.md §7), help/hurt rates (the team right where
its paired Thinker-removed sample is wrong / the reverse), the paired gain over ``shared``
(same optimizer and seed), SEPO's rating valid rate, ``adv_corr_T`` (the correlation of the
Thinker's advantages with shared-reward advantages under the same estimator, METHOD.md §3:
1.0 means the method only rescales shared reward) and training wall time.

    python benchmarks/credit_comparison.py [--preset tiny-arith] [--methods shared ccpo-event ...]
        [--optimizers grpo gspo reinforce++] [--seeds 0 1 2] [--steps N] [--eval-every K]
        [--workers 2] [--plugin examples/event_both.py] [--name credit_comparison]

(also ``thinksolve bench credit ...``). Method names: ``shared``, ``ccpo-event``,
``ccpo-margin``, ``ccpo-normalized``, ``sepo``, ``difference``, ``shapley``, or any registered
name (``--plugin`` imports the file that registers it). Each finished run is stored under
``--runs DIR/<method>__<optimizer>__s<seed>/result.json`` (atomically) and reused by a rerun
with the same settings, so an interrupted benchmark continues where it stopped. Results:
``benchmarks/results/<name>.json``, ``.md`` and ``_curve.png``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from _results import RESULTS, _atomic_write, markdown_table, write_results  # noqa: E402

#: Benchmark method names → (registered credit method, its parameters).
BUILTIN = {
    "shared": ("shared", {}),
    "ccpo-event": ("ccpo", {"variant": "event"}),
    "ccpo-margin": ("ccpo", {"variant": "margin"}),
    "ccpo-normalized": ("ccpo", {"variant": "normalized"}),
    "sepo": ("sepo", {}),
    "difference": ("difference", {}),
    "shapley": ("shapley", {}),
}
DEFAULT_METHODS = list(BUILTIN)
DEFAULT_OPTIMIZERS = ["grpo", "gspo", "reinforce++"]
#: Generations counted as "Solver generations" (the Thinker's joint thought is not).
BUDGET_PHASES = ("solver", "solo", "rating_thinker", "rating_solver")


def method_credit(method: str) -> tuple[str, dict]:
    """(credit name, params) of a benchmark method name; a registered name maps to itself."""
    from algorithms import credit

    if method in BUILTIN:
        return BUILTIN[method]
    if method in credit.available():
        return method, {}
    raise ValueError(f"unknown method {method!r}: use one of {', '.join(BUILTIN)} or a registered credit method "
                     f"(registered now: {', '.join(credit.available())}; --plugin FILE loads yours)")


def run_config(preset: str, method: str, optimizer: str, seed: int, *, steps: int | None, eval_data: str | None,
               eval_samples: int | None, plugins: list[str], out: str, overrides: list[str]):
    """The TrainerConfig of one run."""
    from algorithms.config import apply_credit, apply_optimizer, apply_overrides, preset as get_preset

    cfg = get_preset(preset)
    cfg.plugins = list(plugins)
    cfg.validate()  # loads the plugins
    name, params = method_credit(method)
    cfg = apply_optimizer(apply_credit(cfg, name), optimizer)
    cfg.credit.params = dict(params)
    cfg.seed, cfg.out, cfg.tensorboard = seed, out, False
    if steps is not None:
        cfg.steps = steps
    if eval_data is not None:
        cfg.eval_data = eval_data
    if eval_samples is not None:
        cfg.eval_samples = eval_samples
    return apply_overrides(cfg, overrides).validate()


def run_key(cfg, eval_every: int) -> str:
    """A digest of everything that determines a run's results (config and evaluation points)."""
    d = cfg.to_dict()
    d.pop("out", None)
    blob = json.dumps({"config": d, "eval_every": eval_every}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def solver_generations(row: dict) -> int:
    gens = row.get("generations", {})
    return int(sum(gens.get(p, 0) for p in BUDGET_PHASES))


def _eval_point(step: int, generations: int, ev: dict) -> dict:
    keys = ("joint_accuracy", "solo_accuracy", "collaboration", "help_rate", "hurt_rate")
    return {"step": step, "solver_generations": generations, **{k: ev[k] for k in keys}}


def run_one(task: dict) -> dict:
    """Train one (method, optimizer, seed) and evaluate it along the way; returns its record.

    Runs in a worker process; a finished record is written atomically to ``task["path"]``."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from algorithms.config import TrainerConfig
    from algorithms.trainer import Trainer

    cfg = TrainerConfig.from_dict(task["config"]).validate()
    every = task["eval_every"]
    t_start = time.perf_counter()
    curve, diag = [], {"rating_valid_rate": [], "adv_corr_thinker_0": [], "adv_corr_solver_0": [], "batch_accuracy": []}
    gens_per_step, train_s, eval_s = [], 0.0, 0.0
    with Trainer(cfg, log=None) as trainer:
        t0 = time.perf_counter()
        curve.append(_eval_point(0, 0, trainer.evaluate(cfg.eval_data)))
        eval_s += time.perf_counter() - t0
        cumulative = 0
        for s in range(cfg.steps):
            t0 = time.perf_counter()
            row = trainer.step()
            train_s += time.perf_counter() - t0
            g = solver_generations(row)
            gens_per_step.append(g)
            cumulative += g
            diag["batch_accuracy"].append(row["joint_accuracy"])
            for k in ("rating_valid_rate", "adv_corr_thinker_0", "adv_corr_solver_0"):
                if row.get(k) is not None:
                    diag[k].append(row[k])
            if (s + 1) % every == 0 or s + 1 == cfg.steps:
                t0 = time.perf_counter()
                curve.append(_eval_point(s + 1, cumulative, trainer.evaluate(cfg.eval_data)))
                eval_s += time.perf_counter() - t0
    record = {
        "method": task["method"], "optimizer": task["optimizer"], "seed": cfg.seed, "key": task["key"],
        "credit": {"name": cfg.credit.name, "params": cfg.credit.params},
        "steps": cfg.steps, "curve": curve, "final": curve[-1],
        "solver_generations_per_step": float(np.mean(gens_per_step)),
        "rating_valid_rate": float(np.mean(diag["rating_valid_rate"])) if diag["rating_valid_rate"] else None,
        "adv_corr_thinker_0": float(np.mean(diag["adv_corr_thinker_0"])) if diag["adv_corr_thinker_0"] else None,
        "adv_corr_solver_0": float(np.mean(diag["adv_corr_solver_0"])) if diag["adv_corr_solver_0"] else None,
        "batch_accuracy_last10": float(np.mean(diag["batch_accuracy"][-10:])),
        "train_seconds": train_s, "eval_seconds": eval_s, "wall_seconds": time.perf_counter() - t_start,
    }
    _atomic_write(Path(task["path"]), json.dumps(record, indent=2) + "\n")
    return record


def plan(args) -> list[dict]:
    """One task per (method, optimizer, seed), in an order that interleaves expensive runs."""
    tasks = []
    for seed in args.seeds:
        for optimizer in args.optimizers:
            for method in args.methods:
                run_dir = Path(args.runs) / f"{method}__{optimizer}__s{seed}"
                cfg = run_config(args.preset, method, optimizer, seed, steps=args.steps, eval_data=args.eval_data,
                                 eval_samples=args.eval_samples, plugins=args.plugin, out=str(run_dir),
                                 overrides=args.overrides)
                tasks.append({"method": method, "optimizer": optimizer, "seed": seed, "config": cfg.to_dict(),
                              "eval_every": args.eval_every, "key": run_key(cfg, args.eval_every),
                              "path": str(run_dir / "result.json")})
    return tasks


def cached(task: dict) -> dict | None:
    path = Path(task["path"])
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if record.get("key") == task["key"] else None


def _worker_init(plugins: list[str]) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if sys.platform.startswith("linux"):  # a killed benchmark takes its workers with it
        try:
            import ctypes
            import signal

            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    from algorithms import credit

    for p in plugins:
        credit.load_plugin(p)


def execute(tasks: list[dict], *, workers: int, plugins: list[str], log=print) -> list[dict]:
    """Run the tasks that have no stored result (``workers`` processes); return every record."""
    records: dict[int, dict] = {}
    todo = []
    for i, t in enumerate(tasks):
        r = cached(t)
        if r is not None:
            records[i] = r
            t["reused"] = True
        else:
            todo.append(i)
    if records:
        log(f"reusing {len(records)} stored run(s); {len(todo)} to run")
    if todo:
        _prepare_warm_start(tasks[todo[0]]["config"])
    t0 = time.perf_counter()
    if workers <= 1 or len(todo) <= 1:
        _worker_init(plugins)
        for n, i in enumerate(todo, 1):
            records[i] = run_one(tasks[i])
            _log_done(log, n, len(todo), records[i], t0)
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_worker_init,
                                 initargs=(plugins,)) as pool:
            futures = {pool.submit(run_one, tasks[i]): i for i in todo}
            from concurrent.futures import as_completed

            for n, fut in enumerate(as_completed(futures), 1):
                i = futures[fut]
                records[i] = fut.result()
                _log_done(log, n, len(todo), records[i], t0)
    return [records[i] for i in range(len(tasks))]


def _log_done(log, n, total, r, t0) -> None:
    f = r["final"]
    log(f"[{n}/{total}] {r['method']:<16} {r['optimizer']:<12} seed {r['seed']}: team {f['joint_accuracy']:.1%}, "
        f"Thinker removed {f['solo_accuracy']:.1%} ({r['wall_seconds']:.0f}s; {time.perf_counter() - t0:.0f}s elapsed)")


def _prepare_warm_start(config: dict) -> None:
    """Build the (cached) warm start once, before workers race to build it."""
    from algorithms.config import TrainerConfig

    cfg = TrainerConfig.from_dict(config)
    if cfg.warm_start.enabled:
        from algorithms.warmstart import warm_start

        warm_start(cfg.warm_start, model=cfg.model.name, prompts=cfg.rollout.prompts, log=None)


# --------------------------------------------------------------------------- summarising


def _mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    if not values:
        return math.nan, math.nan
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return m, sd


def _pm(values: list[float], scale: float = 100.0, digits: int = 1, signed: bool = False) -> str:
    m, sd = _mean_std(values)
    if math.isnan(m):
        return "—"
    sign = "+" if signed else ""
    return f"{m * scale:{sign}.{digits}f} ± {sd * scale:.{digits}f}"


def at_budget(record: dict, budget: int) -> dict:
    """The last evaluation of ``record`` whose cumulative Solver generations fit ``budget``."""
    points = [p for p in record["curve"] if p["solver_generations"] <= budget]
    return points[-1]


def summarise(records: list[dict], methods: list[str], optimizers: list[str]) -> tuple[list[dict], list[dict], dict]:
    """(equal-steps rows, equal-generations rows, extra facts) over seeds."""
    by = {}
    for r in records:
        by.setdefault((r["method"], r["optimizer"]), []).append(r)
    budget = min(r["final"]["solver_generations"] for r in records)
    shared = {(r["optimizer"], r["seed"]): r for r in records if r["method"] == "shared"}
    steps_rows, gen_rows = [], []
    for opt in optimizers:
        for method in methods:
            rs = sorted(by.get((method, opt), []), key=lambda r: r["seed"])
            if not rs:
                continue
            fin = [r["final"] for r in rs]
            gain = [r["final"]["joint_accuracy"] - shared[(opt, r["seed"])]["final"]["joint_accuracy"]
                    for r in rs if (opt, r["seed"]) in shared]
            steps_rows.append({
                "optimizer": opt, "method": method, "seeds": len(rs),
                "team %": _pm([f["joint_accuracy"] for f in fin]),
                "Thinker removed %": _pm([f["solo_accuracy"] for f in fin]),
                "collaboration (pts)": _pm([f["collaboration"] for f in fin], signed=True),
                "help / hurt %": f"{_mean_std([f['help_rate'] for f in fin])[0] * 100:.1f} / "
                                 f"{_mean_std([f['hurt_rate'] for f in fin])[0] * 100:.1f}",
                "vs shared (pts)": _pm(gain, signed=True) if method != "shared" else "—",
                "rating valid %": _pm([r["rating_valid_rate"] for r in rs]),
                "adv_corr_T": _pm([r["adv_corr_thinker_0"] for r in rs], scale=1.0, digits=2),
                "Solver gens/step": f"{_mean_std([r['solver_generations_per_step'] for r in rs])[0]:.0f}",
                "train s": f"{_mean_std([r['train_seconds'] for r in rs])[0]:.0f}",
            })
            pts = [at_budget(r, budget) for r in rs]
            shared_pts = {r["seed"]: at_budget(shared[(opt, r["seed"])], budget) for r in rs if (opt, r["seed"]) in shared}
            gen_gain = [p["joint_accuracy"] - shared_pts[r["seed"]]["joint_accuracy"] for p, r in zip(pts, rs)
                        if r["seed"] in shared_pts]
            gen_rows.append({
                "optimizer": opt, "method": method,
                "step": "/".join(sorted({str(p["step"]) for p in pts})),
                "Solver gens": f"{_mean_std([p['solver_generations'] for p in pts])[0]:.0f}",
                "team %": _pm([p["joint_accuracy"] for p in pts]),
                "Thinker removed %": _pm([p["solo_accuracy"] for p in pts]),
                "collaboration (pts)": _pm([p["collaboration"] for p in pts], signed=True),
                "vs shared (pts)": _pm(gen_gain, signed=True) if method != "shared" else "—",
            })
    start = list({r["seed"]: r["curve"][0] for r in records}.values())  # one warm-start evaluation per seed
    extra = {"generation_budget": budget,
             "warm_start": {"team": _mean_std([p["joint_accuracy"] for p in start])[0],
                            "thinker_removed": _mean_std([p["solo_accuracy"] for p in start])[0]}}
    return steps_rows, gen_rows, extra


def plot(records: list[dict], methods: list[str], optimizers: list[str], path: Path) -> Path | None:
    """Held-out team accuracy (mean over seeds) against training steps and Solver generations."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'thinksolve[bench]'): no plot", file=sys.stderr)
        return None
    fig, axes = plt.subplots(2, len(optimizers), figsize=(5 * len(optimizers), 7.5), squeeze=False, sharey=True)
    for col, opt in enumerate(optimizers):
        for method in methods:
            rs = [r for r in records if r["method"] == method and r["optimizer"] == opt]
            if not rs:
                continue
            n = min(len(r["curve"]) for r in rs)
            acc = [sum(r["curve"][i]["joint_accuracy"] for r in rs) / len(rs) * 100 for i in range(n)]
            steps = [rs[0]["curve"][i]["step"] for i in range(n)]
            gens = [sum(r["curve"][i]["solver_generations"] for r in rs) / len(rs) for i in range(n)]
            style = "-" if method == "shared" else "--" if method.startswith("ccpo") else ":"
            axes[0][col].plot(steps, acc, style, marker="o", ms=3, label=method)
            axes[1][col].plot(gens, acc, style, marker="o", ms=3, label=method)
        axes[0][col].set_title(f"{opt}")
        axes[0][col].set_xlabel("training step")
        axes[1][col].set_xlabel("cumulative Solver generations")
        for row in (0, 1):
            axes[row][col].grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out team accuracy (%)")
    axes[1][0].set_ylabel("held-out team accuracy (%)")
    axes[0][-1].legend(fontsize=8, loc="best")
    seeds = sorted({r["seed"] for r in records})
    fig.suptitle(f"credit methods, mean of {len(seeds)} seed(s)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="credit_comparison", description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny-arith")
    ap.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    ap.add_argument("--optimizers", nargs="+", default=DEFAULT_OPTIMIZERS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, help="training steps per run (default: the preset's)")
    ap.add_argument("--eval-every", type=int, default=50, help="steps between held-out evaluations (default 50)")
    ap.add_argument("--eval-data", help="held-out problems (default: the preset's eval_data)")
    ap.add_argument("--eval-samples", type=int, help="samples per held-out problem (default: the preset's)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="parallel runs (one torch thread each)")
    ap.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                    help="import a file or module that registers credit methods (repeatable)")
    ap.add_argument("--runs", help="directory for the per-run records (default runs/bench-<name>)")
    ap.add_argument("--name", default="credit_comparison", help="results file stem under --results")
    ap.add_argument("--results", default=str(RESULTS), help="results directory (default benchmarks/results)")
    ap.add_argument("overrides", nargs="*", metavar="field=value", help="config overrides for every run")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from algorithms import credit

    for p in args.plugin:
        credit.load_plugin(p)
    if args.eval_every < 1:
        print("credit_comparison: --eval-every must be >= 1", file=sys.stderr)
        return 2
    if "shared" not in args.methods:
        args.methods = ["shared", *args.methods]  # the reference every method is compared with
    args.runs = args.runs or f"runs/bench-{args.name}"
    try:
        tasks = plan(args)
    except (ValueError, ImportError) as e:
        print(f"credit_comparison: {e}", file=sys.stderr)
        return 2
    print(f"{len(tasks)} runs: {len(args.methods)} methods x {len(args.optimizers)} optimizers x "
          f"{len(args.seeds)} seeds on {args.preset}, {args.workers} worker(s) -> {args.runs}", flush=True)
    t0 = time.perf_counter()
    records = execute(tasks, workers=args.workers, plugins=args.plugin,
                      log=lambda *a: print(*a, flush=True))
    wall = time.perf_counter() - t0
    steps_rows, gen_rows, extra = summarise(records, args.methods, args.optimizers)
    results = Path(args.results)
    png = plot(records, args.methods, args.optimizers, results / f"{args.name}_curve.png")
    cfg0 = tasks[0]["config"]
    columns = list(steps_rows[0])
    gen_table = markdown_table(list(gen_rows[0]), gen_rows)
    notes = (
        f"Equal training steps ({cfg0['steps']}); held-out {cfg0['eval_data']}, {cfg0['eval_samples']} sample(s) per "
        f"problem at temperature {cfg0['eval_temperature']}; mean ± std over seeds {sorted(args.seeds)}. Warm start "
        f"(step 0): team {extra['warm_start']['team']:.1%}, Thinker removed {extra['warm_start']['thinker_removed']:.1%}.\n\n"
        f"## Equal Solver generations (budget {extra['generation_budget']}: joint + Thinker-removed answers + ratings)\n\n"
        f"{gen_table}\n\nRuns: {sum(r['wall_seconds'] for r in records) / 60:.0f} min of worker time in all "
        f"(training, evaluations, model loading), one torch thread each"
        f"{'' if png is None else f'; learning curves: {png.name}'}."
    )
    import _results

    _results.RESULTS = results
    import shlex

    command = shlex.join(["python", "benchmarks/credit_comparison.py", *(sys.argv[1:] if argv is None else argv)])
    table = write_results(args.name, columns, steps_rows, notes=notes, command=command,
                          extra={"equal_generations": {"columns": list(gen_rows[0]), "rows": gen_rows}, **extra,
                                 "runs": records, "invocation_seconds": wall,
                                 "reused_runs": sum(1 for t in tasks if t.get("reused"))})
    print()
    print(table)
    print()
    print(notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
