"""Data parallelism: one process per device, each collecting its shard of the step's problems.

Under ``torchrun`` or ``accelerate launch`` (``WORLD_SIZE > 1``) :class:`Distributed` joins the
process group (gloo on CPU; NCCL for CUDA tensors with gloo beside it for Python objects) and
gives each role's model one of two layouts (``parallel.strategy``):

* ``ddp`` — :class:`torch.nn.parallel.DistributedDataParallel`: every rank holds the whole
  model, its gradients and its optimizer state; gradients are all-reduced once per pass (at the
  last micro-batch).
* ``fsdp`` — FSDP2 (:func:`torch.distributed.fsdp.fully_shard`, applied to every decoder layer
  and then to the model): parameters, gradients and AdamW state are split across the ranks as
  float32 master shards; forward and backward all-gather one layer at a time in ``model.dtype``
  (:class:`~torch.distributed.fsdp.MixedPrecisionPolicy`) and reduce-scatter gradients in
  float32. ``parallel.offload`` keeps the shards in CPU memory; ``parallel.replicas`` > 1 is
  hybrid sharding (a 2-D mesh: replicate across groups, shard within one).

Why FSDP2 directly rather than accelerate's FSDP plugin: the team has two models with their own
optimizers and lifecycles (one is idle for ten steps, its state moved off the GPU; rollouts
generate from a gathered copy; vLLM engines receive weights one tensor at a time), and each of
these needs the sharded module itself. ``fully_shard`` is the engine; this file is the few lines
that apply it, and accelerate remains a launcher (``accelerate launch`` sets the same variables
as ``torchrun``).

Every FSDP forward is a collective, so ranks must run the same number of them: the update pads
each rank's micro-batches to the largest count (:meth:`Distributed.max`), and rollouts generate
from a gathered copy of the model (:func:`gathered`: one all-gather, then purely
local decoding, so ranks whose samples end early do not wait for the others at every token).
On one process all of this is a no-op with the same interface, so the trainer has one code path.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["Distributed", "GatheredGeneration", "gathered", "is_sharded", "full_weights", "leave_process_group"]


def is_sharded(model: torch.nn.Module) -> bool:
    """Whether ``model`` was sharded by ``fully_shard`` (its parameters are DTensors)."""
    from torch.distributed.fsdp import FSDPModule  # noqa: PLC0415 (distributed-only import)

    return isinstance(model, FSDPModule)


def _fsdp_modules(model: torch.nn.Module) -> list:
    from torch.distributed.fsdp import FSDPModule  # noqa: PLC0415

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


def _layer_classes(model: torch.nn.Module) -> set[str]:
    """The class names of the decoder layers (Hugging Face models list them in
    ``_no_split_modules``); fallback: any class whose name ends in ``DecoderLayer``/``Block``."""
    names: set[str] = set()
    for m in model.modules():
        names.update(getattr(m, "_no_split_modules", None) or [])
    return names or {type(m).__name__ for m in model.modules() if type(m).__name__.endswith(("DecoderLayer", "Block"))}


def leave_process_group(wait: bool = True) -> None:
    """Destroy the group at exit, every rank together: a gloo rank whose peer has already closed
    its connections can abort in its own teardown ("terminate called without an active
    exception"), so the ranks first meet at a barrier that gives up after a minute (a peer that
    died is not waited for; ``wait=False``: a rank that failed alone does not wait for the
    others)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if wait and dist.get_backend() == "gloo" and dist.get_world_size() > 1:
        with contextlib.suppress(Exception):
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=60))
    dist.destroy_process_group()


class Distributed:
    """Rank, world size, the model layout and the few collective operations the trainer needs.

    Args:
        device: the training device (``cpu`` or ``cuda``; under CUDA each rank takes the GPU of
            its ``LOCAL_RANK``).
        strategy: ``ddp`` or ``fsdp`` (see the module docstring).
        offload: fsdp: keep parameters, gradients and optimizer state in CPU memory.
        replicas: fsdp: hybrid sharding across this many replica groups.
        find_unused_parameters: DDP's flag (True when only some parameters train, e.g. one LoRA
            adapter of two).
    """

    def __init__(self, device: str, strategy: str = "ddp", *, offload: bool = False, replicas: int = 1,
                 find_unused_parameters: bool = False) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.strategy = strategy
        self.offload = offload
        self.replicas = replicas
        self.find_unused_parameters = find_unused_parameters
        self.cuda = torch.device(device).type == "cuda"
        self.mesh = None
        if self.world > 1:
            if self.cuda:
                torch.cuda.set_device(self.local_rank)
            if not dist.is_initialized():
                dist.init_process_group("cpu:gloo,cuda:nccl" if self.cuda else "gloo")
                # the group we made is destroyed at exit while the interpreter is alive: a gloo group
                # left to the interpreter's finalization can abort the process ("terminate called
                # without an active exception", SIGABRT) after the run has finished
                atexit.register(leave_process_group)
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
            if strategy == "fsdp":
                if self.world % replicas:
                    raise ValueError(f"parallel.replicas={replicas} does not divide the {self.world} processes")
                from torch.distributed.device_mesh import init_device_mesh  # noqa: PLC0415

                kind = "cuda" if self.cuda else "cpu"
                self.mesh = (init_device_mesh(kind, (self.world,), mesh_dim_names=("shard",)) if replicas == 1 else
                             init_device_mesh(kind, (replicas, self.world // replicas),
                                              mesh_dim_names=("replicate", "shard")))

    @property
    def main(self) -> bool:
        """Whether this is rank 0 (the one that writes files and logs)."""
        return self.rank == 0

    @property
    def compute_device(self) -> torch.device:
        """The device this rank computes on (its GPU under CUDA)."""
        return torch.device("cuda", self.local_rank) if self.cuda else torch.device("cpu")

    @property
    def sharding(self) -> bool:
        """Whether models are sharded (fsdp on more than one process)."""
        return self.mesh is not None

    # ------------------------------------------------------------------ layouts

    def wrap(self, model: torch.nn.Module, compute_dtype: torch.dtype | None = None) -> torch.nn.Module:
        """The model ready for training: DDP-wrapped (``ddp``), or sharded in place by FSDP2
        (``fsdp``; returns the same object, its parameters now float32 DTensor shards and its
        forward computing in ``compute_dtype``); the model itself on one process."""
        if self.world == 1:
            return model
        if not self.sharding:
            return torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.local_rank] if self.cuda else None,
                find_unused_parameters=self.find_unused_parameters)
        return self.shard(model, compute_dtype)

    def shard(self, model: torch.nn.Module, compute_dtype: torch.dtype | None = None) -> torch.nn.Module:
        """Apply FSDP2 to every decoder layer, then to ``model`` (in place)."""
        from torch.distributed.fsdp import (  # noqa: PLC0415
            CPUOffloadPolicy,
            MixedPrecisionPolicy,
            OffloadPolicy,
            fully_shard,
        )

        compute_dtype = compute_dtype or next(model.parameters()).dtype
        mp = MixedPrecisionPolicy(param_dtype=None if compute_dtype == torch.float32 else compute_dtype,
                                  reduce_dtype=torch.float32)
        # (pinned memory needs an accelerator; on a CPU-only run the offload path runs unpinned)
        offload = CPUOffloadPolicy(pin_memory=self.cuda) if self.offload else OffloadPolicy()
        kw = dict(mesh=self.mesh, mp_policy=mp, offload_policy=offload)
        layers = _layer_classes(model)
        # layer by layer: its trainable weights become float32 masters, then fully_shard moves the
        # layer to this rank's device and keeps its shard (a whole float32 copy never exists at once)
        for m in [*(m for m in model.modules() if type(m).__name__ in layers), model]:
            _float32_masters(m)
            fully_shard(m, **kw)
        return model

    def no_sync(self, wrapped: Any) -> AbstractContextManager:
        """A context that skips DDP's gradient all-reduce (for every micro-batch but the last);
        FSDP reduce-scatters every micro-batch (holding whole gradients would undo the sharding)."""
        if self.world == 1 or not hasattr(wrapped, "no_sync"):
            return contextlib.nullcontext()
        return wrapped.no_sync()

    # ------------------------------------------------------------------ collectives

    def gather(self, obj: Any) -> list:
        """Every rank's ``obj``, in rank order (``[obj]`` on one process)."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def max(self, value: int) -> int:
        """The largest ``value`` over the ranks."""
        return value if self.world == 1 else max(self.gather(int(value)))

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (so every rank takes the same branch)."""
        return bool(flag) if self.world == 1 else any(self.gather(bool(flag)))

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if self.world == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


@torch.no_grad()
def _float32_masters(module: torch.nn.Module) -> None:
    """Trainable weights (and so their gradients and AdamW state) in float32; frozen ones (a LoRA
    base) keep their dtype. Weights already sharded are float32 already."""
    for p in module.parameters():
        if p.requires_grad and p.dtype != torch.float32:
            p.data = p.data.float()


def gathered(model: torch.nn.Module) -> AbstractContextManager:
    """A context in which a sharded ``model``'s parameters are whole on every rank (one
    all-gather; forward passes inside are local); resharded on exit. A no-op otherwise."""
    return _gathered(model) if is_sharded(model) else contextlib.nullcontext()


@contextlib.contextmanager
def _gathered(model: torch.nn.Module) -> Iterator[None]:
    mods = _fsdp_modules(model)
    for m in mods:
        m.unshard()
        m.set_reshard_after_forward(False, recurse=False)
    try:
        yield
    finally:
        for m in mods:
            m.reshard()
            m.set_reshard_after_forward(True, recurse=False)


class GatheredGeneration:
    """A sharded policy that generates from a gathered copy of its model (see :func:`gathered`);
    every other attribute is the policy's own."""

    def __init__(self, policy: Any) -> None:
        self._policy = policy

    def generate(self, *args: Any, **kwargs: Any) -> list:
        with gathered(self._policy.model):
            return self._policy.generate(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._policy, name)

    def __repr__(self) -> str:
        return f"GatheredGeneration({self._policy!r})"


def full_weights(policy: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """``policy``'s weights under the plain model's names, whole and on the CPU, one tensor at a
    time (what a vLLM engine loads): a sharded model's DTensors are all-gathered one by one (every
    rank must iterate), LoRA adapters merged in; never a whole copy of the model at once (LoRA:
    the model is gathered once to merge)."""
    model = policy.model
    if getattr(policy, "is_peft", False):
        if is_sharded(model):
            with gathered(model):
                yield from _merged_plain(policy)
        else:
            yield from policy.merged_state_dict().items()
        return
    for name, t in model.state_dict().items():
        if hasattr(t, "full_tensor"):
            t = t.full_tensor()
        yield name, t.detach().to("cpu")


@torch.no_grad()
def _merged_plain(policy: Any) -> Iterator[tuple[str, torch.Tensor]]:
    peft_model = getattr(policy.model, "module", policy.model)
    base = peft_model.get_base_model()
    if hasattr(policy, "role"):  # one role's adapter of several: that one is merged
        peft_model.set_adapter(policy.role)
    peft_model.merge_adapter()
    try:
        keys = set(base.state_dict())  # names only (persistent buffers, tied weights under both names)
        for name, t in list(base.named_parameters(remove_duplicate=False)) + list(base.named_buffers()):
            if "lora_" in name or name not in keys:
                continue
            keys.discard(name)
            yield name.replace(".base_layer.", "."), t.detach().to("cpu", copy=True)
    finally:
        peft_model.unmerge_adapter()
