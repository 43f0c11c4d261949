"""Run directories: one writer, metrics that agree with the checkpoint, crash-safe checkpoints,
and progress lines.

A run directory ``OUT`` holds::

    OUT/.lock            the writer's lock (pid, host, command): :class:`RunLock`
    OUT/config.json      the run's configuration
    OUT/metrics.jsonl    one JSON row per step (``step`` = 1, 2, ...): :mod:`.metrics`
    OUT/eval.jsonl       evaluations during training (reconciled like the metrics)
    OUT/samples.jsonl    sample episodes every ``samples_every`` steps: :mod:`.samples`
    OUT/summary.json     the end of the run (held-out and batch accuracy, last samples): :mod:`.summary`
    OUT/tensorboard/     OUT/wandb/: the loggers of ``report_to`` (:mod:`.loggers`)
    OUT/checkpoint/      the latest state: :mod:`.checkpoint`
    OUT/evals.jsonl      ``thinksolve eval`` of the run, one record per evaluation (appended)

:func:`run_state` tells what a directory holds; :func:`check_run_dir` makes the checks a training
makes before it writes there (another writer, a run already there, resuming past the target).
"""

from .checkpoint import (
                         CheckpointError,
                         capture_rng,
                         config_diff,
                         is_run,
                         json_default,
                         load_checkpoint,
                         load_sharded_state,
                         recorded_config,
                         restore_rng,
                         save_checkpoint,
                         save_sharded_checkpoint,
)
from .lock import RunLock, RunLockedError, check_unlocked, lock_holder, open_run_dir
from .loggers import LoggerMissing, check_loggers
from .metrics import EVALS, METRICS, MetricsLogger, append_row, reconcile_metrics, utc_time
from .progress import clock, training_progress
from .samples import SAMPLES, format_sample, read_rows, sample_rows, write_samples
from .state import ResumeError, RunState, check_run_dir, run_state
from .summary import SUMMARY, format_summary, report_run, run_summary, write_summary

__all__ = [
    "CheckpointError", "save_checkpoint", "load_checkpoint", "save_sharded_checkpoint", "load_sharded_state",
    "capture_rng", "restore_rng", "config_diff", "is_run",
    "recorded_config", "json_default", "RunLock", "RunLockedError", "open_run_dir", "METRICS", "EVALS", "MetricsLogger",
    "append_row", "reconcile_metrics", "utc_time", "training_progress", "clock", "lock_holder", "check_unlocked", "RunState",
    "ResumeError", "run_state", "check_run_dir", "LoggerMissing", "check_loggers", "SAMPLES", "format_sample",
    "read_rows", "sample_rows", "write_samples", "SUMMARY", "format_summary", "report_run", "run_summary", "write_summary",
]
