"""One W&B run per cell, always finished before the next cell starts (with exit code 1 on failure), so
cells run in one process never log into each other's run. Offline by default; never prompts for a login."""

import logging
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ablations.cell import Cell
from ablations.config import ConfigError

log = logging.getLogger(__name__)


@contextmanager
def wandb_run(cfg: DictConfig, cell: Cell):
    """Yields the cell's W&B run, or None with logger=none or on a DDP rank other than 0."""
    from pytorch_lightning.utilities import rank_zero_only

    if cfg.logger.name == "none" or rank_zero_only.rank != 0:
        yield None
        return
    import wandb

    if cfg.logger.mode == "online" and not wandb.api.api_key:
        raise ConfigError("logger.mode=online needs W&B credentials (WANDB_API_KEY or `wandb login`); "
                          "logger.mode=offline logs locally and syncs later with `wandb sync`")
    Path(cfg.logger.dir).mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=cfg.logger.project, entity=cfg.logger.entity, dir=cfg.logger.dir, mode=cfg.logger.mode,
        id=cell.id, resume="allow", name=cell.name, group=cell.group, job_type="pretrain",
        tags=[f"{k}={v}" for k, v in cell.factors.items()],
        config={**OmegaConf.to_container(cfg, resolve=True), **{f"factor/{k}": v for k, v in cell.factors.items()},
                "cell_id": cell.id},
        settings=wandb.Settings(console="off", silent=True),
    )
    try:
        yield run
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()


def run_path(run) -> dict | None:
    if run is None:
        return None
    return {"id": run.id, "path": run.path if run.settings.mode == "online" else None, "dir": run.dir,
            "mode": run.settings.mode}
