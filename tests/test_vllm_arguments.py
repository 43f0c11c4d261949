"""The engine arguments VLLMPolicy adds (a pure function; runs without vLLM, in the main suite)."""

import pytest

from agents.vllm_policy import CPU_TOKEN_BUDGET, engine_arguments


def test_cpu_defaults_turn_chunked_prefill_off_and_fit_a_whole_prompt_in_one_step():
    kw, seeded = engine_arguments({}, max_model_len=8192, on_cpu=True)
    assert seeded
    assert kw == {"enable_prefix_caching": True, "block_size": 32, "enable_chunked_prefill": False,
                  "max_num_batched_tokens": 8192}
    kw, _ = engine_arguments({}, max_model_len=288, on_cpu=True)
    assert kw["max_num_batched_tokens"] == CPU_TOKEN_BUDGET == 4096


def test_explicit_arguments_win_and_a_budget_below_the_context_is_refused():
    kw, seeded = engine_arguments({"max_num_batched_tokens": 320, "block_size": 128, "max_num_seqs": 8},
                                  max_model_len=288, on_cpu=True)
    assert seeded and kw["max_num_batched_tokens"] == 320 and kw["block_size"] == 128 and kw["max_num_seqs"] == 8
    with pytest.raises(ValueError, match=r"max_num_batched_tokens=256 is smaller than max_model_len=288.*>= 288"):
        engine_arguments({"max_num_batched_tokens": 256}, max_model_len=288, on_cpu=True)


def test_forcing_chunked_prefill_on_cpu_drops_the_per_request_seeds():
    kw, seeded = engine_arguments({"enable_chunked_prefill": True, "max_num_batched_tokens": 64},
                                  max_model_len=288, on_cpu=True)
    assert not seeded and kw["enable_chunked_prefill"] is True and kw["max_num_batched_tokens"] == 64


def test_gpus_keep_vllms_scheduler_defaults():
    kw, seeded = engine_arguments({"gpu_memory_utilization": 0.3}, max_model_len=4096, on_cpu=False)
    assert seeded and kw == {"gpu_memory_utilization": 0.3, "enable_prefix_caching": True}
    kw, _ = engine_arguments({"enable_prefix_caching": False}, max_model_len=4096, on_cpu=False)
    assert kw["enable_prefix_caching"] is False
