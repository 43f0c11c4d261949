"""The micro-batched update of one role (algorithms.train.update) on the real tiny transformer:
accumulating micro-batches gives the full batch's gradient, for token- and sequence-level losses
and every aggregation mode; a step moves the weights and reports its metrics."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from agents import Completion, TransformersPolicy, build_tiny_model
from algorithms import losses
from algorithms.config import OptimConfig
from algorithms.train import accumulate_gradients, micro_batches, policy_update

PROMPTS = [[{"role": "user", "content": f"What is {a} + {b}?"}]
           for a, b in ((1, 2), (13, 4), (7, 7), (250, 31), (9, 0))]


@pytest.fixture(scope="module")
def batch():
    """A tiny policy and five sampled completions of different lengths, with their old
    log-probs nudged so that ratios differ from 1 and some tokens clip."""
    # a smaller tiny model: the property under test does not depend on its size
    model, tok = build_tiny_model(seed=3, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                  num_key_value_heads=1, head_dim=16)
    policy = TransformersPolicy(model, tok, seed=3)
    out = policy.generate(PROMPTS, max_new_tokens=12, temperature=1.0, seed=11)
    gen = torch.Generator().manual_seed(0)
    completions = []
    for c, n in zip(out, (12, 3, 8, 1, 6)):  # cut to different lengths (a random model never stops early)
        noise = (torch.rand(n, generator=gen) - 0.5) * 0.6
        completions.append(dataclasses.replace(c, token_ids=c.token_ids[:n],
                                               logprobs=[float(x) for x in torch.tensor(c.logprobs[:n]) + noise]))
    assert len({len(c.token_ids) for c in completions}) > 1, "lengths should differ for the aggregation modes to differ"
    advantages = torch.tensor([1.0, -0.5, 0.25, -1.0, 0.75])
    return policy, completions, advantages


def _grads(policy, completions, advantages, optim, batches=None) -> torch.Tensor:
    policy.model.zero_grad(set_to_none=True)
    policy.train()
    accumulate_gradients(policy, PROMPTS, completions, advantages, optim, batches=batches)
    policy.eval()
    return torch.cat([p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel())
                      for p in policy.model.parameters()])


@pytest.mark.parametrize("loss", ["grpo", "gspo"])
@pytest.mark.parametrize("agg", losses.AGG_MODES)
def test_micro_batches_accumulate_the_full_batch_gradient(batch, loss, agg):
    policy, completions, advantages = batch
    clip = dict(clip_low=0.2, clip_high=0.2) if loss == "grpo" else dict(clip_low=0.05, clip_high=0.05)
    optim = OptimConfig(loss=loss, agg=agg, **clip)
    full = _grads(policy, completions, advantages, dataclasses.replace(optim, micro_batch_tokens=10**9))
    assert full.abs().sum() > 0
    tol = dict(rtol=1e-4, atol=1e-6 * float(full.abs().max()))  # float32 summation order, relative to the scale
    for split in ([[0], [1], [2], [3], [4]], [[0, 1], [2, 3, 4]], [[0, 1, 2, 3], [4]]):
        micro = _grads(policy, completions, advantages, optim, batches=split)
        torch.testing.assert_close(micro, full, **tol, msg=f"{loss}/{agg} split {split}")
    # and through the token budget, as the trainer splits
    lengths = [len(c.prompt_token_ids or []) + len(c.token_ids) for c in completions]
    budget = max(lengths) + 1
    assert len(micro_batches(lengths, budget)) > 1
    micro = _grads(policy, completions, advantages, dataclasses.replace(optim, micro_batch_tokens=budget))
    torch.testing.assert_close(micro, full, **tol)


def test_the_aggregation_modes_give_different_gradients(batch):
    """So the test above could fail: a wrong micro-batch weight for one mode would not be hidden
    by all modes being the same."""
    policy, completions, advantages = batch
    g = {agg: _grads(policy, completions, advantages, OptimConfig(loss="grpo", agg=agg, micro_batch_tokens=10**9))
         for agg in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")}
    assert not torch.allclose(g["token-mean"], g["seq-mean-token-mean"])
    assert not torch.allclose(g["seq-mean-token-mean"], g["seq-mean-token-sum"])


def test_policy_update_steps_the_optimizer_and_reports(batch):
    policy, completions, advantages = batch
    state = {k: v.clone() for k, v in policy.model.state_dict().items()}
    try:
        opt = torch.optim.AdamW(policy.parameters(), lr=1e-3)
        optim = OptimConfig(loss="grpo", agg="token-mean", clip_low=0.2, clip_high=0.2, lr=1e-3, ppo_epochs=2,
                            warmup_steps=3, micro_batch_tokens=40)
        m = policy_update(policy, opt, PROMPTS, completions, advantages, optim, optimizer_step=0)
        assert m["optimizer_steps"] == 2 and m["micro_batches"] > 1
        assert m["lr"] == pytest.approx(1e-3 * 2 / 4)  # linear warm-up: the second of 2 steps, 3 warm-up steps
        assert m["grad_norm"] > 0 and "loss" in m and "clip_frac" in m
        moved = sum(float((policy.model.state_dict()[k] - v).abs().sum()) for k, v in state.items())
        assert moved > 0
        assert not policy.model.training  # left in eval mode
    finally:
        policy.model.load_state_dict(state)


def test_completion_has_what_the_update_reads(batch):
    _, completions, _ = batch
    assert all(isinstance(c, Completion) and len(c.logprobs) == len(c.token_ids) for c in completions)
