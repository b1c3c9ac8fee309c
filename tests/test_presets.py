"""Experiment presets, scales and W&B sweep files: each preset's dry run lists exactly its table's cells at an
equal token budget; every sweep combination composes into a config run.py accepts; launchers and DDP run the
same cells in their own processes."""

import itertools
import json
import re
from pathlib import Path

import pytest
import yaml

from ablations.config import check, plan
from conftest import ROOT, SMALL, make_cfg, run_py

EXPERIMENTS = {  # preset -> (number of cells, every cell at one token budget)
    "table1_masking": 4, "table2_input_format": 8, "table3_batch_size": 6, "table4_data_size": 6,
    "glue_comparison": 4, "full_factorial": 36,
}
ARMS = {
    "table1_masking": {"mlm_nsp-static-segment_pair-bsz256-synthetic0.5", "mlm_nsp-dynamic-segment_pair-bsz256-synthetic0.5"},
    "table2_input_format": {"mlm_nsp-dynamic-segment_pair-bsz256-synthetic", "mlm_nsp-dynamic-sentence_pair-bsz256-synthetic",
                            "mlm-dynamic-full_sentences-bsz256-synthetic", "mlm-dynamic-doc_sentences-bsz256-synthetic"},
    "table3_batch_size": {f"mlm-dynamic-full_sentences-{b}-synthetic" for b in ("bsz256", "bsz2k", "bsz8k")},
    "table4_data_size": {f"mlm-dynamic-full_sentences-bsz256-synthetic{s}" for s in ("0.25", "0.5", "1.0")},
    "glue_comparison": {"mlm_nsp-static-segment_pair-bsz256-synthetic0.1", "mlm-dynamic-full_sentences-bsz8k-synthetic"},
    "full_factorial": {f"{o}-{m}-{'segment_pair' if o == 'mlm_nsp' else 'full_sentences'}-{b}-synthetic{s}"
                       for o in ("mlm", "mlm_nsp") for m in ("static", "dynamic") for b in ("bsz256", "bsz2k", "bsz8k")
                       for s in ("0.25", "0.5", "1.0")},
}
CELL = re.compile(r"^cell (\w+) (\S+): (\d+) steps x (\d+) sequences \((\d+) real tokens a step: batch (\d+) .*"
                  r"about (\d+) real tokens \(schedule.total_tokens (\d+)\)", re.M)


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_each_preset_dry_run_lists_its_cells_at_equal_token_budgets(experiment, tmp_path):
    # one process prints every cell: parallel cells could interleave their lines
    result = run_py("-m", f"experiment={experiment}", "dry_run=true", "logger=none", "hydra/launcher=basic",
                    f"paths.root={tmp_path}", f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    cells = CELL.findall(result.stdout)
    assert len(cells) == len({c[0] for c in cells}) == EXPERIMENTS[experiment]
    for cell in cells:  # every arm of the table sees the same number of real tokens
        assert abs(int(cell[6]) / int(cell[7]) - 1) < 0.02, cell
    assert not list(tmp_path.glob("cells/*/results.json"))  # nothing trained
    arms = {c[1].rsplit("-s", 1)[0] for c in cells}  # objective-masking-format-schedule-data[size]
    assert arms == ARMS[experiment]
    if experiment == "table3_batch_size":
        assert {int(c[5]) for c in cells} == {32, 256, 1024}  # 256 : 2K : 8K at batch_scale 1/8


def sweep_grid(path: Path) -> tuple[list[str], list[tuple]]:
    params = yaml.safe_load(path.read_text())["parameters"]
    keys = list(params)
    values = [p["values"] if "values" in p else [p["value"]] for p in params.values()]
    return keys, list(itertools.product(*values))


@pytest.mark.parametrize("path", sorted((ROOT / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_sweep_combination_composes_into_a_valid_config(path):
    sweep = yaml.safe_load(path.read_text())
    assert sweep["method"] == "grid" and "${args_no_hyphens}" in sweep["command"]
    keys, combos = sweep_grid(path)
    for combo in combos:
        cfg = make_cfg(*(f"{k}={'null' if v is None else v}" for k, v in zip(keys, combo)))
        check(cfg)
    experiment = sweep["parameters"].get("experiment", {}).get("value")
    if experiment:  # the sweep and the Hydra preset are one grid
        preset = yaml.safe_load((ROOT / "conf" / "experiment" / f"{experiment}.yaml").read_text())
        grid = {k: str(v).split(",") for k, v in preset["hydra"]["sweeper"]["params"].items()}
        assert {k: sorted({str(c[i]) for c in combos}) for i, k in enumerate(keys) if k != "experiment"} == \
            {k: sorted(v) for k, v in grid.items()}


@pytest.mark.parametrize("scale", ["cpu_smoke", "single_gpu_day", "paper"])
@pytest.mark.parametrize("schedule", ["bsz256", "bsz2k", "bsz8k"])
def test_scales_compose_with_every_schedule(scale, schedule):
    cfg = make_cfg(f"scale={scale}", f"schedule={schedule}")
    check(cfg)
    assert plan(cfg, cfg.seq_len * 0.9).steps >= 1


def test_a_grid_on_the_submitit_local_launcher_runs_each_cell_in_its_own_process_and_reports(tmp_path):
    result = run_py("-m", "experiment=table1_masking", "scale=cpu_smoke", "hydra/launcher=submitit_local",
                    "hydra.sweeper.params.seed=0", *SMALL, "schedule.batch_scale=0.125",
                    "trainer.micro_batch_size=32", "stage=pretrain", f"paths.root={tmp_path}",
                    f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in tmp_path.glob("cells/*/results.json")]
    assert len(results) == 2 and all(r["status"] == "ok" for r in results)
    assert {r["factors"]["masking"] for r in results} == {"static", "dynamic"}
    assert len({r["pid"] for r in results}) == 2  # one process per cell
    assert (tmp_path / "sweep" / "report" / "report.md").is_file()
    assert all("table1" in r["config"]["tags"] for r in results)


def test_a_failing_cell_does_not_stop_the_grid_and_is_named_at_the_end(tmp_path):
    result = run_py("-m", "masking.mlm_probability=0.15,2", *SMALL, "stage=pretrain", "logger=none",
                    f"paths.root={tmp_path}", f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "grid: 2 cells, 1 failed" in output and "failed: masking.mlm_probability=2" in output
    assert "allowed strictly between 0 and 1" in output
    [ok] = [json.loads(p.read_text()) for p in tmp_path.glob("cells/*/results.json")]
    assert ok["status"] == "ok" and ok["config"]["masking"]["mlm_probability"] == 0.15


def test_slurm_launcher_runs_one_task_per_device_on_every_node():
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=8",
                                           "trainer.num_nodes=4"], return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"] == "hydra_plugins.ablations_slurm.Slurm"  # submitit's, waiting for every job
    assert (launcher["tasks_per_node"], launcher["gpus_per_node"], launcher["nodes"]) == (8, 8, 4)
    assert launcher["max_num_timeout"] > 0  # requeued when pre-empted
