"""The reading-comprehension sources: the SQuAD and RACE readers on small files in the official layouts, each bad
input's one-line error, the Hub failing fast offline, and the synthetic tasks."""

import json
import random
import re
import time

import pytest
from omegaconf import OmegaConf

from ablations.config import ConfigError
from ablations.data.synthetic import PAST, TRANSITIVE, NounPhrase, Sentence
from ablations.rc import synthetic
from ablations.rc.tasks import TASKS, Answer, ChoiceExample, SpanExample, load

CONTEXT = "Mira chopped the onion in the pantry. Bruno stirred the soup."


def rc_cfg(**values):
    base = {"source": "files", "data_dir": None, "train_size": 300, "dev_size": 100, "num_topics": 3}
    return OmegaConf.create({**base, **values})


def squad(*qas, context=CONTEXT) -> dict:
    return {"version": "v2.0", "data": [{"title": "Kitchen", "paragraphs": [{"context": context, "qas": list(qas)}]}]}


def qa(id_, question, *answers, impossible=None, plausible=()):
    record = {"id": id_, "question": question, "answers": [{"text": t, "answer_start": s} for t, s in answers]}
    if impossible is not None:
        record["is_impossible"] = impossible
        record["plausible_answers"] = [{"text": t, "answer_start": s} for t, s in plausible]
    return record


def write_squad(folder, version, train, dev):
    for split, data in (("train", train), ("dev", dev)):
        (folder / f"{split}-v{version}.json").write_text(json.dumps(data))


def race_file(id_, questions=("Who chopped the onion?",), options=(["Mira", "Bruno", "Ada", "Elena"],),
              answers=("A",)) -> dict:
    return {"id": id_, "article": CONTEXT, "questions": list(questions), "options": [list(o) for o in options],
            "answers": list(answers)}


def write_race(folder, files: dict[str, dict]) -> None:
    """files: {"train/middle/1.txt": record}; every split and level not named gets one good file."""
    for split in ("train", "dev"):
        for level in ("middle", "high"):
            (folder / "RACE" / split / level).mkdir(parents=True, exist_ok=True)
            files.setdefault(f"{split}/{level}/0.txt", race_file(f"{level}0.txt"))
    for name, record in files.items():
        (folder / "RACE" / name).write_text(record if isinstance(record, str) else json.dumps(record))


# -- official files ---------------------------------------------------------------------------------------------


def test_squad20_files_keep_every_gold_answer_and_unanswerable_questions(tmp_path):
    dev = squad(qa("q1", "Who chopped the onion?", ("Mira", 0), ("Mira", 0), ("Mira chopped", 0)),
                qa("q2", "Where did Mira chop the onion?", ("in the pantry", 23), ("the pantry", 26), impossible=False),
                qa("q3", "Who stirred the onion?", impossible=True, plausible=[("Bruno", 38)]))
    train = squad(qa("t1", "What did Bruno stir?", ("the soup", 52), impossible=False))
    write_squad(tmp_path, "2.0", train, dev)
    splits = load(rc_cfg(data_dir=str(tmp_path)), "squad20")
    assert splits["train"] == [SpanExample("t1", "What did Bruno stir?", CONTEXT, (Answer("the soup", 52),))]
    q1, q2, q3 = splits["dev"]
    assert q1.answers == (Answer("Mira", 0), Answer("Mira", 0), Answer("Mira chopped", 0))
    assert [a.text for a in q2.answers] == ["in the pantry", "the pantry"]
    assert q3 == SpanExample("q3", "Who stirred the onion?", CONTEXT, ())  # plausible_answers are not answers
    assert TASKS["squad20"].unanswerable and not TASKS["squad11"].unanswerable


def test_squad11_files_load_from_their_official_names(tmp_path):
    write_squad(tmp_path, "1.1", squad(qa("t1", "What did Bruno stir?", ("the soup", 52))),
                squad(qa("d1", "Who chopped the onion?", ("Mira", 0), ("Mira", 0))))
    splits = load(rc_cfg(data_dir=str(tmp_path)), "squad11")
    assert [e.id for e in splits["train"]] == ["t1"] and splits["dev"][0].answers == (Answer("Mira", 0),) * 2


def test_race_files_carry_their_level_and_question_ids(tmp_path):
    two = race_file("high7.txt", questions=("Who chopped the onion?", "What did Bruno stir?"),
                    options=(["Mira", "Bruno", "Ada", "Elena"], ["the onion", "the pot", "the soup", "the pan"]),
                    answers=("A", "C"))
    write_race(tmp_path, {"train/high/7.txt": two})
    splits = load(rc_cfg(data_dir=str(tmp_path)), "race")
    assert [e.id for e in splits["train"]] == ["middle0.txt-0", "high0.txt-0", "high7.txt-0", "high7.txt-1"]
    assert [e.level for e in splits["train"]] == ["middle", "high", "high", "high"]
    assert splits["train"][3] == ChoiceExample("high7.txt-1", CONTEXT, "What did Bruno stir?",
                                               ("the onion", "the pot", "the soup", "the pan"), 2, "high")
    assert [e.level for e in splits["dev"]] == ["middle", "high"]


def _squad_error(tmp_path, dev):
    write_squad(tmp_path, "2.0", squad(qa("t1", "What did Bruno stir?", ("the soup", 52))), dev)
    return tmp_path / "dev-v2.0.json"


@pytest.mark.parametrize("dev, message", [
    (squad(qa("q9", "Who?", ("Bruno", 0))), "question q9: answer 'Bruno' is not at answer_start 0 of its context"),
    (squad(qa("q9", "Who?", ("Mira", -4))), "question q9: answer 'Mira' is not at answer_start -4 of its context"),
    (squad({"id": "q9", "answers": []}), "question q9: no key 'question'"),
    (squad({"id": "q9", "question": "Who?", "answers": [{"text": "Mira"}]}), "question q9: no key 'answer_start'"),
    (squad(qa("q9", "Who?")), "question q9: no answers and not is_impossible"),
    (squad({"question": "Who?", "answers": []}), "article 0 paragraph 0 question 0: no key 'id'"),
    ({"data": [{"paragraphs": [{"qas": []}]}]}, "article 0 paragraph 0: no key 'context'"),
    ({"version": "v2.0"}, "no key 'data'"),
])
def test_each_bad_squad_record_is_named_with_its_file(tmp_path, dev, message):
    path = _squad_error(tmp_path, dev)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: {message}")):
        load(rc_cfg(data_dir=str(tmp_path)), "squad20")


def test_malformed_json_names_its_line_and_column(tmp_path):
    write_squad(tmp_path, "1.1", squad(), squad())
    (tmp_path / "dev-v1.1.json").write_text('{"data": [\n  {"paragraphs": ]}\n')
    with pytest.raises(ConfigError, match=r"dev-v1\.1\.json:2:18: malformed JSON"):
        load(rc_cfg(data_dir=str(tmp_path)), "squad11")
    write_race(tmp_path, {"dev/high/3.txt": '{"id": "high3.txt",'})
    with pytest.raises(ConfigError, match=r"RACE/dev/high/3\.txt:1:20: malformed JSON"):
        load(rc_cfg(data_dir=str(tmp_path)), "race")


def test_missing_files_name_the_official_layout(tmp_path):
    with pytest.raises(ConfigError, match=r"missing file .*train-v2\.0\.json \(expected the official SQuAD layout "
                                          r"<data_dir>/\{train-v2\.0\.json,dev-v2\.0\.json\}\)"):
        load(rc_cfg(data_dir=str(tmp_path)), "squad20")
    with pytest.raises(ConfigError, match=r"missing files .*RACE/train/middle/\*\.txt \(expected the official RACE "
                                          r"layout <data_dir>/RACE/\{train,dev\}/\{middle,high\}/\*\.txt\)"):
        load(rc_cfg(data_dir=str(tmp_path)), "race")
    for unset in (None, "???"):
        with pytest.raises(ConfigError, match="rc=files needs rc.data_dir"):
            load(rc_cfg(data_dir=unset), "race")


@pytest.mark.parametrize("record, message", [
    (race_file("high5.txt", options=(["Mira", "Bruno", "Ada"],)), "question 0: 3 options, need 4"),
    (race_file("high5.txt", answers=("E",)), "question 0: answer 'E' is not one of A, B, C, D"),
    (race_file("high5.txt", answers=("AB",)), "question 0: answer 'AB' is not one of A, B, C, D"),
    (race_file("high5.txt", questions=("Who?", "What?"), answers=("A", "B")), r"question 1: no options entry "
                                                                              r"\(2 questions, 1 options, 2 answers\)"),
    ({k: v for k, v in race_file("high5.txt").items() if k != "answers"}, "no key 'answers'"),
    ({k: v for k, v in race_file("high5.txt").items() if k != "id"}, "no key 'id'"),
])
def test_each_bad_race_record_is_named_with_its_file(tmp_path, record, message):
    write_race(tmp_path, {"train/high/5.txt": record})
    with pytest.raises(ConfigError, match=r"RACE/train/high/5\.txt: " + message):
        load(rc_cfg(data_dir=str(tmp_path)), "race")


def test_unknown_task_and_source_name_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"rc.tasks: unknown task 'squad'; allowed squad11, squad20, race"):
        load(rc_cfg(), "squad")
    with pytest.raises(ConfigError, match="rc.source=tsv: allowed synthetic, files, hub"):
        load(rc_cfg(source="tsv"), "race")


def test_hub_fails_fast_offline_and_points_to_the_other_sources():
    """The Hub is unreachable here, which is what this checks; with a network these would load."""
    for name, repo in (("squad11", "rajpurkar/squad"), ("squad20", "rajpurkar/squad_v2"), ("race", "ehovy/race")):
        start = time.monotonic()
        with pytest.raises(ConfigError, match=f"rc=hub={repo}: cannot reach the Hugging Face Hub.*rc=synthetic.*"
                                              "rc=files rc.data_dir="):
            load(rc_cfg(source="hub"), name)
        assert time.monotonic() - start < 30


# -- synthetic ----------------------------------------------------------------------------------------------------


def test_synthetic_tasks_are_deterministic_and_sized():
    for name in TASKS:
        splits = load(rc_cfg(source="synthetic", train_size=300, dev_size=100), name)
        assert (len(splits["train"]), len(splits["dev"])) == (300, 100)
        assert splits == synthetic.task(name, 300, 100, num_topics=3)
        assert synthetic.task(name, 300, 100, num_topics=3, seed=1) != splits
        assert len({e.id for e in splits["train"] + splits["dev"]}) == 400


def test_synthetic_span_answers_sit_at_their_offsets():
    for name in ("squad11", "squad20"):
        for split in synthetic.task(name, 600, 200, num_topics=3).values():
            for e in split:
                assert e.question.endswith("?") and all(a.text for a in e.answers)
                assert all(e.context[a.start:a.start + len(a.text)] == a.text for a in e.answers), e
    assert all(e.answers for e in synthetic.task("squad11", 600, 200, num_topics=3)["train"])


def test_synthetic_squad_contexts_are_short_enough_for_one_window():
    """2-4 sentences, at most 50 words with the question: one 64-token window of the default cell holds both, so
    no answer sits in another window or is cut off."""
    examples = synthetic.task("squad20", 600, 0, num_topics=3)["train"]
    assert {e.context.count(".") for e in examples} == {2, 3, 4}
    assert max(len(e.context.split()) + len(e.question.split()) for e in examples) <= 50


def test_synthetic_squad20_has_about_a_third_unanswerable_questions():
    for examples in synthetic.task("squad20", 1500, 600, num_topics=3).values():
        share = sum(not e.answers for e in examples) / len(examples)
        assert 0.25 < share < 0.4, share


def test_synthetic_questions_name_words_the_context_uses_elsewhere():
    """The named noun recurs in the context, so finding it is not enough: the verb must be read too."""
    examples = synthetic.task("squad11", 600, 10, num_topics=3)["train"]
    recurring = [e for e in examples if any(e.context.lower().count(" " + w.rstrip("?") + " ") > 1
                                            for w in e.question.lower().split()[2:])]
    assert len(recurring) > len(examples) / 2


def test_synthetic_race_has_four_options_and_the_label_points_to_the_right_one():
    splits = synthetic.task("race", 600, 200, num_topics=3)
    for e in splits["train"] + splits["dev"]:
        assert len(e.options) == 4 == len(set(e.options)) and 0 <= e.label < 4 and e.level in ("middle", "high")
    train = splits["train"]
    assert {e.label for e in train} == {0, 1, 2, 3}
    levels = [e.level for e in train]
    assert 0.35 < levels.count("high") / len(levels) < 0.65
    length = {level: sum(len(e.article) for e in train if e.level == level) / levels.count(level)
              for level in ("middle", "high")}
    assert length["high"] > 1.5 * length["middle"]
    # distractors come from the article: most options' head word is in it, and never the right one's alone
    present = [[o.split()[-1].lower() in e.article.lower() for o in e.options] for e in train]
    assert sum(map(sum, present)) / (4 * len(train)) > 0.6
    assert all(sum(named) > 1 for named in present)


def test_a_question_is_answered_by_the_one_event_that_fits_it():
    """A hand-written story: Mira and the onion recur, so only the verb picks the sentence; a negated event and a
    verb the story does not tell of leave the question unanswerable."""
    mira, bruno = NounPhrase("Mira", "person", determiner=None), NounPhrase("Bruno", "person", determiner=None)
    onion, carrot = NounPhrase("onion", "food"), NounPhrase("carrot", "food", adjectives=("fresh",))
    story = (Sentence("kitchen", TRANSITIVE, mira, "chop", onion, preposition="in", place="pantry", tense=PAST,
                      marker="one morning"),
             Sentence("kitchen", TRANSITIVE, bruno, "chop", carrot, tense=PAST),
             Sentence("kitchen", TRANSITIVE, mira, "stir", onion, tense=PAST, negated=True),
             Sentence("kitchen", TRANSITIVE, bruno, "taste", onion, tense=PAST))
    context, facts = synthetic._read(story)
    assert context.startswith("One morning, Mira chopped the onion in the pantry. Bruno chopped the fresh carrot.")
    spans = {role: context[a:b] for role, (a, b) in facts[0].spans.items()}
    assert spans == {"subject": "Mira", "obj": "the onion", "place": "in the pantry"}
    assert context[slice(*facts[1].spans["obj"])] == "the fresh carrot"

    def ask(fact, asked, named, **changes):
        question = synthetic.Question(fact._replace(**changes), asked, named)
        return synthetic._question_text(question), synthetic._fits(facts, question)

    assert ask(facts[0], "subject", ("obj",)) == ("Who chopped the onion?", [facts[0]])
    assert ask(facts[0], "subject", ("obj",), verb="slice") == ("Who sliced the onion?", [facts[0]])  # a synonym
    assert ask(facts[1], "obj", ("subject",)) == ("What did Bruno chop?", [facts[1]])
    assert ask(facts[0], "place", ("subject", "obj")) == ("Where did Mira chop the onion?", [facts[0]])
    assert ask(facts[3], "place", ("subject", "obj")) == ("Where did Bruno taste the onion?", [])  # no place told
    assert ask(facts[2], "subject", ("obj",)) == ("Who stirred the onion?", [])  # Mira did not stir it
    assert ask(facts[0], "obj", ("subject",), subject=bruno)[1] == [facts[1]]  # Bruno chopped the carrot instead
    question = synthetic.Question(facts[0], "subject", ("obj",))
    options, label = synthetic._options(random.Random(0), facts, "kitchen", question)
    assert options[label] == "Mira" and "Bruno" in options and len(set(options)) == 4


def test_synthetic_dev_documents_are_not_training_ones():
    for name in TASKS:
        splits = synthetic.task(name, 1200, 400, num_topics=1)
        text = (lambda e: e.article) if name == "race" else (lambda e: e.context)
        assert not {text(e) for e in splits["train"]} & {text(e) for e in splits["dev"]}


def test_synthetic_generation_is_fast_enough_for_thousands_of_examples():
    for name in TASKS:
        assert len(synthetic.task(name, 2000, 0, num_topics=3)["train"]) == 2000


def test_hub_rows_become_the_same_examples_as_the_files():
    """Rows shaped as rajpurkar/squad_v2's and ehovy/race's (config "all"); the download itself needs a network."""
    from ablations.rc import tasks

    rows = [{"id": "q1", "context": CONTEXT, "question": "Who chopped the onion?",
             "answers": {"text": ["Mira", "Mira"], "answer_start": [0, 0]}},
            {"id": "q2", "context": CONTEXT, "question": "Who stirred the onion?",
             "answers": {"text": [], "answer_start": []}}]
    assert tasks._hub_spans(rows, "rajpurkar/squad_v2 validation") == [
        SpanExample("q1", "Who chopped the onion?", CONTEXT, (Answer("Mira", 0),) * 2),
        SpanExample("q2", "Who stirred the onion?", CONTEXT, ())]
    race = [{"example_id": file_id, "article": CONTEXT, "question": "Who?", "options": ["a", "b", "c", "d"],
             "answer": answer} for file_id, answer in (("high3.txt", "B"), ("high3.txt", "D"), ("middle9.txt", "A"))]
    assert [(e.id, e.level, e.label) for e in tasks._hub_choices(race, "ehovy/race train")] == [
        ("high3.txt-0", "high", 1), ("high3.txt-1", "high", 3), ("middle9.txt-0", "middle", 0)]
    with pytest.raises(ConfigError, match=r"rajpurkar/squad validation: question q1: answer 'Mira' is not at"):
        tasks._hub_spans([{**rows[0], "answers": {"text": ["Mira"], "answer_start": [5]}}],
                         "rajpurkar/squad validation")
