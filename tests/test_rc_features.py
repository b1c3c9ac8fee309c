"""SQuAD windows, answer positions and span decoding, RACE choice features and both collators, on the project's own
WordPiece and byte-level BPE tokenizers trained on a few sentences (every word a whole token)."""

from typing import NamedTuple

import numpy as np
import pytest
import torch

from ablations.data.tokenizer import train
from ablations.rc.features import ChoiceCollator, choice_features, decode_spans, span_collator, span_features

NUMBERS = ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
           "seventeen eighteen nineteen twenty").split()
COUNTING = " ".join(NUMBERS)
CORPUS = [COUNTING, "which number is the one after four ?", "the cat sat on the mat near the red door .",
          "where did the cat sit ?", "a dog ran in the park ."]


class Answer(NamedTuple):
    text: str
    start: int


class SpanExample(NamedTuple):
    id: str
    question: str
    context: str
    answers: tuple = ()


class ChoiceExample(NamedTuple):
    id: str
    article: str
    question: str
    options: tuple
    label: int
    level: str = "middle"


@pytest.fixture(scope="module", params=["wordpiece", "bpe"])
def tokenizer(request):
    return train(request.param, CORPUS * 3, vocab_size=2000, min_frequency=1)


def answer(context: str, text: str) -> Answer:
    return Answer(text, context.index(text))


def window_words(feature: dict, context: str) -> list[str]:
    return [context[s:e].strip() for s, e in (span for span in feature["offsets"] if span is not None)]


def run_squad_windows(n_tokens: int, room: int, doc_stride: int) -> list[tuple[int, int]]:
    """BERT run_squad's chunking, written out: windows of `room` tokens whose starts step by doc_stride."""
    windows, start = [], 0
    while True:
        length = min(n_tokens - start, room)
        windows.append((start, start + length))
        if start + length == n_tokens:
            return windows
        start += min(length, doc_stride)


def test_every_number_is_one_token(tokenizer):
    assert len(tokenizer(COUNTING, add_special_tokens=False)["input_ids"]) == 20
    assert len(tokenizer("which number", add_special_tokens=False)["input_ids"]) == 2


def test_windows_step_by_doc_stride(tokenizer):
    # [CLS] which number [SEP] ... [SEP]: 5 tokens around a 6-token context window
    features = span_features(tokenizer, [SpanExample("q", "which number", COUNTING)], max_length=11, doc_stride=4,
                             max_query_length=64, train=False)
    assert [window_words(f, COUNTING) for f in features] == [
        NUMBERS[0:6], NUMBERS[4:10], NUMBERS[8:14], NUMBERS[12:18], NUMBERS[16:20]]
    assert [f["example"] for f in features] == [0] * 5
    assert [len(f["input_ids"]) for f in features] == [11, 11, 11, 11, 9]
    assert features[0]["token_type_ids"] == [0] * 4 + [1] * 7
    assert features[0]["offsets"][:4] == [None] * 4 and features[0]["offsets"][-1] is None


@pytest.mark.parametrize("room, doc_stride", [(6, 4), (6, 1), (6, 6), (6, 9), (5, 3), (7, 2), (25, 4)])
def test_windows_match_run_squad_and_cover_the_context(tokenizer, room, doc_stride):
    features = span_features(tokenizer, [SpanExample("q", "which number", COUNTING)], max_length=5 + room,
                             doc_stride=doc_stride, max_query_length=64, train=False)
    windows = [window_words(f, COUNTING) for f in features]
    assert windows == [NUMBERS[a:b] for a, b in run_squad_windows(20, room, doc_stride)]
    assert {w for window in windows for w in window} == set(NUMBERS)


def test_question_is_cut_to_max_query_length(tokenizer):
    example = SpanExample("q", "which number is the one after four ?", COUNTING)
    feature, = span_features(tokenizer, [example], max_length=64, doc_stride=16, max_query_length=3, train=False)
    assert tokenizer.decode(feature["input_ids"][1:4]).strip() == "which number is"
    assert feature["input_ids"][4] == tokenizer.sep_token_id
    assert window_words(feature, COUNTING) == NUMBERS


def test_answer_positions_decode_to_the_answer(tokenizer):
    context = "the cat sat on the mat near the red door ."
    example = SpanExample("q", "where did the cat sit ?", context, (answer(context, "the mat"),))
    labelled, = span_features(tokenizer, [example], 64, 16, 64, train=True)
    evaluated, = span_features(tokenizer, [example], 64, 16, 64, train=False)
    # [CLS] where did the cat sit ? [SEP] the cat sat on the mat ...: "the mat" is tokens 12..13
    assert (labelled["start_positions"], labelled["end_positions"]) == (12, 13)
    start, end = evaluated["offsets"][12][0], evaluated["offsets"][13][1]
    assert context[start:end].strip() == "the mat"
    assert "offsets" not in labelled and "start_positions" not in evaluated


def test_an_answer_across_a_window_edge_is_labelled_only_where_whole(tokenizer):
    # windows hold numbers 0-5, 4-9, 8-13, 12-17, 16-19; "six seven" (5-6) is whole only in the second
    example = SpanExample("q", "which number", COUNTING, (answer(COUNTING, "six seven"),))
    labelled = span_features(tokenizer, [example], 11, 4, 64, train=True)
    evaluated = span_features(tokenizer, [example], 11, 4, 64, train=False)
    positions = [(f["start_positions"], f["end_positions"]) for f in labelled]
    assert positions == [(0, 0), (5, 6), (0, 0), (0, 0), (0, 0)]
    offsets = evaluated[1]["offsets"]
    assert COUNTING[offsets[5][0]:offsets[6][1]].strip() == "six seven"


def test_only_the_first_gold_answer_is_labelled(tokenizer):
    example = SpanExample("q", "which number", COUNTING, (answer(COUNTING, "three"), answer(COUNTING, "twenty")))
    feature, = span_features(tokenizer, [example], 64, 16, 64, train=True)
    assert (feature["start_positions"], feature["end_positions"]) == (6, 6)


def test_unanswerable_points_at_the_first_token(tokenizer):
    features = span_features(tokenizer, [SpanExample("q", "which number", COUNTING)], 11, 4, 64, train=True)
    assert [(f["start_positions"], f["end_positions"]) for f in features] == [(0, 0)] * 5


def test_no_room_for_context_is_an_error(tokenizer):
    with pytest.raises(ValueError, match="no room for context"):
        span_features(tokenizer, [SpanExample("q", "which number", COUNTING)], 5, 4, 64, train=False)


def planted(length: int, values: dict[int, float]) -> np.ndarray:
    logits = np.zeros(length)
    logits[list(values)] = list(values.values())
    return logits


FIVE = "one two three four five"


@pytest.mark.parametrize("n_best, max_answer_length, text, odds", [
    (4, 2, "one two", 3 - 15),     # (one, two) = 8 + 7; the top two starts and ends are question or [SEP] tokens
    (5, 2, "one two", 3 - 15),     # the 5th end adds (four, five) = 9 + 1
    (3, 2, "", float("inf")),      # starts {which, [SEP], four}, ends {number, [SEP], two}: none valid
    (5, 1, "", float("inf")),      # (one, two) and (four, five) are two tokens long
    (6, 1, "one", 3 - 8.5),        # the 6th end is "one": (one, one) = 8 + 0.5
])
def test_decoding_picks_the_best_valid_span(tokenizer, n_best, max_answer_length, text, odds):
    # [CLS] which number [SEP] one two three four five [SEP]: context is tokens 4..8
    example = SpanExample("q", "which number", FIVE)
    feature, = span_features(tokenizer, [example], 64, 16, 64, train=False)
    starts = planted(10, {1: 100, 9: 50, 7: 9, 4: 8, 0: 2})
    ends = planted(10, {2: 100, 3: 50, 5: 7, 0: 1, 8: 1, 4: 0.5})
    predictions, null_odds = decode_spans([example], [feature], [starts], [ends.tolist()], n_best, max_answer_length)
    assert predictions == {"q": text}
    assert null_odds == {"q": odds}


def test_decoding_takes_the_best_window_and_the_smallest_null_score(tokenizer):
    # two examples: "q" over windows of numbers 0-5, 4-9, 8-13, 12-17, 16-19, and "r" in one window
    examples = [SpanExample("q", "which number", COUNTING), SpanExample("r", "which number", FIVE)]
    features = span_features(tokenizer, examples, 11, 4, 64, train=False)
    assert [f["example"] for f in features] == [0, 0, 0, 0, 0, 1]
    start_logits = [planted(11, {0: 5, 4: 3}),     # null 5 + 1; (one, one) 3 + 2
                    planted(11, {0: 1, 6: 4}),     # null 1 + 2; (seven, eight) 4 + 3: the best span
                    planted(11, {0: 3, 9: 9}),     # null 3 - 1, the smallest; (fourteen, nine) 9 + 1 is reversed
                    planted(11, {0: 9}),           # null 9 + 9; nothing in context
                    planted(9, {0: 9, 4: 1}),      # null 9 + 9; (seventeen, which) is not in context
                    planted(10, {0: 1, 5: 2})]     # "r": null 1 + 1; (two, three) 2 + 2
    end_logits = [planted(11, {0: 1, 4: 2}), planted(11, {0: 2, 7: 3}), planted(11, {0: -1, 4: 1}),
                  planted(11, {0: 9}), planted(9, {0: 9}), planted(10, {0: 1, 6: 2})]
    predictions, null_odds = decode_spans(examples, features, start_logits, end_logits, n_best=2, max_answer_length=3)
    assert predictions == {"q": "seven eight", "r": "two three"}
    assert null_odds == {"q": 2 - 7, "r": 2 - 4}


def test_padded_logits_are_ignored(tokenizer):
    example = SpanExample("q", "which number", FIVE)
    feature, = span_features(tokenizer, [example], 64, 16, 64, train=False)
    starts, ends = planted(14, {5: 1, 12: 99}), planted(14, {5: 1, 13: 99})
    assert decode_spans([example], [feature], [starts], [ends], 5, 3) == ({"q": "two"}, {"q": -2.0})


def test_span_collator_pads_and_keeps_decoding_keys_out(tokenizer):
    context = "the cat sat on the mat near the red door ."
    examples = [SpanExample("a", "where did the cat sit ?", context, (answer(context, "the mat"),)),
                SpanExample("b", "which number", FIVE, (answer(FIVE, "four"),))]
    batch = span_collator(tokenizer)(span_features(tokenizer, examples, 64, 16, 64, train=True))
    assert sorted(batch) == ["attention_mask", "end_positions", "input_ids", "start_positions", "token_type_ids"]
    assert batch["input_ids"].shape == (2, 20)
    assert batch["attention_mask"].sum(1).tolist() == [20, 10]
    assert batch["input_ids"][1, 10:].tolist() == [tokenizer.pad_token_id] * 10
    assert batch["start_positions"].tolist() == [12, 7] and batch["end_positions"].tolist() == [13, 7]


RACE = [ChoiceExample("m1", "the cat sat on the mat near the red door .", "the cat sat on the _ .",
                      ("mat", "door", "park", "dog"), 0),
        ChoiceExample("m2", "a dog ran in the park .", "where did the cat sit ?", ("on the mat", "in the park",
                                                                                  "near the door", "one"), 3)]


def test_choice_features_fill_the_blank_or_follow_the_question(tokenizer):
    features = choice_features(tokenizer, RACE, max_length=64)
    assert [f["labels"] for f in features] == [0, 3]
    assert [len(f["input_ids"]) for f in features] == [4, 4]

    def second(feature, j):
        ids, segments = feature["input_ids"][j], feature["token_type_ids"][j]
        return [i for i, s in zip(ids, segments) if s == 1][:-1]  # without the closing [SEP]

    def encoded(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    assert [second(features[0], j) for j in range(4)] == [encoded(f"the cat sat on the {o} .") for o in
                                                          RACE[0].options]
    assert second(features[1], 0) == encoded("where did the cat sit ? on the mat")
    assert second(features[1], 3) == encoded("where did the cat sit ? one")


def test_choice_truncation_cuts_only_the_article(tokenizer):
    feature, = choice_features(tokenizer, RACE[:1], max_length=12)
    # [CLS] article [SEP] the cat sat on the mat . [SEP]: 7 option tokens and 3 specials leave the article 2
    assert [len(ids) for ids in feature["input_ids"]] == [12] * 4
    assert tokenizer.decode(feature["input_ids"][0][1:3]).strip() == "the cat"


def test_choice_collator_pads_to_batch_options_longest(tokenizer):
    features = choice_features(tokenizer, RACE, max_length=64)
    longest = max(len(ids) for f in features for ids in f["input_ids"])
    batch = ChoiceCollator(tokenizer)(features)
    assert longest == 21  # m1: 11 article + 7 question tokens + 3 specials
    assert {key: tuple(value.shape) for key, value in batch.items()} == {
        "input_ids": (2, 4, 21), "attention_mask": (2, 4, 21), "token_type_ids": (2, 4, 21), "labels": (2,)}
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [0, 3]
    assert batch["attention_mask"].sum(-1).tolist() == [[len(ids) for ids in f["input_ids"]] for f in features]
    assert batch["input_ids"][1, 3].tolist() == features[1]["input_ids"][3] + [tokenizer.pad_token_id] * 4
