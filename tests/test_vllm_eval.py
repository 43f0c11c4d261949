"""``thinksolve eval --engine vllm``: evaluation generating on vLLM (the vLLM virtualenv), and the
error where vLLM is not installed (the main virtualenv)."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine in-process under pytest

import pytest

from agents.vllm_policy import VLLM_MISSING, vllm_available

DATA = "arith:n=6,difficulty=1"


@pytest.mark.skipif(vllm_available(), reason="checks the message where vLLM is missing")
def test_engine_vllm_without_vllm_is_a_clear_error(capsys):
    from algorithms.cli import main

    assert main(["eval", "--model", "tiny", "--data", DATA, "--engine", "vllm", "--max-new-tokens", "4"]) == 2
    err = capsys.readouterr().err
    assert "--engine vllm" in err and "vllm_venv.sh" in err


def test_unknown_engine_is_refused():
    from algorithms.team import rollout_team

    with pytest.raises(ValueError, match="engine must be one of"):
        rollout_team({}, "tensorrt")


@pytest.mark.vllm
@pytest.mark.skipif(not vllm_available(), reason=VLLM_MISSING)
def test_greedy_team_on_vllm_equals_the_transformers_team():
    from agents import TransformersPolicy
    from algorithms.rollout import collect_groups
    from algorithms.team import rollout_team
    from thinksolve_env import load_problems

    policy = TransformersPolicy.from_pretrained("tiny", seed=0)
    team = {"thinker_0": policy, "solver_0": policy}
    engines = rollout_team(team, "vllm", max_model_len=256)
    try:
        assert engines["thinker_0"] is engines["solver_0"]  # one engine per distinct policy
        problems = load_problems(DATA)
        kw = dict(group_size=1, needs={"solo"}, solo_samples=1, temperature=0.0, thinker_max_new_tokens=10,
                  solver_max_new_tokens=10)
        a = collect_groups(problems, engines, **kw)
        b = collect_groups(problems, team, **kw)
    finally:
        for e in {id(e): e for e in engines.values()}.values():
            e.close()
    for ga, gb in zip(a, b):
        for ea, eb in zip(ga.episodes, gb.episodes):
            for role in ("thinker_0", "solver_0"):
                assert ea.completions[role].token_ids == eb.completions[role].token_ids
        assert [c.token_ids for c in ga.solo_completions] == [c.token_ids for c in gb.solo_completions]


@pytest.mark.vllm
@pytest.mark.skipif(not vllm_available(), reason=VLLM_MISSING)
def test_eval_command_with_engine_vllm(tmp_path, capsys):
    from algorithms.cli import main

    out = tmp_path / "evals.jsonl"
    args = ["eval", "--model", "tiny", "--data", DATA, "--greedy", "--max-new-tokens", "8", "--out", str(out)]
    assert main([*args, "--engine", "vllm"]) == 0
    assert "on vllm" in capsys.readouterr().out
    on_vllm = json.loads(out.read_text().splitlines()[-1])["results"][DATA]
    assert main(args) == 0
    on_hf = json.loads(out.read_text().splitlines()[-1])["results"][DATA]
    assert len(out.read_text().splitlines()) == 2  # appended, not replaced
    assert on_vllm["problems"] == on_hf["problems"] == 6
    for key in ("joint_accuracy", "solo_accuracy", "help_rate", "hurt_rate"):
        assert on_vllm[key] == on_hf[key], key


@pytest.mark.vllm
@pytest.mark.skipif(not vllm_available(), reason=VLLM_MISSING)
def test_an_exported_role_serves_in_vllm_as_it_was_trained(tmp_path):
    from agents import VLLMPolicy
    from algorithms.cli import main
    from algorithms.config import apply_overrides, preset
    from algorithms.team import load_team
    from algorithms.train import Trainer

    cfg = apply_overrides(preset("tiny-arith"), [
        "warm_start.enabled=false", "train_data=arith:n=20,difficulty=1", "rollout.problems_per_step=2",
        "rollout.group_size=2", "rollout.solo_samples=1", "rollout.thinker_max_new_tokens=6",
        "rollout.solver_max_new_tokens=6", "steps=1", "tensorboard=false", f"out={tmp_path / 'run'}"])
    with Trainer(cfg, log=None) as t:
        t.train()
    assert main(["export", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "hf")]) == 0
    team, _ = load_team(str(tmp_path / "run"))
    probe = [[{"role": "user", "content": "What is 2 + 5?"}], [{"role": "user", "content": "7 * 3?"}]]
    engine = VLLMPolicy(str(tmp_path / "hf" / "solver_0"), seed=0, max_model_len=256)
    try:
        got = engine.generate(probe, max_new_tokens=10, temperature=0)
    finally:
        engine.close()
    want = team["solver_0"].generate(probe, max_new_tokens=10, temperature=0)
    assert [c.token_ids for c in got] == [c.token_ids for c in want]
