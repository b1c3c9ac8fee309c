"""Masking invariants (DESIGN.md): rate and 80/10/10 shares, special tokens untouched, static masks repeat
with period dupe_factor, dynamic ones never, both reproducible from the seed, with any number of workers."""

from functools import partial

import numpy as np
import pytest
from torch.utils.data import DataLoader

from ablations.data.formats import to_arrays
from ablations.data.masking import IGNORE, EpochSampler, MaskedDataset, Masker, collate, mask_all

NUM_SPECIAL, VOCAB, MASK_ID, PAD, CLS, SEP, SEQ_LEN = 5, 1000, 4, 0, 2, 3, 64
MASKER = Masker(0.15, 0.8, 0.1, mask_id=MASK_ID, num_special=NUM_SPECIAL, vocab_size=VOCAB)


def instances(n=400, seq_len=SEQ_LEN, seed=0, min_length=10):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        length = int(rng.integers(min_length, seq_len - 2))
        body = rng.integers(NUM_SPECIAL, VOCAB, length).tolist()
        body[length // 2] = SEP  # a separator inside the sequence, as full_sentences has
        rows.append((body, None, -1, 0, 0))
    return to_arrays(rows, seq_len, CLS, SEP, PAD)


def test_mask_rate_and_replacement_shares():
    data = instances(2000)
    inputs, labels = mask_all(data, MASKER, seed=0, k=0)
    regular = data.input_ids >= NUM_SPECIAL
    selected = labels != IGNORE
    n = selected.sum()
    assert abs(n / regular.sum() - 0.15) < 0.005
    masked = (inputs == MASK_ID) & selected
    kept = (inputs == data.input_ids) & selected
    randomised = selected & ~masked & ~kept
    # A random replacement can draw the original token (1 in 995): counted as kept, as BERT's rule allows.
    assert abs(masked.sum() / n - 0.8) < 0.01
    assert abs(randomised.sum() / n - 0.1 * (1 - 1 / (VOCAB - NUM_SPECIAL))) < 0.01
    assert abs(kept.sum() / n - 0.1) < 0.01
    assert (labels[selected] == data.input_ids[selected]).all()
    assert (inputs[randomised] >= NUM_SPECIAL).all()


def test_special_tokens_and_padding_never_masked():
    data = instances(500)
    inputs, labels = mask_all(data, MASKER, seed=3, k=1)
    special = data.input_ids < NUM_SPECIAL
    assert special.any() and (labels[special] == IGNORE).all()
    assert (inputs[special] == data.input_ids[special]).all()


def feed(dataset, epochs, workers):
    """The (inputs, labels) a DataLoader actually feeds, by (epoch, index); they equal dataset.masked."""
    sampler = EpochSampler(len(dataset), seed=0)
    loader = DataLoader(dataset, batch_size=16, sampler=sampler, num_workers=workers,
                        persistent_workers=workers > 0, collate_fn=partial(collate, pad_id=PAD))
    fed = {}
    for epoch in range(epochs):
        sampler.set_epoch(epoch)  # what Lightning does before every epoch
        for batch in loader:
            width = batch["labels"].shape[1]
            for row, index in enumerate(batch["index"].tolist()):
                fed[epoch, index] = (batch["input_ids"][row].tolist() + [PAD] * (SEQ_LEN - width),
                                     batch["labels"][row].tolist() + [IGNORE] * (SEQ_LEN - width))
                assert tuple(map(np.ndarray.tolist, dataset.masked(epoch, index))) == fed[epoch, index]
    return fed


def static_dataset(data, dupe_factor, seed=0):
    copies = [mask_all(data, MASKER, seed, k) for k in range(dupe_factor)]
    return MaskedDataset(data, MASKER, seed, tuple(np.stack(x) for x in zip(*copies)))


@pytest.mark.parametrize("workers", [0, 2])
def test_static_masks_repeat_with_period_dupe_factor(workers):
    data = instances(64)
    fed = feed(static_dataset(data, dupe_factor=3), epochs=7, workers=workers)
    for index in range(len(data)):
        masks = [fed[e, index] for e in range(7)]
        assert masks[0] == masks[3] == masks[6] and masks[1] == masks[4] and masks[2] == masks[5]
        assert len({str(masks[0]), str(masks[1]), str(masks[2])}) == 3


@pytest.mark.parametrize("workers", [0, 2])
def test_dynamic_masks_never_repeat(workers):
    data = instances(64, min_length=50)  # long enough that a chance repeat (< 1e-7) cannot flake
    fed = feed(MaskedDataset(data, MASKER, seed=0), epochs=6, workers=workers)
    for index in range(len(data)):
        assert len({str(fed[e, index]) for e in range(6)}) == 6


def test_masks_reproducible_from_seed_and_independent_of_workers():
    data = instances(64)
    assert feed(MaskedDataset(data, MASKER, seed=0), 2, workers=0) == feed(MaskedDataset(data, MASKER, seed=0), 2, 2)
    assert feed(MaskedDataset(data, MASKER, seed=0), 2, 0) != feed(MaskedDataset(data, MASKER, seed=1), 2, 0)


def test_static_copy_k_is_dynamic_epoch_k():
    """The arms see the same masks for the first dupe_factor epochs; they differ only in repeating them."""
    data = instances(32)
    static, dynamic = static_dataset(data, 2), MaskedDataset(data, MASKER, seed=0)
    for index in range(len(data)):
        for epoch in (0, 1):
            assert all((s == d).all() for s, d in zip(static.masked(epoch, index), dynamic.masked(epoch, index)))
        assert not (static.masked(2, index)[1] == dynamic.masked(2, index)[1]).all()


def test_sampler_shards_ranks_without_overlap(monkeypatch):
    sampler = EpochSampler(10, seed=0)
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr(EpochSampler, "_shard", lambda self, r=rank: (r, 2))
        shards.append([index for _, index in sampler])
    assert len(shards[0]) == len(shards[1]) == 5 and not set(shards[0]) & set(shards[1])
