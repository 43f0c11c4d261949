"""The two-rank job behind tests/test_fsdp.py (run with ``torchrun --nproc_per_node 2``).

It trains the tiny model with ``parallel.strategy=ddp`` and ``fsdp`` on the same ranks (same
shards, same seeds) and writes what the tests compare into ``OUT/report.json`` (rank 0), and
the full weights and optimizer states it checks against into ``OUT/*.pt``:

* ``equal``: per method (a flat one, a tree one, SEPO) and schedule, the losses of every step and
  the largest weight difference between the ddp and the fsdp run;
* ``bytes``: per rank, the parameter, gradient and optimizer bytes of a sharded team;
* ``resume``: an fsdp run of 4 steps against 2 + 2 (a sharded checkpoint in between);
* ``reverse``: a whole (one-process) checkpoint, given as argv[2], loaded into sharded models.

The rewards add each sample's share of odd token ids to the real method's rewards, so that a
random model's gradients are not all zero (the verifier would give -1 everywhere).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from algorithms import credit
from algorithms.config import apply_overrides, preset
from algorithms.credit.ccpo import CCPO
from algorithms.credit.sepo import SEPO
from algorithms.credit.tree import Tree
from algorithms.train import Trainer
from algorithms.train.idle import move_optimizer_state


def _parity(groups, role):
    return np.array([np.mean([t % 2 for t in e.completions[role].token_ids] or [0]) for g in groups for e in g.episodes])


def _shaped(base):
    class Shaped(base):
        def compute(self, groups):
            out = super().compute(groups)
            return {"thinker_0": out["thinker_0"] + _parity(groups, "thinker_0"),
                    "solver_0": out["solver_0"] + 1.0 - _parity(groups, "solver_0")}
    return Shaped


def register_methods() -> None:
    """The job's credit methods: the real ones plus the parity shaping."""
    for name, base in (("job_flat", CCPO), ("job_tree", Tree), ("job_sepo", SEPO)):
        if name not in credit.available():
            credit.register(name)(_shaped(base))

METHODS = {
    "flat": ["credit.name=job_flat"],
    "tree": ["credit.name=job_tree", "rollout.answers_per_thought=2"],
    "sepo": ["credit.name=job_sepo", "rollout.rating_max_new_tokens=6"],
    "flat+shared": ["credit.name=job_flat", "model.sharing=shared"],
    "flat+lora": ["credit.name=job_flat", "model.sharing=lora", "model.lora_rank=4", "optim.lr=1e-2"],
    "flat+checkpointing": ["credit.name=job_flat", "model.gradient_checkpointing=true"],
    "flat+offload": ["credit.name=job_flat", "parallel.offload=true"],
}
#: Each run still ends with the preset's evaluation (eval_every=50 evaluates at the last step too), on 4
#: held-out problems instead of 200 x 2 samples: the evaluation of every run took most of the job's time.
SMALL_EVAL = ["eval_data=arith:n=4,difficulty=1,split=test", "eval_samples=1"]
SCHEDULES = {"alternate": ["schedule.mode=alternate", "schedule.period=1"], "simultaneous": ["schedule.mode=simultaneous"]}


def config(out, *extra):
    return apply_overrides(preset("tiny-arith"), [
        "warm_start.enabled=false", "train_data=arith:n=50,difficulty=1", "rollout.problems_per_step=3",
        "rollout.group_size=2", "rollout.solo_samples=1", "rollout.thinker_max_new_tokens=6",
        "rollout.solver_max_new_tokens=6", "optim.lr=1e-3", "optim.micro_batch_tokens=120", "save_every=2",
        "tensorboard=false", *SMALL_EVAL, f"out={out}", *extra])


def full_weights(t):
    """Every role's whole weights (gathered from the shards), on every rank."""
    out = {}
    for role, sd in t.role_weights().items():
        out[role] = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone() for k, v in sd.items()}
    return out


def full_optim(t):
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    opts = StateDictOptions(full_state_dict=True)
    return {role: get_optimizer_state_dict(t.policies[role].model, opt, options=opts)["state"]
            for role, opt in t.optimizers.items()}


def max_diff(a, b):
    return max(float((a[r][k].float() - b[r][k].float()).abs().max()) for r in a for k in a[r])


def losses(rows):
    return [[r.get(f"loss_{role}") for role in ("thinker_0", "solver_0")] for r in rows]


def main():
    register_methods()
    root = Path(sys.argv[1])
    whole_run = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    report = {"equal": {}}
    rank = None
    for method, m_over in METHODS.items():
        for schedule, s_over in SCHEDULES.items():
            got = {}
            for strategy in ("ddp", "fsdp"):
                own = [o for o in m_over if strategy == "fsdp" or not o.startswith("parallel.")]  # ddp: no offload
                cfg = config(root / f"{method}-{schedule}-{strategy}", "steps=2", f"parallel.strategy={strategy}",
                             *own, *s_over)
                with Trainer(cfg, log=None) as t:
                    initial = full_weights(t)
                    rows = t.train()
                    rank = t.dist.rank
                    got[strategy] = (losses(rows), full_weights(t), t.dist.sharding, max_diff(initial, full_weights(t)))
            report["equal"][f"{method}-{schedule}"] = {
                "ddp_losses": got["ddp"][0], "fsdp_losses": got["fsdp"][0], "sharded": got["fsdp"][2],
                "weight_diff": max_diff(got["ddp"][1], got["fsdp"][1]), "moved": got["ddp"][3]}

    # hybrid sharding (2 replicas of 1 shard each on 2 ranks) trains as plain sharding does
    hsdp = {}
    for replicas in (1, 2):
        cfg = config(root / f"hsdp{replicas}", "steps=2", "parallel.strategy=fsdp", f"parallel.replicas={replicas}",
                     *METHODS["flat"], *SCHEDULES["simultaneous"])
        with Trainer(cfg, log=None) as t:
            t.train()
            hsdp[replicas] = (full_weights(t), tuple(t.dist.mesh.shape))
    report["hsdp"] = {"weight_diff": max_diff(hsdp[1][0], hsdp[2][0]), "mesh": hsdp[2][1]}

    # per-rank state bytes of a sharded team, after a step (grads freed), and the whole model's
    from algorithms.team.memory import measured_state_bytes, state_bytes

    cfg = config(root / "bytes", "steps=1", "parallel.strategy=fsdp", *METHODS["flat"])
    with Trainer(cfg, log=None) as t:
        grads = []  # at the optimizer step, when the updated role holds its gradients
        for opt in t.optimizers.values():
            opt.register_step_post_hook(lambda *_: grads.append(measured_state_bytes(t.policies, t.optimizers)["grads"]))
        t.train()
        everyone = [None, None]
        dist.all_gather_object(everyone, {**measured_state_bytes(t.policies, t.optimizers), "grads": max(grads)})
        report["bytes"] = {"ranks": everyone, "predicted": state_bytes(cfg, 2)}
        # evaluation from sharded models (every rank generates from a gathered copy)
        ev = t.evaluate("arith:n=6,difficulty=1,split=test", samples=1, temperature=0)
        probe = [[{"role": "user", "content": "What is 12 + 30?"}]]
        report["evaluate"] = {"joint_accuracy": ev["joint_accuracy"], "solo_accuracy": ev["solo_accuracy"],
                              "greedy": {role: p.generate(probe, max_new_tokens=10, temperature=0)[0].token_ids
                                         for role, p in t.rollout_policies.items()}}
        # the idle role's sharded AdamW state leaves the device shard by shard (meta plays the other place)
        opt = t.optimizers["solver_0"]
        moved = move_optimizer_state(opt, "meta")
        moments = [v for s in opt.state.values() for k, v in s.items() if k != "step"]
        report["idle"] = {"moved": moved, "dtensors": all(hasattr(v, "to_local") for v in moments),
                          "where": sorted({v.to_local().device.type for v in moments})}

    # resume: 4 steps against 2 + 2, sharded checkpoints
    four = config(root / "four", "steps=4", "parallel.strategy=fsdp", *METHODS["flat"], *SCHEDULES["alternate"])
    with Trainer(four, log=None) as t:
        rows4 = t.train()
        w4 = full_weights(t)
    two = config(root / "two", "steps=2", "parallel.strategy=fsdp", *METHODS["flat"], *SCHEDULES["alternate"])
    with Trainer(two, log=None) as t:
        t.train()
        state = {"weights": full_weights(t), "optim": full_optim(t)}  # collectives: every rank takes part
        if rank == 0:  # the run as it stood at step 2, for the tests that load it at one rank
            torch.save(state, root / "two_state.pt")
            shutil.copytree(root / "two" / "checkpoint", root / "two_at_2" / "checkpoint")
        dist.barrier()
    two.steps = 4
    with Trainer(two, log=None, resume=True) as t:
        rows22 = t.train()
        w22 = full_weights(t)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("time", "time_total", "timestamp")} for r in rows]  # noqa: E731
    report["resume"] = {"rows_equal": strip(rows4[2:]) == strip(rows22), "weight_diff": max_diff(w4, w22),
                        "format": json.loads((root / "two" / "checkpoint" / "meta.json").read_text())["format_version"]}

    # the reverse: a whole checkpoint (one process) into sharded models, at 2 ranks
    if whole_run is not None:
        cfg = config(root / "reverse", "steps=2", "parallel.strategy=fsdp", *METHODS["flat"], *SCHEDULES["alternate"])
        cfg.out = str(whole_run)
        with Trainer(cfg, log=None, resume=True, writer=False) as t:
            w, o = full_weights(t), full_optim(t)
            if rank == 0:
                torch.save({"weights": w, "optim": o}, root / "reverse_state.pt")

    if rank == 0:
        (root / "report.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main()
