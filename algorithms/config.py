"""Training configuration: one dataclass per configurable thing, every field documented.

Defaults reproduce the reference recipe of docs/method.md#estimators-and-losses (separate Thinker and Solver models,
both roles sampled each step, one role updated per step alternating every 10 steps starting
with the Thinker, 16 rollouts per problem, AdamW at lr 1e-6, grad clip 1.0, no KL, GRPO
advantages without the std (Dr. GRPO) and the GSPO sequence-level loss with ε = 3e-4/4e-4).
Presets (:data:`PRESETS`) adapt them to a machine: ``tiny-arith`` for a laptop CPU,
``smollm2-arith`` for a real small LLM on CPU, and GPU presets with the paper's settings.

Any field can be overridden from the command line as ``section.field=value``
(:func:`apply_overrides`); :meth:`TrainerConfig.validate` names the field and the allowed range
of any invalid value. It only reads: the allowed names come from the registries
(``credit.available()``, ``estimators.available()``, ``losses.available()``) and from the
``Literal[...]`` annotations of the fields (whose values the registries own: ``estimators.Scale``,
``losses.AggMode``, ``losses.KLType``, the env's roles), the sampling fields are checked by
:class:`~algorithms.rollout.Sampling`. What needs an import or an object is done by whoever
starts the run, in this order: :meth:`TrainerConfig.load_plugins` (imports ``plugins``, so that
their credit methods are registered), :meth:`TrainerConfig.validate`, and
:meth:`CreditConfig.build` (the credit method, which checks its parameters' values); the
trainer's ``_check`` phase and ``thinksolve train`` do all three.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import difflib
import functools
import inspect
import json
import re
import textwrap
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from thinksolve_env import ROLES
from thinksolve_env.prompts import CHAIN_TEMPLATES, PromptSet, prompt_set

from . import credit
from .optim import estimators, losses
from .optim.estimators import Scale
from .optim.losses import AggMode, KLType
from .rollout.sampling import Sampling, SamplingError

__all__ = [
    "ModelConfig", "ParallelConfig",
    "RolloutConfig", "CreditConfig", "OptimConfig", "ScheduleConfig", "WarmStartConfig", "TrainerConfig",
    "PRESETS", "preset", "apply_overrides", "ConfigError", "list_fields", "field_docs", "OPTIMIZERS", "apply_optimizer",
    "apply_credit", "PROMPT_SETS", "prompt_templates", "env_options", "GPU_PRESETS", "LOGGERS",
]

#: What ``report_to`` may name (TRL's names): each but ``none`` is an optional extra of the package.
LOGGERS = ("tensorboard", "wandb", "none")

#: What a role's name may be (it names files, metrics keys and LoRA adapters).
_ROLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

#: Model names the warm start applies to (``agents.models.PRESETS``).
BUILTIN_MODELS = ("tiny", "smollm2-135m")


class ConfigError(ValueError):
    """An invalid configuration value; the message names the field and what is allowed."""


@dataclass
class ModelConfig:
    name: str = "Qwen/Qwen2.5-1.5B-Instruct"
    """Model for both roles: ``tiny``, ``smollm2-135m``, a local path or a hub id."""
    solver_name: str | None = None
    """A different model for the Solver, the last role of the team (``None``: the same as ``name``)."""
    role_models: dict = field(default_factory=dict)
    """A model per role for the roles it names (role -> model name, ``sharing=separate`` only),
    e.g. ``{"relay_0": "smollm2-135m"}``; the others use ``name`` (the last role ``solver_name``
    when set)."""
    sharing: Literal["separate", "shared", "lora"] = "separate"
    """``separate``: one full model per role (reference); ``shared``: one model for every role,
    role prompts only; ``lora``: one frozen base with a LoRA adapter per role."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Parameter dtype: float32, bfloat16 or float16."""
    device: str = "cpu"
    """Torch device for training (``cuda`` on GPUs)."""
    gradient_checkpointing: bool = False
    """Trade compute for activation memory."""
    lora_rank: int = 16
    """LoRA rank when ``sharing == "lora"``."""
    lora_alpha: int = 32
    """LoRA alpha when ``sharing == "lora"``."""

    def name_of(self, role: str, roles: Sequence[str]) -> str:
        """The model name role ``role`` of the team ``roles`` loads under ``sharing=separate``:
        ``role_models[role]``, else ``solver_name`` for the last role when set, else ``name``."""
        if role in self.role_models:
            return self.role_models[role]
        if role == roles[-1] and self.solver_name:
            return self.solver_name
        return self.name


@dataclass
class ParallelConfig:
    """How the ranks of a multi-process run (``torchrun`` or ``accelerate launch``) share the
    training; on one process both strategies are plain training."""

    strategy: Literal["ddp", "fsdp"] = "ddp"
    """``ddp``: every rank holds each role's whole model, gradients and AdamW state (gradients
    all-reduced); ``fsdp``: FSDP2 (``torch.distributed.fsdp.fully_shard``) shards them across the
    ranks: float32 master weights, gradients and optimizer state split, compute in ``model.dtype``,
    gradients reduced in float32."""
    offload: bool = False
    """fsdp: keep the sharded parameters, gradients and optimizer state in CPU memory (the
    optimizer steps on the CPU): slower, for models that do not fit on the GPUs otherwise."""
    offload_idle: bool = True
    """Under the alternating schedule, move the idle role's optimizer state to CPU memory until its
    turn (and, when a vLLM engine serves its rollouts, its training weights too). A no-op on CPU."""
    replicas: int = 1
    """fsdp: hybrid sharding (HSDP): shard each model within groups of WORLD_SIZE / replicas ranks
    and replicate across the groups (set it to the number of nodes, so that sharding traffic stays
    inside a node). 1: shard across every rank."""
    memory_check: bool = True
    """On CUDA, refuse before loading anything a run whose memory plan (``thinksolve plan``) does
    not fit the GPUs; false starts it anyway (the plan is an estimate: see docs/scale.md)."""


@dataclass
class RolloutConfig:
    problems_per_step: int = 8
    """Problems sampled per training step."""
    group_size: int = 16
    """Joint rollouts per problem (n)."""
    solo_samples: int | None = None
    """Thinker-removed samples per problem (m); ``None`` = ``group_size`` as in the reference."""
    answers_per_thought: int = 1
    """Solver answers per thought (K, tree rollouts, docs/method.md#tree-credit): each of the ``group_size``
    thoughts gets K answers, so a step has ``group_size``·K joint Solver answers; the Thinker's
    tokens of a thought enter its loss once. 1 = flat collection."""
    roles: list = field(default_factory=lambda: list(ROLES))
    """The team: its agent names in chain order (at least two, distinct; letters, digits and
    ``_``). The first role plays the Thinker's part (thinker prompts, the briefing), the last the
    Solver's (its ``\\boxed{}`` answer is verified), any between are middle roles that see the
    problem and the messages before them (``["planner_0", "relay_0", "solver_0"]``)."""
    thinker_max_new_tokens: int = 4096
    """Thinker generation budget (tokens): the first role's, and a middle role's unless
    ``role_max_new_tokens`` names it."""
    solver_max_new_tokens: int = 6144
    """Solver generation budget (tokens): the last role's."""
    role_max_new_tokens: dict = field(default_factory=dict)
    """Generation budget per role (role -> tokens) for the roles it names; it overrides
    ``thinker_max_new_tokens`` / ``solver_max_new_tokens`` for them."""
    rating_max_new_tokens: int = 512
    """SEPO rating budget (tokens)."""
    max_prompt_tokens: int = 4096
    """Prompts longer than this are cut from the left of the user content."""
    temperature: float = 1.0
    """Sampling temperature for training rollouts."""
    rating_temperature: float | None = None
    """Sampling temperature of the SEPO ratings (not trained on); ``None`` = ``temperature``,
    0 = greedy ratings."""
    top_p: float = 1.0
    """Nucleus sampling threshold."""
    engine: Literal["transformers", "vllm"] = "transformers"
    """Rollout engine; ``vllm`` syncs weights from the trainable policy after each update."""
    vllm: dict = field(default_factory=dict)
    """Extra ``vllm.LLM`` arguments for ``engine=vllm`` (e.g. ``{"max_num_batched_tokens": 1024,
    "gpu_memory_utilization": 0.3}``; see :class:`~agents.vllm_policy.VLLMPolicy`)."""
    prompts: str = "default"
    """Role prompt templates (:data:`PROMPT_SETS`): ``default`` (the env's), or ``compact``
    (one-line prompts with the same roles and formats, for tiny models: 5x fewer tokens)."""

    def max_new_tokens(self, role: str) -> int:
        """Role ``role``'s generation budget: ``role_max_new_tokens[role]``, else
        ``solver_max_new_tokens`` for the last role and ``thinker_max_new_tokens`` for the others."""
        if role in self.role_max_new_tokens:
            return self.role_max_new_tokens[role]
        return self.solver_max_new_tokens if role == self.roles[-1] else self.thinker_max_new_tokens

    def budgets(self) -> dict[str, int]:
        """Every role's generation budget (:meth:`max_new_tokens`), in chain order."""
        return {role: self.max_new_tokens(role) for role in self.roles}

    def sampling(self, seed: int | None = None) -> Sampling:
        """The :class:`~algorithms.rollout.Sampling` of a collection with these settings, seeded
        with ``seed`` (a training step's seed; evaluation replaces the temperature). The first
        and last roles' budgets are the Thinker's and the Solver's; a team of more than two
        roles also passes every role's budget (:meth:`budgets`)."""
        first, last = self.roles[0], self.roles[-1]
        kw: dict[str, Any] = {}
        if tuple(self.roles) != ROLES or self.role_max_new_tokens:
            kw = _role_budgets(self.budgets())
        return Sampling(temperature=self.temperature, top_p=self.top_p, seed=seed,
                        thinker_max_new_tokens=self.max_new_tokens(first),
                        solver_max_new_tokens=self.max_new_tokens(last),
                        rating_max_new_tokens=self.rating_max_new_tokens, rating_temperature=self.rating_temperature,
                        **kw)


#: Named prompt-template overrides of :class:`thinksolve_env.prompts.PromptSet`.
PROMPT_SETS: dict[str, dict[str, str]] = {
    "default": {},
    "compact": {
        "thinker_system": "Thinker: list the intermediate results, no final answer.",
        "thinker_briefing_user": "{problem}\nNotes: {briefing}",
        "solver_system": "Solver: use the thought; answer in \\boxed{}.",
        "solver_user": "{problem}\nThought: {thought}",
        "solo_system": "Solver: answer in \\boxed{}.",
        "rater_system": "Rater: reply with JSON: outcome, pair, brief_reason.",
        "rater_user": "{problem}\nThought: {thought}\nAnswer: {answer}\nOutcome: {outcome}. You are the {role}.",
    },
}


def env_options(rollout: RolloutConfig) -> dict[str, Any]:
    """The :class:`~thinksolve_env.ThinkSolveEnv` options of a collection with ``rollout``'s
    settings: its prompt set, and its ``roles`` when the team is not the default Thinker and
    Solver (so that a two-role collection's options are what they always were)."""
    out: dict[str, Any] = {"prompts": prompt_templates(rollout.prompts)}
    if tuple(rollout.roles) != ROLES:
        out["roles"] = tuple(rollout.roles)
    return out


def _role_budgets(budgets: dict[str, int]) -> dict[str, Any]:
    """The :class:`~algorithms.rollout.Sampling` keywords that carry every role's budget."""
    names = {f.name for f in dataclasses.fields(Sampling)}
    return {"role_max_new_tokens": dict(budgets)} if "role_max_new_tokens" in names else {}


def prompt_templates(name: str) -> PromptSet:
    """The :class:`~thinksolve_env.prompts.PromptSet` named ``name``: its templates
    (:data:`PROMPT_SETS`) and the middle roles' of a chain of three or more roles in the same style
    (``thinksolve_env.prompts.CHAIN_TEMPLATES``, unused by a two-role team)."""
    if name not in PROMPT_SETS:
        raise ConfigError(f"unknown prompt set {name!r}; choose from {sorted(PROMPT_SETS)}")
    return prompt_set(**PROMPT_SETS[name], **CHAIN_TEMPLATES.get(name, {}))


@dataclass
class CreditConfig:
    name: str = "ccpo"
    """Credit method (see ``algorithms.credit.available()``)."""
    params: dict = field(default_factory=dict)
    """Keyword parameters of the method, e.g. ``{"variant": "event", "lam": 0.2}``."""

    def build(self) -> credit.CreditMethod:
        """The credit method, built with ``params`` (where their values are checked): a
        :class:`ConfigError` naming ``credit.params`` when the method refuses them."""
        try:
            return credit.get(self.name, **self.params)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"credit.params={self.params!r} is invalid for credit.name={self.name!r}: {e}") from None


@dataclass
class OptimConfig:
    estimator: str = "grpo"
    """Advantage estimator: grpo, dr_grpo, rloo, reinforce++, reinforce++-baseline."""
    scale: Scale = "none"
    """GRPO std scaling: group, batch or none (``none`` = Dr. GRPO, the reference default)."""
    loss: str = "gspo"
    """Policy loss: ``grpo`` (token-level ratio) or ``gspo`` (sequence-level ratio)."""
    agg: AggMode = "seq-mean-token-mean"
    """Loss aggregation: token-mean, seq-mean-token-mean, seq-mean-token-sum, seq-mean-token-sum-norm-verl
    (Σℓm/L), seq-mean-token-sum-norm-trl (TRL dr_grpo, Σℓm/(B'·L)); seq-mean-token-sum-norm is the -trl one."""
    clip_low: float = 3e-4
    """Lower clip ε (ratio ≥ 1 − ε)."""
    clip_high: float = 4e-4
    """Upper clip ε (ratio ≤ 1 + ε)."""
    dual_clip: float | None = None
    """Dual-clip constant c (> 1) for negative advantages; ``None`` disables it."""
    kl_coef: float = 0.0
    """KL penalty coefficient β to a frozen reference policy (0 = no reference model)."""
    kl_type: KLType = "k3"
    """KL estimator: k1 or k3."""
    lr: float = 1e-6
    """AdamW learning rate (constant after warm-up)."""
    warmup_steps: int = 0
    """Linear warm-up of the learning rate, in optimizer steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient-norm clip (0 disables)."""
    ppo_epochs: int = 1
    """Updates per rollout batch (PPO-style reuse; old log-probs come from sampling time)."""
    micro_batch_tokens: int = 8192
    """Token budget of one forward/backward micro-batch."""


@dataclass
class ScheduleConfig:
    mode: Literal["alternate", "simultaneous"] = "alternate"
    """``alternate``: one role updated per step, the roles in chain order; ``simultaneous``:
    every role every step."""
    period: int = 10
    """Steps before the updated role switches (alternate mode)."""
    start_role: str | None = "thinker_0"
    """Role updated first (alternate mode): one of ``rollout.roles`` (``None``: the first)."""


@dataclass
class WarmStartConfig:
    """The supervised format warm-up of ``algorithms.warmstart`` (for a randomly initialised
    ``tiny`` model; cached per machine, keyed by every field but ``enabled``)."""

    enabled: bool = False
    """Run (or reuse) the warm start and start both roles from it."""
    data: str = "arith:n=3000,difficulty=1"
    """Problems with ``meta["steps"]`` (the ``arith:`` task)."""
    steps: int = 250
    """Supervised optimizer steps."""
    batch_size: int = 32
    """Examples per step."""
    lr: float = 3e-3
    """AdamW learning rate (linear decay to 10%)."""
    seed: int = 0
    """Seed of the initial weights and the example order (independent of the run's seed, so one
    warm start serves every run)."""
    model_config: dict = field(default_factory=dict)
    """Config overrides of the built-in ``tiny`` model before the warm start, e.g.
    ``{"hidden_size": 256, "num_hidden_layers": 4}`` (ignored for other models)."""


@dataclass
class TrainerConfig:
    train_data: str = "arith:n=5000,difficulty=2"
    """Training problems (anything ``load_problems`` reads)."""
    eval_data: str = "arith:n=200,difficulty=2,split=test"
    """Held-out problems for evaluation."""
    steps: int = 100
    """Training steps."""
    seed: int = 0
    """Seed for problem order, sampling and initialisation."""
    out: str = "runs/default"
    """Output directory (metrics.jsonl, checkpoint/)."""
    save_every: int = 10
    """Steps between checkpoints (the last step is always saved)."""
    eval_every: int = 0
    """Steps between evaluations on ``eval_data`` (0: none during training; ``thinksolve eval``)."""
    eval_samples: int = 1
    """Samples per problem in evaluations (mean@k)."""
    eval_temperature: float = 1.0
    """Sampling temperature of evaluations (0 = greedy)."""
    tensorboard: bool = True
    """Deprecated alias of ``report_to``, read only while ``report_to`` is empty: true mirrors the
    metrics to TensorBoard when it is installed (a note when it is not), false to nothing."""
    report_to: list | str | None = field(default_factory=list)
    """Where the metrics rows are mirrored besides ``OUT/metrics.jsonl``, as in TRL: a list of
    ``tensorboard`` (``OUT/tensorboard/``), ``wandb`` (Weights & Biases, ``OUT/wandb/``, offline
    unless ``WANDB_MODE`` says otherwise) or ``none``. A logger named here whose package is missing
    is an error naming the extra to install (``pip install 'thinksolve[wandb]'``). Empty: the
    ``tensorboard`` field decides."""
    samples_every: int = 10
    """Steps between writes of sample episodes (problem, thought, answer, verdict, per-role credit
    and advantage) to ``OUT/samples.jsonl``; step 1 and the last step are always written. 0: none."""
    samples_per_write: int = 4
    """Episodes per write of ``OUT/samples.jsonl`` (one per problem first, then a second per problem, ...)."""
    threads: int = 0
    """torch CPU threads (0: torch's default). 1 is fastest for the tiny model on a busy CPU."""
    plugins: list = field(default_factory=list)
    """Python files or module names imported before the run, e.g. ``["examples/event_both.py"]``:
    they register credit methods (``algorithms.credit.register``) that ``credit.name`` can use."""
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    credit: CreditConfig = field(default_factory=CreditConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)

    # -- (de)serialisation ------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainerConfig:
        return _from_dict(cls, d, "")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def loggers(self) -> tuple[list[str], bool]:
        """``(names, explicit)``: the loggers the metrics are mirrored to (:data:`LOGGERS`), and
        whether ``report_to`` named them (a missing package is then an error) or the deprecated
        ``tensorboard`` flag did (a missing package is then a note). A ``ValueError`` says what
        ``report_to`` allows."""
        names = self.report_to.split(",") if isinstance(self.report_to, str) else self.report_to
        if names is None:
            return [], True
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
            raise ValueError("a list of " + "|".join(LOGGERS))
        names = [n.strip().lower() for n in names if n.strip()]
        if not names:
            return (["tensorboard"] if self.tensorboard else []), False
        bad = [n for n in names if n not in LOGGERS]
        if bad or ("none" in names and len(set(names)) > 1):
            raise ValueError("a list of " + "|".join(LOGGERS) + " (none alone)")
        return [n for n in dict.fromkeys(names) if n != "none"], True

    # -- plugins and validation ------------------------------------------------------------
    def load_plugins(self) -> list:
        """Import every ``plugins`` entry (:func:`algorithms.credit.load_plugin`), so that the
        credit methods they register can be named by ``credit.name``; returns the modules. A
        plugin that cannot be imported is a :class:`ConfigError` naming it. A ``.py`` file is
        recorded by its absolute path (:func:`algorithms.credit.plugin_source`), each file once, so
        that a run resumes with its plugins from any working directory."""
        _check_plugins_field(self.plugins)
        self.plugins = list(dict.fromkeys(credit.plugin_source(p) for p in self.plugins))
        modules = []
        for source in self.plugins:
            try:
                modules.append(credit.load_plugin(source))
            except Exception as e:  # the plugin's own code failing is a plugin that cannot be loaded too
                raise ConfigError(f"plugins: cannot load {source!r}: {e}") from e
        return modules

    def _validate_roles(self, need: Any) -> None:
        """The team (``rollout.roles``) and the fields that name its roles."""
        r, m, s = self.rollout, self.model, self.schedule
        roles = r.roles
        need(isinstance(roles, (list, tuple)) and len(roles) >= 2 and len(set(map(str, roles))) == len(roles)
             and all(isinstance(x, str) and _ROLE_NAME.fullmatch(x) for x in roles), "rollout.roles",
             "a list of at least two distinct names of letters, digits and _, in chain order (first: the Thinker's "
             "part, last: the Solver's)", roles)
        named = "a mapping whose keys are roles of rollout.roles (" + "|".join(roles) + ")"
        budgets = r.role_max_new_tokens
        need(isinstance(budgets, dict) and set(budgets) <= set(roles), "rollout.role_max_new_tokens", named, budgets)
        need(all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in budgets.values()),
             "rollout.role_max_new_tokens", "token budgets that are integers >= 1", budgets)
        need(isinstance(m.role_models, dict) and set(m.role_models) <= set(roles), "model.role_models", named,
             m.role_models)
        need(all(isinstance(v, str) and v.strip() for v in m.role_models.values()), "model.role_models",
             "model names (non-empty strings)", m.role_models)
        need(not m.role_models or m.sharing == "separate", "model.role_models",
             f"{{}} with model.sharing={m.sharing!r} (one model serves every role there; a model per role needs "
             "model.sharing=separate)", m.role_models)
        need(s.start_role is None or s.start_role in roles, "schedule.start_role",
             "|".join(roles) + " (a role of rollout.roles) or None (the first)", s.start_role)

    def validate(self) -> TrainerConfig:
        """Raise :class:`ConfigError` naming the first invalid field and its allowed range.

        Nothing is imported, built or written: plugins are loaded before (:meth:`load_plugins`)
        and the credit method's parameter values are checked when it is built
        (:meth:`CreditConfig.build`); here its parameter *names* are checked."""
        def need(ok: bool, name: str, allowed: str, value: Any) -> None:
            if not ok:
                raise ConfigError(f"{name}={value!r} is invalid: allowed {allowed}")

        r, o, s, m = self.rollout, self.optim, self.schedule, self.model
        for name, value, allowed in _literal_fields(self):
            need(value in allowed, name, "|".join(map(str, allowed)), value)
        need(self.steps >= 1, "steps", ">= 1", self.steps)
        need(self.save_every >= 1, "save_every", ">= 1", self.save_every)
        need(self.eval_every >= 0, "eval_every", ">= 0", self.eval_every)
        need(self.eval_samples >= 1, "eval_samples", ">= 1", self.eval_samples)
        need(self.eval_temperature >= 0, "eval_temperature", ">= 0 (0 = greedy)", self.eval_temperature)
        need(self.threads >= 0, "threads", ">= 0 (0 = torch default)", self.threads)
        need(isinstance(self.samples_every, int) and self.samples_every >= 0, "samples_every", ">= 0 (0 = none)",
             self.samples_every)
        need(isinstance(self.samples_per_write, int) and self.samples_per_write >= 1, "samples_per_write", ">= 1",
             self.samples_per_write)
        try:
            self.loggers()
        except ValueError as e:
            raise ConfigError(f"report_to={self.report_to!r} is invalid: allowed {e}") from None
        w = self.warm_start
        need(w.steps >= 1, "warm_start.steps", ">= 1", w.steps)
        need(w.batch_size >= 1, "warm_start.batch_size", ">= 1", w.batch_size)
        need(w.lr > 0, "warm_start.lr", "> 0", w.lr)
        self._validate_roles(need)
        for name in filter(None, (self.model.name, self.model.solver_name, *self.model.role_models.values())):
            need(not w.enabled or name in BUILTIN_MODELS, "warm_start.enabled",
                 f"false with model {name!r}: the format warm start is for the built-in models "
                 f"({', '.join(BUILTIN_MODELS)}); on another model it would first train it for warm_start.steps="
                 f"{w.steps} supervised steps (minutes) before RL. Set warm_start.enabled=false to train it as it is",
                 w.enabled)
        _check_plugins_field(self.plugins)
        for source in self.plugins:
            try:
                credit.check_plugin(source)  # there to be loaded (nothing is imported here)
            except (ImportError, OSError, ValueError) as e:
                raise ConfigError(f"plugins: cannot load {source!r}: {e}") from e
        unloaded = [p for p in self.plugins if not credit.plugin_loaded(p)]
        need(self.credit.name in credit.available(), "credit.name", "|".join(credit.available()) + (
            f" (plugins {unloaded} are not loaded yet, so their methods are not registered: call "
            "config.load_plugins() before validate(); the Trainer and `thinksolve train` do)" if unloaded else ""),
            self.credit.name)
        need(isinstance(self.credit.params, dict), "credit.params", "a mapping of the method's parameters", self.credit.params)
        try:  # the parameter names, from the method's signature (their values: CreditConfig.build)
            credit.check_params(self.credit.name, self.credit.params)
        except TypeError as e:
            raise ConfigError(f"credit.params={self.credit.params!r} is invalid for "
                              f"credit.name={self.credit.name!r}: {e}") from None
        need(o.estimator in estimators.available(), "optim.estimator", "|".join(estimators.available()), o.estimator)
        need(o.loss in losses.available(), "optim.loss", "|".join(losses.available()), o.loss)
        need(m.lora_rank >= 1, "model.lora_rank", ">= 1", m.lora_rank)
        need(m.solver_name is None or m.sharing == "separate", "model.solver_name",
             f"None with model.sharing={m.sharing!r} (one model serves both roles there; a different Solver "
             "model needs model.sharing=separate)", m.solver_name)
        need(r.problems_per_step >= 1, "rollout.problems_per_step", ">= 1", r.problems_per_step)
        need(r.group_size >= 2, "rollout.group_size", ">= 2 (a group needs a baseline)", r.group_size)
        need(r.solo_samples is None or r.solo_samples >= 1, "rollout.solo_samples", ">= 1 or None", r.solo_samples)
        need(isinstance(r.answers_per_thought, int) and not isinstance(r.answers_per_thought, bool)
             and r.answers_per_thought >= 1, "rollout.answers_per_thought", "an integer >= 1", r.answers_per_thought)
        need(r.max_prompt_tokens >= 1, "rollout.max_prompt_tokens", ">= 1", r.max_prompt_tokens)
        need(not isinstance(r.temperature, (int, float)) or r.temperature > 0, "rollout.temperature",
             "> 0 (training samples; at 0 every rollout of a group is the same greedy answer, so every "
             "advantage is 0 and nothing is learnt)", r.temperature)
        try:  # temperature, top_p, the token budgets, rating_temperature: the rollout's own checks
            r.sampling(seed=None)
        except SamplingError as e:
            raise ConfigError(f"rollout.{e.field}={e.value!r} is invalid: allowed {e.allowed}") from None
        need(r.prompts in PROMPT_SETS, "rollout.prompts", "|".join(PROMPT_SETS), r.prompts)
        need(0 <= o.clip_low < 1, "optim.clip_low", "[0, 1)", o.clip_low)
        need(o.clip_high >= 0, "optim.clip_high", ">= 0", o.clip_high)
        need(o.dual_clip is None or o.dual_clip > 1, "optim.dual_clip", "> 1 or None", o.dual_clip)
        need(o.kl_coef >= 0, "optim.kl_coef", ">= 0", o.kl_coef)
        need(o.lr > 0, "optim.lr", "> 0", o.lr)
        need(o.warmup_steps >= 0, "optim.warmup_steps", ">= 0", o.warmup_steps)
        need(o.grad_clip >= 0, "optim.grad_clip", ">= 0 (0 disables)", o.grad_clip)
        need(o.ppo_epochs >= 1, "optim.ppo_epochs", ">= 1", o.ppo_epochs)
        need(o.micro_batch_tokens >= 1, "optim.micro_batch_tokens", ">= 1", o.micro_batch_tokens)
        need(s.period >= 1, "schedule.period", ">= 1", s.period)
        p = self.parallel
        need(isinstance(p.replicas, int) and p.replicas >= 1, "parallel.replicas", "an integer >= 1", p.replicas)
        need(p.replicas == 1 or p.strategy == "fsdp", "parallel.replicas",
             "1 with parallel.strategy=ddp (hybrid sharding replicates shards: it needs fsdp)", p.replicas)
        need(not p.offload or p.strategy == "fsdp", "parallel.offload",
             "false with parallel.strategy=ddp (CPU offload of sharded state needs parallel.strategy=fsdp)", p.offload)
        return self


def _check_plugins_field(plugins: Any) -> None:
    if not (isinstance(plugins, (list, tuple)) and all(isinstance(p, str) for p in plugins)):
        raise ConfigError(f"plugins={plugins!r} is invalid: allowed a list of .py paths or module names")


def _literal_fields(obj: Any, prefix: str = "") -> list[tuple[str, Any, tuple]]:
    """``(dotted name, value, allowed values)`` of every field of ``obj`` (sections walked)
    annotated ``Literal[...]`` (or ``Literal[...] | None``, which also allows ``None``)."""
    out = []
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        if dataclasses.is_dataclass(value):
            out += _literal_fields(value, f"{prefix}{f.name}.")
            continue
        options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
        literals = [a for a in options if typing.get_origin(a) is Literal]
        if literals:
            allowed = tuple(v for a in literals for v in typing.get_args(a))
            out.append((prefix + f.name, value, allowed + ((None,) if type(None) in options else ())))
    return out


def _from_dict(cls, d: dict, prefix: str):
    if not isinstance(d, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ConfigError(f"unknown config field(s) {sorted(prefix + u for u in unknown)}; "
                          f"known: {sorted(prefix + n for n in names)}")
    kwargs = {}
    for k, v in d.items():
        t = hints[k]
        kwargs[k] = _from_dict(t, v, f"{prefix}{k}.") if dataclasses.is_dataclass(t) else copy.deepcopy(v)
    return cls(**kwargs)


# --------------------------------------------------------------------------- overrides


def _json_of(value: str, kind: type, name: str, allowed: str) -> Any:
    """``value`` parsed as JSON of type ``kind``, else a ConfigError naming the field."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, kind):
        raise ConfigError(f"{name}={value!r} is invalid: allowed {allowed}")
    return parsed


def _coerce(value: str, current: Any, name: str) -> Any:
    if value.lower() in ("none", "null"):
        return None
    if isinstance(current, bool):
        if value.lower() in ("true", "1", "yes", "on"):
            return True
        if value.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{name}={value!r} is invalid: allowed true|false")
    if isinstance(current, list):
        if value.lstrip().startswith("["):
            return _json_of(value, list, name, "a JSON list or comma-separated values")
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(current, dict):
        return _json_of(value, dict, name, "a JSON object")
    for kind in (int, float):
        if isinstance(current, kind) or current is None:
            try:
                return kind(value)
            except ValueError:
                if current is not None:
                    raise ConfigError(f"{name}={value!r} is invalid: allowed a {kind.__name__}") from None
    return value


def apply_overrides(config: TrainerConfig, overrides: list[str]) -> TrainerConfig:
    """Return a copy of ``config`` with ``section.field=value`` overrides applied.

    ``credit.params.lam=0.5`` sets one key of a dict field. Unknown fields are an error that
    lists the known ones.
    """
    config = copy.deepcopy(config)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} is not field=value")
        parts = key.strip().split(".")
        obj: Any = config
        for i, part in enumerate(parts[:-1]):
            if isinstance(obj, dict):
                obj = obj.setdefault(part, {})
                continue
            if not hasattr(obj, part):
                fields = dataclasses.fields(obj) if dataclasses.is_dataclass(obj) else ()
                sections = sorted(f.name for f in fields if dataclasses.is_dataclass(getattr(obj, f.name)))
                near = difflib.get_close_matches(part, [f.name for f in fields], n=1)
                hint = f"did you mean {'.'.join([*parts[:i], near[0]])!r}? " if near else ""
                raise ConfigError(f"unknown config section {'.'.join(parts[: i + 1])!r}; {hint}sections here: {sections} "
                                  "(thinksolve train --list-fields lists every field)")
            obj = getattr(obj, part)
        last = parts[-1]
        if isinstance(obj, dict):
            obj[last] = _coerce(value, obj.get(last), key)
            continue
        if not dataclasses.is_dataclass(obj) or last not in {f.name for f in dataclasses.fields(obj)}:
            known = sorted(f.name for f in dataclasses.fields(obj)) if dataclasses.is_dataclass(obj) else []
            near = difflib.get_close_matches(last, known, n=1)
            hint = f" (did you mean {'.'.join([*parts[:-1], near[0]])!r}?)" if near else ""
            raise ConfigError(f"unknown config field {key!r}{hint}; known here: {known}")
        current = getattr(obj, last)
        if dataclasses.is_dataclass(current):
            first = dataclasses.fields(current)[0].name
            raise ConfigError(f"{key!r} is a section; set one of its fields, e.g. {key}.{first}=...")
        setattr(obj, last, _coerce(value, current, key))
    return config


# --------------------------------------------------------------------------- presets


def _tiny_arith() -> TrainerConfig:
    # The randomly initialised `tiny` model is warm-started (formats and some arithmetic) on the
    # compact prompts, then CCPO raises the team's held-out accuracy in minutes on a laptop CPU.
    return TrainerConfig(
        train_data="arith:n=3000,difficulty=1",
        eval_data="arith:n=200,difficulty=1,split=test",
        steps=150,
        out="runs/tiny-arith",
        save_every=50,
        eval_every=50,  # an evaluation (200 problems x 2 samples, about 1.7 s) costs about 4 steps: 3 of them add ~8%
        eval_samples=2,
        eval_temperature=1.0,
        threads=1,
        warm_start=WarmStartConfig(enabled=True, data="arith:n=3000,difficulty=1", steps=600, batch_size=32, lr=3e-3),
        model=ModelConfig(name="tiny", sharing="separate"),
        rollout=RolloutConfig(problems_per_step=8, group_size=8, solo_samples=4, thinker_max_new_tokens=32,
                              solver_max_new_tokens=24, rating_max_new_tokens=48, max_prompt_tokens=256,
                              prompts="compact"),
        optim=OptimConfig(estimator="grpo", scale="none", loss="grpo", agg="token-mean", clip_low=0.2, clip_high=0.2,
                          lr=3e-5, micro_batch_tokens=8192),
        schedule=ScheduleConfig(period=5),
    )


def _tiny_brief() -> TrainerConfig:
    # The laptop testbed where the Thinker matters (README "A testbed where the Thinker matters"):
    # briefed single-digit arithmetic. Only the Thinker sees the worked steps; the Solver cannot
    # compute them (about 10% alone). The warm start (350 steps, under a minute on 2 cores,
    # cached) teaches both roles to relay the result, then mixes in garbled, empty-handed and
    # answer-stating thoughts and Solver slips, so RL has something to fix and every credit
    # method something to rank.
    data = "arith:n=3000,difficulty=1,brief=1,digit=1"
    return TrainerConfig(
        train_data=data,
        eval_data="arith:n=200,difficulty=1,split=test,brief=1,digit=1",
        steps=150,
        out="runs/tiny-brief",
        save_every=50,
        eval_every=50,  # an evaluation (200 problems x 4 samples, about 2.9 s) costs about 7 steps: 3 of them add ~14%
        tensorboard=False,
        eval_samples=4,
        eval_temperature=1.0,
        threads=1,
        warm_start=WarmStartConfig(enabled=True, data=data, steps=350, batch_size=32, lr=3e-3,
                                   model_config={"split_digits": True}),
        model=ModelConfig(name="tiny", sharing="separate"),
        rollout=RolloutConfig(problems_per_step=8, group_size=8, solo_samples=4, thinker_max_new_tokens=16,
                              solver_max_new_tokens=24, rating_max_new_tokens=96, max_prompt_tokens=256,
                              rating_temperature=0.0, prompts="compact"),
        optim=OptimConfig(estimator="grpo", scale="none", loss="grpo", agg="token-mean", clip_low=0.2, clip_high=0.2,
                          lr=1e-4, micro_batch_tokens=8192),
        schedule=ScheduleConfig(period=5),
    )


def _tiny_relay() -> TrainerConfig:
    # The laptop testbed of a three-role chain where the middle role matters (docs/training.md, "the
    # tiny-relay testbed"): planner_0 -> relay_0 -> solver_0 on arith relay=1, two-digit answers
    # whose tens digit only the planner sees and whose ones digit only the relay sees. Without the
    # relay the solver has the tens digit and guesses the other; without the planner the relay
    # guesses the tens. The tiny model warm-starts on the chain's formats (faithful texts first,
    # then garbled digits, empty-handed planners, relays that pass on only their own digit, and
    # solver slips) and RL fixes what the warm start left imperfect.
    data = "arith:n=3000,difficulty=1,relay=1"
    cfg = _tiny_brief()
    cfg.train_data, cfg.eval_data = data, "arith:n=200,difficulty=1,split=test,relay=1"
    cfg.out = "runs/tiny-relay"
    cfg.warm_start = dataclasses.replace(cfg.warm_start, data=data, steps=500)
    cfg.rollout = dataclasses.replace(cfg.rollout, roles=["planner_0", "relay_0", "solver_0"],
                                      thinker_max_new_tokens=16, solver_max_new_tokens=16)
    cfg.schedule = ScheduleConfig(period=5, start_role="planner_0")
    return cfg


def _smollm2_arith() -> TrainerConfig:
    # Out of the box SmolLM2-135M-Instruct rarely ends with a \boxed{} answer in 96 tokens (team
    # accuracy near 0, so every group is all-wrong and nothing is learnt); 60 supervised format
    # steps (about 6 min on 2 CPU cores, cached per machine) bring it to about 60% on held-out
    # difficulty-1 problems, where rewards vary within groups.
    return TrainerConfig(
        train_data="arith:n=2000,difficulty=1",
        eval_data="arith:n=50,difficulty=1,split=test",
        steps=10,
        out="runs/smollm2-arith",
        save_every=5,
        eval_every=0,  # an evaluation of 50 problems costs 3-5 of its 10 steps: evaluate the run afterwards

        warm_start=WarmStartConfig(enabled=True, data="arith:n=2000,difficulty=1", steps=60, batch_size=8, lr=2e-5),
        model=ModelConfig(name="smollm2-135m", sharing="shared"),
        rollout=RolloutConfig(problems_per_step=2, group_size=4, solo_samples=2, thinker_max_new_tokens=96,
                              solver_max_new_tokens=96, rating_max_new_tokens=64, max_prompt_tokens=512),
        optim=OptimConfig(lr=2e-6),
        schedule=ScheduleConfig(period=2),
    )


def _smollm2_brief() -> TrainerConfig:
    # The real instruct model on tiny-brief's task: SmolLM2-135M-Instruct as two separate models.
    # Out of the box, at temperature 1 it rambles and never reaches an answer (0/24 team episodes),
    # so the same imperfect format warm start as tiny-brief's (relayed, garbled and empty thoughts;
    # a Solver that sometimes slips; 120 steps of 16, cached per machine) gives RL a starting point
    # with something to fix. Thoughts and answers stay short; the update of 32 short episodes per
    # step dominates its time. Held-out evaluation on 100 problems x 2 samples keeps the demo's two
    # evaluations to a few minutes.
    cfg = _tiny_brief()
    cfg.eval_data = "arith:n=100,difficulty=1,split=test,brief=1,digit=1"
    cfg.steps, cfg.out, cfg.save_every, cfg.eval_samples = 50, "runs/smollm2-brief", 25, 2
    cfg.eval_every = 25  # an evaluation (about 65 s) costs about 3.4 steps (about 20 s each): 2 of them add ~13%
    cfg.warm_start = dataclasses.replace(cfg.warm_start, steps=120, batch_size=16, lr=5e-5, model_config={})
    cfg.model = ModelConfig(name="smollm2-135m", sharing="separate")
    cfg.rollout = dataclasses.replace(cfg.rollout, group_size=4, solo_samples=2, solver_max_new_tokens=24,
                                      rating_max_new_tokens=64)
    cfg.optim = dataclasses.replace(cfg.optim, lr=2e-5, micro_batch_tokens=4096)
    return cfg


def _paper_scale(name: str, model: str, *, solver: str | None = None, offload: bool = False,
                 optimizer: str = "gspo") -> TrainerConfig:
    # The reference recipe of docs/method.md#estimators-and-losses (the TrainerConfig defaults: separate models, one role
    # updated per step alternating every 10 steps, 16 rollouts per problem, AdamW at lr 1e-6,
    # Dr. GRPO advantages with the GSPO loss) at the paper's scale: 192 problems per step, prompts
    # up to 4096 tokens, answers up to 6144 (Solver) and 4096 (Thinker). bfloat16, gradient
    # checkpointing, vLLM rollouts, FSDP2; `parallel.offload` where plain FSDP would need more than
    # one node of 80 GB GPUs (`thinksolve plan`, docs/scale.md).
    config = TrainerConfig(
        train_data="../shared/data/math/math_train.jsonl",
        eval_data="../shared/data/math/math500.jsonl",
        steps=200,
        out=f"runs/{name}",
        eval_every=20,  # MATH500 x 1 sample: ~1,500 generations against a step's ~9,000 and an update: ~1% of the run
        model=ModelConfig(name=model, solver_name=solver, dtype="bfloat16", device="cuda", gradient_checkpointing=True),
        rollout=RolloutConfig(problems_per_step=192, group_size=16, engine="vllm"),
        parallel=ParallelConfig(strategy="fsdp", offload=offload),
        schedule=ScheduleConfig(mode="alternate", period=10),
    )
    return apply_optimizer(config, optimizer) if optimizer != "gspo" else config


#: The GPU presets: name -> (Thinker model, Solver model or None for the same, parallel.offload).
GPU_PRESETS: dict[str, tuple[str, str | None, bool]] = {
    "qwen2.5-1.5b-math": ("Qwen/Qwen2.5-1.5B-Instruct", None, False),
    "qwen2.5-7b-math": ("Qwen/Qwen2.5-7B-Instruct", None, True),
    "llama3.1-8b-math": ("meta-llama/Llama-3.1-8B-Instruct", None, True),
    "qwen3-4b-math": ("Qwen/Qwen3-4B-Base", None, False),
    "olmo3-7b-math": ("allenai/Olmo-3-7B-Instruct", None, True),
    "olmo3-7b-qwen2.5-1.5b-math": ("allenai/Olmo-3-7B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct", False),
}


def _gpu_presets() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (model, solver, offload) in GPU_PRESETS.items():
        out[name] = functools.partial(_paper_scale, name, model, solver=solver, offload=offload)
        out[f"{name}-grpo"] = functools.partial(_paper_scale, f"{name}-grpo", model, solver=solver, offload=offload,
                                                optimizer="grpo")
    return out


#: Complete configurations by name (see ``thinksolve train --preset``): the CPU presets, then for
#: every model of :data:`GPU_PRESETS` the reference recipe (GSPO) and its ``-grpo`` variant.
PRESETS = {
    "tiny-arith": _tiny_arith,
    "tiny-brief": _tiny_brief,
    "tiny-relay": _tiny_relay,
    "smollm2-arith": _smollm2_arith,
    "smollm2-brief": _smollm2_brief,
    **_gpu_presets(),
}


#: ``--optimizer`` names: an advantage estimator × a policy loss (docs/method.md#estimators-and-losses), as optim fields.
OPTIMIZERS: dict[str, dict[str, Any]] = {
    "gspo": dict(estimator="grpo", scale="none", loss="gspo", agg="seq-mean-token-mean", clip_low=3e-4, clip_high=4e-4),
    "grpo": dict(estimator="grpo", scale="group", loss="grpo", agg="token-mean", clip_low=0.2, clip_high=0.2),
    "dr_grpo": dict(estimator="grpo", scale="none", loss="grpo", agg="token-mean", clip_low=0.2, clip_high=0.2),
    "rloo": dict(estimator="rloo", scale="none", loss="grpo", agg="token-mean", clip_low=0.2, clip_high=0.2),
    "reinforce++": dict(estimator="reinforce++", scale="none", loss="grpo", agg="token-mean", clip_low=0.2, clip_high=0.2),
    "reinforce++-baseline": dict(estimator="reinforce++-baseline", scale="none", loss="grpo", agg="token-mean",
                                 clip_low=0.2, clip_high=0.2),
}


def apply_optimizer(config: TrainerConfig, name: str) -> TrainerConfig:
    """A copy of ``config`` with the optim fields of the named optimizer (:data:`OPTIMIZERS`);
    an unknown name lists the choices. Learning rate, schedule and batching are kept."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose from {sorted(OPTIMIZERS)}")
    config = copy.deepcopy(config)
    for k, v in OPTIMIZERS[name].items():
        setattr(config.optim, k, v)
    return config


def apply_credit(config: TrainerConfig, name: str) -> TrainerConfig:
    """A copy of ``config`` using credit method ``name`` (its parameters reset unless it is the
    same method); an unknown name lists the choices."""
    if name not in credit.available():
        raise ConfigError(f"unknown credit method {name!r}; choose from {sorted(credit.available())}")
    config = copy.deepcopy(config)
    if config.credit.name != name:
        config.credit.params = {}
    config.credit.name = name
    return config


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of dataclass ``cls`` (the string literal that follows the
    field in the source), by field name."""

    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for node, after in zip(body, body[1:] + [None]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(after, ast.Expr) and isinstance(getattr(after, "value", None), ast.Constant) \
                    and isinstance(after.value.value, str):
                docs[node.target.id] = " ".join(after.value.value.split())
            elif dataclasses.is_dataclass(typing.get_type_hints(cls).get(node.target.id)):
                docs[node.target.id] = f"section: {typing.get_type_hints(cls)[node.target.id].__name__}"
    return docs


def list_fields(config: TrainerConfig | None = None) -> list[tuple[str, Any, str]]:
    """Every settable field as ``(dotted name, current value, docstring)``, sections flattened
    (``optim.lr``), in declaration order; values are ``config``'s (default: the defaults).
    ``thinksolve train --list-fields`` prints this."""
    config = config if config is not None else TrainerConfig()
    out: list[tuple[str, Any, str]] = []

    def walk(obj, prefix: str) -> None:
        docs = field_docs(type(obj))
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                out.append((prefix + f.name, value, docs.get(f.name, "")))

    walk(config, "")
    return out


def preset(name: str) -> TrainerConfig:
    """A fresh copy of a named preset; an unknown name lists the choices."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]().validate()
