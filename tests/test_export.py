"""``thinksolve export``: each role of a run as a Hugging Face folder that ``from_pretrained``
loads, giving the trained policy's log-probs (LoRA adapters merged in)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from agents import TransformersPolicy
from algorithms import credit
from algorithms.cli import main
from algorithms.config import apply_overrides, preset
from algorithms.train import Trainer

PROMPT = [{"role": "user", "content": "What is 3+4?"}]


def _parity(groups):  # rewards a random model can move (the verifier would give -1 everywhere)
    share = lambda role: np.array([np.mean([t % 2 for t in e.completions[role].token_ids] or [0])  # noqa: E731
                                   for g in groups for e in g.episodes])
    return {"thinker_0": share("thinker_0"), "solver_0": 1.0 - share("solver_0")}


@pytest.fixture(autouse=True)
def parity_credit(credit_registry_restored):
    credit.register("export_parity")(_parity)


def _trained(out, sharing):
    cfg = apply_overrides(preset("tiny-arith"), [
        "warm_start.enabled=false", "train_data=arith:n=50,difficulty=1", "rollout.problems_per_step=2",
        "rollout.group_size=2", "rollout.solo_samples=1", "rollout.thinker_max_new_tokens=6",
        "rollout.solver_max_new_tokens=6", "optim.lr=1e-2", "steps=1", "credit.name=export_parity", "tensorboard=false",
        "schedule.mode=simultaneous", f"model.sharing={sharing}", "model.lora_rank=4",
        "eval_data=arith:n=4,difficulty=1,split=test", "eval_samples=1", f"out={out}"])  # (a small last evaluation)
    t = Trainer(cfg, log=None)
    t.train()
    return t


@pytest.mark.parametrize("sharing", ["separate", "lora"])
def test_exported_roles_load_with_from_pretrained_and_give_the_trained_log_probs(tmp_path, sharing, capsys):
    with _trained(tmp_path / "run", sharing) as t:
        assert main(["export", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "hf")]) == 0
        team = json.loads((tmp_path / "hf" / "team.json").read_text())
        assert team["step"] == 1 and team["sharing"] == sharing
        for role, policy in t.policies.items():
            folder = tmp_path / "hf" / role
            assert (folder / "model.safetensors").exists() and (folder / "tokenizer_config.json").exists()
            model = AutoModelForCausalLM.from_pretrained(folder)  # a plain model: adapters merged in
            assert not any("lora" in n for n, _ in model.named_parameters())
            exported = TransformersPolicy.from_pretrained(str(folder), seed=0)
            sample = policy.generate([PROMPT], max_new_tokens=8, temperature=1.0, seed=1)
            with torch.no_grad():
                mine = policy.logprobs([PROMPT], sample)[0]
                theirs = exported.logprobs([PROMPT], sample)[0]
            torch.testing.assert_close(theirs, mine, rtol=1e-4, atol=1e-5)
    if sharing == "lora":  # the adapters really were trained, so merging them mattered
        base = TransformersPolicy.from_pretrained("tiny", seed=0)
        with torch.no_grad():
            assert not torch.allclose(base.logprobs([PROMPT], sample)[0], theirs, atol=1e-4)


def test_export_refuses_what_is_not_a_run_and_a_folder_in_use(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["export", "--model", str(tmp_path / "empty"), "--out", str(tmp_path / "hf")]) != 0
    assert "not a run directory" in capsys.readouterr().err
    with _trained(tmp_path / "run", "separate"):
        pass
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    assert main(["export", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "used")]) != 0
    assert "not an empty directory" in capsys.readouterr().err
    assert (tmp_path / "used" / "keep.txt").read_text() == "mine"
