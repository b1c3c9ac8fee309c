"""Time to build every table from 1,000 runs (target under 10 s): a 5-factor grid of results.json files with
GLUE seeds, written to a temporary folder, then the whole report (tables, CSV, LaTeX, HTML, figures)."""

import itertools
import json
import random
import tempfile
import time
from pathlib import Path

from ablations.cell import SCHEMA_VERSION
from ablations.report import build


def write_runs(root: Path, count: int) -> None:
    rng = random.Random(0)
    cells = list(itertools.product(("mlm", "mlm_nsp"), ("static", "dynamic"), ("bsz256", "bsz2k", "bsz8k"),
                                   (0.25, 0.5, None)))
    for i in range(count):
        objective, masking, schedule, size = cells[i % len(cells)]
        seed = i // len(cells)
        factors = {"objective": objective, "masking": masking, "input_format": "full_sentences" if objective == "mlm"
                   else "segment_pair", "schedule": schedule, "data": "synthetic", "data_size": size, "model": "tiny",
                   "tokenizer": "bpe", "seed": seed}
        metrics = lambda: {"sst2/accuracy": rng.uniform(0.7, 0.9), "mnli/accuracy": rng.uniform(0.6, 0.8),
                           "mnli_mm/accuracy": rng.uniform(0.6, 0.8)}
        seeds = {str(k): {"metrics": metrics()} for k in (1, 2, 3)}
        tasks = {t: {"status": "ok", "seeds": {k: {"metrics": {m: v for m, v in s["metrics"].items()
                                                               if m.split("/")[0] in (t, f"{t}_mm")}}
                                               for k, s in seeds.items()}} for t in ("sst2", "mnli")}
        batch = {"bsz256": 32, "bsz2k": 256, "bsz8k": 1024}[schedule]
        results = {"schema_version": SCHEMA_VERSION, "cell_id": f"c{i}", "arm_id": f"arm{i % len(cells)}",
                   "name": f"cell{i}-s{seed}", "status": "ok", "factors": factors,
                   "config": {"seq_len": 64, "data": {"name": "synthetic", "sources": {"synthetic": {
                       "type": "synthetic", "num_documents": 450}}}},
                   "data": {"train_tokens": int(1e6 * (size or 1))},
                   "plan": {"batch": batch, "sequences": batch, "steps": 2 ** 20 // 64 // batch, "peak_lr": 1e-3, "warmup_steps": 1},
                   "tokens_seen": 2 ** 20, "metrics": {"val/perplexity": rng.uniform(10, 20)},
                   "glue": {"fp": {"recipe": {"source": "synthetic", "protocol": {"name": "cpu", "version": 1},
                                           "seeds": [1, 2, 3], "train_limit": None}, "tasks": tasks}},
                   "curve": [[s, 8 - s / 100] for s in range(20, 520, 20)]}
        (root / f"c{i}").mkdir(parents=True)
        (root / f"c{i}" / "results.json").write_text(json.dumps(results))


def measure(runs: int = 1000) -> float:
    """Seconds to build the whole report from `runs` results.json files."""
    root = Path(tempfile.mkdtemp())
    write_runs(root / "runs", runs)
    start = time.perf_counter()
    build(str(root / "runs"), root / "report")
    return time.perf_counter() - start


def main():
    print(f"report from 1000 runs (36 arms, 3 GLUE seeds each): {measure():.1f} s (target < 10 s)")


if __name__ == "__main__":
    main()
