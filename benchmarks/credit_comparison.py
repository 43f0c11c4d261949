"""Which credit assignment helps, and at what cost? Credit methods compared under matched budgets.

Every (method, optimizer, seed) is one training run of a preset (default ``tiny-brief``: the
warm-started ``tiny`` model as a separate Thinker and Solver on briefed single-digit arithmetic,
where only the Thinker sees the worked steps). Each run is evaluated on held-out problems every
``--eval-every`` steps, with and without the Thinker; the warm start (step 0) is evaluated once
per seed (it is the same model and the same evaluation samples for every method of that seed).
Two budget views come from the same runs:

* **equal steps** — every method after the same number of training steps;
* **equal Solver generations** — every method at the last evaluation where its cumulative
  Solver generations (joint answers + Thinker-removed answers + SEPO ratings of both raters;
  the Solver-removed replay generates nothing) fit the smallest final budget of any method
  (shared reward's, which generates the least). Training is deterministic in the seed and the
  learning rate is constant, so a run read at step k is the run that stopped at step k.

**Collections.** A flat method collects n = ``rollout.group_size`` thoughts × 1 answer per
problem. A tree method (``tree``, ``ccpo-value``, ``shared-tree``, or any method with the suffix
``@tree``, e.g. ``sepo@tree``) collects n/K thoughts × K answers (``--answers-per-thought K``,
default 2), so its joint Solver answers per problem equal the flat methods' n. ``shared-tree``
(= ``shared@tree``) is the control that separates the collection from the method: on a tree
collection every method's Thinker unit averages the K answers of its thought (credit.role_units),
so shared reward already ranks thoughts by Q̂(x, t) as ``tree`` does; ``tree`` differs from it
only in grouping the Solver by thought.

**Primary metric** (:data:`PRIMARY`, fixed before any run): held-out team accuracy at the final
step, as the paired difference from ``shared`` with the same optimizer and seed (same problems,
same evaluation seed), averaged over seeds, with a t interval over seeds. Next to it:
``SE eval``, the standard error of that mean from evaluation noise alone (per seed the
per-problem paired SE of :func:`algorithms.evaluation.paired_interval`; over seeds
sqrt(Σ SE_s²)/S), ``SE`` the total (sd over seeds /√S; it holds training noise too), and the
minimum detectable difference MDE = 2.8 × SE (α = 0.05 two-sided, 80% power).

Other columns (mean ± std over seeds): Thinker-removed accuracy, the collaboration diagnostic
(team − Thinker removed, docs/method.md#evaluation-and-the-collaboration-diagnostic), Solver generations per
step, SEPO's rating valid rate,
``adv_corr_T`` (the correlation of the Thinker's advantages with shared-reward advantages under
the same estimator, docs/method.md#ccpo: 1.0 means the method only rescales shared reward) and one
run's training time.

    python benchmarks/credit_comparison.py [--preset tiny-brief] [--methods shared ccpo-event tree ...]
        [--optimizers gspo grpo reinforce++] [--seeds 0 1 2 3 4] [--steps N] [--eval-every K]
        [--eval-samples S] [--answers-per-thought K] [--workers 2] [--plugin examples/event_both.py]
        [--name credit_comparison] [--runs DIR] [--results DIR] [--dry-run]

(also ``thinksolve bench credit ...``). Method names: ``shared``, ``ccpo-event``,
``ccpo-margin``, ``ccpo-normalized``, ``sepo``, ``difference``, ``shapley`` (flat), ``tree``,
``ccpo-value``, ``shared-tree`` (tree), any registered name (``--plugin`` imports the file that
registers it), and ``NAME@tree``. The grid runs optimizer by optimizer in the order given, seed by
seed, so a grid stopped early holds whole seeds of the first optimizers. Each finished run is
stored under ``--runs DIR/<method>__<optimizer>__s<seed>/result.json`` (atomically) and reused by
a rerun with the same settings, so an interrupted benchmark continues where it stopped. Results:
``<name>.json``, ``.md`` and ``_curve.png`` under ``--results`` (default: the ``--runs`` directory,
``runs/bench-<name>``). The committed results under ``benchmarks/results/`` are written only when
asked for: ``make bench-credit`` passes ``--results benchmarks/results``.

Cost: a run trains ``--steps`` steps (default: the preset's, 150 for ``tiny-brief``) and is
evaluated every ``--eval-every`` steps; the default grid is 10 methods x 3 optimizers x 5 seeds.
``make bench-credit`` (150 runs of 36 steps) took 97 min of worker time, 50 min on 2 cores.
A small grid for a first look, a few minutes on 2 cores:

    python benchmarks/credit_comparison.py --plugin examples/event_both.py --methods shared event_both \
        --optimizers gspo --seeds 0 --steps 12 --eval-every 6 --eval-samples 1 --runs runs/bench-mine
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
from _results import _atomic_write, markdown_table, write_results  # noqa: E402

#: Benchmark method names → (registered credit method, its parameters, collection).
BUILTIN = {
    "shared": ("shared", {}, "flat"),
    "ccpo-event": ("ccpo", {"variant": "event"}, "flat"),
    "ccpo-margin": ("ccpo", {"variant": "margin"}, "flat"),
    "ccpo-normalized": ("ccpo", {"variant": "normalized"}, "flat"),
    "sepo": ("sepo", {}, "flat"),
    "difference": ("difference", {}, "flat"),
    "shapley": ("shapley", {}, "flat"),
    "tree": ("tree", {}, "tree"),
    "ccpo-value": ("ccpo", {"variant": "value"}, "tree"),
    "shared-tree": ("shared", {}, "tree"),
}
#: A method name with this suffix runs on the tree collection (n/K thoughts × K answers).
TREE_SUFFIX = "@tree"
DEFAULT_METHODS = list(BUILTIN)
DEFAULT_OPTIMIZERS = ["gspo", "grpo", "reinforce++"]
DEFAULT_SEEDS = [0, 1, 2, 3, 4]
#: Generations counted as "Solver generations" (the Thinker's joint thought is not).
BUDGET_PHASES = ("solver", "solo", "rating_thinker", "rating_solver")
#: The primary metric, declared before any run (printed in the table header).
PRIMARY = ("held-out team accuracy at the final step: paired difference method − shared (same optimizer, "
           "seed, problems and evaluation seed), mean over seeds, 95% t interval over seeds")


def method_spec(method: str) -> tuple[str, dict, str]:
    """(credit name, params, collection ``"flat"``|``"tree"``) of a benchmark method name."""
    from algorithms import credit

    base, tree = (method[:-len(TREE_SUFFIX)], True) if method.endswith(TREE_SUFFIX) else (method, False)
    if base in BUILTIN:
        name, params, collection = BUILTIN[base]
    elif base in credit.available():
        name, params, collection = base, {}, "flat"
    else:
        raise ValueError(f"unknown method {method!r}: use one of {', '.join(BUILTIN)}, a registered credit method "
                         f"(registered now: {', '.join(credit.available())}; --plugin FILE loads yours), "
                         f"or NAME{TREE_SUFFIX} for any of them on the tree collection")
    return name, dict(params), "tree" if tree else collection


def method_credit(method: str) -> tuple[str, dict]:
    """(credit name, params) of a benchmark method name; a registered name maps to itself."""
    name, params, _ = method_spec(method)
    return name, params


def run_config(preset: str, method: str, optimizer: str, seed: int, *, steps: int | None, eval_data: str | None,
               eval_samples: int | None, plugins: list[str], out: str, overrides: list[str],
               answers_per_thought: int = 2):
    """The TrainerConfig of one run. A tree method keeps the preset's Solver answers per problem:
    ``rollout.group_size`` n becomes n/K thoughts × K = ``answers_per_thought`` answers."""
    from algorithms.config import apply_credit, apply_optimizer, apply_overrides
    from algorithms.config import preset as get_preset

    cfg = get_preset(preset)
    cfg.plugins = list(plugins)
    cfg.validate()  # loads the plugins
    name, params, collection = method_spec(method)
    cfg = apply_optimizer(apply_credit(cfg, name), optimizer)
    cfg.credit.params = dict(params)
    cfg.seed, cfg.out, cfg.tensorboard = seed, out, False
    if steps is not None:
        cfg.steps = steps
    if eval_data is not None:
        cfg.eval_data = eval_data
    if eval_samples is not None:
        cfg.eval_samples = eval_samples
    cfg = apply_overrides(cfg, overrides)
    if collection == "tree":
        K, n = answers_per_thought, cfg.rollout.group_size
        if isinstance(K, bool) or not isinstance(K, int) or K < 2:
            raise ValueError(f"--answers-per-thought must be an integer >= 2 for the tree methods, got {K!r}")
        if n % K:
            raise ValueError(f"{method}: rollout.group_size={n} is not a multiple of --answers-per-thought={K} "
                             f"(a tree collection spends the same n Solver answers per problem as n/K thoughts x K)")
        cfg.rollout.group_size, cfg.rollout.answers_per_thought = n // K, K
    return cfg.validate()


def collection_of(record_or_config: dict) -> str:
    """``"flat"`` or ``"n/K x K"`` of a run's config dict."""
    r = record_or_config["rollout"]
    K = r.get("answers_per_thought", 1)
    return "flat" if K == 1 else f"tree {r['group_size']}x{K}"


#: Config fields that change no run's results (logging), and fields that only matter to methods
#: that collect ratings (left out of the other methods' keys, so a new rating setting keeps their runs).
NO_RESULT_FIELDS = ("out", "tensorboard")
RATING_FIELDS = ("rating_max_new_tokens", "rating_temperature")


def run_key(cfg, eval_every: int) -> str:
    """A digest of everything that determines a run's results (config and evaluation points)."""
    from algorithms import credit

    d = cfg.to_dict()
    for k in NO_RESULT_FIELDS:
        d.pop(k, None)
    if "ratings" not in credit.get(cfg.credit.name, **cfg.credit.params).requires:
        for k in RATING_FIELDS:
            d["rollout"].pop(k, None)
    blob = json.dumps({"config": d, "eval_every": eval_every}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def start_key(cfg) -> str:
    """A digest of what the warm-start evaluation depends on (not the method, optimizer or steps)."""
    d = cfg.to_dict()
    keep = {k: d[k] for k in ("seed", "eval_data", "eval_samples", "eval_temperature", "warm_start", "model",
                              "plugins") if k in d}
    r = d["rollout"]
    keep["rollout"] = {k: r.get(k) for k in ("thinker_max_new_tokens", "solver_max_new_tokens", "top_p", "prompts",
                                              "max_prompt_tokens")}
    blob = json.dumps({"start": keep}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def solver_generations(row: dict) -> int:
    gens = row.get("generations", {})
    return int(sum(gens.get(p, 0) for p in BUDGET_PHASES))


def _eval_point(step: int, generations: int, ev: dict) -> dict:
    keys = ("joint_accuracy", "solo_accuracy", "collaboration", "help_rate", "hurt_rate")
    per = {k: [round(v, 6) for v in ev["per_problem"][k]] for k in ("joint", "solo")}
    return {"step": step, "solver_generations": generations, **{k: ev[k] for k in keys}, "per_problem": per}


def run_start(task: dict) -> dict:
    """Evaluate the warm start of one seed (step 0 of every run of that seed); returns its record."""
    import torch

    torch.set_num_threads(1)
    from algorithms.config import TrainerConfig
    from algorithms.train import Trainer

    cfg = TrainerConfig.from_dict(task["config"]).validate()
    t0 = time.perf_counter()
    with Trainer(cfg, log=None) as trainer:
        point = _eval_point(0, 0, trainer.evaluate(cfg.eval_data))
    record = {"kind": "start", "seed": cfg.seed, "key": task["key"], "point": point,
              "wall_seconds": time.perf_counter() - t0}
    _atomic_write(Path(task["path"]), json.dumps(record) + "\n")
    return record


def run_task(task: dict) -> dict:
    """A warm-start evaluation or a training run (in a worker process)."""
    return run_start(task) if task.get("kind") == "start" else run_one(task)


def run_one(task: dict) -> dict:
    """Train one (method, optimizer, seed) and evaluate it every ``eval_every`` steps; returns its
    record (its curve starts at the first evaluation after step 0: :func:`with_start` adds step 0).

    Runs in a worker process; a finished record is written atomically to ``task["path"]``."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from algorithms.config import TrainerConfig
    from algorithms.train import Trainer

    cfg = TrainerConfig.from_dict(task["config"]).validate()
    every = task["eval_every"]
    t_start = time.perf_counter()
    curve, diag = [], {"rating_valid_rate": [], "adv_corr_thinker_0": [], "adv_corr_solver_0": [], "batch_accuracy": []}
    gens_per_step, train_s, eval_s = [], 0.0, 0.0
    with Trainer(cfg, log=None) as trainer:
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
        "collection": collection_of(task["config"]),
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
    """The warm-start evaluation of each seed, then one task per (method, optimizer, seed).

    Order (what an interrupted grid has finished first): the first ``args.lead_optimizers``
    optimizers seed by seed (every method of one seed under each of them), then the others seed by
    seed."""
    tasks = []
    lead = max(1, getattr(args, "lead_optimizers", len(args.optimizers)))
    K = getattr(args, "answers_per_thought", 2)
    starts = {}
    for seed in args.seeds:
        run_dir = Path(args.runs) / f"start__s{seed}"
        cfg = run_config(args.preset, "shared", args.optimizers[0], seed, steps=args.steps, eval_data=args.eval_data,
                         eval_samples=args.eval_samples, plugins=args.plugin, out=str(run_dir),
                         overrides=args.overrides)
        starts[seed] = {"kind": "start", "seed": seed, "config": cfg.to_dict(), "key": start_key(cfg),
                        "path": str(run_dir / "result.json")}
        tasks.append(starts[seed])
    for phase in (args.optimizers[:lead], args.optimizers[lead:]):
        for seed in args.seeds:
            for optimizer in phase:
                for method in args.methods:
                    run_dir = Path(args.runs) / f"{method}__{optimizer}__s{seed}"
                    cfg = run_config(args.preset, method, optimizer, seed, steps=args.steps, eval_data=args.eval_data,
                                     eval_samples=args.eval_samples, plugins=args.plugin, out=str(run_dir),
                                     overrides=args.overrides, answers_per_thought=K)
                    if start_key(cfg) != starts[seed]["key"]:
                        raise ValueError(f"{method}: its warm-start evaluation differs from shared's (an override "
                                         f"changes the model, the evaluation or the token budgets)")
                    tasks.append({"method": method, "optimizer": optimizer, "seed": seed, "config": cfg.to_dict(),
                                  "eval_every": args.eval_every, "key": run_key(cfg, args.eval_every),
                                  "path": str(run_dir / "result.json")})
    limit = getattr(args, "limit", None)
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--limit must be >= 1, got {limit}")
        tasks = tasks[:len(starts) + limit]
    return tasks


def with_start(records: list[dict]) -> list[dict]:
    """The training records, each curve led by its seed's warm-start evaluation (step 0)."""
    starts = {r["seed"]: r["point"] for r in records if r.get("kind") == "start"}
    out = []
    for r in records:
        if r.get("kind") == "start":
            continue
        curve = r["curve"] if r["curve"] and r["curve"][0]["step"] == 0 else [starts[r["seed"]], *r["curve"]]
        out.append({**r, "curve": curve})
    return out


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
            records[i] = run_task(tasks[i])
            _log_done(log, n, len(todo), records[i], t0)
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_worker_init,
                                 initargs=(plugins,)) as pool:
            futures = {pool.submit(run_task, tasks[i]): i for i in todo}
            from concurrent.futures import as_completed

            for n, fut in enumerate(as_completed(futures), 1):
                i = futures[fut]
                records[i] = fut.result()
                _log_done(log, n, len(todo), records[i], t0)
    return [records[i] for i in range(len(tasks))]


def _log_done(log, n, total, r, t0) -> None:
    if r.get("kind") == "start":
        p = r["point"]
        log(f"[{n}/{total}] warm start seed {r['seed']}: team {p['joint_accuracy']:.1%}, Thinker removed "
            f"{p['solo_accuracy']:.1%} ({r['wall_seconds']:.0f}s; {time.perf_counter() - t0:.0f}s elapsed)")
        return
    f = r["final"]
    log(f"[{n}/{total}] {r['method']:<16} {r['optimizer']:<12} seed {r['seed']}: team {f['joint_accuracy']:.1%}, "
        f"Thinker removed {f['solo_accuracy']:.1%} ({r['wall_seconds']:.0f}s; {time.perf_counter() - t0:.0f}s elapsed)")


def _prepare_warm_start(config: dict) -> None:
    """Build the (cached) warm start once, before workers race to build it."""
    from algorithms.config import TrainerConfig

    cfg = TrainerConfig.from_dict(config)
    if cfg.warm_start.enabled:
        from algorithms.team.warmstart import warm_start

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


#: Two-sided 95% quantiles t_{0.975, df} of Student's t, df = 1..30.
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t975(df: int) -> float:
    """t_{0.975, df}: the table for df ≤ 30, beyond it z + (z³ + z)/(4·df) (z = 1.96)."""
    if df < 1:
        raise ValueError(f"t975: df must be >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959964
    return z + (z ** 3 + z) / (4 * df)


#: Minimum detectable difference per standard error: z_{0.975} + z_{0.8} (α = 0.05 two-sided, 80% power).
MDE_FACTOR = 2.8


def paired_diff(values: list[float], eval_ses: list[float]) -> dict:
    """Mean over seeds of per-seed differences d_s with its t interval and standard errors.

    ``se`` = sd(d)/√S (everything that varies between seeds: training and evaluation);
    ``se_eval`` = sqrt(Σ_s SE_s²)/S, the part from evaluation noise alone (SE_s: per-problem paired
    standard error of seed s); ``se_eval_seed`` = the root mean square of SE_s (one seed's
    difference); ``mde`` = 2.8 × se (or 2.8 × se_eval with one seed)."""
    d = [float(v) for v in values]
    n = len(d)
    if n == 0:
        raise ValueError("paired_diff: no seeds")
    m, sd = _mean_std(d)
    se_eval = math.sqrt(sum(e * e for e in eval_ses)) / len(eval_ses) if eval_ses else math.nan
    se_eval_seed = math.sqrt(sum(e * e for e in eval_ses) / len(eval_ses)) if eval_ses else math.nan
    if n > 1:
        se = sd / math.sqrt(n)
        half = t975(n - 1) * se
        ci = [m - half, m + half]
    else:
        se, ci = math.nan, [math.nan, math.nan]
    return {"mean": m, "ci95": ci, "se": se, "se_eval": se_eval, "se_eval_seed": se_eval_seed,
            "mde": MDE_FACTOR * (se if n > 1 else se_eval), "seeds": n}


def _eval_se(a: dict, b: dict) -> float:
    from algorithms.evaluation import paired_interval

    return paired_interval(a["per_problem"]["joint"], b["per_problem"]["joint"])["se"]


def _fmt_diff(d: dict) -> str:
    if math.isnan(d["ci95"][0]):
        return f"{d['mean'] * 100:+.1f}"
    return f"{d['mean'] * 100:+.1f} [{d['ci95'][0] * 100:+.1f}, {d['ci95'][1] * 100:+.1f}]"


def _pts(x: float) -> str:
    return "—" if x is None or math.isnan(x) else f"{x * 100:.1f}"


def at_budget(record: dict, budget: int) -> dict:
    """The last evaluation of ``record`` whose cumulative Solver generations fit ``budget``."""
    points = [p for p in record["curve"] if p["solver_generations"] <= budget]
    return points[-1]


def _compare(points: dict, shared_points: dict) -> dict | None:
    """paired_diff of team accuracy, seed by seed (``points``/``shared_points``: seed → eval point)."""
    seeds = sorted(s for s in points if s in shared_points)
    if not seeds:
        return None
    return paired_diff([points[s]["joint_accuracy"] - shared_points[s]["joint_accuracy"] for s in seeds],
                       [_eval_se(points[s], shared_points[s]) for s in seeds])


def summarise(records: list[dict], methods: list[str], optimizers: list[str]) -> tuple[list[dict], list[dict], dict]:
    """(equal-steps rows, equal-generations rows, extra facts) over seeds; ``records`` with step 0."""
    by = {}
    for r in records:
        by.setdefault((r["method"], r["optimizer"]), []).append(r)
    budget = min(r["final"]["solver_generations"] for r in records)
    shared = {(r["optimizer"], r["seed"]): r for r in records if r["method"] == "shared"}
    steps_rows, gen_rows, diffs = [], [], []
    for opt in optimizers:
        for method in methods:
            rs = sorted(by.get((method, opt), []), key=lambda r: r["seed"])
            if not rs:
                continue
            fin = [r["final"] for r in rs]
            d = None
            if method != "shared":
                d = _compare({r["seed"]: r["final"] for r in rs},
                             {s: shared[(opt, s)]["final"] for (o, s) in shared if o == opt})
            if d is not None:
                diffs.append({"optimizer": opt, "method": method, "view": "equal steps", **d})
            steps_rows.append({
                "optimizer": opt, "method": method, "collection": rs[0].get("collection", "flat"), "seeds": len(rs),
                "Solver gens/step": f"{_mean_std([r['solver_generations_per_step'] for r in rs])[0]:.0f}",
                "team %": _pm([f["joint_accuracy"] for f in fin]),
                "Thinker removed %": _pm([f["solo_accuracy"] for f in fin]),
                "collaboration (pts)": _pm([f["collaboration"] for f in fin], signed=True),
                "vs shared (pts) [95% CI]": "—" if d is None else _fmt_diff(d),
                "SE": "—" if d is None else _pts(d["se"]),
                "SE eval": "—" if d is None else _pts(d["se_eval"]),
                "MDE": "—" if d is None else _pts(d["mde"]),
                "rating valid %": _pm([r["rating_valid_rate"] for r in rs]),
                "adv_corr_T": _pm([r["adv_corr_thinker_0"] for r in rs], scale=1.0, digits=2),
                "train s": f"{_mean_std([r['train_seconds'] for r in rs])[0]:.0f}",
            })
            pts = {r["seed"]: at_budget(r, budget) for r in rs}
            g = None
            if method != "shared":
                g = _compare(pts, {s: at_budget(shared[(opt, s)], budget) for (o, s) in shared if o == opt})
            if g is not None:
                diffs.append({"optimizer": opt, "method": method, "view": "equal Solver generations", **g})
            gen_rows.append({
                "optimizer": opt, "method": method,
                "step": "/".join(sorted({str(p["step"]) for p in pts.values()})),
                "Solver gens": f"{_mean_std([p['solver_generations'] for p in pts.values()])[0]:.0f}",
                "team %": _pm([p["joint_accuracy"] for p in pts.values()]),
                "collaboration (pts)": _pm([p["collaboration"] for p in pts.values()], signed=True),
                "vs shared (pts) [95% CI]": "—" if g is None else _fmt_diff(g),
                "SE": "—" if g is None else _pts(g["se"]),
                "SE eval": "—" if g is None else _pts(g["se_eval"]),
            })
    start = list({r["seed"]: r["curve"][0] for r in records}.values())  # one warm-start evaluation per seed
    extra = {"primary_metric": PRIMARY, "generation_budget": budget, "differences": diffs,
             "warm_start": {"team": _mean_std([p["joint_accuracy"] for p in start])[0],
                            "thinker_removed": _mean_std([p["solo_accuracy"] for p in start])[0]},
             "power": power_summary(diffs)}
    return steps_rows, gen_rows, extra


def power_summary(diffs: list[dict]) -> dict:
    """Medians over the equal-steps comparisons (methods that are not exact copies of shared):
    total SE, evaluation-only SE (of the seed mean and of one seed), and the MDE from each."""
    rows = [d for d in diffs if d["view"] == "equal steps" and not (d["se"] == 0 and d["mean"] == 0)]
    exact = sorted({(d["optimizer"], d["method"]) for d in diffs
                    if d["view"] == "equal steps" and d["se"] == 0 and d["mean"] == 0})
    if not rows:
        return {"comparisons": 0, "identical_to_shared": [f"{o}/{m}" for o, m in exact]}

    def med(key):
        v = sorted(d[key] for d in rows if not math.isnan(d[key]))
        return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2 if v else math.nan

    se, se_eval, se_eval_seed = med("se"), med("se_eval"), med("se_eval_seed")
    return {"comparisons": len(rows), "se": se, "se_eval": se_eval, "se_eval_seed": se_eval_seed,
            "mde": MDE_FACTOR * se, "mde_eval_only": MDE_FACTOR * se_eval,
            "seed_part": math.sqrt(max(se * se - se_eval * se_eval, 0.0)) if not math.isnan(se) else math.nan,
            "identical_to_shared": [f"{o}/{m}" for o, m in exact]}


def power_line(p: dict) -> str:
    """The MDE line printed next to the tables."""
    if not p.get("comparisons"):
        return "No comparison with shared reward that differs from it."
    if math.isnan(p["se"]):
        return (f"Power: one seed, so no seed-to-seed estimate; evaluation noise alone gives a paired SE of "
                f"{p['se_eval'] * 100:.1f} pts and a minimum detectable difference (2.8 × SE, α = 0.05 two-sided, "
                f"80% power) of {p['mde_eval_only'] * 100:.1f} pts.")
    larger = p["se"] > p["se_eval"]
    return (f"Power (median over the {p['comparisons']} equal-steps comparisons that are not exact copies of shared): "
            f"paired SE {p['se'] * 100:.1f} pts over seeds, of which evaluation noise alone {p['se_eval'] * 100:.1f} "
            f"(one seed's difference: {p['se_eval_seed'] * 100:.1f}); minimum detectable difference "
            f"(2.8 × SE, α = 0.05 two-sided, 80% power) **{p['mde'] * 100:.1f} pts** "
            f"(evaluation noise alone: {p['mde_eval_only'] * 100:.1f}). "
            + ("The seed-to-seed (training) variation makes the total SE larger than the evaluation's "
               f"(its part: {p['seed_part'] * 100:.1f} pts)." if larger else
               "The seed-to-seed variation does not make the total SE larger than the evaluation's."))


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
            tree = rs[0].get("collection", "flat") != "flat"
            style = "-" if method == "shared" else "-." if tree else "--" if method.startswith("ccpo") else ":"
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
    ap.add_argument("--preset", default="tiny-brief")
    ap.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    ap.add_argument("--optimizers", nargs="+", default=DEFAULT_OPTIMIZERS)
    ap.add_argument("--seeds", nargs="+", type=int, default=DEFAULT_SEEDS)
    ap.add_argument("--steps", type=int, help="training steps per run (default: the preset's)")
    ap.add_argument("--eval-every", type=int, default=50, help="steps between held-out evaluations (default 50)")
    ap.add_argument("--eval-data", help="held-out problems (default: the preset's eval_data)")
    ap.add_argument("--eval-samples", type=int, help="samples per held-out problem (default: the preset's)")
    ap.add_argument("--answers-per-thought", type=int, default=2, metavar="K",
                    help="Solver answers per thought of the tree methods (n/K thoughts x K; default 2)")
    ap.add_argument("--lead-optimizers", type=int, default=2, metavar="N",
                    help="run the first N optimizers for every seed before the others (default 2)")
    ap.add_argument("--limit", type=int, metavar="N",
                    help="only the first N training runs in the grid's order (a grid that was stopped early, exactly)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                    help="parallel runs (one torch thread each)")
    ap.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                    help="import a file or module that registers credit methods (repeatable)")
    ap.add_argument("--runs", help="directory for the per-run records (default runs/bench-<name>)")
    ap.add_argument("--name", default="credit_comparison", help="results file stem under --results")
    ap.add_argument("--results", help="directory for <name>.json, .md and _curve.png (default: the --runs directory; "
                    "`make bench-credit` writes the committed ones with --results benchmarks/results)")
    ap.add_argument("--dry-run", action="store_true",
                    help="check the methods, plugins and overrides, print the grid and where it would write, and exit")
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
    n_runs = sum(1 for t in tasks if t.get("kind") != "start")
    print(f"{n_runs} runs: {len(args.methods)} methods x {len(args.optimizers)} optimizers x "
          f"{len(args.seeds)} seeds on {args.preset} (+ {len(args.seeds)} warm-start evaluations), "
          f"{args.workers} worker(s) -> {args.runs}", flush=True)
    if args.dry_run:
        cfg0 = tasks[0]["config"]
        reused = sum(1 for t in tasks if t.get("kind") != "start" and cached(t) is not None)
        print(f"dry run: {cfg0['steps']} steps per run, evaluated every {args.eval_every} steps on {cfg0['eval_data']} "
              f"({cfg0['eval_samples']} sample(s) per problem); {reused} of {n_runs} runs already done there (reused); "
              f"results -> {Path(args.results or args.runs) / args.name}.json, .md, _curve.png; nothing run or written")
        return 0
    print(f"primary metric: {PRIMARY}", flush=True)
    t0 = time.perf_counter()
    raw = execute(tasks, workers=args.workers, plugins=args.plugin, log=lambda *a: print(*a, flush=True))
    wall = time.perf_counter() - t0
    records = with_start(raw)
    steps_rows, gen_rows, extra = summarise(records, args.methods, args.optimizers)
    results = Path(args.results or args.runs)
    png = plot(records, args.methods, args.optimizers, results / f"{args.name}_curve.png")
    cfg0 = tasks[0]["config"]
    columns = list(steps_rows[0])
    gens = {f"{r['method']} ({r['collection']})": r["Solver gens/step"] for r in steps_rows
            if r["optimizer"] == args.optimizers[0]}
    gen_table = markdown_table(list(gen_rows[0]), gen_rows)
    worker_min = (sum(r["wall_seconds"] for r in raw)) / 60
    notes = (
        f"Primary metric (declared before the runs): {PRIMARY}.\n\n"
        f"{power_line(extra['power'])}\n\n"
        f"Equal training steps ({cfg0['steps']}); held-out {cfg0['eval_data']}, {cfg0['eval_samples']} sample(s) per "
        f"problem at temperature {cfg0['eval_temperature']}, evaluated every {args.eval_every} steps; mean ± std over "
        f"seeds {sorted(args.seeds)}; SE, SE eval and MDE in points. Tree collections: "
        f"{cfg0['rollout']['group_size'] // args.answers_per_thought} thoughts x {args.answers_per_thought} answers. "
        f"Warm start (step 0): team {extra['warm_start']['team']:.1%}, Thinker removed "
        f"{extra['warm_start']['thinker_removed']:.1%}. Solver generations per step: "
        + ", ".join(f"{k} {v}" for k, v in gens.items()) + ".\n\n"
        f"## Equal Solver generations (budget {extra['generation_budget']}: "
        "joint + Thinker-removed answers + ratings)\n\n"
        f"{gen_table}\n\nRuns: {worker_min:.0f} min of worker time in all "
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
                                 "worker_minutes": worker_min,
                                 "reused_runs": sum(1 for t in tasks if t.get("reused"))})
    print()
    print(f"Primary metric: {PRIMARY}")
    print(table)
    print()
    print(notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
