"""GLUE's metrics against values computed by hand, including the cases where library defaults differ."""

import math

import pytest

from ablations.finetuning import over_seeds
from ablations.glue.metrics import compute


def test_accuracy():
    assert compute(("accuracy",), [1, 0, 1, 1], [1, 0, 0, 1]) == {"accuracy": 0.75, "score": 0.75}


def test_f1_is_of_the_positive_class_not_micro():
    # TP 1, FP 1, FN 0: precision 1/2, recall 1, F1 2/3; micro F1 would equal accuracy, 3/4
    values = compute(("f1", "accuracy"), [1, 0, 0, 0], [1, 1, 0, 0])
    assert values["f1"] == pytest.approx(2 / 3)
    assert values["accuracy"] == 0.75
    assert values["score"] == pytest.approx((2 / 3 + 0.75) / 2)  # MRPC/QQP: the mean of F1 and accuracy


def test_matthews_correlation():
    # TP 1, TN 2, FP 0, FN 1: (1*2 - 0*1) / sqrt(1 * 2 * 2 * 3)
    assert compute(("matthews_correlation",), [1, 1, 0, 0], [1, 0, 0, 0])["matthews_correlation"] == \
        pytest.approx(2 / math.sqrt(12))


def test_constant_predictions_give_zero_correlations():
    assert compute(("matthews_correlation",), [1, 0, 1, 0], [1, 1, 1, 1])["matthews_correlation"] == 0.0
    values = compute(("pearson", "spearmanr"), [1.0, 2.0, 3.0], [2.5, 2.5, 2.5])
    assert values == {"pearson": 0.0, "spearmanr": 0.0, "score": 0.0}


def test_pearson_and_spearman():
    # deviations (-1.5, -.5, .5, 1.5) and (-1.5, .5, -.5, 1.5): covariance 4, variances 5 and 5
    values = compute(("pearson", "spearmanr"), [1, 2, 3, 4], [1, 3, 2, 4])
    assert values["pearson"] == pytest.approx(0.8)
    assert values["spearmanr"] == pytest.approx(0.8)
    monotone = compute(("pearson", "spearmanr"), [1, 2, 3, 4], [1, 4, 9, 16])
    assert monotone["spearmanr"] == pytest.approx(1.0) and monotone["pearson"] < 0.99


def test_headline_is_the_median_over_seeds_with_the_spread_beside_it():
    summary = over_seeds([{"rte/accuracy": 0.5}, {"rte/accuracy": 0.9}, {"rte/accuracy": 0.6}])["rte/accuracy"]
    assert (summary["median"], summary["min"], summary["max"], summary["n"]) == (0.6, 0.5, 0.9, 3)
    assert summary["std"] == pytest.approx(0.2081666)
    assert over_seeds([{"a": v} for v in (1, 2, 3, 4)])["a"]["median"] == 2.5
