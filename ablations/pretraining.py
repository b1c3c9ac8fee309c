"""Pretraining one cell: the Lightning run over its global batches, the held-out evaluation, the exported
Hugging Face model, and the cell's results.json and W&B summary. A killed cell resumes from its newest whole
checkpoint; a checkpoint of another cell is refused rather than loaded."""

import json
import logging
import sys
import time
import warnings
import zipfile
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from torch.utils.data import DataLoader

from ablations import compute
from ablations.budget import Budget
from ablations.cell import Cell, provenance, write_atomic, write_results
from ablations.config import ConfigError
from ablations.data.masking import collate, training_loader
from ablations.data.pipeline import Prepared
from ablations.progress import progress_callbacks
from ablations.tracking import CheckpointThenLog, SafeWandbLogger, run_path, update_summary
from lightning_modules.callbacks import EvaluationClock, MaskFingerprint, ResumeAtStep
from lightning_modules.pretrain import PretrainModule

log = logging.getLogger(__name__)

WANDB_RECORDS = "wandb_records.json"  # every W&B row pretraining logged, beside results.json


def pretrain(cfg, spend: Budget, cell: Cell, data: Prepared, run) -> dict:
    started = time.time()
    plan = spend.plan
    base = {"cell_id": cell.id, "arm_id": cell.arm_id, "name": cell.name, "factors": cell.factors,
            "config": OmegaConf.to_container(cfg, resolve=True), "plan": vars(plan), "data": data.stats,
            "warnings": spend.warnings, "wandb": run_path(run), **provenance()}
    try:
        module, trainer, last, fingerprints, timing = _train(cfg, spend, data, cell, run)
        final = trainer.validate(module, _eval_loader(cfg, data), verbose=False)[0]
        status = "diverged" if module.diverged else "ok"
        tokens_seen, sequences_seen = module.global_tokens_seen(), int(module.global_sum(module.sequences_seen))
        trained = int(module.global_sum(module.tokens_seen - module.tokens_at_start))  # by this run, not before a resume
        flops = _compute(cfg, data, tokens_seen, trained, timing["train_seconds"], trainer.world_size)
        if status == "ok" and trainer.is_global_zero:
            module.model.config.pretraining_seq_len = cfg.seq_len  # fine-tuning never feeds longer inputs
            module.model.save_pretrained(cell.dir / "model")
            data.tokenizer.save_pretrained(cell.dir / "model")
    except Exception as err:
        if rank_zero_only.rank == 0:
            write_results(cell.results_path, {**base, "status": "failed", "error": f"{type(err).__name__}: {err}",
                                              "timing": {"seconds": time.time() - started}})
        raise
    seconds = time.time() - started
    metrics = {**last, **final, "train/tokens_per_sec": trained / timing["train_seconds"] if trained else None,
               "data/unigram_entropy": data.stats["unigram_entropy"]}
    epochs = spend.batches.epochs(trainer.global_step)
    results = {**base, "status": status, "metrics": metrics, "tokens_seen": tokens_seen,
               "sequences_seen": sequences_seen, "steps": trainer.global_step, "epochs": epochs,
               "mask_fingerprints": fingerprints, "curve": module.curve, "compute": flops,
               "timing": {"seconds": seconds, **timing},
               "model_dir": str(cell.dir / "model") if status == "ok" else None}
    if trainer.is_global_zero:
        if isinstance(trainer.logger, SafeWandbLogger):
            write_atomic(cell.dir / WANDB_RECORDS, json.dumps(trainer.logger.records))
        write_results(cell.results_path, results)  # first: a W&B failure never costs the result
    update_summary(run, _summary(results))
    log.info("cell %s %s: %s, %d real tokens in %d steps, held-out perplexity %.2f, results %s, W&B %s", cell.id,
             cell.name, status, tokens_seen, trainer.global_step, final["val/perplexity"], cell.results_path,
             run_path(run)["dir"] if run is not None else "off")
    return results


def reopened(run, cell: Cell, results: dict) -> None:
    """A cell whose pretraining finished reopens its W&B run to fine-tune. W&B writes an offline run's rows late
    (a step's row once a later step comes, and then in buffered blocks), so a kill while the run was still open
    lost rows and summary that results.json holds; this sends again what W&B lacks, every row once."""
    if run is None:
        return
    if (records := cell.dir / WANDB_RECORDS).exists():
        SafeWandbLogger(experiment=run).resume(json.loads(records.read_text()))
    update_summary(run, _summary(results))


def _summary(results: dict) -> dict:
    """The cell run's W&B summary of pretraining, built from results.json alone (so a reopened run can rebuild it)."""
    counts = ("status", "tokens_seen", "sequences_seen", "steps", "epochs")
    return {**results["metrics"], **{k: results[k] for k in counts}, "data/train_tokens": results["data"]["train_tokens"],
            "data/tokens_per_sequence": results["data"]["tokens_per_sequence"],
            **{f"compute/{k}": v for k, v in results["compute"].items()},
            **{f"plan/{k}": v for k, v in results["plan"].items()}}


def _compute(cfg, data: Prepared, tokens_seen: int, trained: int, train_seconds: float, ranks: int) -> dict:
    """Model FLOPs (ablations/compute.py) of the cell, and of this run's training against the devices' peak (not
    measured, None, where this run trained no step: resumed at its end)."""
    per_token = compute.flops_per_token(cfg.model, len(data.tokenizer), data.stats["tokens_per_sequence"])
    peak, peak_source = compute.device_peak(cfg.trainer.accelerator, cfg.trainer.precision)
    achieved = per_token * trained / train_seconds if trained else None
    return {"flops_per_token": per_token, "total_flops": per_token * tokens_seen, "flops_per_sec": achieved,
            "peak_flops": peak * ranks if peak else None, "peak": f"{ranks} x {peak_source}",
            "mfu": achieved / (peak * ranks) if peak and achieved else None}


def _train(cfg, spend: Budget, data: Prepared, cell: Cell, run):
    t, plan = cfg.trainer, spend.plan
    module = PretrainModule(
        model=OmegaConf.to_container(cfg.model, resolve=True), vocab_size=len(data.tokenizer),
        pad_id=data.tokenizer.pad_token_id, nsp=cfg.objective.nsp, steps=plan.steps, warmup_steps=plan.warmup_steps,
        sequences=plan.sequences, clip_grad_norm=cfg.schedule.clip_grad_norm, seed=cfg.seed, cell_id=cell.id,
        optimizer={"lr": plan.peak_lr, "weight_decay": cfg.schedule.weight_decay,
                   "betas": list(cfg.schedule.adam_betas), "eps": cfg.schedule.adam_eps})
    fingerprint, evaluating = MaskFingerprint(spend.batches), EvaluationClock()
    every = ({"train_time_interval": timedelta(minutes=t.checkpoint_every_minutes)} if t.checkpoint_every_minutes
             else {"every_n_train_steps": t.checkpoint_every_steps})
    callbacks = [fingerprint, evaluating, ResumeAtStep(spend.batches),
                 CheckpointThenLog(cell.dir / "checkpoints", save_last=True, **every),
                 *progress_callbacks(t.log_every_steps)]
    trainer = pl.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=t.precision, max_steps=plan.steps,
        logger=SafeWandbLogger(experiment=run) if run is not None else False, callbacks=callbacks,
        enable_progress_bar=sys.stderr.isatty(), enable_model_summary=False, log_every_n_steps=t.log_every_steps,
        val_check_interval=t.eval_every_steps, num_sanity_val_steps=0, use_distributed_sampler=False,
        default_root_dir=cell.dir)
    if t.compile:
        module.model.bert.compile(dynamic=True)  # in place: the state dict, checkpoints and export keep their names;
        # the encoder, since the loss calls it (and the head) directly, never the model's own forward
    loader = training_loader(data.train, spend.batches, data.tokenizer.pad_token_id, plan.micro_batch, t.num_workers,
                             pin_memory=t.accelerator == "gpu")
    with warnings.catch_warnings():
        # Lightning warns that a mid-epoch resume of a plain loader is unreliable (ResumeAtStep makes it exact), and
        # that validation_step has no loader when eval_every_steps is off (the held-out loss is taken after fit).
        warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch")
        warnings.filterwarnings("ignore", message="You defined a `validation_step` but have no `val_dataloader`")
        started = time.perf_counter()
        trainer.fit(module, loader, _eval_loader(cfg, data) if t.eval_every_steps else None,
                    ckpt_path=_resume_from(cell.dir / "checkpoints", cell.id))
        seconds = time.perf_counter() - started
    timing = {"train_seconds": seconds - evaluating.seconds, "eval_seconds": evaluating.seconds}
    last = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
    return module, trainer, last, fingerprint.fingerprints, timing


def _resume_from(folder: Path, cell_id: str) -> Path | None:
    """The newest whole checkpoint of a cell killed mid-training. A file cut short by the kill fails its zip check
    and is skipped (and deleted, by rank 0), never loaded as if whole; a checkpoint of another cell is refused."""
    for path in sorted(folder.glob("*.ckpt"), key=lambda p: (p.name != "last.ckpt", -p.stat().st_mtime)):
        try:
            with zipfile.ZipFile(path) as archive:
                whole = archive.testzip() is None
        except (zipfile.BadZipFile, OSError):
            whole = False
        if not whole:
            log.warning("checkpoint %s is cut short (killed while writing?): skipped%s", path,
                        " and deleted" if rank_zero_only.rank == 0 else "")
            if rank_zero_only.rank == 0:
                path.unlink(missing_ok=True)
            continue
        owner = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["hyper_parameters"].get("cell_id")
        if owner != cell_id:
            raise ConfigError(f"{path}: a checkpoint of cell {owner}, not of this cell {cell_id}; move it away")
        log.info("resuming from %s", path)
        return path
    return None


def _eval_loader(cfg, data: Prepared) -> DataLoader:
    """With a generator of its own: a DataLoader seeds each iterator from the global stream otherwise, the one
    dropout draws from, so each held-out evaluation would shift the training after it."""
    return DataLoader(data.eval, batch_size=cfg.trainer.micro_batch_size, generator=torch.Generator(),
                      collate_fn=partial(collate, pad_id=data.tokenizer.pad_token_id))
