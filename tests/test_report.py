"""The report generator on runs with planted effects (written here, tests/reportfixtures.py), on the real default
grid (results.json and its offline W&B runs must give identical tables), and on bad sources."""

import csv
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats as scipy_stats

from ablations.cell import SCHEMA_VERSION
from ablations.config import ConfigError
from ablations.report import build, paper
from ablations.report.runs import load
from conftest import ROOT, system_tool
from reportfixtures import cell, seeds


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def row(records, name, column):
    return next(r for r in records if r["row"].startswith(name) and r["column"] == column)


def summary_of(tmp_path, name="ablation_summary"):
    build(str(tmp_path / "runs"), tmp_path / "report")
    return read_csv(tmp_path / "report" / "tables" / f"{name}.csv")


def masking_grid(root, effects: list[float], base=0.80):
    """Static and dynamic arms, one pretraining seed per planted effect (dynamic - static on SST-2)."""
    for seed, effect in enumerate(effects):
        cell(root, seed, masking="static", glue={"sst2/accuracy": seeds(base + 0.01 * seed)},
             metrics={"val/mlm_loss": 4.0 + seed / 10, "val/perplexity": 10.0 + seed})
        cell(root, seed, masking="dynamic", glue={"sst2/accuracy": seeds(base + 0.01 * seed + effect / 100)},
             metrics={"val/mlm_loss": 3.9 + seed / 10, "val/perplexity": 9.0 + seed})


def test_two_seeds_that_disagree_are_not_resolved_however_tight_the_fine_tuning_noise(tmp_path):
    """The counter-example: effects +0.9 and -0.1 over two pretraining seeds, fine-tuning noise 0.2."""
    masking_grid(tmp_path / "runs", [0.9, -0.1])
    effect = row(summary_of(tmp_path), "dynamic − static masking", "synthetic SST-2 acc")
    assert float(effect["delta"]) == pytest.approx(0.4) and effect["n"] == "2"
    assert effect["resolved"] == "False" and float(effect["low"]) < 0 < float(effect["high"])
    assert effect["text"].endswith("(n=2, n.s.)")
    assert float(effect["high"]) - float(effect["low"]) > 10  # t with 1 degree of freedom: 12.7 x the standard error


def test_three_seeds_that_agree_are_resolved(tmp_path):
    masking_grid(tmp_path / "runs", [1.0, 1.1, 0.9])
    effect = row(summary_of(tmp_path), "dynamic − static masking", "synthetic SST-2 acc")
    assert float(effect["delta"]) == pytest.approx(1.0) and effect["resolved"] == "True" and effect["n"] == "3"
    half = 4.303 * 0.1 / 3 ** 0.5  # t(0.975, 2) x sd / sqrt(n)
    assert float(effect["low"]) == pytest.approx(1.0 - half, abs=1e-3)
    assert float(effect["high"]) == pytest.approx(1.0 + half, abs=1e-3)
    needed = row(read_csv(tmp_path / "report" / "tables" / "seeds_needed.csv"), "dynamic", "synthetic SST-2 acc")
    assert needed["for"] == "observed" and int(needed["seeds_needed"]) <= 3


def test_one_pretraining_seed_gives_no_interval_and_says_so(tmp_path):
    masking_grid(tmp_path / "runs", [0.5])
    effect = row(summary_of(tmp_path), "dynamic − static masking", "synthetic SST-2 acc")
    assert effect["low"] == "" and effect["text"] == "+0.5 (1 pretraining seed)"
    text = (tmp_path / "report" / "report.md").read_text()
    assert "With one pretraining seed no effect has an interval" in text and "[" not in effect["text"]


def test_an_unbalanced_grids_main_effect_is_the_mean_over_settings(tmp_path):
    """Objective mlm: the masking effect is +5.0 over three seeds; mlm_nsp: +0.2 over one seed. Pooling the
    differences by replicate would give 3.8; each setting counts once: 2.6."""
    root = tmp_path / "runs"
    for seed in range(3):
        cell(root, seed, masking="static", glue={"sst2/accuracy": seeds(0.80)})
        cell(root, seed, masking="dynamic", glue={"sst2/accuracy": seeds(0.85)})
    cell(root, 0, objective="mlm_nsp", masking="static", glue={"sst2/accuracy": seeds(0.70)})
    cell(root, 0, objective="mlm_nsp", masking="dynamic", glue={"sst2/accuracy": seeds(0.702)})
    effect = row(summary_of(tmp_path), "dynamic − static masking", "synthetic SST-2 acc")
    assert float(effect["delta"]) == pytest.approx((5.0 + 0.2) / 2)
    assert effect["low"] == ""  # one setting has a single seed: Welch's interval needs two in every cell


def test_a_delta_is_the_difference_of_the_cells_beside_it(tmp_path):
    root = tmp_path / "runs"
    masking_grid(root, [1.0, 1.3, 0.8])
    summary = summary_of(tmp_path)
    table1 = read_csv(tmp_path / "report" / "tables" / "table1.csv")
    static, dynamic = (float(row(table1, arm, "synthetic SST-2 acc")["mean"]) for arm in ("static", "dynamic"))
    assert float(row(summary, "dynamic − static", "synthetic SST-2 acc")["delta"]) == pytest.approx(dynamic - static)
    loss = row(summary, "dynamic − static", "MLM loss (held-out, nats)")
    assert float(loss["delta"]) == pytest.approx(-0.1) and loss["n"] == "3"


def test_arms_that_differ_in_a_setting_no_factor_names_are_each_paired_with_their_own_control(tmp_path):
    """masking=static,dynamic masking.dupe_factor=2,10: four arms. At each dupe_factor dynamic is 2 points better
    on SST-2 and 0.1 nats lower in MLM loss; the two dupe_factors differ far more than that, so pairing a dynamic
    arm with the other dupe_factor's static arm would turn the effect's sign."""
    root = tmp_path / "runs"
    for seed in range(3):
        for dupe, (accuracy, loss) in ((2, (0.80, 3.0)), (10, (0.85, 2.0))):
            for masking, gain in (("static", 0), ("dynamic", 1)):
                cell(root, seed, masking=masking, settings={"masking": {"dupe_factor": dupe}},
                     glue={"sst2/accuracy": seeds(accuracy + 0.02 * gain + 0.001 * seed)},
                     metrics={"val/mlm_loss": loss - 0.1 * gain + 0.01 * seed})
    summary = summary_of(tmp_path)
    assert float(row(summary, "dynamic − static", "synthetic SST-2 acc")["delta"]) == pytest.approx(2.0)
    assert float(row(summary, "dynamic − static", "MLM loss (held-out, nats)")["delta"]) == pytest.approx(-0.1)


def loss_cell(root, seed, loss, **factors):
    return cell(root, seed, metrics={"val/mlm_loss": loss, "val/perplexity": math.exp(loss)}, **factors)


def test_an_arm_in_two_pairs_is_one_sample_in_welchs_interval(tmp_path):
    """schedule=bsz2k schedule.peak_lr=5e-4,7e-4 against one bsz256 arm, a seed of one bsz2k arm failed (so Welch's,
    not paired): the bsz256 arm is the control of both, and once entered its spread twice at a quarter weight each,
    half its variance: a narrower interval that claimed an effect its data do not resolve."""
    root, lr = tmp_path / "runs", lambda value: {"schedule": {"peak_lr": value}}
    arms = {("bsz256", 1e-4): [3.00, 3.30, 2.90], ("bsz2k", 5e-4): [2.80, 2.95, 2.70], ("bsz2k", 7e-4): [2.85, 2.75]}
    for (schedule, peak_lr), losses in arms.items():
        for seed, loss in enumerate(losses):
            loss_cell(root, seed, loss, schedule=schedule, settings=lr(peak_lr))
    cell(root, 2, schedule="bsz2k", status="failed", settings=lr(7e-4))
    effect = row(summary_of(tmp_path), "bsz2k − bsz256", "MLM loss (held-out, nats)")
    weighted = [(-1, arms[("bsz256", 1e-4)]), (0.5, arms[("bsz2k", 5e-4)]), (0.5, arms[("bsz2k", 7e-4)])]
    parts = [w * w * statistics.variance(v) / len(v) for w, v in weighted]
    df = sum(parts) ** 2 / sum(p * p / (len(v) - 1) for p, (_, v) in zip(parts, weighted))
    half = scipy_stats.t.ppf(0.975, df) * math.sqrt(sum(parts))
    delta = sum(w * statistics.fmean(v) for w, v in weighted)
    assert effect["paired"] == "False" and float(effect["delta"]) == pytest.approx(delta)
    assert float(effect["low"]) == pytest.approx(delta - half) and float(effect["high"]) == pytest.approx(delta + half)
    assert effect["resolved"] == "False"


def test_a_setting_of_the_other_factors_with_two_control_arms_still_counts_once(tmp_path):
    """The larger batch crossed with masking; under static masking two bsz256 arms (peak_lr 1e-4 and 2e-4) are the
    control, under dynamic one. bsz2k - bsz256 is -0.3 under static (the mean of -0.2 and -0.4) and +0.1 under
    dynamic: -0.1 with each setting counted once, not -0.167 with each pair counted once."""
    root = tmp_path / "runs"
    for seed in range(3):
        noise = 0.01 * seed
        for masking, arms in (("static", {(1e-4, "bsz256"): 3.2, (2e-4, "bsz256"): 3.4, (7e-4, "bsz2k"): 3.0}),
                              ("dynamic", {(1e-4, "bsz256"): 3.0, (7e-4, "bsz2k"): 3.1})):
            for (peak_lr, schedule), loss in arms.items():
                loss_cell(root, seed, loss + noise, masking=masking, schedule=schedule,
                          settings={"schedule": {"peak_lr": peak_lr}})
    effect = row(summary_of(tmp_path), "bsz2k − bsz256", "MLM loss (held-out, nats)")
    assert float(effect["delta"]) == pytest.approx(-0.1)


def test_more_data_is_compared_within_each_corpus(tmp_path):
    """Two corpora at half and all of their data: all of a corpus is 0.1 nats better than its half, and the corpora
    differ by a whole nat, so comparing across them would report a loss."""
    root = tmp_path / "runs"
    for seed in range(2):
        for corpus, loss in (("synthetic", 2.0), ("books", 3.0)):
            for size, gain in ((0.5, 0), (None, 1)):
                cell(root, seed, data=corpus, data_size=size, metrics={"val/mlm_loss": loss - 0.1 * gain + 0.01 * seed})
    effect = row(summary_of(tmp_path), "data all − 0.5 (more data)", "MLM loss (held-out, nats)")
    assert float(effect["delta"]) == pytest.approx(-0.1)


def test_table2_pairs_every_format_with_segment_pair_nsp(tmp_path):
    root = tmp_path / "runs"
    planted = {("mlm_nsp", "segment_pair"): 0.80, ("mlm_nsp", "sentence_pair"): 0.78,
               ("mlm", "full_sentences"): 0.83, ("mlm", "doc_sentences"): 0.84}
    for seed in range(2):
        for (objective, fmt), value in planted.items():
            cell(root, seed, objective=objective, input_format=fmt, glue={"sst2/accuracy": seeds(value + seed / 100)})
    summary = summary_of(tmp_path)
    for name, delta, source_delta in (("sentence_pair + NSP − segment_pair + NSP", -2.0, -0.8),
                                      ("full_sentences − segment_pair + NSP (NSP removal)", 3.0, -0.4),
                                      ("doc_sentences − segment_pair + NSP", 4.0, -0.2)):
        effect = row(summary, name, "synthetic SST-2 acc")
        assert float(effect["delta"]) == pytest.approx(delta), name
        assert float(effect["paper"]) == pytest.approx(source_delta) and effect["paper_source"] == "RoBERTa Table 2"


def test_known_effects_interaction_data_size_and_the_glue_comparison_come_out_with_their_signs(tmp_path):
    """A 2 x 2 objective x masking grid plus data sizes: masking +2 under mlm, +0 under mlm_nsp (interaction -2),
    NSP removal +3, more data +1.5; the BERT-style arm is mlm_nsp static on the least data."""
    root = tmp_path / "runs"
    for seed in range(3):
        jitter = (0.0, 0.003, -0.003)[seed]
        arms = (("mlm", "static", None, 0.83), ("mlm", "dynamic", None, 0.85), ("mlm_nsp", "static", None, 0.80),
                ("mlm_nsp", "dynamic", None, 0.80), ("mlm", "dynamic", 0.25, 0.835), ("mlm_nsp", "static", 0.25, 0.785))
        for k, (objective, masking, size, value) in enumerate(arms):  # seed noise of its own in every arm
            cell(root, seed, objective=objective, masking=masking, data_size=size,
                 glue={"sst2/accuracy": seeds(value + jitter * (1 + k * k) / 9), "mnli/accuracy": seeds(0.6 + jitter),
                       "mnli_mm/accuracy": seeds(0.59 + jitter)})
    summary = summary_of(tmp_path)
    column = "synthetic SST-2 acc"
    assert float(row(summary, "dynamic − static", column)["delta"]) == pytest.approx(1.0)  # mean of +2 and 0
    interaction = row(summary, "interaction: (dynamic − static masking) × (full_sentences", column)
    assert float(interaction["delta"]) == pytest.approx(2.0) and interaction["resolved"] == "True"
    assert float(row(summary, "data all − 0.25 (more data)", column)["delta"]) == pytest.approx(1.5)
    comparison = read_csv(tmp_path / "report" / "tables" / "glue_comparison.csv")
    sst2 = next(r for r in comparison if r["row"] == column)
    assert float(sst2["bert_mean"]) == pytest.approx(78.5) and float(sst2["roberta_mean"]) == pytest.approx(85.0)
    assert float(sst2["delta"]) == pytest.approx(6.5)
    header = (tmp_path / "report" / "tables" / "glue_comparison.csv").read_text()
    assert "BERT-style (mlm_nsp, static, segment_pair, bsz256, 0.25)" in (tmp_path / "report" / "report.md").read_text()
    average = next(r for r in comparison if r["row"].startswith("average of 2 task scores"))
    assert float(average["roberta_mean"]) == pytest.approx((85.0 + 59.5) / 2)  # MNLI once: mean of m and mm
    assert "paper_bert" in header


def test_the_report_says_what_the_data_is_and_keeps_the_papers_provenance(tmp_path):
    masking_grid(tmp_path / "runs", [1.0, 1.2])
    build(str(tmp_path / "runs"), tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "pretrained on synthetic (450 generated documents)" in text and "BERT-tiny" in text
    assert "fine-tuned on synthetic GLUE-shaped tasks, protocol cpu v1" in text
    assert "only the directions of effects, not their values" in text
    assert "SST-2 acc (dev)" not in text and "synthetic SST-2 acc" in text
    table1 = read_csv(tmp_path / "report" / "tables" / "table1.csv")
    dynamic = row(table1, "dynamic", "synthetic SST-2 acc")
    assert (dynamic["paper"], dynamic["paper_split"], dynamic["paper_metric"], dynamic["paper_source"]) == \
        ("92.9", "dev", "accuracy", "RoBERTa Table 1")
    assert dynamic["n"] == "2" and float(dynamic["std"]) > 0 and dynamic["text"].startswith(f"{float(dynamic['mean']):.1f}")


def test_real_glue_tasks_are_labelled_dev_and_table4_holds_the_papers_rows(tmp_path):
    root = tmp_path / "runs"
    real = {"source": "tsv", "protocol": {"name": "cpu", "version": 1}, "seeds": [1, 2, 3], "train_limit": 2000}
    for seed in range(2):
        for size, value in ((0.25, 0.80), (None, 0.82 + seed / 200)):
            cell(root, seed, data="books", data_size=size, recipe=real, glue={"sst2/accuracy": seeds(value)})
    build(str(root), tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "SST-2 acc (dev)" in text and "synthetic" not in text.split("## Table")[0]
    table4 = read_csv(tmp_path / "report" / "tables" / "table4.csv")
    paper_row = row(table4, "roberta_more_data_100k (paper)", "SST-2 acc (dev)")
    assert paper_row["paper"] == "95.6" and paper_row["paper_source"] == "RoBERTa Table 4"
    assert row(table4, "roberta_more_data_100k (paper)", "perplexity (held-out)")["text"] == "not in paper"
    needed = row(read_csv(tmp_path / "report" / "tables" / "seeds_needed.csv"), "data", "SST-2 acc (dev)")
    assert needed["for"] == "paper"  # the paper's +0.3 (160GB - 16GB), in our units on the real task


def markdown_table(text: str, title: str) -> list[list[str]]:
    """The rows (header first) of the report.md table under `## title`."""
    body = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    return [[c.strip() for c in line.strip("|").split("|")] for line in body.splitlines()
            if line.startswith("|") and not line.startswith("|---")]


def test_table4_marks_a_cell_that_fewer_seeds_hold_than_its_n(tmp_path):
    """As every arm table does: 3 pretraining seeds finished, SST-2 holds 2 of them (the third's failed)."""
    root = tmp_path / "runs"
    for seed in range(3):
        for size in (0.5, None):
            cell(root, seed, data_size=size, glue={"sst2/accuracy": seeds(0.8)} if seed or size else None)
    build(str(root), tmp_path / "report")
    table4 = read_csv(tmp_path / "report" / "tables" / "table4.csv")
    assert row(table4, "synthetic all", "synthetic SST-2 acc")["text"] == "80.0 ±0.0 (n=2)"
    assert row(table4, "synthetic 0.5", "synthetic SST-2 acc")["text"] == "80.0 ±0.0"


def test_settings_columns_hold_our_plan_and_say_where_a_value_is_the_papers(tmp_path):
    """Table 3 without bsz8k: its row is the paper's, labelled so, not values under our plan's headers; Table 4's and
    the training configuration's paper rows give their corpus in GB, under a header that is not our token count."""
    root = tmp_path / "runs"
    for seed in range(2):
        for schedule in ("bsz256", "bsz2k"):
            for size in (0.5, None):
                cell(root, seed, schedule=schedule, data_size=size, metrics={"val/mlm_loss": 3.0})
    build(str(root), tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    header, *rows = markdown_table(text, "Table 3: batch size at equal tokens")
    bsz8k = dict(zip(header, next(r for r in rows if r[0].startswith("bsz8k"))))
    assert bsz8k["n"] == "not run" and bsz8k["batch"] == "paper: 8K" and bsz8k["peak LR"] == "paper: 0.001"
    for title, paper_row in (("Table 4: data size", "paper: roberta more data 100k"),
                             ("Training configuration of each arm beside BERT's and RoBERTa's", "RoBERTa (paper)")):
        header, *rows = markdown_table(text, title)
        column = next(i for i, cell_ in enumerate(next(r for r in rows if r[0] == paper_row)) if "GB" in cell_)
        assert "tokens" not in header[column], (title, header[column])


def test_failed_missing_and_malformed_runs_appear_as_such(tmp_path):
    root = tmp_path / "runs"
    masking_grid(root, [1.0, 1.2])
    cell(root, 2, masking="static", status="failed")
    (root / "cells" / "broken").mkdir()
    (root / "cells" / "broken" / "results.json").write_text("{not json")
    build(str(root), tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "5 runs in 2 arms: 1 failed, 4 ok; 1 malformed runs skipped" in text
    assert "broken/results.json: unreadable" in text
    assert "| 2 (1 of 3 failed) |" in text  # the failed seed is counted, not averaged in
    assert "| sentence_pair + NSP | not run |" not in text and "Table 2: input format and NSP: skipped" in text
    assert "Table 4: data size: skipped" in text
    for name in ("report.md", "report.tex", "report.html", "figures/effects.png", "figures/effects.pdf",
                 "figures/loss_curves.png", "figures/glue_tasks.pdf"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    tex = (tmp_path / "report" / "report.tex").read_text()
    assert r"\documentclass" in tex and r"\label{tab:table1}" in tex and "n.s." not in tex.split("tab:table1")[0]


def test_a_value_that_is_not_finite_is_left_out_of_its_cell_and_the_cell_says_so(tmp_path):
    """A results.json written elsewhere (or edited) with a NaN loss in a finished run: the report is still built,
    and the cell averages the seeds that hold a number."""
    root = tmp_path / "runs"
    masking_grid(root, [1.0, 1.2, 0.8])
    path = next(root.glob("cells/*dynamic*-s0/results.json"))
    results = json.loads(path.read_text())
    results["metrics"].update({"val/mlm_loss": float("nan"), "val/perplexity": float("nan")})
    path.write_text(json.dumps(results))
    build(str(root), tmp_path / "report")
    perplexity = row(read_csv(tmp_path / "report" / "tables" / "table1.csv"), "dynamic", "perplexity (held-out)")
    assert perplexity["n"] == "2" and perplexity["text"] == "10.50 ±0.71 (n=2)"


def test_paper_columns_equal_the_reference_values(tmp_path):
    assert paper.value("table1", "dynamic", "sst2").value == 92.9
    assert paper.value("table3", "bsz8k", "perplexity").value == 3.77
    assert paper.delta("table2", "full_sentences", "segment_pair+nsp", "mnli_m").value == pytest.approx(0.7)
    assert paper.bert_no_nsp("qnli").value == -3.5 and paper.bert_no_nsp("qnli").source == "BERT Table 5"
    assert paper.delta("table3", "bsz2k", "bsz256", "mlm_loss").value == pytest.approx(-0.081, abs=1e-3)


def test_runs_under_another_glue_fingerprint_are_not_mixed(tmp_path):
    root = tmp_path / "runs"
    masking_grid(root, [1.0, 1.2])
    cell(root, 0, schedule="bsz8k", glue={"sst2/accuracy": seeds(0.9)}, fingerprint="fp2")
    build(str(root), tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "GLUE fingerprint fp1 (4 runs)" in text and "(--glue picks one): fp2 (1 runs)" in text
    batch = row(read_csv(tmp_path / "report" / "tables" / "ablation_summary.csv"), "bsz8k − bsz256",
                "synthetic SST-2 acc")
    assert batch["delta"] == ""  # the only bsz8k arm was fine-tuned under the other fingerprint
    build(str(root), tmp_path / "report2", glue="fp2")
    assert "GLUE fingerprint fp2 (1 runs)" in (tmp_path / "report2" / "report.md").read_text()


def test_bad_sources_give_a_short_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        build(str(tmp_path / "missing"), tmp_path / "out")
    with pytest.raises(ConfigError, match="no results.json of a pretraining cell"):
        build(str(tmp_path), tmp_path / "out")
    with pytest.raises(ConfigError, match="no run holds GLUE results under this fingerprint"):
        masking_grid(tmp_path / "runs", [1.0])
        build(str(tmp_path / "runs"), tmp_path / "out", glue="nope")
    (tmp_path / "cell").mkdir()
    old = cell(tmp_path / "old")
    (tmp_path / "cell" / "results.json").write_text(json.dumps({**old, "schema_version": 99}))
    with pytest.raises(ConfigError, match=f"schema_version 99; this report reads version {SCHEMA_VERSION}"):
        build(str(tmp_path), tmp_path / "out")
    with pytest.raises(ConfigError, match="no offline W&B runs"):
        build(f"wandb-offline:{tmp_path}", tmp_path / "out")


def test_cli_exits_non_zero_on_a_bad_source(tmp_path):
    result = subprocess.run(["python", "-m", "ablations.report", "--source", str(tmp_path / "none"), "--out",
                             str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 2 and "error: --source" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def tables_of(folder):
    return {p.name: p.read_text() for p in sorted((folder / "tables").glob("*.csv"))}


def api_runs(cells: list[dict]) -> list:
    """The runs a W&B project holds for these cells, shaped as wandb.Api returns them (config, summary, state,
    scan_history), built from results.json alone: the server is the one thing that cannot run here. That W&B
    stores exactly these keys is what the offline-reader comparison above checks."""
    import types

    runs = []
    for r in cells:
        config = {**r["config"], **{f"factor/{k}": v for k, v in r["factors"].items()}, "cell_id": r["cell_id"],
                  "arm_id": r["arm_id"]}
        summary = {**r["metrics"], "status": r["status"], "tokens_seen": r["tokens_seen"],
                   "data/train_tokens": r["data"]["train_tokens"], **{f"plan/{k}": v for k, v in r["plan"].items()},
                   **{f"compute/{k}": v for k, v in r["compute"].items()}}
        history = [{"trainer/global_step": step, "train/loss": loss} for step, loss in r["curve"]]
        runs.append(types.SimpleNamespace(id=r["cell_id"], name=r["name"], config=config, summary=summary,
                                          state="finished", scan_history=lambda keys, h=history: iter(h)))
        for stage in ("glue", "rc"):
            for fp, entry in (r.get(stage) or {}).items():
                for task, result in entry["tasks"].items():
                    for seed, run in result["seeds"].items():
                        runs.append(types.SimpleNamespace(
                            id=f"{r['cell_id']}-{fp}-{task}-s{seed}", name=f"{r['name']}-{task}-seed{seed}",
                            config={**r["config"], "cell_id": r["cell_id"], f"{stage}/task": task,
                                    f"{stage}/seed": int(seed), f"{stage}/fingerprint": fp,
                                    f"{stage}/protocol": {**entry["recipe"]["protocol"],
                                                          "data_sha": result.get("data_sha")}}, state="finished",
                            scan_history=lambda keys: iter([]),
                            summary={f"{stage}/{k}": v for k, v in run.get("metrics", {}).items()}))
    return runs


def serve(monkeypatch, cells: list[dict]) -> None:
    """wandb.Api serves these cells' runs as the project team/roberta-ablations."""
    import wandb

    served = api_runs(cells)

    class Api:
        def __init__(self, timeout):
            pass

        def runs(self, path):
            assert path == "team/roberta-ablations"
            return served

    monkeypatch.setattr(wandb, "Api", Api)


def test_a_task_with_a_diverged_seed_is_left_out_from_every_source_and_its_cell_says_so(tmp_path, monkeypatch):
    """results.json drops a task when one of its fine-tuning seeds diverged; in W&B that seed's run finished with
    no scores while the others hold theirs. Both sources must leave the whole task out, or the W&B tables would
    rest on the seeds that happened not to diverge. The cell then holds fewer pretraining seeds than its arm, and
    says so."""
    root = tmp_path / "runs"
    masking_grid(root, [2.0, 2.2, 1.8])
    path = next(root.glob("cells/*dynamic*-s0/results.json"))
    diverged = json.loads(path.read_text())
    task = diverged["glue"]["fp1"]["tasks"]["sst2"]
    task["seeds"]["3"] = {"status": "diverged"}
    task.update(status="diverged", diverged_seeds=[3])
    path.write_text(json.dumps(diverged))
    build(str(root), tmp_path / "from_results")
    serve(monkeypatch, [json.loads(p.read_text()) for p in root.glob("cells/*/results.json")])
    build("wandb:team/roberta-ablations", tmp_path / "from_api")
    assert tables_of(tmp_path / "from_api") == tables_of(tmp_path / "from_results")
    sst2 = row(read_csv(tmp_path / "from_results" / "tables" / "table1.csv"), "dynamic", "synthetic SST-2 acc")
    assert sst2["n"] == "2" and sst2["text"].endswith("(n=2)")  # the arm's n column says 3 pretraining seeds
    markdown = (tmp_path / "from_results" / "report.md").read_text().splitlines()
    assert f" {sst2['text']} |" in next(line for line in markdown if line.startswith("| dynamic | 3 |"))


def test_runs_fine_tuned_on_other_data_under_one_fingerprint_are_not_pooled(tmp_path, monkeypatch):
    """A fingerprint leaves out where the task files are (their content is hashed per task instead): cells of one
    fingerprint fine-tuned on two versions of SST-2 must not share a cell. The version most runs hold fills the
    columns, the others are named, from results.json and from W&B alike."""
    root = tmp_path / "runs"
    for seed, sha, accuracy in ((0, "aaaa", 0.80), (1, "aaaa", 0.81), (2, "bbbb", 0.95)):
        for masking in ("static", "dynamic"):
            results = cell(root, seed, masking=masking, glue={"sst2/accuracy": seeds(accuracy)})
            results["glue"]["fp1"]["tasks"]["sst2"]["data_sha"] = sha
            (root / "cells" / results["cell_id"] / "results.json").write_text(json.dumps(results))
    build(str(root), tmp_path / "from_results")
    sst2 = row(read_csv(tmp_path / "from_results" / "tables" / "table1.csv"), "static", "synthetic SST-2 acc")
    assert sst2["text"] == "80.5 ±0.7 (n=2)"
    header = (tmp_path / "from_results" / "report.md").read_text()
    assert "sst2: 2 runs fine-tuned on other data (bbbb) left out, the columns hold data aaaa (4 runs)" in header
    serve(monkeypatch, [json.loads(p.read_text()) for p in root.glob("cells/*/results.json")])
    build("wandb:team/roberta-ablations", tmp_path / "from_api")
    assert tables_of(tmp_path / "from_api") == tables_of(tmp_path / "from_results")


def test_default_grid_gives_identical_tables_from_results_offline_wandb_and_the_wandb_api(grid, tmp_path, monkeypatch):
    root, _ = grid
    build(str(root / "cells"), tmp_path / "from_results")
    build(f"wandb-offline:{root / 'wandb'}", tmp_path / "from_wandb")
    expected = tables_of(tmp_path / "from_results")
    assert tables_of(tmp_path / "from_wandb") == expected
    assert set(expected) >= {"table1.csv", "table2.csv", "ablation_summary.csv", "glue_comparison.csv",
                             "squad_comparison.csv"}
    # the plots read the same training curves from either source, every step where results.json has it
    curves = lambda source: {r.cell_id: r.curve for r in load(source).runs}
    assert curves(str(root / "cells")) == curves(f"wandb-offline:{root / 'wandb'}")

    serve(monkeypatch, [json.loads(p.read_text()) for p in root.glob("cells/*/results.json")])
    build("wandb:team/roberta-ablations", tmp_path / "from_api")
    assert tables_of(tmp_path / "from_api") == expected
    assert curves("wandb:team/roberta-ablations") == curves(str(root / "cells"))


def test_the_offline_wandb_reader_works_when_the_venvs_bin_is_not_on_path(grid, tmp_path):
    root, _ = grid
    cell_id = json.loads(next(root.glob("cells/*/results.json")).read_text())["cell_id"]
    [run_dir] = (root / "wandb").glob(f"offline-run-*-{cell_id}")  # one cell's run: W&B's CLI reads it or fails
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / run_dir.name).symlink_to(run_dir)
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "ablations.report", "--source", f"wandb-offline:{tmp_path / 'runs'}",
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 runs in 1 arms: 1 ok" in (tmp_path / "out" / "report.md").read_text()


def test_the_grid_ends_with_its_report_in_the_sweep_folder(grid):
    root, _ = grid
    text = (root / "sweep" / "report" / "report.md").read_text()
    for title in ("Table 1: static vs dynamic masking", "Table 2: input format and NSP", "Ablation summary",
                  "GLUE: BERT-style vs RoBERTa-style"):
        assert f"## {title}" in text
    assert "| 92.9 |" in text  # the paper column beside ours (Table 1, dynamic, SST-2)
    # one pretraining seed per arm: synthetic data said so, n everywhere, no interval on any pretraining effect
    assert "pretrained on synthetic (" in text and "synthetic GLUE-shaped tasks" in text
    effects = read_csv(root / "sweep" / "report" / "tables" / "ablation_summary.csv")
    assert effects and all(r["low"] == "" and "(1 pretraining seed)" in r["text"] for r in effects if r["text"] != "—")


def test_the_html_report_renders_in_a_real_browser(tmp_path):
    """Headless Chromium through WebDriver: every figure loads as a non-blank image of its size, every table has its
    caption and rows, and a screenshot is kept as the test's artifact (REPORT_SCREENSHOT, else the tmp folder)."""
    import io

    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = system_tool("chromium", "chromium-browser"), system_tool("chromedriver")
    root = tmp_path / "runs"
    masking_grid(root, [1.0, 1.2, 0.9])
    cell(root, 0, objective="mlm_nsp", masking="dynamic", glue={"sst2/accuracy": seeds(0.7)})
    build(str(root), tmp_path / "report")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--window-size=1400,1000"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        browser.get((tmp_path / "report" / "report.html").as_uri())
        figures = browser.find_elements("css selector", "figure")
        assert len(figures) == 3
        for figure in figures:
            image = figure.find_element("tag name", "img")
            width, height = browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]",
                                                   image)
            png = Image.open(tmp_path / "report" / "figures" / f"{figure.get_attribute('id')}.png")
            assert (width, height) == png.size and width > 400
            shown = Image.open(io.BytesIO(image.screenshot_as_png)).convert("L")
            assert shown.getextrema()[1] - shown.getextrema()[0] > 100  # drawn, not blank
            assert figure.find_element("tag name", "figcaption").text.startswith(
                ("Training loss", "Each factor", "Fine-tuning"))
        tables = browser.find_elements("css selector", "table")
        assert len(tables) >= 5 and all(t.find_element("tag name", "caption").text.startswith("Ours: BERT-tiny")
                                        for t in tables)
        assert "Table 1: static vs dynamic masking" in browser.find_element("tag name", "body").text
        artifact = Path(os.environ.get("REPORT_SCREENSHOT", tmp_path / "report.png"))
        browser.set_window_size(1400, browser.execute_script("return document.body.scrollHeight"))
        browser.save_screenshot(str(artifact))
        assert Image.open(artifact).size[1] > 2000
    finally:
        browser.quit()


def test_report_tex_compiles_into_a_pdf(tmp_path):
    """Every table a complete float (caption, label, notes) in a document pdflatex builds as it is."""
    pdflatex = system_tool("pdflatex")
    root = tmp_path / "runs"
    masking_grid(root, [1.0, 1.2, 0.7])
    cell(root, 0, objective="mlm_nsp", input_format="sentence_pair", glue={"sst2/accuracy": seeds(0.7)})
    build(str(root), tmp_path / "report")
    result = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error",  # fonts written readable
                             r"\pdfcompresslevel=0 \pdfobjcompresslevel=0 \input{report.tex}"],
                            cwd=tmp_path / "report", capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Output written on report.pdf" in result.stdout and (tmp_path / "report" / "report.pdf").stat().st_size > 5000
    assert "Overfull" not in result.stdout  # wide tables are scaled to the page
    assert "->" in (tmp_path / "report" / "report.md").read_text()  # a caveat's arrow, and "> 1000" seeds where so
    glyphs = (tmp_path / "report" / "report.pdf").read_bytes()  # the font subsets list every glyph set
    assert b"/greater" in glyphs and b"/questiondown" not in glyphs  # '>' in the default font encoding is a '¿'


def test_a_wandb_project_that_cannot_be_read_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path))  # no stored login
    with pytest.raises(ConfigError, match="wandb:nobody/nothing: cannot read this W&B project"):
        build("wandb:nobody/nothing", tmp_path / "out")
