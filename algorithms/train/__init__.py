"""Training: the loop (:class:`Trainer`), the update of one role (:func:`policy_update`), the
schedule, data parallelism and stopping on signals."""

from .distributed import Distributed
from .schedule import scheduled_roles, step_seed
from .signals import StopSignals, TrainingInterrupted
from .trainer import RESUMABLE_CHANGES, ResumeError, Trainer
from .update import accumulate_gradients, micro_batches, pad, policy_update

__all__ = [
    "Trainer", "ResumeError", "TrainingInterrupted", "RESUMABLE_CHANGES", "policy_update", "accumulate_gradients",
    "micro_batches", "pad", "scheduled_roles", "step_seed", "Distributed", "StopSignals",
]
