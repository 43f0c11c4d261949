"""Run directories: one writer, metrics that agree with the checkpoint, crash-safe checkpoints,
and progress lines.

A run directory ``OUT`` holds::

    OUT/.lock            the writer's lock (pid, host, command): :class:`RunLock`
    OUT/config.json      the run's configuration
    OUT/metrics.jsonl    one JSON row per step (``step`` = 1, 2, ...): :mod:`.metrics`
    OUT/eval.jsonl       evaluations during training (reconciled like the metrics)
    OUT/checkpoint/      the latest state: :mod:`.checkpoint`
    OUT/eval.json        ``thinksolve eval`` of the run
"""

from .checkpoint import (CheckpointError, capture_rng, config_diff, is_run, json_default, load_checkpoint,
                         recorded_config, restore_rng, save_checkpoint)
from .lock import RunLock, RunLockedError, open_run_dir
from .metrics import EVALS, METRICS, MetricsLogger, append_row, reconcile_metrics
from .progress import clock, training_progress

__all__ = [
    "CheckpointError", "save_checkpoint", "load_checkpoint", "capture_rng", "restore_rng", "config_diff", "is_run",
    "recorded_config", "json_default", "RunLock", "RunLockedError", "open_run_dir", "METRICS", "EVALS", "MetricsLogger",
    "append_row", "reconcile_metrics", "training_progress", "clock",
]
