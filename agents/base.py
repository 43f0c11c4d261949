"""The policy protocol every agent implements, and the completion it returns.

A policy never builds prompts: it receives chat messages (lists of ``{"role", "content"}``
dicts) from the environment and returns one :class:`Completion` per prompt.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # torch only names types here; `import agents` does not load it
    import torch

__all__ = ["Messages", "Completion", "Policy", "TrainablePolicy", "validate_generate_args"]

Messages = list[dict]

#: ``finish_reason`` values: the model stopped by itself, hit ``max_new_tokens``, or the text
#: came from a non-model source (scripted policies).
FINISH_REASONS = ("stop", "length", "scripted")


@dataclass
class Completion:
    """One sampled completion.

    ``token_ids`` and ``logprobs`` (one per sampled token, ``log_softmax(logits / T)`` at the
    sampling temperature ``T``) are empty for scripted policies. ``temperature`` (the ``T`` of
    ``logprobs``; 1.0 for greedy) and ``prompt_token_ids`` (the prompt as actually sampled from,
    after any truncation) let a trainable policy recompute the log-probs exactly.
    """

    text: str
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish_reason: str = "stop"
    temperature: float | None = None
    prompt_token_ids: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.token_ids)


@runtime_checkable
class Policy(Protocol):
    """A text policy over chat prompts."""

    def generate(
        self,
        prompts: Sequence[Messages],
        *,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> list[Completion]: ...


@runtime_checkable
class TrainablePolicy(Policy, Protocol):
    """A policy whose per-token log-probs can be recomputed under its current weights."""

    def logprobs(self, prompts: Sequence[Messages], completions: Sequence[Completion]) -> list[torch.Tensor]: ...

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...


def validate_generate_args(prompts: Sequence[Messages], max_new_tokens: int, temperature: float, top_p: float) -> None:
    """Shared argument checks with clear messages."""
    if not isinstance(prompts, (list, tuple)):
        raise TypeError(f"prompts must be a list of chat-message lists, got {type(prompts).__name__}")
    if len(prompts) == 0:
        raise ValueError("prompts is empty: generate() needs at least one chat prompt")
    for i, p in enumerate(prompts):
        is_chat = isinstance(p, (list, tuple)) and all(
            isinstance(m, dict) and "role" in m and "content" in m for m in p
        )
        if not is_chat:
            raise TypeError(f"prompts[{i}] must be a list of {{'role', 'content'}} dicts")
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
