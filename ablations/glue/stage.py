"""The GLUE stage: fine-tune one checkpoint on every task of glue.tasks, once per seed of glue.seeds, and
score each run on the full dev set with GLUE's metrics. Every seed's score is kept; the headline is the
median. Dev predictions go to predictions/<fingerprint>/<task>-seed<k>.tsv so any number can be recomputed.

Results are keyed by a fingerprint of the recipe (source, seeds, train_limit, the protocol with its per-task
overrides, generator settings): a rerun under another recipe fine-tunes and keeps both. Within a recipe a task
is reused only if its data (a hash of the examples fed) and its settings (max length capped at what the model
was pretrained on) are those of the run asking for it.
"""

import hashlib
import logging
import math
import random
import statistics
import time
from pathlib import Path

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

from ablations.cell import Cell, write_atomic
from ablations.config import ConfigError
from ablations.data.cache import stable_hash
from ablations.glue import metrics, tasks
from ablations.glue.checkpoint import Checkpoint
from ablations.tracking import SafeWandbLogger, finetune_run, update_summary
from lightning_modules.finetune import FinetuneModule

log = logging.getLogger(__name__)

HYPERPARAMETERS = ("lr", "batch_size", "epochs", "warmup_fraction", "max_length", "weight_decay")


def recipe(glue: DictConfig | dict) -> dict:
    """Every GLUE setting that can change a number, but the task list and where the files are (their content is
    hashed per task instead)."""
    plain = OmegaConf.to_container(glue, resolve=True) if isinstance(glue, DictConfig) else glue
    r = {k: v for k, v in plain.items() if k not in ("tasks", "data_dir")}
    p = r["protocol"]
    if p["select"] not in ("last", "best"):
        raise ConfigError(f"glue.protocol.select={p['select']}: allowed last, best")
    unknown = {f"{t}.{k}" for t, o in p["tasks"].items() for k in o if k not in HYPERPARAMETERS}
    if unknown:
        raise ConfigError(f"glue.protocol.tasks: unknown {', '.join(sorted(unknown))}; allowed "
                          f"{', '.join(HYPERPARAMETERS)}")
    return r


def fingerprint(glue: DictConfig) -> str:
    return stable_hash(recipe(glue))


def settings(glue: DictConfig, task: str, max_length: int) -> dict:
    """A task's hyperparameters (per-task overrides applied), its max length capped at max_length: fine-tuning
    never feeds positions the pretraining never trained."""
    p = recipe(glue)["protocol"]
    out = {k: p["tasks"].get(task, {}).get(k, p[k]) for k in HYPERPARAMETERS}
    return {**out, "max_length_requested": out["max_length"], "max_length": min(out["max_length"], max_length)}


def load_tasks(glue: DictConfig) -> dict[str, dict[str, list[tasks.Example]]]:
    """Every task's data, read before any training, so bad input stops the stage before it starts."""
    if not glue.tasks or not glue.seeds:
        raise ConfigError("glue.tasks and glue.seeds must not be empty")
    recipe(glue)
    data = {name: tasks.load(glue, name) for name in glue.tasks}
    if glue.train_limit:
        for splits in data.values():
            if len(splits["train"]) > glue.train_limit:
                keep = sorted(random.Random(0).sample(range(len(splits["train"])), glue.train_limit))
                splits["train"] = [splits["train"][i] for i in keep]
    return data


def data_sha(splits: dict[str, list[tasks.Example]]) -> str:
    """A hash of the examples a task feeds (after train_limit), whatever their source."""
    digest = hashlib.sha256()
    for split in sorted(splits):
        digest.update(repr((split, splits[split])).encode())
    return digest.hexdigest()[:16]


def done(entry: dict | None, glue: DictConfig, data: dict, max_length: int) -> set[str]:
    """The tasks of `data` that `entry` (a stored result of this fingerprint) already holds, finished, on the
    same examples and settings."""
    held = (entry or {}).get("tasks", {})
    return {name for name, splits in data.items() if held.get(name, {}).get("status") == "ok"
            and held[name].get("data_sha") == data_sha(splits) and held[name]["settings"] == settings(glue, name, max_length)}


def run_glue(cfg: DictConfig, cell: Cell, checkpoint: Checkpoint, data: dict, entry: dict | None) -> dict:
    """The stored result of this fingerprint, with every task of `data` it did not hold finished fine-tuned and
    added; data from load_tasks."""
    fp, rec = fingerprint(cfg.glue), recipe(cfg.glue)
    results = dict((entry or {}).get("tasks", {}))
    reuse = done(entry, cfg.glue, data, checkpoint.max_length)
    lightning_log = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)  # not the same banner for every fine-tuning run
    for name, splits in data.items():
        if name in reuse:
            log.info("GLUE %s: finished under fingerprint %s, kept", name, fp)
            continue
        task = tasks.TASKS[name]
        task_settings = settings(cfg.glue, name, checkpoint.max_length)
        base = {"settings": task_settings, "data_sha": data_sha(splits)}
        try:
            encode = _encoder(checkpoint.tokenizer, task_settings["max_length"])
            encoded = {split: encode(examples) for split, examples in splits.items()}  # once for every seed
            base["longest_input"] = max(len(e["input_ids"]) for split in encoded.values() for e in split)
            seeds = {seed: _finetune(cfg, cell, checkpoint, task, splits, encoded, {**rec["protocol"], **task_settings},
                                     fp, seed) for seed in cfg.glue.seeds}
        except Exception as err:  # one task failing does not cost the others
            log.exception("GLUE %s failed", name)
            results[name] = {**base, "status": "failed", "error": f"{type(err).__name__}: {err}"}
            continue
        diverged = [seed for seed, r in seeds.items() if r["status"] == "diverged"]
        if diverged:
            results[name] = {**base, "status": "diverged", "diverged_seeds": diverged, "seeds": seeds}
            continue
        summary = metrics.over_seeds([r["metrics"] for r in seeds.values()])
        results[name] = {**base, "status": "ok", "seeds": seeds, "summary": summary}
        log.info("GLUE %s: score %.4f (median of %d seeds, range %.4f-%.4f)", name, summary[f"{name}/score"]["median"],
                 len(seeds), summary[f"{name}/score"]["min"], summary[f"{name}/score"]["max"])
    lightning_log.setLevel(level)
    return {"fingerprint": fp, "recipe": rec, "checkpoint": checkpoint.name, **headline(results)}


def headline(results: dict) -> dict:
    """status (ok when every task is) and metrics: glue/* medians over seeds, glue/score when every task is ok."""
    metrics_ = {f"glue/{key}": s["median"] for r in results.values() if r["status"] == "ok"
                for key, s in r["summary"].items()}
    complete = all(r["status"] == "ok" for r in results.values())
    if complete:
        metrics_["glue/score"] = statistics.fmean(metrics_[f"glue/{n}/score"] for n in results)
    return {"status": "ok" if complete else "incomplete", "tasks": results, "metrics": metrics_}


def _finetune(cfg, cell, checkpoint, task, splits, encoded, protocol, fp, seed) -> dict:
    pl.seed_everything(seed, workers=True, verbose=False)
    collate = DataCollatorWithPadding(checkpoint.tokenizer)  # pads each batch to its own longest sequence
    train, dev_splits = encoded["train"], list(task.dev)
    steps = math.ceil(len(train) / protocol["batch_size"]) * protocol["epochs"]

    def evaluate(predictions):
        return score(task, {s: [e.label for e in splits[s]] for s in dev_splits}, predictions)

    module = FinetuneModule(checkpoint.encoder(), task.num_labels, protocol, steps, dev_splits, evaluate)
    t = cfg.trainer
    with finetune_run(cfg, cell, task.name, seed, protocol, fp) as run:
        trainer = pl.Trainer(accelerator=t.accelerator, devices=1, precision=t.precision,
                             max_epochs=protocol["epochs"], logger=SafeWandbLogger(experiment=run) if run else False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             num_sanity_val_steps=0, log_every_n_steps=min(t.log_every_steps, steps), deterministic=True,
                             # dev is scored only where it is reported: every epoch to pick the best, else the last
                             check_val_every_n_epoch=1 if protocol["select"] == "best" else protocol["epochs"],
                             default_root_dir=cell.dir)
        started = time.perf_counter()
        trainer.fit(module, DataLoader(train, batch_size=protocol["batch_size"], shuffle=True, collate_fn=collate),
                    [DataLoader(encoded[s], batch_size=64, collate_fn=collate) for s in dev_splits])
        seconds = time.perf_counter() - started
        if module.diverged or not module.epochs:
            return {"status": "diverged"}
        epoch, predictions, scores = (module.epochs[-1] if protocol["select"] == "last" else
                                      max(module.epochs, key=lambda e: e[2][f"{task.name}/score"]))
        update_summary(run, {**{f"glue/{k}": v for k, v in scores.items()}, "glue/epoch": epoch})
    for split in dev_splits:
        _write_predictions(prediction_path(cell, fp, tasks.dev_key(task, split), seed),
                           [e.label for e in splits[split]], predictions[split])
    examples = len(train) * protocol["epochs"]
    log.info("GLUE %s seed %d: score %.4f at epoch %d, %.0f training examples/s", task.name, seed,
             scores[f"{task.name}/score"], epoch, examples / seconds)
    return {"status": "ok", "epoch": epoch, "metrics": scores, "train_examples_per_sec": examples / seconds,
            "dev_scores": {e: s[f"{task.name}/score"] for e, _, s in module.epochs}}  # every epoch scored on dev


def prediction_path(cell: Cell, fp: str, key: str, seed: int) -> Path:
    return cell.dir / "predictions" / fp / f"{key}-seed{seed}.tsv"


def _encoder(tokenizer, max_length: int):
    def encode(examples):
        pairs = examples[0].text_b is not None
        encoded = tokenizer([e.text_a for e in examples], [e.text_b for e in examples] if pairs else None,
                            truncation=True, max_length=max_length)
        return [{**{k: v[i] for k, v in encoded.items()}, "labels": e.label} for i, e in enumerate(examples)]
    return encode


def score(task: tasks.Task, labels: dict[str, list], predictions: dict[str, list]) -> dict[str, float]:
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
