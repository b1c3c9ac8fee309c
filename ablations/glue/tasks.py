"""The nine GLUE tasks: their files, columns, labels and official metrics, and the three sources
(synthetic, the GLUE TSV folder, the nyu-mll/glue dataset on the Hub) that all yield the same Examples."""

import csv
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ablations.config import ConfigError
from ablations.hub import probe_hub


class Example(NamedTuple):
    text_a: str
    text_b: str | None
    label: int | float


@dataclass(frozen=True)
class Task:
    name: str
    folder: str                    # in the GLUE download layout
    metrics: tuple[str, ...]       # GLUE's, in its order; the task score is their mean
    labels: tuple[str, ...] = ()   # as written in the TSV files; index = class id. Empty: regression
    columns: tuple[str, ...] = ()  # text_a, text_b (optional), label: header names in the TSV
    names: tuple[str, ...] = ()    # column names of a file without a header (CoLA)
    hub_columns: tuple[str, ...] = ()
    dev: tuple[str, ...] = ("dev",)

    @property
    def num_labels(self) -> int:
        return len(self.labels) or 1


_BINARY = ("0", "1")
_NLI = ("entailment", "not_entailment")
TASKS = {t.name: t for t in (
    Task("cola", "CoLA", ("matthews_correlation",), _BINARY, ("sentence", "label"),
         names=("source", "label", "original_label", "sentence"), hub_columns=("sentence",)),
    Task("sst2", "SST-2", ("accuracy",), _BINARY, ("sentence", "label"), hub_columns=("sentence",)),
    Task("mrpc", "MRPC", ("f1", "accuracy"), _BINARY, ("#1 String", "#2 String", "Quality"),
         hub_columns=("sentence1", "sentence2")),
    Task("stsb", "STS-B", ("pearson", "spearmanr"), (), ("sentence1", "sentence2", "score"),
         hub_columns=("sentence1", "sentence2")),
    Task("qqp", "QQP", ("f1", "accuracy"), _BINARY, ("question1", "question2", "is_duplicate"),
         hub_columns=("question1", "question2")),
    Task("mnli", "MNLI", ("accuracy",), ("entailment", "neutral", "contradiction"),
         ("sentence1", "sentence2", "gold_label"), hub_columns=("premise", "hypothesis"),
         dev=("dev_matched", "dev_mismatched")),
    Task("qnli", "QNLI", ("accuracy",), _NLI, ("question", "sentence", "label"), hub_columns=("question", "sentence")),
    Task("rte", "RTE", ("accuracy",), _NLI, ("sentence1", "sentence2", "label"), hub_columns=("sentence1", "sentence2")),
    Task("wnli", "WNLI", ("accuracy",), _BINARY, ("sentence1", "sentence2", "label"),
         hub_columns=("sentence1", "sentence2")),
)}


def dev_key(task: Task, split: str) -> str:
    """The results key of a dev split: mnli_mm for MNLI mismatched, as GLUE names it; else the task."""
    return "mnli_mm" if split == "dev_mismatched" else task.name


def load(glue, name: str) -> dict[str, list[Example]]:
    """{"train": [...], <dev split>: [...]} for task `name` from the source glue.source."""
    if name not in TASKS:
        raise ConfigError(f"glue.tasks: unknown task {name!r}; allowed {', '.join(TASKS)}")
    task = TASKS[name]
    if glue.source == "synthetic":
        from ablations.glue import synthetic
        if name not in synthetic.TASKS:
            raise ConfigError(f"glue.tasks: glue=synthetic has no {name!r}; it provides {', '.join(synthetic.TASKS)} "
                              f"(use glue=tsv or glue=hub for the real {name})")
        return synthetic.task(name, glue.train_size, glue.dev_size, glue.num_topics)
    if glue.source == "tsv":
        folder = Path(glue.data_dir).expanduser() / task.folder
        return {split: read_tsv(folder / f"{split}.tsv", task) for split in ("train", *task.dev)}
    if glue.source == "hub":
        return _hub(task)
    raise ConfigError(f"glue.source={glue.source}: allowed synthetic, tsv, hub")


def read_tsv(path: Path, task: Task) -> list[Example]:
    """A GLUE TSV, read as GLUE's own loaders do: tab-separated, no quoting."""
    if not path.is_file():
        raise ConfigError(f"glue: missing file {path} (expected the GLUE layout <data_dir>/{task.folder}/"
                          f"{{train,{','.join(task.dev)}}}.tsv)")
    csv.field_size_limit(sys.maxsize)
    with open(path, encoding="utf-8-sig", newline="") as f:  # MRPC as downloaded starts with a BOM
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = list(task.names) if task.names else next(rows, [])
        missing = [c for c in task.columns if c not in header]
        if missing:
            raise ConfigError(f"{path}:1: no column {', '.join(missing)} in the header (expected {task.name}'s "
                              f"GLUE columns {', '.join(task.columns)})")
        at = [header.index(c) for c in task.columns]
        first_line = 1 if task.names else 2
        return [_example(row, at, task, path, line) for line, row in enumerate(rows, first_line)]


def _example(row: list[str], at: list[int], task: Task, path: Path, line: int) -> Example:
    if len(row) <= max(at):
        raise ConfigError(f"{path}:{line}: {len(row)} fields, need at least {max(at) + 1} ({task.name} row)")
    *texts, raw = (row[i] for i in at)
    return Example(texts[0], texts[1] if len(texts) > 1 else None, label_id(task, raw, f"{path}:{line}"))


def label_id(task: Task, raw, where: str) -> int | float:
    if not task.labels:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{where}: {task.name} score {raw!r} is not a number") from None
    if str(raw) not in task.labels:
        raise ConfigError(f"{where}: {task.name} label {raw!r} not in {', '.join(task.labels)}")
    return task.labels.index(str(raw))


def _hub(task: Task) -> dict[str, list[Example]]:
    """nyu-mll/glue; fails fast offline, where the datasets library would retry for minutes."""
    probe_hub("nyu-mll/glue", "glue=hub", "offline, use glue=synthetic (built in) or glue=tsv glue.data_dir=<GLUE folder>")
    import datasets
    splits = {"train": "train", "dev": "validation", "dev_matched": "validation_matched",
              "dev_mismatched": "validation_mismatched"}
    out = {}
    for split in ("train", *task.dev):
        rows = datasets.load_dataset("nyu-mll/glue", task.name, split=splits[split])
        texts = [rows[c] for c in task.hub_columns]
        out[split] = [Example(a, b, float(y) if not task.labels else int(y))
                      for a, b, y in zip(texts[0], texts[1] if len(texts) > 1 else [None] * len(rows), rows["label"])]
    return out
