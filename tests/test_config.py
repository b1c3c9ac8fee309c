"""Config groups compose, schedules share one token budget, and bad input fails early with a message
that names the key and what is allowed."""

import pytest

from ablations.cell import Cell
from ablations.config import ConfigError, check
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


def test_schedule_presets_train_on_the_same_token_budget():
    budgets = {}
    for preset, batch, lr in [("bsz256", 256, 1e-4), ("bsz2k", 2048, 7e-4), ("bsz8k", 8192, 1e-3)]:
        cfg = make_cfg(f"schedule={preset}")
        plan = check(cfg)
        assert plan.global_batch == batch * cfg.schedule.batch_scale
        assert plan.peak_lr == pytest.approx(lr * cfg.schedule.lr_scale)
        budgets[preset] = plan.steps * plan.global_batch * cfg.seq_len
    assert len(set(budgets.values())) == 1 and budgets["bsz256"] == make_cfg().schedule.total_tokens


def test_batch_scale_keeps_the_ratios_and_micro_batches_accumulate():
    plans = [check(make_cfg(f"schedule={s}", "schedule.batch_scale=0.25", "trainer.micro_batch_size=16"))
             for s in ("bsz256", "bsz2k", "bsz8k")]
    assert [p.global_batch for p in plans] == [64, 512, 2048]
    assert [p.accumulate for p in plans] == [4, 32, 128]


def test_cell_id_ignores_implementation_settings_but_not_science():
    base = Cell.of(make_cfg(), root="/r")
    assert Cell.of(make_cfg("trainer.micro_batch_size=8", "logger=none", "trainer.num_workers=2"), "/r").id == base.id
    for science in ("seed=1", "masking=static", "schedule=bsz2k", "data.size=0.5", "seq_len=32"):
        assert Cell.of(make_cfg(science), "/r").id != base.id, science


@pytest.mark.parametrize("overrides,message", [
    (["masking.mlm_probability=0"], "masking.mlm_probability=0: allowed strictly between 0 and 1"),
    (["masking.mlm_probability=1.5"], "masking.mlm_probability"),
    (["masking.mask_replace_prob=0.95"], "must sum to at most 1"),
    (["masking.random_replace_prob=-0.1"], "masking.random_replace_prob=-0.1: allowed 0 to 1"),
    (["masking=static", "masking.dupe_factor=0"], "masking.dupe_factor=0"),
    (["schedule.total_tokens=0"], "schedule.total_tokens=0"),
    (["schedule.total_tokens=100"], "less than one batch"),
    (["schedule.batch_scale=0.001"], "schedule.batch_scale=0.001"),
    (["trainer.micro_batch_size=24"], "not a multiple of trainer.micro_batch_size"),
    (["objective=mlm_nsp", "input_format=full_sentences"], "needs sentence pairs"),
    (["objective=mlm_nsp", "input_format=doc_sentences"], "needs sentence pairs"),
    (["data.size=0"], "data.size=0"),
    (["data.size=1.5"], "data.size=1.5"),
    (["seq_len=1024"], "seq_len=1024"),
    (["data=text_files"], "data.sources.text_files.path is required"),
])
def test_bad_input_is_refused_with_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check(make_cfg(*overrides))


def test_static_masking_that_cannot_differ_from_dynamic_is_flagged():
    from ablations.runner import _fairness_warnings

    static = make_cfg("masking=static")
    assert _fairness_warnings(static, epochs=static.masking.dupe_factor) != []
    assert "cannot differ from dynamic" in _fairness_warnings(static, epochs=3)[0]
    assert _fairness_warnings(static, epochs=static.masking.dupe_factor + 1) == []
    assert _fairness_warnings(make_cfg("masking=dynamic"), epochs=1) == []
