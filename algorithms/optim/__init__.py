"""Advantage estimators and policy losses: small registries of pure functions over arrays
(``estimators.get("grpo")``, ``losses.get("gspo")``), each with its formula in its docstring."""

from . import estimators, losses

__all__ = ["estimators", "losses"]
