"""Writing benchmark tables: JSON (with the exact command and versions) and Markdown, atomically."""

from __future__ import annotations

import json
import os
import platform
import re
import sys
import tempfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def versions(*packages: str) -> dict:
    out = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    for name in ("thinksolve", "torch", "transformers", "pettingzoo", "gymnasium", "math-verify", *packages):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # a results file is readable like any other (mkstemp makes 0600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


_SCALAR = r'(?:-?\d[\d.eE+-]*|null|true|false|"[^"\\\n]*")'
#: A JSON array of scalars as json.dumps(indent=2) spreads it, one element per line.
_SCALAR_ARRAY = re.compile(r"\[\s*(" + _SCALAR + r"(?:,\s*" + _SCALAR + r")*)\s*\]")


def dump_json(record) -> str:
    """``json.dumps(record, indent=2)`` with every array of scalars on one line: per-problem
    results and curves stay readable (and diffable) instead of one number per line."""
    text = json.dumps(record, indent=2)
    return _SCALAR_ARRAY.sub(lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",\n")) + "]"
                             if "\n" in m.group(0) else m.group(0), text) + "\n"


def markdown_table(columns: list[str], rows: list[dict]) -> str:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def write_results(name: str, columns: list[str], rows: list[dict], *, notes: str = "", extra: dict | None = None,
                  command: str | None = None) -> str:
    """Write ``results/<name>.json`` and ``results/<name>.md``; return the Markdown table.

    ``command`` is the command line that made them (default: this process's)."""
    command = command or " ".join([Path(sys.executable).name, *sys.argv])
    table = markdown_table(columns, rows)
    record = {
        "name": name,
        "command": command,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
        "columns": columns,
        "rows": rows,
        "notes": notes,
        **(extra or {}),
    }
    _atomic_write(RESULTS / f"{name}.json", dump_json(record))
    md = f"# {name}\n\nCommand: `{command}`\n\n{table}\n"
    if notes:
        md += f"\n{notes}\n"
    _atomic_write(RESULTS / f"{name}.md", md)
    return table
