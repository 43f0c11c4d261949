"""Who acts: text policies over chat prompts (scripted, transformers, vLLM).

The model-backed names (``TransformersPolicy``, ``VLLMPolicy``, ``load_model``, ...) are imported
on first use, so ``import agents`` stays light and works without vLLM installed.
"""

from importlib import import_module
from typing import Any

from .base import Completion, Messages, Policy, TrainablePolicy
from .scripted import ScriptedPolicy, constant_policy
from .tabular import TabularSoftmaxPolicy

_LAZY = {
    "TransformersPolicy": "transformers_policy",
    "PromptTruncatedWarning": "transformers_policy",
    "VLLMPolicy": "vllm_policy",
    "vllm_available": "vllm_policy",
    "load_model": "models",
    "model_path": "models",
    "build_tiny_model": "models",
    "build_tiny_tokenizer": "models",
    "smollm2_dir": "models",
    "cache_dir": "models",
    "PRESETS": "models",
    "is_hub_id": "models",
    "atomic_dir": "models",
    "lora_config": "transformers_policy",
    "annotate": "transformers_policy",
    "VLLM_MISSING": "vllm_policy",
}

__all__ = [
    "Completion",
    "Messages",
    "Policy",
    "TrainablePolicy",
    "ScriptedPolicy",
    "constant_policy",
    "TabularSoftmaxPolicy",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'agents' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
