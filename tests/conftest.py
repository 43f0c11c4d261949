"""Shared fixtures: where the shared MATH data lives, and small problem sets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("THINKSOLVE_DATA", ROOT.parent / "shared" / "data" / "math"))


def data_file(name: str) -> Path:
    path = DATA_DIR / name
    if not path.exists():
        pytest.fail(f"shared data file {path} is missing (set THINKSOLVE_DATA to the folder with the MATH JSONL files)")
    return path


@pytest.fixture(scope="session")
def math500_path() -> Path:
    return data_file("math500.jsonl")


@pytest.fixture(scope="session")
def math500(math500_path):
    from thinksolve_env import load_problems

    return load_problems(math500_path)


#: A warm start built in seconds (the tiny-arith preset's takes 600 steps, minutes on 2 cores):
#: tests that go through the warm-start path of the trainer use these overrides.
TINY_WARM_START = ["warm_start.data=arith:n=40,difficulty=1", "warm_start.steps=6", "warm_start.batch_size=4"]


@pytest.fixture(scope="session")
def tiny_warm_start() -> list[str]:
    """``field=value`` overrides of the tiny-arith preset whose warm start is small, built (and
    cached under ``THINKSOLVE_CACHE``) once per session."""
    from algorithms.config import apply_overrides, preset
    from algorithms.team.warmstart import warm_start

    cfg = apply_overrides(preset("tiny-arith"), TINY_WARM_START)
    warm_start(cfg.warm_start, model=cfg.model.name, prompts=cfg.rollout.prompts, log=None)
    return list(TINY_WARM_START)


@pytest.fixture
def credit_registry_restored():
    """Credit methods a test registers (or a plugin it loads) do not leak into other tests: the
    registry is restored afterwards and plugin modules are forgotten, so the next
    ``load_plugin`` of the same file registers its methods again."""
    import sys

    from algorithms import credit

    saved = credit.REGISTRY.snapshot()
    yield
    credit.REGISTRY.restore(saved)
    for name in [m for m in sys.modules if m.startswith("thinksolve_plugin_")]:
        del sys.modules[name]
