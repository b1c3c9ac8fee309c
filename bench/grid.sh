#!/usr/bin/env bash
# (c) Wall time of the default 2x2 grid, from a cold cache, in a temporary folder, and where it went.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
cd "$work"
start=$(date +%s)
WANDB_MODE=offline python "$here/run.py" -m objective=mlm,mlm_nsp masking=static,dynamic \
    paths.root="$work/outputs" hydra.sweep.dir="$work/sweep" "$@" > "$work/grid.log" 2>&1 \
    || { tail -30 "$work/grid.log"; exit 1; }
end=$(date +%s)
grep -h "held-out perplexity" "$work"/sweep/*/run.log | sed 's/.*- cell/cell/'
echo "default 2x2 grid: $((end - start)) s wall time on $(nproc) cores (logs in $work)"
python "$here/bench/grid_breakdown.py" "$work/sweep" "$work/grid.log"
