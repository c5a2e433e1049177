#!/usr/bin/env bash
# Set up genzoo in ./.venv: the CPU build of PyTorch where there is no GPU, then the package.
# Idempotent: a second run only checks. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
CPU_INDEX=https://download.pytorch.org/whl/cpu
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        .venv/bin/pip install --quiet "torch>=2.2,<3"
    elif .venv/bin/python -c "import socket; socket.setdefaulttimeout(5); \
            socket.getaddrinfo('download.pytorch.org', 443)" 2>/dev/null; then
        # The CPU wheel index: never the multi-GB CUDA build on a machine without a GPU.
        .venv/bin/pip install --quiet --retries 1 --timeout 30 --index-url "$CPU_INDEX" \
            "torch==2.13.0"
    else
        # No route to the CPU index: this workplace's package sources hold the CPU wheel.
        .venv/bin/pip install --quiet "torch==2.13.0"
    fi
fi
.venv/bin/pip install --quiet -e ".[test]"
