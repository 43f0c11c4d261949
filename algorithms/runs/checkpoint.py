"""Crash-safe training checkpoints.

A checkpoint is a directory::

    checkpoint/
      meta.json                 step, config, credit-method state, format version, and the
                                SHA-256 of every other file
      weights/<role>.safetensors
      optim/<role>.pt           optimizer state (tensors and plain Python values only)
      rng.pt                    Python, NumPy and torch RNG states

A sharded run (FSDP on several ranks, :func:`save_sharded_checkpoint`) writes ``state/`` instead
of ``weights/`` and ``optim/``: every rank's shards of the weights and optimizer states, written
by ``torch.distributed.checkpoint`` (one ``__<rank>_0.distcp`` file per rank and a ``.metadata``),
which reads them back at any world size (:func:`load_sharded_state`), resharding as it goes.
The same swap makes it atomic and ``meta.json`` holds the SHA-256 of every shard.

:func:`save_checkpoint` writes everything into a fresh sibling directory, fsyncs it, and only
then swaps it in with renames, so a crash, a full disk or Ctrl-C at any moment leaves either
the previous checkpoint or the new one in place — never a half-written one.
:func:`load_checkpoint` also recovers from a crash between the two renames of the swap, and
verifies before using anything: every file against its SHA-256 in ``meta.json`` (a flipped
byte, a truncated or replaced file), safetensors headers, and that all weights are finite; each
failure is a :class:`CheckpointError` that names the file (format 1 checkpoints, written before
checksums, load without the checksum check).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

__all__ = ["save_checkpoint", "save_sharded_checkpoint", "load_sharded_state",
           "load_checkpoint", "capture_rng", "restore_rng", "config_diff", "CheckpointError", "is_run",
           "recorded_config", "json_default"]

FORMAT_VERSION = 2
#: The format of a sharded checkpoint (:func:`save_sharded_checkpoint`).
SHARDED_FORMAT = 3
#: Formats :func:`load_checkpoint` reads (1: no checksums; 3: sharded).
READABLE_FORMATS = (1, 2, 3)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or does not match the run that wants it."""


# --------------------------------------------------------------------------- RNG


def capture_rng() -> dict:
    """The global RNG states of Python, NumPy and torch (CPU, and CUDA when present)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict) -> None:
    random.setstate(_as_python_state(state["python"]))
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_python_state(s):
    # random.setstate needs (int, tuple, None|float); JSON/pickle round trips may give lists.
    version, internal, gauss = s
    return version, tuple(internal), gauss


def _rng_to_file(state: dict) -> dict:
    version, internal, gauss = state["python"]
    np_state = state["numpy"]
    out = {
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": state["torch"],
    }
    if "cuda" in state:
        out["cuda"] = list(state["cuda"])
    return out


def _rng_from_file(d: dict) -> dict:
    n = d["numpy"]
    state = {
        "python": (d["python"]["version"], tuple(int(x) for x in d["python"]["internal"].tolist()), d["python"]["gauss"]),
        "numpy": (n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]),
        "torch": d["torch"],
    }
    if "cuda" in d:
        state["cuda"] = d["cuda"]
    return state


# --------------------------------------------------------------------------- config


def config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Human-readable differences between two (nested) config dicts: ``field: old -> new``."""
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key, "<absent>"), new.get(key, "<absent>")
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_diff(a, b, prefix=name + ".")
        elif a != b:
            out.append(f"{name}: {a!r} -> {b!r}")
    return out


# --------------------------------------------------------------------------- save / load


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(dirpath))


def save_checkpoint(
    path: str | os.PathLike,
    *,
    step: int,
    weights: dict[str, dict[str, torch.Tensor]],
    optimizers: dict[str, dict] | None = None,
    credit_state: dict | None = None,
    config: dict | None = None,
    rng: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Atomically write a checkpoint directory at ``path`` (replacing any previous one).

    ``weights`` maps a role (e.g. ``"thinker_0"``) to a state dict of tensors; ``optimizers``
    maps roles to ``optimizer.state_dict()``; ``credit_state`` is the credit method's
    ``state_dict()``; ``config`` is the run's configuration as a JSON-able dict; ``rng``
    defaults to :func:`capture_rng`. ``extra`` is stored in ``meta.json`` (JSON-able).
    """

    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    try:
        (tmp / "weights").mkdir()
        for role, sd in weights.items():
            tensors, seen = {}, set()
            for k, v in sd.items():
                v = v.detach().to("cpu").contiguous()
                ptr = v.untyped_storage().data_ptr()
                # tied weights (e.g. embeddings = LM head) share memory; safetensors wants copies
                tensors[k] = v.clone() if ptr in seen else v
                seen.add(ptr)
            save_file(tensors, str(tmp / "weights" / f"{role}.safetensors"))
        if optimizers:
            (tmp / "optim").mkdir()
            for role, sd in optimizers.items():
                torch.save(sd, tmp / "optim" / f"{role}.pt")
        _seal(tmp, FORMAT_VERSION, step=step, roles=weights, config=config, credit_state=credit_state, rng=rng,
              extra=extra)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _swap_in(tmp, final)


def _seal(tmp: Path, version: int, *, step: int, roles: Any, config: dict | None, credit_state: dict | None,
          rng: dict | None, extra: dict | None) -> None:
    """Finish a checkpoint written into ``tmp``: the RNG states, then ``meta.json`` with the
    SHA-256 of every other file, all fsynced."""
    torch.save(_rng_to_file(rng if rng is not None else capture_rng()), tmp / "rng.pt")
    meta = {
        "format_version": version,
        "step": int(step),
        "roles": sorted(roles),
        "config": config or {},
        "credit_state": credit_state or {},
        "extra": extra or {},
        "checksums": {f.relative_to(tmp).as_posix(): _sha256(f) for f in sorted(tmp.rglob("*")) if f.is_file()},
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=json_default))
    _fsync_tree(tmp)


def _swap_in(tmp: Path, final: Path) -> Path:
    """Swap: final -> old, tmp -> final, remove old. A crash in between leaves `old` (complete),
    which load_checkpoint falls back to."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    shutil.rmtree(old, ignore_errors=True)
    return final


def save_sharded_checkpoint(
    path: str | os.PathLike,
    *,
    step: int,
    state: dict[str, Any],
    roles: list[str],
    credit_state: dict | None = None,
    config: dict | None = None,
    rng: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Atomically write a sharded checkpoint at ``path``; every rank calls it.

    ``state`` is a nested dict of (sharded) tensors, e.g. ``{"weights": {role: state dict},
    "optim": {role: optimizer state dict}}`` as ``torch.distributed.checkpoint.state_dict``
    returns them; each rank writes its own shards into a fresh sibling directory, then rank 0
    adds the RNG states and ``meta.json`` (checksums of every file, ``roles``) and swaps it in.
    """
    import torch.distributed as dist  # noqa: PLC0415 (distributed-only imports)
    import torch.distributed.checkpoint as dcp  # noqa: PLC0415

    final = Path(path)
    ranked = dist.is_available() and dist.is_initialized()
    main = not ranked or dist.get_rank() == 0
    box: list[Any] = [None]
    if main:
        final.parent.mkdir(parents=True, exist_ok=True)
        box[0] = tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-")
    if ranked:
        dist.broadcast_object_list(box, src=0)
    tmp = Path(box[0])
    try:
        dcp.save(state, checkpoint_id=str(tmp / "state"))
        if ranked:
            dist.barrier()
        if main:
            _seal(tmp, SHARDED_FORMAT, step=step, roles=roles, config=config, credit_state=credit_state, rng=rng,
                  extra={**(extra or {}), "world_size": dist.get_world_size() if ranked else 1})
    except BaseException:
        if main:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if main:
        _swap_in(tmp, final)
    if ranked:
        dist.barrier()
    return final


def load_sharded_state(checkpoint: dict, state: dict[str, Any]) -> None:
    """Read a sharded checkpoint's tensors into ``state`` in place (the same nesting as it was
    saved with; the tensors may be sharded differently, or whole on one process)."""
    import torch.distributed.checkpoint as dcp  # noqa: PLC0415

    where = Path(checkpoint["path"]) / "state"
    try:
        with warnings.catch_warnings():  # on one process DCP says it reads without a process group: that is the intent
            warnings.filterwarnings("ignore", message=".*assuming the intent is to load in a single process")
            dcp.load(state, checkpoint_id=str(where))
    except Exception as e:  # a shard that does not parse, a key that is missing
        raise CheckpointError(f"{checkpoint['path']}: cannot read the sharded state in {where}: "
                              f"{type(e).__name__}: {str(e)[:500]}") from None


def json_default(o: Any) -> Any:
    """``json.dumps(default=...)`` for NumPy scalars/arrays and paths (checkpoints, metrics)."""
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_checkpoint(path: str | os.PathLike, *, map_location: str = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Returns ``{"step", "weights", "optimizers", "credit_state", "config", "rng", "extra", "path",
    "sharded", "roles"}``; a sharded checkpoint's ``weights`` and ``optimizers`` are ``None`` (read
    them into a team with :func:`load_sharded_state`).
    Raises :class:`CheckpointError` if there is none, it is incomplete, a file does not match
    its checksum, a file cannot be parsed, or a weight is NaN/inf.
    """

    final = Path(path)
    if not (final / "meta.json").exists():
        old = final.with_name(final.name + ".old")
        if (old / "meta.json").exists():
            final = old  # a crash happened between the two renames of the last save
        else:
            raise CheckpointError(f"no checkpoint at {path} (meta.json missing)")
    try:
        meta = json.loads((final / "meta.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{final}/meta.json is corrupt: {e}") from None
    if not isinstance(meta, dict) or meta.get("format_version") not in READABLE_FORMATS:
        version = meta.get("format_version") if isinstance(meta, dict) else None
        raise CheckpointError(f"{final}: checkpoint format {version} is not one of {list(READABLE_FORMATS)}")
    checksums = meta.get("checksums")
    if meta["format_version"] >= 2:
        if not isinstance(checksums, dict) or not checksums:
            raise CheckpointError(f"{final}/meta.json has no checksums (format {meta['format_version']} needs them)")
        for rel, digest in checksums.items():
            f = final / rel
            if not f.is_file():
                raise CheckpointError(f"{final}: {rel} is missing")
            if _sha256(f) != digest:
                raise CheckpointError(f"{final}: {rel} does not match its checksum (the file was changed or damaged "
                                      "after it was written); this checkpoint cannot be trusted")

    def read(f: Path, what: str, loader):
        try:
            return loader(f)
        except CheckpointError:
            raise
        except Exception as e:  # safetensors' header errors, pickle/zip errors of torch.load
            raise CheckpointError(f"{final}: cannot read {what} ({f.relative_to(final)}): {type(e).__name__}: {e}") from None

    sharded = meta["format_version"] == SHARDED_FORMAT  # its tensors stay on disk until load_sharded_state
    weights: dict | None = None if sharded else {}
    optimizers: dict | None = None if sharded else {}
    for role in [] if sharded else meta["roles"]:
        f = final / "weights" / f"{role}.safetensors"
        if not f.exists():
            raise CheckpointError(f"{final}: weights for {role} are missing")
        weights[role] = read(f, f"the weights of {role}", lambda f: load_file(str(f), device=map_location))
        for name, t in weights[role].items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise CheckpointError(f"{final}: the weights of {role} hold NaN or inf values ({name}); the run diverged "
                                      "before this checkpoint was written (lower optim.lr, or resume from an earlier copy)")
    if not sharded and (final / "optim").exists():
        for f in sorted((final / "optim").glob("*.pt")):
            optimizers[f.stem] = read(f, f"the optimizer state of {f.stem}",
                                      lambda f: torch.load(f, map_location=map_location, weights_only=True))
    rng = read(final / "rng.pt", "the RNG states", lambda f: _rng_from_file(torch.load(f, weights_only=True)))
    return {
        "step": meta["step"],
        "weights": weights,
        "optimizers": optimizers,
        "credit_state": meta.get("credit_state", {}),
        "config": meta.get("config", {}),
        "rng": rng,
        "extra": meta.get("extra", {}),
        "path": final,
        "sharded": sharded,
        "roles": meta["roles"],
    }


def is_run(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a run directory with a checkpoint."""
    run = Path(path)
    return (run / "checkpoint" / "meta.json").exists() or (run / "checkpoint.old" / "meta.json").exists()


def recorded_config(run_dir: str | os.PathLike) -> dict:
    """``{"config", "step"}`` of the run's checkpoint, read from its ``meta.json`` only (no
    weights), for ``--resume``; :class:`~algorithms.checkpoint.CheckpointError` if there is none."""
    run = Path(run_dir)
    for ck in (run / "checkpoint", run / "checkpoint.old"):
        if (ck / "meta.json").exists():
            try:
                meta = json.loads((ck / "meta.json").read_text())
                return {"config": meta["config"], "step": int(meta["step"])}
            except (ValueError, KeyError, TypeError) as e:
                raise CheckpointError(f"{ck}/meta.json is corrupt: {e}") from None
    raise CheckpointError(f"no checkpoint at {run / 'checkpoint'} (meta.json missing): nothing to resume; "
                          "start the run without --resume (or with --resume auto, which starts it when there is none)")
