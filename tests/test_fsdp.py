"""Sharded training (``parallel.strategy=fsdp``) on two CPU ranks (gloo, ``torchrun``), for a flat
credit method, a tree method and SEPO under both schedules, and for shared and LoRA models.

One two-rank job (tests/fsdp_job.py) trains the tiny model with ddp and fsdp on the same shards
and seeds, resumes sharded checkpoints, and loads a whole checkpoint into sharded models; the
tests below read its report. A checkpoint written at two ranks is also loaded here, at one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from algorithms.runs import CheckpointError, load_checkpoint
from algorithms.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
import fsdp_job  # noqa: E402  (the job's configurations and helpers, shared with the two-rank run)

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, timeout: int = 600, **kw) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env, **kw)


@pytest.fixture(scope="module")
def job_methods():
    """The job's credit methods, registered for this module only."""
    from algorithms import credit

    saved = credit.REGISTRY.snapshot()
    fsdp_job.register_methods()
    yield
    credit.REGISTRY.restore(saved)


@pytest.fixture(scope="module")
def job(tmp_path_factory, job_methods):
    root = tmp_path_factory.mktemp("fsdp")
    # a whole (one-process) run for the reverse direction, and its per-process state bytes
    whole = fsdp_job.config(root / "whole", "steps=2", "parallel.strategy=fsdp", *fsdp_job.METHODS["flat"],
                            *fsdp_job.SCHEDULES["alternate"])
    with Trainer(whole, log=None) as t:
        t.train()
        assert not t.dist.sharding  # one process: plain training, a whole checkpoint
        one_process_bytes = _state_bytes(t)
    r = torchrun("tests/fsdp_job.py", str(root), str(root / "whole"))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    report = json.loads((root / "report.json").read_text())
    return {"root": root, "report": report, "one_process_bytes": one_process_bytes}


def _state_bytes(t):
    from algorithms.team.memory import measured_state_bytes

    return measured_state_bytes(t.policies, t.optimizers)


@pytest.mark.parametrize("case", [f"{m}-{s}" for m in fsdp_job.METHODS for s in fsdp_job.SCHEDULES])
def test_fsdp_trains_as_ddp_does(job, case):
    r = job["report"]["equal"][case]
    assert r["sharded"]  # the fsdp run really was sharded
    assert r["moved"] > 5e-4  # training moved the weights (lr 1e-3; LoRA 1e-2)
    assert r["weight_diff"] < 0.02 * r["moved"], r  # and fsdp moved them as ddp did, up to float reduction order
    for ddp, fsdp in zip(r["ddp_losses"], r["fsdp_losses"], strict=True):
        for a, b in zip(ddp, fsdp, strict=True):
            assert (a is None) == (b is None)  # the same roles updated at the same steps
            if a is not None:
                assert abs(a - b) < 1e-6, r


def test_per_rank_parameter_and_optimizer_bytes_are_about_half(job):
    ranks = job["report"]["bytes"]["ranks"]
    one = job["one_process_bytes"]
    for local in ranks:
        for part in ("params", "optimizer"):
            assert 0.45 <= local[part] / one[part] <= 0.6, (part, local, one)


def test_the_memory_plan_predicts_the_per_rank_state_within_ten_percent(job):
    predicted = job["report"]["bytes"]["predicted"]
    for local in job["report"]["bytes"]["ranks"]:  # gradients measured at the optimizer step, the rest after it
        for part in ("params", "grads", "optimizer"):
            assert local[part] > 0 and abs(predicted[part] - local[part]) <= 0.1 * local[part], (part, predicted, local)


def test_sharded_models_evaluate_and_generate_as_the_whole_model_does(job):
    from algorithms import load_team

    ev = job["report"]["evaluate"]
    assert 0.0 <= ev["joint_accuracy"] <= 1.0 and 0.0 <= ev["solo_accuracy"] <= 1.0
    team, _ = load_team(str(job["root"] / "bytes"))  # the same weights, whole, in this process
    probe = [[{"role": "user", "content": "What is 12 + 30?"}]]
    for role, tokens in ev["greedy"].items():
        assert team[role].generate(probe, max_new_tokens=10, temperature=0)[0].token_ids == tokens, role


def test_hybrid_sharding_trains_as_sharding_does(job):
    r = job["report"]["hsdp"]
    assert r["mesh"] == [2, 1]  # 2 replicas of 1 shard
    assert r["weight_diff"] < 1e-5


def test_the_idle_role_state_moves_shard_by_shard(job):
    idle, local = job["report"]["idle"], job["report"]["bytes"]["ranks"][0]
    assert idle["dtensors"] and idle["where"] == ["meta"]  # still sharded, now elsewhere
    assert 0 < idle["moved"] <= local["optimizer"]  # this rank's shard of the Solver's AdamW moments


def test_sharded_resume_two_plus_two_equals_four(job):
    r = job["report"]["resume"]
    assert r["format"] == 3  # a sharded checkpoint (torch.distributed.checkpoint) was in between
    assert r["rows_equal"] and r["weight_diff"] == 0.0


def test_a_checkpoint_saved_at_two_ranks_loads_at_one(job):
    root = job["root"]
    saved = torch.load(root / "two_state.pt", weights_only=True)
    cfg = fsdp_job.config(root / "two_at_2", "steps=2", "parallel.strategy=fsdp", *fsdp_job.METHODS["flat"],
                          *fsdp_job.SCHEDULES["alternate"])
    with Trainer(cfg, log=None, resume=True, writer=False) as t:
        assert t.step_count == 2 and not t.dist.sharding
        for role, sd in t.role_weights().items():
            for k, v in sd.items():
                assert torch.equal(v, saved["weights"][role][k]), (role, k)
        opt = fsdp_job.full_optim(t)
    for role, state in saved["optim"].items():
        assert state.keys() == opt[role].keys()
        for name, s in state.items():
            for k in ("exp_avg", "exp_avg_sq", "step"):
                assert torch.equal(torch.as_tensor(s[k]), torch.as_tensor(opt[role][name][k])), (role, name, k)


def test_a_whole_checkpoint_loads_into_sharded_models(job):
    root = job["root"]
    got = torch.load(root / "reverse_state.pt", weights_only=True)
    ck = load_checkpoint(root / "whole" / "checkpoint")
    for role, sd in ck["weights"].items():
        for k, v in sd.items():
            assert torch.equal(got["weights"][role][k], v.float()), (role, k)
    cfg = fsdp_job.config(root / "whole", "steps=2", *fsdp_job.METHODS["flat"], *fsdp_job.SCHEDULES["alternate"])
    with Trainer(cfg, log=None, resume=True, writer=False) as t:
        names = {role: [n for n, _ in t.policies[role].named_parameters()] for role in t.optimizers}
    for role, raw in ck["optimizers"].items():
        for i, s in raw["state"].items():
            mine = got["optim"][role][names[role][int(i)]]
            assert torch.equal(mine["exp_avg"], s["exp_avg"]) and torch.equal(mine["exp_avg_sq"], s["exp_avg_sq"])


def test_a_damaged_shard_is_an_error_naming_the_file(job, tmp_path):
    run = tmp_path / "two"
    shutil.copytree(job["root"] / "two_at_2", run)
    shard = run / "checkpoint" / "state" / "__1_0.distcp"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"state/__1_0\.distcp does not match its checksum"):
        load_checkpoint(run / "checkpoint")
    (run / "checkpoint" / "state" / "__0_0.distcp").unlink()
    with pytest.raises(CheckpointError, match=r"state/__0_0\.distcp is missing"):
        load_checkpoint(run / "checkpoint")


SIGTERM_JOB = r'''
import sys
sys.path.insert(0, "tests")
import fsdp_job
fsdp_job.register_methods()
from algorithms.train import Trainer, TrainingInterrupted
cfg = fsdp_job.config(sys.argv[1], "steps=500", "save_every=1000", "parallel.strategy=fsdp", *fsdp_job.METHODS["flat"])
with Trainer(cfg, log=None) as t:
    try:
        t.train()
    except TrainingInterrupted:
        sys.exit(143)
'''


def test_sigterm_during_sharded_training_keeps_a_checkpoint(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SIGTERM_JOB)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           str(script), str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:  # a few steps in, far from a scheduled save
            if (out / "metrics.jsonl").exists() and len((out / "metrics.jsonl").read_text().splitlines()) >= 2:
                break
            if proc.poll() is not None:
                pytest.fail(proc.stdout.read()[-3000:])
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGTERM)  # what a job scheduler does: every process of the job
        log = proc.communicate(timeout=240)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    ck = load_checkpoint(out / "checkpoint")  # complete, checksums verified
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert ck["sharded"] and ck["step"] == len(rows) >= 2, log[-3000:]


def test_a_sharded_run_exports_as_hugging_face_folders(job, tmp_path):
    from transformers import AutoModelForCausalLM

    from algorithms.cli import main

    saved = torch.load(job["root"] / "two_state.pt", weights_only=True)
    assert main(["export", "--model", str(job["root"] / "two_at_2"), "--out", str(tmp_path / "hf")]) == 0
    for role, sd in saved["weights"].items():
        model = AutoModelForCausalLM.from_pretrained(tmp_path / "hf" / role)
        mine = model.state_dict()
        for k, v in sd.items():
            assert torch.equal(mine[k], v), (role, k)  # the joined shards, as the two ranks held them


def test_the_cli_trains_and_resumes_sharded_under_torchrun(tmp_path):
    out = tmp_path / "run"
    args = ["-m", "algorithms.cli", "train", "--preset", "tiny-arith", "--out", str(out), "warm_start.enabled=false",
            "rollout.problems_per_step=2", "rollout.group_size=2", "rollout.solo_samples=1",
            "rollout.thinker_max_new_tokens=6", "rollout.solver_max_new_tokens=6", "tensorboard=false",
            "parallel.strategy=fsdp", *fsdp_job.SMALL_EVAL, "--steps"]
    first = torchrun(*args, "2")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    again = torchrun("-m", "algorithms.cli", "train", "--resume", "--out", str(out), "--steps", "3")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert f"resuming {out} at step 2" in again.stdout and again.stdout.count("resuming") == 1  # rank 0 alone speaks
    ck = load_checkpoint(out / "checkpoint")
    assert ck["sharded"] and ck["step"] == 3
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
