"""How a cell spends its token budget on its data: the plan, the global batches that feed it, how many epochs
that is, and the fairness traps it falls into (DESIGN.md), warned about in the log and in results.json."""

import logging
from dataclasses import dataclass

from omegaconf import DictConfig

from ablations.config import Plan, plan
from ablations.data.masking import GlobalBatches
from ablations.data.pipeline import Prepared

log = logging.getLogger(__name__)


@dataclass
class Budget:
    plan: Plan
    batches: GlobalBatches
    epochs: float
    copy_feeds: float | None  # static masking: how many times each masked copy is fed
    warnings: list[str]

    def describe(self) -> str:
        p = self.plan
        feeds = "" if self.copy_feeds is None else f", each static copy fed {self.copy_feeds:.1f} times"
        return (f"{p.steps} steps x {p.sequences} sequences ({p.batch_tokens} real tokens a step: batch {p.batch} x "
                f"seq_len) = {p.steps * p.sequences} sequences, {self.epochs:.1f} epochs{feeds}, peak LR {p.peak_lr:g}")


def budget(cfg: DictConfig, data: Prepared) -> Budget:
    stats = data.stats
    p = plan(cfg, stats["tokens_per_sequence"])
    batches = GlobalBatches([len(c) for c in data.train.copies], p.sequences, p.steps, cfg.seed)
    epochs = batches.epochs(p.steps)
    copy_feeds = epochs / cfg.masking.dupe_factor if cfg.masking.name == "static" else None
    warnings = fairness_warnings(cfg, p, epochs, copy_feeds, min(stats["train_sequences"]))
    for warning in warnings:
        log.warning(warning)
    return Budget(p, batches, epochs, copy_feeds, warnings)


def fairness_warnings(cfg: DictConfig, p: Plan, epochs: float, copy_feeds: float | None,
                      epoch_sequences: int) -> list[str]:
    warnings = []
    if copy_feeds is not None and copy_feeds < 2:
        warnings.append(f"static masking with dupe_factor {cfg.masking.dupe_factor} over {epochs:.1f} epochs feeds "
                        f"each masked copy {copy_feeds:.1f} times, fewer than 2 times: it can "
                        f"barely differ from dynamic masking (RoBERTa feeds each copy 4 times; train more epochs with "
                        f"a larger schedule.total_tokens or a smaller data.size, or lower masking.dupe_factor)")
    if p.sequences > epoch_sequences:
        warnings.append(f"a global batch of {p.sequences} sequences is larger than an epoch ({epoch_sequences} "
                        f"sequences): every step feeds some sequences more than once (use more data or a smaller "
                        f"schedule.batch_scale)")
    return warnings
