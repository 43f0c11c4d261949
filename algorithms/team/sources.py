"""Where a model comes from: a built-in name, a local directory, or a hub id that can be loaded here."""

from __future__ import annotations

import difflib
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import try_to_load_from_cache

from agents.models import PRESETS, is_hub_id

__all__ = ["check_model_source"]


def _hub_reachable(timeout: float = 3.0) -> bool:
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
    if name in PRESETS or Path(name).expanduser().exists():
        return
    parent = Path(name).expanduser().parent
    if str(parent) not in ("", ".") and parent.is_dir():  # `runs/firts` next to `runs/first`: a path, mistyped
        entries = sorted(p.name for p in parent.iterdir() if p.is_dir())
        near = difflib.get_close_matches(Path(name).name, entries, n=1)
        hint = f"did you mean {str(parent / near[0])!r}? " if near else ""
        shown = ", ".join(entries[:12]) + (", ..." if len(entries) > 12 else "") if entries else "no folders"
        raise ValueError(f"{field}={name!r}: no such directory ({hint}{parent}/ holds: {shown}); a run directory, a "
                         f"model folder, a built-in model ({', '.join(PRESETS)}) or a hub id 'org/name' is expected")
    if not is_hub_id(name):
        raise ValueError(f"unknown model {name!r} ({field}): not a built-in model ({', '.join(PRESETS)}), "
                         "no such local directory, and not a hub id of the form 'org/name'")
    try:
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
