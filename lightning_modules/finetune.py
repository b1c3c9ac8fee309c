"""Fine-tuning as a LightningModule: any Hugging Face encoder plus a freshly initialised head, one per task shape:
a label or score per input (GLUE), an answer span per window (SQuAD), one of four options (RACE).

The classification heads sit on the first token for every arm, as RoBERTa's do, so an NSP-pretrained pooler
cannot favour the NSP arms; `reuse_pooler` (recorded in the protocol) puts GLUE's on the encoder's pooler instead.
Dev predictions of every scored epoch are kept, so the protocol can report the last epoch or the best one.
"""

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from transformers import get_linear_schedule_with_warmup

from lightning_modules.pretrain import adamw


def _dropout(encoder) -> float:
    return getattr(encoder.config, "hidden_dropout_prob", 0.1)  # BERT/RoBERTa name; 0.1 for the others


class ClassificationHead(nn.Module):
    """RoBERTa's: dropout, dense + tanh, dropout, projection."""

    def __init__(self, hidden: int, num_labels: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, num_labels)

    def forward(self, features):
        return self.out(self.dropout(torch.tanh(self.dense(self.dropout(features)))))


class SequenceHead(nn.Module):
    """GLUE: a label (or a score, num_labels 1) per input."""

    def __init__(self, encoder, num_labels: int, reuse_pooler: bool):
        super().__init__()
        self.num_labels, self.reuse_pooler = num_labels, reuse_pooler
        self.classifier = ClassificationHead(encoder.config.hidden_size, num_labels, _dropout(encoder))

    def forward(self, encoder, batch):
        encoded = encoder(**_inputs(batch))
        features = encoded.pooler_output if self.reuse_pooler else encoded.last_hidden_state[:, 0]
        logits = self.classifier(features).float()
        return logits.squeeze(-1) if self.num_labels == 1 else logits

    def loss(self, logits, batch):
        return (F.mse_loss(logits, batch["labels"].float()) if self.num_labels == 1
                else F.cross_entropy(logits, batch["labels"]))

    def predict(self, logits, batch) -> list:
        return (logits if self.num_labels == 1 else logits.argmax(-1)).tolist()


class SpanHead(nn.Module):
    """SQuAD: a start and an end score per token, as BERT's; a window without the answer points at token 0."""

    def __init__(self, encoder):
        super().__init__()
        self.scores = nn.Linear(encoder.config.hidden_size, 2)

    def forward(self, encoder, batch):
        start, end = self.scores(encoder(**_inputs(batch)).last_hidden_state).float().unbind(-1)
        return start, end

    def loss(self, logits, batch):
        start, end = logits
        return (F.cross_entropy(start, batch["start_positions"]) + F.cross_entropy(end, batch["end_positions"])) / 2

    def predict(self, logits, batch) -> list:
        """Per window, its start and end scores over its own tokens (padding dropped), for n-best decoding."""
        lengths = batch["attention_mask"].sum(-1).tolist()
        return [(s[:n].tolist(), e[:n].tolist()) for s, e, n in zip(*logits, lengths)]


class ChoiceHead(nn.Module):
    """RACE: one score per (passage, question + option) input, the best of a question's options wins."""

    def __init__(self, encoder):
        super().__init__()
        self.classifier = ClassificationHead(encoder.config.hidden_size, 1, _dropout(encoder))

    def forward(self, encoder, batch):
        batch_size, options, length = batch["input_ids"].shape
        flat = {k: v.reshape(batch_size * options, length) for k, v in _inputs(batch).items()}
        return self.classifier(encoder(**flat).last_hidden_state[:, 0]).float().reshape(batch_size, options)

    def loss(self, logits, batch):
        return F.cross_entropy(logits, batch["labels"])

    def predict(self, logits, batch) -> list:
        return logits.argmax(-1).tolist()


def _inputs(batch) -> dict:
    return {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


class FinetuneModule(pl.LightningModule):
    def __init__(self, encoder, head: nn.Module, protocol: dict, steps: int, dev_splits: list[str], evaluate):
        """`evaluate` maps {dev split: predictions} to the metrics logged for the epoch."""
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.protocol = protocol
        self.steps = steps
        self.dev_splits = dev_splits
        self.evaluate = evaluate
        self.epochs: list[tuple[int, dict, dict]] = []  # per scored epoch: (epoch, {dev split: predictions}, metrics)
        self.diverged = False
        self._predictions: dict[str, list] = {}

    def forward(self, batch):
        return self.head(self.encoder, batch)

    def training_step(self, batch, batch_idx):
        loss = self.head.loss(self(batch), batch)
        if not torch.isfinite(loss):
            self.diverged = True
            self.trainer.should_stop = True
        self.log("train/loss", loss.detach())
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        predictions = self.head.predict(self(batch), batch)
        self._predictions.setdefault(self.dev_splits[dataloader_idx], []).extend(predictions)

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
