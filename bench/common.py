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
    from ablations.data.masking import training_loader

    loader = training_loader(data.train, spend.batches, data.tokenizer.pad_token_id, spend.plan.micro_batch, workers,
                             pin_memory)
    return [step for _, step in zip(range(count), loader)]
