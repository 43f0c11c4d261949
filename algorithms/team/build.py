"""Building the team's trainable policies from a :class:`~algorithms.config.ModelConfig`.

``model.sharing`` picks the layout:

* ``separate`` (the reference): one full model per role (``solver_name`` may name another one for
  the last role, ``role_models`` one for any role);
* ``shared``: one model serves every role, which differ by prompt only (the same policy object
  under every name; each role still has its own optimizer state);
* ``lora``: one frozen base with one LoRA adapter per role (:class:`RolePolicy` activates the
  role's adapter for every call and exposes only its parameters).

The team's roles are ``rollout.roles`` (chain order; ``("thinker_0", "solver_0")`` by default).
What a checkpoint stores per role (:func:`role_weights`) and how it is put back
(:func:`load_role_weights`) follow the same layout. :func:`team_state` is the same content for a
sharded checkpoint (weights and optimizer states keyed by parameter name, as
``torch.distributed.checkpoint`` saves them), and :func:`restore_team` puts either kind of
checkpoint back into either kind of team: whole or sharded, at any world size.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import torch

from agents import TransformersPolicy, load_model, lora_config

from ..config import ModelConfig, RolloutConfig
from ..runs.checkpoint import load_sharded_state

__all__ = ["RolePolicy", "build_policies", "build_reference", "role_weights", "load_role_weights", "team_state",
           "restore_team"]


class RolePolicy(TransformersPolicy):
    """One role's view of a shared LoRA model: activates the role's adapter for every call
    and exposes only that adapter's parameters."""

    def __init__(self, model: Any, tokenizer: Any, role: str, **kw: Any) -> None:
        super().__init__(model, tokenizer, **kw)
        self.role = role

    def _activate(self) -> None:
        self._base_peft().set_adapter(self.role)

    def _base_peft(self) -> Any:
        m = self.model
        return getattr(m, "module", m)

    def generate(self, *a: Any, **kw: Any) -> list:
        self._activate()
        return super().generate(*a, **kw)

    def logprobs(self, *a: Any, **kw: Any) -> list:
        self._activate()
        return super().logprobs(*a, **kw)

    def merged_state_dict(self) -> dict[str, torch.Tensor]:
        """The base weights with this role's adapter merged in (what ``save_pretrained``, export
        and a vLLM engine get), whichever adapter was active before."""
        self._activate()
        return super().merged_state_dict()

    def named_parameters(self) -> Iterator[tuple[str, torch.nn.Parameter]]:
        return ((n, p) for n, p in self._base_peft().named_parameters() if f".{self.role}." in n)

    def parameters(self) -> Iterator[torch.nn.Parameter]:
        return (p for _, p in self.named_parameters())

    @property
    def is_peft(self) -> bool:
        return True

    def _base_model(self) -> Any:
        return self._base_peft().get_base_model()


def build_policies(model: ModelConfig, rollout: RolloutConfig, *, seed: int,
                   source: Callable[[str], str] = str) -> dict[str, TransformersPolicy]:
    """One trainable policy per role (see the module docstring), each with a context long enough
    for the longest prompt plus the longest generation of ``rollout``. ``source(name)`` maps a
    model name to what is loaded (e.g. its warm-started directory)."""

    def load(name: str) -> tuple:
        return load_model(source(name), seed=seed, dtype=model.dtype, device=model.device)

    kw = dict(seed=seed, gradient_checkpointing=model.gradient_checkpointing)
    roles = list(rollout.roles)
    if model.sharing == "shared":
        p = TransformersPolicy(*load(model.name), name=model.name, **kw)
        policies = dict.fromkeys(roles, p)
    elif model.sharing == "lora":
        import peft  # noqa: PLC0415 (peft is optional: lora sharing only)

        net, tok = load(model.name)
        lcfg = lora_config({"r": model.lora_rank, "lora_alpha": model.lora_alpha})
        torch.manual_seed(seed)  # adapter initialisation, in chain order
        pm = peft.get_peft_model(net, lcfg, adapter_name=roles[0])
        for role in roles[1:]:
            pm.add_adapter(role, lcfg)
        for n, p in pm.named_parameters():
            p.requires_grad_(".lora_" in n)
        policies = {role: RolePolicy(pm, tok, role, name=f"{model.name}+lora:{role}", **kw) for role in roles}
    else:
        policies = {}
        for role in roles:  # loaded in chain order (each load seeded alike)
            name = model.name_of(role, roles)
            policies[role] = TransformersPolicy(*load(name), name=name, **kw)
    # prompts are cut (from the left of the user message) to max_prompt_tokens
    context = rollout.max_prompt_tokens + max(*rollout.budgets().values(), rollout.rating_max_new_tokens)
    for p in policies.values():
        p.max_context = min(p.max_context, context)
    return policies


def build_reference(policies: dict[str, TransformersPolicy]) -> dict[str, TransformersPolicy]:
    """A frozen copy of each role's policy (the KL reference)."""
    ref = {}
    for role in policies:
        frozen = copy.deepcopy(policies[role])
        for p in frozen.model.parameters():
            p.requires_grad_(False)
        ref[role] = frozen
    return ref


def role_weights(policies: dict[str, TransformersPolicy], sharing: str) -> dict[str, dict[str, torch.Tensor]]:
    """What the checkpoint stores per role of ``policies`` (the team in chain order): the full
    state dict (``separate``; ``shared`` stores it once, under the first role), or the role's
    adapter (``lora``)."""
    if sharing == "lora":
        return {role: {n: p.detach() for n, p in policies[role].named_parameters()} for role in policies}
    if sharing == "shared":
        first = next(iter(policies))
        return {first: policies[first].model.state_dict()}
    return {role: policies[role].model.state_dict() for role in policies}


def load_role_weights(policies: dict[str, TransformersPolicy], sharing: str,
                      weights: dict[str, dict[str, torch.Tensor]]) -> None:
    """Put :func:`role_weights` output back into ``policies``."""
    for role, sd in weights.items():
        if sharing == "lora":
            params = dict(policies[role].named_parameters())
            with torch.no_grad():
                for n, v in sd.items():
                    params[n].copy_(v)
        else:
            policies[role].model.load_state_dict(sd)


def _sharded(policy: Any) -> bool:
    return any(hasattr(p, "to_local") for p in policy.model.parameters())


def team_state(policies: dict[str, TransformersPolicy], optimizers: dict[str, torch.optim.Optimizer] | None,
               sharing: str) -> dict[str, Any]:
    """``{"weights": role_weights(...), "optim": {role: optimizer state keyed by parameter name}}``:
    what a sharded checkpoint stores (the tensors are the team's own, sharded or whole, so that
    ``torch.distributed.checkpoint`` saves from them and loads into them in place)."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict  # noqa: PLC0415

    state: dict[str, Any] = {"weights": role_weights(policies, sharing)}
    if optimizers:
        state["optim"] = {role: get_optimizer_state_dict(policies[role].model, opt) for role, opt in optimizers.items()}
    return state


def restore_team(policies: dict[str, TransformersPolicy], optimizers: dict[str, torch.optim.Optimizer] | None,
                 sharing: str, checkpoint: dict) -> None:
    """Put a checkpoint (``load_checkpoint``'s dict) back into the team's weights, and into
    ``optimizers`` when given: a sharded checkpoint at any world size (resharded as it loads), or
    a whole one into whole or sharded models."""
    from torch.distributed.checkpoint.state_dict import (  # noqa: PLC0415
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    if checkpoint.get("sharded"):
        state = team_state(policies, optimizers, sharing)
        load_sharded_state(checkpoint, state)
        for role, sd in state["weights"].items():
            set_model_state_dict(policies[role].model, sd, options=StateDictOptions(strict=sharing != "lora"))
        for role, osd in state.get("optim", {}).items():
            set_optimizer_state_dict(policies[role].model, optimizers[role], osd)
        return
    if not any(_sharded(p) for p in policies.values()):
        load_role_weights(policies, sharing, checkpoint["weights"])
        for role, sd in (checkpoint["optimizers"] if optimizers else {}).items():
            optimizers[role].load_state_dict(sd)
        return
    whole = StateDictOptions(full_state_dict=True, strict=sharing != "lora")
    for role, sd in checkpoint["weights"].items():
        set_model_state_dict(policies[role].model, sd, options=whole)
    for role, raw in (checkpoint["optimizers"] if optimizers else {}).items():
        # a whole checkpoint's optimizer state is keyed by position: name it as the sharded API wants
        names = [n for n, _ in policies[role].named_parameters()]
        by_name = {"state": {names[int(i)]: v for i, v in raw["state"].items()},
                   "param_groups": [{**g, "params": [names[int(i)] for i in g["params"]]} for g in raw["param_groups"]]}
        set_optimizer_state_dict(policies[role].model, optimizers[role], by_name, options=whole)
