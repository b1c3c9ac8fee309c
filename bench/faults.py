"""Fault injection: SIGKILL a cell at each point a long grid can die, several times at different moments, rerun
the same command, and compare with an uninterrupted run. Prints the matrix: fault point x tries, resumed (the
rerun finished), equal (the same held-out loss, real tokens, mask fingerprints, curve, GLUE and SQuAD numbers,
and a W&B history with every step once, equal to the uninterrupted run's), lost (a finished result gone or
rewritten).

Pretraining resumes exactly (bit for bit on the same machine and threads); a stage killed before it finished
runs again from its start, and its numbers are equal too: every step is seeded.
`python bench/faults.py [--workers 0 2] [--tries 3]` (about half an hour on 2 cores).
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT

sys.path.insert(0, str(ROOT / "tests"))
from conftest import wandb_history  # noqa: E402

CELL = ["data.sources.synthetic.num_documents=60", "schedule.total_tokens=131072", "trainer.log_every_steps=4",
        "trainer.checkpoint_every_steps=9", "glue.tasks=[sst2]", "glue.seeds=[1,2]", "glue.train_size=200",
        "glue.dev_size=100", "glue.protocol.epochs=2", "rc.seeds=[1,2,3]", "rc.train_size=100", "rc.dev_size=50",
        "rc.protocol.epochs=1"]
GRID = ["-m", "masking=static,dynamic"]
BIG_CORPUS = "data.sources.synthetic.num_documents=2000"  # its instances take about 0.2 s to build: killable


def newest(pattern: str):
    return lambda root: max(root.glob(pattern), key=lambda p: p.stat().st_mtime, default=None)


# point: (how the run is started, when to kill it (a file that appears), what the kill leaves behind)
POINTS = {
    "tokenizer training": ([], newest("cache/corpus/*.tmp-*"), None),
    "cache build": ([BIG_CORPUS], newest("cache/instances/*.tmp-*"), None),
    "mid-epoch": ([], newest("cells/*/checkpoints/*.ckpt"), None),
    "an epoch's last batch": (["trainer.checkpoint_every_steps=EPOCH_END"], newest("cells/*/checkpoints/*.ckpt"), None),
    "checkpoint write": ([], newest("cells/*/checkpoints/*.ckpt"), "truncate the newest checkpoint"),
    "results.json write": ([], newest("cells/*/model/model.safetensors"), "a results.json cut short"),
    "GLUE fine-tuning": ([], newest("cells/*/predictions/*/*.tsv"), None),
    "reading comprehension": ([], newest("cells/*/predictions/*/squad20-seed*.json"), None),
    "report": (GRID, newest("multirun/*/*/report"), None),
}
DELAYS = (0.0, 0.4, 1.5)  # seconds from the trigger to the kill, per try
SHORT = {"cache build": (0.0, 0.05, 0.1)}  # within the 0.2 s build of BIG_CORPUS's instances


def command(root: Path, workers: int, extra: list[str]) -> list[str]:
    """run.py with CELL, where extra overrides a key of CELL it replaces it (Hydra refuses a key given twice)."""
    keys = {e.split("=")[0] for e in extra}
    cell = [c for c in CELL if c.split("=")[0] not in keys]
    return [sys.executable, str(ROOT / "run.py"), *extra, *cell, f"trainer.num_workers={workers}", f"paths.root={root}",
            f"logger.dir={root}", f"hydra.sweep.dir={root}/multirun/grid/sweep", f"hydra.run.dir={root}/runs/run"]


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "offline"})


def killed(cmd: list[str], root: Path, until, delay: float) -> bool:
    """The whole process tree killed at once (grid workers, loader workers), as a scheduler kills a job; False
    when the run ended before the kill (the try then tests nothing and the table says so)."""
    job = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "WANDB_MODE": "offline"}, start_new_session=True)
    deadline = time.monotonic() + 600
    while until(root) is None and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    if job.poll() is not None:
        return False
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    return True


def damage(root: Path, how: str | None) -> None:
    if how == "truncate the newest checkpoint":
        path = newest("cells/*/checkpoints/*.ckpt")(root)
        if path:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "a results.json cut short":  # write_atomic's temporary file, as a kill mid-write leaves it
        for cell in root.glob("cells/*"):
            (cell / "results.json.tmp-1").write_text('{"schema_version": 2, "status": "o')


def outcome(root: Path) -> dict:
    """Per cell: what must equal the uninterrupted run, and the W&B steps logged (every part of a resumed run)."""
    cells = {}
    for path in root.glob("cells/*/results.json"):
        r = json.loads(path.read_text())
        finetuned = {stage: {fp: {t: v["summary"] for t, v in e["tasks"].items()}
                             for fp, e in (r.get(stage) or {}).items()} for stage in ("glue", "rc")}
        logged = [(int(h["trainer/global_step"]), h.get("train/loss"), h.get("data/mask_fingerprint"))
                  for h in wandb_history(root, r["cell_id"]) if "trainer/global_step" in h]
        cells[r["cell_id"]] = {"status": r["status"], "loss": r.get("metrics", {}).get("val/mlm_loss"),
                               "tokens": r.get("tokens_seen"), "fingerprints": r.get("mask_fingerprints"),
                               "curve": r.get("curve"), **finetuned, "wandb": sorted(logged, key=str),
                               "finished_at": path.stat().st_mtime}
    return cells


def epoch_end_step(root: Path, workers: int) -> int:
    """The first step whose global batch reaches the end of epoch 0 (from a dry run's plan)."""
    out = run([*command(root, workers, []), "dry_run=true"], root).stdout
    steps, sequences, epochs = (float(x) for x in re.search(
        r"(\d+) steps x (\d+) sequences .* ([\d.]+) epochs", out).groups())
    per_epoch = steps * sequences / epochs
    return int(-(-per_epoch // sequences))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("points", nargs="*", default=list(POINTS))
    args = parser.parse_args()
    rows = []
    for workers in args.workers:
        references = {}

        def reference(extra: list[str]) -> dict:
            """The uninterrupted run of the same cells: when checkpoints are taken changes nothing else."""
            key = tuple(e for e in extra if not e.startswith("trainer.checkpoint_every_steps="))
            if key not in references:
                root = Path(tempfile.mkdtemp())
                result = run(command(root, workers, list(key)), root)
                assert result.returncode == 0, result.stderr[-2000:]
                references[key] = outcome(root)
            return references[key]

        end = epoch_end_step(Path(tempfile.mkdtemp()), workers)
        for point in args.points:
            extra, until, how = POINTS[point]
            extra = [e.replace("EPOCH_END", str(end)) for e in extra]
            kills = resumed = equal = lost = 0
            for attempt in range(args.tries):
                root = Path(tempfile.mkdtemp())
                cmd = command(root, workers, extra)
                kills += killed(cmd, root, until, delay=SHORT.get(point, DELAYS)[attempt % 3])
                damage(root, how)
                before = {c: o for c, o in outcome(root).items() if o["status"] == "ok"}
                result = run(cmd, root)
                after = outcome(root)
                resumed += result.returncode == 0
                strip = lambda cells: {c: {k: v for k, v in o.items() if k != "finished_at"} for c, o in cells.items()}
                equal += strip(after) == strip(reference(extra))
                lost += any(c not in after or after[c]["loss"] != o["loss"] for c, o in before.items())
                shutil.rmtree(root, ignore_errors=True)
            rows.append((point, workers, args.tries, kills, resumed, equal, lost))
            print(f"{point:24} workers {workers}: {args.tries} tries, {kills} killed, {resumed} resumed, "
                  f"{equal} equal, {lost} lost", flush=True)
    header = ("fault point", "workers", "tries", "killed", "resumed", "equal", "lost")
    print(f"\n{header[0]:24} " + " ".join(f"{h:>7}" for h in header[1:]))
    for row in rows:
        print(f"{row[0]:24} " + " ".join(f"{v:7}" for v in row[1:]))
    sys.exit(0 if all(r[2] == r[3] == r[4] == r[5] and r[6] == 0 for r in rows) else 1)


if __name__ == "__main__":
    main()
