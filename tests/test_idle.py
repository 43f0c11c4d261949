"""``parallel.offload_idle``: which role's state leaves the training device, and when.

No GPU here, so one of the two places is played by ``meta`` (tensors with shapes and no data):
the moves are real ``Tensor.to`` calls (one direction per test, since nothing can be copied out
of ``meta``), the values are not checked."""

from __future__ import annotations

import torch

from algorithms.config import ScheduleConfig
from algorithms.train.idle import IdleRoles, move_optimizer_state
from algorithms.train.schedule import scheduled_roles

SCHEDULE = ScheduleConfig(mode="alternate", period=2, start_role="thinker_0")


def _team():
    models = {role: torch.nn.Linear(4, 4) for role in ("thinker_0", "solver_0")}
    optimizers = {}
    for role, m in models.items():
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
        m(torch.ones(2, 4)).sum().backward()
        opt.step()  # AdamW's moments exist now
        optimizers[role] = opt
    return models, optimizers


def _where(opt):
    return {v.device.type for s in opt.state.values() for k, v in s.items() if k != "step"}


def test_after_a_step_the_role_that_waits_next_leaves_the_device():
    models, optimizers = _team()
    idle = IdleRoles(optimizers, models, "cpu", lambda step: scheduled_roles(SCHEDULE, step), offload_device="meta")
    moved = idle.settle(1)  # step 1 (0-based): the Thinker trains, the Solver waits
    assert _where(optimizers["thinker_0"]) == {"cpu"} and _where(optimizers["solver_0"]) == {"meta"}
    assert moved == {"solver_0": 2 * (16 + 4) * 4 + (16 + 4) * 4}  # both AdamW moments, and the weights (vLLM samples)
    assert next(models["solver_0"].parameters()).device.type == "meta"
    assert next(models["thinker_0"].parameters()).device.type == "cpu"


def test_a_role_comes_back_for_its_turn():
    models, optimizers = _team()  # here the CPU plays the place where idle state waits
    idle = IdleRoles(optimizers, {}, "meta", lambda step: scheduled_roles(SCHEDULE, step), offload_device="cpu")
    idle.wake(scheduled_roles(SCHEDULE, 2))  # the Solver's turn
    assert _where(optimizers["solver_0"]) == {"meta"} and _where(optimizers["thinker_0"]) == {"cpu"}
    assert next(models["solver_0"].parameters()).device.type == "cpu"  # no vLLM engine: the weights never left


def test_shared_weights_stay_while_either_role_trains_and_cpu_runs_move_nothing():
    models, optimizers = _team()
    one = models["thinker_0"]
    idle = IdleRoles(optimizers, {"thinker_0": one, "solver_0": one}, "cpu", lambda step: ["thinker_0"],
                     offload_device="meta")
    idle.settle(1)
    assert _where(optimizers["solver_0"]) == {"meta"} and next(one.parameters()).device.type == "cpu"
    models, optimizers = _team()
    off = IdleRoles(optimizers, models, "cpu", lambda step: ["thinker_0"])  # a CPU run: idle state is already there
    assert not off.enabled and off.settle(1) == {} and _where(optimizers["solver_0"]) == {"cpu"}
    assert move_optimizer_state(optimizers["thinker_0"], "cpu") == 0
