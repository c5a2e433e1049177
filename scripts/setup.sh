#!/usr/bin/env bash
# Set up genzoo in ./.venv: the CPU build of PyTorch where there is no GPU, then the package.
# Idempotent: a second run only checks. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        .venv/bin/pip install --quiet "torch>=2.2,<3"
    else
        # The CPU wheel index: never the multi-GB CUDA build on a machine without a GPU.
        .venv/bin/pip install --quiet --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
    fi
fi
.venv/bin/pip install --quiet -e ".[test]"
