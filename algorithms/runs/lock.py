"""One writer per run directory.

:class:`RunLock` takes an exclusive ``flock`` on ``OUT/.lock``. The kernel drops the lock when its
process ends, however it ends (SIGKILL included), so a dead run never leaves a stale lock behind;
the file's content only names the holder for the error message.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

__all__ = ["RunLock", "RunLockedError", "open_run_dir", "lock_holder", "check_unlocked"]


class RunLockedError(RuntimeError):
    """Another process is writing to the same run directory."""

    @classmethod
    def of(cls, run_dir: str | os.PathLike, holder: str) -> RunLockedError:
        """The error for ``run_dir`` held by ``holder`` (pid, host, start time, command)."""
        return cls(f"{run_dir} is in use by another training process ({holder}); one run directory takes one "
                   "writer: wait for it to finish (or stop it), or choose another --out")


class RunLock:
    """An exclusive, process-lifetime lock on a run directory (``OUT/.lock``).

    ``acquire()`` raises :class:`RunLockedError` naming the holder (pid, host, start time,
    command) when another live process holds it; ``release()`` (or the process ending) frees it.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLockedError.of(self.path.parent, holder) from None
        except BaseException:
            os.close(fd)
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(sys.argv)[:500]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "pid unknown"
    return f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}: {info.get('command')}"


def lock_holder(run_dir: str | os.PathLike) -> str | None:
    """Who holds ``run_dir``'s lock when another process does (pid, host, start time, command);
    ``None`` when nobody does or there is no lock file. Only reads (nothing is created or
    written); a lock this process holds itself also counts as held."""
    try:
        fd = os.open(Path(run_dir) / ".lock", os.O_RDONLY)
    except OSError:  # no lock file (an unreadable one is reported when the lock is taken)
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def check_unlocked(run_dir: str | os.PathLike) -> None:
    """:class:`RunLockedError` naming the holder if another process writes to ``run_dir``."""
    holder = lock_holder(run_dir)
    if holder is not None:
        raise RunLockedError.of(Path(run_dir), holder)


def open_run_dir(out: Path) -> RunLock:
    """Create ``out`` if needed, check it is a writable directory, and take its lock."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"out={str(out)!r} is a file, not a directory: choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"out={str(out)!r}: cannot create the run directory ({e.strerror or e})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"out={str(out)!r}: the directory is not writable by this user: choose another --out")
    try:
        return RunLock(out).acquire()
    except PermissionError as e:
        raise ValueError(f"out={str(out)!r}: cannot write in the run directory ({e.strerror or e})") from None
