"""The ``thinksolve`` command line.

Subcommands:

* ``train`` — ``thinksolve train --preset P --credit C --optimizer O --seed S --steps N --out DIR
  [--resume] [field=value ...]``: any config field can be overridden (``optim.lr=1e-5``).
* ``eval`` — accuracy per dataset with and without the Thinker (the collaboration diagnostic),
  for a run directory or a model; appends one JSON record per evaluation (``RUN/evals.jsonl`` or ``--out``).
* ``demo`` — the main job (``make demo``): warm-start the ``tiny`` model, evaluate, train
  ``tiny-brief`` with CCPO, evaluate again, print the before/after table.
* ``bench`` — ``thinksolve bench credit|fidelity|performance|env|verifier|generation|eval|demo|trl [args]`` runs the
  benchmark script of that name from ``benchmarks/`` (results under ``benchmarks/results/``).
* ``play`` — scripted MATH500 episodes in every removal mode (no model; the env's counterfactuals).
* ``plan`` — ``thinksolve plan --preset P --gpus N [--gpu-memory GB] [field=value ...]``: the memory
  per GPU by part in each layout (ddp, fsdp, fsdp+offload, lora), which fit, and the GPUs every
  preset needs (:mod:`algorithms.team.memory`).

The commands check nothing themselves: the configuration checks itself
(:meth:`~algorithms.config.TrainerConfig.validate`), the run directory is checked by
:func:`algorithms.runs.check_run_dir` (another writer, a run already there, a resume behind its
checkpoint) and the trainer does the rest; a command catches the error and prints it (exit 2).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import re
import runpy
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from transformers.utils import logging as hf_logging

from agents import VLLM_MISSING, ScriptedPolicy, vllm_available
from thinksolve_env import MathVerifier, Problem, load_problems
from thinksolve_env import env as make_env
from thinksolve_env.verifier import find_boxed

from .config import (
    OPTIMIZERS,
    PRESETS,
    PROMPT_SETS,
    ConfigError,
    RolloutConfig,
    TrainerConfig,
    apply_credit,
    apply_optimizer,
    apply_overrides,
    list_fields,
    preset,
)
from .credit import available as credit_available
from .credit import chain_coalitions, coalition_label, needs_for
from .evaluation import eval_progress, evaluate, paired_interval
from .runs import (
    CheckpointError,
    ResumeError,
    RunLockedError,
    append_row,
    check_run_dir,
    check_unlocked,
    is_run,
    json_default,
    recorded_config,
    utc_time,
)
from .team import export_team, load_team, rollout_team
from .team.memory import HEADROOM, LAYOUTS, GiB, layout_config, memory_plan, min_gpus, own_layout, plan_rows
from .train import Trainer
from .train.preflight import check_models, check_resume, preflight

__all__ = ["main", "build_parser", "scripted_team", "train_config", "split_data", "BENCHMARKS"]

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "math" / "math500.jsonl"

_MATH_SPAN = re.compile(r"\$([^$]{1,200})\$")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def scripted_team(problems: Sequence[Problem]) -> tuple[ScriptedPolicy, ScriptedPolicy]:
    """A scripted Thinker and Solver for demos and smoke tests.

    * Thinker: "has read the worked solution" — it writes the problem's reference solution
      (``meta["solution"]``) with its ``\\boxed{}`` wrappers removed, as the Thinker prompt asks
      (no boxed final answer), or a restatement when there is no solution.
    * Solver: with a thought, it boxes the last inline-math span of the thought (the env has
      already stripped a trailing ``\\boxed{}``, so it must find the result in the working);
      alone (solo prompt) it boxes the last number in the problem statement — a weak guess.
    """

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


def _cmd_play(args) -> int:
    data = Path(args.data)
    try:
        problems = load_problems(data, limit=args.episodes, seed=args.seed)
    except (OSError, ValueError) as e:
        return _fail(f"--data: {e}")
    thinker, solver = scripted_team(problems)
    policies = {"thinker_0": thinker, "solver_0": solver}
    modes = [
        ("nobody", None),
        ("thinker_0", ["thinker_0"]),
        ("solver_0", ["solver_0"]),
        ("both", ["thinker_0", "solver_0"]),
    ]
    print(f"thinksolve {args.command}: {len(problems)} problems from {data.name}, scripted Thinker/Solver "
          "(see `scripted_team`)")
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


def _fail(msg: str) -> int:
    print(f"thinksolve: error: {msg}", file=sys.stderr)
    return 2


def _resume_mode(args: argparse.Namespace) -> str | None:
    """``None`` (a fresh run), ``"yes"`` (``--resume``: continue the checkpoint in ``--out``) or
    ``"auto"`` (``--resume auto``: continue it when there is one, else start)."""
    mode = getattr(args, "resume", None)
    return None if mode in (None, False) else ("yes" if mode is True else mode)


def _fresh_config(args: argparse.Namespace) -> TrainerConfig:
    return preset(args.preset or "tiny-arith")


def train_config(args: argparse.Namespace) -> TrainerConfig:
    """The TrainerConfig named by ``train``'s arguments, validated.

    A fresh run: the preset (default ``tiny-arith``), then flags, then overrides. ``--resume``
    with ``--preset``: built the same way, so that the original command line with ``--resume``
    appended continues the run (the trainer refuses, and lists, every difference from the
    recorded configuration outside :data:`~algorithms.train.RESUMABLE_CHANGES`). ``--resume``
    without ``--preset``: the run's own recorded configuration (plugins included) is the base and
    flags and overrides are changes to it. ``--resume auto`` (for job schedulers, which rerun the
    same line after a preemption) resumes when ``--out`` holds a checkpoint and starts the run
    otherwise; ``args.resume`` is set to what was decided (``"yes"`` or ``None``). The plugins
    (the recorded ones and ``--plugin``'s) are loaded before the credit method is named."""
    mode = _resume_mode(args)
    if mode is not None:
        out = args.out if args.out is not None else _fresh_config(args).out
        if mode == "auto":
            mode = "yes" if is_run(out) else None  # an unreadable checkpoint is reported below, never written over
        args.resume = mode
    if mode is not None and args.preset is None:
        cfg = TrainerConfig.from_dict(recorded_config(out)["config"])
        cfg.out = str(out)
    else:
        cfg = _fresh_config(args)
    for source in getattr(args, "plugin", None) or []:
        if source not in cfg.plugins:
            cfg.plugins.append(source)
    cfg.load_plugins()
    if args.credit:
        cfg = apply_credit(cfg, args.credit)
    if args.optimizer:
        cfg = apply_optimizer(cfg, args.optimizer)
    for name in ("seed", "steps", "out"):
        if getattr(args, name, None) is not None:
            setattr(cfg, name, getattr(args, name))
    cfg = apply_overrides(cfg, list(args.overrides or []))
    check_models(cfg)
    cfg.validate()
    if mode is not None:  # refuse, before anything is loaded, a resume that would change what a step computes
        check_resume(cfg.out, recorded_config(cfg.out)["config"], cfg)
    return cfg


def _print_row(prefix: str, r: dict) -> None:
    print(f"| {prefix:<22} | {r['joint_accuracy']:>8.1%} | {r['solo_accuracy']:>15.1%} | {r['collaboration']:>+13.1%} |")


def _table_header(title: str) -> None:
    print(f"| {title:<22} | team     | Thinker removed | collaboration |")
    print(f"|{'-' * 24}|---------:|----------------:|--------------:|")


def _chain_header(title: str, roles: list[str]) -> None:
    """The table of a team of more than two roles: the team, and the team without each role."""
    print(f"| {title:<22} | team     | " + " | ".join(f"without {r}" for r in roles) + " |")
    print(f"|{'-' * 24}|---------:|" + "|".join("-" * (len(f"without {r}") + 1) + ":" for r in roles) + "|")


def _chain_row(prefix: str, r: dict, roles: list[str]) -> None:
    print(f"| {prefix:<22} | {r['joint_accuracy']:>8.1%} | "
          + " | ".join(f"{r['removed'][role]:>{len('without ' + role)}.1%}" for role in roles) + " |")


def _list_fields(args) -> int:
    try:
        cfg = preset(args.preset or "tiny-arith")
    except ConfigError as e:
        return _fail(str(e))
    print(f"config fields (values of preset {args.preset or 'tiny-arith'}); set any as field=value:\n")
    for name, value, doc in list_fields(cfg):
        print(f"  {name} = {value!r}\n      {doc}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    if args.list_fields:
        return _list_fields(args)
    # Under torchrun every rank runs this; rank 0 checks the run directory (the others would race
    # its lock) and the others only read where the checkpoint stands, so that all agree on the outcome.
    main_rank = int(os.environ.get("RANK", "0")) == 0
    try:
        if args.out is not None and main_rank:  # another live writer is the first thing to say (before "no checkpoint")
            check_unlocked(args.out)
        cfg = train_config(args)
        resume = args.resume is not None
        if main_rank:
            step = check_run_dir(cfg.out, resume=resume, steps=cfg.steps).step
        else:
            step = recorded_config(cfg.out)["step"] if resume else 0
        if args.dry_run:
            return _dry_run(args, cfg, step if resume else None)
    except (ConfigError, CheckpointError, ResumeError, RunLockedError, ImportError, OSError) as e:
        return _fail(str(e))
    out = Path(cfg.out)
    if resume and step == cfg.steps:
        print(f"{out} is already at step {step} of {cfg.steps}: nothing to train "
              f"(pass --steps N > {step} to go on)")
        return 0
    try:
        trainer = Trainer(cfg, resume=resume)
    except (ResumeError, CheckpointError, ConfigError, RunLockedError, OSError, ImportError, ValueError) as e:
        return _fail(str(e))
    with trainer:
        if trainer.dist.main:
            (out / "config.json").write_text(cfg.to_json())
            what = f"resuming {out} at step {trainer.step_count}" if resume else f"training {args.preset or 'tiny-arith'}"
            print(f"{what}: credit {cfg.credit.name}, {cfg.optim.estimator}+{cfg.optim.loss}, "
                  f"{cfg.steps} steps, seed {cfg.seed} -> {out}", flush=True)
        try:
            rows = trainer.train()
        except KeyboardInterrupt as e:
            signum = getattr(e, "signum", 2)
            print(f"thinksolve: training stopped by {'Ctrl-C' if signum == 2 else 'signal ' + str(signum)} at step "
                  f"{trainer.step_count}; continue with: thinksolve train --resume --out {out}", file=sys.stderr)
            return 128 + signum
        if trainer.dist.main and rows:
            last = rows[-1]
            print(f"done: step {last['step']}, batch accuracy {last['joint_accuracy']:.1%}; "
                  f"metrics in {out / 'metrics.jsonl'}, checkpoint in {out / 'checkpoint'}")
    return 0


def _dry_run(args: argparse.Namespace, cfg: TrainerConfig, step: int | None) -> int:
    """``thinksolve train --dry-run``: every check a training makes before it loads a model
    (configuration, plugins, credit method, data, model names, the run directory), then what the
    run would do; nothing is loaded or written."""
    found = preflight(cfg)
    r = cfg.rollout
    if step is None:
        state = "a new run"
    elif step >= cfg.steps:
        state = f"already at step {step} of {cfg.steps}: nothing to train"
    else:
        state = f"resumes at step {step} of {cfg.steps}"
    ws = cfg.warm_start
    warm = ("none" if found.warm_start_cached is None else
            f"{ws.steps} supervised steps on {ws.data}, " + ("cached (reused)" if found.warm_start_cached else "trained first"))
    replays = "nothing"
    if len(r.roles) > 2:
        roles = tuple(r.roles)
        wanted = chain_coalitions(roles, needs_for(found.credit, roles))
        replays = ", ".join(coalition_label(roles, c) for c in wanted) or "nothing"
    print(f"dry run ({cfg.out}: {state}); nothing loaded or written")
    for key, value in (
        ("preset", args.preset or ("the run's recorded configuration" if step is not None else "tiny-arith")),
        ("credit", f"{cfg.credit.name} {cfg.credit.params or ''}".strip()),
        ("optimizer", f"{cfg.optim.estimator}+{cfg.optim.loss}, lr {cfg.optim.lr}"),
        ("model", f"{cfg.model.name}" + (f" (Solver {cfg.model.solver_name})" if cfg.model.solver_name else "")
                  + f", {cfg.model.sharing}, {cfg.model.device}"),
        ("warm start", warm),
        *([("team", " -> ".join(r.roles) + f" (budgets {r.budgets()})"), ("replays", replays)]
          if len(r.roles) > 2 else []),
        ("steps", f"{cfg.steps}, {r.problems_per_step} problems x {r.group_size} rollouts per step, seed {cfg.seed}"),
        ("train data", f"{cfg.train_data} ({len(found.problems)} problems)"),
        ("eval data", f"{cfg.eval_data} ({len(found.eval_problems)} problems), "
                      + (f"every {cfg.eval_every} steps" if cfg.eval_every else "not evaluated during training")),
        ("checkpoints", f"every {cfg.save_every} steps and at the end"),
        ("samples", f"{cfg.samples_per_write} episodes every {cfg.samples_every} steps" if cfg.samples_every else "none"),
        ("loggers", ", ".join(n for n in cfg.loggers()[0] if n != "none") or "metrics.jsonl only"),
        ("plugins", ", ".join(cfg.plugins) or "none"),
    ):
        print(f"  {key:<12} {value}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a run or model on every ``--data`` source and append one record to the results
    file (``RUN/evals.jsonl`` for a run, else ``--out``). Everything that can fail cheaply is
    checked first (settings, every data source, the results file), then the team is loaded once
    and one verifier serves every source."""
    temperature = 0.0 if args.greedy else args.temperature
    for flag, value, low in (("--temperature", temperature, 0), ("--samples", args.samples, 1),
                             ("--limit", args.limit, 1), ("--max-new-tokens", args.max_new_tokens, 1)):
        if value is not None and value < low:
            return _fail(f"{flag} must be >= {low}, got {value}")
    if args.prompts is not None and args.prompts not in PROMPT_SETS:
        return _fail(f"unknown prompt set {args.prompts!r}; choose from {sorted(PROMPT_SETS)}")
    engine = getattr(args, "engine", "transformers")
    if engine == "vllm" and not vllm_available():
        return _fail(f"--engine vllm: {VLLM_MISSING}")
    try:
        datasets = _eval_datasets(args.data, args.limit)
        out = _eval_out(args)
    except ValueError as e:
        return _fail(str(e))
    # one worker pool for every source and chunk, started first: its workers import their maths
    # libraries while the model loads
    with MathVerifier().start() as verifier:
        try:
            step = _run_step(args.model)
            team, run_rollout = load_team(args.model, solver_model=args.solver_model, seed=args.seed)
            loaded = _run_step(args.model)
        except (OSError, ValueError, ImportError, CheckpointError) as e:  # ConfigError is a ValueError
            return _fail(str(e))
        if engine == "vllm":
            team = rollout_team(team, "vllm", seed=args.seed)
        rollout = _eval_budgets(args, run_rollout)
        results: dict[str, dict] = {}
        print(f"evaluating {args.model} at temperature {temperature}, {args.samples} sample(s) per problem"
              + (f", on {engine}" if engine != "transformers" else ""))
        t0, f = time.perf_counter(), ""
        try:
            for f, problems in datasets.items():
                results[f] = evaluate(team, problems, samples=args.samples, temperature=temperature, seed=args.seed,
                                      remove=args.remove, rollout=rollout, verifier=verifier,
                                      chunk=_eval_chunk(len(problems)), progress=eval_progress(f"eval {_data_name(f)}"))
        except (OSError, ValueError) as e:
            return _fail(f"{f}: {e}")
        finally:
            if engine == "vllm":
                for p in {id(p): p for p in team.values()}.values():
                    p.close()
    print()
    chain = next(iter(results.values())).get("roles")
    if chain and args.remove is None:
        _chain_header("dataset", chain)
        for f, r in results.items():
            _chain_row(_data_name(f)[:22], r, chain)
    elif args.remove is None:
        _table_header("dataset")
        for f, r in results.items():
            _print_row(_data_name(f)[:22], r)
    elif chain:
        for f, r in results.items():
            print(f"{_data_name(f)}: {args.remove} removed {r['removed'][args.remove]:.1%}")
    else:
        key = "solo_accuracy" if args.remove == "thinker_0" else "no_solver_accuracy"
        print(f"| dataset                | {args.remove} removed |")
        print("|------------------------|------------------:|")
        for f, r in results.items():
            print(f"| {_data_name(f)[:22]:<22} | {r[key]:>17.1%} |")
    if out is not None:
        if step != loaded:
            print(f"note: {args.model} saved a checkpoint while it was being loaded (step {step} -> {loaded}); "
                  f"the record says step {loaded}", file=sys.stderr)
        record = _eval_record(args, results, step=loaded, engine=engine, seconds=time.perf_counter() - t0)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            append_row(out, json.dumps(record, default=json_default))
        except OSError as e:
            return _fail(f"cannot append the results to {out}: {e}")
        print(f"\nappended to {out} (step {record['step']}, seed {args.seed})" if record["step"] is not None
              else f"\nappended to {out}")
    return 0


#: The results file ``thinksolve eval`` appends to in a run directory (one JSON record per line).
EVAL_RECORDS = "evals.jsonl"


def _data_name(source: str) -> str:
    return source if source.startswith("arith:") else Path(source).name


def _eval_datasets(spec: str, limit: int | None) -> dict[str, list[Problem]]:
    """Every ``--data`` source loaded and checked (it exists, parses, and keeps a problem after
    ``--limit``) before a model is loaded; a bad one is a ValueError naming it."""
    sources = split_data(spec)
    if not sources:
        raise ValueError(f"--data {spec!r} names no problem file or arith: spec")
    datasets: dict[str, list[Problem]] = {}
    for f in sources:
        if f in datasets:
            raise ValueError(f"--data names {f} twice")
        try:
            problems = load_problems(f, limit=limit)
        except (OSError, ValueError) as e:
            raise ValueError(f"--data {f}: {e}") from None
        if not problems:
            raise ValueError(f"--data {f}: no problems" + (f" (with --limit {limit})" if limit is not None else ""))
        datasets[f] = problems
    return datasets


def _eval_out(args) -> Path | None:
    """The file the record is appended to: ``--out``, else ``RUN/evals.jsonl`` for a run (a model
    folder or name is left as it is: no file). An existing file must hold JSON lines (one object
    per line), so that nothing is appended to a file of another kind, e.g. an ``eval.json`` written
    by thinksolve before 0.2 (one indented object)."""
    if args.out:
        out = Path(args.out)
    elif is_run(args.model):
        out = Path(args.model) / EVAL_RECORDS
    else:
        return None
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; name a file (JSON lines, one record per evaluation)")
    if out.exists():
        try:
            with open(out, encoding="utf-8") as fh:
                first = fh.readline()
            if first.strip() and not isinstance(json.loads(first), dict):
                raise ValueError
        except (OSError, UnicodeDecodeError, ValueError):
            raise ValueError(f"--out {out} exists and is not a JSON-lines file (one JSON object per line); evaluations "
                             "are appended, never overwritten: name a new file or a .jsonl of earlier evaluations") from None
    return out


def _run_step(model: str) -> int | None:
    """The step of the run's checkpoint (``None`` for a model that is not a run)."""
    return recorded_config(model)["step"] if is_run(model) else None


def _eval_record(args, results: dict[str, dict], *, step: int | None, engine: str, seconds: float) -> dict:
    """One evaluation: what was evaluated (model, checkpoint step), how (seed, sampling, removal)
    and the results per source (accuracies, paired intervals, per-problem values with problem ids,
    seconds, tokens). The sampling settings and seed are the same for every source and stand once."""
    first = next(iter(results.values()))
    per_source = {f: {k: v for k, v in r.items() if k not in ("seed", "sampling")} for f, r in results.items()}
    return {
        "time": utc_time(),
        "model": args.model, "solver_model": args.solver_model, "step": step, "seed": args.seed,
        "temperature": first["temperature"], "sampling": {**first["sampling"], "engine": engine},
        "remove": args.remove, "results": per_source,
        "seconds": seconds, "tokens": sum(r["tokens"] for r in results.values()),
    }


def _eval_chunk(n: int) -> int:
    """Problems per collection in ``thinksolve eval``: about 10 progress lines per dataset, at
    most 32 problems per batch."""
    return max(1, min(32, math.ceil(n / 10)))


def split_data(spec: str) -> list[str]:
    """``FILE[,FILE...]`` → sources; the commas inside an ``arith:`` spec (``arith:n=50,difficulty=2``)
    stay with it."""
    out: list[str] = []
    for piece in filter(None, (p.strip() for p in spec.split(","))):
        if out and out[-1].startswith("arith:") and re.match(r"^\w+=", piece):
            out[-1] += "," + piece
        else:
            out.append(piece)
    return out


def _eval_budgets(args, run_rollout=None):
    """A run's own rollout settings (budgets, prompt set), else defaults; flags override."""

    r = copy.deepcopy(run_rollout) if run_rollout is not None else RolloutConfig(thinker_max_new_tokens=1024,
                                                                                    solver_max_new_tokens=1024)
    if args.max_new_tokens is not None:
        r.thinker_max_new_tokens = r.solver_max_new_tokens = args.max_new_tokens
    if args.prompts is not None:
        r.prompts = args.prompts
    return r


def cmd_demo(args: argparse.Namespace) -> int:
    """Warm start, evaluate, train the tiny-brief team with CCPO, evaluate again (with intervals)."""

    if args.scripted:
        return cmd_play(args)
    t0 = time.perf_counter()
    try:
        cfg = preset(args.preset)
        cfg.out, cfg.seed = args.out, args.seed
        if args.steps is not None:
            cfg.steps = args.steps
        cfg = apply_overrides(cfg, list(args.overrides or []))
        cfg.load_plugins()
        cfg.validate()
        check_unlocked(cfg.out)  # never delete the directory of a run that is being written
    except (ConfigError, RunLockedError) as e:
        return _fail(str(e))
    out = Path(cfg.out)
    if out.exists():
        shutil.rmtree(out)
    label = {"ccpo": "CCPO"}.get(cfg.credit.name, cfg.credit.name)
    print(f"thinksolve demo: {args.preset}, credit {cfg.credit.name} ({cfg.credit.params or 'event'}), "
          f"{cfg.optim.estimator}+{cfg.optim.loss}, {cfg.steps} steps, {cfg.rollout.problems_per_step} problems x "
          f"{cfg.rollout.group_size} rollouts per step, seed {cfg.seed} -> {out}")
    roles = list(cfg.rollout.roles)
    chain = len(roles) > 2
    with Trainer(cfg) as trainer:
        before = trainer.evaluate(cfg.eval_data)
        if chain:
            print("warm start: team " + f"{before['joint_accuracy']:.1%}, "
                  + ", ".join(f"without {r} {before['removed'][r]:.1%}" for r in roles)
                  + f" ({time.perf_counter() - t0:.0f}s so far); training...")
        else:
            print(f"warm start: team {before['joint_accuracy']:.1%}, Thinker removed {before['solo_accuracy']:.1%} "
                  f"({time.perf_counter() - t0:.0f}s so far); training...")
        try:
            trainer.train()
        except KeyboardInterrupt:
            return 130
        after = trainer.evaluate(cfg.eval_data)
    wall = time.perf_counter() - t0
    gain = paired_interval(after["per_problem"]["joint"], before["per_problem"]["joint"])
    if chain:
        return _demo_chain_report(cfg, args, out, roles, before, after, gain, wall, label)
    collab = {k: paired_interval(r["per_problem"]["joint"], r["per_problem"]["solo"])
              for k, r in (("before", before), ("after", after))}
    print()
    print(f"held-out {cfg.eval_data}: accuracy of the Solver's answer, {cfg.eval_samples} sample(s) per problem "
          f"at temperature {cfg.eval_temperature}")
    print()
    _table_header("model")
    _print_row("warm start", before)
    _print_row(f"+ {label}, {cfg.steps} steps", after)
    print()
    lo, hi = gain["ci95"]
    clo, chi = collab["after"]["ci95"]
    print(f"team accuracy {before['joint_accuracy']:.1%} -> {after['joint_accuracy']:.1%} "
          f"({gain['mean']:+.1%}, 95% interval {lo:+.1%} to {hi:+.1%}, paired over {before['problems']} problems); "
          f"collaboration at the end {collab['after']['mean']:+.1%} ({clo:+.1%} to {chi:+.1%}); wall time {wall / 60:.1f} min")
    (out / "demo.json").write_text(json.dumps({
        "seed": cfg.seed, "preset": args.preset, "before": before, "after": after, "wall_s": wall,
        "gain": gain, "collaboration": collab, "config": cfg.to_dict()}, indent=2))
    return 0


def _demo_chain_report(cfg: TrainerConfig, args: argparse.Namespace, out: Path, roles: list[str], before: dict,
                       after: dict, gain: dict, wall: float, label: str) -> int:
    """The demo's report for a team of more than two roles: the team and the team without each
    role, before and after; the gain and each role's contribution (team − without it) after
    training with its paired interval over the held-out problems; ``DIR/demo.json``."""
    contribution = {k: {role: paired_interval(r["per_problem"]["joint"], r["per_problem"][f"without_{role}"])
                        for role in roles} for k, r in (("before", before), ("after", after))}
    print()
    print(f"held-out {cfg.eval_data}: accuracy of the last role's answer, {cfg.eval_samples} sample(s) per problem "
          f"at temperature {cfg.eval_temperature}; a removed role's successors answer without its message")
    print()
    _chain_header("model", roles)
    _chain_row("warm start", before, roles)
    _chain_row(f"+ {label}, {cfg.steps} steps", after, roles)
    print()
    lo, hi = gain["ci95"]
    print(f"team accuracy {before['joint_accuracy']:.1%} -> {after['joint_accuracy']:.1%} "
          f"({gain['mean']:+.1%}, 95% interval {lo:+.1%} to {hi:+.1%}, paired over {before['problems']} problems)")
    for role in roles:
        c = contribution["after"][role]
        print(f"  {role} at the end: team minus without it {c['mean']:+.1%} "
              f"({c['ci95'][0]:+.1%} to {c['ci95'][1]:+.1%})")
    print(f"wall time {wall / 60:.1f} min")
    (out / "demo.json").write_text(json.dumps({
        "seed": cfg.seed, "preset": args.preset, "roles": roles, "before": before, "after": after, "wall_s": wall,
        "gain": gain, "contribution": contribution, "config": cfg.to_dict()}, indent=2))
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    return _cmd_play(args)


_LAYOUT_CHANGES = {"ddp": "parallel.strategy=ddp", "fsdp": "parallel.strategy=fsdp",
                   "fsdp+offload": "parallel.strategy=fsdp parallel.offload=true", "lora": "model.sharing=lora"}


def _models_of(cfg: TrainerConfig) -> str:
    m = cfg.model
    names = m.name if not m.solver_name or m.solver_name == m.name else f"{m.name} + {m.solver_name} (Solver)"
    return f"{names}, {m.sharing}, {m.dtype}"


def _preset_table(gpu_memory: float) -> None:
    print(f"GPUs each preset needs on {gpu_memory:g} GiB GPUs, in its own layout (the smallest of 1, 2, 4, ... 64 that fits):")
    print()
    print("| preset | models | layout | GPUs |")
    print("|---|---|---|---:|")
    for name in PRESETS:
        cfg = preset(name)
        n = min_gpus(cfg, gpu_memory)
        print(f"| {name} | {_models_of(cfg)} | {own_layout(cfg)} | {n if n is not None else 'none up to 64'} |")


def cmd_plan(args: argparse.Namespace) -> int:
    """Print the memory plan of a preset on ``--gpus`` GPUs, then the GPUs every preset needs."""
    if args.gpu_memory <= 0:
        return _fail(f"--gpu-memory must be > 0 GiB, got {args.gpu_memory}")
    try:
        if args.preset is not None:
            cfg = apply_overrides(preset(args.preset), list(args.overrides or [])).validate()
            need = min_gpus(cfg, args.gpu_memory)
            gpus = args.gpus if args.gpus is not None else (need or 8)
            plan = memory_plan(cfg, gpus, args.gpu_memory)
        elif args.overrides:
            return _fail("field=value overrides need --preset")
    except ConfigError as e:
        return _fail(str(e))
    if args.preset is not None:
        cols = list(LAYOUTS)
        own = plan["own"]
        head = [c + (" (own)" if c == own else "") for c in cols]
        print(f"memory plan of {args.preset}: {_models_of(cfg)}; {gpus} GPU(s) of {args.gpu_memory:g} GiB; GiB per GPU")
        print()
        print("| part | " + " | ".join(head) + " |")
        print("|---|" + "---:|" * len(cols))
        for part in plan_rows(plan):
            print(f"| {part} | " + " | ".join(f"{plan['layouts'][c]['parts'][part] / GiB:.1f}" for c in cols) + " |")
        print("| **total** | " + " | ".join(f"**{plan['layouts'][c]['total'] / GiB:.1f}**" for c in cols) + " |")
        usable = plan["usable"] / GiB
        print(f"| fits in {usable:.1f} | " + " | ".join("yes" if plan["layouts"][c]["fits"] else "no" for c in cols) + " |")
        print("| CPU RAM per node | " + " | ".join(f"{plan['layouts'][c]['cpu_per_node'] / GiB:.1f}" for c in cols) + " |")
        print()
        print(f"usable: {usable:.1f} GiB of {args.gpu_memory:g} ({HEADROOM:.0%} kept free for the CUDA context, NCCL and "
              "fragmentation); the update and the rollout do not overlap, so a total counts the larger of (activations + "
              "gathered layers, or the optimizer step) and (generation copy + cache), not both.")
        for c in cols:
            for note in plan["layouts"][c]["notes"]:
                print(f"{c}: {note}")
        mine = plan["layouts"][own]
        fit = "fits" if mine["fits"] else "does not fit"
        where = f"{need} GPU(s)" if need is not None else "no GPU count up to 64"
        print(f"{args.preset} ({own}: {_LAYOUT_CHANGES[own]}) {fit} on {gpus} GPU(s) of {args.gpu_memory:g} GiB; "
              f"the smallest count that fits: {where}.")
        if "vllm_gpu_memory_utilization" in mine:
            print(f"vLLM: rollout.vllm.gpu_memory_utilization={mine['vllm_gpu_memory_utilization']} gives each engine its "
                  "share of the GPU with the free memory as KV cache.")
        others = [f"{c} on {n}" for c in cols if c != own
                  for n in [min_gpus(layout_config(cfg, c), args.gpu_memory)] if n is not None]
        if others:
            print("other layouts, the GPUs they need: " + ", ".join(others) + ".")
        print()
    _preset_table(args.gpu_memory)
    return 0


#: ``thinksolve bench NAME`` → the script under ``benchmarks/`` that answers it.
BENCHMARKS = {
    "credit": "credit_comparison.py",
    "performance": "performance.py",
    "env": "env_throughput.py",
    "verifier": "verifier_speed.py",
    "generation": "generation_speed.py",
    "eval": "eval_speed.py",
    "demo": "demo_seeds.py",
    "fidelity": "credit_fidelity.py",
    "scaling": "scaling.py",
    "trl": "trl_step.py",
}
BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


def cmd_bench(args: argparse.Namespace) -> int:
    """Run ``benchmarks/<script>`` with the remaining arguments, as ``python benchmarks/<script>``
    would (the benchmarks live in the source checkout, next to their results)."""

    script = BENCH_DIR / BENCHMARKS[args.name]
    if not script.is_file():
        return _fail(f"{script} not found: `thinksolve bench` runs the scripts of a source checkout "
                     f"(git clone, then `make setup`)")
    argv = sys.argv
    sys.argv = [str(script), *args.args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    try:
        folders = export_team(args.model, args.out)
    except (OSError, ValueError, ImportError, CheckpointError) as e:
        return _fail(str(e))
    for role, folder in folders.items():
        print(f"{role}: {folder}")
    print(f"load a role with AutoModelForCausalLM.from_pretrained({str(next(iter(folders.values())))!r}); "
          f"what the team is: {Path(args.out) / 'team.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thinksolve", description="Think–Solve multi-agent RL toolkit")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a Thinker/Solver team", description=(
        "Train with a preset; any config field can be overridden as field=value (e.g. optim.lr=1e-5 "
        "schedule.mode=simultaneous credit.params.lam=0.5)."))
    train.add_argument("--preset", help=f"one of: {', '.join(PRESETS)} (default tiny-arith; not with --resume)")
    train.add_argument("--credit", help="credit method: " + ", ".join(credit_available())
                       + " (built in), or one a --plugin registers")
    train.add_argument("--optimizer", help=f"one of: {', '.join(OPTIMIZERS)}")
    train.add_argument("--seed", type=int)
    train.add_argument("--steps", type=int)
    train.add_argument("--out", help="run directory (metrics.jsonl, checkpoint/)")
    train.add_argument("--resume", nargs="?", const="yes", choices=RESUME_MODES, metavar="auto",
                       help="continue the run in --out exactly where it stopped. With --preset: the original command "
                            "line with --resume appended (only real differences from the recorded config are refused, "
                            "and listed); without: the run's recorded config and plugins, other flags being changes "
                            "(--steps, save_every=...). `--resume auto` (for job schedulers that rerun the same line): "
                            "resume when --out holds a checkpoint, else start the run")
    train.add_argument("--dry-run", action="store_true",
                       help="check the configuration, plugins, data, model names and run directory, print what the run "
                            "would do, and exit without loading a model or writing anything")
    train.add_argument("--list-fields", action="store_true",
                       help="list every config field (with the preset's value and its meaning) and exit")
    train.add_argument("--plugin", action="append", metavar="FILE_OR_MODULE",
                       help="import a .py file or module that registers credit methods (repeatable)")
    train.add_argument("overrides", nargs="*", metavar="field=value")
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="accuracy with and without the Thinker")
    ev.add_argument("--model", required=True,
                    help="a run directory (with checkpoint/), a model name (tiny, smollm2-135m) or path")
    ev.add_argument("--solver-model", help="a different model for the Solver")
    ev.add_argument("--data", required=True, help="problem file(s) or arith: specs, comma-separated")
    ev.add_argument("--remove", metavar="ROLE",
                    help="evaluate only with this role removed (thinker_0 or solver_0; a role of the chain for a team "
                         "of more than two roles)")
    ev.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default 1.0)")
    ev.add_argument("--greedy", action="store_true", help="greedy decoding (temperature 0)")
    ev.add_argument("--samples", type=int, default=1, help="samples per problem (mean@k)")
    ev.add_argument("--limit", type=int, help="evaluate only the first N problems of each file")
    ev.add_argument("--max-new-tokens", type=int, help="generation budget per role (default: the run's, else 1024)")
    ev.add_argument("--prompts", help="prompt set: default or compact (default: the run's, else default)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--engine", choices=["transformers", "vllm"], default="transformers",
                    help="generation engine (vllm: run it from .venv-vllm or a GPU install; default transformers)")
    ev.add_argument("--out", help="JSON-lines file the evaluation is appended to, one record per evaluation "
                                  f"(default: RUN/{EVAL_RECORDS} for a run directory; nothing for a model)")
    ev.set_defaults(func=cmd_eval)

    demo = sub.add_parser("demo", help="the main job: warm start, CCPO training of tiny-brief, before/after table with intervals")
    demo.add_argument("--out", default="runs/demo", help="run directory (replaced)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--preset", default="tiny-brief",
                      help="the team to train (default tiny-brief, the testbed where the Thinker matters; tiny-relay: "
                           "three roles, the middle one matters)")
    demo.add_argument("--steps", type=int, help="training steps (default: the preset's)")
    demo.add_argument("--scripted", action="store_true", help="play scripted MATH500 episodes instead (= `thinksolve play`)")
    demo.add_argument("--data", default=str(DEFAULT_DATA), help=argparse.SUPPRESS)
    demo.add_argument("--episodes", type=int, default=48, help=argparse.SUPPRESS)
    demo.add_argument("overrides", nargs="*", metavar="field=value")
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="run a benchmark (" + ", ".join(BENCHMARKS) + ")",
                           description="Run benchmarks/<script> with the remaining arguments; results go to "
                                       "benchmarks/results/. `thinksolve bench credit --help` lists a benchmark's options.")
    bench.add_argument("name", choices=sorted(BENCHMARKS), help="; ".join(f"{k}: {v}" for k, v in BENCHMARKS.items()))
    bench.add_argument("args", nargs=argparse.REMAINDER, help="arguments of the benchmark script")
    bench.set_defaults(func=cmd_bench)

    plan = sub.add_parser("plan", help="memory per GPU by part in each layout, and the GPUs each preset needs",
                          description="The memory plan of a preset (algorithms.team.memory): GiB per GPU by part in each "
                                      "layout (ddp, fsdp, fsdp+offload, lora), which fit, and the GPU count every preset "
                                      "needs. Nothing is loaded; docs/scale.md explains the estimate.")
    plan.add_argument("--preset", help=f"one of: {', '.join(PRESETS)} (without it: only the table of presets)")
    plan.add_argument("--gpus", type=int, help="GPUs (processes) of the run (default: the smallest count that fits)")
    plan.add_argument("--gpu-memory", type=float, default=80.0, metavar="GB",
                      help="memory of one GPU in GiB (default 80: H100, A100-80GB)")
    plan.add_argument("overrides", nargs="*", metavar="field=value")
    plan.set_defaults(func=cmd_plan)

    export = sub.add_parser("export", help="write each role of a trained run as a Hugging Face folder (safetensors, tokenizer)",
                            description="Each role of a run (whole or sharded checkpoint; LoRA adapters merged) as "
                                        "OUT/<role>/, loadable with from_pretrained and by vLLM; OUT/team.json says what it is.")
    export.add_argument("--model", required=True, help="the run directory (a training run's --out)")
    export.add_argument("--out", required=True, help="a new (or empty) folder")
    export.set_defaults(func=cmd_export)

    play = sub.add_parser("play", help="play MATH500 episodes with scripted policies in every removal mode")
    play.add_argument("--data", default=str(DEFAULT_DATA), help="problem file (JSONL/parquet); default: shared MATH500")
    play.add_argument("--episodes", type=int, default=48, help="problems to play per mode (default 48)")
    play.add_argument("--seed", type=int, default=0, help="seed for choosing the problems")
    play.set_defaults(func=cmd_play)
    return parser


#: ``--resume`` alone means "yes"; ``--resume auto`` is the scheduler mode.
RESUME_MODES = ("yes", "auto")


def _resume_argv(argv: Sequence[str]) -> list[str]:
    """``--resume`` takes an optional value (``auto``); a bare ``--resume`` followed by an override
    (``--resume eval_every=5``) must not take the override as its value, so it is written
    ``--resume=yes``."""
    out = list(argv)
    for i, a in enumerate(out):
        if a == "--resume" and (i + 1 == len(out) or out[i + 1] not in RESUME_MODES):
            out[i] = "--resume=yes"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(_resume_argv(sys.argv[1:] if argv is None else argv))
    # argparse takes one run of positionals: `field=value` overrides given after an option
    # (`a=1 --steps 2 b=1`) come back unparsed and join the others, in order
    if hasattr(args, "overrides"):
        args.overrides = list(args.overrides or []) + [a for a in extra if re.match(r"^[\w.]+=", a)]
        extra = [a for a in extra if not re.match(r"^[\w.]+=", a)]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:  # model-loading progress bars would drown the training output
        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover
        pass
    if getattr(args, "episodes", 1) < 1:
        print("thinksolve: --episodes must be >= 1", file=sys.stderr)
        return 2
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        rc = 130
    return _end_rank(rc)


def _end_rank(rc: int) -> int:
    """One process of several (``torchrun``): when its command is done and everything is written
    and closed, the ranks meet, destroy their process group and leave without the interpreter's
    teardown. A gloo rank left to that teardown occasionally aborted after a finished run
    ("terminate called without an active exception", SIGABRT: a failed job for a scheduler).
    One process: ``rc`` is returned as usual."""
    import torch.distributed as dist  # noqa: PLC0415

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not (dist.is_available() and dist.is_initialized()):
        return rc
    from .train.distributed import leave_process_group  # noqa: PLC0415

    with contextlib.suppress(Exception):
        leave_process_group(wait=rc == 0)  # a rank that failed does not wait for the others
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(rc if isinstance(rc, int) else 1)


if __name__ == "__main__":
    sys.exit(main())
