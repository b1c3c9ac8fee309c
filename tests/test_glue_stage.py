"""The GLUE stage end to end: after the default grid every cell carries GLUE numbers that its saved
predictions reproduce; fine-tuning runs are W&B runs of the cell's group; stage=finetune works on any
checkpoint folder, on the real GLUE files too; a failing task does not cost the others."""

import csv
import json
import statistics

import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from conftest import SHARED_DATA, SMALL, leet, run_py

RECOMPUTE = {"accuracy": accuracy_score, "f1": f1_score, "matthews_correlation": matthews_corrcoef,
             "pearson": lambda y, p: pearsonr(y, p)[0], "spearmanr": lambda y, p: spearmanr(y, p)[0]}
METRICS = {"cola": ["matthews_correlation"], "sst2": ["accuracy"], "mrpc": ["f1", "accuracy"], "rte": ["accuracy"],
           "stsb": ["pearson", "spearmanr"], "mnli": ["accuracy"], "mnli_mm": ["accuracy"]}


def recompute(path, metric):
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    cast = float if metric in ("pearson", "spearmanr") else int
    return RECOMPUTE[metric]([cast(r["label"]) for r in rows], [cast(float(r["prediction"])) for r in rows])


def check_against_predictions(cell_dir, entry):
    """Every per-seed number equals sklearn/scipy on the saved predictions; the headline is their median."""
    for task, result in entry["tasks"].items():
        for key in [k for k in METRICS if k == task or (task == "mnli" and k == "mnli_mm")]:
            for metric in METRICS[key]:
                per_seed = []
                for seed, run in result["seeds"].items():
                    value = recompute(cell_dir / "predictions" / entry["fingerprint"] / f"{key}-seed{seed}.tsv", metric)
                    assert run["metrics"][f"{key}/{metric}"] == pytest.approx(value, abs=1e-9)
                    per_seed.append(value)
                assert entry["metrics"][f"glue/{key}/{metric}"] == pytest.approx(statistics.median(per_seed))


def only_entry(results):
    [entry] = results["glue"].values()
    return entry


def test_every_grid_cell_carries_glue_scores_its_predictions_reproduce(grid):
    root, _ = grid
    for path in root.glob("cells/*/results.json"):
        results = json.loads(path.read_text())
        entry = only_entry(results)
        assert entry["status"] == "ok" and entry["checkpoint"] == results["model_dir"]
        assert entry["recipe"]["protocol"]["name"] == "cpu" and entry["recipe"]["protocol"]["version"] == 1
        assert set(entry["tasks"]) == {"sst2", "mnli", "stsb"}
        assert all(len(t["seeds"]) == 2 for t in entry["tasks"].values())
        scores = [entry["metrics"][f"glue/{t}/score"] for t in ("sst2", "mnli", "stsb")]
        assert entry["metrics"]["glue/score"] == pytest.approx(statistics.fmean(scores))
        check_against_predictions(path.parent, entry)


def test_glue_numbers_reach_the_cell_run_and_each_task_seed_has_its_own_run(grid):
    root, _ = grid
    results = json.loads(next(root.glob("cells/*/results.json")).read_text())
    entry = only_entry(results)
    summary = leet(results["wandb"]["dir"].removesuffix("/files"), "--summary")
    assert summary["summary"]["glue/score"] == pytest.approx(entry["metrics"]["glue/score"])
    assert summary["summary"]["glue/fingerprint"] == entry["fingerprint"]
    runs = {d: leet(d, "--summary") for d in sorted(root.glob(f"wandb/offline-run-*-{results['cell_id']}-*"))}
    glue = {d: run for d, run in runs.items() if "glue/task" in run["config"]}
    assert len(glue) == 3 * 2 and len(runs) == len(glue) + 1  # tasks x seeds, and SQuAD 2.0's one seed
    assert summary["summary"]["rc/squad20/f1"] == pytest.approx(results["rc"][summary["summary"]["rc/fingerprint"]][
        "metrics"]["rc/squad20/f1"])
    for run_dir, run in glue.items():
        task, seed = run["config"]["glue/task"], run["config"]["glue/seed"]
        assert run["state"] == "finished" and run["run_id"] == f"{results['cell_id']}-{entry['fingerprint']}-{task}-s{seed}"
        assert run["summary"][f"glue/{task}/score"] == pytest.approx(
            entry["tasks"][task]["seeds"][str(seed)]["metrics"][f"{task}/score"])
        history = [r["history"]["item"] for r in leet(run_dir) if r.get("type") == "history"]
        assert any("train/loss" in h for h in history) and any(f"dev/{task}/score" in h for h in history)


def test_finetune_alone_on_a_checkpoint_folder_with_the_real_glue_files(grid, tmp_path):
    glue = SHARED_DATA / "glue"
    if not glue.is_dir():
        pytest.skip("../shared/data/glue is absent")
    root, _ = grid
    model_dir = json.loads(next(root.glob("cells/*/results.json")).read_text())["model_dir"]
    result = run_py("stage=finetune", f"model.pretrained={model_dir}", "glue=tsv", f"glue.data_dir={glue}",
                    "glue.tasks=[rte,mrpc,stsb,cola,sst2]", "glue.train_limit=64", "glue.seeds=[1]",
                    "glue.protocol.epochs=1", "rc.tasks=[]", "logger=none", f"paths.root={tmp_path}", cwd=tmp_path,
                    timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    [path] = tmp_path.glob("cells/*/results.json")
    results = json.loads(path.read_text())
    entry = only_entry(results)
    assert results["status"] == "ok" and entry["checkpoint"] == model_dir
    assert set(entry["tasks"]) == {"rte", "mrpc", "stsb", "cola", "sst2"}
    assert entry["recipe"]["train_limit"] == 64
    check_against_predictions(path.parent, entry)
    with open(path.parent / "predictions" / entry["fingerprint"] / "sst2-seed1.tsv") as f:
        assert sum(1 for _ in f) == 872 + 1  # the whole dev set, with a header


def test_failing_and_diverging_tasks_are_recorded_while_the_others_still_run(tmp_path):
    result = run_py(*SMALL, "glue.seeds=[1]", "+glue.protocol.tasks.stsb={lr: 1e30}",
                    "+glue.protocol.tasks.mnli={lr: -1}", "logger=none", f"paths.root={tmp_path}", cwd=tmp_path)
    # a task that raised leaves the cell unfinished: exit 1, naming it (a diverged one is a result)
    output = result.stdout + result.stderr
    assert result.returncode == 1 and "fine-tuning failed: glue/mnli" in output, result.stderr[-3000:]
    [path] = tmp_path.glob("cells/*/results.json")
    results = json.loads(path.read_text())
    entry = only_entry(results)
    tasks = entry["tasks"]
    assert tasks["stsb"]["status"] == "diverged" and tasks["sst2"]["status"] == "ok"
    assert tasks["mnli"]["status"] == "failed" and "learning rate" in tasks["mnli"]["error"]
    assert entry["status"] == "incomplete" and "glue/score" not in entry["metrics"]
    assert "glue/sst2/accuracy" in entry["metrics"] and "glue/stsb/pearson" not in entry["metrics"]

    # stage=finetune reruns GLUE alone on the finished cell; another recipe's numbers sit beside the first's
    result = run_py(*SMALL, "stage=finetune", "glue.seeds=[3]", "glue.tasks=[sst2]", "logger=none",
                    f"paths.root={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rerun = json.loads(path.read_text())
    assert rerun["steps"] == results["steps"] and rerun["metrics"] == results["metrics"]
    assert rerun["glue"][entry["fingerprint"]] == entry
    [new] = [e for fp, e in rerun["glue"].items() if fp != entry["fingerprint"]]
    assert set(new["tasks"]) == {"sst2"} and new["recipe"]["seeds"] == [3] and new["status"] == "ok"
