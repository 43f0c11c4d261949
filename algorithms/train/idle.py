"""The idle role off the GPU (``parallel.offload_idle``).

Under the alternating schedule one role trains for ``schedule.period`` steps while the other only
samples rollouts. The idle role needs its weights for sampling, and nothing else: its AdamW state
(two float32 tensors per parameter, the largest part of a full fine-tune) waits in CPU memory
until its turn, and when a vLLM engine samples its rollouts (holding its own copy of the
weights), its training weights wait there too. :class:`IdleRoles` moves them at the switch:
before a role's update its state comes back to the training device, after the step the roles
that do not train at the next step go out. Sharded (FSDP) state moves shard by shard. On a CPU
run (or with the option off) nothing moves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

__all__ = ["IdleRoles", "move_optimizer_state", "move_module"]


def _moved(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    if hasattr(t, "to_local"):  # a DTensor shard: move the local tensor, keep the layout
        from torch.distributed.tensor import DTensor  # noqa: PLC0415 (distributed-only import)

        local = t.to_local()
        if local.device == device:
            return t
        return DTensor.from_local(local.to(device, non_blocking=True), t.device_mesh, t.placements, run_check=False,
                                  shape=t.shape, stride=t.stride())
    return t if t.device == device else t.to(device, non_blocking=True)


def move_optimizer_state(optimizer: torch.optim.Optimizer, device: str | torch.device) -> int:
    """Move every state tensor of ``optimizer`` (AdamW's moments; the step counters stay where
    they are) to ``device``; returns the bytes that moved."""
    device, moved = torch.device(device), 0
    for state in optimizer.state.values():
        for key, value in state.items():
            if key == "step" or not isinstance(value, torch.Tensor):
                continue
            local = value.to_local() if hasattr(value, "to_local") else value
            if local.device != device:
                moved += local.numel() * local.element_size()
                state[key] = _moved(value, device)
    return moved


def move_module(model: torch.nn.Module, device: str | torch.device) -> int:
    """Move ``model``'s parameters and buffers to ``device`` in place (``Module.to``; FSDP2
    modules move their shards); returns the bytes that moved."""
    device = torch.device(device)
    moving = [t for t in list(model.parameters()) + list(model.buffers())
              if (t.to_local() if hasattr(t, "to_local") else t).device != device]
    if not moving:
        return 0
    model.to(device)
    return sum(t.numel() * t.element_size() for t in moving)


class IdleRoles:
    """Where each role's training state lives between its turns.

    Args:
        optimizers: role → optimizer.
        models: role → the module a role trains (only for roles whose rollouts another engine
            samples, so that their training weights may leave the device too).
        device: the training device; ``enabled`` False, or training where idle state waits anyway
            (a CPU run), makes every call a no-op.
        scheduled: step → the roles updated at that step.
        offload_device: where idle state waits (CPU memory).
    """

    def __init__(self, optimizers: Mapping[str, torch.optim.Optimizer], models: Mapping[str, torch.nn.Module],
                 device: str | torch.device, scheduled: Callable[[int], list[str]], enabled: bool = True,
                 offload_device: str | torch.device = "cpu") -> None:
        self.optimizers = dict(optimizers)
        self.models = dict(models)
        self.device = torch.device(device)
        self.offload_device = torch.device(offload_device)
        self.scheduled = scheduled
        self.enabled = enabled and self.device.type != self.offload_device.type
        self.moved_out: dict[str, int] = {}  # bytes each role moved to CPU at its last switch

    def wake(self, roles: list[str]) -> None:
        """Bring ``roles``' state back to the training device (before their update)."""
        if not self.enabled:
            return
        for role in roles:
            if role in self.models:
                move_module(self.models[role], self.device)
            move_optimizer_state(self.optimizers[role], self.device)

    def settle(self, next_step: int) -> dict[str, int]:
        """After a step: the roles not updated at ``next_step`` move out (their optimizer state,
        and their weights where another engine samples for them); returns bytes moved per role."""
        if not self.enabled:
            return {}
        busy = set(self.scheduled(next_step))
        shared = {id(m): [r for r in self.models if self.models[r] is m] for m in self.models.values()}
        out = {}
        for role, opt in self.optimizers.items():
            if role in busy:
                continue
            out[role] = move_optimizer_state(opt, self.offload_device)
            model = self.models.get(role)
            if model is not None and not busy & set(shared[id(model)]):
                out[role] += move_module(model, self.offload_device)
        self.moved_out = out
        return out
