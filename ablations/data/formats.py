"""Input formats (RoBERTa section 4.2): how tokenised documents become fixed-length training sequences.

Each builder returns rows of (segment A, segment B or None, is_next or -1, first document, last document);
`to_arrays` lays them out as [CLS] A [SEP] (B [SEP]) padded to seq_len. The document span of every row
is kept so the tests can check which formats cross document boundaries.
"""

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from ablations.config import ConfigError

Sentence = list[int]
Doc = list[Sentence]


@dataclass
class Instances:
    input_ids: np.ndarray  # [N, seq_len] int32, padded
    token_type_ids: np.ndarray  # [N, seq_len] int8
    next_sentence_label: np.ndarray  # [N] int8: 0 is next, 1 random, -1 no pair
    doc_span: np.ndarray  # [N, 2] int32: first and last document (A's and B's document for pairs)
    lengths: np.ndarray  # [N] int32: real (non-padding) tokens, what budgets and batches count

    def __len__(self):
        return len(self.input_ids)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True)
        for name, array in vars(self).items():
            np.save(folder / f"{name}.npy", array)

    @classmethod
    def load(cls, folder: Path) -> "Instances":
        """Memory-mapped: every process (DDP rank, loader worker) shares the page cache instead of a copy."""
        return cls(**{f.name: np.load(folder / f"{f.name}.npy", mmap_mode="r") for f in fields(cls)})


def build(fmt, docs: list[Doc], seq_len: int, cls_id: int, sep_id: int, pad_id: int, rng) -> Instances:
    if fmt.pairs:
        rows = pairs(docs, seq_len - 3, rng, fmt.short_seq_prob, single_sentences=fmt.name == "sentence_pair")
    else:
        rows = packed(docs, seq_len - 2, fmt.cross_documents, sep_id)
    return to_arrays(rows, seq_len, cls_id, sep_id, pad_id)


def packed(docs: list[Doc], max_tokens: int, cross_documents: bool, sep_id: int):
    """FULL-SENTENCES (cross_documents) or DOC-SENTENCES: contiguous sentences up to max_tokens.

    A sentence longer than max_tokens is cut into pieces; at a document end, full_sentences adds a
    separator and goes on with the next document, doc_sentences closes the sequence.
    """
    current, first = [], 0
    for d, doc in enumerate(docs):
        if not current:
            first = d
        for sentence in doc:
            for start in range(0, len(sentence), max_tokens):
                piece = sentence[start:start + max_tokens]
                if len(current) + len(piece) > max_tokens and current:
                    yield current, None, -1, first, d
                    current, first = [], d
                current = current + piece
        if not cross_documents:
            yield current, None, -1, first, d
            current = []
        elif d + 1 < len(docs):
            if len(current) + 1 > max_tokens:
                yield current, None, -1, first, d
                current, first = [], d + 1
            else:
                current = current + [sep_id]
    if current:
        yield current, None, -1, first, len(docs) - 1


def pairs(docs: list[Doc], max_tokens: int, rng, short_seq_prob: float, single_sentences: bool):
    """SEGMENT-PAIR (BERT's create_instances_from_document) or SENTENCE-PAIR with NSP labels.

    A fair coin picks "is next" or "random" for every pair. A chunk of one sentence (a document's last, or
    one sentence longer than the target) is skipped rather than forced to be a negative as in BERT, so the
    two classes stay balanced.
    """
    if len(docs) < 2:
        raise ConfigError("data: sentence pairs need at least two training documents (negatives come from another "
                          "document)")
    for d, doc in enumerate(docs):
        target = max_tokens
        if rng.random() < short_seq_prob:
            target = int(rng.integers(2, max_tokens + 1))
        i, chunk, length = 0, [], 0
        while i < len(doc):
            chunk.append(doc[i])
            length += len(doc[i])
            full = len(chunk) == 2 if single_sentences else length >= target
            if (i == len(doc) - 1 or full) and len(chunk) >= 2:
                a_end = 1 if single_sentences else int(rng.integers(1, len(chunk)))
                a = sum(chunk[:a_end], [])
                if rng.random() < 0.5:
                    yield _truncated(a, sum(chunk[a_end:], []), max_tokens, rng) + (0, d, d)
                else:
                    other = _other_document(d, len(docs), rng)
                    b = _random_segment(docs[other], 1 if single_sentences else target - len(a), rng)
                    yield _truncated(a, b, max_tokens, rng) + (1, d, other)
                    i -= len(chunk) - a_end  # the unused sentences start the next chunk
                chunk, length = [], 0
            i += 1


def _other_document(d: int, n: int, rng) -> int:
    other = int(rng.integers(0, n - 1))
    return other + (other >= d)


def _random_segment(doc: Doc, min_tokens: int, rng) -> Sentence:
    start = int(rng.integers(0, len(doc)))
    segment = []
    for sentence in doc[start:]:
        segment += sentence
        if len(segment) >= min_tokens:
            break
    return segment


def _truncated(a: Sentence, b: Sentence, max_tokens: int, rng):
    """BERT's truncate_seq_pair: trim the longer segment, from the front or back at random."""
    a, b = list(a), list(b)
    while len(a) + len(b) > max_tokens:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()
    return a, b


def to_arrays(rows, seq_len: int, cls_id: int, sep_id: int, pad_id: int) -> Instances:
    rows = [row for row in rows if row[0]]
    n = len(rows)
    ids = np.full((n, seq_len), pad_id, dtype=np.int32)
    types = np.zeros((n, seq_len), dtype=np.int8)
    labels = np.full(n, -1, dtype=np.int8)
    spans = np.zeros((n, 2), dtype=np.int32)
    lengths = np.zeros(n, dtype=np.int32)
    for r, (a, b, is_next, first, last) in enumerate(rows):
        seq = [cls_id, *a, sep_id]
        if b is not None:
            types[r, len(seq):len(seq) + len(b) + 1] = 1
            seq += [*b, sep_id]
        ids[r, :len(seq)] = seq
        labels[r], spans[r], lengths[r] = is_next, (first, last), len(seq)
    return Instances(ids, types, labels, spans, lengths)
