"""Shared set-up for the benchmarks: the default cell's config and data, prepared under a temp root."""

import os
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("WANDB_MODE", "offline")


def default_cfg(*overrides):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def train_steps(data, spend, count: int, workers: int = 0, pin_memory: bool = False) -> list:
    """The first `count` optimizer steps a cell is fed, each a list of micro-batches, as the training loader gives
    them."""
    from functools import partial

    from torch.utils.data import DataLoader

    from ablations.data.masking import collate_step

    loader = DataLoader(data.train, batch_sampler=spend.batches, num_workers=workers, pin_memory=pin_memory,
                        collate_fn=partial(collate_step, pad_id=data.tokenizer.pad_token_id,
                                           micro_batch=spend.plan.micro_batch))
    return [step for _, step in zip(range(count), loader)]
