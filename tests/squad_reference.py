"""A second, independent SQuAD scorer for tests, to recompute scores from saved predictions. It reads a SQuAD-format
dataset and walks the official evaluate-v2.0.py's steps in order (raw scores per question, the no-answer threshold,
totals per split, the best threshold), written apart from ablations.rc.metrics so that a disagreement points at one
of the two. Like metrics.squad, a missing prediction scores 0 and counts in the totals, and the HasAns/NoAns split
is only reported when some question is unanswerable."""

import re
import string
from collections import Counter

PUNCTUATION = re.compile("[" + re.escape(string.punctuation) + "]")
ARTICLE = re.compile(r"\b(a|an|the)\b")
WHITESPACE = re.compile(r"\s+")


def normalize(text):
    text = PUNCTUATION.sub("", text.lower())
    text = ARTICLE.sub(" ", text)
    return WHITESPACE.sub(" ", text).strip()


def exact(gold, pred):
    return 1 if normalize(gold) == normalize(pred) else 0


def f1(gold, pred):
    gold_tokens = normalize(gold).split()
    pred_tokens = normalize(pred).split()
    if len(gold_tokens) == 0 or len(pred_tokens) == 0:
        return 1 if gold_tokens == pred_tokens else 0
    overlap = Counter(gold_tokens) & Counter(pred_tokens)
    same = sum(overlap.values())
    if same == 0:
        return 0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def evaluate(dataset_json, predictions, na_probs=None, na_prob_thresh=1.0):
    has_answer = {}
    golds = {}
    for article in dataset_json["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                has_answer[qa["id"]] = len(qa["answers"]) > 0
                texts = [answer["text"] for answer in qa["answers"] if normalize(answer["text"]) != ""]
                golds[qa["id"]] = texts if texts else [""]

    raw_exact, raw_f1 = {}, {}
    for qid in golds:
        if qid not in predictions:
            raw_exact[qid], raw_f1[qid] = 0, 0
            continue
        raw_exact[qid] = max(exact(gold, predictions[qid]) for gold in golds[qid])
        raw_f1[qid] = max(f1(gold, predictions[qid]) for gold in golds[qid])

    final_exact, final_f1 = dict(raw_exact), dict(raw_f1)
    if na_probs is not None:
        for qid in golds:
            if qid in predictions and na_probs[qid] > na_prob_thresh:
                final_exact[qid] = final_f1[qid] = float(not has_answer[qid])

    def split(qids):
        total = len(qids)
        exact_sum, f1_sum = 0, 0
        for qid in qids:
            exact_sum += final_exact[qid]
            f1_sum += final_f1[qid]
        return {"exact": 100.0 * exact_sum / total, "f1": 100.0 * f1_sum / total, "total": total}

    out = split(list(golds))
    answerable = [qid for qid in golds if has_answer[qid]]
    unanswerable = [qid for qid in golds if not has_answer[qid]]
    if unanswerable:
        for prefix, qids in (("HasAns", answerable), ("NoAns", unanswerable)):
            if qids:
                for key, value in split(qids).items():
                    out[prefix + "_" + key] = value

    if na_probs is not None:
        for name, raw in (("exact", raw_exact), ("f1", raw_f1)):
            # Start by abstaining everywhere, then answer in rising order of no-answer probability.
            current = len([qid for qid in unanswerable if qid in predictions])
            best, best_thresh = current, 0.0
            for qid in sorted(na_probs, key=lambda q: na_probs[q]):
                if qid not in golds or qid not in predictions:
                    continue
                if has_answer[qid]:
                    current += raw[qid]
                elif predictions[qid]:
                    current -= 1
                if current > best:
                    best, best_thresh = current, na_probs[qid]
            out["best_" + name] = 100.0 * best / len(golds)
            out["best_" + name + "_thresh"] = best_thresh
    return out
