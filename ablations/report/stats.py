"""Seed statistics and effects. The replicate of a pretraining effect is the pretraining seed: fine-tuning
seeds are first reduced to their median within each pretraining seed (the paper reports medians over
fine-tuning seeds), then cells are means over pretraining seeds and an effect is the same contrast of those
means, so a delta is always the difference of the cells beside it.

Intervals are 95% Student-t intervals over pretraining seeds, valid for the 2-5 seeds a grid has (a
percentile bootstrap over 2 seeds returns [min, max]): paired over the seeds every arm of the contrast ran,
else Welch's. One seed, or no spread between seeds, gives no interval.
"""

import math
import statistics
from dataclasses import dataclass

from scipy import stats as scipy_stats

CONFIDENCE = 0.95
POWER = 0.8


def per_pretraining_seed(values: dict[tuple, float]) -> dict[int, float]:
    """{(pretraining seed, fine-tuning seed) or (pretraining seed,): value} -> {pretraining seed: median}."""
    grouped: dict[int, list[float]] = {}
    for key, value in values.items():
        grouped.setdefault(key[0], []).append(value)
    return {seed: statistics.median(v) for seed, v in sorted(grouped.items())}


@dataclass(frozen=True)
class Summary:
    """A cell: the mean over pretraining seeds of each seed's value, with the spread between seeds."""
    n: int
    mean: float
    std: float  # between pretraining seeds; 0 with one seed
    seeds: dict  # {pretraining seed: its value}


def summarize(values: dict[tuple, float]) -> Summary | None:
    seeds = per_pretraining_seed(values)
    if not seeds:
        return None
    v = list(seeds.values())
    return Summary(len(v), statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0, seeds)


@dataclass(frozen=True)
class Effect:
    """A contrast of cells: an estimate, its 95% t-interval (None: not estimable), n pretraining seeds and the
    seeds a study would need to resolve `target` (the paper's effect, else this one) with 80% power."""
    value: float
    low: float | None
    high: float | None
    n: int
    paired: bool
    seeds_needed: int | None = None
    target: str = ""  # what seeds_needed refers to: "paper" or "observed"

    @property
    def has_interval(self) -> bool:
        return self.low is not None

    @property
    def resolved(self) -> bool:
        """The interval excludes 0."""
        return self.has_interval and (self.low > 0 or self.high < 0)


def contrast(terms: list[tuple[float, Summary | None]], paper_effect: float | None = None) -> Effect | None:
    """sum(weight * cell mean) with its interval: paired over the seeds all cells share (then the per-seed contrast
    has a spread), else Welch's over the cells' own spreads."""
    if any(s is None for _, s in terms):
        return None
    value = sum(w * s.mean for w, s in terms)
    shared = set.intersection(*(set(s.seeds) for _, s in terms))
    if len(shared) >= 2 and all(set(s.seeds) == shared for _, s in terms):
        per_seed = [sum(w * s.seeds[seed] for w, s in terms) for seed in sorted(shared)]
        sd, n, df, paired = statistics.stdev(per_seed), len(per_seed), len(per_seed) - 1, True
        se = sd / math.sqrt(n)
    else:
        n, paired = min(s.n for _, s in terms), False
        if n < 2:
            return Effect(value, None, None, n, paired)
        parts = [(w * w * s.std ** 2 / s.n, s.n - 1) for w, s in terms]
        se = math.sqrt(sum(v for v, _ in parts))
        denominator = sum(v * v / dof for v, dof in parts if v > 0)
        df = se ** 4 / denominator if denominator else n - 1  # Welch-Satterthwaite
        sd = se * math.sqrt(n)
    if se <= 1e-9 * max(1.0, abs(value)):  # identical replicates: no spread measured, no interval claimed
        return Effect(value, None, None, n, paired)
    half = scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, df) * se
    target = abs(paper_effect) if paper_effect else abs(value)
    return Effect(value, value - half, value + half, n, paired, seeds_needed(sd, target),
                  "paper" if paper_effect else "observed")


def seeds_needed(sd: float, effect: float, cap: int = 1000) -> int | None:
    """Pretraining seeds for a 95% interval to exclude 0 with 80% power when the true effect is `effect` and
    per-seed contrasts spread by sd: the smallest n with (t_.975 + t_.80) * sd / sqrt(n) <= |effect|."""
    if effect == 0:
        return None
    z = scipy_stats.norm.ppf(0.5 + CONFIDENCE / 2) + scipy_stats.norm.ppf(POWER)
    start = max(2, math.floor((z * sd / abs(effect)) ** 2))  # the normal approximation; t quantiles only need more
    for n in range(start, cap + 1):
        quantiles = scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) + scipy_stats.t.ppf(POWER, n - 1)
        if quantiles * sd / math.sqrt(n) <= abs(effect):
            return n
    return None
