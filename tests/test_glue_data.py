"""The GLUE sources: the TSV reader on the real files, the synthetic tasks, and each bad input's error."""

import pytest
from omegaconf import OmegaConf

from ablations.config import ConfigError
from ablations.glue import synthetic, tasks
from ablations.glue.checkpoint import from_pretrained
from ablations.glue.stage import GLUE as STAGE
from conftest import SHARED_DATA, make_cfg

GLUE = SHARED_DATA / "glue"
OFFICIAL_ROWS = {  # GLUE / HF nyu-mll/glue sizes
    "cola": {"train": 8551, "dev": 1043}, "sst2": {"train": 67349, "dev": 872}, "mrpc": {"train": 3668, "dev": 408},
    "stsb": {"train": 5749, "dev": 1500}, "rte": {"train": 2490, "dev": 277}, "wnli": {"train": 635, "dev": 71},
    "qnli": {"dev": 5463},
}


def glue_cfg(**values):
    base = {"source": "tsv", "data_dir": str(GLUE), "tasks": ["rte"], "seeds": [1], "train_limit": None,
            "protocol": {"select": "last", "tasks": {}}}
    return OmegaConf.create({**base, **values})


@pytest.mark.skipif(not GLUE.is_dir(), reason="../shared/data/glue is absent")
@pytest.mark.parametrize("name", sorted(OFFICIAL_ROWS))
def test_tsv_reader_reads_every_task_with_the_official_row_counts(name):
    task = tasks.TASKS[name]
    for split, rows in OFFICIAL_ROWS[name].items():
        examples = tasks.read_tsv(GLUE / task.folder / f"{split}.tsv", task)
        assert len(examples) == rows
        assert all(e.text_a for e in examples)
        assert all((e.text_b is None) == (name in ("cola", "sst2")) for e in examples)
        labels = {e.label for e in examples}
        if task.labels:
            assert labels == set(range(task.num_labels))
        else:
            assert min(labels) >= 0 and max(labels) <= 5


@pytest.mark.skipif(not GLUE.is_dir(), reason="../shared/data/glue is absent")
def test_train_limit_takes_the_same_fixed_subset_every_time():
    first = STAGE.load_tasks(glue_cfg(train_limit=100))["rte"]
    assert len(first["train"]) == 100 and len(first["dev"]) == 277
    assert STAGE.load_tasks(glue_cfg(train_limit=100))["rte"]["train"] == first["train"]


def test_synthetic_tasks_have_glue_shapes_and_balanced_labels():
    for name in synthetic.TASKS:
        splits = synthetic.task(name, 400, 100, num_topics=3)
        task = tasks.TASKS[name]
        assert set(splits) == {"train", *task.dev}
        labels = [e.label for e in splits["train"]]
        if task.labels:
            shares = [labels.count(k) / len(labels) for k in range(task.num_labels)]
            assert min(shares) > 0.5 / task.num_labels, (name, shares)
        else:
            assert 0 <= min(labels) and max(labels) <= 5 and len(set(labels)) > 10
        assert synthetic.task(name, 400, 100, num_topics=3) == splits  # deterministic


def test_synthetic_mnli_mismatched_comes_from_a_topic_training_never_shows():
    splits = synthetic.task("mnli", 300, 100, num_topics=3)
    words = lambda examples: {w for e in examples for w in (e.text_a + " " + e.text_b).lower().split()}
    unseen = words(splits["dev_mismatched"]) - words(splits["train"])
    assert len(unseen) > 3 * len(words(splits["dev_matched"]) - words(splits["train"]))


def test_unknown_task_names_the_allowed_ones():
    with pytest.raises(ConfigError, match="unknown task 'mnlii'.*cola, sst2"):
        STAGE.load_tasks(glue_cfg(tasks=["mnlii"]))
    with pytest.raises(ConfigError, match="glue=synthetic has no 'qqp'"):
        STAGE.load_tasks(glue_cfg(source="synthetic", tasks=["qqp"], train_size=10, dev_size=10, num_topics=3))


def test_missing_tsv_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"missing file .*RTE/train\.tsv"):
        STAGE.load_tasks(glue_cfg(data_dir=str(tmp_path)))


def test_malformed_row_names_file_and_line(tmp_path):
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n"
                                                "0\tA cat sat.\tA cat sat.\tentailment\n1\tonly two\n")
    with pytest.raises(ConfigError, match=r"train\.tsv:3: 2 fields"):
        STAGE.load_tasks(glue_cfg(data_dir=str(tmp_path)))


def test_label_outside_the_label_set_names_file_and_line(tmp_path):
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "train.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(ConfigError, match=r"train\.tsv:2: rte label 'maybe' not in entailment, not_entailment"):
        STAGE.load_tasks(glue_cfg(data_dir=str(tmp_path)))


def test_wrong_header_is_refused(tmp_path):
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "train.tsv").write_text("id\ttext\tlabel\n0\ta\tentailment\n")
    with pytest.raises(ConfigError, match=r"train\.tsv:1: no column sentence1, sentence2"):
        STAGE.load_tasks(glue_cfg(data_dir=str(tmp_path)))


def test_bad_protocol_settings_are_refused():
    with pytest.raises(ConfigError, match="select=first: allowed last, best"):
        STAGE.load_tasks(glue_cfg(protocol={"select": "first", "tasks": {}}))
    with pytest.raises(ConfigError, match="unknown rte.learning_rate"):
        STAGE.load_tasks(glue_cfg(protocol={"select": "last", "tasks": {"rte": {"learning_rate": 1e-5}}}))


def test_a_folder_that_is_not_a_model_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ConfigError, match="not a model folder"):
        from_pretrained(str(tmp_path), reuse_pooler=False)
    with pytest.raises(ConfigError, match="no such folder"):
        from_pretrained(str(tmp_path / "missing" / "model"), reuse_pooler=False)


def test_hub_sources_fail_fast_and_clearly_offline():
    """The Hub is unreachable here, which is what this checks; with a network these would load."""
    with pytest.raises(ConfigError, match="cannot reach the Hugging Face Hub"):
        from_pretrained("FacebookAI/roberta-base", reuse_pooler=False)
    with pytest.raises(ConfigError, match="glue=hub=nyu-mll/glue: cannot reach the Hugging Face Hub"):
        STAGE.load_tasks(glue_cfg(source="hub"))


def test_a_task_score_is_the_mean_of_its_metrics_and_mnli_counts_matched_and_mismatched():
    from ablations.glue.stage import score

    mnli = score(tasks.TASKS["mnli"], {"dev_matched": [0, 1, 2, 0], "dev_mismatched": [0, 1, 2, 2]},
                 {"dev_matched": [0, 1, 2, 0], "dev_mismatched": [0, 0, 0, 0]})
    assert (mnli["mnli/accuracy"], mnli["mnli_mm/accuracy"], mnli["mnli/score"]) == (1.0, 0.25, 0.625)
    mrpc = score(tasks.TASKS["mrpc"], {"dev": [1, 1, 0, 0]}, {"dev": [1, 0, 0, 0]})
    assert mrpc["mrpc/score"] == pytest.approx((2 / 3 + 0.75) / 2)  # mean of F1 and accuracy


def test_fine_tuning_settings_cap_the_length_and_results_are_reused_only_on_the_same_data():
    from ablations.finetuning import data_sha

    done, settings = STAGE.done, STAGE.settings
    cfg = make_cfg("glue.protocol.max_length=128").glue
    assert settings(cfg, "sst2", 64)["max_length"] == 64 and settings(cfg, "sst2", 64)["max_length_requested"] == 128
    assert settings(cfg, "sst2", 512)["max_length"] == 128
    splits = synthetic.task("sst2", 50, 20, num_topics=3)
    entry = {"tasks": {"sst2": {"status": "ok", "data_sha": data_sha(splits), "settings": settings(cfg, "sst2", 64)}}}
    assert done(entry, cfg, {"sst2": splits}, 64) == {"sst2"}
    assert done(entry, cfg, {"sst2": splits}, 32) == set()  # another length cap: other settings
    other = {**splits, "train": splits["train"][:-1]}
    assert done(entry, cfg, {"sst2": other}, 64) == set()  # other examples


@pytest.mark.parametrize("name,chance", [("sst2", 0.5), ("mnli", 1 / 3), ("cola", 0.5)])
def test_synthetic_labels_follow_their_texts(name, chance):
    """A bag-of-words classifier, cross-validated on the training set, is far above chance: labels carry their
    texts' meaning (shuffled labels would leave it at chance)."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    train = synthetic.task(name, 1200, 10, num_topics=3)["train"]
    texts = [f"{e.text_a} ||| {' '.join('b_' + w for w in (e.text_b or '').split())}" for e in train]
    features = CountVectorizer(ngram_range=(1, 2)).fit_transform(texts)
    accuracy = cross_val_score(LogisticRegression(max_iter=2000), features, [e.label for e in train], cv=4).mean()
    assert accuracy > chance + 0.2, accuracy
