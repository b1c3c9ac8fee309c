"""Runs one grid cell: check the config, prepare (or reuse) its data, pretrain, evaluate on the fixed
held-out mask, export a Hugging Face model, fine-tune it on GLUE, and record everything in results.json
and the cell's W&B run. `stage` runs either half alone."""

import json
import logging
import os
import shutil
import sys
import time
import warnings
import zipfile
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import WandbLogger
from torch.utils.data import DataLoader

from ablations import compute
from ablations.cell import Cell, provenance, write_results
from ablations.budget import Budget, budget
from ablations.config import ConfigError, check
from ablations.data.masking import collate, collate_step
from ablations.data.pipeline import Prepared, prepare
from ablations.glue.checkpoint import from_pretrained, random_init
from ablations.glue.stage import done, fingerprint, load_tasks, run_glue
from ablations.progress import progress_callbacks
from ablations.tracking import run_path, wandb_run
from lightning_modules.callbacks import MaskFingerprint, ResumeAtStep
from lightning_modules.pretrain import PretrainModule

log = logging.getLogger(__name__)


STAGES = ("all", "pretrain", "finetune")


def run_cell(cfg: DictConfig) -> dict:
    if cfg.stage not in STAGES:
        raise ConfigError(f"stage={cfg.stage}: allowed {', '.join(STAGES)}")
    root = Path(to_absolute_path(cfg.paths.root))
    torch.set_num_threads(_threads(cfg))
    glue = load_tasks(cfg.glue) if cfg.stage != "pretrain" else None  # bad GLUE input stops a cell before it trains
    if cfg.model.pretrained is not None:
        return _finetune_checkpoint(cfg, root, glue)
    check(cfg)
    ranks = cfg.trainer.devices * cfg.trainer.num_nodes
    if cfg.stage == "all" and ranks > 1:
        raise ConfigError(f"stage=all with trainer.devices x trainer.num_nodes = {ranks}: fine-tuning runs on one device "
                          f"while the others would idle; run stage=pretrain on the {ranks} devices, then "
                          f"stage=finetune trainer=gpu (one device a cell)")
    cell = Cell.of(cfg, root)
    if cfg.force:
        shutil.rmtree(cell.dir / "checkpoints", ignore_errors=True)
    on_disk = _read(cell.results_path)
    done = {} if cfg.force else on_disk
    pretrained = done.get("status") == "ok"
    if pretrained and (cfg.stage == "pretrain" or not _glue_pending(cfg, done, glue, cfg.seq_len)):
        log.info("cell %s (%s) already finished (%s); force=true reruns it", cell.id, cell.name, cell.results_path)
        _link_hydra_dir(cell)
        return {**done, "status": "skipped"}
    if cfg.stage == "finetune" or pretrained:
        results = _finished(cell, on_disk)
        _link_hydra_dir(cell)
        with wandb_run(cfg, cell) as run:
            return _glue(cfg, cell, results, from_pretrained(results["model_dir"], _reuse_pooler(cfg)), glue, run)
    data = prepare(cfg, root)
    spend = budget(cfg, data)
    log.info("cell %s (%s): %s, micro-batches of %d", cell.id, cell.name, spend.describe(), spend.plan.micro_batch)
    _link_hydra_dir(cell)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    with wandb_run(cfg, cell) as run:
        results = _pretrain(cfg, spend, cell, data, run)
        if cfg.stage == "all" and results["status"] == "ok":
            results = _glue(cfg, cell, results, from_pretrained(results["model_dir"], _reuse_pooler(cfg)), glue, run)
    return results


def _pretrain(cfg, spend: Budget, cell: Cell, data: Prepared, run) -> dict:
    started = time.time()
    plan = spend.plan
    base = {"cell_id": cell.id, "arm_id": cell.arm_id, "name": cell.name, "factors": cell.factors,
            "config": OmegaConf.to_container(cfg, resolve=True), "plan": vars(plan), "data": data.stats,
            "warnings": spend.warnings, "wandb": run_path(run), **provenance()}
    try:
        module, trainer, last, fingerprints, fit_seconds = _train(cfg, spend, data, cell, run)
        final = trainer.validate(module, _eval_loader(cfg, data), verbose=False)[0]
        status = "diverged" if module.diverged else "ok"
        tokens_seen, sequences_seen = module.global_tokens_seen(), int(module.global_sum(module.sequences_seen))
        trained = int(module.global_sum(module.tokens_seen - module.tokens_at_start))  # by this run, not before a resume
        flops = _compute(cfg, data, tokens_seen, trained, fit_seconds, trainer.world_size)
        if status == "ok" and trainer.is_global_zero:
            module.model.config.pretraining_seq_len = cfg.seq_len  # fine-tuning never feeds longer inputs
            module.model.save_pretrained(cell.dir / "model")
            data.tokenizer.save_pretrained(cell.dir / "model")
    except Exception as err:
        write_results(cell.results_path, {**base, "status": "failed", "error": f"{type(err).__name__}: {err}",
                                          "timing": {"seconds": time.time() - started}})
        raise
    seconds = time.time() - started
    metrics = {**last, **final, "train/tokens_per_sec": trained / fit_seconds,
               "data/unigram_entropy": data.stats["unigram_entropy"]}
    epochs = spend.batches.epochs(trainer.global_step)
    results = {**base, "status": status, "metrics": metrics, "tokens_seen": tokens_seen,
               "sequences_seen": sequences_seen, "steps": trainer.global_step, "epochs": epochs,
               "mask_fingerprints": fingerprints, "curve": module.curve, "compute": flops,
               "timing": {"seconds": seconds, "fit_seconds": fit_seconds},
               "model_dir": str(cell.dir / "model") if status == "ok" else None}
    if run is not None:
        run.summary.update({**metrics, "status": status, "tokens_seen": tokens_seen, "sequences_seen": sequences_seen,
                            "steps": trainer.global_step, "epochs": epochs,
                            "data/train_tokens": data.stats["train_tokens"],
                            "data/tokens_per_sequence": data.stats["tokens_per_sequence"],
                            **{f"compute/{k}": v for k, v in flops.items()},
                            **{f"plan/{k}": v for k, v in vars(plan).items()}})
    if trainer.is_global_zero:
        write_results(cell.results_path, results)
    log.info("cell %s %s: %s, %d real tokens in %d steps, held-out perplexity %.2f, results %s, W&B %s", cell.id,
             cell.name, status, tokens_seen, trainer.global_step, final["val/perplexity"], cell.results_path,
             run_path(run)["dir"] if run is not None else "off")
    return results


def _threads(cfg) -> int:
    """trainer.threads, else this machine's cores shared by the cells a grid runs at once."""
    if cfg.trainer.threads:
        return cfg.trainer.threads
    grid = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    return max(1, (os.cpu_count() or 1) // (cfg.trainer.parallel_cells if grid else 1))


def _compute(cfg, data: Prepared, tokens_seen: int, trained: int, fit_seconds: float, ranks: int) -> dict:
    """Model FLOPs (ablations/compute.py) of the cell, and of this run's training against the devices' peak."""
    per_token = compute.flops_per_token(cfg.model, len(data.tokenizer), data.stats["tokens_per_sequence"])
    peak, peak_source = compute.device_peak(cfg.trainer.accelerator, cfg.trainer.precision)
    achieved = per_token * trained / fit_seconds
    return {"flops_per_token": per_token, "total_flops": per_token * tokens_seen, "flops_per_sec": achieved,
            "peak_flops": peak * ranks if peak else None, "peak": f"{ranks} x {peak_source}",
            "mfu": achieved / (peak * ranks) if peak else None}


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _finished(cell: Cell, results: dict) -> dict:
    """The results of a pretrained cell, for stage=finetune."""
    if results.get("status") != "ok" or not results.get("model_dir"):
        raise ConfigError(f"stage=finetune: cell {cell.name} ({cell.id}) has no finished pretraining at "
                          f"{cell.results_path}; run stage=pretrain (or stage=all) with the same settings first")
    return results


def _finetune_checkpoint(cfg, root: Path, glue: dict) -> dict:
    """stage=finetune with model.pretrained: a cell holding only GLUE results of a given checkpoint."""
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
    results = {"cell_id": cell.id, "name": cell.name, "factors": cell.factors, "status": "ok", "metrics": {},
               "config": OmegaConf.to_container(cfg, resolve=True), **provenance(),
               "glue": _read(cell.results_path).get("glue") or {}}
    if not _glue_pending(cfg, results, glue, checkpoint.max_length, checkpoint.identity):
        log.info("%s already fine-tuned under GLUE fingerprint %s (%s)", cell.name, fingerprint(cfg.glue),
                 cell.results_path)
        return {**results, "status": "skipped"}
    with wandb_run(cfg, cell) as run:
        return _glue(cfg, cell, {**results, "wandb": run_path(run)}, checkpoint, glue, run)


def _glue_pending(cfg, results: dict, tasks: dict, max_length: int, identity: str | None = None) -> set[str]:
    """The tasks not yet finished under this GLUE fingerprint for these weights (identity None: a cell's own)."""
    entry = _entry(results, fingerprint(cfg.glue), identity)
    return set(tasks) - done(entry, cfg.glue, tasks, max_length)


def _entry(results: dict, fp: str, identity: str | None) -> dict | None:
    entry = (results.get("glue") or {}).get(fp)
    return entry if entry and (identity is None or entry.get("checkpoint_identity") == identity) else None


def _glue(cfg, cell: Cell, results: dict, checkpoint, tasks: dict, run) -> dict:
    """Adds the GLUE stage's numbers, under the fingerprint of their recipe, to the cell's results.json and its
    W&B run; numbers of other fingerprints stay beside them, never mixed."""
    fp = fingerprint(cfg.glue)
    entry = run_glue(cfg, cell, checkpoint, tasks, _entry(results, fp, checkpoint.identity))
    results = {**results, "glue": {**(results.get("glue") or {}), fp: {**entry, "checkpoint_identity":
                                                                       checkpoint.identity}}}
    write_results(cell.results_path, results)
    if run is not None:
        run.summary.update({**entry["metrics"], "glue/status": entry["status"], "glue/fingerprint": fp})
    return results


def _reuse_pooler(cfg) -> bool:
    return bool(cfg.glue.protocol.reuse_pooler)


def _train(cfg, spend: Budget, data: Prepared, cell: Cell, run):
    t, plan = cfg.trainer, spend.plan
    module = PretrainModule(
        model=OmegaConf.to_container(cfg.model, resolve=True), vocab_size=len(data.tokenizer),
        pad_id=data.tokenizer.pad_token_id, nsp=cfg.objective.nsp, steps=plan.steps, warmup_steps=plan.warmup_steps,
        sequences=plan.sequences, clip_grad_norm=cfg.schedule.clip_grad_norm, seed=cfg.seed,
        optimizer={"lr": plan.peak_lr, "weight_decay": cfg.schedule.weight_decay,
                   "betas": list(cfg.schedule.adam_betas), "eps": cfg.schedule.adam_eps})
    fingerprint = MaskFingerprint()
    every = ({"train_time_interval": timedelta(minutes=t.checkpoint_every_minutes)} if t.checkpoint_every_minutes
             else {"every_n_train_steps": t.checkpoint_every_steps})
    callbacks = [fingerprint, ResumeAtStep(spend.batches), ModelCheckpoint(cell.dir / "checkpoints", save_last=True, **every),
                 *progress_callbacks(t.log_every_steps)]
    trainer = pl.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=t.precision, max_steps=plan.steps,
        logger=WandbLogger(experiment=run) if run is not None else False, callbacks=callbacks,
        enable_progress_bar=sys.stderr.isatty(), enable_model_summary=False, log_every_n_steps=t.log_every_steps,
        val_check_interval=t.eval_every_steps, num_sanity_val_steps=0, use_distributed_sampler=False,
        default_root_dir=cell.dir)
    if t.compile:
        module.model.compile(dynamic=True)  # in place: the state dict, checkpoints and export keep their names
    loader = DataLoader(data.train, batch_sampler=spend.batches, num_workers=t.num_workers,
                        collate_fn=partial(collate_step, pad_id=data.tokenizer.pad_token_id, micro_batch=plan.micro_batch),
                        persistent_workers=t.num_workers > 0, pin_memory=t.accelerator == "gpu")
    with warnings.catch_warnings():
        # Lightning warns that a mid-epoch resume of a plain loader is unreliable (ResumeAtStep makes it exact), and
        # that validation_step has no loader when eval_every_steps is off (the held-out loss is taken after fit).
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
        warnings.filterwarnings("ignore", message="You defined a `validation_step` but have no `val_dataloader`")
        started = time.perf_counter()
        trainer.fit(module, loader, _eval_loader(cfg, data) if t.eval_every_steps else None,
                    ckpt_path=_resume_from(cell.dir / "checkpoints"))
        fit_seconds = time.perf_counter() - started
    last = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
    return module, trainer, last, fingerprint.fingerprints, fit_seconds


def _resume_from(folder: Path) -> Path | None:
    """The newest whole checkpoint of a cell killed mid-training. A file cut short by the kill fails its zip
    check and is deleted, never loaded as if whole."""
    for path in sorted(folder.glob("*.ckpt"), key=lambda p: (p.name != "last.ckpt", -p.stat().st_mtime)):
        try:
            with zipfile.ZipFile(path) as archive:
                whole = archive.testzip() is None
        except (zipfile.BadZipFile, OSError):
            whole = False
        if whole:
            log.info("resuming from %s", path)
            return path
        log.warning("checkpoint %s is cut short (killed while writing?): deleted", path)
        path.unlink()
    return None


def _eval_loader(cfg, data: Prepared) -> DataLoader:
    return DataLoader(data.eval, batch_size=cfg.trainer.micro_batch_size,
                      collate_fn=partial(collate, pad_id=data.tokenizer.pad_token_id))


def _link_hydra_dir(cell: Cell) -> None:
    """Hydra's run folder keeps the logs; a `cell` link in it points to the results."""
    if HydraConfig.initialized():
        link = Path(HydraConfig.get().runtime.output_dir) / "cell"
        if not link.exists():
            link.symlink_to(cell.dir, target_is_directory=True)
    cell.dir.mkdir(parents=True, exist_ok=True)
