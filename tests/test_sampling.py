"""Sampling settings as one frozen value (algorithms.rollout.Sampling): its checks, the loose
keywords collect_groups still takes, the seeds and budgets each phase samples with, the run's
settings (RolloutConfig.sampling) in training and evaluation, and identical tokens either way."""

from __future__ import annotations

import dataclasses

import pytest

from agents import ScriptedPolicy
from algorithms.config import ConfigError, RolloutConfig, apply_overrides, preset
from algorithms.evaluation import evaluate
from algorithms.rollout import PHASE_SEEDS, SAMPLING_DEFAULTS, Sampling, SamplingError, collect_groups
from thinksolve_env import MathVerifier, Problem

T, S = "thinker_0", "solver_0"
PROBLEMS = [Problem("a", "What is 2+2?", "4"), Problem("b", "What is 3+4?", "7")]


class Recording(ScriptedPolicy):
    """A scripted policy that records the keywords of every generate call."""

    def __init__(self, fn):
        super().__init__(fn)
        self.kwargs = []

    def generate(self, prompts, **kw):
        self.kwargs.append(kw)
        return super().generate(prompts, **kw)


def _team():
    def act(msgs):
        u = msgs[-1]["content"]
        if "Rate the team's" in u:
            return '{"outcome": "correct", "pair": [0.5, 0.5], "brief_reason": "ok"}'
        return "\\boxed{4}" if "thought" in u.lower() or "directly" in msgs[0]["content"] else "Add them."

    return Recording(act), Recording(act)


@pytest.fixture()
def verifier():
    with MathVerifier(workers=0) as v:
        yield v


def test_defaults_are_collect_groups_defaults():
    s = Sampling()
    for name, value in SAMPLING_DEFAULTS.items():
        if name != "max_new_tokens":
            assert getattr(s, name) == value
    assert set(SAMPLING_DEFAULTS) - {f.name for f in dataclasses.fields(Sampling)} == {"max_new_tokens"}


def test_frozen_replace_and_checks():
    s = Sampling(temperature=0.7, seed=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.temperature = 1.0
    t = s.replace(temperature=0.0)
    assert (t.temperature, t.seed, s.temperature) == (0.0, 3, 0.7)
    for field, value, allowed in [("temperature", -0.1, ">= 0"), ("top_p", 0, r"\(0, 1\]"), ("top_p", 1.5, r"\(0, 1\]"),
                                  ("seed", 1.5, "an integer or None"), ("seed", True, "an integer or None"),
                                  ("thinker_max_new_tokens", 0, "an integer >= 1"),
                                  ("solver_max_new_tokens", 2.0, "an integer >= 1"),
                                  ("rating_max_new_tokens", -3, "an integer >= 1"),
                                  ("rating_temperature", -1, ">= 0")]:
        with pytest.raises(SamplingError, match=rf"^{field}={value!r} is invalid: allowed {allowed}") as e:
            Sampling(**{field: value})
        assert (e.value.field, e.value.value) == (field, value) and isinstance(e.value, ValueError)
        with pytest.raises(SamplingError):
            s.replace(**{field: value})


def test_loose_keywords_build_a_sampling():
    s = Sampling.from_keywords(max_new_tokens=9, solver_max_new_tokens=5, temperature=0.5)
    assert (s.thinker_max_new_tokens, s.solver_max_new_tokens, s.temperature) == (9, 5, 0.5)
    assert Sampling.from_keywords(max_new_tokens=None) == Sampling()
    with pytest.raises(TypeError, match=r"unknown sampling keyword\(s\) \['temp'\]; accepted: temperature"):
        Sampling.from_keywords(temp=0.7)


def test_each_phase_has_its_budget_temperature_and_seed():
    s = Sampling(temperature=0.8, top_p=0.9, seed=10, thinker_max_new_tokens=7, solver_max_new_tokens=8,
                 rating_max_new_tokens=9)
    assert PHASE_SEEDS == {"thinker": 0, "solver": 1, "rating_thinker": 2, "rating_solver": 3}
    assert s.generate_kwargs("thinker") == {"max_new_tokens": 7, "temperature": 0.8, "top_p": 0.9, "seed": 10}
    assert s.generate_kwargs("solver") == {"max_new_tokens": 8, "temperature": 0.8, "top_p": 0.9, "seed": 11}
    assert s.generate_kwargs("rating_solver") == {"max_new_tokens": 9, "temperature": 0.8, "top_p": 0.9, "seed": 13}
    assert s.resolved_rating_temperature == 0.8  # None: the temperature
    assert s.replace(rating_temperature=0.0).generate_kwargs("rating_thinker")["temperature"] == 0.0
    assert Sampling().phase_seed("solver") is None
    with pytest.raises(ValueError, match="unknown generating phase 'solo'"):
        s.generate_kwargs("solo")


def test_collect_groups_takes_a_sampling_or_the_keywords_not_both(verifier):
    needs = {"solo", "ratings"}
    kw = dict(temperature=0.6, top_p=0.9, seed=4, thinker_max_new_tokens=5, solver_max_new_tokens=6,
              rating_max_new_tokens=7, rating_temperature=0.0)
    th, so = _team()
    loose = collect_groups(PROBLEMS, {T: th, S: so}, group_size=2, needs=needs, verifier=verifier, **kw)
    th2, so2 = _team()
    one = collect_groups(PROBLEMS, {T: th2, S: so2}, group_size=2, needs=needs, verifier=verifier,
                         sampling=Sampling(**kw))
    assert th.kwargs == th2.kwargs and so.kwargs == so2.kwargs
    assert [e.reward for g in loose for e in g.episodes] == [e.reward for g in one for e in g.episodes]
    # Thinker: its phase, then its ratings; Solver: joint + solo in one call, then its ratings
    assert th.kwargs == [{"max_new_tokens": 5, "temperature": 0.6, "top_p": 0.9, "seed": 4},
                         {"max_new_tokens": 7, "temperature": 0.0, "top_p": 0.9, "seed": 6}]
    assert so.kwargs == [{"max_new_tokens": 6, "temperature": 0.6, "top_p": 0.9, "seed": 5},
                         {"max_new_tokens": 7, "temperature": 0.0, "top_p": 0.9, "seed": 7}]
    with pytest.raises(TypeError, match="not both"):
        collect_groups(PROBLEMS, {T: th, S: so}, group_size=2, needs=(), verifier=verifier, sampling=Sampling(), seed=1)
    with pytest.raises(TypeError, match="sampling must be a Sampling, got dict"):
        collect_groups(PROBLEMS, {T: th, S: so}, group_size=2, needs=(), verifier=verifier, sampling={"seed": 1})
    with pytest.raises(ValueError, match="top_p=2 is invalid"):
        collect_groups(PROBLEMS, {T: th, S: so}, group_size=2, needs=(), verifier=verifier, top_p=2)


def test_the_same_tokens_from_a_sampling_and_from_the_keywords():
    import torch

    from agents import TransformersPolicy
    from agents.models import load_model
    from thinksolve_env import load_problems

    torch.set_num_threads(1)
    model, tok = load_model("tiny", seed=0)
    policy = TransformersPolicy(model, tok, seed=0)
    problems = load_problems("arith:n=10,difficulty=1,split=train")[:2]
    r = RolloutConfig(thinker_max_new_tokens=8, solver_max_new_tokens=8, rating_max_new_tokens=6, temperature=0.9)

    def tokens(**sampling):
        with MathVerifier(workers=0) as v:
            groups = collect_groups(problems, {T: policy, S: policy}, group_size=2, needs={"solo", "ratings"},
                                    verifier=v, solo_samples=1, **sampling)
        return [(e.completions[T].token_ids, e.completions[S].token_ids, e.rating_completions[S].token_ids)
                for g in groups for e in g.episodes] + [c.token_ids for g in groups for c in g.solo_completions]

    by_keywords = tokens(seed=123, temperature=0.9, top_p=1.0, thinker_max_new_tokens=8, solver_max_new_tokens=8,
                         rating_max_new_tokens=6, rating_temperature=None)
    assert tokens(sampling=r.sampling(123)) == by_keywords


def test_rollout_config_gives_the_step_sampling_and_its_checks_name_the_field():
    r = preset("tiny-brief").rollout
    s = r.sampling(seed=42)
    assert s == Sampling(temperature=r.temperature, top_p=r.top_p, seed=42,
                         thinker_max_new_tokens=r.thinker_max_new_tokens, solver_max_new_tokens=r.solver_max_new_tokens,
                         rating_max_new_tokens=r.rating_max_new_tokens, rating_temperature=r.rating_temperature)
    assert s.generate_kwargs("rating_thinker")["temperature"] == 0.0  # tiny-brief rates greedily
    for override, msg in [("rollout.top_p=0", r"rollout.top_p=0.0 is invalid: allowed \(0, 1\]"),
                          ("rollout.solver_max_new_tokens=0",
                           "rollout.solver_max_new_tokens=0 is invalid: allowed an integer >= 1"),
                          ("rollout.rating_temperature=-2", "rollout.rating_temperature=-2 is invalid: allowed >= 0")]:
        with pytest.raises(ConfigError, match=msg):
            apply_overrides(preset("tiny-arith"), [override]).validate()


def test_evaluation_samples_with_the_runs_settings_and_its_own_temperature_and_seed(verifier):
    th, so = _team()
    rollout = RolloutConfig(thinker_max_new_tokens=11, solver_max_new_tokens=12, top_p=0.95, temperature=0.7,
                            prompts="compact")
    evaluate({T: th, S: so}, PROBLEMS, samples=1, temperature=0.0, seed=5, rollout=rollout, chunk=1, verifier=verifier)
    assert th.kwargs == [{"max_new_tokens": 11, "temperature": 0.0, "top_p": 0.95, "seed": 5},
                         {"max_new_tokens": 11, "temperature": 0.0, "top_p": 0.95, "seed": 6}]  # chunk j: seed + j
    assert so.kwargs[0] == {"max_new_tokens": 12, "temperature": 0.0, "top_p": 0.95, "seed": 6}
    th, so = _team()
    evaluate({T: th, S: so}, PROBLEMS, samples=1, temperature=1.0, seed=0, verifier=verifier)  # no run: the defaults
    assert th.kwargs == [Sampling(seed=0).generate_kwargs("thinker")]
