import json
import subprocess
import sys

import pytest

from algorithms.cli import main, scripted_team

FAST = ["warm_start.enabled=false", "train_data=arith:n=20,difficulty=1", "rollout.problems_per_step=2",
        "rollout.group_size=2", "rollout.solo_samples=1", "rollout.thinker_max_new_tokens=4",
        "rollout.solver_max_new_tokens=4", "tensorboard=false"]


def test_play_prints_accuracy_per_removal_mode(capsys, math500_path):
    assert main(["play", "--data", str(math500_path), "--episodes", "12"]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ") and "%" in line}
    assert set(rows) == {"nobody", "thinker_0", "solver_0", "both"}
    # Nobody acting is always wrong (R_∅ = −1).
    assert "0.0%" in rows["both"].split("|")[3]
    assert "collaboration diagnostic" in out


def test_scripted_team_uses_the_thought(math500):
    thinker, solver = scripted_team(math500[:3])
    p = math500[2]
    thought = thinker.generate([[{"role": "user", "content": p.problem}]], max_new_tokens=8)[0].text
    assert "\\boxed" not in thought
    msg = [{"role": "user", "content": f"Problem:\n{p.problem}\n\nThinker's thought:\n{thought}"}]
    assert "\\boxed{" in solver.generate([msg], max_new_tokens=8)[0].text


def test_console_script_module_runs():
    r = subprocess.run([sys.executable, "-m", "algorithms.cli", "play", "--episodes", "0"], capture_output=True, text=True)
    assert r.returncode == 2 and "--episodes must be >= 1" in r.stderr


@pytest.mark.parametrize("args, msg", [
    (["--preset", "nope"], "unknown preset 'nope'; choose from ['llama3.1-8b-math', 'qwen2.5-1.5b-math'"),
    (["--credit", "magic"], "unknown credit method 'magic'; choose from ['ccpo', 'difference', 'sepo', 'shapley', 'shared'"),
    (["--optimizer", "adam"], "unknown optimizer 'adam'; choose from ['dr_grpo', 'grpo', 'gspo', 'reinforce++'"),
    (["rollout.group_size=1"], "rollout.group_size=1 is invalid: allowed >= 2"),
    (["optim.lrr=1"], "unknown config field 'optim.lrr'; known here: ['agg'"),
    (["--steps", "0"], "steps=0 is invalid: allowed >= 1"),
])
def test_train_errors_name_the_choices(capsys, tmp_path, args, msg):
    assert main(["train", "--out", str(tmp_path / "run"), *args]) == 2
    assert msg in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_train_resume_and_eval_from_the_command_line(capsys, tmp_path):
    run = tmp_path / "run"
    base = ["train", "--preset", "tiny-arith", "--credit", "shared", "--optimizer", "rloo", "--seed", "3", "--out", str(run)]
    assert main([*base, "--steps", "1", *FAST]) == 0
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1]
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["credit"]["name"], cfg["optim"]["estimator"], cfg["seed"]) == ("shared", "rloo", 3)
    assert main([*base, "--steps", "2", *FAST]) == 2  # refuses to overwrite without --resume
    assert "pass --resume" in capsys.readouterr().err
    resume = ["train", "--resume", "--out", str(run)]
    assert main([*resume, "--steps", "2", "optim.lr=0.5"]) == 2  # a change to the recorded config
    err = capsys.readouterr().err
    assert "different configuration" in err and "optim.lr: 3e-05 -> 0.5" in err
    assert main([*resume, "--preset", "tiny-arith"]) == 2
    assert "drop --preset" in capsys.readouterr().err
    # --resume alone: the recorded config (credit, optimizer, seed, the FAST overrides), target 1 step: reached
    assert main(resume) == 0
    assert "already at step 1 of 1: nothing to train" in capsys.readouterr().out
    assert main([*resume, "--steps", "2"]) == 0  # only the new target given
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["credit"]["name"], cfg["optim"]["estimator"], cfg["seed"], cfg["steps"]) == ("shared", "rloo", 3, 2)
    assert cfg["rollout"]["thinker_max_new_tokens"] == 4 and cfg["warm_start"]["enabled"] is False
    assert main([*resume, "--steps", "1"]) == 2  # behind the checkpoint: said, not silently ignored
    assert "already at step 2" in capsys.readouterr().err

    capsys.readouterr()
    data = "arith:n=3,difficulty=1,split=test,arith:n=2,difficulty=2"  # two datasets
    assert main(["eval", "--model", str(run), "--data", data, "--samples", "2", "--greedy", "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert "Thinker removed" in out and "collaboration" in out
    result = json.loads((run / "eval.json").read_text())
    assert sorted(result["results"]) == ["arith:n=2,difficulty=2", "arith:n=3,difficulty=1,split=test"]
    r = result["results"]["arith:n=3,difficulty=1,split=test"]
    assert r["problems"] == 3 and r["samples"] == 2 and result["temperature"] == 0.0


def test_eval_errors(capsys, tmp_path):
    assert main(["eval", "--model", str(tmp_path / "missing"), "--data", "arith:n=2"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["eval", "--model", "tiny", "--data", "arith:n=2", "--samples", "0"]) == 2
    assert "--samples must be >= 1" in capsys.readouterr().err


def test_resume_without_a_checkpoint_is_a_clear_error(capsys, tmp_path):
    assert main(["train", "--out", str(tmp_path / "none"), "--steps", "1", "--resume", *FAST]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
