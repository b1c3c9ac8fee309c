"""Reading-comprehension metrics against values computed by hand, and against a second SQuAD scorer
(tests/squad_reference.py) on seeded random cases."""

import random
import warnings

import pytest
from squad_reference import evaluate

from ablations.rc.metrics import exact_match, normalize_answer, race, squad, token_f1


def test_normalisation_lowercases_drops_punctuation_articles_and_extra_whitespace():
    assert normalize_answer("  The  Eiffel\tTower! ") == "eiffel tower"
    assert normalize_answer("U.S.A., an Anthem") == "usa anthem"
    assert normalize_answer("Theatre a banana") == "theatre banana"  # articles only as whole words
    assert normalize_answer("the’s") == "’s"  # a curly apostrophe is no ASCII punctuation but is a word boundary


def test_exact_match_ignores_articles_punctuation_and_case():
    assert exact_match("The Eiffel Tower", "Eiffel Tower") == 1.0
    assert exact_match("Paris!", "paris") == 1.0
    assert exact_match("PARIS", "paris") == 1.0
    assert exact_match("rock-n-roll", "rocknroll") == 1.0
    assert exact_match("Paris France", "Paris") == 0.0


def test_token_f1_counts_overlapping_tokens():
    # [big, red, dog] vs [red, dog, barked]: 2 in common, P = R = 2/3
    assert token_f1("the big red dog", "red dog barked") == pytest.approx(2 / 3)
    # a repeated token counts as often as the gold has it: 1 in common, P 1/3, R 1, F1 1/2
    assert token_f1("dog dog dog", "dog") == pytest.approx(0.5)
    assert token_f1("cat", "dog") == 0.0


def test_empty_answers_score_one_only_against_each_other():
    assert token_f1("", "Paris") == 0.0
    assert exact_match("", "Paris") == 0.0
    assert token_f1("Paris", "") == 0.0
    assert token_f1("", "") == 1.0
    assert token_f1("The", "") == 1.0  # normalises to nothing


def test_squad_v1_takes_the_best_gold_answer():
    # vs "red dog barked": F1 2/3; vs "big dog": 2 in common, P 2/3, R 1, F1 4/5
    golds = {"q1": ["red dog barked", "big dog"], "q2": ["Denver Broncos", "Broncos"]}
    result = squad(golds, {"q1": "the big red dog", "q2": "the broncos"})
    assert result == pytest.approx({"exact": 50.0, "f1": 90.0, "total": 2.0})
    assert all(type(value) is float for value in result.values())


def test_unanswerable_questions_want_an_empty_prediction():
    golds = {"q1": ["Paris"], "q2": [], "q3": []}
    result = squad(golds, {"q1": "", "q2": "", "q3": "London"})
    assert result == pytest.approx({"exact": 100 / 3, "f1": 100 / 3, "total": 3.0,
                                    "HasAns_exact": 0.0, "HasAns_f1": 0.0, "HasAns_total": 1.0,
                                    "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2.0})


def test_gold_answers_that_normalise_to_nothing_are_dropped():
    # "the" is dropped, leaving "Paris": an empty prediction scores 0, not 1 against "the"
    assert squad({"q": ["the", "Paris"]}, {"q": ""}) == {"exact": 0.0, "f1": 0.0, "total": 1.0}


# a: F1 2/3 (see above); b, e: unanswerable, answered; c: exact; d: [quick, fox, jumps] vs [quick, brown, fox], F1 2/3
V2_GOLDS = {"a": ["red dog barked"], "b": [], "c": ["Paris"], "d": ["a quick brown fox"], "e": []}
V2_PREDICTIONS = {"a": "the big red dog", "b": "London", "c": "paris.", "d": "quick fox jumps", "e": "Berlin"}
V2_NO_ANSWER = {"a": 0.2, "b": 0.4, "c": 0.6, "d": 0.8, "e": 0.9}
HAS_ANS = {"HasAns_exact": 100 / 3, "HasAns_f1": 700 / 9, "HasAns_total": 3.0}  # exact 1 of 3; F1 (2/3 + 1 + 2/3)/3


def test_best_threshold_walks_questions_by_no_answer_probability():
    # Abstaining everywhere: 2 (b, e). F1 walk: a +2/3 = 8/3 (best, 0.2), b -1, c +1 = 8/3, d +2/3 = 10/3 (best, 0.8),
    # e -1. Exact walk: 2, a +0, b -1, c +1 = 2, d +0, e -1: never above 2, so threshold 0.0.
    result = squad(V2_GOLDS, V2_PREDICTIONS, V2_NO_ANSWER)
    assert result == pytest.approx({"exact": 20.0, "f1": 140 / 3, "total": 5.0, **HAS_ANS,
                                    "NoAns_exact": 0.0, "NoAns_f1": 0.0, "NoAns_total": 2.0,
                                    "best_exact": 40.0, "best_exact_thresh": 0.0,
                                    "best_f1": 200 / 3, "best_f1_thresh": 0.8})


def test_threshold_empties_predictions_above_it():
    # 0.8: only e (0.9) abstains, which is right: F1 (2/3 + 0 + 1 + 2/3 + 1)/5, the best F1 above
    result = squad(V2_GOLDS, V2_PREDICTIONS, V2_NO_ANSWER, threshold=0.8)
    assert result["exact"] == pytest.approx(40.0) and result["f1"] == pytest.approx(200 / 3)
    assert result["NoAns_exact"] == 50.0 and result["HasAns_f1"] == pytest.approx(700 / 9)
    # 0.5: c, d, e abstain; c and d lose their scores: F1 (2/3 + 0 + 0 + 0 + 1)/5
    result = squad(V2_GOLDS, V2_PREDICTIONS, V2_NO_ANSWER, threshold=0.5)
    assert result["exact"] == pytest.approx(20.0) and result["f1"] == pytest.approx(100 / 3)


def test_best_threshold_charges_a_non_empty_raw_prediction_as_the_official_script_does():
    # "The" normalises to nothing, so it is right for x, yet the walk charges it 1: 1, x -1 = 0, y +1 = 1, never above 1
    result = squad({"x": [], "y": ["Paris"]}, {"x": "The", "y": "Paris"}, {"x": 0.1, "y": 0.2})
    assert result["exact"] == 100.0
    assert (result["best_exact"], result["best_exact_thresh"]) == (50.0, 0.0)


def test_missing_predictions_score_zero_and_count():
    golds = {"q1": ["x"], "q2": ["y"], "q3": []}
    with pytest.warns(UserWarning, match="1 of 3 questions have no prediction"):
        result = squad(golds, {"q1": "x", "q3": ""})
    assert result == pytest.approx({"exact": 200 / 3, "f1": 200 / 3, "total": 3.0,
                                    "HasAns_exact": 50.0, "HasAns_f1": 50.0, "HasAns_total": 2.0,
                                    "NoAns_exact": 100.0, "NoAns_f1": 100.0, "NoAns_total": 1.0})
    with pytest.warns(UserWarning):
        result = squad(golds, {"q1": "x"}, {"q1": 0.5})
    # a missing unanswerable question scores 0 too; the walk starts at 0 (no answered unanswerable), q1 +1 at 0.5
    assert result["NoAns_exact"] == 0.0
    assert (result["best_exact"], result["best_exact_thresh"]) == (pytest.approx(100 / 3), 0.5)


def test_race_accuracy_by_level():
    result = race([0, 1, 2, 3, 0], [0, 1, 0, 3, 1], ["middle", "middle", "high", "high", "high"])
    assert result == pytest.approx({"accuracy": 0.6, "middle_accuracy": 1.0, "high_accuracy": 1 / 3})
    assert race([2, 1], [2, 0], ["high", "high"]) == {"accuracy": 0.5, "high_accuracy": 0.5}


def test_race_rejects_unknown_levels_and_ragged_inputs():
    with pytest.raises(ValueError, match="college"):
        race([0], [0], ["college"])
    with pytest.raises(ValueError):
        race([0, 1], [0], ["high", "high"])


WORDS = ["The", "the", "a", "An", "Paris", "paris,", "dog", "Dog.", "red", "big", "U.S.", "the’s", "“quoted”",
         "rock-n-roll", "—", "x_y", "café", "CAFÉ", "banana", "theatre", "!", ""]
SEPARATORS = [" ", "  ", "\t", "\n", "\u00a0"]


def random_text(rng: random.Random) -> str:
    return "".join(rng.choice(WORDS) + rng.choice(SEPARATORS) for _ in range(rng.randint(0, 4)))


def random_case(seed: int, n: int = 300):
    rng = random.Random(seed)
    golds, predictions, no_answer = {}, {}, {}
    for i in range(n):
        qid = f"q{i}"
        golds[qid] = [] if rng.random() < 0.3 else [random_text(rng) for _ in range(rng.randint(1, 3))]
        no_answer[qid] = round(rng.random(), 1)  # ties, to check the order the walk takes them in
        roll = rng.random()
        if roll < 0.05:
            continue
        if roll < 0.15:
            predictions[qid] = ""
        elif roll < 0.55 and golds[qid]:
            predictions[qid] = rng.choice(golds[qid]) + rng.choice(["", " the", ".", " dog"])
        else:
            predictions[qid] = random_text(rng)
    predictions["stray"], no_answer["stray"] = "Paris", 0.5  # scored by neither: no such question
    dataset = {"version": "v2.0", "data": [{"title": "random", "paragraphs": [
        {"context": "", "qas": [{"id": qid, "question": "?", "is_impossible": not answers,
                                 "answers": [{"text": text, "answer_start": 0} for text in answers]}
                                for qid, answers in golds.items()]}]}]}
    return golds, predictions, no_answer, dataset


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_the_reference_scorer_on_random_cases(seed):
    golds, predictions, no_answer, dataset = random_case(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = [(squad(golds, predictions), evaluate(dataset, predictions)),
                 (squad(golds, predictions, no_answer), evaluate(dataset, predictions, no_answer)),
                 (squad(golds, predictions, no_answer, 0.45), evaluate(dataset, predictions, no_answer, 0.45))]
    for ours, reference in cases:
        assert ours.keys() == reference.keys()
        assert ours == pytest.approx(reference, rel=1e-12, abs=1e-12)
        assert 0 < ours["exact"] < ours["f1"] < 100 and ours["total"] == 300
        assert 0 < ours["NoAns_exact"] < 100 and 0 < ours["HasAns_exact"] < 100
    best = cases[1][0]
    assert 0 < best["best_exact"] < best["best_f1"] < 100
    assert {best["best_exact_thresh"], best["best_f1_thresh"]} <= {0.0, *no_answer.values()}
