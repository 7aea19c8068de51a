#!/usr/bin/env bash
# The GPU checks in one short script, for a session whose task is lent a GPU machine (the device library's `run`).
#
#   bash bench/gpu_check.sh wheels       # here, where PyPI is reachable: what the device image lacks, into .whl/
#   bash bench/gpu_check.sh run [OUT]    # there, from the repo root, with `.whl` carried: install, check, measure
#
# The device image has torch, accelerate, peft, safetensors, tokenizers, typer, rich and matplotlib, but neither trl
# nor datasets, and older transformers and huggingface_hub than chatforge is tested with (device library, KINDS.md).
# `wheels` fetches those at this environment's versions (the set a GPU session installed and ran with, 2026-11-26).
# `run` then checks the CUDA paths and takes the GPU figures, ~5 minutes on an H100:
#   1. the device, bf16, and which SDPA kernels are on (cuDNN's is turned off by chatforge: see models/loading.py);
#   2. the engine tests on the GPU in bf16 (CHATFORGE_TEST_DEVICE=cuda), greedy replies equal to `generate`'s, also
#      for a model with a previous-token head (q/k biases through SDPA);
#   3. the tiny demo end to end (bench/demo_time.py), every stage on the GPU;
#   4. PPO throughput on the tiny run's models, chatforge's rollout loop against plain `model.generate`.
# Its output and the JSON figures land in OUT (default: $OUT, the device tool's folder that comes back).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES="transformers trl datasets huggingface_hub httpx2 httpcore2 truststore dill multiprocess"

wheels() {
    # the versions of the environment chatforge is tested in: `make setup`'s .venv, else PYTHON, else python3
    local py=${PYTHON:-python3}
    [ -x .venv/bin/python ] && py=.venv/bin/python
    grep -qx "/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
    mkdir -p .whl
    for name in $PACKAGES; do
        version=$("$py" -c "import importlib.metadata as m; print(m.version('$name'))")
        python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
            -d .whl "$name==$version"
    done
    du -sh .whl
    echo "carry .whl in the run call: run(command='bash bench/gpu_check.sh run', carry=['.whl'])"
}

run() {
    local out=${1:-${OUT:-/tmp/gpu_check}}
    mkdir -p "$out"
    local device=cpu
    python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null && device=cuda
    if [ "$device" = cuda ]; then  # elsewhere: a dry run with the environment as it is
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    fi
    export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
    python3 - <<'EOF' 2>&1 | tee "$out/device.txt" || true
import torch
from chatforge.models.loading import no_cudnn_attention, weights_dtype
if not torch.cuda.is_available():
    raise SystemExit(f"no GPU here (torch {torch.__version__}): a dry run of the steps on the CPU")
print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| bf16:", torch.cuda.is_bf16_supported())
print("generation weights:", weights_dtype("cuda:0"), "| training weights:", weights_dtype("cuda:0", train=True))
no_cudnn_attention()
b = torch.backends.cuda
print("SDPA kernels on: flash", b.flash_sdp_enabled(), "| mem-efficient", b.mem_efficient_sdp_enabled(),
      "| cudnn", b.cudnn_sdp_enabled(), "| math", b.math_sdp_enabled())
EOF
    CHATFORGE_TEST_DEVICE=$device python3 -m pytest -o addopts= -p no:cacheprovider tests/test_engine.py \
        tests/test_presets.py::test_serving_engine_runs_a_prev_token_model_fused_as_generate_does \
        > "$out/engine_tests.txt" 2>&1 || true
    tail -1 "$out/engine_tests.txt"
    python3 bench/demo_time.py --preset tiny --keep "$out/tiny" > "$out/demo_tiny.txt" 2>&1
    grep -E '"(median_wall_s|max_peak_rss_mb)"' "$out/demo_tiny.txt"
    python3 bench/ppo_throughput.py --model "$out/tiny/sft/model" --reward-model "$out/tiny/reward/model" \
        --json "$out/ppo_throughput.json" > "$out/ppo_throughput.txt" 2>&1
    grep -E '"ratio_' "$out/ppo_throughput.json"
    rm -rf "$out/tiny"/*/checkpoints  # the figures come back, not the checkpoints
}

case "${1:-}" in
    wheels) wheels ;;
    run) shift; run "$@" ;;
    *) echo "usage: bash bench/gpu_check.sh wheels | run [OUT]" >&2; exit 2 ;;
esac
