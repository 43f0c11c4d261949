"""A trainable text policy over any Hugging Face causal LM with a chat template.

Sampling is a hand-written loop over the model's forward pass with a KV cache: prompts are
rendered with the tokenizer's chat template, left-padded into one batch, and decoded token by
token with a ``torch.Generator`` (so the same seed and the same batch give the same samples).
Rows that have stopped are dropped from the batch (and from the cache) as they finish.
Identical prompts in one batch (a group's n copies of the Thinker prompt, the K Solver prompts
of one thought in a tree rollout) are prefilled once and their KV cache is copied to each row
(``share_prefill=True``, the default; ``prefill_rows`` counts the rows actually prefilled).
Distinct prompts that begin alike (a problem's rating prompts: system text, problem, often the
start of the thought) share their common prefix's prefill too (``share_prefix=True``, the
default): the prompts are sorted, cut into runs whose common prefix saves the most prefill, each
run's prefix is prefilled once, its cache is copied to the run's rows and only the rest of each
prompt is prefilled on top (the padding between the two parts is masked; positions continue
from the prefix). It is used when it saves at least a quarter of the prompt tokens;
``prefill_tokens`` counts the prompt tokens actually run through the model. The result equals a
whole-prompt prefill up to floating-point rounding.

Early stop: ``generate(..., stop=fn)`` ends a row as soon as ``fn(text so far)`` is true
(``finish_reason="stop"``, the text kept whole). With ``fn.trigger`` (a string of characters)
``fn`` is only asked after a token that writes one of them.

Log-probs: each :class:`~agents.base.Completion` carries, per sampled token, the log-prob of
that token under the *model's* distribution at the sampling temperature, ``log_softmax(logits /
T)``, with no top-p truncation (the convention of TRL and verl: the quantity a policy-gradient
loss differentiates). Greedy decoding (``temperature=0``) records ``T = 1``.
:meth:`TransformersPolicy.logprobs` recomputes exactly that quantity under the current weights,
reading the temperature and the prompt token ids that ``generate`` attached to each completion
(``completion.temperature``, ``completion.prompt_token_ids``), so the two agree within float
error (1e-4 in float32; about 1e-3 in bfloat16, where the cached and uncached forward passes
round differently) while the weights are unchanged.

Prompts longer than the context (``max_context``, default ``config.max_position_embeddings``)
minus ``max_new_tokens`` are cut from the left of the last user message, with a warning.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .base import Completion, Messages, validate_generate_args
from .models import ensure_chat_template, load_model

if TYPE_CHECKING:  # only named in annotations: transformers and peft load on first use
    import peft
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "TransformersPolicy",
    "PromptTruncatedWarning",
    "annotate",
    "encode_chat",
    "render_chat",
    "prompt_budget",
    "lora_config",
]


class PromptTruncatedWarning(UserWarning):
    """A prompt did not fit in the model's context and was cut from the left."""


def _as_dtype(dtype):
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        return getattr(torch, dtype)
    raise ValueError(f"unknown dtype {dtype!r}; use e.g. 'float32', 'bfloat16' or a torch.dtype")


def lora_config(lora: bool | dict[str, Any] | peft.LoraConfig) -> peft.LoraConfig:
    """A ``peft.LoraConfig`` from ``True`` (rank 8, alpha 16, no dropout, every linear layer), a
    dict of ``LoraConfig`` fields over those defaults, or a ``LoraConfig`` (returned as is)."""
    try:
        import peft  # noqa: PLC0415 (peft is optional)
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ModuleNotFoundError(
            "LoRA needs the package 'peft', which is not installed; fix: pip install peft"
        ) from e
    if isinstance(lora, peft.LoraConfig):
        return lora
    opts = dict(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    if isinstance(lora, dict):
        opts.update(lora)
    elif lora is not True:
        raise TypeError(
            f"lora must be True, a dict of LoraConfig fields or a peft.LoraConfig, got {type(lora).__name__}"
        )
    return peft.LoraConfig(**opts)


class TransformersPolicy:
    """A :class:`~agents.base.TrainablePolicy` backed by a transformers causal LM.

    Args:
        model: a ``PreTrainedModel`` for causal LM (or a peft model wrapping one).
        tokenizer: its tokenizer; it must have a chat template.
        seed: seeds the policy's own generator, used when ``generate`` gets no ``seed``.
        device / dtype: where and in which precision the model runs (default: as given).
        max_context: context length in tokens (default ``config.max_position_embeddings``).
        generation_batch_size: prompts decoded together; larger batches are split.
        logprob_batch_size: sequences per forward pass in :meth:`logprobs`.
        gradient_checkpointing: trade compute for memory in training forward passes.
        lora: ``True``, a dict of ``peft.LoraConfig`` fields or a ``LoraConfig``: wrap the model
            with LoRA adapters (only they are trainable).
        name: a label for logs.
        share_prefill / share_prefix: prefill identical prompts once / a common prompt prefix once
            (see the module docstring).

    Two policies may share one model and tokenizer (Thinker and Solver as one network), or use
    different models with different tokenizers: they only exchange text.
    """

    def __init__(
        self,
        model: PreTrainedModel | peft.PeftModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        seed: int | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_context: int | None = None,
        generation_batch_size: int = 64,
        logprob_batch_size: int = 8,
        gradient_checkpointing: bool = False,
        lora: bool | dict[str, Any] | peft.LoraConfig | None = None,
        name: str | None = None,
        share_prefill: bool = True,
        share_prefix: bool = True,
    ) -> None:
        self.name = name or getattr(getattr(model, "config", None), "_name_or_path", None) or type(model).__name__
        ensure_chat_template(tokenizer, str(self.name))
        dtype = _as_dtype(dtype)
        if dtype is not None:
            model = model.to(dtype)
        if device is not None:
            model = model.to(device)
        if gradient_checkpointing:
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
                model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if hasattr(model, "enable_input_require_grads") and lora:
                model.enable_input_require_grads()
        if lora:
            import peft  # noqa: PLC0415 (peft is optional)

            model = peft.get_peft_model(model, lora_config(lora))
        self.model = model
        self.tokenizer = tokenizer
        #: the device forward passes run on, when it differs from where the weights are stored
        self.compute_device: torch.device | None = None
        config = self._base_model().config
        self.max_context = int(
            max_context or getattr(config, "max_position_embeddings", None) or tokenizer.model_max_length
        )
        if generation_batch_size < 1 or logprob_batch_size < 1:
            raise ValueError("generation_batch_size and logprob_batch_size must be >= 1")
        self.generation_batch_size = int(generation_batch_size)
        self.logprob_batch_size = int(logprob_batch_size)
        self.eos_token_ids = self._eos_ids()
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else min(self.eos_token_ids))
        self.seed = seed
        self.share_prefill = bool(share_prefill)
        self.share_prefix = bool(share_prefix)
        #: prompt rows prefilled so far (identical prompts in one batch count once when shared)
        self.prefill_rows = 0
        #: prompt tokens run through the model so far (a shared prefix counts once)
        self.prefill_tokens = 0
        self._trigger_masks: dict[str, torch.Tensor] = {}
        # transformers renamed forward's `past_key_values` to `cache` (5.2x); use what it takes
        params = inspect.signature(self._base_model().forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(int(seed) if seed is not None else int(torch.randint(0, 2**62, (1,)).item()))

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        seed: int | None = None,
        *,
        dtype: str | torch.dtype | None = None,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> TransformersPolicy:
        """Load a built-in name (``tiny``, ``smollm2-135m``), a local directory or a hub id.

        ``seed`` fixes the ``tiny`` model's weights (default 0) and seeds the policy's sampler.
        Other keyword arguments go to :class:`TransformersPolicy`.
        """
        model, tokenizer = load_model(name_or_path, seed=seed or 0, dtype=_as_dtype(dtype), device=device)
        kwargs.setdefault("name", str(name_or_path))
        return cls(model, tokenizer, seed=seed, **kwargs)

    def save_pretrained(self, path: str | Path) -> Path:
        """Write the model (LoRA adapters merged in) and tokenizer to ``path``; load it back with
        :meth:`from_pretrained`."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        base = self._base_model()
        if self.is_peft:
            # transformers loads on first use, so `import agents.transformers_policy` stays light
            from transformers import AutoModelForCausalLM  # noqa: PLC0415

            with torch.device("meta"):
                plain = AutoModelForCausalLM.from_config(base.config, dtype=base.dtype)
            plain.load_state_dict(self.merged_state_dict(), strict=False, assign=True)
            plain.tie_weights()
            plain.generation_config = base.generation_config
            plain.save_pretrained(path)
        else:
            base.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        return path

    # ---------------------------------------------------------------- parameters

    @property
    def is_peft(self) -> bool:
        return hasattr(self.model, "peft_config")

    def _base_model(self):
        return self.model.get_base_model() if self.is_peft else self.model

    @property
    def device(self) -> torch.device:
        """Where inputs go: ``compute_device`` when set (e.g. a model whose weights wait in CPU
        memory and are brought to the GPU layer by layer), else the weights' device."""
        return self.compute_device or next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        """The trainable parameters (all weights, or only the LoRA adapters)."""
        return (p for p in self.model.parameters() if p.requires_grad)

    def named_parameters(self) -> Iterator[tuple[str, torch.nn.Parameter]]:
        return ((n, p) for n, p in self.model.named_parameters() if p.requires_grad)

    def train(self, mode: bool = True) -> TransformersPolicy:
        self.model.train(mode)
        return self

    def eval(self) -> TransformersPolicy:
        return self.train(False)

    @torch.no_grad()
    def merged_state_dict(self) -> dict[str, torch.Tensor]:
        """The base model's weights with any LoRA adapters merged in, under the plain model's
        parameter names (what an inference engine loads)."""
        if not self.is_peft:
            return {k: v.detach() for k, v in self.model.state_dict().items()}
        self.model.merge_adapter()
        try:
            out = {}
            for k, v in self._base_model().state_dict().items():
                if "lora_" in k:
                    continue
                out[k.replace(".base_layer.", ".")] = v.detach().clone()
            return out
        finally:
            self.model.unmerge_adapter()

    # ---------------------------------------------------------------- prompts

    def _eos_ids(self) -> list[int]:
        ids: set[int] = set()
        gen = getattr(self._base_model(), "generation_config", None)
        for source in (getattr(gen, "eos_token_id", None), self.tokenizer.eos_token_id):
            if source is None:
                continue
            ids.update(int(i) for i in (source if isinstance(source, (list, tuple)) else [source]))
        if not ids:
            raise ValueError(f"{self.name}: neither the tokenizer nor the generation config names an EOS token")
        return sorted(ids)

    def encode_prompt(self, messages: Messages, budget: int | None = None) -> list[int]:
        """Chat-template token ids of ``messages``, cut to at most ``budget`` tokens (see
        :func:`encode_chat`)."""
        return encode_chat(self.tokenizer, messages, self.max_context - 1 if budget is None else budget,
                           max_context=self.max_context, name=str(self.name))

    def _budget(self, max_new_tokens: int) -> int:
        return prompt_budget(self.max_context, max_new_tokens)

    # ---------------------------------------------------------------- sampling

    #: ``generate`` takes ``stop=`` (a predicate on the text so far that ends a row early)
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
        """Sample one completion per chat prompt (see the module docstring for log-probs and
        ``stop``)."""
        validate_generate_args(prompts, max_new_tokens, temperature, top_p)
        if stop is not None and not callable(stop):
            raise TypeError(f"stop must be a callable text -> bool, got {type(stop).__name__}")
        if seed is not None:
            generator = torch.Generator(device=self.device)
            generator.manual_seed(int(seed))
        else:
            if self._generator.device != self.device:  # the model moved (e.g. sharded onto a GPU): so does the stream
                moved = torch.Generator(device=self.device)
                moved.manual_seed(int(torch.randint(0, 2**62, (1,), generator=self._generator)))
                self._generator = moved
            generator = self._generator
        budget = self._budget(max_new_tokens)
        encoded = [self.encode_prompt(p, budget) for p in prompts]
        out: list[Completion] = []
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(encoded), self.generation_batch_size):
                chunk = encoded[start : start + self.generation_batch_size]
                out.extend(self._sample(chunk, max_new_tokens, float(temperature), float(top_p), generator, stop))
        finally:
            self.model.train(was_training)
        return out

    def _pick(self, logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator):
        """Next tokens and their log-probs under ``log_softmax(logits / T)`` (T = 1 if greedy)."""
        logits = logits.float()
        if temperature == 0:
            tokens = logits.argmax(dim=-1)
            chosen = logits.gather(-1, tokens[:, None]).squeeze(-1)
            return tokens, chosen - torch.logsumexp(logits, dim=-1)
        else:
            logp = torch.log_softmax(logits / temperature, dim=-1)
            if top_p < 1.0:
                sorted_logp, order = logp.sort(dim=-1, descending=True)
                probs = sorted_logp.exp()
                # keep the smallest prefix whose mass reaches top_p (the first token always stays)
                drop = (probs.cumsum(dim=-1) - probs) >= top_p
                probs = probs.masked_fill(drop, 0.0)
                tokens = order.gather(-1, torch.multinomial(probs, 1, generator=generator)).squeeze(-1)
            else:
                tokens = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
        return tokens, logp.gather(-1, tokens[:, None]).squeeze(-1)

    def _trigger_mask(self, chars: str) -> torch.Tensor:
        """Which token ids decode to text holding one of ``chars`` (cached per policy)."""
        if chars not in self._trigger_masks:
            vocab = max(len(self.tokenizer), int(self._base_model().config.vocab_size))
            pieces = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
            hit = [any(ch in piece for ch in chars) for piece in pieces] + [False] * (vocab - len(pieces))
            self._trigger_masks[chars] = torch.tensor(hit, dtype=torch.bool, device=self.device)
        return self._trigger_masks[chars]

    def _prefill(self, unique: list[list[int]], width: int, cache) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the distinct prompts through the model into ``cache``: the last position's logits,
        the attention mask and each row's next position."""
        device = self.device
        runs = _prefix_runs(unique) if self.share_prefix and len(unique) > 1 else None
        if runs is None:
            u = len(unique)
            input_ids = torch.full((u, width), self.pad_token_id, dtype=torch.long, device=device)
            mask = torch.zeros((u, width), dtype=torch.long, device=device)
            for i, ids in enumerate(unique):
                input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                mask[i, width - len(ids) :] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                             use_cache=True, logits_to_keep=1, **{self._cache_kw: cache})
            self.prefill_tokens += sum(map(len, unique))
            return out.logits[:, -1, :], mask, positions[:, -1] + 1
        order, run_of, prefix_len = runs  # rows in sorted order, each row's run, each run's prefix length
        prefixes: list[list[int]] = []
        for k, r in enumerate(run_of):  # runs are numbered in sorted order: each run's first prompt
            if r == len(prefixes):
                prefixes.append(unique[order[k]][: prefix_len[r]])
        wp = max(prefix_len)
        pre_ids = torch.full((len(prefixes), wp), self.pad_token_id, dtype=torch.long, device=device)
        pre_mask = torch.zeros((len(prefixes), wp), dtype=torch.long, device=device)
        for j, ids in enumerate(prefixes):
            pre_ids[j, wp - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            pre_mask[j, wp - len(ids) :] = 1
        self.model(input_ids=pre_ids, attention_mask=pre_mask, position_ids=(pre_mask.cumsum(-1) - 1).clamp(min=0),
                   use_cache=True, logits_to_keep=1, **{self._cache_kw: cache})
        row_run = [0] * len(unique)
        for k, i in enumerate(order):
            row_run[i] = run_of[k]
        cache.batch_select_indices(torch.tensor(row_run, dtype=torch.long, device=device))
        rests = [ids[prefix_len[row_run[i]] :] for i, ids in enumerate(unique)]
        ws = max(map(len, rests))
        ids_t = torch.full((len(unique), ws), self.pad_token_id, dtype=torch.long, device=device)
        rest_mask = torch.zeros((len(unique), ws), dtype=torch.long, device=device)
        for i, ids in enumerate(rests):
            ids_t[i, ws - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            rest_mask[i, ws - len(ids) :] = 1
        start = torch.tensor([prefix_len[r] for r in row_run], dtype=torch.long, device=device)
        positions = start[:, None] + (rest_mask.cumsum(-1) - 1).clamp(min=0)
        mask = torch.cat([pre_mask[row_run], rest_mask], dim=1)  # padding between prefix and rest is masked
        out = self.model(input_ids=ids_t, attention_mask=mask, position_ids=positions,
                         use_cache=True, logits_to_keep=1, **{self._cache_kw: cache})
        self.prefill_tokens += sum(prefix_len) + sum(map(len, rests))
        return out.logits[:, -1, :], mask, positions[:, -1] + 1

    @torch.no_grad()
    def _sample(self, batch: list[list[int]], max_new_tokens: int, temperature: float, top_p: float, generator,
                stop: Callable[[str], bool] | None = None):
        # transformers loads on first use, so `import agents.transformers_policy` stays light
        from transformers import DynamicCache  # noqa: PLC0415

        device = self.device
        n = len(batch)
        width = max(len(ids) for ids in batch)
        steps = max(1, min(max_new_tokens, self.max_context - width))
        # Identical prompts (a group's n copies, a thought's K answers) share one prefill: the
        # distinct prompts are run once and the cache is expanded to every row.
        distinct: dict[tuple, int] = {}
        inverse = [distinct.setdefault(tuple(ids), len(distinct)) for ids in batch]
        unique = [list(ids) for ids in distinct] if self.share_prefill else [list(ids) for ids in batch]
        u = len(unique)
        eos = torch.tensor(self.eos_token_ids, device=device)

        cache = DynamicCache(config=self._base_model().config)
        logits, mask, next_pos = self._prefill(unique, width, cache)
        if u < n:
            expand = torch.tensor(inverse, dtype=torch.long, device=device)
            cache.batch_select_indices(expand)
            logits, mask, next_pos = logits[expand], mask[expand], next_pos[expand]
        self.prefill_rows += u
        rows = torch.arange(n, device=device)  # original row of each live batch entry
        record_rows, record_tok, record_lp = [], [], []
        so_far: list[list[int]] = [[] for _ in range(n)]  # each row's tokens, kept only with `stop`
        stopped: set[int] = set()
        trigger = getattr(stop, "trigger", None) if stop is not None else None
        trigger_mask = self._trigger_mask(trigger) if isinstance(trigger, str) and trigger else None
        for step in range(steps):
            tok, lp = self._pick(logits, temperature, top_p, generator)
            record_rows.append(rows)
            record_tok.append(tok)
            record_lp.append(lp)
            done = torch.isin(tok, eos)
            if stop is not None:
                for r, t in zip(rows.tolist(), tok.tolist()):
                    so_far[r].append(t)
                ask = ~done if trigger_mask is None else trigger_mask[tok] & ~done
                for k in ask.nonzero().flatten().tolist():
                    r = int(rows[k])
                    if stop(self.tokenizer.decode(so_far[r], skip_special_tokens=True)):
                        stopped.add(r)
                        done[k] = True
            if step == steps - 1:
                break
            if bool(done.any()):
                keep = (~done).nonzero().flatten()
                if keep.numel() == 0:
                    break
                cache.batch_select_indices(keep)
                tok, mask, next_pos, rows = tok[keep], mask[keep], next_pos[keep], rows[keep]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            out = self.model(input_ids=tok[:, None], attention_mask=mask, position_ids=next_pos[:, None],
                             use_cache=True, **{self._cache_kw: cache})
            logits = out.logits[:, -1, :]
            next_pos = next_pos + 1
        # records are in step order; a stable sort by row gives each row's tokens in order
        all_rows = torch.cat(record_rows)
        order = torch.sort(all_rows, stable=True).indices
        counts = torch.bincount(all_rows, minlength=n).tolist()
        flat_tok = torch.cat(record_tok)[order].tolist()
        flat_lp = torch.cat(record_lp)[order].tolist()
        tokens, logps, start = [], [], 0
        for c in counts:
            tokens.append(flat_tok[start : start + c])
            logps.append(flat_lp[start : start + c])
            start += c
        eos_set = set(self.eos_token_ids)
        completions = []
        for i in range(n):
            ids = tokens[i]
            finished = bool(ids) and ids[-1] in eos_set
            text_ids = ids[:-1] if finished else ids
            c = Completion(
                text=self.tokenizer.decode(text_ids, skip_special_tokens=True),
                token_ids=ids,
                logprobs=logps[i],
                finish_reason="stop" if finished or i in stopped else "length",
            )
            annotate(c, temperature=temperature if temperature > 0 else 1.0, prompt_token_ids=batch[i])
            completions.append(c)
        return completions

    # ---------------------------------------------------------------- log-probs

    def logprobs(
        self,
        prompts: Sequence[Messages],
        completions: Sequence[Completion],
        *,
        temperature: float | None = None,
        batch_size: int | None = None,
    ) -> list[torch.Tensor]:
        """Per-token log-probs of each completion under the current weights.

        Returns one 1-D float32 tensor per completion (``len(completion.token_ids)`` entries),
        differentiable when grad is enabled. The quantity is ``log_softmax(logits / T)`` at the
        completion's tokens, with ``T`` = ``temperature`` if given, else the temperature the
        completion was sampled at (``completion.temperature``, 1.0 when absent). The prompt is
        ``completion.prompt_token_ids`` when present (what was actually sampled from), else the
        chat template of ``prompts[i]``.
        """
        if len(prompts) != len(completions):
            raise ValueError(f"got {len(prompts)} prompts but {len(completions)} completions")
        if len(prompts) == 0:
            raise ValueError("logprobs() needs at least one (prompt, completion) pair")
        bs = int(batch_size or self.logprob_batch_size)
        seqs, temps = [], []
        for p, c in zip(prompts, completions):
            pids = getattr(c, "prompt_token_ids", None)
            if not pids:
                pids = self.encode_prompt(p, self.max_context - max(len(c.token_ids), 1))
            seqs.append((list(pids), list(c.token_ids)))
            t = temperature if temperature is not None else getattr(c, "temperature", None)
            t = 1.0 if t is None or t == 0 else float(t)
            temps.append(t)
        results: list[torch.Tensor | None] = [None] * len(seqs)
        for start in range(0, len(seqs), bs):
            idx = list(range(start, min(start + bs, len(seqs))))
            for i, lp in zip(idx, self._logprobs_batch([seqs[i] for i in idx], [temps[i] for i in idx])):
                results[i] = lp
        return results  # type: ignore[return-value]

    def _logprobs_batch(self, seqs: list[tuple[list[int], list[int]]], temps: list[float]) -> list[torch.Tensor]:
        device = self.device
        lengths = [len(p) + len(c) for p, c in seqs]
        n_new = [len(c) for _, c in seqs]
        if max(n_new) == 0:
            return [torch.zeros(0, device=device) for _ in seqs]
        width = max(lengths)
        input_ids = torch.full((len(seqs), width), self.pad_token_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(seqs), width), dtype=torch.long, device=device)
        for i, (p, c) in enumerate(seqs):
            # left padding, built from lengths: a sampled token equal to the pad id stays visible
            input_ids[i, width - lengths[i] :] = torch.tensor(p + c, dtype=torch.long)
            mask[i, width - lengths[i] :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        keep = max(n_new) + 1
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                         use_cache=False, logits_to_keep=keep)
        logits = out.logits[:, :-1, :].float()  # position t predicts token t + 1
        targets = input_ids[:, width - keep + 1 :]
        t = torch.tensor(temps, device=device, dtype=torch.float32)[:, None, None]
        logp = torch.log_softmax(logits / t, dim=-1).gather(-1, targets[..., None]).squeeze(-1)
        return [logp[i, logp.shape[1] - k :] if k else logp[i, :0] for i, k in enumerate(n_new)]

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return f"TransformersPolicy({self.name!r}, params={n / 1e6:.1f}M, device={self.device}, dtype={self.dtype})"


def _common(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _prefix_runs(prompts: list[list[int]], min_saving: float = 0.25) -> tuple[list[int], list[int], list[int]] | None:
    """How to share prompt prefixes: ``(order, run_of, prefix_len)`` — the prompts' indices in
    sorted order, the run each sorted prompt belongs to, and each run's prefix length (the run's
    longest common prefix, at most its shortest prompt's length − 1, so every prompt keeps a
    token of its own) — or ``None`` when it saves less than ``min_saving`` of the prompt tokens.

    Runs are consecutive in sorted order; a run breaks where neighbours share fewer than a
    threshold of tokens, the threshold that saves the most tokens."""
    order = sorted(range(len(prompts)), key=lambda i: prompts[i])
    ps = [prompts[i] for i in order]
    lcp = [_common(a, b) for a, b in zip(ps, ps[1:])]
    total = sum(map(len, ps))
    best = None
    for threshold in sorted(set(lcp)):
        if threshold < 1:
            continue
        run_of, prefix_len, run = [0], [], 0
        cur, shortest = None, len(ps[0])
        for k, common in enumerate(lcp):
            if common >= threshold:
                cur = common if cur is None else min(cur, common)
                shortest = min(shortest, len(ps[k + 1]))
            else:
                prefix_len.append(min(cur if cur is not None else len(ps[k]) - 1, shortest - 1))
                run += 1
                cur, shortest = None, len(ps[k + 1])
            run_of.append(run)
        prefix_len.append(min(cur if cur is not None else len(ps[-1]) - 1, shortest - 1))
        saved = total - (sum(prefix_len) + sum(len(p) - prefix_len[r] for p, r in zip(ps, run_of)))
        if best is None or saved > best[0]:
            best = (saved, run_of, prefix_len)
    if best is None or best[0] < min_saving * total or min(best[2]) < 1:
        return None
    return order, best[1], best[2]


def render_chat(tokenizer: PreTrainedTokenizerBase, messages: Messages) -> list[int]:
    """Token ids of ``messages`` under the tokenizer's chat template, assistant turn opened."""
    out = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    return [int(t) for t in out]


def encode_chat(
    tokenizer: PreTrainedTokenizerBase, messages: Messages, budget: int, *, max_context: int, name: str = "model"
) -> list[int]:
    """Chat-template token ids of ``messages``, cut to at most ``budget`` tokens.

    Cutting removes tokens from the left of the last user message (the system prompt and the
    template's structure are kept) and warns with :class:`PromptTruncatedWarning`. If even an
    empty user message does not fit, the rendered prompt keeps its last ``budget`` tokens.
    """
    ids = render_chat(tokenizer, messages)
    if len(ids) <= budget:
        return ids
    original = len(ids)
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    idx = users[-1] if users else len(messages) - 1
    content_ids = tokenizer.encode(str(messages[idx]["content"]), add_special_tokens=False)
    cut = len(ids) - budget
    for _ in range(8):
        msgs = [dict(m) for m in messages]
        msgs[idx]["content"] = tokenizer.decode(content_ids[cut:]) if cut < len(content_ids) else ""
        ids = render_chat(tokenizer, msgs)
        if len(ids) <= budget:
            break
        if cut >= len(content_ids):
            ids = ids[-budget:]
            break
        cut += len(ids) - budget
    else:
        ids = ids[-budget:]
    warnings.warn(
        f"{name}: prompt of {original} tokens does not fit the context ({max_context} tokens, "
        f"{max_context - budget} kept for the completion); cut to {len(ids)} tokens from the left "
        "of the user message",
        PromptTruncatedWarning,
        stacklevel=4,
    )
    return ids


def prompt_budget(max_context: int, max_new_tokens: int) -> int:
    """Tokens a prompt may take: the context minus ``max_new_tokens``, but at least half the
    context (the completion is then cut short by the context instead)."""
    return max(max_context - max_new_tokens, max_context // 2)


def annotate(completion: Completion, *, temperature: float, prompt_token_ids: list[int]) -> Completion:
    """Attach what :meth:`TransformersPolicy.logprobs` needs to recompute a completion's
    log-probs exactly: the temperature its log-probs are at and the prompt it was sampled from."""
    completion.temperature = float(temperature)
    completion.prompt_token_ids = list(prompt_token_ids)
    return completion
