"""Fair arms (DESIGN.md, Invariants and Fairness traps): budgets and batches in real tokens, whole optimizer
steps, a loss normalised over the global batch, NSP pairs rebuilt per copy, the papers' optimizers, no
untrained positions in fine-tuning, and GLUE numbers keyed by the settings that made them."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from ablations.cell import Cell
from ablations.data.pipeline import prepare
from ablations.runner import run_cell
from conftest import SMALL, make_cfg, run_py

BUDGET = 131072


def cells(root):
    return [json.loads(p.read_text()) for p in sorted(root.glob("cells/*/results.json"))]


@pytest.mark.slow
def test_every_input_format_trains_on_the_real_token_budget(tmp_path):
    """Sentence pairs fill a third of a sequence: an arm must take more of them per step, not see less text."""
    result = run_py("-m", "experiment=table2_input_format", "seed=0", "stage=pretrain", "logger=none", *SMALL,
                    f"paths.root={tmp_path}", f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    arms = cells(tmp_path)
    assert len(arms) == 4 and all(r["status"] == "ok" for r in arms)
    for r in arms:
        assert abs(r["tokens_seen"] / BUDGET - 1) < 0.02, (r["name"], r["tokens_seen"])
        plan = r["plan"]
        assert plan["batch_tokens"] == 32 * 64
        assert abs(plan["sequences"] * r["data"]["tokens_per_sequence"] / plan["batch_tokens"] - 1) < 0.05
        assert r["sequences_seen"] == plan["steps"] * plan["sequences"]  # whole global batches only
    sequences = {r["factors"]["input_format"]: r["plan"]["sequences"] for r in arms}
    assert sequences["sentence_pair"] > 2 * sequences["full_sentences"]


@pytest.mark.slow
def test_batch_sizes_end_on_budget_with_whole_steps_at_half_the_data(tmp_path):
    """Epochs that do not divide into global batches once ended in partial steps counted as whole ones."""
    result = run_py("-m", "experiment=table3_batch_size", "seed=0", "stage=pretrain", "logger=none", "data.size=0.5",
                    "data.sources.synthetic.num_documents=60", "schedule.total_tokens=262144",
                    f"paths.root={tmp_path}", f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    arms = cells(tmp_path)
    assert {r["factors"]["schedule"] for r in arms} == {"bsz256", "bsz2k", "bsz8k"}
    for r in arms:
        assert r["status"] == "ok" and abs(r["tokens_seen"] / 262144 - 1) < 0.02, (r["name"], r["tokens_seen"])
        assert r["sequences_seen"] == r["plan"]["steps"] * r["plan"]["sequences"]


def one_step_update(root, *overrides):
    """The weights after one optimizer step. Adam's first update is lr * g / (|g| + eps): with eps = 1 (gradients
    here are far below 1) it follows the gradient itself, so updates compare gradients; dropout is off."""
    args = [*SMALL, "stage=pretrain", "logger=none", "schedule.total_tokens=2048", "schedule.warmup_fraction=0",
            "schedule.adam_eps=1", "schedule.lr_scale=100000", "schedule.weight_decay=0", "model.hidden_dropout_prob=0",
            "model.attention_probs_dropout_prob=0", *overrides, f"paths.root={root}"]
    root.mkdir()
    result = run_py(*args, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]
    [r] = cells(root)
    assert r["steps"] == 1
    weights = load_file(f"{r['model_dir']}/model.safetensors")
    return weights, r


@pytest.mark.slow
def test_through_run_py_the_micro_batch_size_leaves_one_step_unchanged_and_clipping_reaches_it(tmp_path):
    untrained, _ = one_step_update(tmp_path / "untrained", "schedule.lr_scale=1e-12")
    small, _ = one_step_update(tmp_path / "small", "trainer.micro_batch_size=8")
    whole, free = one_step_update(tmp_path / "whole", "trainer.micro_batch_size=32")
    clipped, capped = one_step_update(tmp_path / "clipped", "schedule.clip_grad_norm=1e-9")
    step = lambda weights, key: weights[key] - untrained[key]
    query, output = "bert.encoder.layer.0.attention.self.query.weight", "bert.encoder.layer.0.output.dense.weight"
    assert step(whole, query).abs().max() > 1e-6 and step(whole, output).abs().max() > 1e-6  # the step moved them
    assert torch.allclose(step(small, query), step(whole, query), rtol=1e-3, atol=1e-8)
    assert step(clipped, output).abs().max() < 1e-9
    assert free["cell_id"] != capped["cell_id"]


def test_the_papers_optimizers_are_science_settings():
    bert, roberta = make_cfg("arm=bert_style"), make_cfg("arm=roberta_style")
    assert list(bert.schedule.adam_betas) == [0.9, 0.999] and bert.schedule.clip_grad_norm == 1.0
    assert list(roberta.schedule.adam_betas) == [0.9, 0.98] and roberta.schedule.clip_grad_norm is None
    base = Cell.of(make_cfg(), "/r").id
    assert Cell.of(make_cfg("schedule.clip_grad_norm=1.0"), "/r").id != base
    assert Cell.of(make_cfg("schedule.adam_betas=[0.9,0.999]"), "/r").id != base


def test_nsp_pairs_are_rebuilt_for_each_copy_and_fed_by_epoch(tmp_path):
    """BERT rebuilds pairs inside its dupe_factor loop: epoch e feeds copy e mod dupe_factor, whatever the
    masking, so static and dynamic arms see the same pairs and differ only in their masks."""
    common = ["objective=mlm_nsp", "masking.dupe_factor=3", "data.sources.synthetic.num_documents=80"]
    static = prepare(make_cfg(*common, "masking=static"), tmp_path).train
    dynamic = prepare(make_cfg(*common, "masking=dynamic"), tmp_path).train
    other_seed = prepare(make_cfg(*common, "masking=dynamic", "seed=1"), tmp_path).train

    def pairs(dataset, epoch):
        return [(dataset[epoch, i]["token_type_ids"].tobytes(), int(dataset[epoch, i]["next_sentence_label"]))
                for i in range(dataset.size(epoch))]

    assert pairs(dynamic, 0) != pairs(dynamic, 1) != pairs(dynamic, 2)
    assert pairs(dynamic, 0) == pairs(dynamic, 3) == pairs(static, 0) == pairs(static, 3)
    assert pairs(other_seed, 1) == pairs(dynamic, 1)  # pairs follow data.seed and the copy, not the model seed
    for epoch in range(3):  # static copy k is what dynamic masking draws in epoch k
        for i in range(0, dynamic.size(epoch), 7):
            assert all((a == b).all() for a, b in zip(static.masked(epoch, i), dynamic.masked(epoch, i)))
    assert any((static.masked(3, i)[1] != dynamic.masked(3, i)[1]).any() for i in range(10))


@pytest.mark.slow
def test_bsz8k_runs_on_a_quarter_of_the_default_corpus(tmp_path):
    """A global batch larger than the data spans epochs rather than refusing the cell."""
    result = run_py("schedule=bsz8k", "data.size=0.25", "schedule.total_tokens=131072", "stage=pretrain",
                    "logger=none", f"paths.root={tmp_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    [r] = cells(tmp_path)
    assert r["status"] == "ok" and r["steps"] == 2 and abs(r["tokens_seen"] / 131072 - 1) < 0.02
    assert any("larger than" in w for w in r["warnings"])


def test_full_factorial_dry_run_refuses_no_cell_and_table1_feeds_each_static_copy_three_times(tmp_path):
    result = run_py("-m", "experiment=full_factorial", "dry_run=true", "logger=none", "hydra/launcher=basic",
                    f"paths.root={tmp_path}", f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path, timeout=600)
    assert result.returncode == 0 and "grid: 36 cells, 0 failed" in result.stdout + result.stderr
    result = run_py("-m", "experiment=table1_masking", "dry_run=true", "logger=none", "hydra/launcher=basic",
                    f"paths.root={tmp_path}", f"hydra.sweep.dir={tmp_path}/sweep1", cwd=tmp_path, timeout=300)
    feeds = [float(x) for x in __import__("re").findall(r"each static copy fed ([\d.]+) times", result.stdout)]
    assert len(feeds) == 2 and min(feeds) >= 3, result.stdout


def test_static_cells_fed_fewer_than_twice_per_copy_are_warned(tmp_path):
    result = run_py("masking=static", "masking.dupe_factor=10", "schedule.total_tokens=262144", "dry_run=true",
                    "logger=none", f"paths.root={tmp_path}", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "fewer than 2 times" in result.stdout + result.stderr


TINY_CELL = ["data.sources.synthetic.num_documents=40", "schedule.total_tokens=16384", "trainer.log_every_steps=2",
             "glue.train_size=64", "glue.dev_size=32", "rc.tasks=[]", "logger=none"]


def test_fine_tuning_never_feeds_positions_pretraining_did_not_train(tmp_path):
    r = run_cell(make_cfg(*TINY_CELL, "seq_len=32", "glue.tasks=[stsb]", "glue.seeds=[1]",
                          "glue.protocol.max_length=128", root=tmp_path))
    [glue] = r["glue"].values()
    settings = glue["tasks"]["stsb"]["settings"]
    assert settings["max_length"] == 32 and settings["max_length_requested"] == 128
    assert glue["tasks"]["stsb"]["longest_input"] <= 32


def test_glue_results_are_keyed_by_what_made_them(tmp_path):
    """A rerun with other tasks or seeds fine-tunes and keeps both; the same settings again are skipped."""
    args = [*TINY_CELL, "glue.seeds=[1]"]
    run_cell(make_cfg(*args, "glue.tasks=[sst2]", root=tmp_path))
    r = run_cell(make_cfg(*args, "glue.tasks=[stsb]", root=tmp_path))
    [glue] = r["glue"].values()  # the same fingerprint: tasks are added to it
    assert set(glue["tasks"]) == {"sst2", "stsb"} and "glue/stsb/pearson" in glue["metrics"]
    sst2 = glue["tasks"]["sst2"]
    r = run_cell(make_cfg(*TINY_CELL, "glue.seeds=[2]", "glue.tasks=[sst2]", root=tmp_path))
    assert len(r["glue"]) == 2  # another seed list is another fingerprint, and the first is kept
    assert any(g["tasks"].get("sst2") == sst2 for g in r["glue"].values())
    assert run_cell(make_cfg(*args, "glue.tasks=[sst2,stsb]", root=tmp_path))["status"] == "skipped"
    from ablations.report import build

    report = build(str(tmp_path / "cells"), tmp_path / "report")
    text = report.read_text()
    assert "GLUE fingerprint" in text and any(fp in text for fp in r["glue"])
