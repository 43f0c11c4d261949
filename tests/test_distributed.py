"""Data-parallel training with ``accelerate launch`` (the launcher; the trainer joins the process
group itself): two CPU processes (gloo), each collecting its own shard of the problems, end every
step with identical weights, under DDP (gradients all-reduced) and FSDP (sharded)."""

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = r'''
import hashlib, json, sys
import numpy as np
import torch
from algorithms import credit
from algorithms.config import apply_overrides, preset
from algorithms.train import Trainer

@credit.register("test_token_parity")
def parity(groups):  # rewards that a random model can move (the verifier's would all be -1)
    share = lambda role: np.array([np.mean([t % 2 for t in e.completions[role].token_ids] or [0])
                                   for g in groups for e in g.episodes])
    return {"thinker_0": share("thinker_0"), "solver_0": 1.0 - share("solver_0")}

def digest(weights):
    h = hashlib.sha256()
    for role, sd in sorted(weights.items()):
        for k in sorted(sd):
            v = sd[k].full_tensor() if hasattr(sd[k], "full_tensor") else sd[k]  # fsdp: the whole tensor
            h.update(k.encode()); h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()

out, strategy = sys.argv[1], sys.argv[2]
cfg = apply_overrides(preset("tiny-arith"), [
    "warm_start.enabled=false", "train_data=arith:n=50,difficulty=1", "rollout.problems_per_step=4",
    "rollout.group_size=2", "rollout.solo_samples=1", "rollout.thinker_max_new_tokens=6",
    "rollout.solver_max_new_tokens=6", "credit.name=test_token_parity", "optim.lr=1e-3",
    "schedule.mode=simultaneous", "steps=2", "tensorboard=false", f"out={out}", f"parallel.strategy={strategy}",
    "eval_data=arith:n=4,difficulty=1,split=test", "eval_samples=1"])  # the last step's evaluation, small
with Trainer(cfg, log=None) as t:
    initial = digest(t.role_weights())
    t.train()
    local = [e.completions[r].token_ids for g in t.last_groups for e in g.episodes for r in ("thinker_0", "solver_0")]
    json.dump({"rank": t.dist.rank, "world": t.dist.world, "backend": torch.distributed.get_backend(),
               "sharded": t.dist.sharding,
               "initial": initial, "final": digest(t.role_weights()),
               "problems": [g.problem.id for g in t.last_groups],
               "data": hashlib.sha256(json.dumps(local).encode()).hexdigest()},
              open(f"{out}/rank{t.dist.rank}.json", "w"))
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_process_accelerate_run_keeps_weights_equal(tmp_path, strategy):
    accelerate = Path(sys.executable).parent / "accelerate"
    if not accelerate.exists() and shutil.which("accelerate") is None:
        pytest.fail("accelerate is not installed; pip install -e '.[dev]'")
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    out = tmp_path / "run"
    out.mkdir()
    cmd = [str(accelerate) if accelerate.exists() else "accelerate", "launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), str(script), str(out), strategy]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((out / f"rank{i}.json").read_text()) for i in range(2)]
    assert [x["world"] for x in ranks] == [2, 2] and ranks[0]["backend"] == "gloo"
    assert [x["sharded"] for x in ranks] == [strategy == "fsdp"] * 2
    assert not set(ranks[0]["problems"]) & set(ranks[1]["problems"])  # each rank has its own shard
    assert ranks[0]["data"] != ranks[1]["data"]  # so different rollouts and different local gradients
    assert ranks[0]["final"] != ranks[0]["initial"]  # the weights moved
    assert ranks[0]["final"] == ranks[1]["final"]  # and stayed identical on both ranks
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2  # rank 0 alone writes metrics (one row per step)
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert [x["step"] for x in samples] == [1] * 4 + [2] * 4  # and samples, once per step, from its own shard
    assert {x["problem_id"] for x in samples if x["step"] == 2} <= set(ranks[0]["problems"])
