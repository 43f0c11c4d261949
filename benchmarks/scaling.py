"""Scaling in one run: step time and memory per rank of 1 process, 2-rank DDP, 2-rank FSDP and
2-rank FSDP with CPU offload, and sharded rollout generation (gathered copy vs layer by layer).

For each model (``tiny``: the ``tiny-arith`` preset; ``smollm2-135m``: the ``smollm2-arith``
preset; both with ``warm_start.enabled=false`` and small rollout budgets, so a step takes seconds)
and each layout, a fresh job is launched: ``1 process`` as a plain subprocess, the 2-rank layouts
with ``python -m torch.distributed.run --nproc_per_node 2`` (gloo on CPU, ``OMP_NUM_THREADS=1``,
``threads=1`` in every process: 1 process uses one core, 2 ranks two). Every job builds one
:class:`~algorithms.train.Trainer` (``parallel.strategy`` / ``parallel.offload`` set by the
layout) and runs one warm-up step and ``--steps`` timed steps (ranks start each step together
after a barrier; a step's time is the slowest rank's). The whole batch (``problems_per_step``) is
the same at every layout; 2 ranks split it.

* The schedule is ``simultaneous`` (both roles updated at every step, so every role's gradients
  and AdamW state exist) and the credit method is CCPO plus each sample's share of odd token ids
  (as in tests/fsdp_job.py), so that a random model gets gradients that are not all zero.
* Memory per rank: ``params`` and ``optimizer`` are
  :func:`algorithms.team.memory.measured_state_bytes` after the last step; ``grads`` is its
  largest value seen just before an optimizer step (the update frees gradients when it ends);
  ``peak RSS`` is the process's ``ru_maxrss`` after the steps (model loading, rollouts and
  updates included; before the generation comparison below).
* Generation (in the FSDP job, after the steps): both ranks generate from the Solver's sharded
  policy with the same ``--gen-prompts`` distinct prompts, temperature 1, the same seed, exactly
  ``--gen-tokens`` new tokens per row (EOS suppressed, so every rank runs the same number of
  forwards), either from a gathered copy (:class:`algorithms.train.distributed.GatheredGeneration`,
  what the trainer does: one all-gather per ``generate`` call, then local decoding) or with the
  model left sharded (every forward all-gathers one decoder layer at a time, FSDP2's own
  schedule). One warm-up call each, then ``--gen-repeats`` interleaved timed calls; tokens/s per
  rank = rows x tokens / median seconds.

A layout that fails (e.g. FSDP2 CPU offload on a CPU-only machine) is reported in the table
with its error instead of numbers. Quote the ratios, not the absolute times: the machine is shared.

Usage::

    python benchmarks/scaling.py [--models tiny smollm2-135m] [--steps 3] [--gen-tokens 16]
        [--gen-prompts 8] [--gen-repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from _results import markdown_table, write_results  # noqa: E402

MiB = 2**20
LAYOUTS = {  # name -> (processes, config overrides)
    "1 process": (1, ["parallel.strategy=ddp"]),
    "2-rank DDP": (2, ["parallel.strategy=ddp"]),
    "2-rank FSDP": (2, ["parallel.strategy=fsdp"]),
    "2-rank FSDP+offload": (2, ["parallel.strategy=fsdp", "parallel.offload=true"]),
}
#: Per model: the preset, the overrides that make a step take seconds on 2 CPU cores, the timed
#: steps per job (after one warm-up step), and the generation comparison's size (prompts per
#: call, new tokens per row).
MODELS = {
    "tiny": {"preset": "tiny-arith", "steps": 5, "generation": (8, 32),
             "overrides": ["rollout.problems_per_step=4", "rollout.group_size=4", "rollout.solo_samples=2",
                           "rollout.thinker_max_new_tokens=24", "rollout.solver_max_new_tokens=24"]},
    "smollm2-135m": {"preset": "smollm2-arith", "steps": 3, "generation": (4, 6),
                     "overrides": ["rollout.problems_per_step=2", "rollout.group_size=2", "rollout.solo_samples=1",
                                   "rollout.thinker_max_new_tokens=8", "rollout.solver_max_new_tokens=8",
                                   "rollout.max_prompt_tokens=128", "rollout.prompts=compact"]},
}
COMMON = ["warm_start.enabled=false", "credit.name=scaling_parity", "schedule.mode=simultaneous", "threads=1",
          "tensorboard=false"]
COLUMNS = ["model", "layout", "step s (x 1 process)", "params MiB/rank", "grads MiB/rank", "optimizer MiB/rank",
           "peak RSS MiB/rank"]
GEN_COLUMNS = ["model", "generation on 2 FSDP ranks", "tokens/s per rank", "x gathered copy", "s per call"]


# --------------------------------------------------------------------------- worker (one job: one model, one layout)


def _register_parity_credit() -> None:
    """CCPO plus each sample's share of odd token ids (tests/fsdp_job.py's idea): a random
    model's rewards then vary within groups, and its gradients are not all zero."""
    import numpy as np

    from algorithms import credit
    from algorithms.credit.ccpo import CCPO

    def parity(groups, role):
        return np.array([np.mean([t % 2 for t in e.completions[role].token_ids] or [0])
                         for g in groups for e in g.episodes])

    class ScalingParity(CCPO):
        def compute(self, groups):
            out = super().compute(groups)
            return {"thinker_0": out["thinker_0"] + parity(groups, "thinker_0"),
                    "solver_0": out["solver_0"] + 1.0 - parity(groups, "solver_0")}

    if "scaling_parity" not in credit.available():
        credit.register("scaling_parity")(ScalingParity)


def job_config(model: str, layout: str, out: str, extra: list[str] | None = None):
    """The TrainerConfig of one job."""
    from algorithms.config import apply_overrides, preset

    m = MODELS[model]
    return apply_overrides(preset(m["preset"]), [*COMMON, *m["overrides"], *LAYOUTS[layout][1], *(extra or []),
                                                 f"out={out}"])


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _generation(trainer, prompts: int, tokens: int, repeats: int) -> dict:
    """Tokens/s per rank of the Solver's sharded policy generating from a gathered copy and layer
    by layer (both ranks: the same prompts, seed and exactly ``tokens`` new tokens per row)."""
    import torch.distributed as dist

    from algorithms.train.distributed import GatheredGeneration, is_sharded

    policy = trainer.policies["solver_0"]
    assert is_sharded(policy.model), "generation comparison needs a sharded model"
    msgs = [[{"role": "user", "content": f"What is {7 * i + 3} + {11 * i + 5}? Think step by step."}]
            for i in range(prompts)]
    modes = {"gathered copy": GatheredGeneration(policy), "layer by layer": policy}
    eos = policy.eos_token_ids
    policy.eos_token_ids = [-1]  # no early stop: every row runs `tokens` forwards on every rank
    times: dict[str, list[float]] = {m: [] for m in modes}
    lengths: dict[str, set] = {m: set() for m in modes}
    try:
        for k in range(1 + repeats):  # the first round is a short warm-up
            for mode, pol in modes.items():
                dist.barrier()
                t0 = time.perf_counter()
                out = pol.generate(msgs, max_new_tokens=tokens if k else 2, temperature=1.0, seed=1234 + k)
                wall = time.perf_counter() - t0
                if k:
                    times[mode].append(wall)
                    lengths[mode].update(len(c.token_ids) for c in out)
    finally:
        policy.eos_token_ids = eos
    res = {}
    for mode in modes:
        med = statistics.median(times[mode])
        res[mode] = {"s": times[mode], "median_s": med, "tokens_per_s": prompts * tokens / med,
                     "lengths": sorted(lengths[mode])}
    res["prompts"], res["tokens"], res["repeats"] = prompts, tokens, repeats
    return res


def worker(args: argparse.Namespace) -> int:
    """One job's process (a rank under torchrun): build, step, measure, write ``rank<r>.json``."""
    import datetime

    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    out_dir = Path(args.out)
    rec: dict = {"rank": rank, "world": world, "model": args.model, "layout": args.layout}
    code = 0
    trainer = None
    try:
        if world > 1:  # joined here with a short timeout, so a failing rank does not hang the other for 30 min
            dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=args.pg_timeout))
        _register_parity_credit()
        from algorithms.team.memory import measured_state_bytes
        from algorithms.train import Trainer

        cfg = job_config(args.model, args.layout, str(out_dir / "run"))
        t0 = time.perf_counter()
        trainer = Trainer(cfg, log=None)
        rec["build_s"] = time.perf_counter() - t0
        rec["sharding"] = trainer.dist.sharding
        rec["rss_after_build_mib"] = _rss_mib()
        peak_grads = {"grads": 0, "grads_cpu": 0}

        def before_step(opt, *_):
            m = measured_state_bytes(trainer.policies, trainer.optimizers)
            if m["grads"] > peak_grads["grads"]:
                peak_grads.update(grads=m["grads"], grads_cpu=m["grads_cpu"])

        for opt in {id(o): o for o in trainer.optimizers.values()}.values():
            opt.register_step_pre_hook(before_step)
        steps, phases, tokens = [], [], []
        for k in range(1 + (args.steps or MODELS[args.model]["steps"])):
            trainer.dist.barrier()
            t0 = time.perf_counter()
            row = trainer.step()
            wall = time.perf_counter() - t0
            if k:  # the first step is the warm-up
                steps.append(wall)
                phases.append({p: row["time"][p] for p in ("collect", "credit", "update")})
                tokens.append(row["tokens"])
        rec["step_s"], rec["phases"], rec["tokens"] = steps, phases, tokens
        rec["state"] = measured_state_bytes(trainer.policies, trainer.optimizers) | {
            "peak_" + name: v for name, v in peak_grads.items()}
        rec["peak_rss_mib"] = _rss_mib()
        if args.generation and trainer.dist.sharding:
            gen_prompts, gen_tokens = MODELS[args.model]["generation"]
            rec["generation"] = _generation(trainer, args.gen_prompts or gen_prompts, args.gen_tokens or gen_tokens,
                                            args.gen_repeats)
        rec["threads"] = torch.get_num_threads()
    except Exception as e:  # reported in the table; the exit code makes torchrun stop the other rank
        last = traceback.extract_tb(e.__traceback__)[-1]
        rec["error"] = f"{type(e).__name__}: {e} (in {last.name}: `{(last.line or '').strip()}`)"
        rec["traceback"] = traceback.format_exc()
        code = 1
    finally:
        if trainer is not None:
            try:
                trainer.close()
            except Exception:  # closing after a failure: the first error is what counts
                pass
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"rank{rank}.json").write_text(json.dumps(rec))
    if code == 0 and world > 1 and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return code


# --------------------------------------------------------------------------- orchestrator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(model: str, layout: str, args: argparse.Namespace, generation: bool = False) -> dict:
    """Run one job (a subprocess, or ``torch.distributed.run`` with 2 ranks); its per-rank
    records, the wall time, and the failure's message if it failed."""
    procs = LAYOUTS[layout][0]
    out = Path(tempfile.mkdtemp(prefix="scaling-"))
    script = [str(Path(__file__).resolve()), "--worker", "--model", model, "--layout", layout, "--out", str(out),
              "--steps", str(args.steps), "--gen-prompts", str(args.gen_prompts or 0),
              "--gen-tokens", str(args.gen_tokens or 0), "--gen-repeats", str(args.gen_repeats),
              *(["--generation"] if generation else [])]
    if procs == 1:
        cmd = [sys.executable, *script]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs), "--master_port",
               str(_free_port()), *script]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.job_timeout, cwd=ROOT, env=env)
        rc, tail = p.returncode, (p.stdout[-1500:] + p.stderr[-3000:])
    except subprocess.TimeoutExpired as e:
        rc, tail = "timeout", f"timed out after {args.job_timeout}s: {str(e.stderr or '')[-2000:]}"
    wall = time.perf_counter() - t0
    ranks = []
    for r in range(procs):
        f = out / f"rank{r}.json"
        ranks.append(json.loads(f.read_text()) if f.exists() else None)
    shutil.rmtree(out, ignore_errors=True)
    errors = [x["error"] for x in ranks if x and x.get("error")]
    ok = rc == 0 and all(x and not x.get("error") for x in ranks)
    return {"model": model, "layout": layout, "ranks": ranks, "rc": rc, "wall_s": wall, "ok": ok,
            "error": None if ok else (errors[0] if errors else f"exit {rc}: {tail.strip()[-800:]}"),
            "traceback": None if ok else next((x["traceback"] for x in ranks if x and x.get("traceback")), tail)}


def _step_times(job: dict) -> list[float]:
    """A step's time is its slowest rank's."""
    per_rank = [x["step_s"] for x in job["ranks"]]
    return [max(ts) for ts in zip(*per_rank)]


def _per_rank(values: list[float], digits: int = 1) -> str:
    return " / ".join(f"{v:.{digits}f}" for v in values)


def rows_of(jobs: list[dict]) -> list[dict]:
    rows = []
    base: dict[str, float] = {}
    for job in jobs:
        row = {"model": job["model"], "layout": job["layout"]}
        if not job["ok"]:
            row["step s (x 1 process)"] = f"failed: {job['error']}".replace("|", "\\|").replace("\n", " ")
            rows.append(row)
            continue
        med = statistics.median(_step_times(job))
        if job["layout"] == "1 process":
            base[job["model"]] = med
        ratio = f" ({med / base[job['model']]:.2f}x)" if job["model"] in base else ""
        row["step s (x 1 process)"] = f"{med:.3f}{ratio}"
        st = [x["state"] for x in job["ranks"]]
        row["params MiB/rank"] = _per_rank([s["params"] / MiB for s in st])
        row["grads MiB/rank"] = _per_rank([s["peak_grads"] / MiB for s in st])
        row["optimizer MiB/rank"] = _per_rank([s["optimizer"] / MiB for s in st])
        row["peak RSS MiB/rank"] = _per_rank([x["peak_rss_mib"] for x in job["ranks"]], 0)
        rows.append(row)
    return rows


def generation_rows(jobs: list[dict]) -> list[dict]:
    rows = []
    for job in jobs:
        if not job["ok"] or "generation" not in job["ranks"][0]:
            continue
        gens = [x["generation"] for x in job["ranks"]]
        per = {m: statistics.mean(g[m]["tokens_per_s"] for g in gens) for m in ("gathered copy", "layer by layer")}
        for mode in ("gathered copy", "layer by layer"):
            rows.append({"model": job["model"], "generation on 2 FSDP ranks": mode, "prompts": gens[0]["prompts"],
                         "tokens": gens[0]["tokens"], "lengths": gens[0][mode]["lengths"],
                         "tokens/s per rank": round(per[mode], 1),
                         "x gathered copy": f"{per[mode] / per['gathered copy']:.2f}x",
                         "s per call": _per_rank([g[mode]["median_s"] for g in gens], 2)})
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--layouts", nargs="*", default=list(LAYOUTS), choices=list(LAYOUTS))
    ap.add_argument("--steps", type=int, default=0,
                    help="timed training steps per job, after one warm-up step (0: the model's own, see MODELS)")
    ap.add_argument("--gen-prompts", type=int, default=0,
                    help="prompts per generate call in the generation comparison (0: the model's own, see MODELS)")
    ap.add_argument("--gen-tokens", type=int, default=0, help="new tokens per row, EOS suppressed (0: the model's own)")
    ap.add_argument("--gen-repeats", type=int, default=3, help="timed generate calls per mode (after one warm-up)")
    ap.add_argument("--no-generation", action="store_true", help="skip the generation comparison")
    ap.add_argument("--job-timeout", type=int, default=300, help="seconds per job before it is killed")
    ap.add_argument("--no-write", action="store_true", help="print the tables, do not write results/ (tests)")
    # worker mode (launched by main; not for direct use)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--layout", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--generation", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pg-timeout", type=int, default=120, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        sys.exit(worker(args))

    t_start = time.perf_counter()
    load_start = os.getloadavg()
    jobs = []
    for model in args.models:
        for layout in args.layouts:
            gen = layout == "2-rank FSDP" and not args.no_generation
            print(f"[scaling] {model}: {layout}{' (+ generation)' if gen else ''} ...", flush=True)
            job = launch(model, layout, args, generation=gen)
            if job["ok"]:
                med = statistics.median(_step_times(job))
                print(f"[scaling]   median step {med:.3f}s, job {job['wall_s']:.0f}s", flush=True)
            else:
                print(f"[scaling]   FAILED: {job['error']}", flush=True)
            jobs.append(job)
    runtime = time.perf_counter() - t_start
    load_end = os.getloadavg()

    rows, grows = rows_of(jobs), generation_rows(jobs)
    gen_table = markdown_table(GEN_COLUMNS, grows) if grows else ""
    sizes = "; ".join(f"{m}: `{MODELS[m]['preset']}` with {' '.join(MODELS[m]['overrides'])}, "
                      f"{args.steps or MODELS[m]['steps']} timed steps" for m in args.models)
    notes = ("Each row is a fresh job (timed steps after one warm-up step; median step time, a step's "
             f"time being its slowest rank's; the ratio is to the same model's `1 process` row). Common overrides: "
             f"{' '.join(COMMON)}; {sizes}. 2-rank jobs: `torch.distributed.run --nproc_per_node 2`, gloo, "
             "OMP_NUM_THREADS=1, one thread per process (1 process uses one core, 2 ranks use two); the 2 ranks split "
             "the same batch. Per-rank columns give rank 0 / rank 1. params and optimizer: measured_state_bytes after "
             "the last step; grads: its largest value just before an optimizer step (gradients are freed after the "
             "update); peak RSS: ru_maxrss after the steps. "
             f"Machine: {os.cpu_count()} CPU cores, no GPU; load average {load_start[0]:.2f} at the start, "
             f"{load_end[0]:.2f} at the end; total runtime {runtime:.0f}s. The machine is shared: quote the ratios "
             "measured in one run, not the absolute times.")
    if grows:
        notes += ("\n\nGeneration on 2 FSDP ranks (the Solver's policy after the steps; both ranks: the same "
                  "prompts, temperature 1, exactly N new tokens per row with EOS suppressed, so that both ranks run "
                  f"the same forwards; median of {args.gen_repeats} calls after one short warm-up call; `s per call` "
                  "per rank; tokens/s per rank = prompts x N / median s): "
                  + "; ".join(f"{r['model']}: {r['prompts']} prompts x {r['tokens']} tokens" for r in grows[::2])
                  + ".\n\n" + gen_table)
    failed = [j for j in jobs if not j["ok"]]
    for j in failed:
        notes += f"\n\n{j['model']} / {j['layout']} failed: {j['error']}"
    table = markdown_table(COLUMNS, rows)
    if args.no_write:
        print(table)
        if gen_table:
            print("\n" + gen_table)
    else:
        cmd = " ".join([Path(sys.executable).name, "benchmarks/scaling.py", *(sys.argv[1:] if argv is None else argv)])
        write_results("scaling", COLUMNS, rows, notes=notes, command=cmd,
                      extra={"generation_columns": GEN_COLUMNS, "generation_rows": grows, "runtime_s": runtime,
                             "load_average": [load_start, load_end],
                             "jobs": jobs})
        print(table)
        if gen_table:
            print("\n" + gen_table)
    return {"rows": rows, "generation_rows": grows, "jobs": jobs, "runtime_s": runtime}


if __name__ == "__main__":
    main()
