#!/usr/bin/env bash
# Set up chatforge in .venv (or in the virtual environment that is already active).
# Torch first: a machine with an NVIDIA GPU gets the default (CUDA) build, a CPU-only machine the CPU
# build; a torch that is already installed in the environment is kept as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ -z "${VIRTUAL_ENV:-}" ] && [ -z "${CONDA_PREFIX:-}" ]; then
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  PY=.venv/bin/python
else
  PY=$(command -v python)
fi
PIP="$PY -m pip --disable-pip-version-check -q"
stamp=.venv/.chatforge-setup
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && "$PY" -c "import chatforge, torch" 2>/dev/null; then
  exit 0  # already set up and nothing changed
fi
if ! "$PY" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    $PIP install "torch>=2.4"
  else
    # the CPU wheel from PyTorch's index; where that index is unreachable, whatever the configured indexes
    # hold (a local mirror with the CPU wheel on the machines that build chatforge)
    if "$PY" -c "import urllib.request as u; u.urlopen('https://download.pytorch.org/whl/cpu/', timeout=5)" \
        2>/dev/null; then
      $PIP install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
    else
      $PIP install "torch==2.13.0"
    fi
  fi
fi
$PIP install -e ".[dev]"
mkdir -p .venv && touch "$stamp"
