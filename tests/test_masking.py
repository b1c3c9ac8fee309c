"""Masking invariants (DESIGN.md): rate and 80/10/10 shares, special tokens untouched, static masks repeat
with period dupe_factor, dynamic ones never, both reproducible from the seed, with any number of workers; and
the global batches they are fed in: whole, across epochs, resumable, shared by ranks."""

import joblib
import numpy as np
import pytest

from ablations.data import masking
from ablations.data.formats import to_arrays
from ablations.data.masking import IGNORE, GlobalBatches, Masker, mask_all, training_loader
from ablations.data.pipeline import prepare
from conftest import make_cfg

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


def feed(prepared, epochs, workers, sequences=16, micro_batch=5):
    """The (inputs, labels) the training loader actually feeds, by (epoch, index), read from its micro-batches."""
    dataset, pad = prepared.train, prepared.tokenizer.pad_token_id
    total = sum(dataset.size(e) for e in range(epochs))
    batches = GlobalBatches([len(c) for c in dataset.copies], sequences, -(-total // sequences), seed=0)
    seq_len = dataset.instances(0).input_ids.shape[1]
    loader = training_loader(dataset, batches, pad, micro_batch, workers)
    fed = {}
    for step in loader:
        for batch in step:
            width = batch["input_ids"].shape[1]
            labels = np.full(batch["input_ids"].shape, IGNORE)
            labels.reshape(-1)[batch["masked_positions"].numpy()] = batch["masked_labels"].numpy()
            for row, key in enumerate(batch["keys"]):
                fed[key] = (batch["input_ids"][row].tolist() + [pad] * (seq_len - width),
                            labels[row].tolist() + [IGNORE] * (seq_len - width))
    return fed


def pipeline_data(tmp_path, masking, **extra):
    """Training data built by the pipeline itself (synthetic corpus), as a cell gets it."""
    overrides = [f"masking={masking}", "data.sources.synthetic.num_documents=40", "seq_len=32",
                 *(f"{k}={v}" for k, v in extra.items())]
    return prepare(make_cfg(*overrides), tmp_path)


@pytest.mark.parametrize("workers", [0, 2])
def test_static_masks_repeat_with_period_dupe_factor(tmp_path, workers):
    data = pipeline_data(tmp_path, "static", **{"masking.dupe_factor": 3})
    fed = feed(data, epochs=7, workers=workers)
    for index in range(data.train.size(0)):
        masks = [fed[e, index] for e in range(7)]
        assert masks[0] == masks[3] == masks[6] and masks[1] == masks[4] and masks[2] == masks[5]
        assert len({str(masks[0]), str(masks[1]), str(masks[2])}) == 3


@pytest.mark.parametrize("workers", [0, 2])
def test_dynamic_masks_never_repeat(tmp_path, workers):
    data = pipeline_data(tmp_path, "dynamic")
    fed = feed(data, epochs=6, workers=workers)
    long = [i for i in range(data.train.size(0)) if data.train.instances(0).lengths[i] > 20]  # a chance repeat cannot flake
    assert len(long) > 20
    for index in long:
        assert len({str(fed[e, index]) for e in range(6)}) == 6


def test_fed_masks_are_the_datasets_and_reproducible_from_seed_whatever_the_workers(tmp_path):
    data = pipeline_data(tmp_path, "dynamic")
    fed = feed(data, 2, workers=0)
    assert fed == feed(data, 2, workers=2)
    for (epoch, index), (inputs, labels) in fed.items():
        expected = data.train.masked(epoch, index)
        assert inputs == expected[0].tolist() and labels == expected[1].tolist()
    assert fed != feed(pipeline_data(tmp_path, "dynamic", seed=1), 2, workers=0)


def test_global_batches_are_whole_and_cross_epochs_without_dropping_a_sequence():
    sizes = {0: 10, 1: 7}
    batches = GlobalBatches([10, 7], sequences=4, steps=17, seed=0)
    steps = list(batches)
    assert len(steps) == 17 and all(len(step) == 4 for step in steps)  # every step one whole global batch
    stream = [key for step in steps for key in step]
    epochs = {}
    for epoch, index in stream:
        epochs.setdefault(epoch, []).append(index)
    for epoch, indices in list(epochs.items())[:-1]:  # every finished epoch is a permutation of its copy
        assert sorted(indices) == list(range(sizes[epoch % 2]))
    assert batches.epochs(17) == 8 and batches.epochs(5) == pytest.approx(2.3)  # 20 = 10 + 7 + 3 of 10
    big = GlobalBatches([3], sequences=8, steps=2, seed=0)
    first = next(iter(big))
    assert len(first) == 8 and {e for e, _ in first} == {0, 1, 2}  # a batch larger than the data spans epochs


def test_a_resumed_sampler_feeds_the_rest_of_the_same_stream():
    batches = GlobalBatches([11], sequences=4, steps=12, seed=3)
    whole = list(batches)
    batches.start_step = 5
    assert list(batches) == whole[5:]


def test_ranks_share_each_global_batch_without_overlap(monkeypatch):
    batches = GlobalBatches([10], sequences=6, steps=4, seed=0)
    whole = list(batches)
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr(masking, "_shard", lambda r=rank: (r, 2))
        shards.append(list(batches))
    for step, (a, b) in enumerate(zip(*shards)):
        assert len(a) == len(b) == 3 and sorted(a + b) == sorted(whole[step])


def test_the_training_loader_starts_its_workers_inside_a_grid_worker(tmp_path):
    """A grid runs its cells in joblib's loky processes, where the default start method is loky's, which cannot
    start a DataLoader worker ('Process' object has no attribute 'env'): every grid with trainer.num_workers > 0
    failed. The loader feeds there what it feeds in a plain process."""
    data = pipeline_data(tmp_path, "dynamic")
    in_grid_worker = joblib.Parallel(n_jobs=2, backend="loky")([joblib.delayed(feed)(data, 2, 2)])[0]
    assert in_grid_worker == feed(data, epochs=2, workers=0)
