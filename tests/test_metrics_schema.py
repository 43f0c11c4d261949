"""The metrics schema of docs/metrics.md is complete and the rows keep it.

Real tiny runs (every built-in credit method, the alternating schedule, a KL term, tree rollouts)
write metrics rows; every key of every row must be named in the page's table (``<role>`` stands
for each role), every row of a run must have the same keys, and a role the step did not update
has ``null`` update metrics. The keys of samples rows and of ``summary.json`` are held to their
tables the same way. A new key without a line in the docs fails here."""

import json
import re
from pathlib import Path

import pytest

from algorithms.config import apply_overrides, preset
from algorithms.runs import SAMPLES, read_rows
from algorithms.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "metrics.md"
ROLES = ("thinker_0", "solver_0")
CHAIN = ("planner_0", "relay_0", "solver_0")
#: samples keys only a chain of more than two roles writes
CHAIN_SAMPLES = {"messages", "briefings"}
UPDATE = ("loss", "pg_loss", "kl", "clip_frac", "clip_frac_low", "clip_frac_high", "dual_clip_frac", "ratio_mean",
          "grad_norm", "lr", "micro_batches", "advantage_mean", "advantage_abs_mean")


def documented(heading: str) -> set[str]:
    """The keys named in the first column of the table under ``## heading`` of docs/metrics.md."""
    text = PAGE.read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    keys = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        for key in re.findall(r"`([^`]+)`", line.split("|")[1]):
            keys |= {key.replace("<role>", r) for r in ROLES + CHAIN} if "<role>" in key else {key}
    assert keys, f"no table under '## {heading}' in {PAGE}"
    return keys


def test_the_parser_reads_the_tables():
    metrics = documented("Metrics rows")
    assert {"step", "timestamp", "loss_thinker_0", "loss_solver_0", "credit_ccpo/helped", "tokens"} <= metrics
    assert {"thought", "answer", "credit", "advantage"} <= documented("Samples rows")
    assert {"eval", "batch", "samples"} <= documented("Summary")


def _tiny(out, *extra):
    return apply_overrides(preset("tiny-arith"), [
        "warm_start.enabled=false", "train_data=arith:n=30,difficulty=1", "rollout.problems_per_step=2",
        "rollout.group_size=2", "rollout.solo_samples=1", "rollout.thinker_max_new_tokens=5",
        "rollout.solver_max_new_tokens=5", "rollout.rating_max_new_tokens=6", "schedule.period=1", "steps=2",
        "save_every=100", "tensorboard=false", "samples_per_write=2",
        # the last step's evaluation (summary.json's eval) on 4 problems, not the preset's 200 x 2 samples
        "eval_data=arith:n=4,difficulty=1,split=test", "eval_samples=1", f"out={out}", *extra])


RUNS = {
    "ccpo-event": ["credit.name=ccpo"],
    "ccpo-margin": ["credit.name=ccpo", 'credit.params={"variant": "margin"}'],
    "ccpo-value-tree": ["credit.name=ccpo", 'credit.params={"variant": "value"}', "rollout.answers_per_thought=2"],
    "ccpo-normalized": ["credit.name=ccpo", 'credit.params={"variant": "normalized"}'],
    "sepo": ["credit.name=sepo"],
    "shapley": ["credit.name=shapley"],
    "difference-gspo-kl": ["credit.name=difference", "optim.loss=gspo", "optim.kl_coef=0.1"],
    "shared-simultaneous": ["credit.name=shared", "schedule.mode=simultaneous"],
    "tree": ["credit.name=tree", "rollout.answers_per_thought=2"],
    # a chain of three roles: per-role keys for every role, each role's removal and contribution
    "chain-ccpo": ["credit.name=ccpo", f"rollout.roles={json.dumps(list(CHAIN))}", "schedule.start_role=planner_0",
                   "train_data=arith:n=30,difficulty=1,relay=1", "eval_data=arith:n=4,difficulty=1,split=test,relay=1"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    for name, extra in RUNS.items():
        d = tmp_path_factory.mktemp(name)
        with Trainer(_tiny(d, *extra), log=None) as t:
            t.train()
        out[name] = d
    return out


@pytest.mark.parametrize("name", RUNS)
def test_every_key_a_training_step_writes_is_documented(runs, name):
    rows = [json.loads(x) for x in (runs[name] / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    undocumented = sorted(set().union(*rows) - documented("Metrics rows"))
    assert not undocumented, f"{name}: metrics keys missing from docs/metrics.md: {undocumented}"
    assert set(rows[0]) == set(rows[1]), f"{name}: rows differ in their keys: {set(rows[0]) ^ set(rows[1])}"
    roles = CHAIN if name.startswith("chain") else ROLES
    for row in rows:  # every role's update metrics, null where the role was not updated
        for role in roles:
            for k in UPDATE:
                assert f"{k}_{role}" in row
                assert (row[f"{k}_{role}"] is None) == (role not in row["updated"]), (name, row["step"], k, role)
        assert isinstance(row["timestamp"], float) and row["timestamp"] > 1.7e9
    if name != "shared-simultaneous":
        assert rows[0]["updated"] == [roles[0]] and rows[1]["updated"] == [roles[1]]
    if roles == CHAIN:
        for role in CHAIN:
            assert {f"without_{role}_accuracy", f"contribution_{role}"} <= set(rows[0])
    samples = read_rows(runs[name] / SAMPLES)
    assert [s["step"] for s in samples] == [1, 1, 2, 2]
    assert not set().union(*samples) - documented("Samples rows")
    expected = documented("Samples rows") - (set() if roles == CHAIN else CHAIN_SAMPLES)
    assert not set().union(*samples) ^ expected, "a documented samples key is never written"
    summary = json.loads((runs[name] / "summary.json").read_text())
    assert set(summary) == documented("Summary")
