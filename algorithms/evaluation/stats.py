"""Statistics for evaluations and diagnostics: paired intervals over problems, correlations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["paired_interval", "correlation"]


def paired_interval(a: Sequence[float], b: Sequence[float] | None = None, *, z: float = 1.96) -> dict[str, float]:
    """Mean of ``a − b`` (or of ``a``) over problems with its standard error and normal 95% interval.

    ``a`` and ``b`` are per-problem values of two evaluations on the same problems (e.g.
    ``per_problem["joint"]`` after and before training, or team and Thinker-removed): the
    problems are the unit of resampling, so the interval is paired."""
    x = np.asarray(a, dtype=np.float64)
    if b is not None:
        y = np.asarray(b, dtype=np.float64)
        if x.shape != y.shape:
            raise ValueError(f"paired_interval: the evaluations cover different problems ({x.size} vs {y.size})")
        x = x - y
    if x.size == 0:
        raise ValueError("paired_interval: no problems")
    mean = float(x.mean())
    se = float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else float("nan")
    return {"mean": mean, "se": se, "ci95": [mean - z * se, mean + z * se]}


def correlation(a: Any, b: Any) -> float | None:
    """Pearson correlation of two vectors; ``None`` when either is constant."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    da, db = a - a.mean(), b - b.mean()
    na, nb = float(np.sqrt((da**2).sum())), float(np.sqrt((db**2).sum()))
    if na == 0.0 or nb == 0.0:
        return None
    return float(np.clip((da * db).sum() / (na * nb), -1.0, 1.0))
