"""End to end, as a user runs it: a Hydra multirun grid, one results.json and one offline W&B run per
cell, read back with W&B's own reader; an exported model that plain transformers loads; failures and
bad input that exit non-zero and never leave a results.json claiming success."""

import json
import re
import time

import numpy as np
import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

from conftest import ONE_THREAD, ROOT, SMALL, killed_run, leet, run_py, wandb_history

def test_grid_writes_one_ok_results_json_per_cell(grid):
    root, _ = grid
    results = [json.loads(p.read_text()) for p in sorted(root.glob("cells/*/results.json"))]
    assert len(results) == 4 and all(r["status"] == "ok" for r in results)
    assert {(r["factors"]["objective"], r["factors"]["masking"]) for r in results} == {
        ("mlm", "static"), ("mlm", "dynamic"), ("mlm_nsp", "static"), ("mlm_nsp", "dynamic")}
    for r in results:
        assert abs(r["tokens_seen"] / 131072 - 1) < 0.02 and r["sequences_seen"] == r["steps"] * r["plan"]["sequences"]
        assert set(r["versions"]) >= {"torch", "transformers", "pytorch-lightning", "wandb"} and "git_sha" in r
        assert r["metrics"]["val/perplexity"] == pytest.approx(2.718281828 ** r["metrics"]["val/mlm_loss"], rel=1e-4)
        assert ("train/nsp_loss" in r["metrics"]) == (r["factors"]["objective"] == "mlm_nsp")
        assert r["wandb"]["mode"] == "offline" and r["config"]["seed"] == 0
        c = r["compute"]
        assert 0 < c["mfu"] < 1 and "CPU fp32 matmul, measured" in c["peak"]
        assert c["total_flops"] == pytest.approx(c["flops_per_token"] * r["tokens_seen"])
    # Each Hydra job folder keeps its log and links to its cell.
    links = sorted((root / "sweep").glob("*/cell"))
    assert len(links) == 4 and {link.resolve().name for link in links} == {r["cell_id"] for r in results}


def test_each_cell_has_its_own_finished_wandb_run_with_factors_and_metrics(grid):
    root, _ = grid
    for path in root.glob("cells/*/results.json"):
        results = json.loads(path.read_text())
        run_dir = results["wandb"]["dir"].removesuffix("/files")
        summary = leet(run_dir, "--summary")
        assert summary["state"] == "finished" and summary["exit_code"] == 0
        assert summary["run_id"] == results["cell_id"] and summary["name"] == results["name"]
        for key, value in results["factors"].items():
            assert summary["config"][f"factor/{key}"] == value
        assert summary["summary"]["val/perplexity"] == pytest.approx(results["metrics"]["val/perplexity"])
        assert summary["summary"]["compute/mfu"] == pytest.approx(results["compute"]["mfu"])
        assert summary["summary"]["status"] == "ok"
        [run] = [r["run"] for r in leet(run_dir) if r.get("type") == "run"]
        assert run["job_type"] == "pretrain" and run["run_group"] == results["name"].rsplit("-s", 1)[0]


def test_static_vs_dynamic_is_visible_in_the_logged_mask_fingerprints(grid):
    root, _ = grid
    for path in root.glob("cells/*/results.json"):
        results = json.loads(path.read_text())
        records = leet(results["wandb"]["dir"].removesuffix("/files"))
        logged = [r["history"]["item"]["data/mask_fingerprint"] for r in records
                  if r.get("type") == "history" and "data/mask_fingerprint" in r["history"]["item"]]
        assert logged == results["mask_fingerprints"] and len(logged) > 10
        if results["factors"]["masking"] == "static":
            dupe = results["config"]["masking"]["dupe_factor"]
            assert all(logged[e] == logged[e + dupe] for e in range(len(logged) - dupe))
            assert len(set(logged[:dupe])) == dupe
        else:
            assert len(set(logged)) == len(logged)


def test_exported_model_loads_in_plain_transformers_and_scores_the_held_out_set_as_trained(grid, tmp_path):
    """Plain transformers' full MLM head on the held-out set, under the cell's fixed mask, gives the held-out loss
    the cell recorded; an untrained model of the same shape is far worse."""
    from omegaconf import OmegaConf

    from ablations.data.pipeline import prepare

    root, _ = grid
    results = json.loads(next(root.glob("cells/*/results.json")).read_text())
    model = AutoModelForMaskedLM.from_pretrained(results["model_dir"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(results["model_dir"])
    held_out = prepare(OmegaConf.create(results["config"]), root).eval
    ids, labels = torch.as_tensor(held_out.inputs).long(), torch.as_tensor(held_out.labels).long()
    attention = (torch.as_tensor(np.asarray(held_out.instances.input_ids)) != tokenizer.pad_token_id).long()

    def loss(m):
        with torch.no_grad():
            logits = m(input_ids=ids, attention_mask=attention).logits
        return float(torch.nn.functional.cross_entropy(logits[labels != -100], labels[labels != -100]))

    assert loss(model) == pytest.approx(results["metrics"]["val/mlm_loss"], rel=1e-3)
    assert loss(AutoModelForMaskedLM.from_config(model.config)) > loss(model) + 1
    fill = pipeline("fill-mask", model=model, tokenizer=tokenizer)
    assert len(fill(f"The cook chops the {tokenizer.mask_token} in the kitchen.")) == 5
    encoded = tokenizer("Elena fills the jar.", "Then she smiles.")
    assert encoded["input_ids"][0] == tokenizer.cls_token_id and encoded["token_type_ids"][-1] == 1


def test_a_failing_cell_records_failed_and_closes_its_wandb_run(tmp_path):
    result = run_py(*SMALL, "trainer.strategy=not-a-strategy", f"paths.root={tmp_path}", f"logger.dir={tmp_path}",
                    cwd=tmp_path)
    assert result.returncode != 0
    [path] = tmp_path.glob("cells/*/results.json")
    results = json.loads(path.read_text())
    assert results["status"] == "failed" and "not-a-strategy" in results["error"]
    summary = leet(results["wandb"]["dir"].removesuffix("/files"), "--summary")
    assert summary["exit_code"] == 1


BAD_INPUT = [
    (["masking.mlm_probability=2"], "masking.mlm_probability=2"),
    (["data.sources.synthetic.num_documents=1"], "need at least 2"),
    (["data=text_files", "data.sources.text_files.path=/nonexistent"], "no such folder"),
    (["glue.tasks=[sst2,mnlii]"], "unknown task 'mnlii'"),
    (["glue=tsv", "glue.data_dir=/nonexistent", "glue.tasks=[rte]"], "missing file /nonexistent/RTE/train.tsv"),
    (["rc.tasks=[squad3]"], "rc.tasks: unknown task 'squad3'"),
    (["rc=files", "rc.data_dir=/nonexistent"], "missing file /nonexistent/train-v1.1.json"),
    (["stage=finetune"], "has no finished pretraining"),
    (["stage=finetune", "model.pretrained=/nonexistent/model"], "no such folder"),
    (["model.pretrained=/tmp"], "needs stage=finetune"),
    (["stage=both"], "stage=both: allowed all, pretrain, finetune"),
]


@pytest.mark.parametrize("args,message", BAD_INPUT)
def test_bad_input_is_refused_before_any_work_with_a_clear_message(tmp_path, args, message):
    from ablations.config import ConfigError
    from ablations.runner import run_cell
    from conftest import make_cfg

    with pytest.raises(ConfigError, match=re.escape(message)):
        run_cell(make_cfg(*args, "logger=none", root=tmp_path))
    assert not list(tmp_path.glob("cells/*/results.json"))


@pytest.mark.parametrize("args,message", [(["objective=bogus"], "Could not find 'objective/bogus'"),
                                          BAD_INPUT[0], BAD_INPUT[5]])
def test_bad_input_exits_non_zero_with_a_clear_message_and_no_results(tmp_path, args, message):
    """As the user sees it: a config error from Hydra or from the harness, one line, no traceback, no results."""
    result = run_py(*args, f"paths.root={tmp_path}", "logger=none", cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not list(tmp_path.glob("cells/*/results.json"))


def test_hub_source_offline_fails_within_seconds_pointing_to_local_sources(tmp_path):
    started = time.monotonic()
    result = run_py("data=hub", f"paths.root={tmp_path}", "logger=none", cwd=tmp_path, timeout=120)
    assert result.returncode != 0 and time.monotonic() - started < 60
    assert "cannot reach the Hugging Face Hub" in result.stderr + result.stdout
    assert "data=text_files" in result.stderr + result.stdout


def test_a_killed_cell_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(grid, tmp_path):
    """SIGKILL right after the first checkpoint (step 15, mid-epoch); the rerun continues from it and ends as the
    same cell did uninterrupted in the grid."""
    args = [*SMALL, ONE_THREAD, "stage=pretrain", "logger=none", "trainer.checkpoint_every_steps=15"]
    root = tmp_path / "killed"
    killed_run([*args, f"paths.root={root}"], root, tmp_path, lambda r: list(r.glob("cells/*/checkpoints/*.ckpt")))
    assert not list(root.glob("cells/*/results.json")), "killed too late: the cell had finished"
    rerun = run_py(*args, f"paths.root={root}", cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming from" in rerun.stderr + rerun.stdout
    [resumed] = [json.loads(p.read_text()) for p in root.glob("cells/*/results.json")]
    reference = json.loads((grid[0] / "cells" / resumed["cell_id"] / "results.json").read_text())
    assert resumed["status"] == "ok" and resumed["steps"] == reference["steps"]
    assert resumed["curve"] == reference["curve"]  # the steps before the kill kept, every later one equal
    assert resumed["tokens_seen"] == reference["tokens_seen"]
    assert resumed["mask_fingerprints"] == reference["mask_fingerprints"]
    assert resumed["metrics"]["val/mlm_loss"] == pytest.approx(reference["metrics"]["val/mlm_loss"], rel=1e-4)
    # a finished cell is not rerun
    again = run_py(*args, f"paths.root={root}", cwd=tmp_path)
    assert again.returncode == 0 and "already finished" in again.stderr + again.stdout
    assert json.loads(next(root.glob("cells/*/results.json")).read_text())["timing"] == resumed["timing"]


def test_a_cut_short_checkpoint_is_deleted_not_loaded(tmp_path):
    from ablations.pretraining import _resume_from

    (tmp_path / "last.ckpt").write_bytes(b"PK\x03\x04 cut short")
    assert _resume_from(tmp_path, "cell") is None and not (tmp_path / "last.ckpt").exists()


def _wandb_rows(root, cell_id: str) -> list[tuple]:
    """Every history row of a cell's W&B run, over all its parts, in one order."""
    return sorted(tuple(sorted(row.items())) for row in wandb_history(root, cell_id))


def test_a_cell_killed_while_fine_tuning_keeps_its_whole_pretraining_history_in_wandb(grid, tmp_path):
    """Killed after results.json, while the cell's W&B run was still open for GLUE: W&B writes a step's row only
    once a later step or the finish comes, so the rows after the last checkpoint were lost with the process. The
    rerun only fine-tunes; the cell's W&B history must still hold every pretraining row once, as in the grid."""
    args = [*SMALL, ONE_THREAD, "glue.tasks=[sst2]", f"paths.root={tmp_path}", f"logger.dir={tmp_path}"]
    killed_run(args, tmp_path, tmp_path, lambda r: list(r.glob("cells/*/predictions/*/*.tsv")))
    [path] = tmp_path.glob("cells/*/results.json")
    results = json.loads(path.read_text())
    rerun = run_py(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "resuming from" not in rerun.stderr + rerun.stdout  # pretraining had finished: only GLUE ran again
    reference = _wandb_rows(grid[0], results["cell_id"])
    assert len(reference) > 10 and _wandb_rows(tmp_path, results["cell_id"]) == reference
    *_, reopened = sorted(tmp_path.glob(f"wandb/offline-run-*-{results['cell_id']}"))
    summary = leet(reopened, "--summary")["summary"]
    assert summary["val/perplexity"] == results["metrics"]["val/perplexity"] and summary["status"] == "ok"
    assert summary["tokens_seen"] == results["tokens_seen"] and summary["glue/status"] == "ok"


def test_a_grid_counts_its_own_cells_not_those_an_earlier_grid_left_in_its_sweep_folder(tmp_path):
    """A fixed hydra.sweep.dir reused by a second, smaller grid: the first grid's failed job 1 once failed the
    second grid too, which never ran it."""
    from omegaconf import OmegaConf

    from ablations.grid import OUTCOME, GridEnd

    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    for job, status in (("0", "ok"), ("1", "failed")):  # the earlier grid's two jobs
        (tmp_path / job).mkdir()
        (tmp_path / job / OUTCOME).write_text(json.dumps({"status": status, "error": None, "overrides": [job]}))
    end = GridEnd()
    end.on_multirun_start(config)
    (tmp_path / "0" / OUTCOME).write_text(json.dumps({"status": "dry_run", "error": None, "overrides": ["0"]}))
    end.on_multirun_end(config)  # no SystemExit: this grid's one job did not fail
    assert not (tmp_path / "1" / OUTCOME).exists()


def test_a_grid_in_a_reused_sweep_folder_reports_its_own_cells(tmp_path, monkeypatch):
    """Each job's folder links to its cell, and the report reads the cells a sweep folder links to. A second grid in
    a reused hydra.sweep.dir once kept the first grid's links: its job 0 still pointed at the first grid's cell (the
    new link was taken for a requeued job's), and jobs it never ran still linked theirs. The cells stay, unlinked."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from ablations.cell import Cell
    from ablations.grid import GridEnd
    from ablations.report.runs import load
    from ablations.runner import _link_hydra_dir
    from reportfixtures import cell

    sweep, earlier = tmp_path / "sweep", [cell(tmp_path, seed=1), cell(tmp_path, seed=2)]
    for job, results in enumerate(earlier):
        (sweep / str(job)).mkdir(parents=True)
        (sweep / str(job) / "cell").symlink_to(tmp_path / "cells" / results["cell_id"], target_is_directory=True)
    GridEnd().on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        hydra_cfg = compose("config", ["seed=3"], return_hydra_config=True)
    hydra_cfg.hydra.runtime.output_dir = str(sweep / "0")
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)  # restored after the test: other tests run no job
    HydraConfig.instance().set_config(hydra_cfg)
    for seed in (3, 4):  # seed 4: a run reusing its job's folder (a fixed hydra.run.dir), as no grid clears it
        ours = cell(tmp_path, seed=seed)
        _link_hydra_dir(Cell(ours["cell_id"], ours["name"], "", ours["factors"], tmp_path / "cells" / ours["cell_id"],
                             ""))
        assert [run.cell_id for run in load(str(sweep)).runs] == [ours["cell_id"]]
    assert all((tmp_path / "cells" / r["cell_id"] / "results.json").exists() for r in earlier)
