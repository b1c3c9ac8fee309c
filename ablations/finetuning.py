"""What the fine-tuning stages (GLUE, reading comprehension) share: a task list fine-tuned once per seed, every
seed's numbers kept and the median as headline, results keyed by a fingerprint of the recipe.

The fingerprint covers every setting that can change a number (source, seeds, train_limit, the protocol with
its per-task overrides, generator settings): a rerun under another recipe fine-tunes and keeps both. Within a
recipe a task is reused only if its data (a hash of the examples fed) and its settings (max length capped at
what the model was pretrained on) are those of the run asking for it. One task failing does not cost the others.
"""

import hashlib
import logging
import os
import random
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader

from ablations.config import ConfigError
from ablations.data.cache import stable_hash
from ablations.tracking import SafeWandbLogger, finetune_run, update_summary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    key: str                          # its config group, its results.json key and its W&B prefix: glue, rc
    hyperparameters: tuple[str, ...]  # the protocol keys a task may override
    load: Callable                    # (group, task name) -> {split: [examples]}, bad input a ConfigError
    finetune: Callable                # (cfg, cell, checkpoint, name, splits, settings, fp) -> {seed: result}, extra
    overall: bool = False             # <key>/score: the mean task score, when every task is ok (GLUE's score)

    def recipe(self, group: DictConfig | dict) -> dict:
        """Every setting that can change a number, but the task list and where the files are (their content is
        hashed per task instead)."""
        plain = OmegaConf.to_container(group, resolve=True) if isinstance(group, DictConfig) else group
        r = {k: v for k, v in plain.items() if k not in ("tasks", "data_dir")}
        p = r["protocol"]
        if p["select"] not in ("last", "best"):
            raise ConfigError(f"{self.key}.protocol.select={p['select']}: allowed last, best")
        unknown = {f"{t}.{k}" for t, o in p["tasks"].items() for k in o if k not in self.hyperparameters}
        if unknown:
            raise ConfigError(f"{self.key}.protocol.tasks: unknown {', '.join(sorted(unknown))}; allowed "
                              f"{', '.join(self.hyperparameters)}")
        return r

    def fingerprint(self, group: DictConfig) -> str:
        return stable_hash(self.recipe(group))

    def settings(self, group: DictConfig, task: str, max_length: int) -> dict:
        """A task's hyperparameters (per-task overrides applied), its max length capped at max_length: fine-tuning
        never feeds positions the pretraining never trained."""
        p = self.recipe(group)["protocol"]
        out = {k: p["tasks"].get(task, {}).get(k, p[k]) for k in self.hyperparameters}
        return {**out, "max_length_requested": out["max_length"], "max_length": min(out["max_length"], max_length)}

    def load_tasks(self, group: DictConfig) -> dict[str, dict[str, list]]:
        """Every task's data, read before any training, so bad input stops the stage before it starts."""
        if group.tasks and not group.seeds:
            raise ConfigError(f"{self.key}.seeds must not be empty")
        self.recipe(group)
        data = {name: self.load(group, name) for name in group.tasks or []}
        if group.train_limit:
            for splits in data.values():
                if len(splits["train"]) > group.train_limit:
                    keep = sorted(random.Random(0).sample(range(len(splits["train"])), group.train_limit))
                    splits["train"] = [splits["train"][i] for i in keep]
        return data

    def done(self, entry: dict | None, group: DictConfig, data: dict, max_length: int) -> set[str]:
        """The tasks of `data` that `entry` (a stored result of this fingerprint) already holds, finished, on the
        same examples and settings."""
        held = (entry or {}).get("tasks", {})
        return {name for name, splits in data.items() if held.get(name, {}).get("status") == "ok"
                and held[name].get("data_sha") == data_sha(splits)
                and held[name]["settings"] == self.settings(group, name, max_length)}

    def run(self, cfg: DictConfig, cell, checkpoint, data: dict, entry: dict | None) -> dict:
        """The stored result of this fingerprint, with every task of `data` it did not hold finished fine-tuned
        and added."""
        group = cfg[self.key]
        fp, rec = self.fingerprint(group), self.recipe(group)
        results = dict((entry or {}).get("tasks", {}))
        reuse = self.done(entry, group, data, checkpoint.max_length)
        lightning_log = logging.getLogger("pytorch_lightning.utilities.rank_zero")
        level = lightning_log.level
        lightning_log.setLevel(logging.WARNING)  # not the same banner for every fine-tuning run
        for name, splits in data.items():
            if name in reuse:
                log.info("%s %s: finished under fingerprint %s, kept", self.key, name, fp)
                continue
            task_settings = self.settings(group, name, checkpoint.max_length)
            base = {"settings": task_settings, "data_sha": data_sha(splits)}
            try:
                seeds, extra = self.finetune(cfg, cell, checkpoint, name, splits,
                                             {**rec["protocol"], **task_settings, "data_sha": base["data_sha"]}, fp)
            except Exception as err:  # one task failing does not cost the others
                log.exception("%s %s failed", self.key, name)
                results[name] = {**base, "status": "failed", "error": f"{type(err).__name__}: {err}"}
                continue
            results[name] = {**base, **extra, **summarize(name, seeds)}
        lightning_log.setLevel(level)
        return {"fingerprint": fp, "recipe": rec, "checkpoint": checkpoint.name, **self.headline(results)}

    def headline(self, results: dict) -> dict:
        """status (ok when every task is) and metrics: <key>/* medians over seeds (and <key>/score, the mean task
        score, for GLUE when every task is ok)."""
        metrics = {f"{self.key}/{key}": s["median"] for r in results.values() if r["status"] == "ok"
                   for key, s in r["summary"].items()}
        complete = all(r["status"] == "ok" for r in results.values())
        if complete and self.overall:
            metrics[f"{self.key}/score"] = statistics.fmean(metrics[f"{self.key}/{n}/score"] for n in results)
        return {"status": "ok" if complete else "incomplete", "tasks": results, "metrics": metrics}


def summarize(name: str, seeds: dict) -> dict:
    """A task's status and the median of each metric over seeds, its spread beside it."""
    diverged = [seed for seed, r in seeds.items() if r["status"] == "diverged"]
    if diverged:
        return {"status": "diverged", "diverged_seeds": diverged, "seeds": seeds}
    summary = over_seeds([r["metrics"] for r in seeds.values()])
    score = summary[f"{name}/score"]
    log.info("%s: score %.4f (median of %d seeds, range %.4f-%.4f)", name, score["median"], len(seeds), score["min"],
             score["max"])
    return {"status": "ok", "seeds": seeds, "summary": summary}


def over_seeds(per_seed: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """The headline is the median over seeds, as the RoBERTa paper reports; the spread stays beside it."""
    return {name: {"median": statistics.median(v), "min": min(v), "max": max(v),
                   "std": statistics.stdev(v) if len(v) > 1 else 0.0, "n": len(v)}
            for name in per_seed[0] for v in [[seed[name] for seed in per_seed]]}


def data_sha(splits: dict[str, list]) -> str:
    """A hash of the examples a task feeds (after train_limit), whatever their source."""
    digest = hashlib.sha256()
    for split in sorted(splits):
        digest.update(repr((split, splits[split])).encode())
    return digest.hexdigest()[:16]


@contextmanager
def _deterministic_here():
    """Trainer(deterministic=True) switches torch's deterministic algorithms on for the whole process and sets
    cuBLAS's workspace: both are put back, so the next cell a grid process runs pretrains as it would alone."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
        if workspace is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = workspace


def fit(cfg, cell, stage: str, task: str, seed: int, module, train: DataLoader, dev: list[DataLoader],
        protocol: dict, fp: str) -> tuple[dict, dict]:
    """One fine-tuning run in its own W&B run: the seed's result (status, reported epoch, metrics, every epoch's
    dev score) and the reported epoch's dev predictions {split: [...]}."""
    t = cfg.trainer
    steps = len(train) * protocol["epochs"]
    with finetune_run(cfg, cell, stage, task, seed, protocol, fp) as run, _deterministic_here():
        trainer = pl.Trainer(accelerator=t.accelerator, devices=1, precision=t.precision,
                             max_epochs=protocol["epochs"], logger=SafeWandbLogger(experiment=run) if run else False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                             num_sanity_val_steps=0, log_every_n_steps=min(t.log_every_steps, steps),
                             deterministic=True,
                             # dev is scored only where it is reported: every epoch to pick the best, else the last
                             check_val_every_n_epoch=1 if protocol["select"] == "best" else protocol["epochs"],
                             default_root_dir=cell.dir)
        started = time.perf_counter()
        trainer.fit(module, train, dev)
        seconds = time.perf_counter() - started
        if module.diverged or not module.epochs:
            return {"status": "diverged"}, {}
        score = f"{task}/score"
        epoch, predictions, scores = (module.epochs[-1] if protocol["select"] == "last" else
                                      max(module.epochs, key=lambda e: e[2][score]))
        update_summary(run, {**{f"{stage}/{k}": v for k, v in scores.items()}, f"{stage}/epoch": epoch})
    examples = len(train.dataset) * protocol["epochs"]
    log.info("%s %s seed %d: score %.4f at epoch %d, %.0f training examples/s", stage, task, seed, scores[score], epoch,
             examples / seconds)
    return {"status": "ok", "epoch": epoch, "metrics": scores, "train_examples_per_sec": examples / seconds,
            "dev_scores": {e: s[score] for e, _, s in module.epochs}}, predictions  # every epoch scored on dev
