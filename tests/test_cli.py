import subprocess
import sys

from algorithms.cli import main, scripted_team


def test_demo_prints_accuracy_per_removal_mode(capsys, math500_path):
    assert main(["demo", "--data", str(math500_path), "--episodes", "12"]) == 0
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
    r = subprocess.run([sys.executable, "-m", "algorithms.cli", "demo", "--episodes", "0"], capture_output=True, text=True)
    assert r.returncode == 2 and "--episodes must be >= 1" in r.stderr
