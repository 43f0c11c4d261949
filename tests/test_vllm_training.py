"""Training with ``rollout.engine=vllm`` on CPU vLLM (runs in the vLLM virtualenv, ``make test-vllm``).

The ``tiny-arith`` preset's rollouts (8 rollouts per problem, 4 Thinker-removed samples per
problem) on 2 problems per step (16 Thinker and 24 Solver prompts) with the untrained ``tiny``
model, and the scheduler's token budget cut to 320 tokens, so every generate call spans several
scheduler steps: the setting where vLLM's chunked prefill crashed seeded CPU sampling, reached
cheaply (the preset's own 8 problems per step, 96 Solver prompts, were run by hand with
``thinksolve train --preset tiny-arith ... rollout.engine=vllm`` at vLLM's default budget). A randomly
initialised model never solves a problem, so the verifier's +-1 would give zero advantages; a
credit method registered here rewards the parity of the sampled tokens instead, so every step
changes the weights and the engine has something to follow.
"""

from __future__ import annotations

import copy
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # engine in-process under pytest

import numpy as np
import pytest

from agents.vllm_policy import VLLM_MISSING, vllm_available

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(not vllm_available(), reason=VLLM_MISSING),
]

torch = pytest.importorskip("torch")

from algorithms import credit  # noqa: E402
from algorithms.config import apply_overrides, preset  # noqa: E402

THINKER, SOLVER = "thinker_0", "solver_0"
BUDGET = 320  # scheduler tokens per step; max_model_len is 256 + 32 = 288

if "test_vllm_parity" not in credit.available():

    @credit.register("test_vllm_parity", requires=["solo"])
    def _parity(groups):
        def share(role):
            return np.array([np.mean([t % 2 for t in e.completions[role].token_ids] or [0])
                             for g in groups for e in g.episodes])

        return {THINKER: share(THINKER), SOLVER: 1.0 - share(SOLVER)}


def config(out, steps):
    return apply_overrides(preset("tiny-arith"), [
        "warm_start.enabled=false", "train_data=arith:n=200,difficulty=1", "credit.name=test_vllm_parity",
        "rollout.problems_per_step=2",
        "rollout.engine=vllm", f'rollout.vllm={{"max_num_batched_tokens": {BUDGET}}}', "optim.lr=1e-3",
        "optim.ppo_epochs=1", "schedule.period=1", "save_every=100", "tensorboard=false", f"steps={steps}",
        f"out={out}",
    ])


def _rows(out):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("time", None), r.pop("time_total", None), r.pop("timestamp", None)
    return rows


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """Three steps in one run (Thinker, Solver, Thinker updated), and what the tests check."""
    from algorithms.train import Trainer

    out = tmp_path_factory.mktemp("vllm-straight")
    seen = {}
    with Trainer(config(out, 3), log=None) as t:
        engines = t.rollout_policies
        assert engines[THINKER] is not engines[SOLVER]  # `separate` sharing: one engine per role
        initial = {role: copy.deepcopy(t.policies[role]) for role in (THINKER, SOLVER)}
        thinker_prompts = None
        for k in range(3):
            t.step()
            groups = t.last_groups
            if k == 0:
                # Step 1 updated the Thinker only; the Solver's weights are still those it sampled with.
                prompts = [e.prompts[SOLVER] for g in groups for e in g.episodes] + \
                          [g.solo_prompt for g in groups for _ in g.solo_completions]
                comps = [e.completions[SOLVER] for g in groups for e in g.episodes] + \
                        [c for g in groups for c in g.solo_completions]
                seen["solver_rows"] = len(comps)
                seen["solver_prompt_tokens"] = sum(len(c.prompt_token_ids) for c in comps)
                with torch.no_grad():
                    lp = t.policies[SOLVER].logprobs(prompts, comps)
                seen["solver_logprob_gap"] = max(float((a - torch.tensor(c.logprobs)).abs().max())
                                                 for a, c in zip(lp, comps))
                thinker_prompts = [e.prompts[THINKER] for g in groups for e in g.episodes]
        # After three updates: greedy decoding from each engine against its trainable policy, and
        # sampled log-probs against the trained and the initial weights.
        probe = thinker_prompts[:16]
        for role in (THINKER, SOLVER):
            want = t.policies[role].generate(probe, max_new_tokens=12, temperature=0)
            got = engines[role].generate(probe, max_new_tokens=12, temperature=0)
            seen[f"greedy_{role}"] = ([c.token_ids for c in got], [c.token_ids for c in want])
            sampled = engines[role].generate(probe, max_new_tokens=12, temperature=1.0, seed=7)
            with torch.no_grad():
                for name, policy in (("trained", t.policies[role]), ("initial", initial[role])):
                    lp = policy.logprobs(probe, sampled)
                    seen[f"gap_{name}_{role}"] = max(float((a - torch.tensor(c.logprobs)).abs().max())
                                                     for a, c in zip(lp, sampled))
        seen["weights"] = {role: {k: v.clone() for k, v in sd.items()} for role, sd in t.role_weights().items()}
    seen["rows"] = _rows(out)
    return seen


def test_a_batch_larger_than_the_token_budget_trains(straight):
    rows = straight["rows"]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert [r["updated"] for r in rows] == [[THINKER], [SOLVER], [THINKER]]
    assert straight["solver_rows"] == 2 * 8 + 2 * 4
    assert straight["solver_prompt_tokens"] > 3 * BUDGET  # the Solver call spans several scheduler steps
    for r in rows:
        role = r["updated"][0]
        assert np.isfinite(r[f"loss_{role}"]) and r[f"grad_norm_{role}"] > 0


def test_sampling_time_logprobs_equal_the_trainers_recomputed_ones(straight):
    assert straight["solver_logprob_gap"] < 1e-4
    # ratio = exp(recomputed - sampled), averaged over the first update's tokens (before any step)
    first = straight["rows"][0]
    assert abs(first["ratio_mean_thinker_0"] - 1.0) < 1e-4
    assert abs(straight["rows"][1]["ratio_mean_solver_0"] - 1.0) < 1e-4  # the Solver's first update


def test_engines_follow_the_updates(straight):
    for role in (THINKER, SOLVER):
        got, want = straight[f"greedy_{role}"]
        assert got == want, role
        # the engine samples from the trained weights, which the updates moved away from the initial ones
        assert straight[f"gap_trained_{role}"] < 1e-4, role
        assert straight[f"gap_initial_{role}"] > 1e-2, role


def test_resume_with_the_vllm_engine_continues_like_the_straight_run(straight, tmp_path):
    from algorithms.train import Trainer

    with Trainer(config(tmp_path, 2), log=None) as t:
        t.train()
    with Trainer(config(tmp_path, 3), resume=True, log=None) as t:
        t.train()
        resumed = t.role_weights()
    a, b = straight["rows"], _rows(tmp_path)
    assert len(b) == 3
    for ra, rb in zip(a, b):
        assert ra["updated"] == rb["updated"] and ra["tokens"] == rb["tokens"]
        for k, v in ra.items():
            if isinstance(v, float):
                assert rb[k] == pytest.approx(v, rel=1e-5, abs=1e-6), (ra["step"], k)
    for role, sd in straight["weights"].items():
        for k, v in sd.items():
            torch.testing.assert_close(resumed[role][k], v, rtol=1e-5, atol=1e-6, msg=f"{role}.{k}")
    # a run trained on vLLM evaluates: load_team returns the trained policies, not closed engines
    from algorithms.team import load_team

    team, rollout = load_team(str(tmp_path))
    assert rollout.engine == "vllm"
    for role in (THINKER, SOLVER):
        sd = team[role].model.state_dict()
        for k, v in straight["weights"][role].items():
            torch.testing.assert_close(sd[k], v, rtol=1e-5, atol=1e-6, msg=f"{role}.{k}")
    out = team[THINKER].generate([[{"role": "user", "content": "1 + 1?"}]], max_new_tokens=4, temperature=0)
    assert len(out) == 1 and out[0].token_ids


def test_engines_sync_from_sharded_weights_on_two_ranks(tmp_path):
    """FSDP on two ranks, one vLLM engine per rank and role, synced after every update from the
    shards (gathered one tensor at a time): greedy text from each engine equals the trained
    policy's (generating from a gathered copy), on both ranks, and training changed it."""
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           str(root / "tests" / "vllm_fsdp_job.py"), str(tmp_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=root,
                       env={**os.environ, "OMP_NUM_THREADS": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    for rank in (0, 1):
        report = json.loads((tmp_path / f"report{rank}.json").read_text())
        assert report["sharded"] and report["synced"] == {THINKER: 2, SOLVER: 1}  # 3 alternating steps, period 1
        for role in (THINKER, SOLVER):
            assert report[role]["engine"] == report[role]["policy"], (rank, role)
        assert report[THINKER]["policy"] != report[THINKER]["after_step_1"]  # the Thinker trained again after step 1
    assert not (tmp_path / "run" / ".engine-weights").exists()  # the engines' starting weights were cleaned up
