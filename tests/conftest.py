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
