"""Where a grid's wall time went, read from its logs: per cell, when its first log line came (seconds after the
launch: imports and Hydra, or waiting for a free worker), its data preparation, pretraining, GLUE and reading
comprehension (rc), and when it ended; for the grid, the report after the last cell.
`python bench/grid_breakdown.py <sweep folder> <grid.log>` (bench/grid.sh calls it)."""

import re
import sys
from datetime import datetime
from pathlib import Path

STAMP = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[([\w.]+)\](?:\[\w+\] -)? (.*)")
# the line that ends each phase; a phase a cell skipped (cached, or no tasks) takes no time
ENDS = (("prepare", re.compile(r"ablations\.runner .*steps x")),
        ("pretrain", re.compile(r"ablations\.pretraining .*: ok,")),
        ("glue", re.compile(r"ablations\.finetuning - glue ")),
        ("rc", re.compile(r"ablations\.finetuning - rc ")))


def lines(path: Path):
    for line in path.read_text(errors="replace").splitlines():
        if m := STAMP.match(line):
            yield datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f"), f"{m[2]} - {m[3]}"


def cell(run_log: Path, launched: datetime) -> dict[str, float]:
    """Seconds of each phase: from the previous phase's last line to this phase's last line."""
    stamped = list(lines(run_log))
    seconds, last = {"first line at": (stamped[0][0] - launched).total_seconds()}, stamped[0][0]
    for phase, pattern in ENDS:
        ends = [t for t, text in stamped if pattern.search(text)]
        seconds[phase] = (ends[-1] - last).total_seconds() if ends else 0.0
        last = ends[-1] if ends else last
    seconds["ended at"] = (stamped[-1][0] - launched).total_seconds()
    return seconds


def main(sweep: Path, grid_log: Path):
    grid = list(lines(grid_log))
    launched, ended = grid[0][0], grid[-1][0]
    rows = {p.parent.name: cell(p, launched) for p in sorted(sweep.glob("*/run.log"), key=lambda p: int(p.parent.name))}
    phases = list(next(iter(rows.values())))
    width = max(map(len, phases))
    print(f"{'cell':>4}  " + "  ".join(f"{p:>{width}}" for p in phases) + "  (seconds)")
    for name, seconds in rows.items():
        print(f"{name:>4}  " + "  ".join(f"{seconds[p]:{width}.0f}" for p in phases))
    last_cell = max(r["ended at"] for r in rows.values())
    print(f"report after the last cell: {(ended - launched).total_seconds() - last_cell:.0f} s; "
          f"launch to report: {(ended - launched).total_seconds():.0f} s")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
