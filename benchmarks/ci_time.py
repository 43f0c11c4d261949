"""How long the test suite of CI (``make test``) takes on a fresh clone with an empty cache.

Clones the repository (``git clone``: committed files only) into a fresh directory next to this
checkout (so ``../shared/data`` resolves as it does here), points ``THINKSOLVE_CACHE`` at an
empty directory (no cached tiny models, warm starts or converted SmolLM2), and runs there the
two test commands of ``make test``, timing each:

* the main suite: ``.venv/bin/python -m pytest -q -n 2 --dist loadfile`` (as ``make test``);
* the vLLM tests: ``.venv-vllm/bin/python -m pytest -q -m vllm tests/test_vllm_policy.py``.

The interpreters are this checkout's virtualenvs (``--venv``, ``--vllm-venv``); run from the
clone, they import the clone's code (its directory comes first on ``sys.path``). Building fresh
virtualenvs is *not* timed: it downloads torch and vLLM (``scripts/bootstrap.sh``, about 75 s
for ``scripts/vllm_venv.sh`` where the wheels are cached), which this script never does.

The target is ``make test`` <= 8 minutes on an idle 2-core machine; the table says how loaded
the machine was (1-minute load average before and after), and a time measured under load is
not that number. The clone and the cache are deleted afterwards (``--keep`` keeps them).

    python benchmarks/ci_time.py [--skip-vllm] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _results import write_results  # noqa: E402


def _timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    dt = time.perf_counter() - t0
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    print(f"[ci-time] {' '.join(cmd[-4:])}: {dt:.0f} s, rc {proc.returncode}: {tail}", flush=True)
    return dt, proc.returncode, tail


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", default=str(ROOT / ".venv"), help="virtualenv of the main suite")
    ap.add_argument("--vllm-venv", default=str(ROOT / ".venv-vllm"), help="virtualenv of the vLLM tests")
    ap.add_argument("--skip-vllm", action="store_true", help="time the main suite only")
    ap.add_argument("--keep", action="store_true", help="keep the clone and the cache")
    ap.add_argument("--name", default="ci_time")
    ap.add_argument("--only", nargs="+", metavar="TEST",
                    help="time only these test files/ids (a smoke test of this script; "
                         "not the CI number, and no results file)")
    args = ap.parse_args(argv)

    clone = Path(tempfile.mkdtemp(prefix="ci-clone-", dir=ROOT.parent))
    cache = Path(tempfile.mkdtemp(prefix="thinksolve-cache-"))
    shutil.rmtree(clone)
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = dict(os.environ, THINKSOLVE_CACHE=str(cache), VLLM_ENABLE_V1_MULTIPROCESSING="0")
    env.pop("VIRTUAL_ENV", None)
    load_before = os.getloadavg()[0]
    rows, rcs = [], []
    try:
        dt, rc, tail = _timed([f"{args.venv}/bin/python", "-m", "pytest", "-q", "-n", "2", "--dist", "loadfile",
                                *(args.only or [])], clone, env)
        rows.append({"phase": "main suite (pytest -q -n 2)", "seconds": round(dt, 1), "result": tail})
        rcs.append(rc)
        if not args.skip_vllm and not args.only:
            dt, rc, tail = _timed([f"{args.vllm_venv}/bin/python", "-m", "pytest", "-q", "-m", "vllm",
                                   "tests/test_vllm_policy.py"], clone, env)
            rows.append({"phase": "vLLM tests", "seconds": round(dt, 1), "result": tail})
            rcs.append(rc)
    finally:
        if not args.keep:
            shutil.rmtree(clone, ignore_errors=True)
            shutil.rmtree(cache, ignore_errors=True)
    load_after = os.getloadavg()[0]
    rows.append({"phase": "both", "seconds": round(sum(r["seconds"] for r in rows), 1),
                 "result": "ok" if not any(rcs) else f"exit codes {rcs}"})
    notes = (f"Fresh `git clone`, empty THINKSOLVE_CACHE, existing virtualenvs (not timed: building them downloads "
             f"torch/vLLM). 1-minute load average {load_before:.1f} before, {load_after:.1f} after, on "
             f"{os.cpu_count()} CPUs: re-measure on an idle machine if it is above 0.5.")
    print()
    if args.only:
        print(rows, notes)
        return max(rcs)
    print(write_results(args.name, ["phase", "seconds", "result"], rows, notes=notes,
                        extra={"load_before": load_before, "load_after": load_after}))
    print(notes)
    return max(rcs) if rcs else 1


if __name__ == "__main__":
    sys.exit(main())
