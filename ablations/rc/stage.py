"""The reading-comprehension stage: SQuAD 1.1 and 2.0 (a fresh span head over windows of the context) and RACE
(a fresh choice head over four options), each fine-tuned once per seed of rc.seeds and scored as the official
evaluations score them. SQuAD 2.0's no-answer threshold is chosen on dev, as BERT's run_squad and the official
script's best_f1 do, and reported with the scores.

Dev predictions go to predictions/<fingerprint>/ in the official format (SQuAD: {id: answer} and, for 2.0, the
null odds the threshold applies to), so any score can be recomputed with the official scripts.
"""

import json
import math

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from ablations.cell import write_atomic
from ablations.finetuning import Stage, fit
from ablations.rc import features, metrics, tasks
from lightning_modules.finetune import ChoiceHead, FinetuneModule, SpanHead

HYPERPARAMETERS = ("lr", "batch_size", "epochs", "warmup_fraction", "max_length", "weight_decay", "doc_stride",
                   "max_query_length", "max_answer_length", "n_best")


def _task(cfg, cell, checkpoint, name, splits, protocol, fp) -> tuple[dict, dict]:
    """Every seed of one task, its examples turned into features once."""
    task = tasks.TASKS[name]
    tokenizer = checkpoint.tokenizer
    if task.kind == "span":
        # where pretraining capped the length, the question's share and the window step shrink with it (BERT's
        # 64 and 128 of 384 at any length), so windows still overlap
        shrink = protocol["max_length"] / protocol["max_length_requested"]
        query, stride = (max(1, round(protocol[k] * shrink)) for k in ("max_query_length", "doc_stride"))
        encode = {split: features.span_features(tokenizer, examples, protocol["max_length"], stride, query,
                                                train=split == "train") for split, examples in splits.items()}
        collate = features.span_collator(tokenizer)
    else:
        encode = {split: features.choice_features(tokenizer, examples, protocol["max_length"])
                  for split, examples in splits.items()}
        collate = features.ChoiceCollator(tokenizer)
    extra = {"features": {split: len(f) for split, f in encode.items()}}
    return {seed: _finetune(cfg, cell, checkpoint, task, splits, encode, collate, protocol, fp, seed)
            for seed in cfg.rc.seeds}, extra


RC = Stage("rc", HYPERPARAMETERS, tasks.load, _task)


def _finetune(cfg, cell, checkpoint, task, splits, encoded, collate, protocol, fp, seed) -> dict:
    pl.seed_everything(seed, workers=True, verbose=False)
    train = DataLoader(encoded["train"], batch_size=protocol["batch_size"], shuffle=True, collate_fn=collate)
    steps = math.ceil(len(encoded["train"]) / protocol["batch_size"]) * protocol["epochs"]
    head = SpanHead(checkpoint.model) if task.kind == "span" else ChoiceHead(checkpoint.model)

    def evaluate(predictions):
        return score(task, splits["dev"], encoded["dev"], predictions["dev"], protocol)["metrics"]

    module = FinetuneModule(checkpoint.encoder(), head, protocol, steps, ["dev"], evaluate)
    result, predictions = fit(cfg, cell, "rc", task.name, seed, module, train,
                              [DataLoader(encoded["dev"], batch_size=64, collate_fn=collate)], protocol, fp)
    if result["status"] == "ok":  # the reported epoch's answers, decoded again
        scored = score(task, splits["dev"], encoded["dev"], predictions["dev"], protocol)
        _write_predictions(cell.dir / "predictions" / fp / f"{task.name}-seed{seed}", task, splits["dev"], scored)
    return result


def score(task: tasks.Task, examples: list, dev_features: list[dict], predictions: list, protocol: dict) -> dict:
    """{"metrics": <task>/<metric> (and <task>/score, the column the papers print), "answers": what was predicted}.
    SQuAD: EM and F1 on the official 0-100 scale; 2.0 at the dev-chosen no-answer threshold. RACE: accuracy on
    all, middle and high, as fractions like GLUE's accuracies."""
    if task.kind == "choice":
        values = metrics.race([e.label for e in examples], predictions, [e.level for e in examples])
        return {"metrics": {**_named(task, values), f"{task.name}/score": values["accuracy"]}, "answers": predictions}
    starts, ends = zip(*predictions) if predictions else ((), ())
    answers, null_odds = features.decode_spans(examples, dev_features, starts, ends, protocol["n_best"],
                                               protocol["max_answer_length"])
    golds = {e.id: [a.text for a in e.answers] for e in examples}
    if not task.unanswerable:
        values = metrics.squad(golds, answers)
        return {"metrics": {**_named(task, values), f"{task.name}/score": values["f1"]}, "answers": answers}
    threshold = _threshold(metrics.squad(golds, answers, null_odds), golds, null_odds)
    values = {**metrics.squad(golds, answers, null_odds, threshold), "threshold": threshold}
    answers = {qid: "" if null_odds[qid] > threshold else text for qid, text in answers.items()}
    return {"metrics": {**_named(task, values), f"{task.name}/score": values["f1"]}, "answers": answers,
            "null_odds": null_odds}


def _threshold(best: dict, golds: dict, null_odds: dict) -> float:
    """The null-odds threshold that reaches best_f1. Where abstaining everywhere is best, the official search keeps
    its starting value 0, which would still answer every question with lower odds: then one below them all."""
    abstain = 100 * sum(not g for g in golds.values()) / len(golds)
    if best["best_f1"] == abstain and null_odds:
        return min(null_odds.values()) - 1.0
    return best["best_f1_thresh"]


def _named(task: tasks.Task, values: dict) -> dict:
    return {f"{task.name}/{k}": float(v) for k, v in values.items()}


def _write_predictions(stem, task, examples, scored: dict) -> None:
    """In the official format: SQuAD {id: answer} (2.0: "" where the null odds pass the threshold, the odds in
    <stem>-null_odds.json), RACE {id: option letter}."""
    answers = scored["answers"]
    if task.kind == "choice":
        answers = {e.id: "ABCD"[p] for e, p in zip(examples, answers)}
    write_atomic(stem.with_suffix(".json"), json.dumps(answers, indent=1))
    if "null_odds" in scored:
        write_atomic(stem.with_name(f"{stem.name}-null_odds.json"), json.dumps(scored["null_odds"], indent=1))
