"""Every benchmark side by side in one run, with its target: Lightning vs a plain loop (tiny and mini), data
preparation and masking vs what training consumes, CPU MFU of the mini model against this machine's measured
matmul peak (on every core, and on one as each cell of a grid runs), the default grid's wall time (bench/grid.sh,
cold cache) and the report on 1,000 runs.
`python bench/all.py` (about 15 minutes on 2 cores); `--skip-grid` leaves out the grid."""

import argparse
import re
import subprocess
import sys

import data
import report
import train_step
from common import ROOT


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-grid", action="store_true")
    args = parser.parse_args()
    rows, runs = [], {model: train_step.measure([f"model={model}"], steps=150, rounds=5) for model in ("tiny", "mini")}
    for model, m in runs.items():
        rows.append((f"Lightning / plain loop, BERT-{model} (median of 5 rounds)", m["ratio"], ">= 0.97", m["ratio"] >= 0.97))
    for m in (runs["mini"], train_step.measure(["model=mini"], steps=100, rounds=1, threads=1)):
        rows.append((f"CPU MFU, BERT-mini, {m['threads']} thread(s) (plain loop, vs measured fp32 matmul peak)",
                     m["plain_mfu"], ">= 0.50", m["plain_mfu"] >= 0.5))
    d = data.measure(books=8)
    slowest = min(d["rows"].items(), key=lambda kv: kv[1])
    rows.append((f"data pipeline / training consumption (slowest: {slowest[0]})", slowest[1] / d["consumed"], ">= 10",
                 slowest[1] / d["consumed"] >= 10))
    if not args.skip_grid:
        out = subprocess.run(["bash", str(ROOT / "bench" / "grid.sh")], capture_output=True, text=True).stdout
        seconds = float(re.search(r"default 2x2 grid: (\d+) s", out)[1])
        rows.append(("default grid wall time, cold cache (s)", seconds, "< 300", seconds < 300))
    seconds = report.measure(1000)
    rows.append(("report from 1,000 runs (s)", seconds, "< 10", seconds < 10))
    width = max(len(r[0]) for r in rows)
    print(f"{'benchmark':{width}}  {'value':>8}  target   met")
    for name, value, target, met in rows:
        print(f"{name:{width}}  {value:8.3g}  {target:7}  {'yes' if met else 'NO'}")
    sys.exit(0 if all(r[3] for r in rows) else 1)


if __name__ == "__main__":
    main()
