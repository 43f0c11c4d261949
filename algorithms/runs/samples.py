"""What the agents wrote, in plain sight: ``OUT/samples.jsonl``.

Every ``samples_every`` steps (and at step 1 and the last step) the trainer appends
``samples_per_write`` of the step's joint episodes, one JSON row each (keys in docs/metrics.md):
the problem and its reference answer, the Thinker's thought, the Solver's answer, the verifier's
verdict and extracted answer, and each role's credit (the credit method's reward) and advantage.
The episodes are picked without randomness (the first episode of each problem, then the second,
...), so a resumed run writes the rows the uninterrupted one writes. The rows of one step are
appended with one write; the file is reconciled with the checkpoint on resume like
``metrics.jsonl`` (:func:`~.metrics.reconcile_metrics` with ``unique=False``).

:func:`read_rows` reads any of the run's JSONL files, skipping a torn line; :func:`format_sample`
prints a row in a few lines cut to a width.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .checkpoint import json_default
from .metrics import append_row

__all__ = ["SAMPLES", "pick_episodes", "sample_rows", "write_samples", "read_rows", "format_sample"]

SAMPLES = "samples.jsonl"


def pick_episodes(groups: Sequence[Any], n: int) -> list[tuple[int, int]]:
    """``(group, episode)`` positions of ``n`` episodes: episode 0 of every group in order, then
    episode 1 of every group, ... (fewer when the batch holds fewer)."""
    out: list[tuple[int, int]] = []
    j = 0
    while len(out) < n and any(j < len(g.episodes) for g in groups):
        out += [(gi, j) for gi, g in enumerate(groups) if j < len(g.episodes)][: n - len(out)]
        j += 1
    return out


def _text(completion: Any) -> str | None:
    return None if completion is None else getattr(completion, "text", None)


def _number(v: Any) -> float | None:
    return None if v is None else float(v)


def sample_rows(step: int, groups: Sequence[Any], credit: Mapping[str, Sequence[float]],
                advantages: Mapping[str, Sequence[float] | None], *, n: int, updated: Sequence[str],
                timestamp: float, thinker: str = "thinker_0", solver: str = "solver_0",
                roles: Sequence[str] | None = None) -> list[dict]:
    """The sample rows of training step ``step`` (1-based) from its episode groups.

    ``credit[role]`` holds the credit method's reward of every joint episode of ``groups`` (flat,
    in order) and ``advantages[role]`` the role's advantage per joint episode (``None`` for a role
    whose advantages were not computed); ``updated`` the roles the step updated.

    ``roles``: a team of more than two roles in chain order (default ``(thinker, solver)``): the
    thought is the first role's text, the answer the last's, ``briefing`` the first role's
    briefing, and each row adds ``messages`` (every role's text, by role) and ``briefings`` (the
    problem's ``meta["briefings"]``, one per position)."""
    chain = (thinker, solver) if roles is None else tuple(roles)
    thinker, solver = chain[0], chain[-1]
    flat = [0]
    for g in groups:
        flat.append(flat[-1] + len(g.episodes))
    rows = []
    for gi, j in pick_episodes(groups, n):
        g, e = groups[gi], groups[gi].episodes[j]
        k = flat[gi] + j
        p = g.problem
        v = e.verification or {}
        solo = getattr(g, "solo_rewards", None)
        row = {
            "step": step,
            "timestamp": timestamp,
            "problem_id": getattr(p, "id", None),
            "problem": getattr(p, "problem", None),
            "briefing": (getattr(p, "meta", None) or {}).get("briefing"),
            "reference": getattr(p, "answer", v.get("reference")),
            "thought": e.actions.get(thinker, _text(e.completions.get(thinker))),
            "thought_shown": e.thought,
            "answer": e.actions.get(solver, _text(e.completions.get(solver))),
            "extracted": v.get("extracted"),
            "correct": bool(e.reward > 0),
            "reward": float(e.reward),
            "verdict": v.get("reason"),
            "solo_accuracy": None if not solo else sum(r > 0 for r in solo) / len(solo),
            "credit": {role: _number(credit[role][k]) for role in chain if role in credit},
            "advantage": {role: None if advantages.get(role) is None else _number(advantages[role][k])
                          for role in chain},
            "updated": sorted(updated),
            "group": gi,
            "episode": j,
        }
        if len(chain) > 2:
            row["messages"] = {role: e.actions.get(role, _text(e.completions.get(role))) for role in chain}
            row["briefings"] = (getattr(p, "meta", None) or {}).get("briefings")
        rows.append(row)
    return rows


def write_samples(out: str | os.PathLike, rows: Sequence[dict]) -> None:
    """Append ``rows`` to ``OUT/samples.jsonl`` with one write (a crash leaves at most a torn
    last line, which the reconciliation on resume sets aside)."""
    if not rows:
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    append_row(Path(out) / SAMPLES, "\n".join(json.dumps(r, default=json_default, ensure_ascii=False) for r in rows))


def read_rows(path: str | os.PathLike) -> list[dict]:
    """The JSON object rows of a JSONL file (``[]`` when it does not exist); a torn or unparsable
    line is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _cut(text: Any, width: int) -> str:
    s = "" if text is None else " ".join(str(text).split())  # one line: newlines and runs of spaces become one
    s = "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in s)
    return textwrap.shorten(s, width, placeholder=" …") if len(s) > width else s


def _signed(v: Any) -> str:
    return "-" if v is None else f"{v:+.2f}"


def format_sample(row: Mapping[str, Any], width: int = 100) -> str:
    """A sample row in four lines, each cut to ``width`` characters: the problem, the thought,
    the answer with the verdict, and each role's credit and advantage (a team of more than two
    roles: a line per middle role's text after the thought)."""
    roles = list(row.get("credit") or {})
    short = {r: r.split("_")[0][:1].upper() for r in roles}  # thinker_0 -> T, solver_0 -> S
    verdict = "correct" if row.get("correct") else (row.get("verdict") or "wrong")
    middle = list(row.get("messages") or {})[1:-1]  # a chain of more than two roles: the middle roles' texts
    lines = [
        f"step {row.get('step')} · {row.get('problem_id')}: {row.get('problem')}",
        f"  thought: \"{row.get('thought')}\"",
        *(f"  {r}: \"{row['messages'][r]}\"" for r in middle),
        f"  answer:  \"{row.get('answer')}\" -> {row.get('extracted')} (reference {row.get('reference')}): {verdict}",
        "  credit " + " ".join(f"{short[r]} {_signed(row['credit'].get(r))}" for r in roles)
        + " · advantage " + " ".join(f"{short[r]} {_signed((row.get('advantage') or {}).get(r))}" for r in roles),
    ]
    return "\n".join(_cut(line, width) if i == 0 else "  " + _cut(line.strip(), width - 2) for i, line in enumerate(lines))
