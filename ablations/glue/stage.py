"""The GLUE stage: fine-tune one checkpoint on every task of glue.tasks, once per seed of glue.seeds, and
score each run on the full dev set with GLUE's metrics. Every seed's score is kept; the headline is the
median. Dev predictions go to predictions/<task>-seed<k>.tsv so any number can be recomputed."""

import logging
import math
import random
import statistics
import time
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import WandbLogger
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

from ablations.cell import Cell, write_atomic
from ablations.config import ConfigError
from ablations.glue import metrics, tasks
from ablations.glue.checkpoint import Checkpoint
from ablations.tracking import finetune_run
from lightning_modules.finetune import FinetuneModule

log = logging.getLogger(__name__)

HYPERPARAMETERS = ("lr", "batch_size", "epochs", "warmup_fraction", "max_length", "weight_decay")


def protocol(glue: DictConfig) -> dict:
    """The protocol as stored with every result: its name, version, settings and per-task overrides."""
    p = OmegaConf.to_container(glue.protocol, resolve=True)
    if p["select"] not in ("last", "best"):
        raise ConfigError(f"glue.protocol.select={p['select']}: allowed last, best")
    unknown = {f"{t}.{k}" for t, o in p["tasks"].items() for k in o if k not in HYPERPARAMETERS}
    if unknown:
        raise ConfigError(f"glue.protocol.tasks: unknown {', '.join(sorted(unknown))}; allowed "
                          f"{', '.join(HYPERPARAMETERS)}")
    return {**p, "source": glue.source, "seeds": list(glue.seeds), "train_limit": glue.train_limit}


def load_tasks(glue: DictConfig) -> dict[str, dict[str, list[tasks.Example]]]:
    """Every task's data, read before any training, so bad input stops the stage before it starts."""
    if not glue.tasks or not glue.seeds:
        raise ConfigError("glue.tasks and glue.seeds must not be empty")
    protocol(glue)
    data = {name: tasks.load(glue, name) for name in glue.tasks}
    if glue.train_limit:
        for splits in data.values():
            if len(splits["train"]) > glue.train_limit:
                keep = sorted(random.Random(0).sample(range(len(splits["train"])), glue.train_limit))
                splits["train"] = [splits["train"][i] for i in keep]
    return data


def run_glue(cfg: DictConfig, cell: Cell, checkpoint: Checkpoint, data: dict) -> dict:
    """{"metrics": glue/* headline numbers, "glue": everything per task and seed}; data from load_tasks."""
    proto = protocol(cfg.glue)
    results, headline = {}, {}
    lightning_log = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)  # not the same banner for every fine-tuning run
    for name, splits in data.items():
        task = tasks.TASKS[name]
        settings = {k: proto["tasks"].get(name, {}).get(k, proto[k]) for k in HYPERPARAMETERS}
        try:
            encode = _encoder(checkpoint.tokenizer, settings["max_length"])
            encoded = {split: encode(examples) for split, examples in splits.items()}  # once for every seed
            seeds = {seed: _finetune(cfg, cell, checkpoint, task, splits, encoded, settings, proto, seed)
                     for seed in cfg.glue.seeds}
        except Exception as err:  # one task failing does not cost the others
            log.exception("GLUE %s failed", name)
            results[name] = {"status": "failed", "error": f"{type(err).__name__}: {err}", "settings": settings}
            continue
        diverged = [seed for seed, r in seeds.items() if r["status"] == "diverged"]
        if diverged:
            results[name] = {"status": "diverged", "diverged_seeds": diverged, "settings": settings, "seeds": seeds}
            continue
        summary = metrics.over_seeds([r["metrics"] for r in seeds.values()])
        results[name] = {"status": "ok", "settings": settings, "seeds": seeds, "summary": summary}
        headline.update({f"glue/{key}": s["median"] for key, s in summary.items()})
        log.info("GLUE %s: score %.4f (median of %d seeds, range %.4f-%.4f)", name, summary[f"{name}/score"]["median"],
                 len(seeds), summary[f"{name}/score"]["min"], summary[f"{name}/score"]["max"])
    lightning_log.setLevel(level)
    complete = all(r["status"] == "ok" for r in results.values())
    if complete:
        headline["glue/score"] = statistics.fmean(headline[f"glue/{n}/score"] for n in results)
    return {"metrics": headline, "glue": {"status": "ok" if complete else "incomplete", "protocol": proto,
                                          "checkpoint": checkpoint.name, "tasks": results}}


def _finetune(cfg, cell, checkpoint, task, splits, encoded, settings, proto, seed) -> dict:
    pl.seed_everything(seed, workers=True, verbose=False)
    collate = DataCollatorWithPadding(checkpoint.tokenizer)  # pads each batch to its own longest sequence
    train, dev_splits = encoded["train"], list(task.dev)
    steps = math.ceil(len(train) / settings["batch_size"]) * settings["epochs"]

    def evaluate(predictions):
        return _score(task, {s: [e.label for e in splits[s]] for s in dev_splits}, predictions)

    module = FinetuneModule(checkpoint.encoder(), task.num_labels, {**proto, **settings}, steps, dev_splits, evaluate)
    t = cfg.trainer
    with finetune_run(cfg, cell, task.name, seed, {**proto, **settings}) as run:
        trainer = pl.Trainer(accelerator=t.accelerator, devices=1, precision=t.precision,
                             max_epochs=settings["epochs"], logger=WandbLogger(experiment=run) if run else False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             num_sanity_val_steps=0, log_every_n_steps=min(t.log_every_steps, steps), deterministic=True,
                             default_root_dir=cell.dir)
        started = time.perf_counter()
        trainer.fit(module, DataLoader(train, batch_size=settings["batch_size"], shuffle=True, collate_fn=collate),
                    [DataLoader(encoded[s], batch_size=64, collate_fn=collate) for s in dev_splits])
        seconds = time.perf_counter() - started
        if module.diverged or not module.epochs:
            return {"status": "diverged"}
        epoch = (len(module.epochs) - 1 if proto["select"] == "last" else
                 max(range(len(module.epochs)), key=lambda e: module.epochs[e][1][f"{task.name}/score"]))
        predictions, scores = module.epochs[epoch]
        if run is not None:
            run.summary.update({**{f"glue/{k}": v for k, v in scores.items()}, "glue/epoch": epoch + 1})
    for split in dev_splits:
        _write_predictions(cell.dir / "predictions" / f"{tasks.dev_key(task, split)}-seed{seed}.tsv",
                           [e.label for e in splits[split]], predictions[split])
    examples = len(train) * len(module.epochs)
    log.info("GLUE %s seed %d: score %.4f at epoch %d, %.0f training examples/s", task.name, seed,
             scores[f"{task.name}/score"], epoch + 1, examples / seconds)
    return {"status": "ok", "epoch": epoch + 1, "metrics": scores, "train_examples_per_sec": examples / seconds}


def _encoder(tokenizer, max_length: int):
    def encode(examples):
        pairs = examples[0].text_b is not None
        encoded = tokenizer([e.text_a for e in examples], [e.text_b for e in examples] if pairs else None,
                            truncation=True, max_length=max_length)
        return [{**{k: v[i] for k, v in encoded.items()}, "labels": e.label} for i, e in enumerate(examples)]
    return encode


def _score(task: tasks.Task, labels: dict[str, list], predictions: dict[str, list]) -> dict[str, float]:
    """Flat metrics: <task>/<metric> per dev split (mnli_mm for MNLI mismatched) and <task>/score, the task's
    GLUE score (for MNLI the mean of matched and mismatched accuracy)."""
    out, scores = {}, []
    for split, y in labels.items():
        values = metrics.compute(task.metrics, y, predictions[split])
        scores.append(values.pop("score"))
        out.update({f"{tasks.dev_key(task, split)}/{m}": v for m, v in values.items()})
    out[f"{task.name}/score"] = statistics.fmean(scores)
    return out


def _write_predictions(path: Path, labels: list, predictions: list) -> None:
    lines = [f"{i}\t{y}\t{p}" for i, (y, p) in enumerate(zip(labels, predictions))]
    write_atomic(path, "index\tlabel\tprediction\n" + "\n".join(lines) + "\n")
