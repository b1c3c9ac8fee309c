"""One W&B run per cell, and one per fine-tuning task and seed, each finished before the next cell starts
(with exit code 1 on failure), so cells run in one process never log into each other's run. Runs are
created side by side (reinit create_new): a fine-tuning run never ends the cell's open run. Offline by
default; never prompts for a login."""

import logging
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from ablations.cell import Cell
from ablations.config import ConfigError

log = logging.getLogger(__name__)


@contextmanager
def wandb_run(cfg: DictConfig, cell: Cell):
    """Yields the cell's pretraining run, or None with logger=none or on a DDP rank other than 0."""
    with _run(cfg, cell, id=cell.id, name=cell.name, job_type="pretrain") as run:
        yield run


@contextmanager
def finetune_run(cfg: DictConfig, cell: Cell, stage: str, task: str, seed: int, protocol: dict, fingerprint: str):
    """One run per task, seed and fine-tuning fingerprint in the cell's group, so the fine-tuning curves sit beside
    the pretraining and a rerun under another recipe never continues an old run. `stage` (glue, rc) prefixes its
    config keys."""
    with _run(cfg, cell, id=f"{cell.id}-{fingerprint}-{task}-s{seed}", name=f"{cell.name}-{task}-seed{seed}",
              job_type=f"finetune-{task}", extra={f"{stage}/task": task, f"{stage}/seed": seed,
                                                  f"{stage}/protocol": protocol, f"{stage}/fingerprint": fingerprint}) \
            as run:
        yield run


def check(cfg: DictConfig) -> None:
    """Before any work: logger.mode=online needs credentials and a reachable server. Without them the cell fails
    here with a clear message, or, with logger.offline_fallback=true, logs offline (and says so)."""
    if cfg.logger.name == "none" or cfg.logger.mode != "online":
        return
    import wandb

    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    problem = None
    if not wandb.api.api_key:
        problem = "needs W&B credentials (WANDB_API_KEY or `wandb login`)"
    else:
        try:
            socket.create_connection((host.hostname, host.port or 443), timeout=5).close()
        except OSError as err:
            problem = f"cannot reach {host.hostname} ({type(err).__name__})"
    if problem is None:
        return
    if cfg.logger.offline_fallback:
        log.warning("logger.mode=online %s: logging offline instead (logger.offline_fallback=true); "
                    "`wandb sync` uploads the runs later", problem)
        cfg.logger.mode = "offline"
        return
    raise ConfigError(f"logger.mode=online {problem}; logger.mode=offline logs locally and syncs later with `wandb "
                      f"sync`, logger.offline_fallback=true falls back to it")


@contextmanager
def _run(cfg: DictConfig, cell: Cell, extra: dict | None = None, **init):
    if cfg.logger.name == "none" or rank_zero_only.rank != 0:
        yield None
        return
    import wandb

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
        _quietly(run.finish, exit_code=1)
        raise
    _quietly(run.finish)


def update_summary(run, values: dict) -> None:
    """The run's summary, when there is a run; results.json is written first and W&B is its mirror, so a W&B
    failure is a warning, never a lost result."""
    if run is not None:
        _quietly(run.summary.update, values)


def _quietly(call, *args, **kwargs) -> None:
    try:
        call(*args, **kwargs)
    except Exception as err:  # W&B is the mirror; results.json holds the numbers
        log.warning("W&B: %s failed (%s: %s); results.json is unaffected", getattr(call, "__name__", call),
                    type(err).__name__, err)


class SafeWandbLogger(WandbLogger):
    """Lightning's W&B logger, holding metrics until they are safe: until the checkpoint that covers them is written
    (CheckpointThenLog sends them), or the run ends. The checkpoint keeps every record; a cell resumed from it sends
    the ones W&B did not keep before the kill, and then only later steps: every step once, as in an uninterrupted
    run. A killed fine-tuning run sent nothing. W&B failures are warnings, not a lost cell."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.records: list[tuple[dict, int | None]] = []  # everything logged, in order
        self._sent = 0

    @rank_zero_only
    def log_metrics(self, metrics, step=None):
        self.records.append(({k: float(v) for k, v in metrics.items()}, step))

    @rank_zero_only
    def flush(self) -> None:
        for metrics, step in self.records[self._sent:]:
            _quietly(super().log_metrics, metrics, step)
        self._sent = len(self.records)

    @rank_zero_only
    def resume(self, records: list) -> None:
        """The records a checkpoint holds: those W&B lacks are sent now (a kill can cut W&B short of its last send)."""
        kept = _kept(self.experiment)
        self.records, self._sent = [(dict(m), s) for m, s in records], 0
        for metrics, step in self.records:
            if (step, frozenset(metrics)) not in kept:
                _quietly(super().log_metrics, metrics, step)
        self._sent = len(self.records)

    def log_hyperparams(self, params):
        _quietly(super().log_hyperparams, params)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.flush()
        _quietly(super().finalize, status)


def _kept(run) -> set:
    """(step, metric names) of every record W&B kept of this run's earlier parts: the offline run folders of the same
    id beside this one, or the server's history online."""
    try:
        if run.settings.mode == "offline":
            from ablations.report.runs import _offline_history

            here = Path(run.dir).parent
            rows = [h for part in here.parent.glob(f"offline-run-*-{run.id}") if part != here
                    for h in _offline_history(part)]
        else:
            import wandb

            rows = list(wandb.Api(timeout=30).run(run.path).scan_history())
    except Exception as err:  # unreadable: nothing is sent twice, at worst a step before the kill is missing
        log.warning("W&B: could not read what the run kept before it was resumed (%s); no record is sent again", err)
        return _Everything()
    return {(int(h["trainer/global_step"]), frozenset(k for k in h if not k.startswith(("_", "trainer/"))))
            for h in rows if "trainer/global_step" in h}


class _Everything(set):
    def __contains__(self, item):
        return True


class CheckpointThenLog(ModelCheckpoint):
    """Checkpoints as Lightning does, with every W&B record so far inside; then sends the records it now covers."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        if isinstance(trainer.logger, SafeWandbLogger):
            checkpoint["wandb_records"] = list(trainer.logger.records)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        if isinstance(trainer.logger, SafeWandbLogger):
            trainer.logger.resume(checkpoint.get("wandb_records", []))

    def _save_checkpoint(self, trainer, filepath):
        super()._save_checkpoint(trainer, filepath)
        if isinstance(trainer.logger, SafeWandbLogger):
            trainer.logger.flush()


def run_path(run) -> dict | None:
    if run is None:
        return None
    return {"id": run.id, "path": run.path if run.settings.mode == "online" else None, "dir": run.dir,
            "mode": run.settings.mode}
