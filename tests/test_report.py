"""The report generator on runs with known effects (written here), on the real default grid (results.json
and its offline W&B runs must give identical tables), and on bad sources."""

import csv
import json
import shutil
import subprocess

import pytest

from ablations.cell import SCHEMA_VERSION
from ablations.config import ConfigError
from ablations.report import build
from ablations.report.tables import paper_value

SEEDS = [1, 2, 3, 4, 5]
SHARED = [0.0, 0.01, -0.01, 0.02, -0.02]       # per fine-tuning seed, the same in every arm: pairing removes it
DYNAMIC_NOISE = [0.003, -0.003, 0.002, -0.002, 0.0]  # only in dynamic arms, mean 0: no real masking effect on SST-2
RECIPE = {"source": "synthetic", "protocol": {"name": "cpu", "version": 1}, "seeds": SEEDS, "train_limit": None}


def results(objective, masking, schedule="bsz256", seed=0, status="ok"):
    mlm, dynamic = objective == "mlm", masking == "dynamic"
    factors = {"objective": objective, "masking": masking, "input_format": "full_sentences" if mlm else "segment_pair",
               "schedule": schedule, "data": "synthetic", "data_size": None, "model": "tiny", "tokenizer": "bpe",
               "seed": seed}
    cell_id = "-".join(str(v) for v in factors.values())
    seeds = {}
    for k, seed_k in enumerate(SEEDS):
        sst2 = 0.80 + 0.04 * mlm + SHARED[k] + dynamic * DYNAMIC_NOISE[k]
        mnli = 0.70 + 0.01 * dynamic + SHARED[k]
        seeds[str(seed_k)] = {"metrics": {"sst2/accuracy": sst2, "sst2/score": sst2, "mnli/accuracy": mnli,
                                          "mnli_mm/accuracy": mnli - 0.01, "mnli/score": mnli - 0.005}}
    glue = {"recipe": RECIPE,
            "tasks": {"sst2": {"status": "ok", "seeds": {s: {"metrics": {k: v for k, v in m["metrics"].items()
                                                                         if k.startswith("sst2")}}
                                                         for s, m in seeds.items()}},
                      "mnli": {"status": "ok", "seeds": {s: {"metrics": {k: v for k, v in m["metrics"].items()
                                                                         if k.startswith("mnli")}}
                                                         for s, m in seeds.items()}}}}
    batch = {"bsz256": 32, "bsz8k": 1024}[schedule]
    return {"schema_version": SCHEMA_VERSION, "cell_id": cell_id, "name": f"{objective}-{masking}-{schedule}-s{seed}",
            "status": status, "factors": factors, "config": {"seq_len": 64},
            "plan": {"batch": batch, "sequences": batch, "steps": 2 ** 20 // 64 // batch, "peak_lr": 1e-3, "warmup_steps": 5},
            "data": {"train_tokens": 100_000}, "tokens_seen": 2 ** 20,
            "metrics": {} if status != "ok" else {"val/perplexity": 11.0 - 1.0 * mlm - 0.5 * dynamic},
            "glue": {"fp1": glue} if status == "ok" else None, "curve": [[10, 5.0], [20, 4.0]]}


@pytest.fixture
def runs_dir(tmp_path):
    cells = [results(o, m) for o in ("mlm", "mlm_nsp") for m in ("static", "dynamic")]
    cells += [results("mlm", "dynamic", schedule="bsz8k"), results("mlm", "static", seed=1, status="failed")]
    for cell in cells:
        folder = tmp_path / "runs" / "cells" / cell["cell_id"]
        folder.mkdir(parents=True)
        (folder / "results.json").write_text(json.dumps(cell))
    (tmp_path / "runs" / "cells" / "broken").mkdir()
    (tmp_path / "runs" / "cells" / "broken" / "results.json").write_text("{not json")
    return tmp_path / "runs"


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def row(records, name, column):
    return next(r for r in records if r["row"].startswith(name) and r["column"] == column)


def test_known_effects_come_out_exactly_with_intervals_and_noise_marks(runs_dir, tmp_path):
    build(str(runs_dir), tmp_path / "report")
    summary = read_csv(tmp_path / "report" / "tables" / "ablation_summary.csv")
    nsp = row(summary, "NSP removal", "SST-2 acc (dev)")
    assert float(nsp["delta"]) == pytest.approx(4.0) and nsp["within_noise"] == "False"
    assert float(nsp["low"]) <= 4.0 <= float(nsp["high"])
    masking_sst2 = row(summary, "dynamic masking", "SST-2 acc (dev)")
    assert float(masking_sst2["delta"]) == pytest.approx(0.0, abs=1e-9) and masking_sst2["within_noise"] == "True"
    masking_mnli = row(summary, "dynamic masking", "MNLI-m acc (dev)")
    assert float(masking_mnli["delta"]) == pytest.approx(1.0) and float(masking_mnli["low"]) == pytest.approx(1.0)
    # perplexity: one pretraining seed per cell, so the masking effect pools one difference per objective
    masking_ppl = row(summary, "dynamic masking", "perplexity (held-out)")
    assert float(masking_ppl["delta"]) == pytest.approx(-0.5)
    batch = row(summary, "larger batch", "SST-2 acc (dev)")
    assert float(batch["delta"]) == pytest.approx(0.0, abs=1e-9) and batch["n"] == "5"

    table1 = read_csv(tmp_path / "report" / "tables" / "table1.csv")
    dynamic_mlm = next(r for r in table1 if r["row"] == "dynamic (mlm, full_sentences, bsz256)"
                       and r["column"] == "SST-2 acc (dev)")
    assert float(dynamic_mlm["median"]) == pytest.approx(84.3)  # 80 + 4 + 100 * median(SHARED + DYNAMIC_NOISE)
    assert dynamic_mlm["paper"] == "92.9"


def test_paper_columns_equal_the_reference_values(runs_dir, tmp_path):
    assert paper_value("table1", "dynamic", "sst2") == 92.9
    assert paper_value("table3", "bsz8k", "perplexity") == 3.77
    build(str(runs_dir), tmp_path / "report")
    table3 = read_csv(tmp_path / "report" / "tables" / "table3.csv")
    assert {r["paper"] for r in table3 if r["row"].startswith("bsz8k") and r["column"] == "perplexity (held-out)"} \
        == {"3.77"}
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| bsz2k | not run |" in text  # a missing arm shows as such, with the paper's numbers beside it


def test_failed_missing_and_malformed_runs_appear_as_such(runs_dir, tmp_path):
    build(str(runs_dir), tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "6 runs in 5 arms: 1 failed, 5 ok; 1 malformed runs skipped" in text
    assert "broken/results.json: unreadable" in text
    assert "2 (1 of 2 failed)" in text  # the failed replicate is counted, not averaged in
    assert "| sentence_pair + NSP | not run |" in text
    assert "Table 4: data size: skipped" in text and "data.size" in text
    for name in ("report.md", "report.tex", "report.html", "figures/deltas.png", "figures/deltas.pdf",
                 "figures/loss_curves.png", "figures/glue_tasks.pdf"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    assert r"\toprule" in (tmp_path / "report" / "report.tex").read_text()


def test_runs_under_another_glue_fingerprint_are_not_mixed(runs_dir, tmp_path):
    path = next(runs_dir.glob("cells/mlm-dynamic-full_sentences-bsz8k*/results.json"))
    cell = json.loads(path.read_text())
    cell["glue"] = {"fp2": cell["glue"]["fp1"]}
    path.write_text(json.dumps(cell))
    build(str(runs_dir), tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "GLUE fingerprint fp1 (4 runs)" in text and "left out of GLUE columns (--glue picks one): fp2 (1 runs)" in text
    batch = row(read_csv(tmp_path / "report" / "tables" / "ablation_summary.csv"), "larger batch", "SST-2 acc (dev)")
    assert batch["delta"] == ""  # the only bsz8k arm was fine-tuned under the other fingerprint


def test_bad_sources_give_a_short_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        build(str(tmp_path / "missing"), tmp_path / "out")
    with pytest.raises(ConfigError, match="no results.json of a pretraining cell"):
        build(str(tmp_path), tmp_path / "out")
    (tmp_path / "cell").mkdir()
    (tmp_path / "cell" / "results.json").write_text(json.dumps({**results("mlm", "static"), "schema_version": 99}))
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


def test_default_grid_gives_identical_tables_from_results_offline_wandb_and_the_wandb_api(grid, tmp_path, monkeypatch):
    """The W&B server is unreachable here, so for the online source wandb.Api is replaced by one that serves
    this grid's offline runs as W&B's own reader gives them; from the Api's run objects on, the path is real."""
    import types

    import wandb

    from ablations.report.runs import offline_records

    root, _ = grid
    build(str(root / "cells"), tmp_path / "from_results")
    build(f"wandb-offline:{root / 'wandb'}", tmp_path / "from_wandb")
    expected = tables_of(tmp_path / "from_results")
    assert tables_of(tmp_path / "from_wandb") == expected
    assert set(expected) >= {"table1.csv", "table2.csv", "ablation_summary.csv", "glue_comparison.csv"}

    records, _ = offline_records(root / "wandb")
    served = [types.SimpleNamespace(id=r.id, name=r.name, config=r.config, summary=r.summary, state=r.state,
                                    scan_history=lambda keys, r=r: iter(r.history())) for r in records]

    class Api:
        def __init__(self, timeout):
            pass

        def runs(self, path):
            assert path == "team/roberta-ablations"
            return served

    monkeypatch.setattr(wandb, "Api", Api)
    build("wandb:team/roberta-ablations", tmp_path / "from_api")
    assert tables_of(tmp_path / "from_api") == expected


def test_the_grid_ends_with_its_report_in_the_sweep_folder(grid):
    root, _ = grid
    text = (root / "sweep" / "report" / "report.md").read_text()
    for title in ("Table 1: static vs dynamic masking", "Table 2: input format and NSP", "Ablation summary",
                  "GLUE dev: BERT-style vs RoBERTa-style"):
        assert f"## {title}" in text
    assert "| 92.9 |" in text  # the paper column beside ours (Table 1, dynamic, SST-2)


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="no Chromium")
def test_html_page_renders_in_headless_chromium(runs_dir, tmp_path):
    build(str(runs_dir), tmp_path / "report")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    result = subprocess.run([chromium, "--headless", "--no-sandbox", "--dump-dom",
                             (tmp_path / "report" / "report.html").as_uri()], capture_output=True, text=True, timeout=60)
    assert "Table 1: static vs dynamic masking" in result.stdout and "data:image/png;base64," in result.stdout


def test_a_wandb_project_that_cannot_be_read_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path))  # no stored login
    with pytest.raises(ConfigError, match="wandb:nobody/nothing: cannot read this W&B project"):
        build("wandb:nobody/nothing", tmp_path / "out")
