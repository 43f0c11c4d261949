#!/usr/bin/env python3
"""GPU check: the CUDA training path end to end on the ``tiny`` model, in one command, one line.

What it runs (each a real :class:`~algorithms.Trainer` on the device, ``bfloat16``):

1. **every credit method** (``algorithms.credit.available()``: shared, ccpo, sepo, difference,
   shapley, and tree where installed) for ``--steps`` training steps, both roles updated every
   step (``schedule.mode=simultaneous``), with the counterfactuals and ratings each one needs;
2. **tree rollouts** (``rollout.answers_per_thought=2``, docs/method.md#tree-credit) with ``tree``,
   ``ccpo`` variant ``value`` and ``shared``;
3. **checkpoint and resume**: 4 steps straight against 2 steps, a new process-local trainer
   resumed from the checkpoint, 2 more; the final weights and metrics rows must be equal, bit for
   bit (on CUDA with ``torch.use_deterministic_algorithms`` and a fixed cuBLAS workspace). A credit
   method defined here rewards the parity of the sampled tokens (the untrained tiny model never
   solves a problem, so the verifier's +-1 alone would give zero advantages and no update).
4. **sharded training on every visible GPU**: the script re-launches itself under
   ``python -m torch.distributed.run --standalone --nproc_per_node N`` (``N =
   torch.cuda.device_count()``; 2 CPU processes on gloo with ``--dry-run``), and the N ranks run,
   all with the parity rewards:

   * ``fsdp_vs_ddp``: 2 steps with ``parallel.strategy=ddp`` and the same with ``fsdp``. The first
     step (the same weights and samples) must agree: gradient norms to 2e-2 relative, losses to
     2e-2 of the mean absolute advantage (``bfloat16``; 1e-4 in ``float32``). After 2 steps the
     weights are not equal in ``bfloat16`` (ddp trains the ``bfloat16`` weights themselves, fsdp
     float32 master shards), so the two runs' weight updates must point the same way (cosine >=
     0.9) and be of the same size (norm ratio 0.7..1.4); ranks that skip the gradient reduction
     give a cosine near 0.5. In ``float32`` they agree bit for bit on the CPU;
   * ``offload_idle``: 4 steps of the alternating schedule (``schedule.period=1``) with
     ``parallel.offload_idle=true`` and fsdp: at the start of every role's update and after every
     step, ``torch.cuda.memory_allocated`` and where each role's AdamW state lies. On CUDA the
     idle role's state must be in CPU memory (the updating role's on the GPU), and the memory at
     the start of the last update (after the last switch) no more than at the start of the one
     before it plus half the idle state's bytes; on the CPU (where nothing moves) it only has to
     run;
   * ``sharded_resume``: that 4-step run against 2 steps, a checkpoint (format 3, one
     ``state/__<rank>_0.distcp`` per rank, written by ``torch.distributed.checkpoint``) and 2
     steps resumed from it: the weights and metrics rows bit for bit equal;
   * ``fsdp_offload``: the ``fsdp_vs_ddp`` fsdp run again with ``parallel.offload=true``: the same
     first step and updates (the same tolerances) and, on several GPUs, the parameter shards in
     CPU memory. On the CPU (``--dry-run``) the offload runs unpinned (CPU to CPU); should it
     fail there, the error is recorded as "not checked on CPU" and the check does not fail.

   On one GPU the ranks are one process, where fsdp is plain training: the report says
   ``not sharded`` and the sharding-only conditions (shard files, offloaded parameters) are not
   asked.
5. **export**: ``algorithms.team.export.export_team`` (``thinksolve export``) writes the 4-step
   fsdp run as Hugging Face folders (``DIR/<role>/``: safetensors and tokenizer); each is loaded
   with ``transformers.AutoModelForCausalLM.from_pretrained`` (in ``--dtype``) and
   ``AutoTokenizer``, and its per-token log-probs of two sampled (prompt, completion) pairs per
   role must match the trained policy's (computed on the ranks at the end of training) to 2e-2
   (``bfloat16``; 1e-4 in ``float32``). Where ``algorithms.team.export`` is missing the check
   says ``skipped: export not available``.

It prints one summary line, ``gpu_check: PASS ...`` or ``gpu_check: FAIL ...`` (exit status 0 /
1), e.g. the dry run's (one line)::

    gpu_check: PASS device=cpu (cpu) dtype=bfloat16 torch=2.13.0+cpu credit 6/6 tree 3/3 resume exact
    dist[2 ranks] fsdp~ddp ok(cos=0.999) offload_idle ok sharded-resume exact
    fsdp+offload not-checked-on-CPU export ok(max|dlogp|=0.0039) wall 41s

and with ``--out DIR`` writes ``DIR/gpu_check.json`` with every check's details, among them
each run's step time (``step_s``: the median of the metrics rows' ``time_total``, seconds) and
peak memory (``peak_memory_mib``: ``torch.cuda.max_memory_allocated``; ``null`` on the CPU): per
check for 1-3, per run and rank (under ``ranks``) for 4.

The GPU machine has PyTorch and transformers but not pettingzoo, gymnasium or math-verify, and
reaches no registry. Download their wheels here first (pure Python, 1.5 MB)::

    python scripts/gpu_check.py --download-wheels .whl      # here, with internet

then carry ``.whl`` and run there::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \\
        PYTHONPATH=/tmp/site:. python3 scripts/gpu_check.py --out $OUT

(the ranks inherit ``PYTHONPATH``). ``--dry-run`` runs the same checks on the CPU (``bfloat16``
too, smaller sizes): that is how the test suite holds this script working where no GPU is lent.
``--no-dist`` skips 4 and 5. Budget: well under 8 minutes on one GPU (the tiny model; most of the
time is process and verifier start-up).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import pickle
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# `algorithms` and torch are imported inside the functions below: main() first checks that the packages
# the GPU image may lack are installed, and --download-wheels runs without them.

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: Packages the GPU image lacks, with the versions to carry (pure-Python wheels).
WHEELS = {
    "pettingzoo": "1.27.0",
    "gymnasium": "1.4.0",
    "farama-notifications": "0.0.6",
    "math-verify": "0.9.0",
    "latex2sympy2_extended": "1.11.0",
    "antlr4-python3-runtime": "4.13.2",
}
PARITY = "gpu_check_parity"
ROLES = ("thinker_0", "solver_0")
MiB = 2**20
#: The distributed checks, in the order the ranks run them (the summary's names beside them).
DIST_CHECKS = {"fsdp_vs_ddp": "fsdp~ddp", "offload_idle": "offload_idle", "sharded_resume": "sharded-resume",
               "fsdp_offload": "fsdp+offload"}
#: Tolerances per dtype: the first step (the same weights and samples; another reduction order and
#: gradient dtype): its gradient norm, relative, and its loss, over the mean absolute advantage
#: (the loss's scale); the cosine of two runs' weight updates and their norm ratio; exported vs
#: trained log-probs (absolute, per token).
TOLERANCE = {"bfloat16": {"first_step": 2e-2, "cosine": 0.9, "norm_ratio": (0.7, 1.4), "logprob": 2e-2},
             "float16": {"first_step": 1e-2, "cosine": 0.95, "norm_ratio": (0.8, 1.25), "logprob": 1e-2},
             "float32": {"first_step": 1e-4, "cosine": 0.999, "norm_ratio": (0.99, 1.01), "logprob": 1e-4}}


def download_wheels(directory: str, python_version: str = "3.12") -> int:
    """``pip download`` the wheels of :data:`WHEELS` into ``directory`` (run where pip reaches PyPI)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
           python_version, "--implementation", "py", "-d", directory,
           *[f"{name}=={version}" for name, version in WHEELS.items()]]
    print(" ".join(cmd), flush=True)
    return subprocess.call(cmd)


def _missing_packages() -> list[str]:
    mods = {"pettingzoo": "pettingzoo", "gymnasium": "gymnasium", "math-verify": "math_verify",
            "latex2sympy2_extended": "latex2sympy2_extended", "antlr4-python3-runtime": "antlr4"}
    return [pkg for pkg, mod in mods.items() if importlib.util.find_spec(mod) is None]


def _register_parity() -> None:
    from algorithms import credit

    if PARITY in credit.available():
        return

    @credit.register(PARITY, requires=["solo"])
    def _parity(groups):
        def share(role):
            return np.array([np.mean([t % 2 for t in e.completions[role].token_ids] or [0])
                             for g in groups for e in g.episodes])

        return {"thinker_0": share("thinker_0"), "solver_0": 1.0 - share("solver_0")}


def _config(out: Path, *, device: str, dtype: str, steps: int, credit: str, params: dict | None = None,
            tree: int = 1, small: bool = False, extra: tuple | list = ()):
    from algorithms.config import apply_overrides, preset

    n = 2 if small else 4
    overrides = [
        "warm_start.enabled=false", "train_data=arith:n=64,difficulty=1", "eval_every=0", "tensorboard=false",
        f"model.device={device}", f"model.dtype={dtype}", "schedule.mode=simultaneous",
        f"rollout.problems_per_step={n}", f"rollout.group_size={n}", "rollout.solo_samples=2",
        "rollout.thinker_max_new_tokens=8", "rollout.solver_max_new_tokens=8", "rollout.rating_max_new_tokens=12",
        "optim.lr=1e-3", f"credit.name={credit}", f"credit.params={json.dumps(params or {})}", f"steps={steps}",
        "save_every=2", f"out={out}", *extra,
    ]
    if tree > 1:
        overrides.append(f"rollout.answers_per_thought={tree}")
    return apply_overrides(preset("tiny-arith"), overrides)


def _rows(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [_strip_times(r) for r in rows]


def _strip_times(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("time", "time_total", "timestamp")}


def _full_weights(t) -> dict:
    """Every role's whole weights, float32 on the CPU (a sharded model's gathered: every rank calls it)."""
    import torch

    out = {}
    for role, sd in t.role_weights().items():
        out[role] = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().to("cpu", torch.float32, copy=True)
                     for k, v in sd.items()}  # a copy: never the live parameters
    return out


def _local(t):
    """A (possibly DTensor) tensor's local part."""
    return t.to_local() if hasattr(t, "to_local") else t


def _cuda(device: str) -> bool:
    return str(device).startswith("cuda")


def _reset_peak(device: str) -> None:
    import torch

    if _cuda(device):
        torch.cuda.reset_peak_memory_stats()


def _peak_mib(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / MiB if _cuda(device) else None


def _step_times(rows: list[dict]) -> dict:
    times = [r["time_total"] for r in rows if isinstance(r.get("time_total"), float)]
    return {"step_s": statistics.median(times) if times else None, "step_s_each": times}


def _finite(rows: list[dict]) -> bool:
    return all(math.isfinite(v) for r in rows for k, v in r.items() if k.startswith("loss_") and isinstance(v, float))


def _train(cfg, *, resume: bool = False) -> dict:
    """Run ``cfg`` to its end; the final weights (on the CPU, float32) and what the check reports."""
    import torch

    from algorithms.train import Trainer

    _reset_peak(cfg.model.device)
    with Trainer(cfg, resume=resume, log=None) as t:
        rows = t.train()
        weights = _full_weights(t)
        device = str(next(t.policies["thinker_0"].model.parameters()).device)
        dtype = str(next(t.policies["thinker_0"].model.parameters()).dtype).replace("torch.", "")
    return {"rows": rows, "weights": weights, "device": device, "dtype": dtype, "finite": _finite(rows),
            "updated": sorted({role for r in rows for role in r.get("updated", [])}), "torch": torch.__version__,
            "peak_memory_mib": _peak_mib(cfg.model.device), **_step_times(rows)}


def check_method(work: Path, name: str, *, device: str, dtype: str, steps: int, small: bool,
                 params: dict | None = None, tree: int = 1) -> dict:
    label = name
    if params:
        label += f"({','.join(f'{k}={v}' for k, v in params.items())})"
    if tree > 1:
        label += f" K={tree}"
    t0 = time.perf_counter()
    try:
        res = _train(_config(work / label.replace(" ", "_").replace("(", "_").replace(")", "").replace(",", "_")
                             .replace("=", "-"), device=device, dtype=dtype, steps=steps, credit=name, params=params,
                             tree=tree, small=small))
    except Exception as e:  # the summary names what failed; the JSON keeps the message
        return {"check": label, "ok": False, "error": f"{type(e).__name__}: {e}", "seconds": time.perf_counter() - t0}
    ok = (len(res["rows"]) == steps and res["finite"] and res["device"].startswith(device)
          and res["dtype"] == dtype and res["updated"] == ["solver_0", "thinker_0"])
    return {"check": label, "ok": ok, "steps": len(res["rows"]), "device": res["device"], "dtype": res["dtype"],
            "finite_losses": res["finite"], "updated": res["updated"], "step_s": res["step_s"],
            "peak_memory_mib": res["peak_memory_mib"], "seconds": time.perf_counter() - t0}


def check_resume(work: Path, *, device: str, dtype: str, small: bool) -> dict:
    import torch

    t0 = time.perf_counter()
    try:
        straight = _train(_config(work / "straight", device=device, dtype=dtype, steps=4, credit=PARITY, small=small))
        _train(_config(work / "resumed", device=device, dtype=dtype, steps=2, credit=PARITY, small=small))
        resumed = _train(_config(work / "resumed", device=device, dtype=dtype, steps=4, credit=PARITY, small=small),
                         resume=True)
    except Exception as e:
        return {"check": "resume", "ok": False, "error": f"{type(e).__name__}: {e}",
                "seconds": time.perf_counter() - t0}
    worst = _max_diff(straight["weights"], resumed["weights"])
    rows_equal = _rows(work / "straight") == _rows(work / "resumed")
    # the updates were real (nonzero gradients), so equal weights are not trivially equal
    moved = max([r.get("grad_norm_thinker_0") or 0.0 for r in straight["rows"]] or [0.0])  # (null: not updated)
    exact = worst == 0.0 and rows_equal
    return {"check": "resume", "ok": bool(exact and moved > 0), "exact": exact, "max_abs_weight_diff": worst,
            "metrics_rows_equal": rows_equal, "max_grad_norm": moved, "seconds": time.perf_counter() - t0,
            "torch_deterministic": torch.are_deterministic_algorithms_enabled()}


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[r][k] - b[r][k]).abs().max()) for r in a for k in a[r])


# ---------------------------------------------------------------------- the ranks (torch.distributed.run)

def _optimizer_devices(opt) -> list[str]:
    """The device types holding an optimizer's state tensors (``[]`` before its first step; the
    0-dim ``step`` counters, on the CPU by design, do not count)."""
    return sorted({_local(v).device.type for s in opt.state.values() for v in s.values()
                   if hasattr(v, "device") and v.dim() > 0})


def _optimizer_mib(opt) -> float:
    return sum(_local(v).numel() * _local(v).element_size() for s in opt.state.values() for v in s.values()
               if hasattr(v, "device") and v.dim() > 0) / MiB


class _IdleProbe:
    """Where each role's AdamW state lies and the GPU memory allocated, at the start of every role's
    update (the role woken, the other idle) and after every step (the roles not updated next moved
    out): it wraps the trainer's ``update`` and ``step``, which ``train`` calls."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.updates: list[dict] = []
        self.steps: list[dict] = []

    def _now(self, t) -> dict:
        import torch

        return {"allocated_mib": torch.cuda.memory_allocated() / MiB if _cuda(self.device) else None,
                "optimizer_state": {role: _optimizer_devices(opt) for role, opt in t.optimizers.items()},
                "optimizer_mib": {role: _optimizer_mib(opt) for role, opt in t.optimizers.items()}}

    def attach(self, t) -> None:
        step, update = t.step, t.update

        def probed_update(role, *args, **kwargs):
            self.updates.append({"step": t.step_count + 1, "role": role, **self._now(t)})
            return update(role, *args, **kwargs)

        def probed_step():
            row = step()
            self.steps.append({"step": row["step"], "updated": row["updated"],
                               "next": t.roles_to_update(t.step_count), **self._now(t)})
            return row

        t.update, t.step = probed_update, probed_step


def _policy_logprobs(t, n: int = 2) -> dict:
    """The trained policy's log-probs of ``n`` of rank 0's latest (prompt, completion) pairs per role
    (every rank computes them: a sharded forward is a collective)."""
    import torch

    pairs = None
    if t.dist.main:
        eps = [e for g in t.last_groups for e in g.episodes
               if all(len(e.completions[r].token_ids) for r in ROLES)][:n]
        pairs = {r: ([e.prompts[r] for e in eps], [e.completions[r] for e in eps]) for r in ROLES}
    pairs = t.dist.broadcast(pairs)
    with torch.no_grad():
        lp = {r: [x.float().cpu().tolist() for x in t.policies[r].logprobs(*pairs[r])] for r in ROLES if pairs[r][0]}
    return {"pairs": pairs, "logprobs": lp}


def _dist_run(cfg, *, resume: bool = False, initial: bool = False, probe: _IdleProbe | None = None,
              logprobs: bool = False) -> dict:
    """One run on every rank: its rows, whole final weights, and every rank's step time and peak memory."""
    from algorithms.train import Trainer

    device = cfg.model.device
    _reset_peak(device)
    out: dict = {}
    with Trainer(cfg, resume=resume, log=None) as t:
        if initial:
            out["initial"] = _full_weights(t)
        if probe is not None:
            probe.attach(t)
        rows = t.train()
        out["weights"] = _full_weights(t)
        if logprobs:
            out["policy_logprobs"] = _policy_logprobs(t)
        params = [p for role in ROLES for p in t.policies[role].model.parameters()]
        mine = {"rank": t.dist.rank, "device": str(_local(params[0]).device),
                "param_devices": sorted({_local(p).device.type for p in params}),
                "param_dtype": str(params[0].dtype).replace("torch.", ""), "steps": len(rows),
                "peak_memory_mib": _peak_mib(device), **_step_times(rows)}
        out["ranks"] = t.dist.gather(mine)
        out["sharded"], out["world"], out["rank"] = t.dist.sharding, t.dist.world, t.dist.rank
    out["rows"] = rows
    out["finite"] = _finite(rows)
    return out


def _summary_of(run: dict) -> dict:
    """What a report keeps of a run: per rank, step time and peak memory."""
    keep = ("rank", "device", "param_devices", "param_dtype", "steps", "step_s", "step_s_each", "peak_memory_mib")
    return {"sharded": run["sharded"], "finite_losses": run["finite"], "ranks": [{k: r[k] for k in keep} for r in run["ranks"]]}


def _losses(rows: list[dict]) -> list[list]:
    return [[r.get(f"loss_{role}") for role in ROLES] for r in rows]


def compare_runs(ref: dict, got: dict, initial: dict, dtype: str) -> dict:
    """Two runs of the same steps in different layouts: the first step's losses (the same weights
    and samples) and the weight updates (direction and size), within ``dtype``'s tolerance."""
    import torch

    tol = TOLERANCE.get(dtype, TOLERANCE["bfloat16"])
    a, b = _losses(ref["rows"]), _losses(got["rows"])
    same_roles = len(a) == len(b) and all((x is None) == (y is None) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
    first = []
    for role in ROLES if ref["rows"] and got["rows"] else ():
        ra, rb = ref["rows"][0], got["rows"][0]
        if ra.get(f"loss_{role}") is None or rb.get(f"loss_{role}") is None:  # not updated at the first step
            continue
        la, lb, ga, gb = ra[f"loss_{role}"], rb[f"loss_{role}"], ra[f"grad_norm_{role}"], rb[f"grad_norm_{role}"]
        scale = max(abs(ra.get(f"advantage_abs_mean_{role}", 0.0)), 1e-6)  # the loss's scale (ratio ~1 times advantages)
        first.append({"role": role, "loss": [la, lb], "grad_norm": [ga, gb], "loss_diff_over_advantage": abs(la - lb) / scale,
                      "grad_norm_rel_diff": abs(ga - gb) / max(abs(ga), 1e-12)})
    first_ok = bool(first) and all(f["loss_diff_over_advantage"] <= tol["first_step"]
                                   and f["grad_norm_rel_diff"] <= tol["first_step"] for f in first)
    du = torch.cat([(ref["weights"][r][k] - initial[r][k]).flatten() for r in initial for k in initial[r]])
    dv = torch.cat([(got["weights"][r][k] - initial[r][k]).flatten() for r in initial for k in initial[r]])
    cos = float(du @ dv / (du.norm() * dv.norm()).clamp_min(1e-30))
    ratio = float(dv.norm() / du.norm().clamp_min(1e-30))
    ok = (same_roles and first_ok and cos >= tol["cosine"] and tol["norm_ratio"][0] <= ratio <= tol["norm_ratio"][1]
          and float(du.abs().max()) > 0)
    return {"ok": bool(ok), "tolerance": tol, "same_roles_updated": same_roles, "first_step": first,
            "update_cosine": cos, "update_norm_ratio": ratio, "max_abs_weight_diff": _max_diff(ref["weights"], got["weights"]),
            "max_abs_update": float(du.abs().max()), "losses": {"reference": a, "got": b}}


def _idle_result(probe: _IdleProbe, device: str, steps: int) -> dict:
    """``parallel.offload_idle`` under the alternating schedule (``period=1``): the memory at the
    start of the last two updates (before and after the last switch) and where the state lay."""
    ups, rows = probe.updates, probe.steps
    res: dict = {"updates": ups, "after_steps": rows}
    res["roles_alternate"] = (len(rows) == steps == len(ups) and all(len(r["updated"]) == 1 for r in rows)
                              and all(ups[i]["role"] != ups[i - 1]["role"] for i in range(1, len(ups))))
    if len(ups) >= 2:
        before, after = ups[-2], ups[-1]
        idle = before["role"]
        res.update(before_switch_mib=before["allocated_mib"], after_switch_mib=after["allocated_mib"], idle_role=idle,
                   idle_state_after_switch=after["optimizer_state"][idle], idle_state_mib=after["optimizer_mib"][idle])
    if not _cuda(device):
        res["ok"] = bool(res["roles_alternate"])
        res["note"] = "on the CPU it only has to run (nothing moves there)"
        return res
    # while a role updates, its state is on the GPU (none before its first step) and the other's in CPU
    # memory; after a step, the roles not updated next wait in CPU memory
    during = all(u["optimizer_state"][u["role"]] in (["cuda"], []) and
                 all(u["optimizer_state"][r] in (["cpu"], []) for r in ROLES if r != u["role"]) for u in ups)
    between = all(r["optimizer_state"][role] in (["cpu"], []) for r in rows for role in ROLES if role not in r["next"])
    grew = res["after_switch_mib"] - res["before_switch_mib"] if len(ups) >= 2 else float("nan")
    res.update(idle_state_on_cpu_during_updates=during, idle_state_on_cpu_between_steps=between,
               growth_at_switch_mib=grew)
    res["ok"] = bool(res["roles_alternate"] and during and between and res["idle_state_mib"] > 0
                     and grew <= 0.5 * res["idle_state_mib"])
    return res


def dist_worker(work: Path, *, device: str, dtype: str, small: bool) -> int:
    """What every rank runs (``--dist-worker``): the checks of :data:`DIST_CHECKS`; rank 0 writes
    ``work/report.json`` and, for the export check, ``work/policy_logprobs.pkl``."""
    import torch

    cuda = _cuda(device)
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    _register_parity()
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    work.mkdir(parents=True, exist_ok=True)
    (work / f"rank{rank}.pid").write_text(str(os.getpid()))  # what the parent ends if the ranks hang
    n = 2 if small else 4
    per_step = -(-max(n, world) // world) * world  # every rank the same number of problems, at least one
    alternate = ("schedule.mode=alternate", "schedule.period=1", "parallel.offload_idle=true")

    def cfg(name: str, steps: int, *extra: str):
        return _config(work / name, device=device, dtype=dtype, steps=steps, credit=PARITY, small=small,
                       extra=[f"rollout.problems_per_step={per_step}", *extra])

    checks: dict[str, dict] = {}
    runs: dict[str, dict] = {}

    def timed(name: str, fn) -> None:
        t0 = time.perf_counter()
        try:
            res = fn()
        except Exception as e:  # (raised on every rank alike, or the others wait in a collective: the parent's timeout)
            res = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        checks[name] = {"check": name, "world": world, **res, "seconds": time.perf_counter() - t0}
        if rank == 0:
            print(f"[gpu_check rank 0] {name}: {'ok' if res['ok'] else 'FAILED'}", flush=True)

    def fsdp_vs_ddp() -> dict:
        ddp = _dist_run(cfg("ddp", 2, "parallel.strategy=ddp"), initial=True)
        runs["fsdp"] = fsdp = _dist_run(cfg("fsdp", 2, "parallel.strategy=fsdp"))
        runs["initial"] = ddp["initial"]
        cmp = compare_runs(ddp, fsdp, ddp["initial"], dtype)
        ok = cmp["ok"] and ddp["finite"] and fsdp["finite"] and fsdp["sharded"] == (world > 1)
        return {**cmp, "ok": bool(ok), "sharded": fsdp["sharded"], "ddp": _summary_of(ddp), "fsdp": _summary_of(fsdp)}

    def offload_idle() -> dict:
        probe = _IdleProbe(device)
        runs["four"] = four = _dist_run(cfg("four", 4, "parallel.strategy=fsdp", *alternate), probe=probe,
                                        logprobs=True)
        res = _idle_result(probe, device, 4)
        return {**res, "ok": bool(res["ok"] and four["finite"]), "run": _summary_of(four)}

    def sharded_resume() -> dict:
        four = runs["four"]
        two = _dist_run(cfg("two", 2, "parallel.strategy=fsdp", *alternate))
        ck = work / "two" / "checkpoint"
        meta = json.loads((ck / "meta.json").read_text())
        shards = sorted(p.name for p in (ck / "state").glob("__*_0.distcp")) if (ck / "state").is_dir() else []
        resumed = _dist_run(cfg("two", 4, "parallel.strategy=fsdp", *alternate), resume=True)
        worst = _max_diff(four["weights"], resumed["weights"])
        rows_equal = [_strip_times(r) for r in four["rows"][2:]] == [_strip_times(r) for r in resumed["rows"]]
        sharded_ck = meta["format_version"] == 3 and shards == [f"__{r}_0.distcp" for r in range(world)]
        exact = worst == 0.0 and rows_equal
        moved = _max_diff(runs["initial"], four["weights"]) if "initial" in runs else None
        ok = exact and (sharded_ck or world == 1) and two["finite"] and resumed["finite"]
        return {"ok": bool(ok), "exact": exact, "max_abs_weight_diff": worst, "metrics_rows_equal": rows_equal,
                "checkpoint_format": meta["format_version"], "shard_files": shards, "max_abs_update": moved,
                "torch_deterministic": torch.are_deterministic_algorithms_enabled(),
                "two": _summary_of(two), "resumed": _summary_of(resumed)}

    def fsdp_offload() -> dict:
        try:
            got = _dist_run(cfg("offload", 2, "parallel.strategy=fsdp", "parallel.offload=true"))
        except Exception as e:
            if cuda:
                raise
            return {"ok": True, "checked": False, "note": f"not checked on CPU: {type(e).__name__}: {e}"}
        res: dict = {"checked": True, "run": _summary_of(got)}
        if "fsdp" in runs:
            res.update(compare_runs(runs["fsdp"], got, runs["initial"], dtype))
        else:
            res["ok"] = False
            res["error"] = "no fsdp run to compare with (fsdp_vs_ddp failed)"
        on_cpu = all(r["param_devices"] == ["cpu"] for r in got["ranks"])
        res["param_shards_on_cpu"] = on_cpu
        if cuda and world > 1 and not on_cpu:
            res["ok"] = False
            res["error"] = f"parameter shards not in CPU memory: {[r['param_devices'] for r in got['ranks']]}"
        elif world == 1:
            res["note"] = "one process: plain training, nothing sharded or offloaded"
        res["ok"] = bool(res["ok"] and got["finite"] and got["sharded"] == (world > 1))
        return res

    timed("fsdp_vs_ddp", fsdp_vs_ddp)
    timed("offload_idle", offload_idle)
    if "four" in runs:
        timed("sharded_resume", sharded_resume)
    else:
        checks["sharded_resume"] = {"check": "sharded_resume", "ok": False, "error": "the 4-step run failed (offload_idle)"}
    timed("fsdp_offload", fsdp_offload)
    if rank == 0:
        if "four" in runs:
            with open(work / "policy_logprobs.pkl", "wb") as f:
                pickle.dump({**runs["four"]["policy_logprobs"], "run": str(work / "four")}, f)
        (work / "report.json").write_text(json.dumps({"world": world, "checks": [checks[c] for c in DIST_CHECKS]}))
    return 0


def run_distributed(work: Path, *, device: str, dtype: str, small: bool, timeout: float) -> dict:
    """Launch :func:`dist_worker` on N ranks; its report (``checks``), or one failed check that says why."""
    import torch

    nproc = torch.cuda.device_count() if _cuda(device) else 2
    if _cuda(device):
        torch.cuda.empty_cache()  # this process's cached blocks on GPU 0 go back before the ranks start
    work.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           str(Path(__file__).resolve()), "--dist-worker", str(work), "--device", device, "--dtype", dtype,
           *(["--dry-run"] if small else [])]
    env = dict(os.environ)
    if not _cuda(device):
        env["OMP_NUM_THREADS"] = "1"  # two ranks on a few cores
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # the ranks run in sessions of their own (torchrun starts them so): each by the pid it wrote, then torchrun
        for pid_file in work.glob("rank*.pid"):
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
        os.killpg(proc.pid, signal.SIGKILL)
        log = proc.communicate()[0]
        return {"nproc": nproc, "checks": [{"check": "distributed", "ok": False, "seconds": time.perf_counter() - t0,
                                            "error": f"the {nproc} ranks did not finish in {timeout:.0f}s: "
                                                     f"{log[-3000:]}"}]}
    report = work / "report.json"
    if proc.returncode != 0 or not report.exists():
        return {"nproc": nproc, "checks": [{"check": "distributed", "ok": False, "seconds": time.perf_counter() - t0,
                                            "error": f"torch.distributed.run exited {proc.returncode}: {log[-3000:]}"}]}
    out = json.loads(report.read_text())
    return {"nproc": nproc, "command": " ".join(cmd), "seconds": time.perf_counter() - t0, **out}


def check_export(work: Path, *, device: str, dtype: str) -> dict:
    """``export_team`` of the ranks' 4-step fsdp run, each role's folder loaded with transformers'
    ``AutoModelForCausalLM``: its log-probs against the trained policy's."""
    t0 = time.perf_counter()
    try:
        from algorithms.team.export import export_team
    except ImportError as e:
        return {"check": "export", "ok": True, "checked": False, "note": f"skipped: export not available ({e})",
                "seconds": 0.0}
    ref_path = work / "policy_logprobs.pkl"
    if not ref_path.exists():
        return {"check": "export", "ok": False, "error": "no trained run to export (the distributed checks failed)",
                "seconds": 0.0}
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from agents import TransformersPolicy

    hf_logging.disable_progress_bar()  # one line per check

    with open(ref_path, "rb") as f:
        ref = pickle.load(f)
    out = work / "export"
    tol = TOLERANCE.get(dtype, TOLERANCE["bfloat16"])["logprob"]
    res: dict = {"check": "export", "checked": True, "run": ref["run"], "tolerance": tol, "roles": {}}
    try:
        export_team(ref["run"], str(out))
        worst = 0.0
        for role in ROLES:
            folder = out / role
            files = sorted(p.name for p in folder.iterdir())
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype)).to(device)
            tok = AutoTokenizer.from_pretrained(folder)
            policy = TransformersPolicy(model, tok, name=str(folder))
            prompts, completions = ref["pairs"][role]
            with torch.no_grad():
                got = [x.float().cpu() for x in policy.logprobs(prompts, completions)]
            diffs = [float((g - torch.tensor(r)).abs().max()) for g, r in zip(got, ref["logprobs"][role], strict=True)]
            worst = max([worst, *diffs])
            res["roles"][role] = {"files": files, "safetensors": any(n.endswith(".safetensors") for n in files),
                                  "tokens_compared": sum(len(r) for r in ref["logprobs"][role]),
                                  "max_abs_logprob_diff": max(diffs), "model_dtype": str(model.dtype),
                                  "tokenizer_len": len(tok), "vocab_size": model.config.vocab_size}
            del model, policy
        res["max_abs_logprob_diff"] = worst
        res["ok"] = bool(worst <= tol and all(r["safetensors"] and r["tokens_compared"] > 0 for r in res["roles"].values())
                         and len(res["roles"]) == len(ROLES))
    except Exception as e:
        res.update(ok=False, error=f"{type(e).__name__}: {e}")
    res["seconds"] = time.perf_counter() - t0
    return res


def _say(res: dict) -> None:
    if res.get("checked") is False:
        status = res.get("note", "not checked")
    else:
        status = "ok" if res["ok"] else "FAILED " + res.get("error", "")
    print(f"[gpu_check] {res['check']}: {status} ({res.get('seconds', 0.0):.1f}s)", flush=True)


def _dist_summary(dist: dict | None, export: dict | None) -> str:
    if dist is None:
        return ""
    checks = {c["check"]: c for c in dist["checks"]}
    n = dist.get("world", dist["nproc"])
    ranks = f"{n} rank{'s' if n != 1 else ''}"
    if "distributed" in checks:
        return f" dist[{ranks}] FAILED"
    sharded = checks.get("fsdp_vs_ddp", {}).get("sharded")
    parts = [f" dist[{ranks}{'' if sharded else ', not sharded'}]"]
    for name, short in DIST_CHECKS.items():
        c = checks.get(name, {"ok": False})
        if c.get("checked") is False:
            status = "not-checked-on-CPU"
        elif name == "fsdp_vs_ddp" and c["ok"]:
            status = f"ok(cos={c['update_cosine']:.3f})"
        elif name == "sharded_resume" and c["ok"]:
            status = "exact"
        else:
            status = "ok" if c["ok"] else "FAILED"
        parts.append(f"{short} {status}")
    if export is not None:
        if export.get("checked") is False:
            parts.append("export skipped(not available)")
        elif export["ok"]:
            parts.append(f"export ok(max|dlogp|={export['max_abs_logprob_diff']:.2g})")
        else:
            parts.append("export FAILED")
    return " ".join(parts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="run the checks on the CPU (what the test suite does)")
    ap.add_argument("--device", help="torch device (default cuda; cpu with --dry-run)")
    ap.add_argument("--dtype", default="bfloat16", help="model dtype (default bfloat16)")
    ap.add_argument("--steps", type=int, default=2, help="training steps per credit method")
    ap.add_argument("--methods", nargs="*", help="credit methods (default: all registered)")
    ap.add_argument("--no-tree", action="store_true", help="skip the tree-rollout checks")
    ap.add_argument("--no-resume", action="store_true", help="skip the checkpoint/resume check")
    ap.add_argument("--no-dist", action="store_true", help="skip the sharded (torch.distributed.run) and export checks")
    ap.add_argument("--dist-timeout", type=float, default=900, help="seconds the ranks may take (default 900)")
    ap.add_argument("--out", help="write DIR/gpu_check.json")
    ap.add_argument("--download-wheels", metavar="DIR",
                    help="download the wheels the GPU machine lacks into DIR, then exit")
    ap.add_argument("--dist-worker", metavar="DIR", help=argparse.SUPPRESS)  # one rank of the distributed checks
    args = ap.parse_args(argv)
    if args.download_wheels:
        return download_wheels(args.download_wheels)
    t_start = time.perf_counter()
    device = args.device or ("cpu" if args.dry_run else "cuda")
    if args.dist_worker:
        return dist_worker(Path(args.dist_worker), device=device, dtype=args.dtype, small=args.dry_run)
    missing = _missing_packages()
    if missing:
        print(f"gpu_check: FAIL missing packages {', '.join(missing)}: carry their wheels "
              f"(python scripts/gpu_check.py --download-wheels .whl, here; see this script's docstring)", flush=True)
        return 1
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: FAIL torch.cuda.is_available() is False (no GPU here; --dry-run runs the checks on the CPU)",
              flush=True)
        return 1
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    if device.startswith("cuda"):
        # exact resume needs deterministic kernels (embedding backward, cuBLAS workspaces)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    from algorithms import credit
    from algorithms.config import RolloutConfig

    _register_parity()
    methods = args.methods or [m for m in credit.available() if m != PARITY and not m.startswith("test_")]
    tree_ok = "answers_per_thought" in RolloutConfig.__dataclass_fields__
    small = args.dry_run
    results, per_method = [], []
    dist = export = None
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        for name in methods:
            res = check_method(work, name, device=device, dtype=args.dtype, steps=args.steps, small=small,
                               tree=2 if name == "tree" and tree_ok else 1)
            results.append(res)
            per_method.append(res)
            _say(res)
        if tree_ok and not args.no_tree:
            for name, params in (("ccpo", {"variant": "value"}), ("shared", None)):
                if name in methods:
                    results.append(check_method(work, name, device=device, dtype=args.dtype, steps=args.steps,
                                                small=small, params=params, tree=2))
                    _say(results[-1])
        if not args.no_resume:
            results.append(check_resume(work, device=device, dtype=args.dtype, small=small))
            _say(results[-1])
        if not args.no_dist:
            dist = run_distributed(work / "dist", device=device, dtype=args.dtype, small=small,
                                   timeout=args.dist_timeout)
            for res in dist["checks"]:
                results.append(res)
                _say(res)
            export = check_export(work / "dist", device=device, dtype=args.dtype)
            results.append(export)
            _say(export)
    wall = time.perf_counter() - t_start
    failed = [r["check"] for r in results if not r["ok"]]
    resume = next((r for r in results if r["check"] == "resume"), None)
    tree_checks = [r for r in results if " K=" in r["check"]]  # `tree` itself counts here and as a method
    summary = (f"gpu_check: {'PASS' if not failed else 'FAIL'} device={device} ({gpu}) dtype={args.dtype} "
               f"torch={torch.__version__} credit {sum(r['ok'] for r in per_method)}/{len(methods)} "
               f"tree {sum(r['ok'] for r in tree_checks)}/{len(tree_checks)}")
    if resume is not None:
        dw = resume.get("max_abs_weight_diff", float("nan"))
        summary += f" resume {'exact' if resume.get('exact') else f'max|dw|={dw:.3g}'}"
    summary += _dist_summary(dist, export)
    summary += f" wall {wall:.0f}s" + (f" failed: {', '.join(failed)}" if failed else "")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        report = {"summary": summary, "device": device, "gpu": gpu, "dtype": args.dtype, "dry_run": args.dry_run,
                  "wall_s": wall, "checks": results}
        if dist is not None:
            report["distributed"] = {k: v for k, v in dist.items() if k != "checks"}
        (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(summary, flush=True)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
