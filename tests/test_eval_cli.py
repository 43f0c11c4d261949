"""``thinksolve eval``: every data source checked before anything is generated, one verifier for
the whole command, and every evaluation appended (never overwritten) with what it was."""

import importlib
import json

import pytest

from algorithms.cli import main
from thinksolve_env import MathVerifier, load_problems

FAST = ["warm_start.enabled=false", "train_data=arith:n=20,difficulty=1", "rollout.problems_per_step=2",
        "rollout.group_size=2", "rollout.solo_samples=1", "rollout.thinker_max_new_tokens=4",
        "rollout.solver_max_new_tokens=4", "tensorboard=false"]
EVAL_DATA = "arith:n=3,difficulty=1,split=test"


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run of 2 steps that evaluates at every step (eval.jsonl) and keeps a checkpoint at step 2."""
    out = tmp_path_factory.mktemp("eval") / "run"
    assert main(["train", "--out", str(out), "--steps", "2", "--seed", "3", *FAST, "eval_every=1",
                 f"eval_data={EVAL_DATA}", "eval_samples=2"]) == 0
    return out


def test_training_eval_rows_carry_step_seed_sampling_intervals_and_ids(run):
    rows = _lines(run / "eval.jsonl")
    assert [r["step"] for r in rows] == [1, 2]
    ids = [p.id for p in load_problems(EVAL_DATA)]
    for r in rows:
        assert r["seed"] == 3 and r["data"] == EVAL_DATA and r["remove"] is None and r["time"].endswith("+00:00")
        assert r["ids"] == ids and len(r["per_problem"]["joint"]) == len(ids)
        assert r["sampling"] == {"temperature": 1.0, "top_p": 1.0, "thinker_max_new_tokens": 4, "solver_max_new_tokens": 4,
                                 "samples": 2, "prompts": "compact", "engine": "transformers"}  # tiny-arith's
        assert set(r["intervals"]) == {"joint", "solo", "collaboration"} and r["tokens"] > 0


def test_a_second_eval_keeps_the_first(run, capsys):
    base = ["eval", "--model", str(run), "--data", f"{EVAL_DATA},arith:n=2,difficulty=2", "--max-new-tokens", "4"]
    assert main([*base, "--seed", "0"]) == 0
    first = (run / "evals.jsonl").read_text()
    assert main([*base, "--seed", "1", "--greedy"]) == 0
    assert "appended to" in capsys.readouterr().out
    text = (run / "evals.jsonl").read_text()
    assert text.startswith(first)  # the first evaluation is still there, byte for byte
    a, b = _lines(run / "evals.jsonl")
    assert (a["seed"], b["seed"]) == (0, 1) and (a["temperature"], b["temperature"]) == (1.0, 0.0)
    for rec in (a, b):
        assert rec["step"] == 2 and rec["model"] == str(run) and rec["remove"] is None
        assert rec["sampling"]["thinker_max_new_tokens"] == 4 and rec["sampling"]["engine"] == "transformers"
        assert rec["sampling"]["samples"] == 1 and rec["tokens"] > 0 and rec["seconds"] > 0
        assert list(rec["results"]) == [EVAL_DATA, "arith:n=2,difficulty=2"]
        r = rec["results"][EVAL_DATA]
        assert r["ids"] == [p.id for p in load_problems(EVAL_DATA)]
        assert set(r["intervals"]) == {"joint", "solo", "collaboration"} and len(r["per_problem"]["solo"]) == 3
    # --out FILE is appended to as well
    out = run / "elsewhere.jsonl"
    for seed in ("0", "1"):
        assert main([*base, "--seed", seed, "--out", str(out)]) == 0
    assert [r["seed"] for r in _lines(out)] == [0, 1]


def test_a_bad_second_source_fails_before_any_generation(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "problem": "1+1?", "answer": "2"}\n{"id": "b", "problem": "2+2?"\n')
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "evals.jsonl"
    for second in (bad, empty, tmp_path / "missing.jsonl"):
        assert main(["eval", "--model", "tiny", "--data", f"arith:n=3,difficulty=1,{second}", "--out", str(out)]) == 2
        captured = capsys.readouterr()
        err = captured.err.strip().splitlines()
        assert len(err) == 1 and str(second) in err[0] and err[0].startswith("thinksolve: error: --data")
        assert "eval arith" not in captured.err and "evaluating" not in captured.out  # no progress line: nothing generated
        assert not out.exists()  # nor written
    assert main(["eval", "--model", "tiny", "--data", "arith:n=3,arith:n=3", "--out", str(out)]) == 2
    assert "twice" in capsys.readouterr().err


def test_eval_will_not_append_to_a_file_that_is_not_json_lines(tmp_path, capsys):
    old = tmp_path / "eval.json"  # one indented object, as thinksolve eval wrote before
    old.write_text(json.dumps({"model": "tiny", "temperature": 1.0, "results": {}}, indent=2))
    before = old.read_text()
    assert main(["eval", "--model", "tiny", "--data", "arith:n=2", "--out", str(old)]) == 2
    captured = capsys.readouterr()
    assert "not a JSON-lines file" in captured.err and "evaluating" not in captured.out
    assert old.read_text() == before


def test_one_verifier_for_every_source_and_chunk(tmp_path, monkeypatch):
    """thinksolve eval makes one verifier and passes it to every evaluation (evaluate() then makes
    none): one worker pool for the whole command, whatever the sources and chunks."""
    cli = importlib.import_module("algorithms.cli")
    ev = importlib.import_module("algorithms.evaluation.evaluate")
    made = []

    class Recorded(MathVerifier):  # the real verifier; it only records its instances
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(cli, "MathVerifier", Recorded)
    monkeypatch.setattr(ev, "MathVerifier", Recorded)
    out = tmp_path / "evals.jsonl"
    data = "arith:n=12,difficulty=1,split=test,arith:n=5,difficulty=2"  # chunks of 2 and 1: 11 collections
    assert main(["eval", "--model", "tiny", "--data", data, "--max-new-tokens", "4", "--out", str(out)]) == 0
    assert len(made) == 1
    [rec] = _lines(out)
    assert [r["problems"] for r in rec["results"].values()] == [12, 5] and rec["step"] is None


def test_the_trainer_evaluates_with_its_own_verifier(tmp_path, monkeypatch):
    """Trainer.evaluate passes the trainer's verifier (one pool for the whole run): evaluate()
    makes none, however often the run evaluates."""
    from algorithms.config import apply_overrides, preset
    from algorithms.train import Trainer

    ev = importlib.import_module("algorithms.evaluation.evaluate")
    made = []

    class Recorded(MathVerifier):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            made.append(self)

    monkeypatch.setattr(ev, "MathVerifier", Recorded)
    cfg = apply_overrides(preset("tiny-arith"), [*FAST, f"out={tmp_path / 'run'}", "steps=1", f"eval_data={EVAL_DATA}"])
    with Trainer(cfg, log=None) as trainer:
        first, second = trainer.evaluate(cfg.eval_data), trainer.evaluate(cfg.eval_data)
    assert made == [] and first["ids"] == second["ids"] and first["data"] == EVAL_DATA


def test_removal_records(tmp_path):
    out = tmp_path / "evals.jsonl"
    for remove in ("thinker_0", "solver_0"):
        assert main(["eval", "--model", "tiny", "--data", EVAL_DATA, "--remove", remove, "--max-new-tokens", "4",
                     "--out", str(out)]) == 0
    a, b = _lines(out)
    assert (a["remove"], b["remove"]) == ("thinker_0", "solver_0")
    assert set(a["results"][EVAL_DATA]["intervals"]) == {"solo"} and "solo_accuracy" in a["results"][EVAL_DATA]
    r = b["results"][EVAL_DATA]
    assert set(r["intervals"]) == {"no_solver"} and len(r["per_problem"]["no_solver"]) == 3 and "no_solver_accuracy" in r
