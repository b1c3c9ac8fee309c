"""The input side of reading-comprehension fine-tuning: a SQuAD question over overlapping windows of its context
(BERT's run_squad), span logits back to answer text, and RACE's four (article, question with option) pairs
(fairseq's RACE recipe).

Examples are duck-typed: a span example has .id, .question, .context and .answers (items with .text and a character
.start; none = unanswerable), a choice example has .article, .question, .options and .label.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from transformers import DataCollatorWithPadding

_ENCODED = ("input_ids", "attention_mask", "token_type_ids")
_SPAN_INPUTS = (*_ENCODED, "start_positions", "end_positions")


def span_features(tokenizer, examples, max_length: int, doc_stride: int, max_query_length: int,
                  train: bool) -> list[dict]:
    """One feature per window: [CLS] question [SEP] context window [SEP], unpadded, with `example` its index.

    `doc_stride` means what it means in BERT's run_squad (128 with 384-token sequences, the value the papers
    report): the step between the starts of consecutive windows. The tokenizer's `stride` is the overlap instead,
    so each example gets overlap = (its context room) - doc_stride; a step past the room would skip context, so
    it is capped at the room, as run_squad's min(length, doc_stride) does.

    Train features carry the first gold answer's token span, or 0/0 (the [CLS] token, BERT's null answer) where
    the window does not hold it whole or there is none. Eval features carry `offsets`, the character span of each
    context token and None elsewhere, so decoding can only ever pick context.
    """
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    features = []
    for index, example in enumerate(examples):
        question, question_length = _question(tokenizer, example.question, max_query_length)
        room = max_length - question_length - specials
        if room <= 0:
            raise ValueError(f"max_length={max_length} leaves no room for context after a {question_length}-token "
                             "question; raise max_length or lower max_query_length")
        encoded = tokenizer([question], [example.context], truncation="only_second", max_length=max_length,
                            stride=max(room - doc_stride, 0), return_overflowing_tokens=True,
                            return_offsets_mapping=True)
        for window in range(len(encoded["input_ids"])):
            feature = {key: encoded[key][window] for key in _ENCODED if key in encoded}
            feature["example"] = index
            offsets = [span if segment == 1 else None
                       for span, segment in zip(encoded["offset_mapping"][window], encoded.sequence_ids(window))]
            if train:
                feature["start_positions"], feature["end_positions"] = _answer_positions(example.answers, offsets)
            else:
                feature["offsets"] = offsets
            features.append(feature)
    return features


def _question(tokenizer, question: str, max_query_length: int) -> tuple[str, int]:
    """The question cut after its max_query_length-th token, and its length in tokens. Cut as text (at that
    token's last character) because the pair is encoded from text."""
    encoded = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    if len(encoded["input_ids"]) <= max_query_length:
        return question, len(encoded["input_ids"])
    question = question[:encoded["offset_mapping"][max_query_length - 1][1]]
    return question, len(tokenizer(question, add_special_tokens=False)["input_ids"])


def _answer_positions(answers, offsets: list) -> tuple[int, int]:
    """The tokens that overlap the first gold answer's characters, when the window's context covers it whole."""
    context = [i for i, span in enumerate(offsets) if span is not None]
    if not answers or not context:
        return 0, 0
    start = answers[0].start
    end = start + len(answers[0].text)
    if offsets[context[0]][0] > start or offsets[context[-1]][1] < end:
        return 0, 0
    first = next(i for i in context if offsets[i][1] > start)
    last = next(i for i in reversed(context) if offsets[i][0] < end)
    return first, last


def decode_spans(examples, features, start_logits, end_logits, n_best: int,
                 max_answer_length: int) -> tuple[dict[str, str], dict[str, float]]:
    """Each example's best answer over all its windows, and its null odds.

    A span is a pair among a window's n_best start and n_best end tokens, both in context, end >= start, at most
    max_answer_length tokens; its score is start + end logit. The null score is start + end logit of token 0
    (BERT's [CLS] answer), the smallest over the example's windows, as run_squad's score_null; null odds = null
    score - best span score, which a SQuAD 2.0 caller thresholds to answer "". With no valid span the prediction
    is "" and the odds +inf: nothing but null is on offer. Logits past a feature's length (padding) are ignored.
    """
    best, null = {}, {}
    for feature, starts, ends in zip(features, start_logits, end_logits):
        offsets = feature["offsets"]
        starts = np.asarray(starts, dtype=float)[:len(offsets)]
        ends = np.asarray(ends, dtype=float)[:len(offsets)]
        index = feature["example"]
        null[index] = min(null.get(index, math.inf), starts[0] + ends[0])
        span = _best_span(starts, ends, offsets, n_best, max_answer_length)
        if span and (index not in best or span[0] > best[index][0]):
            score, first, last = span
            # strip: byte-level BPE offsets include the space before a word
            best[index] = (score, examples[index].context[offsets[first][0]:offsets[last][1]].strip())
    predictions = {example.id: best[i][1] if i in best else "" for i, example in enumerate(examples)}
    null_odds = {example.id: float(null[i] - best[i][0]) if i in best else math.inf
                 for i, example in enumerate(examples)}
    return predictions, null_odds


def _best_span(starts: np.ndarray, ends: np.ndarray, offsets: list, n_best: int,
               max_answer_length: int) -> tuple[float, int, int] | None:
    candidates = [(float(starts[s] + ends[e]), int(s), int(e)) for s in _top(starts, n_best) for e in _top(ends, n_best)
                  if offsets[s] is not None and offsets[e] is not None and s <= e < s + max_answer_length]
    return max(candidates, default=None)


def _top(logits: np.ndarray, n: int) -> np.ndarray:
    return np.argsort(-logits, kind="stable")[:n]


def span_collator(tokenizer):
    """Pads span features per batch; `example` and `offsets` stay behind for decoding."""
    pad = DataCollatorWithPadding(tokenizer)

    def collate(features: list[dict]) -> dict:
        return pad([{key: value for key, value in f.items() if key in _SPAN_INPUTS} for f in features])
    return collate


def choice_features(tokenizer, examples, max_length: int) -> list[dict]:
    """Per RACE example its options as (article, question with option) pairs; only the article is truncated, so
    every option is seen whole."""
    features = []
    for example in examples:
        endings = [_fill(example.question, option) for option in example.options]
        encoded = tokenizer([example.article] * len(endings), endings, truncation="only_first", max_length=max_length)
        features.append({**{key: encoded[key] for key in _ENCODED if key in encoded}, "labels": example.label})
    return features


def _fill(question: str, option: str) -> str:
    """RACE's cloze questions mark the blank with "_", which the option fills; other questions are followed by it."""
    text = question.replace("_", option) if "_" in question else f"{question} {option}"
    return " ".join(text.split())


@dataclass
class ChoiceCollator:
    """Pads a batch of choice features to [batch, options, longest]: the options are padded as one flat batch,
    so all share a length and reshape back."""
    tokenizer: object

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        options = len(features[0]["input_ids"])
        flat = [{key: f[key][j] for key in _ENCODED if key in f} for f in features for j in range(options)]
        padded = self.tokenizer.pad(flat, return_tensors="pt")
        batch = {key: value.view(len(features), options, -1) for key, value in padded.items()}
        batch["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
        return batch
