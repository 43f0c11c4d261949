#!/usr/bin/env python3
"""GPU check: the CUDA training path end to end on the ``tiny`` model, in one command, one line.

What it runs (each a real :class:`~algorithms.Trainer` on the device, ``bfloat16``):

1. **every credit method** (``algorithms.credit.available()``: shared, ccpo, sepo, difference,
   shapley, and tree where installed) for ``--steps`` training steps, both roles updated every
   step (``schedule.mode=simultaneous``), with the counterfactuals and ratings each one needs;
2. **tree rollouts** (``rollout.answers_per_thought=2``, METHOD.md §8) with ``tree``,
   ``ccpo`` variant ``value`` and ``shared``;
3. **checkpoint and resume**: 4 steps straight against 2 steps, a new process-local trainer
   resumed from the checkpoint, 2 more; the final weights and metrics rows must be equal, bit for
   bit (on CUDA with ``torch.use_deterministic_algorithms`` and a fixed cuBLAS workspace). A credit
   method defined here rewards the parity of the sampled tokens (the untrained tiny model never
   solves a problem, so the verifier's +-1 alone would give zero advantages and no update).

It prints one summary line, ``gpu_check: PASS ...`` or ``gpu_check: FAIL ...`` (exit status 0 /
1), and with ``--out DIR`` writes ``DIR/gpu_check.json`` with every check's details.

The GPU machine has PyTorch and transformers but not pettingzoo, gymnasium or math-verify, and
reaches no registry. Download their wheels here first (pure Python, 1.5 MB)::

    python scripts/gpu_check.py --download-wheels .whl      # here, with internet

then carry ``.whl`` and run there::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \\
        PYTHONPATH=/tmp/site:. python3 scripts/gpu_check.py --out $OUT

``--dry-run`` runs the same checks on the CPU (``bfloat16`` too, smaller sizes): that is how the
test suite holds this script working where no GPU is lent. Budget: well under 8 minutes on one
GPU (the tiny model; most of the time is process and verifier start-up).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
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
            tree: int = 1, small: bool = False):
    from algorithms.config import apply_overrides, preset

    n = 2 if small else 4
    overrides = [
        "warm_start.enabled=false", "train_data=arith:n=64,difficulty=1", "eval_every=0", "tensorboard=false",
        f"model.device={device}", f"model.dtype={dtype}", "schedule.mode=simultaneous",
        f"rollout.problems_per_step={n}", f"rollout.group_size={n}", "rollout.solo_samples=2",
        "rollout.thinker_max_new_tokens=8", "rollout.solver_max_new_tokens=8", "rollout.rating_max_new_tokens=12",
        "optim.lr=1e-3", f"credit.name={credit}", f"credit.params={json.dumps(params or {})}", f"steps={steps}",
        "save_every=2", f"out={out}",
    ]
    if tree > 1:
        overrides.append(f"rollout.answers_per_thought={tree}")
    return apply_overrides(preset("tiny-arith"), overrides)


def _rows(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    for r in rows:
        r.pop("time", None), r.pop("time_total", None)
    return rows


def _train(cfg, *, resume: bool = False) -> dict:
    """Run ``cfg`` to its end; the final weights (on the CPU, float32) and what the check reports."""
    import torch

    from algorithms.train import Trainer

    with Trainer(cfg, resume=resume, log=None) as t:
        rows = t.train()
        weights = {role: {k: v.detach().float().cpu() for k, v in sd.items()} for role, sd in t.role_weights().items()}
        device = str(next(t.policies["thinker_0"].model.parameters()).device)
        dtype = str(next(t.policies["thinker_0"].model.parameters()).dtype).replace("torch.", "")
    finite = all(math.isfinite(v) for r in rows for k, v in r.items() if k.startswith("loss_") and isinstance(v, float))
    return {"rows": rows, "weights": weights, "device": device, "dtype": dtype, "finite": finite,
            "updated": sorted({role for r in rows for role in r.get("updated", [])}), "torch": torch.__version__}


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
            "finite_losses": res["finite"], "updated": res["updated"], "seconds": time.perf_counter() - t0}


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
    worst = 0.0
    for role, sd in straight["weights"].items():
        for k, v in sd.items():
            worst = max(worst, float((v - resumed["weights"][role][k]).abs().max()))
    rows_equal = _rows(work / "straight") == _rows(work / "resumed")
    # the updates were real (nonzero gradients), so equal weights are not trivially equal
    moved = max([r.get("grad_norm_thinker_0", 0.0) for r in straight["rows"]] or [0.0])
    exact = worst == 0.0 and rows_equal
    return {"check": "resume", "ok": bool(exact and moved > 0), "exact": exact, "max_abs_weight_diff": worst,
            "metrics_rows_equal": rows_equal, "max_grad_norm": moved, "seconds": time.perf_counter() - t0,
            "torch_deterministic": torch.are_deterministic_algorithms_enabled()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="run the checks on the CPU (what the test suite does)")
    ap.add_argument("--device", help="torch device (default cuda; cpu with --dry-run)")
    ap.add_argument("--dtype", default="bfloat16", help="model dtype (default bfloat16)")
    ap.add_argument("--steps", type=int, default=2, help="training steps per credit method")
    ap.add_argument("--methods", nargs="*", help="credit methods (default: all registered)")
    ap.add_argument("--no-tree", action="store_true", help="skip the tree-rollout checks")
    ap.add_argument("--no-resume", action="store_true", help="skip the checkpoint/resume check")
    ap.add_argument("--out", help="write DIR/gpu_check.json")
    ap.add_argument("--download-wheels", metavar="DIR",
                    help="download the wheels the GPU machine lacks into DIR, then exit")
    args = ap.parse_args(argv)
    if args.download_wheels:
        return download_wheels(args.download_wheels)
    t_start = time.perf_counter()
    device = args.device or ("cpu" if args.dry_run else "cuda")
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
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        for name in methods:
            res = check_method(work, name, device=device, dtype=args.dtype, steps=args.steps, small=small,
                               tree=2 if name == "tree" and tree_ok else 1)
            results.append(res)
            per_method.append(res)
            error = "" if res["ok"] else " " + res.get("error", "")
            print(f"[gpu_check] {res['check']}: {'ok' if res['ok'] else 'FAILED'} ({res['seconds']:.1f}s){error}",
                  flush=True)
        if tree_ok and not args.no_tree:
            for name, params in (("ccpo", {"variant": "value"}), ("shared", None)):
                if name in methods:
                    results.append(check_method(work, name, device=device, dtype=args.dtype, steps=args.steps,
                                                small=small, params=params, tree=2))
                    print(f"[gpu_check] {results[-1]['check']}: {'ok' if results[-1]['ok'] else 'FAILED'} "
                          f"({results[-1]['seconds']:.1f}s)", flush=True)
        if not args.no_resume:
            results.append(check_resume(work, device=device, dtype=args.dtype, small=small))
            print(f"[gpu_check] resume: {'ok' if results[-1]['ok'] else 'FAILED'} ({results[-1]['seconds']:.1f}s)",
                  flush=True)
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
    summary += f" wall {wall:.0f}s" + (f" failed: {', '.join(failed)}" if failed else "")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_check.json").write_text(json.dumps({"summary": summary, "device": device, "gpu": gpu,
                                                        "dtype": args.dtype, "dry_run": args.dry_run,
                                                        "wall_s": wall, "checks": results}, indent=2) + "\n")
    print(summary, flush=True)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
