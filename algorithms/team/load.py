"""Loading a trained team back: from a run directory's checkpoint, or from model names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents import TransformersPolicy

from ..config import RolloutConfig, TrainerConfig
from ..runs.checkpoint import is_run, load_checkpoint
from .build import build_policies, restore_team
from .sources import check_model_source
from .warmstart import model_source

__all__ = ["load_team"]


def load_team(model: str, *, solver_model: str | None = None, seed: int = 0,
              device: str | None = None) -> tuple[dict[str, Any], RolloutConfig | None]:
    """``(policies, rollout config or None)`` for evaluation: a run directory (its ``checkpoint/``,
    with the run's rollout settings: budgets and prompt set), or a model name/path for both roles
    (``solver_model`` for a different Solver).

    A directory that is neither a run (``checkpoint/``) nor a model (``config.json``) is a
    :class:`ValueError` that says so. Loading a run takes no lock, starts no verifier and writes nothing (it reads the
    checkpoint and builds the models), so a run can be evaluated while it trains.
    """
    run = Path(model)
    if is_run(run):
        ck = load_checkpoint(run / "checkpoint")
        cfg = TrainerConfig.from_dict(ck["config"])
        if device is not None:
            cfg.model.device = device
        policies = build_policies(cfg.model, cfg.rollout, seed=cfg.seed,
                                  source=lambda name: model_source(cfg, name, log=None))
        restore_team(policies, None, cfg.model.sharing, ck)
        for p in {id(p): p for p in policies.values()}.values():
            p.eval()
        return policies, cfg.rollout
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
    if solver_model in (None, model):
        solver = thinker
    else:
        solver = TransformersPolicy.from_pretrained(solver_model, seed=seed, device=device)
    return {"thinker_0": thinker, "solver_0": solver}, None
