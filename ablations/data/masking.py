"""The masking seam: static (BERT) vs dynamic (RoBERTa) masking of the same instances.

Every mask is drawn from an RNG seeded by (seed, k, index), as fairseq does, never from a stream shared
by workers: dynamic masking uses k = epoch, so every feed is fresh and any worker reproduces it; static
masking fixes dupe_factor copies at preprocessing with k = copy and feeds copy (epoch mod dupe_factor).
Static copy k is thus the mask dynamic draws in epoch k: the arms differ only in repeating them.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ablations.data.formats import Instances

IGNORE = -100
EVAL_SEED = 20190726  # one fixed evaluation mask for every cell (RoBERTa's arXiv date)


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
        inputs = ids.copy()
        u = rng.random(count)
        inputs[chosen[u < self.mask_replace_prob]] = self.mask_id
        randomised = chosen[(u >= self.mask_replace_prob) & (u < self.mask_replace_prob + self.random_replace_prob)]
        inputs[randomised] = rng.integers(self.num_special, self.vocab_size, len(randomised))
        return inputs, labels


def rng_for(seed: int, k: int, index: int) -> np.random.Generator:
    return np.random.default_rng((seed, k, index))


def mask_all(instances: Instances, masker: Masker, seed: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Masked inputs and labels of every instance with RNG key k (a static copy, or the eval mask)."""
    inputs, labels = np.empty_like(instances.input_ids), np.empty_like(instances.input_ids)
    for i, ids in enumerate(instances.input_ids):
        inputs[i], labels[i] = masker(ids, rng_for(seed, k, i))
    return inputs, labels


class MaskedDataset(Dataset):
    """Items are keyed by (epoch, index), which EpochSampler yields, so the mask depends on nothing else."""

    def __init__(self, instances: Instances, masker: Masker, seed: int, static_copies=None):
        self.instances, self.masker, self.seed = instances, masker, seed
        self.static_copies = static_copies  # (inputs, labels), each [dupe_factor, N, seq_len]; None: dynamic

    def __len__(self):
        return len(self.instances)

    def masked(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self.static_copies is not None:
            inputs, labels = self.static_copies
            copy = epoch % len(inputs)
            return inputs[copy, index], labels[copy, index]
        return self.masker(self.instances.input_ids[index], rng_for(self.seed, epoch, index))

    def __getitem__(self, key):
        epoch, index = key
        inputs, labels = self.masked(epoch, index)
        return _item(self.instances, index, inputs, labels)


class FixedMaskDataset(Dataset):
    """Held-out sequences under one mask drawn once: the same for every cell, so perplexities compare."""

    def __init__(self, instances: Instances, masker: Masker):
        self.instances = instances
        self.inputs, self.labels = mask_all(instances, masker, EVAL_SEED, 0)

    def __len__(self):
        return len(self.instances)

    def __getitem__(self, index):
        return _item(self.instances, index, self.inputs[index], self.labels[index])


def _item(instances: Instances, index: int, inputs, labels) -> dict:
    return {"input_ids": inputs, "labels": labels, "token_type_ids": instances.token_type_ids[index],
            "next_sentence_label": instances.next_sentence_label[index], "index": index}


def collate(items: list[dict], pad_id: int) -> dict:
    """Stacks items and trims the padding every sequence of the batch shares."""
    batch = {key: torch.as_tensor(np.stack([item[key] for item in items])).long() for key in items[0]}
    attention = batch["input_ids"] != pad_id
    width = int(attention.any(0).nonzero().max()) + 1
    for key in ("input_ids", "labels", "token_type_ids"):
        batch[key] = batch[key][:, :width]
    batch["attention_mask"] = attention[:, :width].long()
    return batch


class EpochSampler(Sampler):
    """Shuffles per epoch from (seed, epoch) and yields (epoch, index) keys, sharded across DDP ranks.

    Lightning calls set_epoch before each epoch; workers receive the epoch inside every key, so masks
    stay correct with any number of workers, persistent or not.
    """

    def __init__(self, size: int, seed: int, shuffle: bool = True):
        self.size, self.seed, self.shuffle, self.epoch = size, seed, shuffle, 0
        self.skip = 0  # this rank's first indices of the next epoch already trained on (a resumed epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _shard(self):
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __len__(self):
        return self.size // self._shard()[1]

    def __iter__(self):
        order = np.random.default_rng((self.seed, self.epoch)).permutation(self.size) if self.shuffle else np.arange(self.size)
        rank, world = self._shard()
        skip, self.skip = self.skip, 0
        for index in order[rank:len(self) * world:world][skip:]:
            yield self.epoch, int(index)
