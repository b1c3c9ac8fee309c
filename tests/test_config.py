"""Config groups compose, schedules share one token budget, and bad input fails early with a message
that names the key and what is allowed."""

import pytest

from ablations.cell import Cell
from ablations.config import ConfigError, check, plan
from conftest import make_cfg

GROUPS = {
    "objective": ["mlm", "mlm_nsp"], "masking": ["static", "dynamic"],
    "input_format": ["segment_pair", "sentence_pair", "full_sentences", "doc_sentences"],
    "schedule": ["bsz256", "bsz2k", "bsz8k"], "data": ["synthetic", "text_files", "hub", "books_wiki"],
    "model": ["tiny", "mini", "small", "medium", "base", "large"], "tokenizer": ["bpe", "wordpiece"],
    "trainer": ["cpu", "gpu", "ddp"], "logger": ["wandb", "none"],
}


@pytest.mark.parametrize("group,option", [(g, o) for g, options in GROUPS.items() for o in options])
def test_every_group_option_composes(group, option):
    cfg = make_cfg(f"{group}={option}")
    assert cfg[group].name == option


def test_objective_picks_its_input_format_and_the_user_can_override_it():
    assert make_cfg("objective=mlm").input_format.name == "full_sentences"
    assert make_cfg("objective=mlm_nsp").input_format.name == "segment_pair"
    assert make_cfg("objective=mlm_nsp", "input_format=sentence_pair").input_format.name == "sentence_pair"


def test_schedule_presets_train_on_the_same_real_token_budget():
    budgets = {}
    for preset, batch, lr in [("bsz256", 256, 1e-4), ("bsz2k", 2048, 7e-4), ("bsz8k", 8192, 1e-3)]:
        cfg = make_cfg(f"schedule={preset}")
        p = plan(cfg, tokens_per_sequence=50.0)
        assert p.batch == batch * cfg.schedule.batch_scale and p.batch_tokens == p.batch * cfg.seq_len
        assert p.peak_lr == pytest.approx(lr * cfg.schedule.lr_scale)
        budgets[preset] = p.steps * p.sequences * 50.0
    assert all(abs(b / make_cfg().schedule.total_tokens - 1) < 0.01 for b in budgets.values())


def test_short_sequences_take_more_of_them_per_step():
    cfg = make_cfg()
    full, short = plan(cfg, tokens_per_sequence=60.0), plan(cfg, tokens_per_sequence=20.0)
    assert short.sequences == pytest.approx(3 * full.sequences, abs=1)
    assert short.batch_tokens == full.batch_tokens and short.steps == pytest.approx(full.steps, abs=1)


def test_batch_scale_keeps_the_ratios():
    plans = [plan(make_cfg(f"schedule={s}", "schedule.batch_scale=0.25"), 64.0) for s in ("bsz256", "bsz2k", "bsz8k")]
    assert [p.batch for p in plans] == [64, 512, 2048] and [p.sequences for p in plans] == [64, 512, 2048]


SCIENCE = ["seed=1", "objective=mlm_nsp", "input_format=doc_sentences", "masking=static", "masking.dupe_factor=5",
           "masking.mlm_probability=0.2", "masking.mask_replace_prob=0.7", "masking.random_replace_prob=0.2",
           "schedule=bsz2k", "schedule.total_tokens=2097152", "schedule.batch_scale=0.25", "schedule.lr_scale=5",
           "schedule.warmup_fraction=0.1", "schedule.weight_decay=0.1", "schedule.adam_betas=[0.9,0.999]",
           "schedule.adam_eps=1e-8", "schedule.clip_grad_norm=1.0", "data.size=0.5", "data.valid_fraction=0.1",
           "data.seed=7", "data.sources.synthetic.num_documents=100", "data.sources.synthetic.seed=3", "model=mini",
           "model.hidden_dropout_prob=0", "tokenizer=wordpiece", "tokenizer.vocab_size=4096", "seq_len=32"]
IMPLEMENTATION = ["trainer.micro_batch_size=8", "logger=none", "trainer.num_workers=2", "trainer.threads=1",
                  "trainer.checkpoint_every_steps=7", "trainer.log_every_steps=3", "trainer.compile=true",
                  "glue.seeds=[4]", "glue.tasks=[stsb]", "glue.protocol.lr=1e-4", "stage=pretrain", "force=true",
                  "cost.device=a100", "tags=[x]"]


@pytest.mark.parametrize("override", SCIENCE)
def test_every_science_setting_changes_the_cell_id_and_the_arm(override):
    base = Cell.of(make_cfg(), root="/r")
    other = Cell.of(make_cfg(override), "/r")
    assert other.id != base.id
    assert (other.arm_id == base.arm_id) == (override == "seed=1")


def test_implementation_settings_never_change_the_cell_id():
    assert Cell.of(make_cfg(*IMPLEMENTATION), "/r").id == Cell.of(make_cfg(), "/r").id


@pytest.mark.parametrize("overrides,message", [
    (["masking.mlm_probability=0"], "masking.mlm_probability=0: allowed strictly between 0 and 1"),
    (["masking.mlm_probability=1.5"], "masking.mlm_probability"),
    (["masking.mask_replace_prob=0.95"], "must sum to at most 1"),
    (["masking.random_replace_prob=-0.1"], "masking.random_replace_prob=-0.1: allowed 0 to 1"),
    (["masking=static", "masking.dupe_factor=0"], "masking.dupe_factor=0"),
    (["masking=dynamic", "masking.dupe_factor=-3"], "masking.dupe_factor=-3"),  # pair formats build that many copies
    (["schedule.total_tokens=0"], "schedule.total_tokens=0"),
    (["schedule.total_tokens=100"], "less than one batch"),
    (["schedule.batch_scale=0.001"], "schedule.batch_scale=0.001"),
    (["trainer.micro_batch_size=0"], "trainer.micro_batch_size=0"),
    (["schedule.clip_grad_norm=0"], "schedule.clip_grad_norm=0"),
    (["objective=mlm_nsp", "input_format=full_sentences"], "needs sentence pairs"),
    (["objective=mlm_nsp", "input_format=doc_sentences"], "needs sentence pairs"),
    (["data.size=0"], "data.size=0"),
    (["trainer.devices=0"], "trainer.devices=0: allowed a whole number >= 1"),
    (["data.size=1.5"], "data.size=1.5"),
    (["seq_len=1024"], "seq_len=1024"),
    (["data=text_files"], "data.sources.text_files.path is required"),
])
def test_bad_input_is_refused_with_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check(make_cfg(*overrides))


def test_static_masking_that_barely_differs_from_dynamic_and_oversized_batches_are_flagged():
    from ablations.budget import fairness_warnings

    static = make_cfg("masking=static")
    p = plan(static, 60.0)
    assert "fewer than 2 times" in fairness_warnings(static, p, epochs=15, copy_feeds=1.5, epoch_sequences=500)[0]
    assert fairness_warnings(static, p, epochs=25, copy_feeds=2.5, epoch_sequences=500) == []
    assert "larger than an epoch" in fairness_warnings(static, p, epochs=25, copy_feeds=2.5, epoch_sequences=10)[0]


def test_a_relative_corpus_path_names_the_folder_it_was_run_from(tmp_path, monkeypatch):
    """A text_files path is read relative to where run.py starts: `path=books` from two folders is two corpora, and
    must be two cells, not one finished cell reused for the other."""
    ids = []
    for here in ("a", "b"):
        (tmp_path / here / "books").mkdir(parents=True)
        (tmp_path / here / "books" / "book.txt").write_text("The same book. In both folders.")
        monkeypatch.chdir(tmp_path / here)
        cfg = make_cfg("data=text_files", "data.sources.text_files.path=books")
        check(cfg)
        assert cfg.data.sources.text_files.path == str(tmp_path / here / "books")
        ids.append(Cell.of(cfg, tmp_path).id)
    assert ids[0] != ids[1]


def test_a_text_files_corpus_is_the_contents_of_its_files(tmp_path):
    """A book added to a corpus folder makes another cell on another corpus: the folder's name alone once kept the
    finished cell, and force=true trained again on the corpus cached before the book came."""
    from ablations.data.pipeline import prepare
    from ablations.data.synthetic import generate_documents

    folder, seen = tmp_path / "books", []
    folder.mkdir()
    for book, document in enumerate(generate_documents(12, seed=0, num_topics=4)):
        if book == 10:
            seen.append(_cell_and_corpus(folder, tmp_path, prepare))
        (folder / f"{book}.txt").write_text(" ".join(document.texts()))
    seen.append(_cell_and_corpus(folder, tmp_path, prepare))
    (folder / "0.txt").write_text((folder / "0.txt").read_text() + " The end.")  # an edit, not a new file
    seen.append(_cell_and_corpus(folder, tmp_path, prepare))
    (cells, documents) = zip(*seen)
    assert len(set(cells)) == 3 and documents[0] < documents[1]


def _cell_and_corpus(folder, root, prepare):
    cfg = make_cfg("data=text_files", f"data.sources.text_files.path={folder}", "tokenizer.vocab_size=300")
    check(cfg)
    return Cell.of(cfg, root).id, prepare(cfg, root).stats["train_documents"]
