"""Stopping a run cleanly: SIGINT (Ctrl-C) and SIGTERM (``timeout``, ``kill``, job schedulers).

The first signal asks the loop to stop after the current step (it then saves a checkpoint); the
second aborts at once with :class:`TrainingInterrupted`. The CLI exits with ``128 + signum``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["TrainingInterrupted", "StopSignals"]


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT/SIGTERM after saving; ``signum`` says which (the CLI exits
    with ``128 + signum``: 130 for Ctrl-C, 143 for SIGTERM)."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


class StopSignals:
    """A context that turns the first SIGINT/SIGTERM into a stop request (``requested``,
    ``signum``) and the second into :class:`TrainingInterrupted`; handlers are restored on exit.
    Outside the main thread (where Python cannot install handlers) it only tracks requests made
    with :meth:`request`."""

    def __init__(self, log: Callable[[str], Any] | None = None) -> None:
        self.log = log
        self.requested = False
        self.signum: int | None = None
        self._previous: dict = {}

    def request(self, signum: int | None = None) -> None:
        """Ask for a stop after the current step (as a first Ctrl-C does)."""
        self.requested = True
        if signum is not None:
            self.signum = signum

    def _handler(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise TrainingInterrupted(signum)
        self.request(signum)
        if self.log:
            name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
            self.log(f"\n{name}: finishing this step, then saving a checkpoint (send it again to abort)")

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handler) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
