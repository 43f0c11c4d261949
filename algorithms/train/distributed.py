"""Data parallelism: one process per device, each collecting its shard of the step's problems.

:class:`Distributed` wraps ``accelerate`` when the trainer runs under ``accelerate launch`` or
``torchrun`` with more than one process (``WORLD_SIZE > 1``); on one process it is a no-op with
the same interface, so the trainer has a single code path.
"""

from __future__ import annotations

import contextlib
import os
from contextlib import AbstractContextManager
from typing import Any

import torch

__all__ = ["Distributed"]


class Distributed:
    """Rank, world size and the few collective operations the trainer needs.

    Args:
        device: the training device (``cpu`` selects accelerate's CPU mode).
        find_unused_parameters: DDP's flag (True when only some parameters train, e.g. one LoRA
            adapter of two).
    """

    def __init__(self, device: str, find_unused_parameters: bool = False) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.accelerator = None
        self.rank = 0
        if self.world > 1:
            from accelerate import Accelerator  # noqa: PLC0415 (accelerate is optional: multi-process only)
            from accelerate.utils import DistributedDataParallelKwargs  # noqa: PLC0415

            handlers = [DistributedDataParallelKwargs(find_unused_parameters=find_unused_parameters)]
            self.accelerator = Accelerator(cpu=device == "cpu", kwargs_handlers=handlers)
            self.rank = self.accelerator.process_index
            self.world = self.accelerator.num_processes

    @property
    def main(self) -> bool:
        """Whether this is rank 0 (the one that writes files and logs)."""
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model DDP-wrapped for training (the model itself on one process)."""
        return self.accelerator.prepare_model(model) if self.accelerator else model

    def no_sync(self, wrapped: Any) -> AbstractContextManager:
        """A context that skips the gradient all-reduce (for every micro-batch but the last)."""
        if self.accelerator is None or not hasattr(wrapped, "no_sync"):
            return contextlib.nullcontext()
        return wrapped.no_sync()

    def gather(self, obj: Any) -> list:
        """Every rank's ``obj``, in rank order (``[obj]`` on one process)."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()
