"""One W&B run per cell, and one per fine-tuning task and seed, each finished before the next cell starts
(with exit code 1 on failure), so cells run in one process never log into each other's run. Runs are
created side by side (reinit create_new): a fine-tuning run never ends the cell's open run. Offline by
default; never prompts for a login."""

import logging
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ablations.cell import Cell
from ablations.config import ConfigError

log = logging.getLogger(__name__)


@contextmanager
def wandb_run(cfg: DictConfig, cell: Cell):
    """Yields the cell's pretraining run, or None with logger=none or on a DDP rank other than 0."""
    with _run(cfg, cell, id=cell.id, name=cell.name, job_type="pretrain") as run:
        yield run


@contextmanager
def finetune_run(cfg: DictConfig, cell: Cell, task: str, seed: int, protocol: dict, fingerprint: str):
    """One run per task, seed and fine-tuning fingerprint in the cell's group, so the fine-tuning curves sit beside
    the pretraining and a rerun under another recipe never continues an old run."""
    with _run(cfg, cell, id=f"{cell.id}-{fingerprint}-{task}-s{seed}", name=f"{cell.name}-{task}-seed{seed}",
              job_type=f"finetune-{task}", extra={"glue/task": task, "glue/seed": seed, "glue/protocol": protocol,
                                                  "glue/fingerprint": fingerprint}) as run:
        yield run


@contextmanager
def _run(cfg: DictConfig, cell: Cell, extra: dict | None = None, **init):
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
        resume="allow", group=cell.group, tags=[*cfg.tags, *(f"{k}={v}" for k, v in cell.factors.items())],
        config={**OmegaConf.to_container(cfg, resolve=True), **{f"factor/{k}": v for k, v in cell.factors.items()},
                "cell_id": cell.id, "arm_id": cell.arm_id, **(extra or {})},
        settings=wandb.Settings(console="off", silent=True, reinit="create_new"), **init,
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
