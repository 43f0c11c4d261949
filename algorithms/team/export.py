"""A trained team out of a run directory, as one Hugging Face folder per role.

``thinksolve export --model runs/x --out DIR`` (:func:`export_team`) writes ``DIR/<role>/``
(``config.json``, ``model.safetensors``, the tokenizer and its chat template) for every role, and
``DIR/team.json`` (the run, its step, the model layout and the prompt set the roles were trained
with). Each folder loads with ``AutoModelForCausalLM.from_pretrained`` and serves in vLLM.

Any checkpoint exports: whole or sharded (a sharded one is read at one process, its shards
joined), written at any world size. Under ``model.sharing=lora`` each role's adapter is merged
into the base weights, so every folder is a plain model; under ``shared`` every folder holds the
same weights (one per role, so that a role is always ``DIR/<role>``). The folder appears whole or
not at all: it is written beside ``DIR`` and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from ..runs.checkpoint import is_run, recorded_config
from .load import load_team

__all__ = ["export_team"]


def export_team(run_dir: str | os.PathLike, out: str | os.PathLike) -> dict[str, Path]:
    """Write every role of the run at ``run_dir`` to ``out/<role>/`` (see the module docstring);
    returns role → folder. ``out`` must not exist or be empty; a directory that is not a run is a
    :class:`ValueError` that says so."""
    run, out = Path(run_dir), Path(out)
    if not is_run(run):
        raise ValueError(f"{run} is not a run directory (no checkpoint/): export takes a training run's --out")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out} already exists and is not an empty directory: pick a new folder")
    recorded = recorded_config(run)
    policies, rollout = load_team(str(run))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        folders = {}
        for role in policies:  # the team's roles, in chain order
            policies[role].save_pretrained(tmp / role)
            folders[role] = out / role
        model = recorded["config"].get("model", {})
        (tmp / "team.json").write_text(json.dumps({
            "run": str(run.resolve()), "step": recorded["step"], "roles": {role: role for role in policies},
            "model": model.get("name"), "solver_model": model.get("solver_name"), "sharing": model.get("sharing"),
            "lora": "merged into each role's weights" if model.get("sharing") == "lora" else None,
            "prompts": rollout.prompts if rollout is not None else None,
        }, indent=2))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folders
