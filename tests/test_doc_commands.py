"""The shell commands of README.md and docs/*.md, run as a user runs them.

Every command line of every ```bash block is listed in :data:`COMMANDS` with how it is held to
the text (a command the table does not know fails :func:`test_every_doc_command_is_classified`):

* ``run``: it runs exactly as written, in order with the other commands of its page, from the
  root of a temporary copy of the working tree (the docs say the commands run from the clone
  root) with ``THINKSOLVE_CACHE`` in a temporary folder. The README's quick start (train, resume,
  eval, export) runs like this, the tiny-brief warm start (350 steps) included.
* ``capped``: it runs with extra arguments that make it short (``--steps 2``, and the evaluation
  at its last step on a few held-out problems instead of the preset's 200 x 4 samples); what it
  would do for longer is the same code.
* ``checked``: too long for the suite (the demo, full benchmarks, the test suite itself) or it
  needs GPUs or a model download; it is checked as far as that goes without running it: its
  arguments parsed by the program's own parser, ``--dry-run``, the config it names validated, or
  ``make -n``.

No command may change a file of the copy that is in the repository (committed results
included). A block that is only shown (GPU or multi-node commands, output) is marked
```bash no-run (docs/development.md); its commands must be ``checked``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_docs import NO_RUN, PAGES, Block, fenced_blocks, rel

ROOT = Path(__file__).resolve().parents[1]
SHELL = {"bash", "sh", "shell"}
BIN = Path(sys.executable).parent
#: Seconds one command may take (the quick start's first train builds the warm start: ~1 min idle).
COMMAND_TIMEOUT = 420


@dataclass(frozen=True)
class How:
    mode: str  # "run", "capped" or "checked"
    reason: str
    extra: tuple[str, ...] = ()  # capped: appended arguments
    check: str = ""  # checked: "dry-run", "config", "help", "make", "exists", "extra"


#: What a capped training command's evaluation at its last step runs on (the preset's 200 problems x 4 samples
#: are the same code, slower).
SMALL_EVAL = ("eval_data=arith:n=8,difficulty=1,split=test,brief=1,digit=1", "eval_samples=1")
QUICK = "the README's quick start: runs as written, in order (the warm start included, ~1.5 min in all)"
COMMANDS: dict[str, How] = {
    # README.md
    "make demo": How("checked", "trains for about two minutes (the demo); make -n shows what it runs", check="make"),
    "make test": How("checked", "is the test suite itself; make -n shows what it runs", check="make"),
    "thinksolve train --list-fields": How("run", QUICK),
    "thinksolve train --preset tiny-brief --credit ccpo --steps 20 --out runs/first": How("run", QUICK),
    "thinksolve train --resume --out runs/first --steps 40": How("run", QUICK),
    # docs/training.md
    "thinksolve train --preset tiny-brief --steps 150 --out runs/job save_every=10 --resume auto": How(
        "checked", "150 steps (about 2 min): its arguments checked with --dry-run", check="dry-run"),
    "thinksolve eval --model runs/first --data arith:n=50,difficulty=1,split=test,brief=1,digit=1": How("run", QUICK),
    "thinksolve export --model runs/first --out hf/first": How("run", QUICK),
    "thinksolve train --preset tiny-brief --plugin examples/event_both.py --credit event_both --out runs/mine": How(
        "capped", "150 steps (about 2 min): run for 2 steps (its last-step evaluation on 8 problems), then resumed "
        "from another directory", extra=("--steps", "2", *SMALL_EVAL)),
    "python benchmarks/credit_comparison.py --plugin examples/event_both.py --methods shared event_both --optimizers "
    "gspo --seeds 0 --steps 12 --eval-every 6 --eval-samples 1 --runs runs/bench-mine": How(
        "checked", "about a minute once the warm start is cached; tests/test_credit_comparison.py runs the same "
        "plugin through the comparison: its grid planned with --dry-run", check="dry-run"),
    # docs/benchmarks.md
    "python benchmarks/scaling.py": How(
        "checked", "reproduces the committed scaling table (several two-rank jobs, minutes): its flags parsed", check="help"),
    # docs/scale.md
    "thinksolve plan --preset qwen2.5-7b-math --gpus 8": How("run", "a table from the model's configuration (seconds)"),
    "thinksolve plan --preset qwen2.5-7b-math --gpus 4 model.sharing=lora": How("run", "a table (seconds)"),
    "thinksolve plan": How("run", "the table of presets (seconds)"),
    # docs/training.md
    ".venv/bin/python -m pytest -q tests/test_trl_parity.py": How(
        "checked", "a test file of the suite itself: it exists", check="exists"),
    "python benchmarks/demo_seeds.py --preset smollm2-brief --seeds 0 1 --jobs 2 --runs runs/smollm2-brief-seeds": How(
        "checked", "45 min per seed: its flags parsed", check="help"),
    "torchrun --nproc_per_node 2 -m algorithms.cli train --preset tiny-arith --out runs/sharded "
    "warm_start.enabled=false steps=4 parallel.strategy=fsdp": How(
        "checked", "two processes (tests/test_fsdp.py runs this job): its train arguments with --dry-run", check="dry-run"),
    "torchrun --nproc_per_node 8 -m algorithms.cli train --preset qwen2.5-7b-math --out runs/q7": How(
        "checked", "8 GPUs and a model download: the configuration it names validated", check="config"),
    "torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m algorithms.cli train "
    "--preset qwen2.5-7b-math --out /shared/runs/q7 parallel.replicas=2": How(
        "checked", "two nodes of 8 GPUs: the configuration it names validated", check="config"),
    # a `pip install -e '.[NAME]'` line would be ("checked", "changes the environment: the extra exists", check="extra")
}


# --------------------------------------------------------------------------- parsing


def shell_blocks(page: Path) -> list[Block]:
    """The ```bash blocks of a page (``bash no-run`` included); an unknown marker is an error."""
    where = rel(page)
    out = []
    for b in fenced_blocks(page.read_text(encoding="utf-8"), where):
        words = b.info.split()
        if not words or words[0] not in SHELL:
            continue
        assert words[1:] in ([], [NO_RUN]), (
            f"{where}:{b.line - 1}: unknown marker {' '.join(words[1:])!r} on a shell block; "
            f"use ```bash (its commands are run or checked) or ```bash {NO_RUN} (shown only)")
        out.append(b)
    return out


def block_commands(block: Block) -> list[str]:
    """The command lines of a shell block: continuation lines joined, comments dropped, each
    normalised to its words joined by one space."""
    text = re.sub(r"\\\n", " ", block.code)
    return [" ".join(words) for line in text.split("\n") if (words := shlex.split(line, comments=True))]


def doc_commands() -> list[tuple[str, str, bool]]:
    """(page, command, shown only) for every command of README.md and docs/*.md, in page order."""
    return [(rel(page), cmd, b.info.split()[1:] == [NO_RUN])
            for page in PAGES for b in shell_blocks(page) for cmd in block_commands(b)]


# --------------------------------------------------------------------------- the temporary copy


def repo_files() -> list[str]:
    """The working tree's files that git knows or would add (tracked, and untracked not ignored)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode()
    return [f for f in out.split("\0") if f and (ROOT / f).is_file()]


def digest(root: Path, files: list[str]) -> dict[str, str]:
    return {f: hashlib.sha1((root / f).read_bytes()).hexdigest() for f in files if (root / f).is_file()}


@dataclass
class Copy:
    root: Path
    env: dict
    files: list[str]
    before: dict[str, str]

    def run(self, command: str | list[str], cwd: Path | None = None, timeout: float = COMMAND_TIMEOUT):
        argv = shlex.split(command) if isinstance(command, str) else command
        t0 = time.perf_counter()
        proc = subprocess.run(argv, cwd=cwd or self.root, env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        took = time.perf_counter() - t0
        print(f"[{took:5.1f}s] {shlex.join(argv)}")
        return proc

    def ok(self, command, cwd=None, timeout=COMMAND_TIMEOUT) -> str:
        proc = self.run(command, cwd, timeout)
        assert proc.returncode == 0, (f"`{command}` exited with {proc.returncode}\n"
                                      f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Copy:
    """A copy of the working tree (as a fresh clone would have it, without virtualenvs or runs),
    an empty THINKSOLVE_CACHE, and this interpreter's bin/ first on PATH (``thinksolve``, ``python``)."""
    base = tmp_path_factory.mktemp("doc-commands")
    root = base / "thinksolve"
    files = repo_files()
    for f in files:
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, root / f)
    env = dict(os.environ)
    env.update(PATH=os.pathsep.join([str(BIN), env.get("PATH", "")]), THINKSOLVE_CACHE=str(base / "cache"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    return Copy(root, env, files, digest(root, files))


def share_warm_starts(copy: Copy) -> None:
    """Offer the warm starts the copy's commands built (in its own cache, empty before) to the rest
    of the session, in the session's cache, where one is not there yet: tests/test_two_role_reproduces.py
    trains from the same tiny-brief warm start (the same cache key, trained with the preset's one
    thread: the same bytes) and builds it itself (a minute) where it finds none. The copy's commands
    never read the session's cache; a copy that fails only costs that minute."""
    from agents import atomic_dir, cache_dir

    built = Path(copy.env["THINKSOLVE_CACHE"]) / "warmstart"
    for src in sorted(built.iterdir()) if built.is_dir() else []:
        if not src.name.startswith(".") and (src / "config.json").is_file():
            try:
                atomic_dir(cache_dir() / "warmstart" / src.name,
                           lambda tmp, src=src: shutil.copytree(src, tmp, dirs_exist_ok=True))
            except OSError as e:
                print(f"(warm start {src.name} not shared: {e})")


def assert_repository_files_unchanged(copy: Copy) -> None:
    after = digest(copy.root, copy.files)
    changed = sorted(f for f in copy.before if after.get(f) != copy.before[f])
    assert not changed, f"a documented command changed files of the repository: {changed}"


def page_commands(page: str, *modes: str) -> list[tuple[str, How]]:
    """A page's commands of the given modes, in page order (one COMMANDS does not know is left to
    test_every_doc_command_is_classified)."""
    return [(cmd, COMMANDS[cmd]) for p, cmd, _ in doc_commands()
            if p == page and cmd in COMMANDS and COMMANDS[cmd].mode in modes]


# --------------------------------------------------------------------------- the tests


def test_a_relative_plugin_path_is_recorded_absolute(monkeypatch, credit_registry_restored):
    """What lets ``thinksolve train --plugin examples/event_both.py`` resume from another folder."""
    from algorithms.config import preset

    monkeypatch.chdir(ROOT)
    cfg = preset("tiny-brief")
    cfg.plugins = ["examples/event_both.py", str(ROOT / "examples/event_both.py"), "math"]
    cfg.load_plugins()
    assert cfg.plugins == [str(ROOT / "examples/event_both.py"), "math"]  # one file once; a module as named


def test_commands_are_read_as_a_shell_reads_them(tmp_path, monkeypatch):
    block = Block("bash", "make demo    # the main job\n# one seed: thinksolve demo --seed 0\n\n"
                  "torchrun --nproc_per_node 2 \\\n    -m algorithms.cli train 'a=b c'\n", 2)
    assert block_commands(block) == ["make demo", "torchrun --nproc_per_node 2 -m algorithms.cli train a=b c"]
    monkeypatch.setattr(sys.modules["test_docs"], "ROOT", tmp_path)  # pages are named relative to the root
    page = tmp_path / "page.md"
    page.write_text("```bash\nls\n```\n```bash no-run\nnvidia-smi\n```\n```text\nthinksolve x\n```\n")
    assert [b.info for b in shell_blocks(page)] == ["bash", "bash no-run"]
    page.write_text("```bash norun\nls\n```\n")
    with pytest.raises(AssertionError, match="unknown marker"):
        shell_blocks(page)


def test_every_doc_command_is_classified():
    found = doc_commands()
    assert found, "no shell commands found in the docs"
    unknown = [f"{page}: {cmd}" for page, cmd, _ in found if cmd not in COMMANDS]
    assert not unknown, ("commands in the docs that tests/test_doc_commands.py does not know; add each to COMMANDS "
                         "(run, capped or checked, with the reason):\n" + "\n".join(unknown))
    stale = sorted(set(COMMANDS) - {cmd for _, cmd, _ in found})
    assert not stale, f"COMMANDS lists commands no page shows any more: {stale}"
    for page, cmd, shown_only in found:
        how = COMMANDS[cmd]
        assert how.mode in ("run", "capped", "checked") and how.reason
        assert how.mode != "checked" or how.check in ("dry-run", "config", "help", "make", "exists", "extra"), cmd
        assert not (shown_only and how.mode != "checked"), f"{page}: {cmd!r} is in a bash {NO_RUN} block but runs"


@pytest.mark.slow
def test_readme_commands_run_from_the_clone_root(clone):
    """The README's quick start really runs, in order; the custom-method command runs capped, and
    the run it starts resumes from another directory (its recorded plugin path still resolves)."""
    for cmd, how in page_commands("README.md", "run", "capped"):
        if how.mode == "run":
            clone.ok(cmd)
            share_warm_starts(clone)
        else:
            clone.ok(shlex.split(cmd) + list(how.extra))
    assert (clone.root / "runs/first/checkpoint").is_dir() and (clone.root / "hf/first/team.json").is_file()
    elsewhere = clone.root.parent / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    out = clone.ok(["thinksolve", "train", "--resume", "--out", str(clone.root / "runs/mine"), "--steps", "3"],
                   cwd=elsewhere)
    assert "step 3/3" in out
    assert not any(elsewhere.iterdir()), "resuming wrote into the working directory"
    assert_repository_files_unchanged(clone)


def test_cheap_doc_commands_run(clone):
    """The docs pages' commands that take seconds run as written."""
    for page in sorted({p for p, _, _ in doc_commands() if p != "README.md"}):
        for cmd, _ in page_commands(page, "run"):
            clone.ok(cmd, timeout=120)
    assert_repository_files_unchanged(clone)


def extras_of_pyproject() -> set[str]:
    """The names under ``[project.optional-dependencies]`` (tomllib is not in Python 3.10)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([\w-]+)\s*=", section, re.MULTILINE))


def _train_args(argv: list[str]) -> list[str]:
    """The ``train`` arguments of ``thinksolve train ...`` or ``torchrun ... -m algorithms.cli train ...``."""
    if argv[:2] == ["thinksolve", "train"]:
        return argv[2:]
    i = argv.index("-m")
    assert argv[i + 1:i + 3] == ["algorithms.cli", "train"], argv
    return argv[i + 3:]


def test_long_doc_commands_are_checked(clone):
    """The commands too long for the suite, or that need GPUs: each checked without running it."""
    from algorithms.cli import build_parser
    from algorithms.config import apply_overrides, preset

    extras = extras_of_pyproject()
    for cmd in dict.fromkeys(cmd for _, cmd, _ in doc_commands()):  # each command once
        how = COMMANDS.get(cmd)
        if how is None or how.mode != "checked":
            continue
        argv = shlex.split(cmd)
        if how.check == "make":
            out = clone.ok(["make", "-n", *argv[1:]])
            assert "algorithms.cli demo" in out if argv[1] == "demo" else "pytest" in out
        elif how.check == "extra":
            named = [m for a in argv for m in re.findall(r"\[([\w,-]+)\]", a)]
            assert named and all(x in extras for n in named for x in n.split(",")), f"{cmd}: no such extra in pyproject.toml"
        elif how.check == "exists":
            assert all((clone.root / a).is_file() for a in argv if a.endswith(".py")), cmd
        elif how.check == "help":
            text = clone.ok([*argv[:2], "--help"])
            missing = [a.split("=")[0] for a in argv[2:] if a.startswith("--") and a.split("=")[0] not in text]
            assert not missing, f"{cmd}: {missing} not among the flags of {argv[1]}"
        elif how.check == "dry-run" and argv[0] == "python":
            assert "nothing run or written" in clone.ok([*argv, "--dry-run"])
        elif how.check == "dry-run":
            assert "nothing loaded or written" in clone.ok(["thinksolve", "train", *_train_args(argv), "--dry-run"])
        elif how.check == "config":  # the model is not here: the configuration its arguments name, validated
            args = build_parser().parse_args(["train", *_train_args(argv)])
            assert not (args.resume or args.plugin or args.credit or args.optimizer), cmd  # not handled here
            cfg = preset(args.preset)
            for name in ("seed", "steps", "out"):
                if getattr(args, name) is not None:
                    setattr(cfg, name, getattr(args, name))
            apply_overrides(cfg, list(args.overrides)).validate()
    assert_repository_files_unchanged(clone)
