"""The memory plan: what a run holds on each GPU, part by part, before anything is loaded.

A run's memory is predicted from its configuration alone: the models' shapes (:data:`MODELS`, or
a local ``config.json``), the layout (``model.sharing``, ``parallel.strategy``, ``parallel.offload``,
``parallel.offload_idle``, ``schedule.mode``), the dtype and the token budgets. What is counted,
per rank, at the peak of a step (the updated role holds its gradients; one process trains
plainly whatever ``parallel.strategy`` says, nothing sharded or offloaded, as the trainer does):

* **weights**: ``ddp``: each model whole in ``model.dtype``; ``fsdp``: float32 master weights
  split across the shard group (``P·4/shard`` bytes, ``shard = WORLD_SIZE / parallel.replicas``);
  ``lora``: the frozen base in ``model.dtype`` (split under fsdp) plus one float32 adapter per
  role. ``shared`` holds one model for both roles. With ``optim.kl_coef > 0`` a frozen copy per
  role in ``model.dtype`` (split under fsdp) is added (the KL reference; not in :func:`state_bytes`).
* **gradients**: the updated role only (``schedule.mode=alternate``; both under ``simultaneous``),
  in the weights' dtype (float32 shards under fsdp); under ``ddp`` on several GPUs also DDP's
  bucket buffers, a second copy of the trainable parameters' size.
* **optimizer state**: AdamW's ``exp_avg`` and ``exp_avg_sq`` per role (each role has its own
  optimizer, also under ``shared``), in the weights' dtype; with ``parallel.offload_idle`` under
  the alternating schedule the idle role's state is in CPU memory, and with ``engine=vllm`` its
  training weights too (not under ``shared``, whose one model the updated role uses).
* **optimizer step temporaries**: ``torch.optim.AdamW`` (foreach) allocates one buffer of the
  updated role's size (``sqrt(exp_avg_sq)``) while it steps, after the activations are freed; the
  fused kernel the trainer uses where the device has one needs less, so this part is an upper bound.
* **activations** of one forward/backward micro-batch of ``T = max(optim.micro_batch_tokens,
  longest sequence)`` tokens. Per layer and token a Llama-style decoder layer keeps, for
  backward, ``2·(4 + b)·h`` bytes for its two RMSNorms (float32 input, normalized output),
  ``b·(2·a·d + 2·k·d)`` for the rotated queries and keys, the values and the attention output,
  ``4·a`` for the attention's log-sum-exp, ``b·4·i`` for the gated MLP, plus ``(4 + b)·(a + k)·d``
  for query/key norms (Qwen3, OLMo 3); ``b`` is the dtype's bytes, ``h`` hidden, ``i`` intermediate,
  ``a``/``k`` query/key-value heads of size ``d``. This is the usual ``34·h + 5·a·s`` bytes per
  token and layer (Korthikanti et al., 2022) redone for SwiGLU, grouped-query attention and
  SDPA's fused kernels, which keep no ``s × s`` scores (eager attention would add ``2·a·s·b``).
  With ``model.gradient_checkpointing`` only each layer's input is kept (``T·h·b`` per layer) plus
  one layer's full activations while it is recomputed; without it every layer's. The logits of
  the completion tokens (``min(T, max(micro_batch_tokens, max_new_tokens + 1))`` positions) cost
  ``V·(b + 12)`` bytes each: the model's logits in ``b``, their float32 copy, the
  temperature-scaled copy and the float32 log-softmax (``TransformersPolicy.logprobs``).
* **gathered layers** (fsdp): the root module's parameters (embeddings, final norm, LM head) and
  two decoder layers (the current one and the prefetched next) all-gathered in ``model.dtype``,
  plus one layer's unsharded float32 gradient before its reduce-scatter.
* **generation copy** (fsdp with ``engine=transformers``): rollouts decode from the generating
  role's whole model gathered on every rank in ``model.dtype`` (the larger role's).
* **generation cache** (``engine=transformers``): the KV cache of one generation batch (64 prompts,
  ``TransformersPolicy``'s ``generation_batch_size``) at the full context, plus its prefill
  activations (64 prompts of ``rollout.max_prompt_tokens`` through one layer).
* **vLLM weights**, **vLLM activations**, **vLLM KV cache** (``engine=vllm``): every rank runs its
  own colocated engine per distinct rollout policy (two under ``separate`` and ``lora``, one under
  ``shared``) with the whole model in ``model.dtype`` (``/tp`` with
  ``rollout.vllm.tensor_parallel_size``), its profiled activations
  (``max_num_batched_tokens`` = 16384 tokens through one layer and the sampler's logits for
  ``max_num_seqs`` = 1024 sequences, vLLM's defaults for an offline engine on a large GPU) and a KV
  cache reserve of :data:`KV_SEQUENCES` sequences at the full context (most samples are far
  shorter, so it holds many at once); sliding-window layers (OLMo 3) hold at most their window.
  When ``rollout.vllm.gpu_memory_utilization`` is set, each engine takes that share of the GPU
  instead, and its KV cache is what its weights and activations leave of it.

Total per GPU: the state (weights, gradients, optimizer), the vLLM engines, and the larger of the
update phase (activations and gathered layers, or the optimizer step's temporaries) and the rollout
phase (generation copy and cache), which do not overlap. A layout fits when the total is at most
``1 - HEADROOM`` of the GPU's memory: the 10% left is for the CUDA context, NCCL buffers and the
caching allocator's fragmentation. ``parallel.offload`` moves the state to CPU memory (the
optimizer steps there); the plan reports the CPU memory per node (at most
:data:`GPUS_PER_NODE` ranks per node) for every layout.

The plan assumes GPUs (``model.device=cuda``) whatever the config's device;
:func:`state_bytes` follows the config (on ``cpu`` everything is CPU memory), and
:func:`measured_state_bytes` reads the same quantities off a live trainer, so the estimate can
be checked against the tensors (``tests/test_plan.py``).
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from agents.models import PRESETS as BUILTIN_MODELS
from agents.models import build_tiny_model, is_hub_id, model_path

from ..config import ConfigError, TrainerConfig, preset

__all__ = [
    "PlanUnavailable", "Architecture", "MODELS", "architecture", "state_bytes", "memory_plan", "min_gpus", "check_fits",
    "measured_state_bytes", "preset_gpus", "layout_config", "own_layout", "LAYOUTS", "PARTS", "HEADROOM", "KV_SEQUENCES",
    "GPUS_PER_NODE", "GPU_COUNTS", "GiB", "plan_rows",
]


class PlanUnavailable(ConfigError):
    """A model whose shapes cannot be read here (not in :data:`MODELS`, no local config.json):
    there is no plan; the trainer then starts without the check and says so."""


GiB = 2**30
#: Share of a GPU's memory left free (CUDA context, NCCL buffers, allocator fragmentation).
HEADROOM = 0.10
#: Full-context sequences each vLLM engine's KV cache is sized for at least (vLLM needs one to
#: start); it runs more at once while most samples are shorter, and preempts otherwise.
KV_SEQUENCES = 2
#: Ranks per node, for the CPU memory per node.
GPUS_PER_NODE = 8
#: GPU counts :func:`min_gpus` tries.
GPU_COUNTS = (1, 2, 4, 8, 16, 32, 64)
#: The layouts the plan compares (columns of ``thinksolve plan``).
LAYOUTS = ("ddp", "fsdp", "fsdp+offload", "lora")
#: The parts of a GPU's memory, in the plan's order.
PARTS = ("weights", "gradients", "optimizer state", "optimizer step", "activations", "gathered layers",
         "generation copy", "generation cache", "vLLM weights", "vLLM activations", "vLLM KV cache")

_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
_GENERATION_BATCH = 64  # TransformersPolicy's generation_batch_size, as build_policies leaves it
_VLLM_BATCHED_TOKENS = 16384
_VLLM_MAX_SEQS = 1024


@dataclass(frozen=True)
class Architecture:
    """The shape of a decoder-only causal LM: what its memory depends on.

    ``attention_bias``: ``none``, ``qkv`` (Qwen2: biases on the query, key and value projections)
    or ``all`` (Llama's ``attention_bias``: the output projection too). ``qk_norm``: ``none``,
    ``head`` (Qwen3: an RMSNorm over each head's ``head_dim``) or ``full`` (OLMo 2/3: over all
    query and all key channels). ``sliding_layers`` of the ``layers`` attend within
    ``sliding_window`` tokens (their KV cache holds at most that many). ``counted``: the exact
    parameter count when it was counted on the model itself (a local or built-in model), else
    the formula's (:attr:`params`)."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    attention_bias: Literal["none", "qkv", "all"] = "none"
    qk_norm: Literal["none", "head", "full"] = "none"
    sliding_window: int | None = None
    sliding_layers: int = 0
    source: str = ""
    counted: int | None = None

    @property
    def layer_params(self) -> int:
        """Parameters of one decoder layer."""
        h, q, kv = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim
        n = h * q + 2 * h * kv + q * h + 3 * h * self.intermediate + 2 * h
        n += {"none": 0, "qkv": q + 2 * kv, "all": q + 2 * kv + h}[self.attention_bias]
        n += {"none": 0, "head": 2 * self.head_dim, "full": q + kv}[self.qk_norm]
        return n

    @property
    def root_params(self) -> int:
        """Parameters outside the decoder layers: embeddings, the final norm, the LM head."""
        return self.vocab * self.hidden * (1 if self.tied else 2) + self.hidden

    @property
    def params(self) -> int:
        """All parameters (tied embeddings once)."""
        return self.counted if self.counted is not None else self.layers * self.layer_params + self.root_params

    def lora_params(self, rank: int) -> int:
        """Parameters of one LoRA adapter of rank ``rank`` on every linear layer of attention and
        MLP (peft's ``target_modules="all-linear"``, the LM head excluded): ``rank·(in + out)``
        per projection."""
        h, q, kv, i = self.hidden, self.heads * self.head_dim, self.kv_heads * self.head_dim, self.intermediate
        per_layer = (h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h)
        return rank * per_layer * self.layers

    def kv_bytes(self, tokens: int, dtype_bytes: int) -> int:
        """KV-cache bytes of one sequence of ``tokens`` tokens."""
        per_layer_token = 2 * self.kv_heads * self.head_dim * dtype_bytes
        window = min(tokens, self.sliding_window) if self.sliding_window else tokens
        return per_layer_token * ((self.layers - self.sliding_layers) * tokens + self.sliding_layers * window)

    def activation_bytes_per_token(self, dtype_bytes: int) -> int:
        """Bytes one decoder layer keeps for backward per token (see the module docstring)."""
        b, h, i, d = dtype_bytes, self.hidden, self.intermediate, self.head_dim
        q, kv = self.heads * d, self.kv_heads * d
        n = 2 * (4 + b) * h + b * (2 * q + 2 * kv) + 4 * self.heads + b * 4 * i
        if self.qk_norm != "none":
            n += (4 + b) * (q + kv)
        return n

    def inference_bytes_per_token(self, dtype_bytes: int) -> int:
        """Peak bytes per token of one layer's forward without autograd (prefill, vLLM's profile)."""
        return dtype_bytes * (2 * self.hidden + (self.heads + 2 * self.kv_heads) * self.head_dim + 2 * self.intermediate)


_CONFIG_JSON = "config.json of the model on the Hugging Face hub"

#: The presets' models, from their ``config.json`` on the Hugging Face hub.
MODELS: dict[str, Architecture] = {
    "Qwen/Qwen2.5-1.5B-Instruct": Architecture(
        hidden=1536, intermediate=8960, layers=28, heads=12, kv_heads=2, head_dim=128, vocab=151936, tied=True,
        attention_bias="qkv", source=_CONFIG_JSON),
    "Qwen/Qwen2.5-7B-Instruct": Architecture(
        hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4, head_dim=128, vocab=152064, tied=False,
        attention_bias="qkv", source=_CONFIG_JSON),
    "meta-llama/Llama-3.1-8B-Instruct": Architecture(
        hidden=4096, intermediate=14336, layers=32, heads=32, kv_heads=8, head_dim=128, vocab=128256, tied=False,
        source=_CONFIG_JSON),
    "Qwen/Qwen3-4B-Base": Architecture(
        hidden=2560, intermediate=9728, layers=36, heads=32, kv_heads=8, head_dim=128, vocab=151936, tied=True,
        qk_norm="head", source=_CONFIG_JSON),
    "allenai/Olmo-3-7B-Instruct": Architecture(
        hidden=4096, intermediate=11008, layers=32, heads=32, kv_heads=32, head_dim=128, vocab=100278, tied=False,
        qk_norm="full", sliding_window=4096, sliding_layers=24, source=_CONFIG_JSON),
}


def _from_hf(cfg: Any, source: str, counted: int | None) -> Architecture:
    """An :class:`Architecture` from a transformers config object."""
    heads = int(cfg.num_attention_heads)
    kind = getattr(cfg, "model_type", "")
    layer_types = list(getattr(cfg, "layer_types", None) or [])
    window = getattr(cfg, "sliding_window", None)
    sliding = sum(t == "sliding_attention" for t in layer_types) if window else 0
    return Architecture(
        hidden=int(cfg.hidden_size), intermediate=int(cfg.intermediate_size), layers=int(cfg.num_hidden_layers),
        heads=heads, kv_heads=int(getattr(cfg, "num_key_value_heads", None) or heads),
        head_dim=int(getattr(cfg, "head_dim", None) or cfg.hidden_size // heads), vocab=int(cfg.vocab_size),
        tied=bool(getattr(cfg, "tie_word_embeddings", False)),
        attention_bias="qkv" if kind == "qwen2" else ("all" if getattr(cfg, "attention_bias", False) else "none"),
        qk_norm="head" if kind.startswith("qwen3") else ("full" if kind in ("olmo2", "olmo3") else "none"),
        sliding_window=int(window) if sliding else None, sliding_layers=sliding, source=source, counted=counted)


def _counted(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _meta_count(cfg: Any) -> int | None:
    """The exact parameter count of the model ``cfg`` describes, built on the meta device (no
    memory, no weights); ``None`` when transformers cannot build it."""
    from transformers import AutoModelForCausalLM  # noqa: PLC0415 (heavy; only for models outside MODELS)

    try:
        with torch.device("meta"):
            return _counted(AutoModelForCausalLM.from_config(cfg))
    except Exception:  # an architecture transformers does not build: the formula's count stands
        return None


@functools.lru_cache(maxsize=64)
def _architecture(name: str, overrides: str) -> Architecture:
    if name == "tiny":
        size = json.loads(overrides)
        if "hidden_size" in size and "head_dim" not in size:  # as the warm start sizes it
            size["head_dim"] = size["hidden_size"] // size.get("num_attention_heads", 4)
        with torch.device("meta"):
            model, _ = build_tiny_model(0, **size)
        return _from_hf(model.config, "agents.models.build_tiny_model", _counted(model))
    if name in MODELS:
        return MODELS[name]
    from transformers import AutoConfig  # noqa: PLC0415 (heavy; only for models outside MODELS)

    if name in BUILTIN_MODELS:
        path = model_path(name)
    elif Path(name).expanduser().is_dir():
        path = str(Path(name).expanduser())
    elif is_hub_id(name):
        path = name
    else:
        raise PlanUnavailable(f"cannot plan the memory of model {name!r}: not in the table of known models "
                          f"({', '.join(MODELS)}), not a built-in model and not a local directory with a config.json")
    try:
        cfg = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise PlanUnavailable(f"cannot plan the memory of model {name!r}: its config.json cannot be read ({e})") from None
    return _from_hf(cfg, f"{path}/config.json", _meta_count(cfg))


def architecture(name: str, model_config: Mapping[str, Any] | None = None) -> Architecture:
    """The :class:`Architecture` of model ``name``: from :data:`MODELS`, from the built-in model's
    own config (``tiny``, with ``model_config`` overrides as the warm start applies them;
    ``smollm2-135m``'s converted directory), or from a local directory's or cached hub id's
    ``config.json``. For everything but :data:`MODELS` the parameter count is counted on the model
    built on the meta device (exact, no weights loaded). :class:`ConfigError` when it cannot be read."""
    return _architecture(str(name), json.dumps(dict(model_config or {}), sort_keys=True))


# --------------------------------------------------------------------------- the models of a run


@dataclass(frozen=True)
class _Team:
    """The trainable models of a config: per role its full model (or, under lora, the base)."""

    sharing: str
    archs: dict[str, Architecture]  # role -> its model (lora: the shared base)
    adapter: int  # lora: parameters of one role's adapter

    def trainable(self, role: str) -> int:
        return self.adapter if self.sharing == "lora" else self.archs[role].params

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.archs)


def _team(config: TrainerConfig) -> _Team:
    m = config.model
    overrides = config.warm_start.model_config if config.warm_start.enabled else {}

    def arch(name: str) -> Architecture:
        return architecture(name, overrides if name == "tiny" else None)

    roles = list(config.rollout.roles)
    base = arch(m.name)
    archs = {role: arch(m.name_of(role, roles)) if m.sharing == "separate" else base for role in roles}
    adapter = base.lora_params(m.lora_rank) if m.sharing == "lora" else 0
    return _Team(m.sharing, archs, adapter)


def _sharded(config: TrainerConfig, world: int) -> bool:
    """Whether the models are sharded: fsdp on more than one process (one process trains plainly)."""
    return config.parallel.strategy == "fsdp" and world > 1


def _shard(config: TrainerConfig, world: int) -> int:
    return max(1, world // max(1, config.parallel.replicas)) if _sharded(config, world) else 1


def _state(config: TrainerConfig, world: int, on_gpu: bool) -> dict[str, int]:
    """Per-rank bytes of params, grads and optimizer state (and how much of each is in CPU
    memory), the optimizer step's temporaries and the KL reference, at the step's peak."""
    team, m, p = _team(config), config.model, config.parallel
    b, fsdp = _DTYPE_BYTES[m.dtype], _sharded(config, world)
    shard = _shard(config, world)
    alternate = config.schedule.mode == "alternate"

    def split(n: int, nbytes: int) -> int:  # bytes per rank of n parameters stored in nbytes each
        return -(-n * nbytes // shard) if fsdp else n * nbytes

    full_bytes = 4 if fsdp else b  # a full fine-tune's weights, grads and AdamW state
    if team.sharing == "lora":
        base = team.archs[team.roles[0]]
        frozen = split(base.params, b)
        weights = {role: split(team.adapter, 4) for role in team.roles}
        train_bytes = 4
    else:
        frozen = 0
        weights = {role: split(team.archs[role].params, full_bytes) for role in team.roles}
        train_bytes = full_bytes
    grads_of = {role: split(team.trainable(role), train_bytes) for role in team.roles}
    optim_of = {role: 2 * grads_of[role] for role in team.roles}
    one_model = team.sharing == "shared"

    best: dict[str, int] | None = None
    candidates = [(r,) for r in team.roles] if alternate else [team.roles]
    for active in candidates:
        idle = [r for r in team.roles if r not in active]
        offload_idle = on_gpu and p.offload_idle and alternate
        params = frozen + (weights[team.roles[0]] if one_model else sum(weights.values()))
        grads = grads_of[active[0]] if one_model else sum(grads_of[r] for r in active)
        optim = sum(optim_of.values())
        if not on_gpu or (p.offload and fsdp):
            cpu = {"params": params, "grads": grads, "optimizer": optim}
        else:
            moved_weights = 0
            if offload_idle and config.rollout.engine == "vllm" and not one_model:
                moved_weights = sum(weights[r] for r in idle)
            cpu = {"params": moved_weights, "grads": 0,
                   "optimizer": sum(optim_of[r] for r in idle) if offload_idle else 0}
        step = max(grads_of[r] for r in active)
        row = {"params": params, "grads": grads, "optimizer": optim,
               "params_cpu": cpu["params"], "grads_cpu": cpu["grads"], "optimizer_cpu": cpu["optimizer"],
               "step": step, "step_cpu": step if cpu["optimizer"] == optim and optim else 0}
        gpu = sum(row[k] - row[k + "_cpu"] for k in ("params", "grads", "optimizer"))
        if best is None or gpu > sum(best[k] - best[k + "_cpu"] for k in ("params", "grads", "optimizer")):
            best = row
    assert best is not None
    reference = 0
    if config.optim.kl_coef > 0:  # a frozen copy of each role's policy in model.dtype
        per_role = [(team.archs[r].params + team.adapter) for r in team.roles]
        reference = sum(split(n, b) for n in per_role)
    best["reference"] = reference
    return best


def state_bytes(config: TrainerConfig, world: int) -> dict[str, int]:
    """Predicted bytes per rank of the trained policies' parameters (trainable and frozen, each
    distinct tensor once), gradients and AdamW state, for ``config``'s own ``parallel.strategy``
    and ``model.sharing`` on ``world`` ranks, at the peak of a step (the updated role holds its
    gradients; every role's optimizer state exists). ``params_cpu``, ``grads_cpu`` and
    ``optimizer_cpu`` say how much of each is in CPU memory (everything on a CPU run; the
    offloaded shards under ``parallel.offload``; the idle role's state under
    ``parallel.offload_idle``). Comparable with :func:`measured_state_bytes`."""
    s = _state(config, world, on_gpu=not str(config.model.device).startswith("cpu"))
    keys = ("params", "grads", "optimizer", "params_cpu", "grads_cpu", "optimizer_cpu")
    return {k: s[k] for k in keys} | {"total": s["params"] + s["grads"] + s["optimizer"]}


# --------------------------------------------------------------------------- the plan


def layout_config(config: TrainerConfig, layout: str) -> TrainerConfig:
    """A copy of ``config`` in one of :data:`LAYOUTS`: ``ddp``, ``fsdp``, ``fsdp+offload`` (its
    ``parallel`` section changed), or ``lora`` (``model.sharing=lora``, one model for both roles,
    with ``config``'s own strategy)."""
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; choose from {list(LAYOUTS)}")
    c = copy.deepcopy(config)
    if layout == "lora":
        c.model.sharing, c.model.solver_name = "lora", None
    else:
        c.parallel.strategy = "ddp" if layout == "ddp" else "fsdp"
        c.parallel.offload = layout == "fsdp+offload"
        c.parallel.replicas = 1 if layout == "ddp" else c.parallel.replicas
    return c


def own_layout(config: TrainerConfig) -> str:
    """Which of :data:`LAYOUTS` ``config`` itself is (``lora`` whenever ``model.sharing=lora``)."""
    if config.model.sharing == "lora":
        return "lora"
    if config.parallel.strategy == "fsdp":
        return "fsdp+offload" if config.parallel.offload else "fsdp"
    return "ddp"


def _context(config: TrainerConfig) -> int:
    r = config.rollout
    return r.max_prompt_tokens + max(*r.budgets().values(), r.rating_max_new_tokens)


def _layout_plan(config: TrainerConfig, world: int, gpu_memory: int | None) -> dict[str, Any]:
    """One column of the plan: ``config``'s layout on ``world`` GPUs of ``gpu_memory`` bytes."""
    team, m, r = _team(config), config.model, config.rollout
    b, fsdp = _DTYPE_BYTES[m.dtype], _sharded(config, world)
    s = _state(config, world, on_gpu=True)
    lora = team.sharing == "lora"
    parts = dict.fromkeys(PARTS, 0)
    parts["weights"] = s["params"] - s["params_cpu"] + s["reference"]
    parts["gradients"] = s["grads"] - s["grads_cpu"]
    if not fsdp and world > 1:  # DDP's bucket buffers: one per wrapped model, the size of its trainable params
        buckets = [team.adapter * 4] * len(team.roles) if lora else [a.params * b for a in team.archs.values()]
        parts["gradients"] += buckets[0] if team.sharing == "shared" else sum(buckets)
    parts["optimizer state"] = s["optimizer"] - s["optimizer_cpu"]
    parts["optimizer step"] = s["step"] - s["step_cpu"]

    # the update: one micro-batch's activations (the larger model's) and, under fsdp, the gathered layers
    longest = max(r.budgets().values())
    tokens = max(config.optim.micro_batch_tokens, r.max_prompt_tokens + longest)
    logit_tokens = min(tokens, max(config.optim.micro_batch_tokens, longest + 1))
    acts, gathered = [], []
    for a in team.archs.values():
        layer = a.activation_bytes_per_token(b) * tokens
        kept = a.layers * tokens * a.hidden * b + layer if m.gradient_checkpointing else a.layers * layer
        final_norm = (4 + b) * a.hidden * tokens
        acts.append(kept + final_norm + logit_tokens * a.vocab * (b + 12))
        if fsdp:
            grad_layer = 0 if lora else a.layer_params * 4
            gathered.append((a.root_params + 2 * a.layer_params) * b + grad_layer)
    parts["activations"] = max(acts)
    parts["gathered layers"] = max(gathered, default=0)

    # rollouts
    context = _context(config)
    vargs = dict(r.vllm or {})
    if r.engine == "transformers":
        if fsdp:
            parts["generation copy"] = max(a.params * b for a in team.archs.values()) + (team.adapter * 4 if lora else 0)
        parts["generation cache"] = max(
            _GENERATION_BATCH * (a.kv_bytes(context, b) + r.max_prompt_tokens * a.inference_bytes_per_token(b))
            for a in team.archs.values())
    notes: list[str] = []
    if r.engine == "vllm":
        tp = int(vargs.get("tensor_parallel_size", 1) or 1)
        engines = [team.archs[team.roles[0]]] if team.sharing == "shared" else list(team.archs.values())
        batched = int(vargs.get("max_num_batched_tokens", _VLLM_BATCHED_TOKENS))
        max_seqs = int(vargs.get("max_num_seqs", _VLLM_MAX_SEQS))
        w = [a.params * b // tp for a in engines]
        act = [batched * a.inference_bytes_per_token(b) // tp + max_seqs * a.vocab * 4 * 2 for a in engines]
        one_seq = [a.kv_bytes(context, b) // tp for a in engines]
        util = vargs.get("gpu_memory_utilization")
        if util is not None and gpu_memory:
            kv = [int(float(util) * gpu_memory) - wi - ai for wi, ai in zip(w, act)]
            if any(k < o for k, o in zip(kv, one_seq)):
                notes.append(f"rollout.vllm.gpu_memory_utilization={util} leaves an engine less KV cache than one "
                             f"sequence of {context} tokens")
            kv = [max(k, 0) for k in kv]
        else:
            kv = [KV_SEQUENCES * o for o in one_seq]
        parts["vLLM weights"], parts["vLLM activations"], parts["vLLM KV cache"] = sum(w), sum(act), sum(kv)
        engine_bytes = [wi + ai + ki for wi, ai, ki in zip(w, act, kv)]

    state = parts["weights"] + parts["gradients"] + parts["optimizer state"]
    update = max(parts["activations"] + parts["gathered layers"], parts["optimizer step"])
    rollout = parts["generation copy"] + parts["generation cache"]
    vllm = parts["vLLM weights"] + parts["vLLM activations"] + parts["vLLM KV cache"]
    total = state + vllm + max(update, rollout)
    cpu_rank = s["params_cpu"] + s["grads_cpu"] + s["optimizer_cpu"] + s["step_cpu"]
    usable = int(gpu_memory * (1 - HEADROOM)) if gpu_memory else None
    fits = None if usable is None else (total <= usable and not notes)
    out = {"parts": parts, "total": total, "fits": fits, "cpu_per_node": cpu_rank * min(world, GPUS_PER_NODE),
           "notes": notes, "free": None if usable is None else usable - total}
    if r.engine == "vllm" and gpu_memory:
        # each engine's share of the GPU: what it holds, plus an equal part of the free memory for more KV cache
        extra = max(out["free"], 0) // len(engine_bytes) if "gpu_memory_utilization" not in vargs else 0
        out["vllm_gpu_memory_utilization"] = round(max((e + extra) / gpu_memory for e in engine_bytes), 3)
    return out


def memory_plan(config: TrainerConfig, gpus: int, gpu_memory_gb: float | None = None) -> dict[str, Any]:
    """The memory per GPU of ``config`` on ``gpus`` GPUs in each of :data:`LAYOUTS` (see the
    module docstring for what is counted and why).

    Returns ``{"gpus", "gpu_memory" (bytes or None), "usable" (bytes after :data:`HEADROOM`),
    "own" (the config's own layout), "layouts": {layout: {"parts": {part: bytes},
    "total", "fits" (None without a GPU size), "free" (usable minus total), "cpu_per_node",
    "notes", and with vLLM "vllm_gpu_memory_utilization" (the largest engine's share of the GPU)}}}``."""
    if gpus < 1:
        raise ConfigError(f"gpus={gpus} is invalid: allowed >= 1")
    gpu_memory = int(gpu_memory_gb * GiB) if gpu_memory_gb else None
    layouts = {}
    for layout in LAYOUTS:
        c = layout_config(config, layout)
        if c.parallel.strategy == "fsdp" and gpus % c.parallel.replicas:
            c.parallel.replicas = 1
        layouts[layout] = _layout_plan(c, gpus, gpu_memory)
    return {"gpus": gpus, "gpu_memory": gpu_memory, "usable": int(gpu_memory * (1 - HEADROOM)) if gpu_memory else None,
            "own": own_layout(config), "layouts": layouts}


def _fits(config: TrainerConfig, world: int, gpu_memory: int) -> dict[str, Any]:
    return _layout_plan(config, world, gpu_memory)


def _min_world(config: TrainerConfig, gpu_memory: int) -> int | None:
    for n in GPU_COUNTS:
        if config.parallel.strategy == "fsdp" and n % config.parallel.replicas:
            continue
        if _fits(config, n, gpu_memory)["fits"]:
            return n
    return None


def min_gpus(config: TrainerConfig, gpu_memory_gb: float) -> int | None:
    """The smallest GPU count of :data:`GPU_COUNTS` (1 to 64, powers of two; multiples of
    ``parallel.replicas`` under fsdp) on which ``config``'s own layout fits GPUs of
    ``gpu_memory_gb`` GiB; ``None`` when none does (more GPUs do not shrink what every rank holds
    whole: activations and the vLLM engines)."""
    return _min_world(config, int(gpu_memory_gb * GiB))


def preset_gpus(name: str, gpu_memory_gb: float = 80) -> int | None:
    """:func:`min_gpus` of preset ``name`` on GPUs of ``gpu_memory_gb`` GiB (80: H100, A100-80GB)."""
    return min_gpus(preset(name), gpu_memory_gb)


def _gib(n: int) -> str:
    return f"{n / GiB:.1f} GiB"


def _variants(config: TrainerConfig) -> list[tuple[str, TrainerConfig]]:
    """The changes :func:`check_fits` proposes, as ``(override text, changed config)``."""
    out = []
    own = own_layout(config)
    for layout, change in (("fsdp", "parallel.strategy=fsdp"),
                           ("fsdp+offload", "parallel.strategy=fsdp parallel.offload=true"),
                           ("lora", "model.sharing=lora")):
        if layout != own and not (layout == "fsdp" and config.parallel.strategy == "fsdp"):
            out.append((change, layout_config(config, layout)))
    if not config.model.gradient_checkpointing:
        c = copy.deepcopy(config)
        c.model.gradient_checkpointing = True
        out.append(("model.gradient_checkpointing=true", c))
    return out


def check_fits(config: TrainerConfig, world: int, gpu_memory_bytes: int) -> dict[str, Any]:
    """Refuse a run that cannot fit: :class:`ConfigError` with the per-GPU bytes by part, the
    usable memory and what would fit (more GPUs, ``parallel.strategy=fsdp``,
    ``parallel.offload=true``, ``model.sharing=lora``, ``model.gradient_checkpointing=true``), when
    ``config``'s own layout on ``world`` GPUs of ``gpu_memory_bytes`` bytes each needs more than
    ``1 - HEADROOM`` of one. Returns the layout's plan (one column of :func:`memory_plan`) when
    it fits. The trainer calls it before loading anything on GPUs."""
    gpu_memory = int(gpu_memory_bytes)
    plan = _fits(config, world, gpu_memory)
    if plan["fits"]:
        return plan
    usable = int(gpu_memory * (1 - HEADROOM))
    parts = ", ".join(f"{k} {_gib(v)}" for k, v in plan["parts"].items() if v)
    options = []
    n = _min_world(config, gpu_memory)
    if n is not None and n > world:
        options.append(f"{n} GPUs")
    for change, c in _variants(config):
        if c.parallel.strategy == "fsdp" and world % c.parallel.replicas:
            c.parallel.replicas = 1
        m = world if _fits(c, world, gpu_memory)["fits"] else _min_world(c, gpu_memory)
        if m is not None:
            options.append(f"{change} on {m} GPU{'s' if m > 1 else ''}")
    layout = own_layout(config)
    if world == 1 and config.parallel.strategy == "fsdp":
        layout += " (on one process: plain training, nothing sharded or offloaded)"
    why = f"; {'; '.join(plan['notes'])}" if plan["notes"] else ""
    raise ConfigError(
        f"the run does not fit: {layout} on {world} GPU{'s' if world > 1 else ''} of {_gib(gpu_memory)} needs "
        f"{_gib(plan['total'])} per GPU ({parts}), and {_gib(usable)} is usable ({HEADROOM:.0%} is kept free for the "
        f"CUDA context and fragmentation){why}. What would fit: "
        + ("; ".join(options) if options else f"nothing up to {GPU_COUNTS[-1]} GPUs; shorten the token budgets "
           "(rollout.*_max_new_tokens, optim.micro_batch_tokens) or use larger GPUs")
        + " (see `thinksolve plan`)")


# --------------------------------------------------------------------------- measured


def _local(t: torch.Tensor) -> torch.Tensor:
    """The tensor this rank holds (a DTensor's local shard; FSDP2 parameters are DTensors)."""
    return t.to_local() if hasattr(t, "to_local") else t


def _nbytes(t: torch.Tensor) -> tuple[int, bool]:
    t = _local(t)
    return t.numel() * t.element_size(), t.device.type == "cpu"


def _models(policies: Mapping[str, Any]) -> Iterable[torch.nn.Module]:
    seen: set[int] = set()
    for policy in policies.values():
        model = getattr(policy, "model", policy)
        if id(model) not in seen:
            seen.add(id(model))
            yield model


def measured_state_bytes(policies: Mapping[str, Any], optimizers: Mapping[str, torch.optim.Optimizer]) -> dict[str, int]:
    """The bytes this rank actually holds for ``policies`` (role → policy with a ``.model``, or
    role → module) and ``optimizers`` (role → optimizer): ``params`` (every distinct parameter of
    the models once: two roles sharing one model count it once; ``params_trainable`` and
    ``params_frozen`` split it), ``grads`` (the ``.grad`` that exist), ``optimizer`` (every tensor in
    the optimizers' state, distinct optimizers each), each with its ``*_cpu`` share in CPU memory,
    and ``total``. DTensors count their local shard (``to_local()``)."""
    out = dict.fromkeys(("params", "params_trainable", "params_frozen", "grads", "optimizer",
                         "params_cpu", "grads_cpu", "optimizer_cpu"), 0)
    seen: set[int] = set()
    for model in _models(policies):
        for p in model.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            n, cpu = _nbytes(p)
            out["params"] += n
            out["params_trainable" if p.requires_grad else "params_frozen"] += n
            out["params_cpu"] += n if cpu else 0
            if p.grad is not None:
                g, gcpu = _nbytes(p.grad)
                out["grads"] += g
                out["grads_cpu"] += g if gcpu else 0
    seen_opt: set[int] = set()
    seen_state: set[int] = set()
    for opt in optimizers.values():
        if id(opt) in seen_opt:
            continue
        seen_opt.add(id(opt))
        for state in opt.state.values():
            for v in state.values():
                if isinstance(v, torch.Tensor) and id(v) not in seen_state:
                    seen_state.add(id(v))
                    n, cpu = _nbytes(v)
                    out["optimizer"] += n
                    out["optimizer_cpu"] += n if cpu else 0
    out["total"] = out["params"] + out["grads"] + out["optimizer"]
    return out


def plan_rows(plan: Mapping[str, Any]) -> list[str]:
    """The parts that are not zero in some layout of ``plan``, in :data:`PARTS` order."""
    return [part for part in PARTS if any(col["parts"][part] for col in plan["layouts"].values())]

