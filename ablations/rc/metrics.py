"""Reading-comprehension metrics as the official scripts define them: SQuAD's evaluate-v1.1/v2.0.py and RACE's
accuracy by exam level. Written here because the Hub's `evaluate` fetches its metric code over the network at run
time, and the official scripts, not a library, are the definition the papers quote.

SQuAD scores are percentages, 0-100, because the official script reports them so; RACE accuracies are fractions in
[0, 1], like this project's GLUE accuracies."""

import re
import string
import warnings
from collections import Counter

_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_LEVELS = ("middle", "high")


def normalize_answer(text: str) -> str:
    """The order is SQuAD's: punctuation goes before articles, so "the," loses its article; `\\b` is Unicode-aware,
    so "the’s" (a curly apostrophe is not in string.punctuation) loses it too."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """An empty side scores 1 only against another empty side: v2.0's rule for unanswerable questions."""
    predicted, reference = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not reference:
        return float(predicted == reference)
    in_reference = Counter(reference)
    common = sum(min(n, in_reference[token]) for token, n in Counter(predicted).items())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(reference)
    return 2 * precision * recall / (precision + recall)


def _best_over_golds(golds: list[str], prediction: str) -> tuple[float, float]:
    """v2.0 drops gold answers that normalise to nothing; a question left with none is scored against ""."""
    golds = [gold for gold in golds if normalize_answer(gold)] or [""]
    return max(exact_match(prediction, g) for g in golds), max(token_f1(prediction, g) for g in golds)


def _percentages(scores: dict[str, tuple[float, float]], ids: list[str]) -> dict[str, float]:
    """A missing prediction scores 0 but counts in `total`, as in v1.1 (v2.0 drops it from `total`)."""
    exact = sum(scores[qid][0] for qid in ids if qid in scores)
    f1 = sum(scores[qid][1] for qid in ids if qid in scores)
    return {"exact": 100 * exact / len(ids), "f1": 100 * f1 / len(ids), "total": float(len(ids))}


def _best_thresholds(raw: dict[str, tuple[float, float]], answerable: dict[str, bool], predictions: dict[str, str],
                     no_answer_probs: dict[str, float], total: int) -> dict[str, float]:
    """v2.0's find_best_thresh: start from predicting no-answer everywhere, answer the questions in rising order of
    no-answer probability, keep the threshold where the score peaks. Like the official script, an unanswerable
    question costs 1 when its raw prediction string is non-empty, even one that normalises to nothing."""
    order = sorted((qid for qid in no_answer_probs if qid in raw), key=no_answer_probs.__getitem__)
    best = {}
    for i, name in enumerate(("exact", "f1")):
        score = peak = float(sum(not answerable[qid] for qid in raw))
        thresh = 0.0
        for qid in order:
            if answerable[qid]:
                score += raw[qid][i]
            elif predictions[qid]:
                score -= 1
            if score > peak:
                peak, thresh = score, no_answer_probs[qid]
        best |= {f"best_{name}": 100 * peak / total, f"best_{name}_thresh": float(thresh)}
    return best


def squad(examples_gold: dict[str, list[str]], predictions: dict[str, str],
          no_answer_probs: dict[str, float] | None = None, threshold: float = 1.0) -> dict[str, float]:
    """SQuAD v1.1 and v2.0 scores as the v2.0 script computes them (an empty gold list is an unanswerable
    question); the HasAns/NoAns split only appears when a question is unanswerable, so v1.1 reports stay v1.1's."""
    missing = [qid for qid in examples_gold if qid not in predictions]
    if missing:
        warnings.warn(f"{len(missing)} of {len(examples_gold)} questions have no prediction, scored 0: {missing[:5]}")
    answerable = {qid: bool(golds) for qid, golds in examples_gold.items()}
    raw = {qid: _best_over_golds(golds, predictions[qid]) for qid, golds in examples_gold.items()
           if qid in predictions}
    scores = raw
    if no_answer_probs is not None:
        scores = {qid: (float(not answerable[qid]),) * 2 if no_answer_probs[qid] > threshold else score
                  for qid, score in raw.items()}
    result = _percentages(scores, list(examples_gold))
    if not all(answerable.values()):
        for name, wanted in (("HasAns", True), ("NoAns", False)):
            ids = [qid for qid, has in answerable.items() if has == wanted]
            if ids:
                result |= {f"{name}_{key}": value for key, value in _percentages(scores, ids).items()}
    if no_answer_probs is not None:
        result |= _best_thresholds(raw, answerable, predictions, no_answer_probs, len(examples_gold))
    return result


def race(labels: list[int], predictions: list[int], levels: list[str]) -> dict[str, float]:
    """RACE reports accuracy over all questions and separately on its middle- and high-school exams."""
    rows = list(zip(labels, predictions, levels, strict=True))
    if unknown := {level for *_, level in rows} - set(_LEVELS):
        raise ValueError(f"RACE levels are {_LEVELS}, got {sorted(unknown)}")

    def accuracy(subset):
        return sum(label == prediction for label, prediction, _ in subset) / len(subset)

    result = {"accuracy": accuracy(rows)}
    for level in _LEVELS:
        if subset := [row for row in rows if row[2] == level]:
            result[f"{level}_accuracy"] = accuracy(subset)
    return result
