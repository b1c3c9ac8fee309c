"""Runs with planted effects, written as results.json files the way the runner writes them, for report tests."""

import json
from pathlib import Path

from ablations.cell import SCHEMA_VERSION

RECIPE = {"source": "synthetic", "protocol": {"name": "cpu", "version": 1}, "seeds": [1, 2, 3], "train_limit": None}
FORMAT = {"mlm": "full_sentences", "mlm_nsp": "segment_pair"}


def cell(root: Path, seed: int = 0, glue: dict | None = None, metrics: dict | None = None, status: str = "ok",
         recipe: dict | None = None, fingerprint: str = "fp1", data: str = "synthetic", settings: dict | None = None,
         **factors) -> dict:
    """One cell. glue: {"sst2/accuracy": {fine-tuning seed: value}, ...} (task scores are added for single-metric
    tasks); factors override the default arm (mlm, dynamic, bsz256, all the data); settings override science
    settings no factor names ({"masking": {"dupe_factor": 2}}), which make an arm of their own."""
    f = {"objective": "mlm", "masking": "dynamic", "schedule": "bsz256", "data": data, "data_size": None,
         "model": "tiny", "tokenizer": "bpe", "seed": seed, **factors}
    f.setdefault("input_format", FORMAT[f["objective"]])
    settings = settings or {}
    changed = [f"{group}.{k}={v}" for group, values in sorted(settings.items()) for k, v in sorted(values.items())]
    arm_id = "-".join([*(str(f[k]) for k in sorted(f) if k != "seed"), *changed])
    cell_id = f"{arm_id}-s{seed}"
    tasks = {}
    for key, per_seed in (glue or {}).items():
        task = key.split("/")[0].removesuffix("_mm")
        for ft_seed, value in per_seed.items():
            metrics_ = tasks.setdefault(task, {"status": "ok", "seeds": {}})["seeds"].setdefault(
                str(ft_seed), {"metrics": {}})["metrics"]
            metrics_[key] = value
            if not key.startswith("mnli"):
                metrics_[f"{task}/score"] = value
    for task in tasks.values():  # MNLI's score: the mean of matched and mismatched
        for s in task["seeds"].values():
            m = s["metrics"]
            if "mnli/accuracy" in m:
                m["mnli/score"] = (m["mnli/accuracy"] + m.get("mnli_mm/accuracy", m["mnli/accuracy"])) / 2
    size_tokens = {None: 100_000, 0.5: 50_000, 0.25: 25_000}.get(f["data_size"], 100_000)
    sources = {"synthetic": {"synthetic": {"type": "synthetic", "num_documents": 450}},
               "books": {"books": {"type": "text_files", "path": "/data/books"}}}[data]
    config = {"seq_len": 64, "data": {"name": data, "sources": sources, "size": f["data_size"]},
              "objective": {"name": f["objective"], "nsp": f["objective"] == "mlm_nsp"},
              "input_format": {"name": f["input_format"]}, "masking": {"name": f["masking"], "dupe_factor": 10},
              "schedule": {"name": f["schedule"], "total_tokens": 2 ** 20}, "model": {"name": f["model"]},
              "tokenizer": {"name": f["tokenizer"]}, "seed": seed, "glue": recipe or RECIPE}
    for group, values in settings.items():
        config[group].update(values)
    results = {"schema_version": SCHEMA_VERSION, "cell_id": cell_id, "arm_id": arm_id,
               "name": f"{f['objective']}-{f['masking']}-"
               f"{f['input_format']}-{f['schedule']}-{data}{f['data_size'] or ''}-s{seed}", "status": status,
               "factors": f, "config": config,
               "plan": {"batch": 32, "sequences": 34, "steps": 100, "peak_lr": 1e-3, "warmup_steps": 5},
               "data": {"train_tokens": size_tokens}, "tokens_seen": 2 ** 20, "compute": {},
               "metrics": {} if status != "ok" else (metrics or {}),
               "glue": {fingerprint: {"recipe": recipe or RECIPE, "tasks": tasks}} if status == "ok" and tasks else {},
               "curve": [[10, 5.0], [20, 4.0 + seed / 10]]}
    folder = root / "cells" / cell_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results))
    return results


def seeds(value: float, noise=(0.0, 0.002, -0.002)) -> dict:
    """Three fine-tuning seeds around value, as fractions (the report prints x100)."""
    return {k + 1: value + n for k, n in enumerate(noise)}
