"""How the pieces connect, in process through the runner and the pipeline: the masked-positions MLM head, the
optimizer a cell gets, a diverging cell, force=true, a WordPiece cell end to end, books_wiki's weights, and the
fine-tuning options (best epoch, the reused pooler, the random-weights baseline, the same with or without a
pooler)."""

import json
import os

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer, BertForMaskedLM

from ablations.data.pipeline import prepare
from ablations.report.runs import _offline_history
from ablations.runner import run_cell
from conftest import make_cfg
from lightning_modules.pretrain import PretrainModule, adamw, bert_config, pretraining_losses

TINY = ["data.sources.synthetic.num_documents=40", "schedule.total_tokens=16384", "trainer.log_every_steps=2"]
GLUE = ["glue.tasks=[sst2]", "glue.seeds=[1]", "glue.train_size=64", "glue.dev_size=32", "rc.tasks=[]"]


def test_the_masked_positions_head_gives_the_full_heads_loss():
    model = BertForMaskedLM(bert_config(dict(make_cfg().model), 500, 1)).eval()
    ids = torch.randint(5, 500, (4, 20), generator=torch.Generator().manual_seed(0))
    labels = torch.full_like(ids, -100)
    labels[:, ::4] = ids[:, ::4]
    positions = (labels.reshape(-1) != -100).nonzero().squeeze(1)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids),
             "masked_positions": positions, "masked_labels": labels.reshape(-1)[positions]}
    with torch.no_grad():
        ours = pretraining_losses(model, batch, nsp=False)["mlm_sum"] / len(positions)
        full = model(input_ids=ids, attention_mask=batch["attention_mask"], labels=labels).loss
    assert float(ours) == pytest.approx(float(full), rel=1e-5)


def test_biases_and_layernorm_weights_get_no_weight_decay():
    module = PretrainModule(dict(make_cfg().model), 500, 1, nsp=False, steps=10, warmup_steps=1, sequences=8,
                            optimizer={"lr": 1e-3, "weight_decay": 0.01, "betas": [0.9, 0.98], "eps": 1e-6})
    decayed, plain = adamw(module.model.named_parameters(), 1e-3, 0.01).param_groups
    names = {id(p): n for n, p in module.model.named_parameters()}
    assert decayed["weight_decay"] == 0.01 and plain["weight_decay"] == 0.0
    assert all(names[id(p)].endswith("weight") and "LayerNorm" not in names[id(p)] for p in decayed["params"])
    assert {names[id(p)].rsplit(".", 1)[-1] for p in plain["params"]} == {"bias", "weight"}
    assert all(names[id(p)].endswith("bias") or "LayerNorm" in names[id(p)] for p in plain["params"])


@pytest.fixture(scope="module")
def logged_cell(tmp_path_factory):
    root = tmp_path_factory.mktemp("logged")
    results = run_cell(make_cfg(*TINY, "stage=pretrain", "schedule.lr_scale=3", "schedule.warmup_fraction=0.25",
                                f"logger.dir={root}", root=root))
    return root, results


def test_peak_lr_lr_scale_and_warmup_reach_the_optimizer(logged_cell):
    root, results = logged_cell
    plan = results["plan"]
    assert plan["peak_lr"] == pytest.approx(1e-4 * 3) and plan["warmup_steps"] == int(np.ceil(0.25 * plan["steps"]))
    [run_dir] = (root / "wandb").glob("offline-run-*")
    logged = {int(h["trainer/global_step"]): h["train/lr"] for h in _offline_history(run_dir) if "train/lr" in h}
    assert len(logged) > 3
    for step, lr in logged.items():  # the LR the next step uses: linear warmup, then linear decay to 0
        w, n = plan["warmup_steps"], plan["steps"]
        expected = plan["peak_lr"] * (step / w if step < w else max(0.0, (n - step) / (n - w)))
        assert lr == pytest.approx(expected, rel=1e-6, abs=1e-12), step


def test_a_diverging_cell_is_recorded_as_diverged_and_not_fine_tuned_nor_rerun(tmp_path):
    """A rerun once resumed from the diverged cell's last checkpoint (NaN weights, no step left) and recorded it
    ok, exporting a NaN model: a diverged cell is finished, force=true reruns it."""
    cfg = make_cfg(*TINY, *GLUE, "schedule.lr_scale=1e9", "logger=none", root=tmp_path)
    results = run_cell(cfg)
    assert results["status"] == "diverged" and results["model_dir"] is None and "glue" not in results
    assert run_cell(cfg)["status"] == "skipped"
    on_disk = json.loads((tmp_path / "cells" / results["cell_id"] / "results.json").read_text())
    assert on_disk["status"] == "diverged" and not (tmp_path / "cells" / results["cell_id"] / "model").exists()


def test_force_reruns_a_finished_cell_from_scratch(logged_cell):
    root, first = logged_cell
    skipped = run_cell(make_cfg(*TINY, "stage=pretrain", "schedule.lr_scale=3", "schedule.warmup_fraction=0.25",
                                "logger=none", root=root))
    assert skipped["status"] == "skipped" and skipped["timing"] == first["timing"]
    forced = run_cell(make_cfg(*TINY, "stage=pretrain", "schedule.lr_scale=3", "schedule.warmup_fraction=0.25",
                               "logger=none", "force=true", root=root))
    assert forced["status"] == "ok" and forced["timing"] != first["timing"]
    assert forced["metrics"]["val/mlm_loss"] == pytest.approx(first["metrics"]["val/mlm_loss"], rel=1e-5)


def test_a_wordpiece_cell_trains_and_exports_a_model_plain_transformers_loads(tmp_path):
    results = run_cell(make_cfg(*TINY, "tokenizer=wordpiece", "stage=pretrain", "logger=none", root=tmp_path))
    tokenizer = AutoTokenizer.from_pretrained(results["model_dir"])
    encoded = tokenizer("Elena FILLS the jar.", "Then she smiles.")
    tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2 and "fills" in tokenizer.decode(encoded["input_ids"])
    assert AutoModel.from_pretrained(results["model_dir"]).config.vocab_size == len(tokenizer)


def test_books_wiki_mixes_its_sources_by_their_weights(tmp_path):
    for name, word, count in (("books", "alpha", 40), ("wiki", "beta", 120)):
        (tmp_path / name).mkdir()
        for d in range(count):
            (tmp_path / name / f"{d}.txt").write_text(" ".join([f"{word.capitalize()} {word} {word} {d}."] * 8))
    cfg = make_cfg("data=books_wiki", f"data.sources.books.path={tmp_path / 'books'}",
                   f"data.sources.wiki.path={tmp_path / 'wiki'}", "data.sources.wiki.doc_split=file",
                   "data.size=0.5", "tokenizer.vocab_size=300")
    data = prepare(cfg, tmp_path / "root")
    tok = data.tokenizer
    alpha, beta = (tok.convert_tokens_to_ids(tok.tokenize(f" {w}"))[0] for w in ("alpha", "beta"))
    ids = np.asarray(data.train.instances(0).input_ids)
    share = (ids == beta).sum() / ((ids == alpha).sum() + (ids == beta).sum())
    assert share == pytest.approx(0.75, abs=0.05)  # wiki weight 3 : books weight 1


def test_best_epoch_selection_and_the_random_weights_baseline(tmp_path):
    overrides = [*TINY, *GLUE, "stage=finetune", "model.pretrained=random", "glue.protocol.select=best",
                 "glue.protocol.epochs=3", "logger=none"]
    first = run_cell(make_cfg(*overrides, root=tmp_path))
    [entry] = first["glue"].values()
    [seed] = entry["tasks"]["sst2"]["seeds"].values()
    scores = {int(e): s for e, s in seed["dev_scores"].items()}
    assert len(scores) == 3 and seed["epoch"] == max(scores, key=scores.get)
    assert entry["checkpoint"] == "random" and first["factors"]["pretrained"] == "random"
    again = run_cell(make_cfg(*overrides, root=tmp_path / "again"))  # the same untrained weights every time
    [seed_again] = next(iter(again["glue"].values()))["tasks"]["sst2"]["seeds"].values()
    assert (seed_again["metrics"], seed_again["dev_scores"]) == (seed["metrics"], seed["dev_scores"])


def test_reuse_pooler_loads_the_nsp_trained_pooler_and_the_default_leaves_it_out(tmp_path):
    from ablations.glue.checkpoint import from_pretrained

    results = run_cell(make_cfg(*TINY, "objective=mlm_nsp", "stage=pretrain", "logger=none", root=tmp_path))
    trained = AutoModel.from_pretrained(results["model_dir"]).pooler.dense.weight
    assert torch.equal(from_pretrained(results["model_dir"], reuse_pooler=True).model.pooler.dense.weight, trained)
    assert from_pretrained(results["model_dir"], reuse_pooler=False).model.pooler is None


def test_the_random_weights_baseline_is_the_same_encoder_with_or_without_the_pooler(tmp_path):
    """glue.protocol.reuse_pooler is a GLUE setting: reading comprehension keys its results without it, so the
    untrained encoder it fine-tunes must not depend on whether a pooler was built beside it."""
    from ablations.glue.checkpoint import random_init

    cfg = make_cfg(*TINY)
    tokenizer = prepare(cfg, tmp_path).tokenizer
    encoders = []
    for reuse_pooler in (False, True):
        torch.manual_seed(0)  # as the runner seeds before building the baseline
        checkpoint = random_init(dict(cfg.model), tokenizer, reuse_pooler, cfg.seq_len)
        assert (checkpoint.model.pooler is not None) == reuse_pooler
        encoders.append({k: v for k, v in checkpoint.model.state_dict().items() if not k.startswith("pooler.")})
    assert encoders[0].keys() == encoders[1].keys()
    assert all(torch.equal(encoders[0][k], encoders[1][k]) for k in encoders[0])


def test_finetune_alone_uses_the_model_under_the_current_root_after_the_outputs_moved(tmp_path):
    """results.json records where the model was exported; a moved or copied outputs folder must fine-tune its own
    model, not the one at the old place (gone, or another tree's)."""
    first = run_cell(make_cfg(*TINY, *GLUE, "stage=pretrain", "logger=none", root=tmp_path / "old"))
    (tmp_path / "old").rename(tmp_path / "new")
    moved = run_cell(make_cfg(*TINY, *GLUE, "stage=finetune", "logger=none", root=tmp_path / "new"))
    assert moved["cell_id"] == first["cell_id"] and moved["glue"]
    [entry] = moved["glue"].values()
    assert entry["checkpoint"] == str(tmp_path / "new" / "cells" / first["cell_id"] / "model")


def test_fine_tuning_leaves_torchs_deterministic_mode_as_it_found_it(tmp_path, monkeypatch):
    """Trainer(deterministic=True) switches deterministic algorithms on for the whole process (and sets cuBLAS's
    workspace): the next cell a grid process runs would pretrain under other kernels than one run alone."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    assert not torch.are_deterministic_algorithms_enabled()
    run_cell(make_cfg(*TINY, *GLUE, "stage=finetune", "model.pretrained=random", "logger=none", root=tmp_path))
    assert not torch.are_deterministic_algorithms_enabled() and "CUBLAS_WORKSPACE_CONFIG" not in os.environ


def test_force_with_stage_finetune_refits_the_selected_tasks_and_keeps_the_checkpoints(tmp_path, caplog):
    """force=true reruns what the stage selects: with stage=finetune, the fine-tuning, on the pretrained model; it
    once kept every finished task and deleted the pretraining checkpoints instead."""
    first = run_cell(make_cfg(*TINY, *GLUE, "logger=none", root=tmp_path))
    checkpoints = tmp_path / "cells" / first["cell_id"] / "checkpoints"
    assert list(checkpoints.glob("*.ckpt"))
    with caplog.at_level("INFO"):
        again = run_cell(make_cfg(*TINY, *GLUE, "stage=finetune", "force=true", "logger=none", root=tmp_path))
    assert "finished under fingerprint" not in caplog.text and "glue sst2 seed 1: score" in caplog.text
    assert list(checkpoints.glob("*.ckpt")) and again["steps"] == first["steps"]
    assert again["glue"].keys() == first["glue"].keys()
