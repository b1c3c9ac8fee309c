"""What a grid ends with: each job records its outcome in its own folder (jobs may run in other processes or
on other machines); when the multirun ends, a summary names the failed cells, the sweep folder gets its
report, and the exit status is 1 if any cell failed."""

import json
import logging
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger(__name__)
OUTCOME = "outcome.json"


def dry_run(cfg: DictConfig) -> str:
    """Prints the cell and how it spends its token budget, trains nothing. Builds (and caches) the instances: the
    number of sequences a step takes depends on how full the input format's sequences are."""
    from hydra.utils import to_absolute_path

    from ablations import compute
    from ablations.budget import budget
    from ablations.cell import Cell
    from ablations.config import check
    from ablations.data.pipeline import prepare

    check(cfg)
    root = Path(to_absolute_path(cfg.paths.root))
    cell = Cell.of(cfg, root)
    data = prepare(cfg, root)
    spend = budget(cfg, data)
    tokens = spend.plan.steps * spend.plan.sequences * data.stats["tokens_per_sequence"]
    flops = tokens * compute.flops_per_token(cfg.model, len(data.tokenizer), data.stats["tokens_per_sequence"])
    cost = compute.cell_cost(cfg, flops)
    print(f"cell {cell.id} {cell.name}: {spend.describe()}; about {round(tokens)} real tokens "
          f"(schedule.total_tokens {cfg.schedule.total_tokens})\n  {compute.describe_cost(flops, tokens, cost)}",
          flush=True)
    return "dry_run", {"tokens": tokens, "flops": flops, **cost}


def record(status: str, error: str | None = None, extra: dict | None = None) -> None:
    """The job's outcome (ok, diverged, skipped: already finished, dry_run, failed) in its Hydra output folder."""
    folder = Path(HydraConfig.get().runtime.output_dir)
    (folder / OUTCOME).write_text(json.dumps({"status": status, "error": error, **(extra or {}),
                                              "overrides": list(HydraConfig.get().overrides.task)}))


class GridEnd(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        """A sweep folder a grid reuses (a fixed hydra.sweep.dir) holds an earlier grid's outcomes and links to its
        cells: cleared, so the summary, the exit status and the report count this grid's cells only (the earlier
        cells stay where they are, under paths.root)."""
        sweep = Path(config.hydra.sweep.dir)
        for path in [*sweep.glob(f"*/{OUTCOME}"), *sweep.glob("*/cell")]:
            path.unlink()

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep = Path(config.hydra.sweep.dir)
        outcomes = [json.loads(p.read_text()) for p in sorted(sweep.glob(f"*/{OUTCOME}"))]
        failed = [o for o in outcomes if o["status"] == "failed"]
        diverged = [o for o in outcomes if o["status"] == "diverged"]
        log.info("grid: %d cells, %d failed, %d diverged%s", len(outcomes), len(failed), len(diverged),
                 "".join(f"\n  failed: {' '.join(o['overrides'])}: {o['error']}" for o in failed)
                 + "".join(f"\n  diverged: {' '.join(o['overrides'])}" for o in diverged))
        costed = [o for o in outcomes if "hours" in o]
        if costed:
            log.info("grid cost: %.3g real tokens, %.3g FLOPs, %.3g h one cell after another, %.3g GPU-hours on %s",
                     sum(o["tokens"] for o in costed), sum(o["flops"] for o in costed),
                     sum(o["hours"] for o in costed), sum(o["device_hours"] for o in costed), costed[0]["device"])
        if outcomes and not all(o["status"] == "dry_run" for o in outcomes):
            from ablations.report import build

            try:  # a report that cannot be built never fails the finished grid
                log.info("report: %s", build(str(sweep), sweep / "report"))
            except Exception:
                log.exception("report: not built; python -m ablations.report --source %s --out <dir>", sweep)
        if failed:
            sys.exit(1)
