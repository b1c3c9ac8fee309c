"""Progress a person can read wherever the run lands: a bar on a terminal, plain lines in a log file
(a SLURM log fills with carriage returns from a bar, and Rich's live display prints nothing there)."""

import logging
import sys
import time

import pytorch_lightning as pl
from pytorch_lightning.callbacks import TQDMProgressBar

log = logging.getLogger(__name__)


def progress_callbacks(every_n_steps: int) -> list[pl.Callback]:
    return [TQDMProgressBar()] if sys.stderr.isatty() else [ProgressLines(every_n_steps)]


class ProgressLines(pl.Callback):
    def __init__(self, every_n_steps: int):
        self.every_n_steps = every_n_steps

    def on_train_start(self, trainer, pl_module):
        self.start, self.start_step = time.monotonic(), trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step, total = trainer.global_step, trainer.max_steps
        if step == self.start_step or (step % self.every_n_steps and step != total) or not trainer.is_global_zero:
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / (step - self.start_step) * (total - step)
        metrics = trainer.callback_metrics
        loss, tokens = metrics.get("train/loss"), metrics.get("train/tokens_seen")
        log.info("step %d/%d (%d%%) loss %s, %s real tokens, %.0fs elapsed, eta %.0fs", step, total, 100 * step // total,
                 f"{float(loss):.3f}" if loss is not None else "-", f"{int(tokens)}" if tokens is not None else "-",
                 elapsed, eta)
