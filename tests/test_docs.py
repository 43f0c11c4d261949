"""The documentation is tested: README.md and docs/*.md.

* Every ```python code block runs, each in a fresh namespace, one subprocess per page, with the
  working directory set to a temporary folder (so a block writes nowhere else) and a time limit
  per block (a hanging block fails). A block that is only shown (it trains, needs a GPU or a
  run directory) is marked ```python no-run; docs/development.md says so.
* Every relative link (``[text](path)``, ``[text](path#anchor)``, ``[text](#anchor)``, images
  too) points to an existing file inside the repository, and every anchor names a heading of
  the target page under GitHub's rules for heading ids.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Info strings (first word) of the blocks that run, and the marker of a block that is only shown.
PYTHON = {"python", "py", "python3"}
NO_RUN = "no-run"
#: Seconds one block may take; the blocks are meant to take a few (built-in tiny model at most).
BLOCK_TIMEOUT = 90


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# --------------------------------------------------------------------------- parsing


@dataclass
class Block:
    info: str
    code: str
    line: int  # 1-based line of the first code line


_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def fenced_blocks(text: str, where: str = "page") -> list[Block]:
    """The fenced code blocks of a Markdown text (indentation of the fence removed)."""
    lines = text.split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m or (m.group(1)[0] == "`" and "`" in m.group(2)):
            i += 1
            continue
        fence, info = m.group(1), m.group(2).strip()
        indent = len(lines[i]) - len(lines[i].lstrip(" "))
        close = re.compile(r"^ {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")
        body, j = [], i + 1
        while j < len(lines) and not close.match(lines[j]):
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j].lstrip(" "))
            j += 1
        if j == len(lines):
            raise AssertionError(f"{where}:{i + 1}: code fence {fence!r} is never closed")
        blocks.append(Block(info, "\n".join(body) + "\n", i + 2))
        i = j + 1
    return blocks


def runnable(block: Block, where: str) -> bool:
    words = block.info.split()
    if not words or words[0] not in PYTHON:
        return False
    extra = words[1:]
    assert extra in ([], [NO_RUN]), (
        f"{where}:{block.line - 1}: unknown marker {' '.join(extra)!r} on a python block; "
        f"use ```python (runs in the tests) or ```python {NO_RUN} (shown only)")
    return not extra


def outside_fences(text: str) -> str:
    """The text with the lines of fenced code blocks blanked (line count kept)."""
    out, fence = [], None
    for line in text.split("\n"):
        m = _FENCE.match(line)
        if fence is None and m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
            fence = m.group(1)
            out.append("")
        elif fence is not None:
            if re.match(r"^ {0,3}" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$", line):
                fence = None
            out.append("")
        else:
            out.append(line)
    return "\n".join(out)


def prose(text: str) -> str:
    """The text outside fenced code blocks and inline code spans (line count kept)."""
    return _CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), outside_fences(text))


#: An inline code span: a run of backticks, text (it may wrap lines, not cross a blank one), the same run.
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1)(?:[^\n]|\n(?![ \t]*\n)))+?\1")
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")


def slug(heading: str) -> str:
    """GitHub's id for a heading: the rendered text lower-cased, every character that is not a
    letter, digit, space, '-' or '_' dropped, each space turned into '-'."""
    parts = []
    for k, part in enumerate(re.split(r"(`+[^`]*?`+)", heading)):
        if k % 2:  # a code span: its text as written
            parts.append(part.strip("`"))
            continue
        part = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", part)  # links and images: their text
        part = re.sub(r"<[^>]+>", "", part)  # inline HTML tags
        part = part.replace("*", "")
        parts.append(re.sub(r"(?<![\w])_+|_+(?![\w])", "", part))  # _emphasis_ markers, not snake_case
    text = "".join(parts).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The ids of every heading of a Markdown page (repeats get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for line in outside_fences(path.read_text(encoding="utf-8")).split("\n"):
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
_REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every inline link, image and link definition outside code."""
    text = prose(path.read_text(encoding="utf-8"))
    out = []
    for regex in (_LINK, _REF_DEF):
        for m in regex.finditer(text):
            out.append((m.start(), m.group(1)))
    return [(text.count("\n", 0, pos) + 1, target) for pos, target in sorted(out)]


def link_problem(page: Path, target: str) -> str | None:
    """Why ``target`` (a link on ``page``) does not resolve, or None when it does."""
    if not target:
        return "empty link target"
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
        return None  # http(s), mailto, ...: not checked here (no network in the tests)
    path_part, _, anchor = target.partition("#")
    dest = page if not path_part else (page.parent / path_part).resolve()
    if not dest.is_relative_to(ROOT):
        return f"{target!r} points outside the repository ({dest})"
    if not dest.exists():
        return f"{target!r}: no such file {rel(dest) if dest.is_relative_to(ROOT) else dest}"
    if anchor:
        if dest.suffix.lower() != ".md":
            return f"{target!r}: an anchor on a file that is not a Markdown page"
        if anchor not in anchors(dest):
            return f"{target!r}: {rel(dest)} has no heading with id {anchor!r}"
    return None


# --------------------------------------------------------------------------- the tests

# Runs the blocks of one page in order, each in a fresh namespace; line numbers in tracebacks
# are the page's. A block past its time limit dumps its stack and ends the process.
RUNNER = r"""
import faulthandler, json, sys, time, traceback
blocks = json.load(open(sys.argv[1], encoding="utf-8"))
for b in blocks:
    code = "\n" * (b["line"] - 1) + b["code"]
    faulthandler.dump_traceback_later(b["timeout"], exit=True)
    start = time.perf_counter()
    try:
        exec(compile(code, b["page"], "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
    except BaseException:
        traceback.print_exc()
        print(f"BLOCK FAILED {b['page']}:{b['line']}", flush=True)
        sys.exit(1)
    finally:
        faulthandler.cancel_dump_traceback_later()
    print(f"BLOCK OK {b['page']}:{b['line']} {time.perf_counter() - start:.1f}s", flush=True)
"""


def page_blocks(page: Path) -> list[Block]:
    where = rel(page)
    return [b for b in fenced_blocks(page.read_text(encoding="utf-8"), where) if runnable(b, where)]


def test_the_pages_exist():
    names = {rel(p) for p in PAGES}
    for name in ("README.md", "docs/environment.md", "docs/verifier.md", "docs/policies.md", "docs/credit.md",
                 "docs/training.md", "docs/evaluation.md", "docs/benchmarks.md", "docs/fidelity.md",
                 "docs/development.md", "docs/method.md"):
        assert name in names, f"{name} is missing"
    # the front door stays short, and shows runnable code (the environment loop, a credit method)
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 260
    assert len(page_blocks(ROOT / "README.md")) >= 2


def run_blocks(blocks: list[Block], where: str, tmp_path: Path, timeout: float = BLOCK_TIMEOUT) -> tuple[bool, str]:
    """Run ``blocks`` (of page ``where``) in one subprocess, in order, each in a fresh namespace,
    with ``tmp_path/work`` as the working directory: (every block finished, the output)."""
    spec = [{"page": where, "line": b.line, "code": b.code, "timeout": timeout} for b in blocks]
    (tmp_path / "blocks.json").write_text(json.dumps(spec), encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(THINKSOLVE_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    try:
        proc = subprocess.run([sys.executable, "-c", RUNNER, str(tmp_path / "blocks.json")], cwd=work, env=env,
                              capture_output=True, text=True, timeout=timeout * len(blocks) + 60, check=False)
    except subprocess.TimeoutExpired as e:
        return False, f"{where}: the blocks did not finish in time\n{e.stdout or ''}\n{e.stderr or ''}"
    done = [line for line in proc.stdout.splitlines() if line.startswith("BLOCK OK ")]
    ok = proc.returncode == 0 and len(done) == len(blocks)
    return ok, (f"{where}: {len(done)} of {len(blocks)} python blocks ran (exit status {proc.returncode})\n"
                f"{(proc.stdout + proc.stderr)[-6000:]}")


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_docs_python_blocks_run(page, tmp_path):
    blocks = page_blocks(page)
    if not blocks:
        pytest.skip(f"{rel(page)} has no runnable python block")
    ok, output = run_blocks(blocks, rel(page), tmp_path)
    assert ok, f"{output}\n(a block that is only shown is marked ```python {NO_RUN})"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_docs_links_and_anchors_resolve(page):
    problems = [f"{rel(page)}:{line}: {why}" for line, target in links(page)
                if (why := link_problem(page, target)) is not None]
    assert not problems, "broken links:\n" + "\n".join(problems)


# --------------------------------------------------------------------------- the checker itself


def test_docs_checker_sees_what_github_renders(tmp_path, monkeypatch):
    assert slug("Tree rollouts: credit by thought") == "tree-rollouts-credit-by-thought"
    assert slug("The `tiny-brief` testbed: where it matters") == "the-tiny-brief-testbed-where-it-matters"
    assert slug("What `adv_corr_<agent>` means") == "what-adv_corr_agent-means"
    assert slug("Credit — and **blame**?") == "credit--and-blame"
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n## Part\n\n## Part\n\n```python\n# not a heading\nx = [1](2)\n```\n\n"
                    "See [a](#part-1), [b](#nope), [c](other.md), `[d](inline.md)` and ![e](pic.png#x).\n"
                    "```python no-run\nraise SystemExit\n```\n```python\nprint('ok')\n```\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert anchors(page) == {"top", "part", "part-1"}
    found = [(target, link_problem(page, target)) for _, target in links(page)]
    assert [t for t, _ in found] == ["#part-1", "#nope", "other.md", "pic.png#x"]
    assert [why is None for _, why in found] == [True, False, False, False]
    blocks = fenced_blocks(page.read_text(), "page")
    assert [(b.info, b.line) for b in blocks] == [("python", 8), ("python no-run", 14), ("python", 17)]
    assert [runnable(b, "page") for b in blocks] == [True, False, True]
    with pytest.raises(AssertionError, match="unknown marker"):
        runnable(Block("python norun", "", 2), "page")
    with pytest.raises(AssertionError, match="never closed"):
        fenced_blocks("```python\nx = 1\n", "page")


def test_docs_runner_fails_on_a_raising_or_hanging_block(tmp_path):
    good = Block("python", "open('made-here.txt', 'w').write('x')\nleft = 1\n", 3)
    fresh = Block("python", "assert 'left' not in globals()\n", 7)  # each block starts from scratch
    ok, output = run_blocks([good, fresh], "page.md", tmp_path)
    assert ok, output
    assert (tmp_path / "work" / "made-here.txt").exists()  # the working directory is the temporary one
    ok, output = run_blocks([good, Block("python", "x = 1\nraise ValueError('broken')\n", 11)], "page.md", tmp_path)
    assert not ok and "ValueError: broken" in output and 'File "page.md", line 12' in output
    ok, output = run_blocks([Block("python", "import time\ntime.sleep(60)\n", 20)], "page.md", tmp_path, timeout=2)
    assert not ok and "0 of 1 python blocks ran" in output and "Timeout" in output
