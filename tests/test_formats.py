"""Input formats (RoBERTa section 4.2): NSP pairs are balanced with negatives from another document;
doc_sentences never crosses a document boundary; full_sentences does, with a separator."""

import numpy as np
import pytest
from omegaconf import OmegaConf

from ablations.data import formats

CLS, SEP, PAD, SEQ_LEN = 2, 3, 0, 64


def corpus(n_docs=300, seed=0):
    """Documents of 3-12 sentences; every token names its document (10 + doc), so spans can be checked."""
    rng = np.random.default_rng(seed)
    return [[[10 + d] * int(rng.integers(4, 20)) for _ in range(int(rng.integers(3, 13)))] for d in range(n_docs)]


def build(name, docs, seed=0, **extra):
    fmt = OmegaConf.load(f"conf/input_format/{name}.yaml")
    fmt = OmegaConf.merge(fmt, extra)
    return formats.build(fmt, docs, SEQ_LEN, CLS, SEP, PAD, np.random.default_rng(seed))


def docs_in(row):
    tokens = row[(row != CLS) & (row != SEP) & (row != PAD)]
    return set((tokens - 10).tolist())


@pytest.mark.parametrize("name", ["segment_pair", "sentence_pair"])
def test_nsp_pairs_balanced_with_negatives_from_another_document(name):
    docs = corpus()
    inst = build(name, docs)
    labels = inst.next_sentence_label
    n = len(labels)
    assert n > 500 and set(labels.tolist()) == {0, 1}
    assert abs(labels.mean() - 0.5) < 3 * 0.5 / np.sqrt(n)  # within 3 standard errors of 50/50
    for row, types, label in zip(inst.input_ids, inst.token_type_ids, labels):
        a, b = docs_in(row[types == 0]), docs_in(row[types == 1])
        assert len(a) == len(b) == 1
        assert (a == b) == (label == 0)  # "is next": same document; "random": another document
        assert (row == SEP).sum() == 2 and row[0] == CLS


def test_sentence_pair_holds_one_sentence_per_segment():
    docs = corpus()
    lengths = {len(s) for doc in docs for s in doc}
    inst = build("sentence_pair", docs)
    for row, types in zip(inst.input_ids, inst.token_type_ids):
        body = row[(row != CLS) & (row != SEP) & (row != PAD)]
        a = (types[:len(row)] == 0) & (row != CLS) & (row != SEP) & (row != PAD)
        assert a.sum() in lengths and len(body) - a.sum() in lengths


def test_segment_pair_short_sequences_at_short_seq_prob():
    docs = corpus(1000)
    inst = build("segment_pair", docs, short_seq_prob=0.0)
    shorter = build("segment_pair", docs, short_seq_prob=0.5)
    fill = lambda i: (i.input_ids != PAD).sum(1).mean()
    assert fill(shorter) < fill(inst) - 5


def test_doc_sentences_never_crosses_a_document():
    inst = build("doc_sentences", corpus())
    assert (inst.doc_span[:, 0] == inst.doc_span[:, 1]).all()
    assert all(len(docs_in(row)) == 1 for row in inst.input_ids)
    assert ((inst.input_ids == SEP).sum(1) == 1).all()  # only the closing separator


def test_full_sentences_crosses_documents_with_a_separator():
    docs = corpus()
    inst = build("full_sentences", docs)
    crossing = [row for row in inst.input_ids if len(docs_in(row)) > 1]
    assert len(crossing) > len(inst) // 4
    for row in crossing:
        body = row[1:(row != PAD).sum() - 1].tolist()
        for left, middle, right in zip(body, body[1:], body[2:]):
            assert middle == SEP or left == SEP or left == middle  # a new document only after a separator
            if middle == SEP:
                assert left != right  # a separator only between documents
    # Packing loses no token: every token of the corpus is in exactly one sequence.
    ids = inst.input_ids
    assert (ids >= 10).sum() == sum(len(s) for doc in docs for s in doc)
    assert (ids != PAD).sum(1).min() > 0 and (ids != PAD).sum(1).mean() > 0.9 * SEQ_LEN


def test_a_sentence_longer_than_seq_len_is_cut_not_dropped():
    docs = [[[11] * 150], [[12] * 5]]
    inst = build("doc_sentences", docs)
    assert (inst.input_ids == 11).sum() == 150 and (inst.input_ids == 12).sum() == 5
