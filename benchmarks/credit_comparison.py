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

**Chains of three or more roles** (a preset whose ``rollout.roles`` names more than two, e.g.
``tiny-relay``: planner_0 → relay_0 → solver_0; docs/method.md#teams-of-more-than-two-roles):
the methods are ``shared``, ``ccpo-event``, ``ccpo-margin``, ``difference``, ``shapley`` (exact:
every coalition), ``tree``, ``ccpo-value``, ``shared-tree`` (:data:`CHAIN_METHODS`, the first five
and ``tree`` by default) and registered methods that are defined for the chain; ``sepo`` and
``ccpo-normalized`` (two roles only) are refused with the method's own reason. Each run collects
what ``credit.needs_for(method, roles)`` asks for. A tree collection branches K ways at every
position, so ``rollout.group_size`` n becomes n/K^(N−1) first-role texts (K^(N−1) joint episodes
below each) and the last role's joint answers per problem stay n. The budget is the **last
role's generations** (its joint answers + the replays in which it answers afresh, from the
collection's per-coalition budget; the key ``solver_generations`` of a chain's records holds
them), and the evaluation plays every problem with the whole team and with each role removed.
Columns: team accuracy (the primary metric, as above), accuracy without each role and each role's
contribution (team − without it), last-role generations, replays (counterfactual episodes, each
verified once) and their generations (all roles) per step, ``adv_corr`` of every role, and one
run's training and wall time. The default optimizer of a chain is the preset's own (``dr_grpo``
for ``tiny-relay``).

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
#: The methods a chain of three or more roles can run (the others are two-role only).
CHAIN_METHODS = ["shared", "ccpo-event", "ccpo-margin", "difference", "shapley", "tree", "ccpo-value", "shared-tree"]
#: The default grid of a chain preset.
DEFAULT_CHAIN_METHODS = ["shared", "ccpo-event", "difference", "shapley", "tree"]
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
    if is_chain(cfg):
        return _chain_config(cfg, method, name, params, collection, answers_per_thought)
    if collection == "tree":
        K, n = answers_per_thought, cfg.rollout.group_size
        if isinstance(K, bool) or not isinstance(K, int) or K < 2:
            raise ValueError(f"--answers-per-thought must be an integer >= 2 for the tree methods, got {K!r}")
        if n % K:
            raise ValueError(f"{method}: rollout.group_size={n} is not a multiple of --answers-per-thought={K} "
                             f"(a tree collection spends the same n Solver answers per problem as n/K thoughts x K)")
        cfg.rollout.group_size, cfg.rollout.answers_per_thought = n // K, K
    return cfg.validate()


def is_chain(cfg) -> bool:
    """Whether a TrainerConfig (or its dict) is a team of three or more roles."""
    roles = cfg["rollout"].get("roles") if isinstance(cfg, dict) else cfg.rollout.roles
    return roles is not None and len(roles) > 2


def _chain_config(cfg, method: str, name: str, params: dict, collection: str, answers_per_thought: int):
    """:func:`run_config` for a chain: the method must be defined for the chain; a tree collection
    branches K ways at every position and keeps the last role's n joint answers per problem
    (n/K^(N−1) first-role texts)."""
    from algorithms import credit

    roles = tuple(cfg.rollout.roles)
    try:
        credit.needs_for(credit.get(name, **params), roles)
    except ValueError as e:
        raise ValueError(f"{method} is not defined for a chain of {len(roles)} roles: {e} "
                         f"(methods for a chain: {', '.join(CHAIN_METHODS)}, or a registered method that is)") from None
    if collection == "tree":
        K, n = answers_per_thought, cfg.rollout.group_size
        if isinstance(K, bool) or not isinstance(K, int) or K < 2:
            raise ValueError(f"--answers-per-thought must be an integer >= 2 for the tree methods, got {K!r}")
        below = K ** (len(roles) - 1)
        if n % below:
            raise ValueError(f"{method}: rollout.group_size={n} is not a multiple of K^(N-1) = {K}^{len(roles) - 1} = "
                             f"{below} (a tree collection of {len(roles)} roles spends the same n last-role answers per "
                             f"problem as n/K^(N-1) first-role texts, branching K ways at every position)")
        cfg.rollout.group_size, cfg.rollout.answers_per_thought = n // below, K
    cfg = cfg.validate()
    from algorithms.train.preflight import check_collection

    check_collection(cfg.credit.build(), cfg)
    return cfg


def preset_optimizer(preset_name: str) -> str | None:
    """The name in :data:`~algorithms.config.OPTIMIZERS` whose fields the preset's optim has."""
    from algorithms.config import OPTIMIZERS
    from algorithms.config import preset as get_preset

    optim = get_preset(preset_name).optim
    for name, fields in OPTIMIZERS.items():
        if all(getattr(optim, k) == v for k, v in fields.items()):
            return name
    return None


def collection_of(record_or_config: dict) -> str:
    """``"flat"`` or ``"n/K x K"`` of a run's config dict."""
    r = record_or_config["rollout"]
    K = r.get("answers_per_thought", 1)
    if K > 1 and is_chain(record_or_config):
        return f"tree {r['group_size']}" + f"x{K}" * (len(r["roles"]) - 1)
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
    if is_chain(d):  # (two-role keys stay as they were, so stored two-role runs are reused)
        keep["rollout"].update({k: r.get(k) for k in ("roles", "role_max_new_tokens")})
    blob = json.dumps({"start": keep}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def solver_generations(row: dict) -> int:
    gens = row.get("generations", {})
    return int(sum(gens.get(p, 0) for p in BUDGET_PHASES))


def chain_budget(budget: dict, roles: tuple[str, ...]) -> dict:
    """A chain collection's budget (``groups.budget``) summed for the tables: ``last`` the last
    role's generations (its joint answers + the replays in which it answers afresh), ``replays``
    the counterfactual episodes (each verified once), ``replay_generations`` their generations
    (every role), ``by_role`` each role's generations (joint + replays)."""
    last = roles[-1]
    coalitions = {k: v for k, v in budget.items() if k not in roles and isinstance(v, dict) and "by_role" in v}
    by_role = {r: budget.get(r, {}).get("generations", 0) + sum(c["by_role"].get(r, 0) for c in coalitions.values())
               for r in roles}
    return {"last": by_role[last], "replays": sum(c["verifier_calls"] for c in coalitions.values()),
            "replay_generations": sum(c["generations"] for c in coalitions.values()), "by_role": by_role}


def _chain_point(step: int, generations: int, ev: dict) -> dict:
    """An evaluation of a chain: team accuracy, accuracy without each role, each role's contribution."""
    per = {k: [round(v, 6) for v in vals] for k, vals in ev["per_problem"].items()}
    return {"step": step, "solver_generations": generations, "joint_accuracy": ev["joint_accuracy"],
            "removed": dict(ev["removed"]), "contribution": dict(ev["contribution"]),
            "solo_accuracy": ev["solo_accuracy"], "per_problem": per}


def _eval_point(step: int, generations: int, ev: dict) -> dict:
    if "removed" in ev and "contribution" in ev:  # a chain of three or more roles
        return _chain_point(step, generations, ev)
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
    roles = tuple(cfg.rollout.roles)
    chain = len(roles) > 2
    spent, adv_corr = [], {r: [] for r in roles}
    with Trainer(cfg, log=None) as trainer:
        cumulative = 0
        for s in range(cfg.steps):
            t0 = time.perf_counter()
            row = trainer.step()
            train_s += time.perf_counter() - t0
            if chain:
                spent.append(chain_budget(trainer.last_groups.budget, roles))
                for r in roles:
                    if row.get(f"adv_corr_{r}") is not None:
                        adv_corr[r].append(row[f"adv_corr_{r}"])
            g = spent[-1]["last"] if chain else solver_generations(row)
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
    if chain:
        record["roles"] = list(roles)
        record["replays_per_step"] = float(np.mean([b["replays"] for b in spent]))
        record["replay_generations_per_step"] = float(np.mean([b["replay_generations"] for b in spent]))
        record["generations_per_step_by_role"] = {r: float(np.mean([b["by_role"][r] for b in spent])) for r in roles}
        record["adv_corr"] = {r: float(np.mean(v)) if v else None for r, v in adv_corr.items()}
    _atomic_write(Path(task["path"]), json.dumps(record, indent=2) + "\n")
    return record


def preset_is_chain(preset_name: str, overrides: list[str] | None = None) -> bool:
    """Whether the preset (with the overrides) is a team of three or more roles."""
    from algorithms.config import apply_overrides
    from algorithms.config import preset as get_preset

    cfg = get_preset(preset_name)
    try:
        cfg = apply_overrides(cfg, list(overrides or []))
    except ValueError:  # a bad override is named by run_config
        pass
    return is_chain(cfg)


def resolve_defaults(args) -> None:
    """Fill ``--methods``/``--optimizers`` left out: every built-in and gspo, grpo, reinforce++
    for two roles; for a chain :data:`DEFAULT_CHAIN_METHODS` and the preset's own optimizer."""
    chain = None
    if getattr(args, "methods", None) is None:
        chain = preset_is_chain(args.preset, args.overrides)
        args.methods = list(DEFAULT_CHAIN_METHODS if chain else DEFAULT_METHODS)
    if getattr(args, "optimizers", None) is None:
        chain = preset_is_chain(args.preset, args.overrides) if chain is None else chain
        own = preset_optimizer(args.preset) if chain else None
        args.optimizers = [own] if own else list(DEFAULT_OPTIMIZERS)


def plan(args) -> list[dict]:
    """The warm-start evaluation of each seed, then one task per (method, optimizer, seed).

    Order (what an interrupted grid has finished first): the first ``args.lead_optimizers``
    optimizers seed by seed (every method of one seed under each of them), then the others seed by
    seed."""
    resolve_defaults(args)
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
    if r.get("kind") == "start" and "removed" in r["point"]:
        p = r["point"]
        log(f"[{n}/{total}] warm start seed {r['seed']}: team {p['joint_accuracy']:.1%}, "
            + ", ".join(f"without {k} {v:.1%}" for k, v in p["removed"].items())
            + f" ({r['wall_seconds']:.0f}s; {time.perf_counter() - t0:.0f}s elapsed)")
        return
    if r.get("kind") == "start":
        p = r["point"]
        log(f"[{n}/{total}] warm start seed {r['seed']}: team {p['joint_accuracy']:.1%}, Thinker removed "
            f"{p['solo_accuracy']:.1%} ({r['wall_seconds']:.0f}s; {time.perf_counter() - t0:.0f}s elapsed)")
        return
    f = r["final"]
    if "removed" in f:
        log(f"[{n}/{total}] {r['method']:<16} {r['optimizer']:<12} seed {r['seed']}: team {f['joint_accuracy']:.1%}, "
            + ", ".join(f"without {k} {v:.1%}" for k, v in f["removed"].items())
            + f" ({r['wall_seconds']:.0f}s; {time.perf_counter() - t0:.0f}s elapsed)")
        return
    log(f"[{n}/{total}] {r['method']:<16} {r['optimizer']:<12} seed {r['seed']}: team {f['joint_accuracy']:.1%}, "
        f"Thinker removed {f['solo_accuracy']:.1%} ({r['wall_seconds']:.0f}s; {time.perf_counter() - t0:.0f}s elapsed)")


def _prepare_warm_start(config: dict) -> None:
    """Build the (cached) warm start once, before workers race to build it."""
    from algorithms.config import TrainerConfig

    cfg = TrainerConfig.from_dict(config)
    if cfg.warm_start.enabled:
        from algorithms.team.warmstart import warm_start

        roles = {"roles": cfg.rollout.roles} if is_chain(cfg) else {}
        warm_start(cfg.warm_start, model=cfg.model.name, prompts=cfg.rollout.prompts, log=None, **roles)


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
    if records and records[0].get("roles") and len(records[0]["roles"]) > 2:
        return summarise_chain(records, methods, optimizers)
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


def _role_short(role: str) -> str:
    return role[:-2] if role.endswith("_0") else role


def summarise_chain(records: list[dict], methods: list[str], optimizers: list[str]) -> tuple[list[dict], list[dict], dict]:
    """:func:`summarise` for a chain of three or more roles: team accuracy (the primary metric,
    paired with shared as for two roles), accuracy without each role, each role's contribution
    (team − without it), last-role generations and replays per step; the equal-generations view
    reads every run at the last evaluation where its cumulative last-role generations fit the
    smallest final budget."""
    roles = records[0]["roles"]
    last = roles[-1]
    by = {}
    for r in records:
        by.setdefault((r["method"], r["optimizer"]), []).append(r)
    budget = min(r["final"]["solver_generations"] for r in records)
    shared = {(r["optimizer"], r["seed"]): r for r in records if r["method"] == "shared"}
    steps_rows, gen_rows, diffs = [], [], []

    def accuracies(points: list[dict]) -> dict:
        row = {"team %": _pm([p["joint_accuracy"] for p in points])}
        row.update({f"without {_role_short(k)} %": _pm([p["removed"][k] for p in points]) for k in roles})
        row.update({f"{_role_short(k)} contribution (pts)": _pm([p["contribution"][k] for p in points], signed=True)
                    for k in roles})
        return row

    def vs_shared(d: dict | None, mde: bool = True) -> dict:
        out = {"vs shared (pts) [95% CI]": "—" if d is None else _fmt_diff(d),
               "SE": "—" if d is None else _pts(d["se"]), "SE eval": "—" if d is None else _pts(d["se_eval"])}
        if mde:
            out["MDE"] = "—" if d is None else _pts(d["mde"])
        return out

    for opt in optimizers:
        for method in methods:
            rs = sorted(by.get((method, opt), []), key=lambda r: r["seed"])
            if not rs:
                continue
            d = None
            if method != "shared":
                d = _compare({r["seed"]: r["final"] for r in rs},
                             {s: shared[(opt, s)]["final"] for (o, s) in shared if o == opt})
            if d is not None:
                diffs.append({"optimizer": opt, "method": method, "view": "equal steps", **d})
            corr = "/".join("—" if math.isnan(_mean_std([(r.get("adv_corr") or {}).get(k) for r in rs])[0]) else
                            f"{_mean_std([(r.get('adv_corr') or {}).get(k) for r in rs])[0]:.2f}" for k in roles)
            steps_rows.append({
                "optimizer": opt, "method": method, "collection": rs[0].get("collection", "flat"), "seeds": len(rs),
                f"{last} gens/step": f"{_mean_std([r['solver_generations_per_step'] for r in rs])[0]:.0f}",
                "replays/step": f"{_mean_std([r['replays_per_step'] for r in rs])[0]:.0f}",
                "replay gens/step": f"{_mean_std([r['replay_generations_per_step'] for r in rs])[0]:.0f}",
                **accuracies([r["final"] for r in rs]), **vs_shared(d),
                "adv_corr " + "/".join(_role_short(k) for k in roles): corr,
                "train s": f"{_mean_std([r['train_seconds'] for r in rs])[0]:.0f}",
                "run s": f"{_mean_std([r['wall_seconds'] for r in rs])[0]:.0f}",
            })
            pts = {r["seed"]: at_budget(r, budget) for r in rs}
            g = None
            if method != "shared":
                g = _compare(pts, {s: at_budget(shared[(opt, s)], budget) for (o, s) in shared if o == opt})
            if g is not None:
                diffs.append({"optimizer": opt, "method": method, "view": f"equal {last} generations", **g})
            gen_rows.append({
                "optimizer": opt, "method": method,
                "step": "/".join(sorted({str(p["step"]) for p in pts.values()}, key=int)),
                f"{last} gens": f"{_mean_std([p['solver_generations'] for p in pts.values()])[0]:.0f}",
                **accuracies(list(pts.values())), **vs_shared(g, mde=False),
            })
    start = list({r["seed"]: r["curve"][0] for r in records}.values())  # one warm-start evaluation per seed
    extra = {"primary_metric": PRIMARY, "roles": list(roles), "generation_budget": budget, "differences": diffs,
             "warm_start": {"team": _mean_std([p["joint_accuracy"] for p in start])[0],
                            "removed": {k: _mean_std([p["removed"][k] for p in start])[0] for k in roles},
                            "contribution": {k: _mean_std([p["contribution"][k] for p in start])[0] for k in roles}},
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
    """Held-out team accuracy (mean over seeds) against training steps and Solver generations (a
    chain: its last role's generations)."""
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
        roles = records[0].get("roles") or []
        axes[1][col].set_xlabel(f"cumulative {roles[-1]} generations" if len(roles) > 2 else
                                "cumulative Solver generations")
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
    ap.add_argument("--methods", nargs="+", default=None,
                    help="benchmark method names (default: every built-in; a chain preset: "
                         + " ".join(DEFAULT_CHAIN_METHODS) + ")")
    ap.add_argument("--optimizers", nargs="+", default=None,
                    help="optimizers (default: " + " ".join(DEFAULT_OPTIMIZERS) + "; a chain preset: its own)")
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
    try:
        resolve_defaults(args)
    except (ValueError, ImportError) as e:
        print(f"credit_comparison: {e}", file=sys.stderr)
        return 2
    if "shared" not in args.methods:
        args.methods = ["shared", *args.methods]  # the reference every method is compared with
    args.runs = args.runs or f"runs/bench-{args.name}"
    load_before = _loadavg()
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
    if is_chain(cfg0):
        return _write_chain(args, argv, tasks, raw, records, steps_rows, gen_rows, extra, results, png, wall,
                            load_before)
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


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _write_chain(args, argv, tasks, raw, records, steps_rows, gen_rows, extra, results, png, wall, load_before) -> int:
    """The results files of a chain's comparison (:func:`main`)."""
    import shlex

    import _results

    cfg0 = tasks[0]["config"]
    roles = extra["roles"]
    last = roles[-1]
    K = args.answers_per_thought
    n = cfg0["rollout"]["group_size"]
    ws = extra["warm_start"]
    gens = {f"{r['method']} ({r['collection']})": r[f"{last} gens/step"] for r in steps_rows
            if r["optimizer"] == args.optimizers[0]}
    worker_min = (sum(r["wall_seconds"] for r in raw)) / 60
    load_after = _loadavg()
    notes = (
        f"Primary metric (declared before the runs): {PRIMARY}.\n\n"
        f"{power_line(extra['power'])}\n\n"
        f"Chain {' -> '.join(roles)}. Equal training steps ({cfg0['steps']}); held-out {cfg0['eval_data']}, "
        f"{cfg0['eval_samples']} sample(s) per problem at temperature {cfg0['eval_temperature']}, with the whole team and "
        f"with each role removed, evaluated every {args.eval_every} steps; mean ± std over seeds {sorted(args.seeds)}; "
        f"contribution = team − without the role; SE, SE eval and MDE in points. Flat collections: {n} texts of each role "
        f"per problem; tree collections: {n // K ** (len(roles) - 1)} first-role texts, branching {K} ways at every "
        f"position ({n} {last} answers per problem). Warm start (step 0): team {ws['team']:.1%}, "
        + ", ".join(f"without {k} {v:.1%}" for k, v in ws["removed"].items()) + f". {last} generations per step "
        "(joint + replays in which it answers): " + ", ".join(f"{k} {v}" for k, v in gens.items()) + ". "
        "adv_corr: the correlation of each role's advantages with shared reward's under the same estimator "
        "(1.00: the method only rescales shared reward for that role).\n\n"
        f"## Equal {last} generations (budget {extra['generation_budget']}: its joint answers + the replays in which "
        f"it answers)\n\n{markdown_table(list(gen_rows[0]), gen_rows)}\n\n"
        f"Runs: {worker_min:.0f} min of worker time in all (training, evaluations, model loading), one torch thread "
        f"each, {args.workers} worker(s); this invocation {wall / 60:.1f} min of wall time "
        f"({sum(1 for t in tasks if t.get('reused'))} stored run(s) reused), {os.cpu_count()} CPUs, load average "
        f"(1/5/15 min) {load_before} before and {load_after} after"
        f"{'' if png is None else f'; learning curves: {png.name}'}."
    )
    _results.RESULTS = results
    command = shlex.join(["python", "benchmarks/credit_comparison.py", *(sys.argv[1:] if argv is None else argv)])
    table = write_results(args.name, list(steps_rows[0]), steps_rows, notes=notes, command=command,
                          extra={"equal_generations": {"columns": list(gen_rows[0]), "rows": gen_rows}, **extra,
                                 "runs": records, "invocation_seconds": wall, "worker_minutes": worker_min,
                                 "load_average": {"before": load_before, "after": load_after},
                                 "reused_runs": sum(1 for t in tasks if t.get("reused"))})
    print()
    print(f"Primary metric: {PRIMARY}")
    print(table)
    print()
    print(notes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
