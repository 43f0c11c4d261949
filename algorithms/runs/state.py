"""What a run directory holds, and the checks a training makes before it writes there.

The checks live here once; the trainer (while holding the lock) and ``thinksolve train`` (before
it loads anything, so that it can answer at once) both ask :func:`check_run_dir`:

1. another live process writes there → :class:`~.lock.RunLockedError` naming it;
2. a fresh run into a directory that holds a checkpoint → :class:`ResumeError`;
3. resuming a directory without a (readable) checkpoint → :class:`~.checkpoint.CheckpointError`;
4. resuming with a target ``steps`` behind the checkpoint → :class:`ResumeError`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint import CheckpointError, is_run, recorded_config
from .lock import RunLock, RunLockedError, lock_holder

__all__ = ["RunState", "ResumeError", "run_state", "check_run_dir"]


class ResumeError(RuntimeError):
    """``--resume`` found a checkpoint from a different configuration or past the target, or a
    fresh run found an existing one."""


@dataclass(frozen=True)
class RunState:
    """A run directory as it is now (:func:`run_state`)."""

    path: Path
    """The run directory."""
    holder: str | None
    """Another live process writing there (pid, host, start time, command), else ``None``."""
    has_checkpoint: bool
    """Whether ``checkpoint/`` (or the ``checkpoint.old/`` a crash left) holds a ``meta.json``."""
    step: int | None
    """The checkpoint's step (``None``: no readable checkpoint)."""
    config: dict | None = field(default=None, compare=False, repr=False)
    """The configuration recorded with the checkpoint."""
    error: CheckpointError | None = field(default=None, compare=False, repr=False)
    """Why there is no step to resume from (no checkpoint, or an unreadable ``meta.json``)."""

    def check(self, *, resume: bool, steps: int | None = None) -> RunState:
        """Raise the first reason a training (``resume``: continuing this run; ``steps``: its
        target) must not write here; returns the state otherwise."""
        if self.holder is not None:
            raise RunLockedError.of(self.path, self.holder)
        if not resume:
            if self.has_checkpoint:
                raise ResumeError(f"{self.path} already holds a run (checkpoint/); pass --resume (resume=True) to "
                                  "continue it, or choose another out (--out)")
            return self
        if self.step is None:
            raise self.error or CheckpointError(f"no checkpoint at {self.path / 'checkpoint'}")
        if steps is not None and steps < self.step:
            recorded = (self.config or {}).get("steps")
            raise ResumeError(f"cannot resume {self.path} with steps={steps}: its checkpoint is already at step "
                              f"{self.step}; pass a larger --steps (or none, to keep {recorded})")
        return self


def run_state(out: str | os.PathLike, *, lock: RunLock | None = None) -> RunState:
    """What ``out`` holds: who writes there, its checkpoint's step and configuration. Only reads.
    ``lock``: the caller's own lock on ``out`` (so that it does not count as another writer)."""
    path = Path(out)
    holder = None if lock is not None and lock.held else lock_holder(path)
    try:
        rec = recorded_config(path)
        step, config, error = rec["step"], rec["config"], None
    except CheckpointError as e:
        step, config, error = None, None, e
    return RunState(path=path, holder=holder, has_checkpoint=is_run(path), step=step, config=config, error=error)


def check_run_dir(out: str | os.PathLike, *, resume: bool, steps: int | None = None,
                  lock: RunLock | None = None) -> RunState:
    """``run_state(out, lock=lock).check(resume=resume, steps=steps)``: the run-directory checks
    (module docstring) in one call."""
    return run_state(out, lock=lock).check(resume=resume, steps=steps)
