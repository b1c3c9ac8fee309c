#!/usr/bin/env bash
# For a lent GPU: bench/gpu_check.py (a BERT-base cell, bf16, a few hundred steps: tokens/s, MFU, peak memory,
# data-loader headroom), then the default grid on the GPU end to end with its wall time. Without CUDA it checks
# what it can on the CPU, says so, and exits 0.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
export WANDB_MODE=offline
python "$here/bench/gpu_check.py" "$@"
if python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    bash "$here/bench/grid.sh" trainer=gpu
else
    echo "no CUDA device: the default grid on a GPU was not run"
fi
