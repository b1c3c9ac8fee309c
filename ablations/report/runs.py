"""Runs read from any source into one shape, so the same runs give the same tables from every source:
run folders (results.json, the local source of truth), offline W&B runs (read with W&B's own
`wandb leet inspect`), or a W&B project online (`wandb.Api`)."""

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ablations.cell import SCHEMA_VERSION, SCIENCE
from ablations.config import ConfigError

STAGES = ("glue", "rc")  # the fine-tuning stages, as results.json and W&B name them
FACTORS = ("objective", "masking", "input_format", "schedule", "data", "data_size", "model", "tokenizer", "seed")


@dataclass
class Run:
    """One pretraining cell. finetune holds, per fine-tuning stage (glue, rc) and fingerprint, each metric key
    (mnli/accuracy, mnli_mm/accuracy, squad20/f1, ...) with its value per fine-tuning seed; metrics holds the rest
    (val/perplexity, ...)."""
    cell_id: str
    name: str
    status: str
    factors: dict
    where: str
    plan: dict = field(default_factory=dict)
    seq_len: int | None = None
    train_tokens: int | None = None
    tokens_seen: int | None = None
    metrics: dict = field(default_factory=dict)
    finetune: dict = field(default_factory=dict)  # {stage: {fingerprint: {metric key: {fine-tuning seed: value}}}}
    data_shas: dict = field(default_factory=dict)  # {(stage, fingerprint, task): a hash of the examples it fed}
    recipes: dict = field(default_factory=dict)   # {stage: {fingerprint: its recipe (source, protocol, seeds, ...)}}
    curve: list = field(default_factory=list)
    corpus: str = ""  # what the pretraining text was, for captions
    arm_id: str = ""  # a hash of the science settings without the seed
    compute: dict = field(default_factory=dict)  # FLOPs per token, total FLOPs, MFU (ablations/compute.py)
    science: dict = field(default_factory=dict)  # {"masking.dupe_factor": 10, ...}: what arms are paired on

    @property
    def arm(self) -> tuple:
        """The cell without its seed: runs of one arm are replicates. Its factors, and the arm id, so cells that
        differ in a setting the factors do not name (a token budget, an optimizer) are never pooled."""
        return (*((k, self.factors[k]) for k in FACTORS if k != "seed"), ("arm", self.arm_id))


@dataclass
class Loaded:
    runs: list[Run]
    skipped: list[str]  # "where: why" for every malformed run left out
    source: str


def load(source: str) -> Loaded:
    if source.startswith("wandb:"):
        return _wandb_online(source.removeprefix("wandb:"))
    if source.startswith("wandb-offline:"):
        return _wandb_offline(Path(source.removeprefix("wandb-offline:")))
    return _results(Path(source))


def _results(folder: Path) -> Loaded:
    if not folder.is_dir():
        raise ConfigError(f"--source {folder}: no such folder")
    paths = sorted({Path(d, "results.json").resolve() for d, _, files in os.walk(folder, followlinks=True)
                    if "results.json" in files})
    runs, skipped = [], []
    for path in paths:
        try:
            results = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            skipped.append(f"{path}: unreadable ({type(err).__name__})")
            continue
        if results.get("schema_version") != SCHEMA_VERSION:
            raise ConfigError(f"{path}: results.json schema_version {results.get('schema_version')}; this report "
                              f"reads version {SCHEMA_VERSION}")
        if "factors" not in results or "objective" not in results["factors"]:
            continue  # a fine-tuning-only cell (model.pretrained): not an arm of the pretraining ablations
        try:
            runs.append(_from_results(results, str(path)))
        except (KeyError, TypeError) as err:
            skipped.append(f"{path}: malformed ({type(err).__name__}: {err})")
    if not runs and not skipped:
        raise ConfigError(f"--source {folder}: no results.json of a pretraining cell in it")
    return Loaded(runs, skipped, str(folder))


def _from_results(r: dict, where: str) -> Run:
    finetune, recipes, data_shas = {}, {}, {}
    for stage in STAGES:
        for fp, entry in (r.get(stage) or {}).items():
            recipes.setdefault(stage, {})[fp] = entry["recipe"]
            for name, task in entry["tasks"].items():
                if task["status"] == "ok":
                    data_shas[(stage, fp, name)] = task.get("data_sha")
                    for seed, result in task["seeds"].items():
                        for key, value in result["metrics"].items():
                            finetune.setdefault(stage, {}).setdefault(fp, {}).setdefault(key, {})[int(seed)] = value
    return Run(cell_id=r["cell_id"], name=r["name"], status=r["status"], factors=dict(r["factors"]), where=where,
               plan=r.get("plan") or {}, seq_len=r["config"]["seq_len"], train_tokens=(r.get("data") or {}).get(
                   "train_tokens"), tokens_seen=r.get("tokens_seen"), metrics=_plain(r.get("metrics") or {}),
               finetune=finetune, recipes=recipes, data_shas=data_shas, curve=[tuple(p) for p in r.get("curve") or []],
               corpus=describe_corpus(r["config"]["data"]), arm_id=r["arm_id"], compute=r.get("compute") or {},
               science=science_settings(r["config"]))


def science_settings(config: dict) -> dict:
    """The science settings but the seed, one dotted key per value, lists as tuples: the same from results.json and
    from W&B (which keeps no empty dict)."""
    def flat(prefix: str, value) -> dict:
        if isinstance(value, dict):
            return {k: v for key, sub in value.items() for k, v in flat(f"{prefix}.{key}", sub).items()}
        return {prefix: tuple(value) if isinstance(value, list) else value}

    return {k: v for key in SCIENCE if key != "seed" and key in config for k, v in flat(key, config[key]).items()}


def describe_corpus(data: dict) -> str:
    """The corpus a caption names: its preset and every source (a generator, a folder, a Hub dataset)."""
    sources = []
    for name, src in data["sources"].items():
        where = {"synthetic": lambda: f"{src.get('num_documents')} generated documents",
                 "text_files": lambda: f"{src.get('path')}",
                 "hub": lambda: f"{src.get('dataset')}"}.get(src.get("type"), lambda: "")()
        sources.append(f"{name}: {where}" if len(data["sources"]) > 1 else where)
    return f"{data['name']} ({'; '.join(sources)})"


def _plain(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.startswith(tuple(f"{s}/" for s in STAGES))}


def _wandb_offline(folder: Path) -> Loaded:
    records, skipped = offline_records(folder)
    return _from_wandb(records, skipped, f"wandb-offline:{folder}")


def offline_records(folder: Path) -> tuple[list["_Record"], list[str]]:
    dirs = sorted(folder.glob("offline-run-*")) + sorted(folder.glob("wandb/offline-run-*"))
    if not dirs:
        raise ConfigError(f"--source wandb-offline:{folder}: no offline W&B runs (offline-run-* folders) in it")
    wandb = _wandb_cli()
    with ThreadPoolExecutor(max_workers=8) as pool:  # one `wandb leet` process per run, a few at a time
        outputs = list(pool.map(lambda d: subprocess.run([wandb, "leet", "inspect", "--summary", "--json", str(d)],
                                                         capture_output=True, text=True).stdout, dirs))
    records, skipped = [], []
    for run_dir, out in zip(dirs, outputs):
        try:
            summary = json.loads(out)
        except ValueError:
            skipped.append(f"{run_dir}: unreadable W&B run")
            continue
        records.append(_Record(summary["run_id"], summary["name"], summary["config"], summary["summary"],
                               summary["state"], lambda d=run_dir: _offline_history(d)))
    return records, skipped


def _wandb_cli() -> str:
    """W&B's CLI of this interpreter's environment (a venv's bin need not be on PATH), else the one on PATH."""
    beside = Path(sys.executable).parent / "wandb"
    found = str(beside) if beside.is_file() else shutil.which("wandb")
    if found is None:
        raise ConfigError(f"--source wandb-offline: needs W&B's `wandb` command (not beside {sys.executable} nor on "
                          f"PATH); pip install wandb")
    return found


def _offline_history(run_dir: Path) -> list[dict]:
    out = subprocess.run([_wandb_cli(), "leet", "inspect", "--json", str(run_dir)], capture_output=True, text=True)
    return [r["history"]["item"] for r in map(json.loads, out.stdout.splitlines()) if r.get("type") == "history"]


def _wandb_online(path: str) -> Loaded:
    import wandb

    try:
        api_runs = list(wandb.Api(timeout=30).runs(path))
    except Exception as err:
        raise ConfigError(f"--source wandb:{path}: cannot read this W&B project ({type(err).__name__}: {err})") from None
    if not api_runs:
        raise ConfigError(f"--source wandb:{path}: the project has no runs")
    records = [_Record(r.id, r.name, dict(r.config), dict(r.summary), r.state,
                       lambda r=r: list(r.scan_history(keys=["train/loss", "trainer/global_step"])))
               for r in api_runs]
    return _from_wandb(records, [], f"wandb:{path}")


@dataclass
class _Record:
    id: str
    name: str
    config: dict
    summary: dict
    state: str
    history: object  # called only for the runs a plot needs


def _from_wandb(records: list[_Record], skipped: list[str], source: str) -> Loaded:
    """Pretraining runs (merged when a cell's run was resumed) plus their fine-tuning runs' per-seed numbers."""
    cells: dict[str, list[_Record]] = {}
    finetunes = []
    for record in records:
        if any(f"{stage}/task" in record.config for stage in STAGES):
            finetunes.append(record)
        elif "cell_id" in record.config and "factor/objective" in record.config:
            cells.setdefault(record.config["cell_id"], []).append(record)
    runs = {}
    for cell_id, parts in cells.items():
        config = {k: v for part in parts for k, v in part.config.items()}
        summary = {k: v for part in parts for k, v in part.summary.items()}
        try:
            runs[cell_id] = Run(
                cell_id=cell_id, name=parts[0].name, status=summary.get("status") or (
                    "failed" if parts[-1].state in ("failed", "crashed") else "missing"),
                factors={k: config[f"factor/{k}"] for k in FACTORS}, where=f"{source} run {cell_id}",
                plan={k.removeprefix("plan/"): v for k, v in summary.items() if k.startswith("plan/")},
                seq_len=config.get("seq_len"), train_tokens=summary.get("data/train_tokens"),
                tokens_seen=summary.get("tokens_seen"),
                metrics=_plain({k: v for k, v in summary.items() if "/" in k
                                and not k.startswith(("plan/", "compute/", "_"))}),
                curve=_curve(parts), corpus=describe_corpus(config["data"]), arm_id=config["arm_id"],
                compute={k.removeprefix("compute/"): v for k, v in summary.items() if k.startswith("compute/")},
                science=science_settings(config))
        except KeyError as err:
            skipped.append(f"{source} run {cell_id}: malformed (no {err})")
    scored: dict[tuple, dict[int, dict]] = {}  # (cell, stage, fingerprint, task) -> {seed: its scores}
    for record in finetunes:
        run = runs.get(record.config.get("cell_id"))
        if run is None or record.state != "finished":
            continue
        stage = next(s for s in STAGES if f"{s}/task" in record.config)
        task, seed, fp = (record.config[f"{stage}/{k}"] for k in ("task", "seed", "fingerprint"))
        # the whole stage config: W&B keeps no empty dicts to rebuild the recipe
        run.recipes.setdefault(stage, {})[fp] = record.config[stage]
        scores = {key.removeprefix(f"{stage}/"): value for key, value in record.summary.items()
                  if key.startswith(f"{stage}/") and key.count("/") == 2 and key.split("/")[1] in (task, f"{task}_mm")}
        if scores:  # a diverged seed's run finishes with none
            scored.setdefault((run.cell_id, stage, fp, task), {})[int(seed)] = scores
            run.data_shas[(stage, fp, task)] = record.config[f"{stage}/protocol"].get("data_sha")
    for (cell_id, stage, fp, task), per_seed in scored.items():
        if set(per_seed) != set(runs[cell_id].recipes[stage][fp]["seeds"]):
            runs[cell_id].data_shas.pop((stage, fp, task))
            continue  # a seed diverged, failed or never ran: results.json leaves the whole task out, so do we
        for seed, scores in per_seed.items():
            for key, value in scores.items():
                runs[cell_id].finetune.setdefault(stage, {}).setdefault(fp, {}).setdefault(key, {})[seed] = value
    return Loaded(list(runs.values()), skipped, source)


def _curve(parts: list[_Record]) -> list[tuple[int, float]]:
    """(step, training loss) as results.json keeps it; a step a resumed run logged again counts once."""
    points = {int(h["trainer/global_step"]): h["train/loss"] for part in parts for h in part.history()
              if "train/loss" in h and "trainer/global_step" in h}
    return sorted(points.items())
