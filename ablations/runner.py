"""Runs one grid cell: check the config, prepare (or reuse) its data, pretrain, export a Hugging Face model,
fine-tune it on GLUE and reading comprehension, and record everything in results.json and the cell's W&B run.
`stage` runs either half alone. One process runs a cell at a time: a second grid on the same paths.root waits for
it, then skips it."""

import logging
import os
import shutil
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from ablations.budget import budget
from ablations.cell import Cell, provenance, read_results, write_results
from ablations.config import ConfigError, FineTuningFailed, check
from ablations.data.pipeline import prepare
from ablations.glue.checkpoint import from_pretrained, random_init
from ablations.glue.stage import GLUE
from ablations.pretraining import pretrain, reopened
from ablations.rc.stage import RC
from ablations import tracking
from ablations.tracking import run_path, update_summary, wandb_run

log = logging.getLogger(__name__)


STAGES = ("all", "pretrain", "finetune")
FINETUNING = (GLUE, RC)


def run_cell(cfg: DictConfig) -> dict:
    if cfg.stage not in STAGES:
        raise ConfigError(f"stage={cfg.stage}: allowed {', '.join(STAGES)}")
    root = Path(to_absolute_path(cfg.paths.root))
    tracking.check(cfg)  # W&B credentials and network, before any work
    torch.set_num_threads(_threads(cfg))
    tasks = _load_tasks(cfg) if cfg.stage != "pretrain" else None  # bad task input stops a cell before it trains
    if cfg.model.pretrained is not None:
        return _finetune_checkpoint(cfg, root, tasks)
    check(cfg)
    _check_ranks(cfg)
    cell = Cell.of(cfg, root)
    _link_hydra_dir(cell)
    with cell.lock():
        return _run(cfg, root, cell, tasks)


def _load_tasks(cfg) -> dict[str, dict]:
    """{stage key: {task: splits}} for every fine-tuning stage."""
    return {stage.key: stage.load_tasks(cfg[stage.key]) for stage in FINETUNING}


def _run(cfg, root: Path, cell: Cell, tasks: dict | None) -> dict:
    on_disk = read_results(cell.results_path)  # first: a results.json it refuses keeps its checkpoints too
    refit = cfg.force and cfg.stage == "finetune"  # force reruns what the stage selects: here the fine-tuning alone
    if cfg.force and not refit and os.environ.get("SLURM_RESTART_COUNT", "0") == "0":  # once a submission
        shutil.rmtree(cell.dir / "checkpoints", ignore_errors=True)
    done_before = {} if cfg.force else on_disk
    if done_before.get("status") == "diverged":  # its last checkpoint holds the non-finite weights: not resumable
        log.info("cell %s (%s) diverged (%s); force=true reruns it", cell.id, cell.name, cell.results_path)
        return {**done_before, "status": "skipped"}
    pretrained = done_before.get("status") == "ok"
    if pretrained and (cfg.stage == "pretrain" or not _pending(cfg, done_before, tasks, cfg.seq_len)):
        log.info("cell %s (%s) already finished (%s); force=true reruns it", cell.id, cell.name, cell.results_path)
        return {**done_before, "status": "skipped"}
    if cfg.stage == "finetune" or pretrained:
        results = _finished(cell, on_disk)
        if refit:
            results = _without_selected(cfg, results, tasks)
        with wandb_run(cfg, cell) as run:
            reopened(run, cell, results)
            # the model under this root, not the folder results.json names: the outputs may have moved
            return _finetune(cfg, cell, results, from_pretrained(str(cell.dir / "model"), _reuse_pooler(cfg)), tasks,
                             run)
    data = prepare(cfg, root)
    spend = budget(cfg, data)
    log.info("cell %s (%s): %s, micro-batches of %d", cell.id, cell.name, spend.describe(), spend.plan.micro_batch)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    with wandb_run(cfg, cell) as run:
        results = pretrain(cfg, spend, cell, data, run)
        if cfg.stage == "all" and results["status"] == "ok":
            results = _finetune(cfg, cell, results, from_pretrained(results["model_dir"], _reuse_pooler(cfg)), tasks,
                                run)
    return results


def _check_ranks(cfg) -> None:
    """Fine-tuning is single-device, and a DDP cell must be its own process tree."""
    ranks = cfg.trainer.devices * cfg.trainer.num_nodes
    if ranks == 1:
        return
    if cfg.stage != "pretrain":
        raise ConfigError(f"stage={cfg.stage} with trainer.devices x trainer.num_nodes = {ranks}: fine-tuning runs on "
                          f"one device while the others would idle; run stage=pretrain on the {ranks} devices, then "
                          f"stage=finetune trainer=gpu (one device a cell)")
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN and \
            "slurm" not in HydraConfig.get().launcher._target_.lower():
        raise ConfigError(f"trainer.devices x trainer.num_nodes = {ranks} in a -m grid on this machine: every DDP rank "
                          f"would run the whole grid again; run one cell per command, or hydra/launcher=slurm")


def _threads(cfg) -> int:
    """trainer.threads, else the cores this process may use (a SLURM task's allocation, not the node's) shared by
    the cells a grid runs at once."""
    if cfg.trainer.threads:
        return cfg.trainer.threads
    local = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN and \
        "slurm" not in HydraConfig.get().launcher._target_.lower()
    cores = int(os.environ.get("SLURM_CPUS_PER_TASK") or 0) or len(os.sched_getaffinity(0))
    return max(1, cores // (cfg.trainer.parallel_cells if local else 1))


def _finished(cell: Cell, results: dict) -> dict:
    """The results of a pretrained cell, for stage=finetune."""
    if results.get("status") != "ok" or not results.get("model_dir"):
        raise ConfigError(f"stage=finetune: cell {cell.name} ({cell.id}) has no finished pretraining at "
                          f"{cell.results_path}; run stage=pretrain (or stage=all) with the same settings first")
    return results


def _finetune_checkpoint(cfg, root: Path, tasks: dict) -> dict:
    """stage=finetune with model.pretrained: a cell holding only the fine-tuning results of a given checkpoint."""
    if cfg.stage != "finetune":
        raise ConfigError(f"model.pretrained={cfg.model.pretrained} needs stage=finetune (it skips pretraining)")
    if cfg.model.pretrained == "random":
        pl.seed_everything(cfg.seed, workers=True, verbose=False)  # the same untrained weights every time
        checkpoint = random_init(OmegaConf.to_container(cfg.model), prepare(cfg, root).tokenizer, _reuse_pooler(cfg),
                                 cfg.seq_len)
    else:
        checkpoint = from_pretrained(cfg.model.pretrained, _reuse_pooler(cfg))
    cell = Cell.for_checkpoint(cfg, root)
    _link_hydra_dir(cell)
    with cell.lock():
        results = {"cell_id": cell.id, "name": cell.name, "factors": cell.factors, "status": "ok", "metrics": {},
                   "config": OmegaConf.to_container(cfg, resolve=True), **provenance(),
                   **{s.key: read_results(cell.results_path).get(s.key) or {} for s in FINETUNING}}
        if not _pending(cfg, results, tasks, checkpoint.max_length, checkpoint.identity):
            log.info("%s already fine-tuned under these recipes (%s)", cell.name, cell.results_path)
            return {**results, "status": "skipped"}
        with wandb_run(cfg, cell) as run:
            return _finetune(cfg, cell, {**results, "wandb": run_path(run)}, checkpoint, tasks, run)


def _pending(cfg, results: dict, tasks: dict, max_length: int, identity: str | None = None) -> set[str]:
    """The stage:task pairs not yet finished under their stage's fingerprint for these weights (identity None: a
    cell's own)."""
    return {f"{s.key}:{name}" for s in FINETUNING
            for name in set(tasks[s.key]) - s.done(_entry(results, s, cfg, identity), cfg[s.key], tasks[s.key],
                                                    max_length)}


def _without_selected(cfg, results: dict, tasks: dict) -> dict:
    """results without the tasks this run selects under its fingerprints (force=true stage=finetune refits them);
    every other task and fingerprint is kept."""
    out = dict(results)
    for s in FINETUNING:
        fp = s.fingerprint(cfg[s.key])
        if entry := (results.get(s.key) or {}).get(fp):
            kept = {name: task for name, task in entry["tasks"].items() if name not in tasks[s.key]}
            out[s.key] = {**results[s.key], fp: {**entry, "tasks": kept}}
    return out


def _entry(results: dict, stage, cfg, identity: str | None) -> dict | None:
    entry = (results.get(stage.key) or {}).get(stage.fingerprint(cfg[stage.key]))
    return entry if entry and (identity is None or entry.get("checkpoint_identity") == identity) else None


def _finetune(cfg, cell: Cell, results: dict, checkpoint, tasks: dict, run) -> dict:
    """Adds each fine-tuning stage's numbers, under the fingerprint of their recipe, to the cell's results.json
    (written after each stage) and its W&B run; numbers of other fingerprints stay beside them, never mixed."""
    for stage in FINETUNING:
        if not tasks[stage.key]:
            continue
        fp = stage.fingerprint(cfg[stage.key])
        entry = stage.run(cfg, cell, checkpoint, tasks[stage.key], _entry(results, stage, cfg, checkpoint.identity))
        results = {**results, stage.key: {**(results.get(stage.key) or {}),
                                          fp: {**entry, "checkpoint_identity": checkpoint.identity}}}
        write_results(cell.results_path, results)
        update_summary(run, {**entry["metrics"], f"{stage.key}/status": entry["status"],
                             f"{stage.key}/fingerprint": fp})
    return results


def check_finished(cfg, results: dict) -> None:
    """Raises FineTuningFailed naming the tasks (of the fingerprints this run asked for) that raised, so a single
    run exits 1 and a grid names the cell; a diverged task is a result, not a failure."""
    failed = [f"{s.key}/{name} ({task.get('error')})" for s in FINETUNING
              for name, task in (_entry(results, s, cfg, None) or {}).get("tasks", {}).items()
              if task["status"] == "failed"]
    if failed:
        raise FineTuningFailed(f"fine-tuning failed: {'; '.join(failed)}; rerun the cell to retry them")


def _reuse_pooler(cfg) -> bool:
    return bool(cfg.glue.protocol.reuse_pooler)


def _link_hydra_dir(cell: Cell) -> None:
    """Hydra's run folder keeps the logs; a `cell` link in it points to the results (rank 0 makes it)."""
    cell.dir.mkdir(parents=True, exist_ok=True)
    if HydraConfig.initialized() and rank_zero_only.rank == 0:
        link = Path(HydraConfig.get().runtime.output_dir) / "cell"
        link.unlink(missing_ok=True)  # a requeued job's own, or a reused folder's link to another cell
        link.symlink_to(cell.dir, target_is_directory=True)
