"""Which role trains at a step, and the seed of everything random in it."""

from __future__ import annotations

import numpy as np

from thinksolve_env import ROLES

from ..config import ScheduleConfig

__all__ = ["scheduled_roles", "step_seed"]


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of everything random in step ``step`` on rank ``rank`` (a 31-bit integer)."""
    return int(np.random.SeedSequence([int(seed), int(step), int(rank)]).generate_state(1)[0] >> 1)


def scheduled_roles(schedule: ScheduleConfig, step: int) -> list[str]:
    """The roles updated at ``step`` (0-based): both (``simultaneous``), or one, starting with
    ``start_role`` and switching every ``period`` steps (``alternate``)."""
    if schedule.mode == "simultaneous":
        return list(ROLES)
    first = ROLES.index(schedule.start_role)
    return [ROLES[(first + step // schedule.period) % len(ROLES)]]
