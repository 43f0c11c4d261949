"""TransformersPolicy on the offline `tiny` model: seeds, exact log-probs, padding, EOS, save/load,
truncation, LoRA, bad input."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from agents import Completion, TrainablePolicy
from agents.models import build_tiny_model
from agents.transformers_policy import PromptTruncatedWarning, TransformersPolicy


def chat(user: str, system: str = "You are a math problem solver.") -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


# prompts of different lengths, so left padding matters
PROMPTS = [chat("What is 7 times 8?"), chat("Add 12 and 30." + " Think." * 7), chat("x"),
           chat("Compute 9 * 9, then 100 - 37.")]


@pytest.fixture(scope="module")
def policy():
    return TransformersPolicy.from_pretrained("tiny", seed=0)


def max_abs_diff(recomputed, completions) -> float:
    return max(
        (lp.detach() - torch.tensor(c.logprobs)).abs().max().item() for lp, c in zip(recomputed, completions) if len(c)
    )


def test_is_a_trainable_policy(policy):
    assert isinstance(policy, TrainablePolicy)
    params = list(policy.parameters())
    assert params and all(p.requires_grad for p in params)
    assert sum(p.numel() for p in params) == sum(p.numel() for p in policy.model.parameters())


def test_same_seed_same_batch_same_samples(policy):
    a = policy.generate(PROMPTS, max_new_tokens=12, temperature=1.0, seed=7)
    b = policy.generate(PROMPTS, max_new_tokens=12, temperature=1.0, seed=7)
    c = policy.generate(PROMPTS, max_new_tokens=12, temperature=1.0, seed=8)
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert [x.logprobs for x in a] == [x.logprobs for x in b]
    assert [x.token_ids for x in a] != [x.token_ids for x in c]
    for comp in a:
        assert isinstance(comp, Completion)
        assert 1 <= len(comp.token_ids) <= 12 and len(comp.logprobs) == len(comp.token_ids)
        assert comp.finish_reason in ("stop", "length")
        assert all(lp <= 0 for lp in comp.logprobs)


def test_policy_seed_gives_reproducible_stream():
    p1 = TransformersPolicy.from_pretrained("tiny", seed=3)
    p2 = TransformersPolicy.from_pretrained("tiny", seed=3)
    first1 = p1.generate(PROMPTS[:2], max_new_tokens=8)
    first2 = p2.generate(PROMPTS[:2], max_new_tokens=8)
    second1 = p1.generate(PROMPTS[:2], max_new_tokens=8)
    assert [c.token_ids for c in first1] == [c.token_ids for c in first2]
    assert [c.token_ids for c in first1] != [c.token_ids for c in second1]  # the stream moves on


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 0.9), (1.3, 0.5), (0.0, 1.0)])
def test_recomputed_logprobs_match_sampling_time(policy, temperature, top_p):
    comps = policy.generate(PROMPTS, max_new_tokens=10, temperature=temperature, top_p=top_p, seed=1)
    with torch.no_grad():
        for batch_size in (1, 3, 8):  # micro-batching must not change the values
            lps = policy.logprobs(PROMPTS, comps, batch_size=batch_size)
            assert [lp.shape[0] for lp in lps] == [len(c) for c in comps]
            assert max_abs_diff(lps, comps) < 1e-4
    if temperature not in (0.0, 1.0):
        # the stored quantity is log_softmax(logits / T): recomputing at T=1 gives other values
        with torch.no_grad():
            other = policy.logprobs(PROMPTS, comps, temperature=1.0)
        assert max_abs_diff(other, comps) > 1e-3


def test_logprobs_without_annotations_rebuild_the_prompt(policy):
    comps = policy.generate(PROMPTS, max_new_tokens=6, temperature=1.0, seed=4)
    plain = [Completion(c.text, list(c.token_ids), list(c.logprobs), c.finish_reason) for c in comps]
    with torch.no_grad():
        assert max_abs_diff(policy.logprobs(PROMPTS, plain), comps) < 1e-4


def test_batched_greedy_equals_one_by_one(policy):
    batched = policy.generate(PROMPTS, max_new_tokens=10, temperature=0)
    for prompt, comp in zip(PROMPTS, batched):
        alone = policy.generate([prompt], max_new_tokens=10, temperature=0)[0]
        assert alone.token_ids == comp.token_ids
        assert max(abs(a - b) for a, b in zip(alone.logprobs, comp.logprobs)) < 1e-4


def test_sampled_pad_token_is_not_masked(policy):
    pad = policy.pad_token_id
    tokens = [pad, policy.tokenizer.convert_tokens_to_ids("Ġthe"), pad, pad, 300]
    comps = [Completion("", tokens, [0.0] * len(tokens), "length"), Completion("", [301], [0.0], "length")]
    with torch.no_grad():
        got = policy.logprobs(PROMPTS[:2], comps)[0]
        ids = policy.encode_prompt(PROMPTS[0]) + tokens
        logits = policy.model(input_ids=torch.tensor([ids])).logits[0].float()  # no mask at all
        ref = torch.log_softmax(logits, -1)[len(ids) - len(tokens) - 1 : -1].gather(-1, torch.tensor(tokens)[:, None])
    assert torch.allclose(got, ref.squeeze(-1), atol=1e-4)


def test_gradients_teach_the_model_to_stop_at_eos():
    pol = TransformersPolicy.from_pretrained("tiny", seed=11)
    eos = pol.tokenizer.convert_tokens_to_ids("<|im_end|>")
    target_ids = pol.tokenizer.encode("56", add_special_tokens=False) + [eos]
    target = [Completion("56", target_ids, [0.0] * len(target_ids), "stop")]
    before = pol.generate([PROMPTS[0]], max_new_tokens=6, temperature=0)[0]
    assert before.finish_reason == "length"  # a random model does not stop by itself
    opt = torch.optim.Adam(pol.parameters(), lr=1e-2)
    pol.train()
    for _ in range(20):
        loss = -pol.logprobs([PROMPTS[0]], target)[0].sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    pol.eval()
    after = pol.generate([PROMPTS[0]], max_new_tokens=6, temperature=0)[0]
    assert after.token_ids == target_ids
    assert after.finish_reason == "stop" and after.text == "56"
    # the same model in a batch: the stopped row ends at EOS while the others run to the limit
    batch = pol.generate([PROMPTS[0], PROMPTS[1]], max_new_tokens=6, temperature=0)
    assert batch[0].token_ids == target_ids
    assert len(batch[1].token_ids) == 6 or batch[1].finish_reason == "stop"


def test_save_load_round_trip(policy, tmp_path):
    policy.save_pretrained(tmp_path / "saved")
    loaded = TransformersPolicy.from_pretrained(str(tmp_path / "saved"))
    a = policy.generate(PROMPTS, max_new_tokens=8, temperature=0.9, seed=5)
    b = loaded.generate(PROMPTS, max_new_tokens=8, temperature=0.9, seed=5)
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    with torch.no_grad():
        assert max_abs_diff(loaded.logprobs(PROMPTS, a), a) < 1e-5
    for (n1, p1), (n2, p2) in zip(policy.model.state_dict().items(), loaded.model.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)


def test_long_prompt_is_cut_from_the_left_of_the_user_message():
    model, tok = build_tiny_model(0)
    pol = TransformersPolicy(model, tok, max_context=96, seed=0)
    system = "You are a math problem solver."
    long = chat("START " + "one two three four five " * 60 + "What is 7 times 8? END", system=system)
    with pytest.warns(PromptTruncatedWarning, match="cut to"):
        comp = pol.generate([long, PROMPTS[2]], max_new_tokens=16, temperature=1.0, seed=0)
    prompt_ids = comp[0].prompt_token_ids
    assert len(prompt_ids) + 16 <= 96
    text = tok.decode(prompt_ids)
    assert system in text and "END" in text and "START" not in text  # left of the user text went
    assert text.endswith("<|im_start|>assistant\n")
    with torch.no_grad():
        assert max_abs_diff(pol.logprobs([long, PROMPTS[2]], comp), comp) < 1e-4
    # asking for more new tokens than the context holds still answers, cut by the context
    with pytest.warns(PromptTruncatedWarning):
        out = pol.generate([long], max_new_tokens=500, temperature=1.0, seed=0)[0]
    assert len(out.prompt_token_ids) + len(out.token_ids) <= 96


def test_bad_input_errors(policy):
    with pytest.raises(ValueError, match="empty"):
        policy.generate([], max_new_tokens=4)
    with pytest.raises(ValueError, match="max_new_tokens"):
        policy.generate(PROMPTS, max_new_tokens=0)
    with pytest.raises(TypeError, match="role"):
        policy.generate([["not a message"]], max_new_tokens=4)
    with pytest.raises(ValueError, match="2 prompts but 1"):
        policy.logprobs(PROMPTS[:2], [Completion("a", [5], [0.0])])
    model, tok = build_tiny_model(0)
    tok.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        TransformersPolicy(model, tok)


def test_thinker_and_solver_can_share_one_model(policy):
    solver = TransformersPolicy(policy.model, policy.tokenizer, seed=1, name="solver")
    assert {id(p) for p in solver.parameters()} == {id(p) for p in policy.parameters()}
    thought = policy.generate([PROMPTS[0]], max_new_tokens=6, seed=0)[0].text
    answer = solver.generate([chat(f"Problem: 7*8. Thought: {thought}")], max_new_tokens=6, seed=0)[0]
    assert len(answer.token_ids) >= 1


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for ckpt in (False, True):
        pol = TransformersPolicy.from_pretrained("tiny", seed=2, gradient_checkpointing=ckpt)
        comps = pol.generate(PROMPTS[:2], max_new_tokens=5, seed=0)
        pol.train()
        loss = sum(lp.sum() for lp in pol.logprobs(PROMPTS[:2], comps))
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in pol.parameters()]))
    assert getattr(pol.model, "is_activation_checkpointing", None) or pol.model.is_gradient_checkpointing
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


def test_dtype_option():
    pol = TransformersPolicy.from_pretrained("tiny", seed=0, dtype="bfloat16")
    assert pol.dtype == torch.bfloat16
    comps = pol.generate(PROMPTS[:2], max_new_tokens=4, seed=0)
    with torch.no_grad():
        # bfloat16 rounds differently with and without the KV cache: agreement is ~1e-3, not 1e-4
        assert max_abs_diff(pol.logprobs(PROMPTS[:2], comps), comps) < 2e-2
    with pytest.raises(ValueError, match="dtype"):
        TransformersPolicy.from_pretrained("tiny", dtype="float7")


def test_lora_trains_only_adapters_and_merges(tmp_path):
    pytest.importorskip("peft", reason="LoRA needs peft: pip install peft")
    pol = TransformersPolicy.from_pretrained("tiny", seed=0, lora={"r": 4, "lora_alpha": 8})
    trainable = dict(pol.named_parameters())
    assert trainable and all("lora_" in n for n in trainable)
    total = sum(p.numel() for p in pol.model.parameters())
    assert sum(p.numel() for p in trainable.values()) < total / 2
    comps = pol.generate(PROMPTS[:2], max_new_tokens=6, temperature=1.0, seed=0)
    with torch.no_grad():
        assert max_abs_diff(pol.logprobs(PROMPTS[:2], comps), comps) < 1e-4
    opt = torch.optim.SGD(pol.parameters(), lr=0.5)
    pol.train()
    for _ in range(3):
        loss = -sum(lp.sum() for lp in pol.logprobs(PROMPTS[:2], comps))
        opt.zero_grad()
        loss.backward()
        opt.step()
    pol.eval()
    with torch.no_grad():
        trained = pol.logprobs(PROMPTS[:2], comps)
    assert max_abs_diff(trained, comps) > 1e-3  # the adapters changed the model
    merged = pol.merged_state_dict()
    plain_names = set(build_tiny_model(0)[0].state_dict())
    assert set(merged) == plain_names
    pol.save_pretrained(tmp_path / "merged")
    reloaded = TransformersPolicy.from_pretrained(str(tmp_path / "merged"))
    with torch.no_grad():
        again = reloaded.logprobs(PROMPTS[:2], comps)
    for a, b in zip(trained, again):
        assert torch.allclose(a, b, atol=1e-4)
