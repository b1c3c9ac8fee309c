#!/usr/bin/env bash
# GLUE stage on CPU: one default cell (pretrain + fine-tune) and the same fine-tuning from random weights,
# side by side in one folder: fine-tuning examples/s and what pretraining buys on each synthetic task.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
cd "$work"
export WANDB_MODE=offline
python "$here/run.py" paths.root="$work/outputs" "$@" > "$work/pretrained.log" 2>&1 || { tail -30 "$work/pretrained.log"; exit 1; }
python "$here/run.py" paths.root="$work/outputs" stage=finetune model.pretrained=random "$@" > "$work/random.log" 2>&1 \
    || { tail -30 "$work/random.log"; exit 1; }
python - "$work/outputs" <<'PY'
import json, pathlib, statistics, sys
cells = {r["name"]: r for r in (json.loads(p.read_text()) for p in pathlib.Path(sys.argv[1]).glob("cells/*/results.json"))}
pretrained = next(r for n, r in cells.items() if not n.startswith("random-init"))
random_init = next(r for n, r in cells.items() if n.startswith("random-init"))
print(f"{'task score (median over seeds)':32} {'pretrained':>10} {'random init':>12} {'delta':>7}")
for key in sorted(k for k in pretrained["metrics"] if k.startswith("glue/") and k.endswith("/score")):
    a, b = pretrained["metrics"][key], random_init["metrics"][key]
    print(f"{key:32} {a:10.4f} {b:12.4f} {a - b:+7.4f}")
rates = [s["train_examples_per_sec"] for t in pretrained["glue"]["tasks"].values() for s in t["seeds"].values()]
print(f"fine-tuning: {statistics.median(rates):.0f} training examples/s (median of {len(rates)} runs), "
      f"model {pretrained['config']['model']['name']}, protocol {pretrained['glue']['protocol']['name']}")
PY
echo "logs in $work"
