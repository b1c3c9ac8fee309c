"""The GLUE stage: fine-tune one checkpoint on every task of glue.tasks, once per seed of glue.seeds, and
score each run on the full dev set with GLUE's metrics. Dev predictions go to
predictions/<fingerprint>/<task>-seed<k>.tsv so any number can be recomputed. Fingerprints, reuse and the
median headline are the shared fine-tuning stage's (ablations/finetuning.py).
"""

import math
import statistics
from pathlib import Path

import pytorch_lightning as pl
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

from ablations.cell import Cell, write_atomic
from ablations.finetuning import Stage, fit
from ablations.glue import metrics, tasks
from lightning_modules.finetune import FinetuneModule, SequenceHead


def _task(cfg, cell, checkpoint, name, splits, protocol, fp) -> tuple[dict, dict]:
    """Every seed of one task, its examples encoded once."""
    encode = _encoder(checkpoint.tokenizer, protocol["max_length"])
    encoded = {split: encode(examples) for split, examples in splits.items()}
    longest = max(len(e["input_ids"]) for split in encoded.values() for e in split)
    return ({seed: _finetune(cfg, cell, checkpoint, tasks.TASKS[name], splits, encoded, protocol, fp, seed)
             for seed in cfg.glue.seeds}, {"longest_input": longest})


GLUE = Stage("glue", ("lr", "batch_size", "epochs", "warmup_fraction", "max_length", "weight_decay"), tasks.load,
             _task, overall=True)


def _finetune(cfg, cell, checkpoint, task, splits, encoded, protocol, fp, seed) -> dict:
    pl.seed_everything(seed, workers=True, verbose=False)
    collate = DataCollatorWithPadding(checkpoint.tokenizer)  # pads each batch to its own longest sequence
    train, dev_splits = encoded["train"], list(task.dev)
    steps = math.ceil(len(train) / protocol["batch_size"]) * protocol["epochs"]

    def evaluate(predictions):
        return score(task, {s: [e.label for e in splits[s]] for s in dev_splits}, predictions)

    head = SequenceHead(checkpoint.model, task.num_labels, protocol["reuse_pooler"])
    module = FinetuneModule(checkpoint.encoder(), head, protocol, steps, dev_splits, evaluate)
    result, predictions = fit(cfg, cell, "glue", task.name, seed, module,
                              DataLoader(train, batch_size=protocol["batch_size"], shuffle=True, collate_fn=collate),
                              [DataLoader(encoded[s], batch_size=64, collate_fn=collate) for s in dev_splits],
                              protocol, fp)
    for split in predictions:
        _write_predictions(prediction_path(cell, fp, tasks.dev_key(task, split), seed),
                           [e.label for e in splits[split]], predictions[split])
    return result


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
