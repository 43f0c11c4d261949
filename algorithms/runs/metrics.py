"""Metrics files that agree with the checkpoint: ``metrics.jsonl``, ``eval.jsonl`` and ``samples.jsonl``.

A row is appended with one ``write`` of a whole line (``O_APPEND``), so rows of one writer never
interleave and a crash can at worst leave the last line unterminated. :func:`reconcile_metrics`
runs before a resumed run writes: it keeps the rows with ``step <= checkpoint step`` in order and
moves everything else (rows past the checkpoint, a torn or unparsable line) to
``metrics.jsonl.cut-<time>`` next to it — kept, not destroyed. :class:`MetricsLogger` writes the
rows and mirrors their numbers to the loggers of ``report_to`` (:mod:`.loggers`). What each key
of a row means: docs/metrics.md.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .checkpoint import json_default
from .loggers import check_loggers, installed, open_logger, scalars

__all__ = ["METRICS", "EVALS", "append_row", "reconcile_metrics", "MetricsLogger", "flatten", "utc_time",
           "write_atomically"]

METRICS = "metrics.jsonl"
#: Evaluations during training, one row per evaluation (reconciled like the metrics).
EVALS = "eval.jsonl"


def utc_time() -> str:
    """Now, as the evaluation records write it: UTC, ISO 8601, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def append_row(path: str | os.PathLike, line: str) -> None:
    """Append one JSON line with a single ``write`` (``O_APPEND``): rows never interleave, and
    a crash leaves at most an unterminated last line (which :func:`reconcile_metrics` cuts)."""
    data = (line.rstrip("\n") + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        while written < len(data):  # a short write (full disk, signal): finish the line
            written += os.write(fd, data[written:])
    finally:
        os.close(fd)


def reconcile_metrics(path: str | os.PathLike, step: int, *, unique: bool = True) -> dict[str, Any]:
    """Make ``path`` (a ``metrics.jsonl``) agree with a checkpoint at ``step``.

    Keeps, in order, the complete rows with ``1 <= row["step"] <= step``; every other line (rows
    past the checkpoint, duplicates of a step already kept, a torn last line, unparsable text)
    goes to ``<path>.cut-<time>``. Returns ``{"kept", "cut", "cut_to"}`` (``cut_to`` is ``None``
    when nothing was cut). ``step = 0`` empties the file into the cut file. ``unique=False``
    keeps several rows of a step (``samples.jsonl``).
    """
    path = Path(path)
    if not path.exists():
        return {"kept": 0, "cut": 0, "cut_to": None}
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    complete, tail = lines[:-1], lines[-1]  # `tail` is b"" when the file ends with a newline
    kept, cut, seen = [], [], set()
    for line in complete:
        try:
            row = json.loads(line)
            s = int(row["step"])
        except (ValueError, KeyError, TypeError):
            cut.append(line)
            continue
        if 1 <= s <= step and (s not in seen or not unique):
            kept.append(line)
            seen.add(s)
        else:
            cut.append(line)
    if tail:
        cut.append(tail)
    if not cut:
        return {"kept": len(kept), "cut": 0, "cut_to": None}
    aside = path.with_name(f"{path.name}.cut-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    aside.write_bytes(b"\n".join(cut) + b"\n")
    write_atomically(path, b"".join(line + b"\n" for line in kept))
    return {"kept": len(kept), "cut": len(cut), "cut_to": aside}


def write_atomically(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` by ``data`` all at once: written and synced to a temporary sibling, then
    renamed over it, so a crash leaves the old file or the new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def flatten(d: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` → ``{"a/b": 1}`` (TensorBoard tags)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}/"))
        else:
            out[f"{prefix}{k}"] = v
    return out


class MetricsLogger:
    """Appends one JSON row per step to ``OUT/metrics.jsonl`` (evaluations to ``OUT/eval.jsonl``)
    and mirrors their finite numbers to the loggers named in ``report_to`` (``tensorboard``,
    ``wandb``: :mod:`.loggers`; evaluation rows under ``eval/``), each started on the first row.

    ``tensorboard=True`` is the deprecated form of ``report_to=["tensorboard"]`` that only notes a
    missing package (``log`` says so once); a logger named in ``report_to`` must be installed
    (:class:`~.loggers.LoggerMissing` otherwise, at construction). ``config`` goes to the loggers
    that record one (wandb)."""

    def __init__(self, out: str | os.PathLike, *, tensorboard: bool = False, log: Any = None,
                 report_to: list[str] | None = None, config: dict | None = None) -> None:
        self.out = Path(out)
        self.names = list(report_to or [])
        self.config = config
        if report_to is not None:
            check_loggers(self.names)
        elif tensorboard:
            if installed("tensorboard"):
                self.names = ["tensorboard"]
            elif log:
                log(f"tensorboard=true, but the tensorboard package is not installed: metrics go to "
                    f"{self.out / METRICS} only (pip install 'thinksolve[tensorboard]', or set tensorboard=false)")
        self.tensorboard = "tensorboard" in self.names
        self._loggers: list[Any] | None = None

    def write(self, row: dict, name: str = METRICS) -> None:
        """Append ``row`` (it needs a ``step``) to ``OUT/<name>``; metrics and evaluation rows are
        mirrored to the loggers."""
        self.out.mkdir(parents=True, exist_ok=True)
        append_row(self.out / name, json.dumps(row, default=json_default))  # one write per whole line
        if name not in (METRICS, EVALS) or not self.names:
            return
        if self._loggers is None:
            self._loggers = [open_logger(n, self.out, self.config) for n in self.names]
        values = scalars(row)
        if name == EVALS:  # an evaluation's headline numbers (its per-problem values and intervals stay in the file)
            values = {f"eval/{k}": v for k, v in values.items() if "/" not in k}
        for logger in self._loggers:
            logger.log(values, int(row["step"]))

    def close(self) -> None:
        for logger in self._loggers or []:
            logger.close()
        self._loggers = None
