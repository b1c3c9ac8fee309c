"""GLUE fine-tuning as a LightningModule: any Hugging Face encoder plus a freshly initialised head.

The head sits on the first token for every arm, as RoBERTa's does, so an NSP-pretrained pooler cannot
favour the NSP arms; `reuse_pooler` (recorded in the protocol) puts it on the encoder's pooler instead.
Dev predictions of every scored epoch are kept, so the protocol can report the last epoch or the best one.
"""

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from transformers import get_linear_schedule_with_warmup

from lightning_modules.pretrain import adamw


class ClassificationHead(nn.Module):
    """RoBERTa's: dropout, dense + tanh, dropout, projection."""

    def __init__(self, hidden: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, features):
        return self.out(self.dropout(torch.tanh(self.dense(self.dropout(features)))))


class FinetuneModule(pl.LightningModule):
    def __init__(self, encoder, num_labels: int, protocol: dict, steps: int, dev_splits: list[str], evaluate):
        """`evaluate` maps {dev split: predictions} to the GLUE metrics logged for the epoch."""
        super().__init__()
        self.encoder = encoder
        self.protocol = protocol
        self.num_labels = num_labels
        self.steps = steps
        self.dev_splits = dev_splits
        self.evaluate = evaluate
        dropout = getattr(encoder.config, "hidden_dropout_prob", 0.1)  # BERT/RoBERTa name; 0.1 for the others
        self.head = ClassificationHead(encoder.config.hidden_size, num_labels, dropout)
        self.epochs: list[tuple[int, dict, dict]] = []  # per scored epoch: (epoch, {dev split: predictions}, metrics)
        self.diverged = False
        self._predictions: dict[str, list] = {}

    def forward(self, batch):
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        encoded = self.encoder(**inputs)
        features = encoded.pooler_output if self.protocol["reuse_pooler"] else encoded.last_hidden_state[:, 0]
        logits = self.head(features).float()
        return logits.squeeze(-1) if self.num_labels == 1 else logits

    def training_step(self, batch, batch_idx):
        logits = self(batch)
        loss = (F.mse_loss(logits, batch["labels"].float()) if self.num_labels == 1
                else F.cross_entropy(logits, batch["labels"]))
        if not torch.isfinite(loss):
            self.diverged = True
            self.trainer.should_stop = True
        self.log("train/loss", loss.detach())
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        logits = self(batch)
        predictions = logits if self.num_labels == 1 else logits.argmax(-1)
        self._predictions.setdefault(self.dev_splits[dataloader_idx], []).extend(predictions.tolist())

    def on_validation_epoch_end(self):
        if self.diverged:
            return
        scores = self.evaluate(self._predictions)
        self.epochs.append((self.current_epoch + 1, self._predictions, scores))
        self._predictions = {}
        self.log_dict({f"dev/{k}": v for k, v in scores.items()})

    def configure_optimizers(self):
        p = self.protocol
        optimizer = adamw(self.named_parameters(), p["lr"], p["weight_decay"])
        schedule = get_linear_schedule_with_warmup(optimizer, round(p["warmup_fraction"] * self.steps), self.steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
