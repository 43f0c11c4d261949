"""Progress of a training run: a tqdm bar on a terminal, plain lines elsewhere.

Off a terminal (``tee``, ``nohup``, a log file) :class:`ProgressLines` prints a line after the
first step, then every :data:`PROGRESS_EVERY_S` seconds and at the last step: step, batch accuracy,
seconds per step and the time left.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["training_progress", "ProgressBar", "ProgressLines", "clock", "PROGRESS_EVERY_S"]

PROGRESS_EVERY_S = 10.0


def clock(seconds: float) -> str:
    """``75`` → ``1m15s``; ``9`` → ``9s``."""
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class ProgressBar:
    """A tqdm bar advanced by one metrics row per step."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar

    def update(self, row: dict) -> None:
        self.bar.update(1)
        self.bar.set_postfix(acc=f"{row['joint_accuracy']:.2f}", loss=f"{row.get('loss', 0.0):.3f}")

    def close(self) -> None:
        self.bar.close()


class ProgressLines:
    """Progress as plain lines (see the module docstring)."""

    def __init__(self, log: Callable[[str], Any], start: int, total: int) -> None:
        self.log, self.start, self.total = log, start, total
        self.t0 = self.last = time.perf_counter()
        self.done = start

    def update(self, row: dict) -> None:
        self.done = row["step"]
        now = time.perf_counter()
        if self.done - self.start > 1 and now - self.last < PROGRESS_EVERY_S and self.done < self.total:
            return
        self.last = now
        per = (now - self.t0) / max(self.done - self.start, 1)
        self.log(f"train: step {self.done}/{self.total}, batch accuracy {row['joint_accuracy']:.2f}, "
                 f"loss {row.get('loss', 0.0):.3f}, {per:.2f} s/step, ~{clock(per * (self.total - self.done))} left")

    def close(self) -> None:
        pass


def training_progress(log: Callable[[str], Any] | None, start: int, total: int) -> ProgressBar | ProgressLines | None:
    """A bar on a terminal (when tqdm is installed), lines elsewhere, nothing without ``log``."""
    if log is None:
        return None
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm  # noqa: PLC0415 (tqdm is optional)
        except ImportError:
            pass
        else:
            return ProgressBar(tqdm(total=total, initial=start, desc="train", unit="step"))
    return ProgressLines(log, start, total)
