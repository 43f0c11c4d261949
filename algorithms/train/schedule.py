"""Which role trains at a step, and the seed of everything random in it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from thinksolve_env import ROLES

from ..config import ScheduleConfig

__all__ = ["scheduled_roles", "step_seed"]


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """The seed of everything random in step ``step`` on rank ``rank`` (a 31-bit integer)."""
    return int(np.random.SeedSequence([int(seed), int(step), int(rank)]).generate_state(1)[0] >> 1)


def scheduled_roles(schedule: ScheduleConfig, step: int, roles: Sequence[str] = ROLES) -> list[str]:
    """The roles of the team ``roles`` (chain order) updated at ``step`` (0-based): all of them
    (``simultaneous``), or one, starting with ``start_role`` (``None``: the first) and moving to
    the next role of the chain every ``period`` steps, back to the first after the last
    (``alternate``)."""
    roles = list(roles)
    if schedule.mode == "simultaneous":
        return roles
    first = roles.index(schedule.start_role) if schedule.start_role is not None else 0
    return [roles[(first + step // schedule.period) % len(roles)]]
