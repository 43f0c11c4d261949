import json
import subprocess
import sys

import pytest

from algorithms.cli import main, scripted_team

FAST = ["warm_start.enabled=false", "train_data=arith:n=20,difficulty=1", "rollout.problems_per_step=2",
        "rollout.group_size=2", "rollout.solo_samples=1", "rollout.thinker_max_new_tokens=4",
        "rollout.solver_max_new_tokens=4", "tensorboard=false",
        # the run still ends with the preset's evaluation (its last step), on 4 problems, not 200 x 2 samples
        "eval_data=arith:n=4,difficulty=1,split=test", "eval_samples=1"]


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
    r = subprocess.run([sys.executable, "-m", "algorithms.cli", "play", "--episodes", "0"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--episodes must be >= 1" in r.stderr


@pytest.mark.parametrize("args, msg", [
    (["--preset", "nope"], "unknown preset 'nope'; choose from ['llama3.1-8b-math', 'llama3.1-8b-math-grpo'"),
    (["--credit", "magic"], "unknown credit method 'magic'; choose from ['ccpo', 'difference', "),
    (["--optimizer", "adam"], "unknown optimizer 'adam'; choose from ['dr_grpo', 'grpo', 'gspo', 'reinforce++'"),
    (["rollout.group_size=1"], "rollout.group_size=1 is invalid: allowed >= 2"),
    (["optim.lrr=1"], "unknown config field 'optim.lrr' (did you mean 'optim.lr'?); known here: ['agg'"),
    (["foo.bar=1"], "unknown config section 'foo'; sections here: ['credit', 'model', 'optim', 'parallel', 'rollout',"),
    (["rolout.group_size=4"], "unknown config section 'rolout'; did you mean 'rollout'? sections here:"),
    (["--steps", "0"], "steps=0 is invalid: allowed >= 1"),
])
def test_train_errors_name_the_choices(capsys, tmp_path, args, msg):
    assert main(["train", "--out", str(tmp_path / "run"), *args]) == 2
    err = capsys.readouterr().err
    assert msg in err
    if "credit method" in msg:  # every built-in is named (other tests' registered methods may sit between them)
        assert all(f"'{name}'" in err for name in ("sepo", "shapley", "shared", "tree"))
    assert not (tmp_path / "run").exists()


def test_train_resume_and_eval_from_the_command_line(capsys, tmp_path):
    run = tmp_path / "run"
    base = ["train", "--preset", "tiny-arith", "--credit", "shared", "--optimizer", "rloo", "--seed", "3",
            "--out", str(run)]
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
    # the original line with --resume appended, but another optimizer: the differences are listed
    assert main([*base, "--optimizer", "grpo", "--resume", "--steps", "1", *FAST]) == 2
    err = capsys.readouterr().err
    assert "different configuration" in err and "optim.estimator: 'rloo' -> 'grpo'" in err
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
    assert main(["eval", "--model", str(run), "--data", data, "--samples", "2", "--greedy",
                 "--max-new-tokens", "4"]) == 0
    out = capsys.readouterr().out
    assert "Thinker removed" in out and "collaboration" in out
    [result] = [json.loads(x) for x in (run / "evals.jsonl").read_text().splitlines()]  # one record, appended
    assert sorted(result["results"]) == ["arith:n=2,difficulty=2", "arith:n=3,difficulty=1,split=test"]
    r = result["results"]["arith:n=3,difficulty=1,split=test"]
    assert r["problems"] == 3 and r["samples"] == 2 and result["temperature"] == 0.0
    assert result["step"] == 2 and result["seed"] == 0 and len(r["ids"]) == 3


def test_eval_errors(capsys, tmp_path):
    assert main(["eval", "--model", str(tmp_path / "missing"), "--data", "arith:n=2"]) == 2
    assert f"--model='{tmp_path / 'missing'}': no such directory" in capsys.readouterr().err
    (tmp_path / "runs" / "first").mkdir(parents=True)
    mistyped = str(tmp_path / "runs" / "firts")  # looks like a hub id 'org/name'; it is a mistyped run directory
    assert main(["eval", "--model", mistyped, "--data", "arith:n=2"]) == 2
    err = capsys.readouterr().err
    assert f"did you mean '{tmp_path / 'runs' / 'first'}'?" in err and "hub" not in err.split(";")[0]
    assert main(["eval", "--model", "nope", "--data", "arith:n=2"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert main(["eval", "--model", "tiny", "--data", "arith:n=2", "--samples", "0"]) == 2
    assert "--samples must be >= 1" in capsys.readouterr().err


def test_resume_without_a_checkpoint_is_a_clear_error(capsys, tmp_path):
    assert main(["train", "--out", str(tmp_path / "none"), "--steps", "1", "--resume", *FAST]) == 2
    err = capsys.readouterr().err
    assert "no checkpoint at" in err and "--resume auto" in err


def test_the_original_command_line_with_resume_appended_continues(capsys, tmp_path):
    run = tmp_path / "run"
    line = ["train", "--preset", "tiny-arith", "--credit", "ccpo", "--seed", "1", "--out", str(run), *FAST]
    assert main([*line, "--steps", "1"]) == 0
    # the same line, --resume appended (before an override, which must stay an override), a new target
    assert main([*line[:-1], "--resume", line[-1], "--steps", "2"]) == 0, capsys.readouterr().err
    assert "resuming" in capsys.readouterr().out
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    # the same line again once the target is reached: said, exit 0 (a requeued job that had finished)
    assert main([*line, "--steps", "2", "--resume"]) == 0
    assert "already at step 2 of 2: nothing to train" in capsys.readouterr().out
    # a real difference (another credit method, another seed) is refused, every one listed, nothing written
    before = (run / "metrics.jsonl").read_bytes()
    assert main([*line, "--steps", "3", "--resume", "--credit", "shared", "--seed", "2"]) == 2
    err = capsys.readouterr().err
    assert "credit.name: 'ccpo' -> 'shared'" in err and "seed: 1 -> 2" in err
    assert (run / "metrics.jsonl").read_bytes() == before
    # resumable changes pass: the target, the checkpoint interval, the evaluation interval
    assert main([*line, "--steps", "3", "--resume", "save_every=5", "eval_every=0"]) == 0


def test_misleading_errors_name_the_real_problem(capsys, tmp_path, monkeypatch):
    # a hub id that cannot be loaded here is said first, not the warm start that depends on the model
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny-brief", "--out", str(out), "model.name=someorg/some-model-7b", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "model.name='someorg/some-model-7b' is a hub id, HF_HUB_OFFLINE is set" in err and "warm_start" not in err
    assert main(["train", "--preset", "tiny-brief", "--out", str(out), "model.name=someorg/m", "warm_start.enabled=false",
                 "--dry-run"]) == 2
    assert "is a hub id" in capsys.readouterr().err and not out.exists()
    # `play` names itself; --credit's help names every built-in
    assert main(["play", "--episodes", "2"]) == 0
    assert capsys.readouterr().out.startswith("thinksolve play: 2 problems")
    from algorithms.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    assert all(name in train.format_help() for name in ("shared", "ccpo", "sepo", "difference", "shapley", "tree"))


def test_dry_run_checks_everything_and_writes_nothing(capsys, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny-brief", "--out", str(run), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "a new run" in out and "nothing loaded or written" in out and "tiny-brief" in out
    assert "(200 problems)" in out or "problems)" in out
    assert not run.exists()
    assert main(["train", "--out", str(run), "--dry-run", "train_data=/no/such.jsonl", *FAST[:1]]) == 2
    assert "train_data='/no/such.jsonl'" in capsys.readouterr().err and not run.exists()
    assert main(["train", "--out", str(run), "--steps", "1", *FAST]) == 0
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--steps", "3", "--resume", "auto", "--dry-run", *FAST]) == 0
    assert "resumes at step 1 of 3" in capsys.readouterr().out
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1]


@pytest.mark.slow
def test_a_killed_training_continues_when_the_scheduler_reruns_the_same_line(tmp_path):
    """`--resume auto`: the same command line starts the run in an empty directory, and after a
    SIGKILL (no chance to save; a preempted job) continues it from the last checkpoint, ending
    where an uninterrupted run ends."""
    import os
    import signal
    import time

    import torch

    from algorithms.runs import recorded_config

    out = tmp_path / "cut"
    cmd, env, root = _cli(tmp_path, out, 5, THINKSOLVE_TEST_SLEEP="0.4")
    cmd += ["save_every=1", "--resume", "auto"]
    first = subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and first.poll() is None:
            try:
                if recorded_config(out)["step"] >= 2:
                    break
            except Exception:
                pass
            time.sleep(0.05)
        assert first.poll() is None, first.communicate()
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.communicate(timeout=60)
    killed_at = recorded_config(out)["step"]
    assert 2 <= killed_at < 5
    again = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"resuming {out} at step {killed_at}" in again.stdout
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5]
    # a third run of the same line: the run is complete, nothing to train
    done = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "nothing to train" in done.stdout
    cmd, env, root = _cli(tmp_path, tmp_path / "whole", 5)
    assert subprocess.run(cmd + ["save_every=1", "--resume", "auto"], env=env, cwd=root, capture_output=True,
                          timeout=300).returncode == 0
    whole, cut = _ckpt_weights(tmp_path / "whole"), _ckpt_weights(out)
    assert all(torch.equal(whole[role][k], cut[role][k]) for role in whole for k in whole[role])


# --------------------------------------------------------------------------- runs a user can trust

_PLUGIN = r'''
"""A credit method for the CLI tests: rewards the parity of the sampled tokens (so every step
changes the weights); THINKSOLVE_TEST_SLEEP slows each step, THINKSOLVE_TEST_TERM_AT=k sends this
process SIGTERM during the k-th step."""
import os
import signal
import time

import numpy as np

from algorithms import credit

CALLS = [0]


@credit.register("cli_parity", replace=True)
def cli_parity(groups):
    CALLS[0] += 1
    time.sleep(float(os.environ.get("THINKSOLVE_TEST_SLEEP", "0")))
    if CALLS[0] == int(os.environ.get("THINKSOLVE_TEST_TERM_AT", "0")):
        os.kill(os.getpid(), signal.SIGTERM)
    share = lambda role: np.array([np.mean([t % 2 for t in e.completions[role].token_ids] or [0])
                                   for g in groups for e in g.episodes])
    return {"thinker_0": share("thinker_0"), "solver_0": 1.0 - share("solver_0")}
'''


def _cli(tmp_path, out, steps, **env):
    """A `thinksolve train` process (its own interpreter, as a user or a scheduler starts it)."""
    import os

    plugin = tmp_path / "cli_parity.py"
    if not plugin.exists():
        plugin.write_text(_PLUGIN)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cmd = [sys.executable, "-m", "algorithms.cli", "train", "--plugin", str(plugin), "--credit", "cli_parity",
           "--steps", str(steps), "--out", str(out), *FAST, "optim.lr=1e-3", "schedule.period=1", "save_every=100"]
    return cmd, dict(os.environ, **env), root


def _ckpt_weights(run):
    from algorithms.runs import load_checkpoint

    return load_checkpoint(run / "checkpoint")["weights"]


@pytest.mark.slow
def test_sigterm_exits_143_after_saving_and_resume_alone_equals_the_uninterrupted_run(tmp_path, capsys):
    import torch

    cmd, env, root = _cli(tmp_path, tmp_path / "cut", 4, THINKSOLVE_TEST_TERM_AT="2")
    r = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 143, r.stderr
    assert "SIGTERM: finishing this step" in r.stdout and "training stopped by signal 15 at step 2" in r.stderr
    assert "continue with: thinksolve train --resume --out" in r.stderr
    assert [json.loads(x)["step"] for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    # --resume alone: the recorded config, its plugin and its target (4 steps)
    assert main(["train", "--resume", "--out", str(tmp_path / "cut")]) == 0, capsys.readouterr().err
    cmd, env, root = _cli(tmp_path, tmp_path / "whole", 4)
    assert subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=300).returncode == 0
    whole, cut = _ckpt_weights(tmp_path / "whole"), _ckpt_weights(tmp_path / "cut")
    assert all(torch.equal(whole[role][k], cut[role][k]) for role in whole for k in whole[role])

    def rows(run):
        out = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if not k.startswith("time")} for r in out]

    assert rows(tmp_path / "whole") == rows(tmp_path / "cut") and len(rows(tmp_path / "cut")) == 4


@pytest.mark.slow
def test_two_trainings_into_one_run_directory_the_second_is_refused(tmp_path, capsys):
    import time

    out = tmp_path / "run"
    cmd, env, root = _cli(tmp_path, out, 6, THINKSOLVE_TEST_SLEEP="0.5")
    first = subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out / "metrics.jsonl").exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert first.poll() is None, first.communicate()
        assert main(["train", "--out", str(out), "--steps", "3", *FAST]) == 2
        err = capsys.readouterr().err
        assert f"is in use by another training process (pid {first.pid} on" in err and "choose another --out" in err
        assert main(["train", "--resume", "--out", str(out), "--steps", "8"]) == 2  # resuming it is a second writer too
        assert f"(pid {first.pid} on" in capsys.readouterr().err
        assert main(["demo", "--out", str(out), "--steps", "1"]) == 2  # the demo replaces its --out: not this one
        assert f"(pid {first.pid} on" in capsys.readouterr().err
    finally:
        stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    rows = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows == [1, 2, 3, 4, 5, 6]  # the first run is unharmed
    from algorithms.runs import load_checkpoint

    assert load_checkpoint(out / "checkpoint")["step"] == 6


def test_train_progress_shows_off_a_terminal(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run"), "--steps", "2", *FAST]) == 0
    out = capsys.readouterr().out  # captured: not a TTY, as under tee, nohup or a log file
    assert "train: step 1/2" in out and "train: step 2/2" in out and "left" in out


def test_list_fields(capsys):
    assert main(["train", "--list-fields", "--preset", "smollm2-arith"]) == 0
    out = capsys.readouterr().out
    assert "  model.name = 'smollm2-135m'\n      Model for both roles" in out
    assert "optim.lr = 2e-06" in out and "rollout.temperature = 1.0" in out


def test_train_errors_that_used_to_be_tracebacks(tmp_path, capsys, math500_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["train", "--out", str(f), "--steps", "1", *FAST]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "x", "answer": "1"}\n[1, 2\n')
    assert main(["train", "--out", str(tmp_path / "r"), "--steps", "1", *FAST, f"train_data={bad}"]) == 2
    assert "train_data=" in capsys.readouterr().err
    for override, msg in [("credit.params.lamm=0.5", "no parameter(s) ['lamm']"),
                          ("credit.params.lam=-1", "lam must be >= 0"),
                          ("rollout.temperature=0", "rollout.temperature=0.0 is invalid")]:
        assert main(["train", "--out", str(tmp_path / "r"), "--credit", "ccpo", *FAST, override]) == 2
        assert msg in capsys.readouterr().err
    assert main(["play", "--data", str(bad)]) == 2
    assert "--data:" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_eval_of_a_model_folder_progress_and_bad_folders(tmp_path, capsys):
    from agents.models import build_tiny_model

    model_dir = tmp_path / "model"
    net, tok = build_tiny_model(0)
    net.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    before = sorted(p.name for p in model_dir.iterdir())
    assert main(["eval", "--model", str(model_dir), "--data", "arith:n=4,difficulty=1", "--greedy",
                 "--max-new-tokens", "4"]) == 0
    captured = capsys.readouterr()
    assert sorted(p.name for p in model_dir.iterdir()) == before  # no eval.json written into a model folder
    progress = [line for line in captured.err.splitlines() if "problems" in line]
    assert progress and "/4 problems" in progress[0] and "tok/s" in progress[0] and "left" in progress[0]
    assert progress[-1].split(": ")[1].startswith("4/4 problems")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["eval", "--model", str(empty), "--data", "arith:n=2"]) == 2
    assert "neither a run directory (no checkpoint/) nor a model directory" in capsys.readouterr().err
    assert main(["eval", "--model", "nobody-here/no-model", "--data", "arith:n=2"]) == 2
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err


def test_run_directory_checks_have_one_source(tmp_path, capsys):
    """The CLI prints what algorithms.runs.check_run_dir says, and the trainer says the same."""
    from algorithms.config import TrainerConfig
    from algorithms.runs import (
        CheckpointError,
        ResumeError,
        RunLock,
        RunLockedError,
        check_run_dir,
        check_unlocked,
        lock_holder,
        run_state,
    )
    from algorithms.train import Trainer

    run = tmp_path / "run"
    empty = run_state(tmp_path / "none")
    assert (empty.holder, empty.has_checkpoint, empty.step) == (None, False, None)
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*nothing to resume"):
        empty.check(resume=True)
    assert main(["train", "--out", str(run), "--steps", "1", *FAST]) == 0
    state = run_state(run)
    assert (state.holder, state.has_checkpoint, state.step, state.config["steps"]) == (None, True, 1, 1)

    with pytest.raises(ResumeError) as fresh:
        check_run_dir(run, resume=False)
    capsys.readouterr()
    assert main(["train", "--out", str(run), "--steps", "2", *FAST]) == 2
    assert capsys.readouterr().err.strip() == f"thinksolve: error: {fresh.value}"
    with pytest.raises(ResumeError, match=str(fresh.value).replace("(", r"\(").replace(")", r"\)")):
        Trainer(TrainerConfig.from_dict(state.config), log=None)

    with pytest.raises(ResumeError, match="with steps=0: its checkpoint is already at step 1") as behind:
        check_run_dir(run, resume=True, steps=0)
    assert check_run_dir(run, resume=True, steps=1) == state

    with RunLock(run) as lock:
        assert lock_holder(run) is not None  # held (by this process)
        assert run_state(run, lock=lock).holder is None  # ... which is the caller's own lock
        with pytest.raises(RunLockedError, match="is in use by another training process"):
            check_unlocked(run)
    assert lock_holder(run) is None and str(behind.value).startswith(f"cannot resume {run} with steps=0")


def test_a_run_recorded_with_a_relative_plugin_path_still_resumes(monkeypatch):
    """Runs recorded before plugin files were kept by absolute path name them as typed; the same
    file said the new way is no difference, another file is."""
    from pathlib import Path

    from algorithms import preset
    from algorithms.train.preflight import resume_changes

    monkeypatch.chdir(Path(__file__).resolve().parents[1])
    cfg = preset("tiny-brief")
    cfg.plugins = ["examples/event_both.py"]
    recorded = cfg.to_dict()
    cfg.load_plugins()
    assert cfg.plugins == [str(Path("examples/event_both.py").resolve())] and resume_changes(recorded, cfg) == []
    recorded["plugins"] = ["examples/other.py"]
    assert [d.split(":")[0] for d in resume_changes(recorded, cfg)] == ["plugins"]
