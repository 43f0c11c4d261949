"""The two-rank job behind tests/test_vllm_training.py's sharded case (``torchrun --nproc_per_node 2``
in the vLLM virtualenv): FSDP-sharded tiny models, one in-process CPU vLLM engine per rank and
role, three steps (each syncing the engines from the shards, tensor by tensor); then greedy text
from each engine against the trained policy's own (generating from a gathered copy). Each rank
writes ``OUT/report<rank>.json``."""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

sys.path.insert(0, os.path.dirname(__file__))
import test_vllm_training as base

from algorithms.config import apply_overrides
from algorithms.train import Trainer
from algorithms.train.distributed import GatheredGeneration


def main() -> None:
    out = sys.argv[1]
    cfg = apply_overrides(base.config(f"{out}/run", 3), ["parallel.strategy=fsdp", "rollout.problems_per_step=2",
                                                        "rollout.group_size=4", "rollout.solo_samples=2"])
    with Trainer(cfg, log=None) as t:
        assert t.dist.sharding, "the models are not sharded"
        t.step()
        probe = [e.prompts[base.THINKER] for g in t.last_groups for e in g.episodes][:8]
        before = {role: GatheredGeneration(t.policies[role]).generate(probe, max_new_tokens=12, temperature=0)
                  for role in (base.THINKER, base.SOLVER)}
        t.train()
        report = {"rank": t.dist.rank, "synced": dict(t.engines.synced_at), "sharded": t.dist.sharding}
        for role in (base.THINKER, base.SOLVER):
            mine = GatheredGeneration(t.policies[role]).generate(probe, max_new_tokens=12, temperature=0)
            got = t.rollout_policies[role].generate(probe, max_new_tokens=12, temperature=0)
            report[role] = {"engine": [c.token_ids for c in got], "policy": [c.token_ids for c in mine],
                            "after_step_1": [c.token_ids for c in before[role]]}
        with open(f"{out}/report{t.dist.rank}.json", "w") as f:
            json.dump(report, f)


if __name__ == "__main__":
    main()
