"""Seed statistics and effect sizes. Values are keyed by replicate (pretraining seed, fine-tuning seed), so a
delta between two arms pairs the replicates both arms ran; its 95% interval is a percentile bootstrap (fixed
random state: the same runs always give the same interval)."""

import statistics
from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap

RESAMPLES = 2000


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    mean: float
    std: float


def summarize(values) -> Summary | None:
    values = list(values)
    if not values:
        return None
    return Summary(len(values), statistics.median(values), statistics.fmean(values),
                   statistics.stdev(values) if len(values) > 1 else 0.0)


@dataclass(frozen=True)
class Delta:
    value: float
    low: float | None   # None: fewer than 2 replicates, no interval
    high: float | None
    n: int
    paired: bool

    @property
    def within_noise(self) -> bool | None:
        return None if self.low is None else self.low <= 0 <= self.high


def delta(treatment: dict, control: dict) -> Delta | None:
    """Mean effect of treatment over control: the mean paired difference over shared replicates, else the
    difference of means (each arm resampled on its own)."""
    shared = sorted(set(treatment) & set(control))
    if shared:
        diffs = np.array([treatment[k] - control[k] for k in shared], dtype=float)
        return _interval(diffs.mean(), (diffs,), lambda d, axis: d.mean(axis=axis), len(shared), True)
    if not treatment or not control:
        return None
    a, b = np.array(list(treatment.values()), float), np.array(list(control.values()), float)
    return _interval(a.mean() - b.mean(), (a, b), lambda x, y, axis: x.mean(axis=axis) - y.mean(axis=axis),
                     min(len(a), len(b)), False)


def pooled(differences: list[np.ndarray]) -> Delta | None:
    """The main effect of a factor in a factorial grid: paired differences pooled over every setting of the
    other factors."""
    diffs = np.concatenate(differences) if differences else np.array([])
    if not len(diffs):
        return None
    return _interval(diffs.mean(), (diffs,), lambda d, axis: d.mean(axis=axis), len(diffs), True)


def interaction(high: np.ndarray, low: np.ndarray) -> Delta:
    """How much one factor's effect changes with the other: effect at the other's second level minus at its
    first."""
    return _interval(high.mean() - low.mean(), (high, low), lambda x, y, axis: x.mean(axis=axis) - y.mean(axis=axis),
                     min(len(high), len(low)), False)


def _interval(value, samples, statistic, n, paired) -> Delta:
    value = float(value)
    if min(len(s) for s in samples) < 2:
        return Delta(value, None, None, n, paired)
    if all(np.ptp(s) == 0 for s in samples):  # identical replicates: nothing to resample
        return Delta(value, value, value, n, paired)
    ci = bootstrap(samples, statistic, n_resamples=RESAMPLES, confidence_level=0.95, method="percentile",
                   vectorized=True, paired=False, random_state=np.random.default_rng(0)).confidence_interval
    return Delta(value, float(ci.low), float(ci.high), n, paired)
