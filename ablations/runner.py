"""Runs one grid cell: check the config, prepare (or reuse) its data, pretrain, evaluate on the fixed
held-out mask, export a Hugging Face model, fine-tune it on GLUE, and record everything in results.json
and the cell's W&B run. `stage` runs either half alone."""

import json
import logging
import math
import shutil
import sys
import time
import zipfile
from datetime import timedelta
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint, ThroughputMonitor
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only
from torch.utils.data import DataLoader

from ablations.cell import Cell, provenance, write_results
from ablations.config import ConfigError, Plan, check
from ablations.data.masking import EpochSampler, collate
from ablations.data.pipeline import Prepared, prepare
from ablations.glue.checkpoint import from_pretrained, random_init
from ablations.glue.stage import load_tasks, run_glue
from ablations.progress import progress_callbacks
from ablations.tracking import run_path, wandb_run
from lightning_modules.callbacks import MaskFingerprint, ResumeMidEpoch
from lightning_modules.pretrain import PretrainModule

log = logging.getLogger(__name__)


STAGES = ("all", "pretrain", "finetune")


def run_cell(cfg: DictConfig) -> dict:
    if cfg.stage not in STAGES:
        raise ConfigError(f"stage={cfg.stage}: allowed {', '.join(STAGES)}")
    root = Path(to_absolute_path(cfg.paths.root))
    glue = load_tasks(cfg.glue) if cfg.stage != "pretrain" else None  # bad GLUE input stops a cell before it trains
    if cfg.model.pretrained is not None:
        return _finetune_checkpoint(cfg, root, glue)
    plan = check(cfg)
    cell = Cell.of(cfg, root)
    if cfg.force:
        shutil.rmtree(cell.dir / "checkpoints", ignore_errors=True)
    on_disk = _read(cell.results_path)
    done = {} if cfg.force else on_disk
    pretrained = done.get("status") == "ok"
    if pretrained and (cfg.stage == "pretrain" or (done.get("glue") or {}).get("status") == "ok"):
        log.info("cell %s (%s) already finished (%s); force=true reruns it", cell.id, cell.name, cell.results_path)
        _link_hydra_dir(cell)
        return {**done, "status": "skipped"}
    if cfg.stage == "finetune" or pretrained:
        results = _finished(cell, on_disk)
        _link_hydra_dir(cell)
        with wandb_run(cfg, cell) as run:
            return _glue(cfg, cell, results, from_pretrained(results["model_dir"], _reuse_pooler(cfg)), glue, run)
    data = prepare(cfg, root)
    if len(data.train) < plan.global_batch:
        raise ConfigError(f"data: {len(data.train)} training sequences of seq_len {cfg.seq_len} cannot fill one "
                          f"global batch of {plan.global_batch}: use more data (data.size, data.sources) or a "
                          f"smaller schedule.batch_scale")
    epochs = math.ceil(plan.steps * plan.global_batch / len(data.train))
    warnings = _fairness_warnings(cfg, epochs)
    log.info("cell %s (%s): %d steps of %d sequences (micro-batch %d x %d accumulation), about %d epochs over "
             "%d sequences", cell.id, cell.name, plan.steps, plan.global_batch, plan.micro_batch, plan.accumulate,
             epochs, len(data.train))
    _link_hydra_dir(cell)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    with wandb_run(cfg, cell) as run:
        results = _pretrain(cfg, plan, cell, data, run, warnings)
        if cfg.stage == "all" and results["status"] == "ok" and rank_zero_only.rank == 0:
            results = _glue(cfg, cell, results, from_pretrained(results["model_dir"], _reuse_pooler(cfg)), glue, run)
    return results


def _pretrain(cfg, plan: Plan, cell: Cell, data: Prepared, run, warnings: list[str]) -> dict:
    started = time.time()
    base = {"cell_id": cell.id, "name": cell.name, "factors": cell.factors,
            "config": OmegaConf.to_container(cfg, resolve=True), "plan": vars(plan), "data": data.stats,
            "warnings": warnings, "wandb": run_path(run), **provenance()}
    try:
        module, trainer, last, fingerprints = _train(cfg, plan, data, cell, run)
        final = trainer.validate(module, _eval_loader(cfg, data), verbose=False)[0]
        status = "diverged" if module.diverged else "ok"
        if status == "ok" and trainer.is_global_zero:
            module.model.save_pretrained(cell.dir / "model")
            data.tokenizer.save_pretrained(cell.dir / "model")
    except Exception as err:
        write_results(cell.results_path, {**base, "status": "failed", "error": f"{type(err).__name__}: {err}",
                                          "timing": {"seconds": time.time() - started}})
        raise
    seconds = time.time() - started
    metrics = {**last, **final, "train/tokens_per_sec": module.tokens_seen / seconds,
               "data/unigram_entropy": data.stats["unigram_entropy"]}
    results = {**base, "status": status, "metrics": metrics, "tokens_seen": module.tokens_seen,
               "steps": trainer.global_step, "epochs": trainer.current_epoch + 1,
               "mask_fingerprints": fingerprints, "curve": module.curve, "timing": {"seconds": seconds},
               "model_dir": str(cell.dir / "model") if status == "ok" else None}
    if run is not None:
        run.summary.update({**metrics, "status": status, "tokens_seen": module.tokens_seen,
                            "steps": trainer.global_step, "epochs": trainer.current_epoch + 1,
                            "data/train_tokens": data.stats["train_tokens"],
                            **{f"plan/{k}": v for k, v in vars(plan).items()}})
    if trainer.is_global_zero:
        write_results(cell.results_path, results)
    log.info("cell %s %s: %s, held-out perplexity %.2f, results %s, W&B %s", cell.id, cell.name, status,
             final["val/perplexity"], cell.results_path, run_path(run)["dir"] if run is not None else "off")
    return results


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
        checkpoint = random_init(OmegaConf.to_container(cfg.model), prepare(cfg, root).tokenizer, _reuse_pooler(cfg))
    else:
        checkpoint = from_pretrained(cfg.model.pretrained, _reuse_pooler(cfg))
    cell = Cell.for_checkpoint(cfg, root)
    _link_hydra_dir(cell)
    results = {"cell_id": cell.id, "name": cell.name, "factors": cell.factors, "status": "ok", "metrics": {},
               "config": OmegaConf.to_container(cfg, resolve=True), **provenance()}
    with wandb_run(cfg, cell) as run:
        return _glue(cfg, cell, {**results, "wandb": run_path(run)}, checkpoint, glue, run)


def _glue(cfg, cell: Cell, results: dict, checkpoint, tasks: dict, run) -> dict:
    """Adds the GLUE stage's numbers to the cell's results.json and its W&B run; earlier glue/* numbers (of
    another protocol, say) are replaced, never mixed with these."""
    glue = run_glue(cfg, cell, checkpoint, tasks)
    kept = {k: v for k, v in results["metrics"].items() if not k.startswith("glue/")}
    results = {**results, "metrics": {**kept, **glue["metrics"]}, "glue": glue["glue"]}
    write_results(cell.results_path, results)
    if run is not None:
        run.summary.update({**glue["metrics"], "glue/status": glue["glue"]["status"]})
    return results


def _reuse_pooler(cfg) -> bool:
    return bool(cfg.glue.protocol.reuse_pooler)


def _fairness_warnings(cfg, epochs: int) -> list[str]:
    if cfg.masking.name == "static" and epochs <= cfg.masking.dupe_factor:
        message = (f"static masking with dupe_factor {cfg.masking.dupe_factor} over {epochs} epochs feeds every "
                   f"masked copy at most once: it cannot differ from dynamic masking (train more epochs than "
                   f"dupe_factor, e.g. a larger schedule.total_tokens or a smaller data.size)")
        log.warning(message)
        return [message]
    return []


def _train(cfg, plan: Plan, data: Prepared, cell: Cell, run):
    t = cfg.trainer
    module = PretrainModule(
        model=OmegaConf.to_container(cfg.model, resolve=True), vocab_size=len(data.tokenizer),
        pad_id=data.tokenizer.pad_token_id, nsp=cfg.objective.nsp, steps=plan.steps, warmup_steps=plan.warmup_steps,
        optimizer={"lr": plan.peak_lr, "weight_decay": cfg.schedule.weight_decay,
                   "betas": list(cfg.schedule.adam_betas), "eps": cfg.schedule.adam_eps})
    fingerprint = MaskFingerprint(data.train)
    sampler = EpochSampler(len(data.train), cfg.seed)
    every = ({"train_time_interval": timedelta(minutes=t.checkpoint_every_minutes)} if t.checkpoint_every_minutes
             else {"every_n_train_steps": t.checkpoint_every_steps})
    callbacks = [fingerprint, ResumeMidEpoch(sampler, plan.micro_batch),
                 ThroughputMonitor(batch_size_fn=lambda b: b["input_ids"].size(0),
                                   length_fn=lambda b: int(b["attention_mask"].sum())),
                 ModelCheckpoint(cell.dir / "checkpoints", save_last=True, **every),
                 *progress_callbacks(t.log_every_steps)]
    trainer = pl.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=t.strategy,
        precision=t.precision, max_steps=plan.steps, accumulate_grad_batches=plan.accumulate,
        logger=WandbLogger(experiment=run) if run is not None else False, callbacks=callbacks,
        enable_progress_bar=sys.stderr.isatty(), enable_model_summary=False, log_every_n_steps=t.log_every_steps,
        check_val_every_n_epoch=t.eval_every_epochs, num_sanity_val_steps=0, use_distributed_sampler=False,
        default_root_dir=cell.dir)
    loader = DataLoader(data.train, batch_size=plan.micro_batch, sampler=sampler,
                        collate_fn=partial(collate, pad_id=data.tokenizer.pad_token_id), num_workers=t.num_workers,
                        persistent_workers=t.num_workers > 0, drop_last=True)
    trainer.fit(module, loader, _eval_loader(cfg, data), ckpt_path=_resume_from(cell.dir / "checkpoints"))
    last = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("train/")}
    return module, trainer, last, fingerprint.fingerprints


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
