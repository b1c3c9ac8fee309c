"""The multi-device path, run for real on CPUs with the gloo backend: two DDP ranks train one cell (one
results.json, one W&B run, real tokens summed over ranks, both ranks' masks in the logged fingerprints), a killed
two-rank cell resumes every rank's state exactly; and the trainer options of the GPU path reach the trainer, with a
single-device fine-tuning stage."""

import json

import pytest
import torch

from ablations.config import ConfigError, plan
from ablations.pretraining import _resume_from
from ablations.runner import run_cell
from conftest import SMALL, killed_run, leet, make_cfg, run_py

DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.precision=32-true", "trainer.num_workers=0",
       "trainer.micro_batch_size=16", *SMALL, "stage=pretrain", "masking=static", "masking.dupe_factor=2"]


@pytest.fixture(scope="module")
def ddp_cell(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    result = run_py(*DDP, f"paths.root={root}", f"logger.dir={root}", cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    [path] = root.glob("cells/*/results.json")
    return root, json.loads(path.read_text())


@pytest.mark.slow
def test_two_ranks_finish_one_cell_with_one_results_json_and_one_wandb_run(ddp_cell):
    root, results = ddp_cell
    assert results["status"] == "ok" and abs(results["tokens_seen"] / 131072 - 1) < 0.02  # summed over both ranks
    assert results["sequences_seen"] == results["steps"] * results["plan"]["sequences"]
    # each rank feeds half of every global batch, and the logged masks are still those of all: static, period 2
    fingerprints = results["mask_fingerprints"]
    assert len(fingerprints) >= 4 and fingerprints[0] != fingerprints[1]
    assert all(fingerprints[k] == fingerprints[k + 2] for k in range(len(fingerprints) - 2))
    [run_dir] = root.glob("wandb/offline-run-*")
    assert leet(run_dir, "--summary")["run_id"] == results["cell_id"]


@pytest.mark.slow
def test_a_killed_two_rank_cell_resumes_every_ranks_state_exactly(ddp_cell, tmp_path):
    """Ranks draw their own dropout masks, so a resume that gave every rank rank 0's RNG state would differ."""
    _, reference = ddp_cell
    args = [*DDP, "logger=none", "trainer.checkpoint_every_steps=20", f"paths.root={tmp_path}"]
    killed_run(args, tmp_path, tmp_path, lambda r: list(r.glob("cells/*/checkpoints/*.ckpt")))
    [folder] = tmp_path.glob("cells/*/checkpoints")  # the step checkpoint, and last.ckpt if the kill came later
    state = torch.load(_resume_from(folder, folder.parent.name), weights_only=True)
    assert len(state["ranks"]) == 2 and not torch.equal(state["ranks"][0]["cpu_rng"], state["ranks"][1]["cpu_rng"])
    assert not list(tmp_path.glob("cells/*/results.json")), "killed too late: the cell had finished"
    rerun = run_py(*args, cwd=tmp_path)
    assert rerun.returncode == 0 and "resuming from" in rerun.stdout + rerun.stderr, rerun.stderr[-2000:]
    [resumed] = [json.loads(p.read_text()) for p in tmp_path.glob("cells/*/results.json")]
    assert resumed["tokens_seen"] == reference["tokens_seen"] and resumed["steps"] == reference["steps"]
    assert resumed["mask_fingerprints"] == reference["mask_fingerprints"]
    assert resumed["metrics"]["val/mlm_loss"] == pytest.approx(reference["metrics"]["val/mlm_loss"], rel=1e-5)


@pytest.mark.parametrize("overrides,micro_batch,workers,devices", [
    (["trainer=gpu"], 64, 4, 1), (["trainer=ddp"], 64, 4, 2), (["trainer=cpu"], 128, 0, 1),
    (["scale=paper"], 64, 4, 8), (["scale=single_gpu_day"], 64, 4, 1), (["scale=cpu_smoke"], 128, 0, 1),
    (["scale=cpu_real"], 128, 0, 1)])
def test_trainer_presets_reach_the_trainer(overrides, micro_batch, workers, devices):
    """The trainer group (and a scale that picks one) decides micro-batch and workers; the root config does not."""
    cfg = make_cfg(*overrides)
    assert (cfg.trainer.micro_batch_size, cfg.trainer.num_workers, cfg.trainer.devices) == (micro_batch, workers, devices)
    assert plan(cfg, cfg.seq_len * 0.9).micro_batch == micro_batch


def test_multi_device_cells_pretrain_and_fine_tune_apart(tmp_path):
    with pytest.raises(ConfigError, match="stage=all with trainer.devices x trainer.num_nodes = 8: fine-tuning"):
        run_cell(make_cfg("scale=paper", "logger=none", root=tmp_path))
    for bad in ("-1", "auto"):
        with pytest.raises(ConfigError, match=f"trainer.devices={bad}: allowed a whole number >= 1"):
            run_cell(make_cfg(f"trainer.devices={bad}", "logger=none", root=tmp_path))
