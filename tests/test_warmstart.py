"""The supervised format warm start: targets, learning, and the per-machine cache."""

import json
import time

import pytest

from algorithms.config import WarmStartConfig
from algorithms.team.warmstart import format_targets, warm_start, warm_start_examples, warm_start_path
from thinksolve_env import load_problems
from thinksolve_env.verifier import MathVerifier


def test_targets_teach_the_three_formats():
    (p,) = load_problems("arith:n=1,difficulty=2")
    t = format_targets(p)
    assert t["thinker"] == " ".join(s + "." for s in p.meta["steps"]) and "\\boxed" not in t["thinker"]
    with MathVerifier() as v:
        assert v.verify(t["solver"], p.answer).correct and v.verify(t["solo"], p.answer).correct
    rating = json.loads(t["rating"])
    assert rating["outcome"] == "correct" and rating["pair"] == [0.5, 0.5]
    kinds = [msgs[0]["content"][:20] for msgs, _ in warm_start_examples(load_problems("arith:n=5"), 200)]
    assert len(set(kinds)) == 4  # Thinker, Solver, solo and rater prompts all appear


def test_problems_without_steps_are_refused():
    from thinksolve_env import Problem

    with pytest.raises(ValueError, match="arith: task"):
        format_targets(Problem(id="x", problem="1+1?", answer="2"))


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model is fastest on one thread of a busy CPU
    yield
    torch.set_num_threads(before)


def test_the_loss_falls_and_the_result_is_cached(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("THINKSOLVE_CACHE", str(tmp_path))
    cfg = WarmStartConfig(enabled=True, data="arith:n=50,difficulty=1", steps=12, batch_size=8, lr=3e-3)
    t0 = time.perf_counter()
    path = warm_start(cfg, log=None)
    first = time.perf_counter() - t0
    assert path == warm_start_path(cfg) and (path / "config.json").exists()
    losses = json.loads((path / "warmstart.json").read_text())["losses"]
    assert len(losses) == 12 and sum(losses[-3:]) < 0.8 * sum(losses[:3])
    t0 = time.perf_counter()
    assert warm_start(cfg, log=None) == path  # cached: no second training
    assert time.perf_counter() - t0 < first / 2
    other = WarmStartConfig(enabled=True, data="arith:n=50,difficulty=1", steps=13, batch_size=8, lr=3e-3)
    assert warm_start_path(other) != path  # every setting enters the cache key
    assert [p.name for p in tmp_path.joinpath("warmstart").iterdir()] == [path.name]  # no temp dirs left
