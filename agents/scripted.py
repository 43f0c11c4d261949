"""Scripted policies: a Python function of the chat messages stands in for a model."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .base import Completion, Messages, validate_generate_args

__all__ = ["ScriptedPolicy", "constant_policy"]


class ScriptedPolicy:
    """Wraps ``fn(messages) -> str`` as a :class:`~agents.base.Policy`.

    ``.calls`` counts ``generate`` calls (one per batch, however many prompts it holds) and
    ``.prompts_seen`` counts prompts, so tests and budget studies can check batching.
    """

    def __init__(self, fn: Callable[[Messages], str], name: str | None = None) -> None:
        if not callable(fn):
            raise TypeError(f"ScriptedPolicy needs a callable fn(messages) -> str, got {type(fn).__name__}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "scripted")
        self.calls = 0
        self.prompts_seen = 0

    def generate(
        self,
        prompts: Sequence[Messages],
        *,
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> list[Completion]:
        validate_generate_args(prompts, max_new_tokens, temperature, top_p)
        self.calls += 1
        self.prompts_seen += len(prompts)
        out = []
        for messages in prompts:
            text = self.fn(list(messages))
            if not isinstance(text, str):
                raise TypeError(f"{self.name}: fn must return str, got {type(text).__name__}")
            out.append(Completion(text=text, finish_reason="scripted"))
        return out

    def __repr__(self) -> str:
        return f"ScriptedPolicy({self.name!r}, calls={self.calls})"


def constant_policy(text: str) -> ScriptedPolicy:
    """A policy that always answers ``text``."""
    return ScriptedPolicy(lambda _messages: text, name=f"constant({text[:20]!r})")
