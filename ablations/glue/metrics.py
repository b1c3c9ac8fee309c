"""GLUE's metrics, computed as GLUE defines them on the full dev predictions, with scikit-learn and scipy
(torchmetrics' defaults differ: macro accuracy, micro F1; `evaluate` needs the Hub at run time)."""

import statistics

import numpy as np
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

_METRICS = {
    "accuracy": lambda y, p: accuracy_score(y, p),
    "f1": lambda y, p: f1_score(y, p, average="binary", pos_label=1),  # of the positive class, as GLUE
    "matthews_correlation": lambda y, p: matthews_corrcoef(y, p),  # 0 for constant predictions
    "pearson": lambda y, p: _correlation(pearsonr, y, p),
    "spearmanr": lambda y, p: _correlation(spearmanr, y, p),
}


def _correlation(fn, y, p) -> float:
    """Undefined (nan) for constant predictions: reported as 0, no linear relation, as MCC does."""
    if np.ptp(p) == 0 or np.ptp(y) == 0:
        return 0.0
    return fn(y, p)[0]


def compute(metrics: tuple[str, ...], labels, predictions) -> dict[str, float]:
    """Each metric in [0, 1] (correlations in [-1, 1]), plus `score`: their mean, GLUE's task score."""
    y, p = np.asarray(labels), np.asarray(predictions)
    values = {name: float(_METRICS[name](y, p)) for name in metrics}
    return {**values, "score": statistics.fmean(values.values())}
