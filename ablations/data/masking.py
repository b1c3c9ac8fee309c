"""The masking seam: static (BERT) vs dynamic (RoBERTa) masking of the same instances, and the global batches
they are fed in.

Every mask is drawn from an RNG seeded by (seed, k, index), as fairseq does, never from a stream shared
by workers: dynamic masking uses k = epoch, so every feed is fresh and any worker reproduces it; static masking uses
k = epoch mod dupe_factor: the dupe_factor fixed masks per sequence of BERT's preprocessed copies, drawn when
fed rather than stored (dupe_factor masked copies of a paper-scale corpus would not fit a disk). Static copy k
is thus the mask dynamic draws in epoch k: the arms differ only in repeating them.
Epoch e also feeds instance copy e mod (number of copies): pair formats rebuild their pairs per copy.
"""

import hashlib
import multiprocessing
from dataclasses import dataclass
from functools import partial
from itertools import islice

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ablations.data.formats import Instances

IGNORE = -100
EVAL_SEED = 20190726  # one fixed evaluation mask for every cell (RoBERTa's arXiv date)
PROBE = 64  # sequences 0..63 of every epoch are fingerprinted as fed (static vs dynamic checkable from the logs)


@dataclass(frozen=True)
class Masker:
    """BERT's 80/10/10 rule. Ids below num_special (special tokens and padding) are never selected."""

    mlm_probability: float
    mask_replace_prob: float
    random_replace_prob: float
    mask_id: int
    num_special: int
    vocab_size: int

    def __call__(self, ids: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        candidates = np.flatnonzero(ids >= self.num_special)
        # fairseq's count: the expected rate exactly, without BERT's per-token coin flips.
        count = min(len(candidates), int(self.mlm_probability * len(candidates) + rng.random()))
        chosen = rng.choice(candidates, count, replace=False)
        labels = np.full_like(ids, IGNORE)
        labels[chosen] = ids[chosen]
        inputs = np.array(ids)
        u = rng.random(count)
        inputs[chosen[u < self.mask_replace_prob]] = self.mask_id
        randomised = chosen[(u >= self.mask_replace_prob) & (u < self.mask_replace_prob + self.random_replace_prob)]
        inputs[randomised] = rng.integers(self.num_special, self.vocab_size, len(randomised))
        return inputs, labels


def rng_for(seed: int, k: int, index: int) -> np.random.Generator:
    return np.random.default_rng((seed, k, index))


def mask_all(instances: Instances, masker: Masker, seed: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Masked inputs and labels of every instance with RNG key k (the held-out set's one mask)."""
    inputs, labels = np.empty_like(instances.input_ids), np.empty_like(instances.input_ids)
    for i, ids in enumerate(instances.input_ids):
        inputs[i], labels[i] = masker(ids, rng_for(seed, k, i))
    return inputs, labels


class MaskedDataset(Dataset):
    """Items are keyed by (epoch, index), which GlobalBatches yields, so the mask depends on nothing else."""

    def __init__(self, copies: list[Instances], masker: Masker, seed: int, dupe_factor: int | None = None):
        self.copies, self.masker, self.seed = copies, masker, seed
        self.dupe_factor = dupe_factor  # static masking's masks per sequence; None: dynamic, a fresh one every epoch

    def instances(self, epoch: int) -> Instances:
        return self.copies[epoch % len(self.copies)]

    def size(self, epoch: int) -> int:
        return len(self.instances(epoch))

    def masked(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        k = epoch if self.dupe_factor is None else epoch % self.dupe_factor
        return self.masker(self.instances(epoch).input_ids[index], rng_for(self.seed, k, index))

    def __getitem__(self, key):
        epoch, index = key
        inputs, labels = self.masked(epoch, index)
        return _item(self.instances(epoch), index, inputs, labels, key)


class FixedMaskDataset(Dataset):
    """Held-out sequences under one mask drawn once: the same for every cell, so perplexities compare."""

    def __init__(self, instances: Instances, masker: Masker):
        self.instances = instances
        self.inputs, self.labels = mask_all(instances, masker, EVAL_SEED, 0)

    def __len__(self):
        return len(self.instances)

    def __getitem__(self, index):
        return _item(self.instances, index, self.inputs[index], self.labels[index], (0, index))


def _item(instances: Instances, index: int, inputs, labels, key) -> dict:
    return {"input_ids": inputs, "labels": labels, "token_type_ids": instances.token_type_ids[index],
            "next_sentence_label": instances.next_sentence_label[index], "key": key}


def collate(items: list[dict], pad_id: int) -> dict:
    """One micro-batch: stacked, trimmed to its longest sequence, with the masked positions flattened (the LM
    head runs on those only, gathered without a device sync) and its counts as plain ints (no sync either).
    `probe` fingerprints what is fed of sequences 0..PROBE-1, per epoch."""
    ids = np.stack([item["input_ids"] for item in items])
    labels = np.stack([item["labels"] for item in items])
    attention = ids != pad_id
    width = int(attention.any(0).nonzero()[0].max()) + 1
    labels = labels[:, :width]
    positions = np.flatnonzero(labels != IGNORE)
    return {
        "input_ids": torch.as_tensor(ids[:, :width], dtype=torch.long),
        "token_type_ids": torch.as_tensor(np.stack([item["token_type_ids"] for item in items])[:, :width],
                                          dtype=torch.long),
        "attention_mask": torch.as_tensor(attention[:, :width], dtype=torch.long),
        "masked_positions": torch.as_tensor(positions, dtype=torch.long),
        "masked_labels": torch.as_tensor(labels.reshape(-1)[positions], dtype=torch.long),
        "next_sentence_label": torch.as_tensor(np.stack([item["next_sentence_label"] for item in items]),
                                               dtype=torch.long),
        "sequences": len(items), "real_tokens": int(attention.sum()), "masked_tokens": len(positions),
        "keys": [item["key"] for item in items],
        "probe": [(*item["key"], _digest(item)) for item in items if item["key"][1] < PROBE],
    }


def _digest(item: dict) -> str:
    return hashlib.sha256(np.asarray(item["input_ids"]).tobytes() + np.asarray(item["labels"]).tobytes()).hexdigest()


def collate_step(items: list[dict], pad_id: int, micro_batch: int) -> list[dict]:
    """A rank's share of one optimizer step, split into micro-batches of at most micro_batch sequences."""
    return [collate(items[i:i + micro_batch], pad_id) for i in range(0, len(items), micro_batch)]


def training_loader(dataset: Dataset, batches: Sampler, pad_id: int, micro_batch: int, workers: int = 0,
                    pin_memory: bool = False) -> DataLoader:
    """What training reads: one item a step, the step's micro-batches. Workers start as the platform starts
    processes (fork on Linux), not as this process's default does: a grid's cells run in joblib's loky processes,
    whose default start method cannot start a DataLoader worker."""
    return DataLoader(dataset, batch_sampler=batches, num_workers=workers,
                      collate_fn=partial(collate_step, pad_id=pad_id, micro_batch=micro_batch),
                      persistent_workers=workers > 0, pin_memory=pin_memory,
                      multiprocessing_context=multiprocessing.get_all_start_methods()[0] if workers else None)


class GlobalBatches(Sampler):
    """The optimizer steps of a run: `sequences` keys (epoch, index) per step, cut from one stream of epochs,
    each a permutation (from (seed, epoch)) of the instance copy it feeds (epoch e: copy e mod len(sizes)).

    Every step is one whole global batch: a step may span an epoch's end (nothing is dropped, no step is
    partial) and a global batch larger than the data spans several epochs. Each DDP rank takes its share of
    every global batch. `start_step` (set when a checkpoint loads, before any iterator exists) resumes exactly.
    """

    def __init__(self, sizes: list[int], sequences: int, steps: int, seed: int):
        self.sizes, self.sequences, self.steps, self.seed = list(sizes), sequences, steps, seed
        self.start_step = 0

    def __len__(self):
        return self.steps

    def _locate(self, position: int) -> tuple[int, int]:
        """(epoch, offset in it) of a stream position, in whole cycles of the copies first (a dry run of a paper-scale
        budget on small data spans millions of epochs)."""
        cycles, position = divmod(position, sum(self.sizes))
        epoch = cycles * len(self.sizes)
        while position >= self.sizes[epoch % len(self.sizes)]:
            position -= self.sizes[epoch % len(self.sizes)]
            epoch += 1
        return epoch, position

    def stream(self, position: int = 0):
        """(epoch, index) keys from the stream's position onwards."""
        epoch, offset = self._locate(position)
        while True:
            size = self.sizes[epoch % len(self.sizes)]
            for index in np.random.default_rng((self.seed, epoch)).permutation(size)[offset:]:
                yield epoch, int(index)
            offset, epoch = 0, epoch + 1

    def epochs(self, steps: int) -> float:
        """How many epochs `steps` optimizer steps feed (fractional)."""
        epoch, offset = self._locate(steps * self.sequences)
        return epoch + offset / self.sizes[epoch % len(self.sizes)]

    def __iter__(self):
        rank, world = _shard()
        stream = self.stream(self.start_step * self.sequences)
        for _ in range(self.start_step, self.steps):
            yield list(islice(stream, self.sequences))[rank::world]


def _shard() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1
