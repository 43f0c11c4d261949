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


# --------------------------------------------------------------------------- the order files run in under xdist

#: The test files that take longest, longest first (wall seconds on this 2-core machine under load, from
#: one `pytest -n 2 --dist loadfile` run: the README's quick start, its 350-step warm start from an empty
#: cache included, ~230; test_fsdp ~125; test_cli ~90; test_verifier_hostile ~80; test_trl_parity ~70 with
#: the SmolLM2 conversion; the rest 20-50). Under pytest-xdist each worker is handed the next file when it
#: is nearly done, so these start first and the two workers finish together. xdist's own order (most tests
#: first) started test_doc_commands (6 tests) last: one worker ran its quick start alone for minutes at the
#: end. test_two_role_reproduces (~40 s; ~190 s where it trains the 350-step tiny-brief warm start itself)
#: comes after the README's first training has put that warm start into the session's cache
#: (test_doc_commands.share_warm_starts). A new file that takes more than ~20 s belongs in this list.
SLOWEST_FILES = (
    "test_doc_commands.py", "test_fsdp.py", "test_cli.py", "test_two_role_reproduces.py", "test_verifier_hostile.py",
    "test_trl_parity.py",
    "test_docs.py", "test_briefed.py", "test_gpu_check.py", "test_credit_comparison.py", "test_distributed.py",
    "test_scaling_bench.py", "test_verifier_load.py", "test_verifier_math500.py", "test_performance_bench.py",
    "test_eval.py",
)


def pytest_configure(config):
    # pytest-xdist sorts the files by their number of tests unless told not to; the order of
    # pytest_collection_modifyitems below is kept instead (under xdist only).
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    """Under xdist, files in the order of :data:`SLOWEST_FILES`, then files with a test marked
    ``slow``, then the others as xdist would order them (most tests first); the tests of a file keep
    their order. A plain ``pytest`` run keeps the collection order."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    count: dict[Path, int] = {}
    slow: set[Path] = set()
    for item in items:
        count[item.path] = count.get(item.path, 0) + 1
        if item.get_closest_marker("slow") is not None:
            slow.add(item.path)
    rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: (rank.get(item.path.name, len(rank)), item.path not in slow, -count[item.path]))
