"""Run directories: one writer at a time, metrics that agree with the checkpoint, and loading a
run (or a model) back for evaluation.

A run directory ``OUT`` holds::

    OUT/.lock            the writer's lock (pid, host, command); see :class:`RunLock`
    OUT/config.json      the run's configuration
    OUT/metrics.jsonl    one JSON row per step (``step`` = 1, 2, ...)
    OUT/checkpoint/      the latest state (:mod:`algorithms.checkpoint`)
    OUT/eval.json(l)     evaluations

**One writer.** :class:`RunLock` takes an exclusive ``flock`` on ``OUT/.lock``. The kernel drops
the lock when its process ends, however it ends (SIGKILL included), so a dead run never leaves a
stale lock behind; the file's content only names the holder for the error message.

**Metrics agree with the checkpoint** (``metrics.jsonl`` and ``eval.jsonl``). A row is appended with one ``write`` of a whole line
(``O_APPEND``), so rows of one writer never interleave and a crash can at worst leave the last
line unterminated. :func:`reconcile_metrics` runs before a resumed run writes: it keeps the rows
with ``step <= checkpoint step`` in order and moves everything else (rows past the checkpoint,
a torn or unparsable line) to ``metrics.jsonl.cut-<time>`` next to it — kept, not destroyed.

This module, not :mod:`algorithms.evaluate`, loads a run for evaluation (:func:`load_team`),
so that the trainer and the evaluation do not import each other.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["RunLock", "RunLockedError", "reconcile_metrics", "append_row", "load_team", "is_run", "check_model_source",
           "recorded_config", "METRICS", "EVALS"]

METRICS = "metrics.jsonl"
#: Evaluations during training, one row per evaluation (reconciled like the metrics).
EVALS = "eval.jsonl"


class RunLockedError(RuntimeError):
    """Another process is writing to the same run directory."""


class RunLock:
    """An exclusive, process-lifetime lock on a run directory (``OUT/.lock``).

    ``acquire()`` raises :class:`RunLockedError` naming the holder (pid, host, start time,
    command) when another live process holds it; ``release()`` (or the process ending) frees it.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / ".lock"
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLockedError(
                f"{self.path.parent} is in use by another training process ({holder}); one run directory takes one "
                "writer: wait for it to finish (or stop it), or choose another --out") from None
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


# --------------------------------------------------------------------------- metrics


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


# --------------------------------------------------------------------------- models and runs


def is_run(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a run directory with a checkpoint."""
    run = Path(path)
    return (run / "checkpoint" / "meta.json").exists() or (run / "checkpoint.old" / "meta.json").exists()


def recorded_config(run_dir: str | os.PathLike) -> dict:
    """``{"config", "step"}`` of the run's checkpoint, read from its ``meta.json`` only (no
    weights), for ``--resume``; :class:`~algorithms.checkpoint.CheckpointError` if there is none."""
    from .checkpoint import CheckpointError

    run = Path(run_dir)
    for ck in (run / "checkpoint", run / "checkpoint.old"):
        if (ck / "meta.json").exists():
            try:
                meta = json.loads((ck / "meta.json").read_text())
                return {"config": meta["config"], "step": int(meta["step"])}
            except (ValueError, KeyError, TypeError) as e:
                raise CheckpointError(f"{ck}/meta.json is corrupt: {e}") from None
    raise CheckpointError(f"no checkpoint at {run / 'checkpoint'} (meta.json missing): nothing to resume; "
                          "start the run without --resume")


def _hub_reachable(timeout: float = 3.0) -> bool:
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout=timeout):
            return True
    except OSError:
        return False


def check_model_source(name: str, field: str = "model.name") -> None:
    """Fail at once, with what to do, when ``name`` is a hub id that cannot be loaded here: the
    hub is offline (``HF_HUB_OFFLINE``) or unreachable and no copy is in the local HF cache.

    Built-in names and existing local paths pass; a local-looking path that does not exist is
    named as such (:class:`ValueError`)."""
    from agents.models import PRESETS, _is_hub_id

    if name in PRESETS or Path(name).expanduser().exists():
        return
    if not _is_hub_id(name):
        raise ValueError(f"unknown model {name!r} ({field}): not a built-in model ({', '.join(PRESETS)}), no such local directory, "
                         "and not a hub id of the form 'org/name'")
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return  # a cached copy: transformers loads it offline
    except Exception:  # pragma: no cover - huggingface_hub is a transformers dependency
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if offline or not _hub_reachable():
        why = "HF_HUB_OFFLINE is set" if offline else "the Hugging Face hub is unreachable from this machine"
        raise ValueError(
            f"{field}={name!r} is a hub id, {why}, and no copy is in the local Hugging Face cache; download it "
            f"where the hub is reachable (huggingface-cli download {name} --local-dir DIR, or save_pretrained) and "
            f"set {field}=DIR to that local folder")


def load_team(model: str, *, solver_model: str | None = None, seed: int = 0, device: str | None = None) -> tuple[dict, Any]:
    """``(policies, rollout config or None)`` for evaluation: a run directory (its ``checkpoint/``,
    with the run's rollout settings: budgets and prompt set), or a model name/path for both roles
    (``solver_model`` for a different Solver).

    A directory that is neither a run (``checkpoint/``) nor a model (``config.json``) is a
    :class:`ValueError` that says so. Loading a run takes no lock and writes nothing, so a run
    can be evaluated while it trains.
    """
    from agents import TransformersPolicy

    run = Path(model)
    if is_run(run):
        from .checkpoint import load_checkpoint
        from .config import TrainerConfig
        from .trainer import Trainer

        ck = load_checkpoint(run / "checkpoint")
        cfg = TrainerConfig.from_dict(ck["config"])
        cfg.out = str(run)
        trainer = Trainer(cfg, resume=True, log=None, writer=False)
        trainer.close()  # closes a vLLM rollout engine; the trainable policies stay usable
        # the trained weights themselves (a run trained on vLLM has closed engines by now;
        # `thinksolve eval --engine vllm` builds a fresh engine from these)
        return dict(trainer.policies), cfg.rollout
    for name in filter(None, {model, solver_model}):
        p = Path(name).expanduser()
        if p.is_dir() and not (p / "config.json").exists():
            what = "an empty folder" if not any(p.iterdir()) else "a folder without checkpoint/ or config.json"
            raise ValueError(f"{name} is neither a run directory (no checkpoint/) nor a model directory (no config.json): "
                             f"{what}; pass a run's --out, a save_pretrained folder, or a built-in name (tiny, smollm2-135m)")
        if p.is_file():
            raise ValueError(f"{name} is a file; --model takes a run directory, a model directory or a model name")
        check_model_source(str(name), field="--model" if name == model else "--solver-model")
    thinker = TransformersPolicy.from_pretrained(model, seed=seed, device=device)
    solver = thinker if solver_model in (None, model) else TransformersPolicy.from_pretrained(solver_model, seed=seed, device=device)
    return {"thinker_0": thinker, "solver_0": solver}, None
