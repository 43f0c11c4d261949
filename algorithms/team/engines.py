"""Rollout engines: what the team samples from while it trains or is evaluated.

With ``engine="transformers"`` rollouts sample from the trainable policies themselves. With
``engine="vllm"`` each distinct trainable policy (one for every role under ``shared``) is served
by one :class:`~agents.VLLMPolicy` holding a copy of its weights; :meth:`RolloutEngines.sync`
loads the current weights into each engine whose policy changed since its last sync (an
optimizer step, or a resume), once per engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from agents import VLLMPolicy

__all__ = ["RolloutEngines", "rollout_team", "ENGINES"]

#: Generation engines for training rollouts and evaluation.
ENGINES = ("transformers", "vllm")


class RolloutEngines:
    """The rollout policy of each role (``.policies``), kept in step with the trainable ones.

    Args:
        policies: role → trainable policy.
        engine: ``transformers`` or ``vllm``.
        seed: the engines' sampling seed.
        vllm_args: extra ``vllm.LLM`` arguments (token budget, memory, ...).
        view: transformers engine: what each trainable policy samples through (e.g. a sharded
            model generating from a gathered copy).
        weights: vLLM engine: a policy's weights as ``(name, tensor)`` pairs for :meth:`sync`
            (default: the policy's state dict; a sharded model streams them one by one).
        folders: vLLM engine: role → a Hugging Face folder already holding the role's current
            weights, to start its engine from (several ranks: one rank writes, every rank reads).
    """

    def __init__(self, policies: Mapping[str, Any], engine: str = "transformers", *, seed: int = 0,
                 vllm_args: Mapping[str, Any] | None = None, view: Callable[[Any], Any] | None = None,
                 weights: Callable[[Any], Iterable[tuple[str, Any]]] | None = None,
                 folders: Mapping[str, str] | None = None) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
        self.engine = engine
        self.trainable = dict(policies)
        self.weights = weights
        self.synced_at = dict.fromkeys(self.trainable, 0)  # optimizer steps the engine's weights reflect
        self.policies = rollout_team(self.trainable, engine, seed=seed, folders=folders, **dict(vllm_args or {}))
        if engine == "transformers" and view is not None:  # e.g. sharded models generating from a gathered copy
            views = {id(p): view(p) for p in self.trainable.values()}
            self.policies = {role: views[id(p)] for role, p in self.trainable.items()}

    def sync(self, optimizer_steps: Mapping[str, int]) -> None:
        """Load the trainable weights into every engine whose role(s) took optimizer steps since
        its last sync (``optimizer_steps``: role → steps taken so far)."""
        if self.engine != "vllm":
            return
        done = set()
        for role in self.trainable:
            engine = self.policies[role]
            if id(engine) in done:
                continue
            sharers = [r for r in self.trainable if self.policies[r] is engine]
            if any(optimizer_steps[r] != self.synced_at[r] for r in sharers):
                if self.weights is None:
                    engine.sync_weights(self.trainable[role])
                else:
                    engine.sync_weights(weights=self.weights(self.trainable[role]))
            for r in sharers:
                self.synced_at[r] = optimizer_steps[r]
            done.add(id(engine))

    def close(self) -> None:
        """Close the vLLM engines (the trainable policies stay usable)."""
        if self.engine != "vllm":
            return
        for p in {id(p): p for p in self.policies.values()}.values():
            p.close()


def rollout_team(team: Mapping[str, Any], engine: str = "transformers", *, seed: int = 0,
                 folders: Mapping[str, str] | None = None, **engine_kwargs: Any) -> dict:
    """``team`` (agent → policy) generating on ``engine``: ``transformers`` keeps the policies;
    ``vllm`` serves each distinct trainable policy from one :class:`~agents.VLLMPolicy`
    holding its current weights (``engine_kwargs`` go to ``vllm.LLM``; close the engines when
    done), started from ``folders[agent]`` when given (a folder holding those weights), else
    from a temporary copy. Evaluation is almost all generation, so this is where vLLM pays off most."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {list(ENGINES)}, got {engine!r}")
    if engine == "transformers":
        return dict(team)

    out: dict = {}
    for agent, policy in team.items():
        same = [a for a in out if team[a] is policy]
        if same:
            out[agent] = out[same[0]]
        elif isinstance(policy, VLLMPolicy):
            out[agent] = policy
        elif hasattr(policy, "save_pretrained"):
            staged = folders[agent] if folders and agent in folders else None
            out[agent] = VLLMPolicy.from_policy(policy, seed=seed, directory=staged, write=staged is None,
                                                **engine_kwargs)
        else:
            raise ValueError(f"{agent}: {type(policy).__name__} cannot be served by vLLM (it has no weights to load)")
    return out
