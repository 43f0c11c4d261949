"""Does a credit method's advantage point the right way? Credit fidelity against exact ground truth.

docs/method.md#credit-against-ground-truth. On the tabular Think–Solve games of ``thinksolve_env.games`` every value is exact,
so each credit method × advantage estimator × game is scored directly (``algorithms.lab``):

* fidelity, over ``--batches`` sampled batches of ``--problems`` problems (at random policies,
  the same batches for every method: a paired comparison): Thinker and Solver pairwise sign
  accuracy and Spearman against the exact advantages A_T(x, t) and A_S(x, t, a) within each
  problem group, sign agreement sign(â) = sign(A), and the cosine of the batch's sampled policy
  gradient with the exact one;
* learning, ``--seeds`` independent runs at once (uniform start, ``--updates`` SGD steps on the
  sampled policy gradient of both roles): the exact team success after the updates and the share
  of seeds within ``--optimum-tol`` of the game's optimum;

each with a 95% interval, for the ``flat`` n×1 collection and the ``tree`` (n/K)×K collection at
the same number of joint Solver answers (``solver_generations`` counts joint, solo and rating
generations, as the credit comparison does).

    python benchmarks/credit_fidelity.py [--games helpful-harmful ...] [--methods shared tree ...]
        [--estimators grpo dr_grpo rloo reinforce++] [--seeds 200] [--batches 1000] [--updates 40]
        [--flat 8x1] [--tree 4x2] [--plugin FILE] [--out DIR] [--workers 2]
        [--policy tabular|tiny|smollm2-135m]

Chains of N roles (``--games relay-chain free-rider complements substitutes``, or ``--games
chains`` for the four; ``NAME:key=value,...`` sets a chain's parameters, e.g.
``relay-chain:length=4``): the same scores per role, keyed by role name
(``<role>_sign_accuracy``, ``<role>_credit_mean``, ``<role>_bonus_mean``, ``<role>_advantage_mean``,
...), each row with ``roles`` (the chain length) and the method's replay cost
(``replay_generations_per_episode``, ``last_role_generations_per_problem``); methods defined for
two roles only (``sepo``, ``ccpo-normalized``) are skipped there. A run of chains alone writes
``credit_fidelity_chains.*`` unless ``--name`` says otherwise.

(also ``thinksolve bench fidelity ...``). Method names as in the credit comparison
(``shared``, ``ccpo-event``, ``ccpo-margin``, ``ccpo-normalized``, ``ccpo-value``, ``sepo``,
``difference``, ``shapley``, ``tree``, or any registered name; ``--plugin`` loads yours).
With ``--policy tiny`` (or ``smollm2-135m``) the lab runs on real model text instead: n thoughts
per problem from the model, ground truth Q(x, t_j) from ``--mc-answers`` M ≥ 32 *independent*
Solver answers per thought (never the ones the method saw). Results: ``OUT/credit_fidelity.json``,
``.md`` and ``_plot.png`` (``--name`` changes the stem).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
import _results  # noqa: E402
from _results import RESULTS, markdown_table, write_results  # noqa: E402
from credit_comparison import BUILTIN, method_credit  # noqa: E402

DEFAULT_GAMES = ["helpful-harmful", "lazy-thinker", "climbing", "two-step", "signalling"]
DEFAULT_METHODS = ["shared", "ccpo-event", "ccpo-margin", "ccpo-normalized", "ccpo-value", "sepo", "difference",
                   "shapley", "tree"]
DEFAULT_ESTIMATORS = ["grpo", "dr_grpo", "rloo", "reinforce++"]
CHAINS = ["relay-chain", "free-rider", "complements", "substitutes"]
CHAIN_COLUMNS = ["game", "roles", "collection", "method", "estimator", "success_after", "success_after_ci95",
                 "reach_optimum", "last_role_generations_per_problem", "replay_generations_per_episode"]
COLUMNS = ["game", "collection", "method", "estimator", "thinker_sign_accuracy", "thinker_sign_accuracy_ci95",
           "thinker_spearman", "thinker_grad_cosine", "solver_sign_accuracy", "solver_grad_cosine", "success_after",
           "success_after_ci95", "reach_optimum", "solver_generations"]


def method_spec(label: str):
    """The :class:`~algorithms.lab.MethodSpec` of a benchmark method name (the credit
    comparison's parser; ``ccpo-<variant>`` for any ccpo variant it does not list)."""
    from algorithms.credit.ccpo import VARIANTS
    from algorithms.lab import MethodSpec

    if label not in BUILTIN and label.startswith("ccpo-") and label[5:] in VARIANTS:
        return MethodSpec(label, "ccpo", {"variant": label[5:]})
    name, params = method_credit(label)
    return MethodSpec(label, name, dict(params))


def estimator_spec(text: str) -> tuple[str, dict]:
    """``grpo`` or ``grpo:scale=none`` → (name, params); unknown names list the available ones."""
    from algorithms import estimators

    name, _, rest = text.partition(":")
    estimators.get(name)
    params = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        params[k] = float(v) if v.replace(".", "", 1).isdigit() else v
    return name, params


def collection(text: str, name: str, solo: int):
    from algorithms.lab import Collection

    try:
        n, k = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--{name} must look like NxK (thoughts x answers per thought), got {text!r}") from None
    if n < 1 or k < 1:
        raise ValueError(f"--{name}: thoughts and answers per thought must be >= 1, got {text!r}")
    return Collection(name, n, k, solo)


# --------------------------------------------------------------------------- tabular grid


def game_spec(text: str) -> tuple[str, dict]:
    """``relay-chain`` or ``relay-chain:length=4,states=2`` → (name, params)."""
    name, _, rest = text.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        try:
            params[k] = int(v)
        except ValueError:
            params[k] = float(v)
    return name, params


def is_chain(text: str) -> bool:
    from thinksolve_env.games import CHAIN_GAMES

    return game_spec(text)[0] in CHAIN_GAMES


def make_any_game(text: str, noise: float = 0.0):
    """The two-role game or the chain named by ``text`` (``--noise`` applies to both)."""
    from thinksolve_env.games import make_chain, make_game

    name, params = game_spec(text)
    if noise:
        params.setdefault("noise", noise)
    return (make_chain if is_chain(text) else make_game)(name, **params)


def chain_methods(text: str, methods: list[str]) -> tuple[list[str], list[str]]:
    """(methods that run on the chain ``text``, methods that do not: the two-role-only built-ins,
    which say so through ``needs_for``, and any registered method that fails on a small batch of
    the chain)."""
    import numpy as np

    from algorithms.lab import chain_needs, chain_outcomes, needed_coalitions
    from thinksolve_env.games import sample_chain

    game = make_any_game(text)
    ok, skipped = [], []
    for m in methods:
        method = method_spec(m).make()
        try:
            need = chain_needs(method, game.roles)
            batch = sample_chain(game, game.uniform(), np.random.default_rng(0), groups=2, episodes=2, samples=2,
                                 coalitions=needed_coalitions(need, game.roles))
            method(chain_outcomes(batch))
            ok.append(m)
        except Exception:  # any failure on the chain: the method does not run there
            skipped.append(m)
    return ok, skipped


def _worker_init(plugins: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    from algorithms import credit

    for p in plugins:
        credit.load_plugin(p)


def run_part(task: dict) -> dict:
    """One part of one game (runs in a worker process): the fidelity rows of every method
    (``task["part"] == "fidelity"``: they share their sampled batches), or the learning rows of
    the methods in ``task["methods"]`` (each learning cell draws its own random streams, so the
    methods of a game can run apart)."""
    from algorithms.lab import chain_fidelity_scores, chain_learning_runs, fidelity_scores, learning_runs

    t0, c0 = time.perf_counter(), time.process_time()
    game = make_any_game(task["game"], task["noise"])
    specs = [method_spec(m) for m in task["methods"]]
    ests = [estimator_spec(e) for e in task["estimators"]]
    colls = [collection(task["flat"], "flat", task["solo"]), collection(task["tree"], "tree", task["solo"])]
    if is_chain(task["game"]):
        if task["part"] == "fidelity":
            rows = chain_fidelity_scores(game, specs, ests, colls, batches=task["batches"],
                                         problems_per_batch=task["problems"], seed=task["seed"],
                                         policy_scale=task["policy_scale"])
        else:
            rows = chain_learning_runs(game, specs, ests, colls, seeds=task["seeds"], updates=task["updates"],
                                       problems_per_batch=task["learn_problems"], lr=task["lr"], seed=task["seed"],
                                       optimum_tol=task["optimum_tol"])
        for r in rows:
            r["game"] = task["game"]
    elif task["part"] == "fidelity":
        rows = fidelity_scores(game, specs, ests, colls, batches=task["batches"], problems_per_batch=task["problems"],
                               seed=task["seed"], policy_scale=task["policy_scale"], rater_accuracy=task["rater_accuracy"])
    else:
        rows = learning_runs(game, specs, ests, colls, seeds=task["seeds"], updates=task["updates"],
                             problems_per_batch=task["learn_problems"], lr=task["lr"], seed=task["seed"],
                             rater_accuracy=task["rater_accuracy"], optimum_tol=task["optimum_tol"])
    if not is_chain(task["game"]):
        for r in rows:
            r.setdefault("roles", 2)
    return {"game": task["game"], "slot": task["slot"], "part": task["part"], "rows": rows, "seconds": time.perf_counter() - t0,
            "cpu_seconds": time.process_time() - c0, "optimum": game.optimum(), "description": game.description,
            "roles": list(getattr(game, "roles", ("thinker_0", "solver_0"))), "skipped": task.get("skipped", [])}


def _join(game: str, parts: list[dict]) -> dict:
    """One game's rows from its parts: each fidelity row with its cell's learning scores."""
    fid = [r for p in parts if p["part"] == "fidelity" for r in p["rows"]]
    key = lambda r: (r["collection"], r["method"], r["estimator"])  # noqa: E731
    by = {key(r): r for p in parts if p["part"] == "learning" for r in p["rows"]}
    rows = [{**r, **by[key(r)]} for r in fid]
    return {"game": game, "rows": rows, "optimum": parts[0]["optimum"], "description": parts[0]["description"],
            "roles": parts[0]["roles"], "skipped_methods": parts[0].get("skipped", []),
            "fidelity_seconds": sum(p["seconds"] for p in parts if p["part"] == "fidelity"),
            "learning_seconds": sum(p["seconds"] for p in parts if p["part"] == "learning"),
            "cpu_seconds": sum(p["cpu_seconds"] for p in parts)}


def run_grid(args) -> tuple[list[dict], dict]:
    """Every game's rows. The work is cut into parts (per game: the fidelity of all methods, and
    the learning runs of each method), the learning parts first, so that the workers share it
    evenly; the rows are the same as running each game whole."""
    base = {k: getattr(args, k) for k in ("methods", "estimators", "flat", "tree", "solo", "batches", "problems", "seed",
                                          "policy_scale", "rater_accuracy", "seeds", "updates", "learn_problems", "lr",
                                          "optimum_tol", "noise")}
    games = []
    for i, g in enumerate(args.games):
        methods, skipped = chain_methods(g, args.methods) if is_chain(g) else (args.methods, [])
        games.append({**base, "game": g, "methods": methods, "skipped": skipped, "slot": i})
    tasks = [{**t, "part": "learning", "methods": [m]} for t in games for m in t["methods"]]
    tasks += [{**t, "part": "fidelity"} for t in games]
    t0 = time.perf_counter()
    if args.workers <= 1:
        _worker_init(args.plugin)
        parts = [run_part(t) for t in tasks]
    else:
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn"), initializer=_worker_init,
                                 initargs=(args.plugin,)) as pool:
            parts = list(pool.map(run_part, tasks))
    wall = time.perf_counter() - t0
    results = [_join(g, [p for p in parts if p["slot"] == i]) for i, g in enumerate(args.games)]
    rows = [r for res in results for r in res["rows"]]
    info = {"grid_seconds": wall, "grid_cpu_seconds": sum(res["cpu_seconds"] for res in results), "workers": args.workers,
            "games": {res["game"]: {k: res[k] for k in ("optimum", "description", "roles", "skipped_methods",
                                                        "fidelity_seconds", "learning_seconds", "cpu_seconds")}
                      for res in results}}
    return rows, info


# --------------------------------------------------------------------------- tables and plot


def _ci(lo_hi) -> str:
    lo, hi = lo_hi
    return "—" if lo is None or (isinstance(lo, float) and math.isnan(lo)) else f"[{lo:.3f}, {hi:.3f}]"


def display_rows(rows: list[dict], columns: list[str] = COLUMNS) -> list[dict]:
    out = []
    for r in rows:
        d = {}
        for c in columns:
            v = r.get(c)
            if c.endswith("_ci95"):
                d[c] = _ci(v) if v is not None else "—"
            elif v is None:
                d[c] = "—"
            elif isinstance(v, float):
                d[c] = "—" if math.isnan(v) else f"{v:.3f}"
            else:
                d[c] = v
        out.append(d)
    return out


def pivot(rows: list[dict], key: str, estimator: str) -> tuple[list[str], list[dict]]:
    """method@collection × game table of ``key`` (± the 95% half-width) under ``estimator``."""
    games = list(dict.fromkeys(r["game"] for r in rows))
    cells = {}
    for r in rows:
        if r["estimator"] != estimator:
            continue
        v, ci = r.get(key), r.get(f"{key}_ci95")
        text = "—" if v is None or math.isnan(v) else (f"{v:.3f}" if ci is None else f"{v:.3f} ± {(ci[1] - ci[0]) / 2:.3f}")
        cells.setdefault((r["method"], r["collection"]), {})[r["game"]] = text
    columns = ["method", "collection", *games]
    table = [{"method": m, "collection": c, **vals} for (m, c), vals in cells.items()]
    return columns, table


def plot(rows: list[dict], estimator: str, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'thinksolve[bench]'): no plot", file=sys.stderr)
        return None
    games = list(dict.fromkeys(r["game"] for r in rows))
    sel = [r for r in rows if r["estimator"] == estimator]
    labels = list(dict.fromkeys((r["method"], r["collection"]) for r in sel))
    fig, axes = plt.subplots(2, len(games), figsize=(3.2 * len(games), 7), squeeze=False, sharey="row")
    for col, game in enumerate(games):
        by = {(r["method"], r["collection"]): r for r in sel if r["game"] == game}
        for row, key in enumerate(("thinker_sign_accuracy", "success_after")):
            ax = axes[row][col]
            vals, errs, colors = [], [], []
            for lab in labels:
                r = by.get(lab)
                v = r.get(key) if r else math.nan
                ci = r.get(f"{key}_ci95") if r else None
                vals.append(v)
                errs.append(0.0 if not ci or math.isnan(ci[0]) else (ci[1] - ci[0]) / 2)
                colors.append("tab:orange" if lab[1].startswith("tree") else "tab:blue")
            ax.barh(range(len(labels)), vals, xerr=errs, color=colors, alpha=0.8)
            ax.set_yticks(range(len(labels)))
            ax.set_yticklabels([f"{m} ({c.split()[0]})" for m, c in labels], fontsize=7)
            ax.set_title(game if row == 0 else "", fontsize=9)
            ax.set_xlabel("Thinker sign accuracy" if row == 0 else "success after updates", fontsize=8)
            ax.grid(alpha=0.3, axis="x")
            if row == 0:
                ax.axvline(0.5, color="gray", lw=0.8)
    fig.suptitle(f"credit fidelity ({estimator}); blue flat, orange tree; bars 95% intervals")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _pm(v, ci) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if not ci or ci[0] is None or (isinstance(ci[0], float) and math.isnan(ci[0])):
        return f"{v:+.3f}"
    return f"{v:+.3f} ± {(ci[1] - ci[0]) / 2:.3f}"


def chain_notes(rows: list[dict], estimator: str, games_info: dict) -> list[str]:
    """Per chain game under ``estimator``: each role's credit mean (± the 95% half-width) and sign
    accuracy per method and collection, the exact Shapley value and marginal of each role at the
    drawn policies, learning, and each method's replay cost."""
    notes = []
    for game in dict.fromkeys(r["game"] for r in rows if r.get("roles", 2) > 2 or "role_names" in r):
        sel = [r for r in rows if r["game"] == game and r["estimator"] == estimator]
        if not sel:
            continue
        roles = sel[0]["role_names"]
        cols = ["method", "collection", *[f"{r} credit" for r in roles], *[f"{r} sign acc." for r in roles],
                "success after", "reach opt.", "replays/episode", "last-role gens/problem"]
        table = []
        for r in sel:
            d = {"method": r["method"], "collection": r["collection"]}
            for role in roles:
                d[f"{role} credit"] = _pm(r.get(f"{role}_credit_mean"), r.get(f"{role}_credit_mean_ci95"))
                acc = r.get(f"{role}_sign_accuracy")
                d[f"{role} sign acc."] = "—" if acc is None else f"{acc:.3f}"
            d["success after"] = _pm(r.get("success_after"), r.get("success_after_ci95")).lstrip("+")
            d["reach opt."] = f"{r['reach_optimum']:.2f}" if r.get("reach_optimum") is not None else "—"
            d["replays/episode"] = f"{r['replay_generations_per_episode']:g}"
            d["last-role gens/problem"] = r["last_role_generations_per_problem"]
            table.append(d)
        flat = next(r for r in sel if r["collection"].startswith("flat"))
        exact = ", ".join(f"{role} φ {flat[f'{role}_exact_shapley']:+.3f} / Δ {flat[f'{role}_exact_marginal']:+.3f}"
                          for role in roles)
        info = games_info.get(game, {})
        skipped = info.get("skipped_methods") or []
        notes.append(f"## {game} ({len(roles)} roles: {' → '.join(roles)}) under {estimator}\n\n"
                     f"{info.get('description', '')}. Exact values at the drawn policies (flat batches, mean): "
                     f"v(N) {flat['exact_value']:+.3f}; {exact}. Credit: the method's reward per joint episode "
                     "(batch means ± 95% half-width); sign accuracy against the role's exact advantage (— where "
                     "every action of the role is worth the same)."
                     + (f" Not run on this chain (two roles only): {', '.join(skipped)}." if skipped else "")
                     + f"\n\n{markdown_table(cols, table)}")
    return notes


def chain_plot(rows: list[dict], estimator: str, path: Path) -> Path | None:
    """One panel per chain game: each method's credit mean per role (flat collection, 95% bars),
    the exact Shapley value (black tick) and marginal (red tick) of each role."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install 'thinksolve[bench]'): no plot", file=sys.stderr)
        return None
    sel = [r for r in rows if "role_names" in r and r["estimator"] == estimator and r["collection"].startswith("flat")]
    games = list(dict.fromkeys(r["game"] for r in sel))
    if not games:
        return None
    fig, axes = plt.subplots(1, len(games), figsize=(4.2 * len(games), 3.8), squeeze=False)
    for ax, game in zip(axes[0], games):
        gr = [r for r in sel if r["game"] == game]
        roles, methods = gr[0]["role_names"], [r["method"] for r in gr]
        width = 0.8 / len(methods)
        for i, r in enumerate(gr):
            xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(roles))]
            vals = [r[f"{role}_credit_mean"] for role in roles]
            errs = [(r[f"{role}_credit_mean_ci95"][1] - r[f"{role}_credit_mean_ci95"][0]) / 2 for role in roles]
            ax.bar(xs, vals, width, yerr=errs, label=r["method"], alpha=0.85)
        for j, role in enumerate(roles):
            ax.hlines(gr[0][f"{role}_exact_shapley"], j - 0.45, j + 0.45, colors="black", lw=1.5)
            ax.hlines(gr[0][f"{role}_exact_marginal"], j - 0.45, j + 0.45, colors="red", lw=1, linestyles="dashed")
        ax.axhline(0, color="gray", lw=0.6)
        ax.set_xticks(range(len(roles)))
        ax.set_xticklabels(roles, fontsize=8)
        ax.set_title(game, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("credit per episode (mean)")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"chains: each method's credit per role ({estimator}, flat); black: exact Shapley, red dashed: "
                 "exact marginal", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- real model text


def run_real(args) -> tuple[list[dict], dict]:
    """The lab on model text: the preset's (warm-started) policies, as the trainer builds them."""
    from algorithms.config import apply_overrides, prompt_templates
    from algorithms.config import preset as get_preset
    from algorithms.lab import real_text_fidelity
    from algorithms.train import Trainer

    name = args.preset or {"tiny": "tiny-brief", "smollm2-135m": "smollm2-arith"}[args.policy]
    cfg = get_preset(name)
    cfg.plugins = list(args.plugin)
    cfg.out, cfg.tensorboard = tempfile.mkdtemp(prefix=f"thinksolve-fidelity-{args.policy}-"), False  # nothing is written
    cfg = apply_overrides(cfg, args.overrides).validate()
    specs = [method_spec(m) for m in args.methods]
    ests = [estimator_spec(e) for e in args.estimators]
    colls = [collection(args.flat, "flat", args.solo), collection(args.tree, "tree", args.solo)]
    t0 = time.perf_counter()
    raters, rater_prompts = None, None
    if args.rater:
        import torch

        from agents import TransformersPolicy

        judge = TransformersPolicy.from_pretrained(args.rater, seed=args.seed, dtype=torch.float32)
        raters = {"thinker_0": judge, "solver_0": judge}  # one judge rates as both roles (one call)
    if args.rater_prompts:
        rater_prompts = prompt_templates(args.rater_prompts)
    with Trainer(cfg, log=None, writer=False) as trainer:
        r = cfg.rollout
        problems = random.Random(args.seed).sample(trainer.problems, min(args.real_problems, len(trainer.problems)))
        rows, info = real_text_fidelity(trainer.rollout_policies, problems, specs, ests, colls,
                                        raters=raters, rater_prompts=rater_prompts,
                                        mc_answers=args.mc_answers, verifier=trainer.verifier,
                                        env_options={"prompts": prompt_templates(r.prompts)}, seed=args.seed,
                                        temperature=r.temperature, top_p=r.top_p,
                                        thinker_max_new_tokens=r.thinker_max_new_tokens,
                                        solver_max_new_tokens=r.solver_max_new_tokens,
                                        rating_max_new_tokens=r.rating_max_new_tokens,
                                        rating_temperature=r.rating_temperature)
    shutil.rmtree(cfg.out, ignore_errors=True)
    info.update({"preset": name, "policy": args.policy, "real_seconds": time.perf_counter() - t0,
                 "rater": args.rater or f"the team's own ({args.policy})",
                 "rater_prompts": args.rater_prompts or cfg.rollout.prompts})
    return rows, info


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="credit_fidelity", description=__doc__.splitlines()[0])
    ap.add_argument("--games", nargs="+", default=DEFAULT_GAMES)
    ap.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    ap.add_argument("--estimators", nargs="+", default=DEFAULT_ESTIMATORS, help="names, optionally NAME:key=value,...")
    ap.add_argument("--seeds", type=int, default=200, help="learning runs per cell (default 200)")
    ap.add_argument("--batches", type=int, default=1000, help="sampled batches per fidelity cell (default 1000)")
    ap.add_argument("--problems", type=int, default=4, help="problems per fidelity batch (default 4)")
    ap.add_argument("--updates", type=int, default=40, help="updates per learning run (default 40)")
    ap.add_argument("--learn-problems", type=int, default=2, help="problems per learning batch (default 2)")
    ap.add_argument("--lr", type=float, default=3.0, help="SGD step on the tabular logits (default 3.0)")
    ap.add_argument("--flat", default="8x1", help="flat collection NxK (default 8x1)")
    ap.add_argument("--tree", default="4x2", help="tree collection NxK with the same N*K (default 4x2)")
    ap.add_argument("--solo", type=int, default=4, help="Thinker-removed answers per problem (methods needing them)")
    ap.add_argument("--noise", type=float, default=0.0, help="outcome noise of every game (default 0)")
    ap.add_argument("--rater-accuracy", type=float, default=0.8, help="the tabular SEPO rater's accuracy (default 0.8)")
    ap.add_argument("--policy-scale", type=float, default=1.0, help="std of the random logits fidelity is scored at")
    ap.add_argument("--optimum-tol", type=float, default=0.05, help="success within this of the optimum counts as reached")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="parallel games (one torch thread each)")
    ap.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                    help="import a file or module that registers credit methods (repeatable)")
    ap.add_argument("--policy", choices=["tabular", "tiny", "smollm2-135m"], default="tabular",
                    help="tabular games (default) or real model text from the preset's model")
    ap.add_argument("--real-problems", type=int, default=8, help="--policy tiny|smollm2-135m: problems (default 8)")
    ap.add_argument("--preset", help="--policy tiny|smollm2-135m: the preset whose (warm-started) team plays "
                                     "(default tiny-brief for tiny, smollm2-arith for smollm2-135m)")
    ap.add_argument("--rater", choices=["tiny", "smollm2-135m"],
                    help="--policy tiny|smollm2-135m: a judge model that writes every SEPO rating (both roles) of the "
                         "same transcripts (default: each role rates with its own policy)")
    ap.add_argument("--rater-prompts", choices=["default", "compact"],
                    help="prompt set of the rating prompts (default: the preset's)")
    ap.add_argument("--mc-answers", type=int, default=32, help="independent Solver answers per thought for Q (>= 32)")
    ap.add_argument("--out", default=str(RESULTS), help="results directory (default benchmarks/results)")
    ap.add_argument("--name", help="results file stem (default credit_fidelity; credit_fidelity_chains for chains alone)")
    ap.add_argument("overrides", nargs="*", metavar="field=value", help="--policy tiny|smollm2-135m: preset overrides")
    return ap


def _check(args) -> None:
    from thinksolve_env.games import CHAIN_GAMES, GAMES

    args.games = [g for name in args.games for g in (CHAINS if name == "chains" else [name])]
    for g in args.games:
        name = game_spec(g)[0]
        if name not in GAMES and name not in CHAIN_GAMES:
            raise ValueError(f"unknown game {name!r}; available: {', '.join([*GAMES, *CHAIN_GAMES])}, chains")
        try:
            make_any_game(g, args.noise)
        except TypeError as e:
            raise ValueError(str(e)) from None
        if is_chain(g) and not chain_methods(g, args.methods)[0]:
            raise ValueError(f"none of the methods {args.methods} is defined for the chain {g!r}")
    if args.name is None:
        args.name = "credit_fidelity_chains" if all(is_chain(g) for g in args.games) else "credit_fidelity"
    for name, lo in (("seeds", 1), ("batches", 1), ("problems", 1), ("updates", 1), ("learn_problems", 1), ("solo", 1)):
        if getattr(args, name) < lo:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {lo}, got {getattr(args, name)}")
    if args.policy != "tabular" and args.mc_answers < 32:
        raise ValueError(f"--mc-answers must be >= 32 (docs/method.md#credit-against-ground-truth), got {args.mc_answers}")
    flat, tree = collection(args.flat, "flat", args.solo), collection(args.tree, "tree", args.solo)
    if flat.thoughts * flat.answers_per_thought != tree.thoughts * tree.answers_per_thought:
        raise ValueError(f"--flat {args.flat} and --tree {args.tree} must have the same number of joint answers (N*K)")
    for m in args.methods:
        method_spec(m)
    for e in args.estimators:
        estimator_spec(e)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from algorithms import credit

    try:
        for p in args.plugin:
            credit.load_plugin(p)
        _check(args)
    except (ValueError, ImportError, FileNotFoundError) as e:
        print(f"credit_fidelity: {e}", file=sys.stderr)
        return 2
    if args.policy == "tabular":
        print(f"{len(args.games)} games x {len(args.methods)} methods x {len(args.estimators)} estimators x 2 collections; "
              f"{args.batches} batches per fidelity cell, {args.seeds} seeds x {args.updates} updates per learning cell; "
              f"{args.workers} worker(s)" + ("; on the chains, methods defined for two roles only are skipped"
                                              if any(is_chain(g) for g in args.games) else ""), flush=True)
        rows, info = run_grid(args)
    else:
        rows, info = run_real(args)
    out = Path(args.out)
    _results.RESULTS = out
    est0 = estimator_spec(args.estimators[0])
    est_label = est0[0] if not est0[1] else None
    est_label = est_label or rows[0]["estimator"]
    two = [r for r in rows if r.get("roles", 2) == 2 and "role_names" not in r]
    chain_rows = [r for r in rows if "role_names" in r]
    png = None
    if args.policy == "tabular":
        png = plot(two, est_label, out / f"{args.name}_plot.png") if two else \
            chain_plot(chain_rows, est_label, out / f"{args.name}_plot.png")
    notes = []
    if args.policy == "tabular":
        if two:
            cols, tab = pivot(two, "thinker_sign_accuracy", est_label)
            cols2, tab2 = pivot(two, "success_after", est_label)
            notes.append(f"## Thinker sign accuracy under {est_label} (± 95% half-width)\n\n{markdown_table(cols, tab)}")
            notes.append(f"## Team success after {args.updates} updates under {est_label} ({args.seeds} seeds)\n\n"
                         f"{markdown_table(cols2, tab2)}")
        notes += chain_notes(chain_rows, est_label, info["games"])
        notes.append(f"Grid: {info['grid_seconds']:.0f} s wall on {args.workers} worker(s), {info['grid_cpu_seconds']:.0f} s "
                     f"of CPU time in the workers (one torch thread each; re-measure the wall time on an idle machine). Optima: "
                     + ", ".join(f"{g} {v['optimum']:.3f}" for g, v in info["games"].items())
                     + (f"; plot: {png.name}" if png else "") + ".")
    else:
        notes.append(f"Real text: preset {info['preset']}, {info['problems']} problems, ground truth from "
                     f"{args.mc_answers} independent Solver answers per thought; {info['real_seconds']:.0f} s.")
        for label, c in info["collections"].items():
            if "rating_valid_rate" in c:
                corr, vlo, vhi = c["rating_q_correlation"], *(100 * x for x in c["rating_valid_rate_ci95"])
                cci = c.get("rating_q_correlation_ci95")
                notes.append(f"SEPO ratings ({label}; rater: {info['rater']}, {info['rater_prompts']} rating prompts; "
                             f"{c['rated_episodes']} episodes of {c['rated_problems']} problems, two ratings each): valid "
                             f"{100 * c['rating_valid_rate']:.1f}% [{vlo:.1f}, {vhi:.1f}]; correlation of the "
                             f"raters' Thinker signal (w_T - 0.5)·R with the thought's Monte Carlo value Q(x, t): "
                             + ("n/a (constant)" if corr is None else f"{corr:+.2f}")
                             + (f" [{cci[0]:+.2f}, {cci[1]:+.2f}]" if cci else "")
                             + " (95% bootstrap intervals over problems); rating tokens generated: "
                             f"{c['budget']['rating_thinker']['tokens'] + c['budget']['rating_solver']['tokens']}; "
                             f"parse outcomes {c['rating_reasons']}")
    command = shlex.join(["python", "benchmarks/credit_fidelity.py", *(sys.argv[1:] if argv is None else argv)])
    columns = [c for c in dict.fromkeys([*COLUMNS, *(CHAIN_COLUMNS if chain_rows else [])]) if any(c in r for r in rows)]
    table = write_results(args.name, columns, display_rows(rows, columns), notes="\n\n".join(notes), command=command,
                          extra={"raw_rows": rows, **info,
                                 "settings": {k: v for k, v in vars(args).items() if k != "overrides"}})
    # ``rows`` of the JSON are the raw numbers (intervals as [low, high]); the Markdown shows them rounded
    path = out / f"{args.name}.json"
    record = json.loads(path.read_text())
    record["rows"] = record.pop("raw_rows")
    _results._atomic_write(path, _results.dump_json(record))
    print()
    print("\n\n".join(notes) if args.policy == "tabular" else table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
