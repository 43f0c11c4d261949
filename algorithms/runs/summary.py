"""The end of a run in a few lines: ``OUT/summary.json`` and the table ``thinksolve train`` prints.

:func:`run_summary` reads the run directory (``metrics.jsonl``, ``eval.jsonl``,
``samples.jsonl``): held-out accuracy with and without the Thinker and the collaboration gap at
the first and the last evaluation of the run (when evaluations ran), the training batches' team
accuracy and collaboration at the start and the end (means over the first and the last few
steps), the wall time of the steps and the last samples. :func:`write_summary` writes it
atomically; :func:`format_summary` renders it for a terminal. A team of more than two roles
reports the accuracy without each role (``removed``) and each role's contribution (team − without
it) instead of the Thinker-removed accuracy and the collaboration gap.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from .metrics import EVALS, METRICS, write_atomically
from .samples import SAMPLES, format_sample, read_rows

__all__ = ["SUMMARY", "run_summary", "write_summary", "format_summary", "report_run"]

SUMMARY = "summary.json"
#: Steps averaged at each end of the run for the batch accuracy (fewer in a short run).
WINDOW = 5


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _mean(rows: list[dict], key: str) -> float | None:
    vals = [v for v in (_num(r.get(key)) for r in rows) if v is not None]
    return sum(vals) / len(vals) if vals else None


def _eval_point(row: dict) -> dict:
    point = {"step": row.get("step")}
    for key in ("joint_accuracy", "solo_accuracy", "collaboration"):
        point[key] = _num(row.get(key))
    if point["collaboration"] is None and None not in (point["joint_accuracy"], point["solo_accuracy"]):
        point["collaboration"] = point["joint_accuracy"] - point["solo_accuracy"]
    if isinstance(row.get("removed"), dict):  # a team of more than two roles
        point["removed"] = {role: _num(v) for role, v in row["removed"].items()}
    return point


def run_summary(out: str | os.PathLike, *, samples: int = 3) -> dict:
    """The summary of run directory ``out`` (see the module docstring; keys in docs/metrics.md)."""
    out = Path(out)
    rows = sorted((r for r in read_rows(out / METRICS) if isinstance(r.get("step"), int)), key=lambda r: r["step"])
    evals = [r for r in read_rows(out / EVALS) if _num(r.get("joint_accuracy")) is not None]
    w = max(1, min(WINDOW, len(rows) // 2))
    first, last = rows[:w], rows[-w:]
    batch = None
    if rows:
        batch = {
            "window": w,
            "first_steps": [first[0]["step"], first[-1]["step"]],
            "last_steps": [last[0]["step"], last[-1]["step"]],
            "accuracy_first": _mean(first, "joint_accuracy"),
            "accuracy_last": _mean(last, "joint_accuracy"),
            "collaboration_first": _mean(first, "collaboration"),
            "collaboration_last": _mean(last, "collaboration"),
        }
        roles = [k[len("contribution_"):] for k in rows[-1] if k.startswith("contribution_")]
        if roles:  # a team of more than two roles: each role's contribution in the batches
            batch["contribution_first"] = {r: _mean(first, f"contribution_{r}") for r in roles}
            batch["contribution_last"] = {r: _mean(last, f"contribution_{r}") for r in roles}
    times = [v for v in (_num(r.get("time_total")) for r in rows) if v is not None]
    return {
        "out": str(out),
        "steps": rows[-1]["step"] if rows else 0,
        "timestamp": time.time(),
        "eval": {"first": _eval_point(evals[0]), "last": _eval_point(evals[-1]), "evaluations": len(evals)}
        if evals else None,
        "batch": batch,
        "step_seconds": {"total": sum(times), "mean": sum(times) / len(times)} if times else None,
        "samples": read_rows(out / SAMPLES)[-samples:] if samples else [],
    }


def write_summary(out: str | os.PathLike, summary: dict) -> Path:
    """Write ``summary`` to ``OUT/summary.json`` atomically (a temporary file renamed over it)."""
    path = Path(out) / SUMMARY
    write_atomically(path, json.dumps(summary, indent=2, ensure_ascii=False).encode("utf-8"))
    return path


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _pts(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:+.1f} pts"


def format_summary(summary: dict, *, width: int = 100) -> str:
    """The last samples (each cut to ``width``) and a first → last table of ``summary``."""
    lines = []
    if summary.get("samples"):
        lines.append("last samples:")
        lines += [format_sample(s, width) for s in summary["samples"]]
        lines.append("")
    table = []
    ev = summary.get("eval")
    if ev:
        a, b = ev["first"], ev["last"]
        if ev.get("evaluations", 2) < 2:  # one evaluation: nothing to compare it with
            a = dict.fromkeys(a)
            span = f"step {b['step']}"
        else:
            span = f"step {a['step']} → {b['step']}"
        table.append((f"held-out accuracy, team ({span})", _pct(a["joint_accuracy"]), _pct(b["joint_accuracy"])))
        if b.get("removed"):
            before = a.get("removed") or {}
            table += [(f"held-out accuracy, without {r}", _pct(before.get(r)), _pct(v)) for r, v in b["removed"].items()]
        else:
            table += [("held-out accuracy, Thinker removed", _pct(a["solo_accuracy"]), _pct(b["solo_accuracy"])),
                      ("held-out collaboration", _pts(a["collaboration"]), _pts(b["collaboration"]))]
    batch = summary.get("batch")
    if batch:
        (f0, f1), (l0, l1) = batch["first_steps"], batch["last_steps"]
        span = f"steps {f0}-{f1} → {l0}-{l1}" if batch["window"] > 1 else f"step {f0} → {l0}"
        table.append((f"batch accuracy, team ({span})", _pct(batch["accuracy_first"]), _pct(batch["accuracy_last"])))
        if batch.get("contribution_last"):
            table += [(f"batch contribution of {r}", _pts(batch["contribution_first"][r]), _pts(v))
                      for r, v in batch["contribution_last"].items()]
        elif batch["collaboration_first"] is not None:
            table.append(("batch collaboration", _pts(batch["collaboration_first"]), _pts(batch["collaboration_last"])))
    if not table:
        return "\n".join(lines + [f"summary of {summary.get('out')}: no steps recorded"])
    name_w = max(len(t[0]) for t in table)
    lines.append(f"summary of {summary.get('out')} ({summary.get('steps')} steps)")
    lines.append(f"{'':<{name_w}}  {'first':>9}  {'last':>9}")
    lines += [f"{n:<{name_w}}  {x:>9}  {y:>9}" for n, x, y in table]
    if not ev:
        lines.append("(held-out: no evaluation during training; eval_every=N adds them, thinksolve eval --model OUT runs one)")
    return "\n".join(lines)


def report_run(out: str | os.PathLike, log: Any = None, *, width: int = 100) -> dict:
    """Write ``OUT/summary.json`` and, with ``log``, print the last samples and the table;
    returns the summary."""
    summary = run_summary(out)
    write_summary(out, summary)
    if log:
        log(format_summary(summary, width=width) + f"\nsummary in {Path(out) / SUMMARY}")
    return summary
