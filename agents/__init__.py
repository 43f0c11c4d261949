"""Who acts: text policies over chat prompts (scripted, transformers, vLLM)."""

from .base import Completion, Messages, Policy, TrainablePolicy
from .scripted import ScriptedPolicy, constant_policy

__all__ = ["Completion", "Messages", "Policy", "TrainablePolicy", "ScriptedPolicy", "constant_policy"]
