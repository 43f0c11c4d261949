"""Metrics files that agree with the checkpoint: ``metrics.jsonl`` and ``eval.jsonl``.

A row is appended with one ``write`` of a whole line (``O_APPEND``), so rows of one writer never
interleave and a crash can at worst leave the last line unterminated. :func:`reconcile_metrics`
runs before a resumed run writes: it keeps the rows with ``step <= checkpoint step`` in order and
moves everything else (rows past the checkpoint, a torn or unparsable line) to
``metrics.jsonl.cut-<time>`` next to it — kept, not destroyed. :class:`MetricsLogger` writes the
rows (and mirrors their numbers to TensorBoard when it is installed and asked for).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from .checkpoint import json_default

__all__ = ["METRICS", "EVALS", "append_row", "reconcile_metrics", "MetricsLogger", "flatten"]

METRICS = "metrics.jsonl"
#: Evaluations during training, one row per evaluation (reconciled like the metrics).
EVALS = "eval.jsonl"


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


def reconcile_metrics(path: str | os.PathLike, step: int) -> dict[str, Any]:
    """Make ``path`` (a ``metrics.jsonl``) agree with a checkpoint at ``step``.

    Keeps, in order, the complete rows with ``1 <= row["step"] <= step``; every other line (rows
    past the checkpoint, duplicates of a step already kept, a torn last line, unparsable text)
    goes to ``<path>.cut-<time>``. Returns ``{"kept", "cut", "cut_to"}`` (``cut_to`` is ``None``
    when nothing was cut). ``step = 0`` empties the file into the cut file.
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
        if 1 <= s <= step and s not in seen:
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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(b"".join(line + b"\n" for line in kept))
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return {"kept": len(kept), "cut": len(cut), "cut_to": aside}


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
    """Appends one JSON row per step to ``OUT/metrics.jsonl`` and, with ``tensorboard=True`` and
    the package installed, mirrors its finite numbers to ``OUT/tensorboard`` (the writer opens
    on the first row). ``log`` says once when TensorBoard was asked for but is missing."""

    def __init__(self, out: str | os.PathLike, *, tensorboard: bool = False, log: Any = None) -> None:
        self.out = Path(out)
        self.tensorboard = bool(tensorboard)
        self._tb: Any = None
        if self.tensorboard and importlib.util.find_spec("tensorboard") is None:
            self._tb = False
            if log:
                log(f"tensorboard=true, but the tensorboard package is not installed: metrics go to "
                    f"{self.out / METRICS} only (pip install tensorboard, or set tensorboard=false)")

    def write(self, row: dict, name: str = METRICS) -> None:
        """Append ``row`` (it needs a ``step``) to ``OUT/<name>``."""
        self.out.mkdir(parents=True, exist_ok=True)
        append_row(self.out / name, json.dumps(row, default=json_default))  # one write per whole line
        if name != METRICS or not self.tensorboard:
            return
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 (tensorboard is optional)
            except Exception:  # tensorboard not installed (said once, at start)
                self._tb = False
            else:
                self._tb = SummaryWriter(str(self.out / "tensorboard"))
        if self._tb:
            for k, v in flatten(row).items():
                if isinstance(v, (int, float)) and v is not None and math.isfinite(v):
                    self._tb.add_scalar(k, v, row["step"])

    def close(self) -> None:
        if self._tb:
            self._tb.close()
            self._tb = None
