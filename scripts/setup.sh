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
# the browser tests drive Debian's Chromium with Playwright (Playwright's own browser download is not used)
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
   { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; }) || \
    echo "setup: could not install chromium; the browser tests will be skipped" >&2
fi
mkdir -p .venv && touch "$stamp"
