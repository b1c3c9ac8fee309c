"""BERT pretraining as a LightningModule. The objective is the one seam: BertForMaskedLM (MLM) or
BertForPreTraining (MLM + NSP) over the same encoder, so exported weights load in either class."""

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from transformers import BertConfig, BertForMaskedLM, BertForPreTraining, get_linear_schedule_with_warmup

from ablations.data.masking import IGNORE


def pretraining_losses(model, batch: dict, nsp: bool) -> dict:
    """MLM (and NSP) losses. The vocabulary projection runs on masked positions only: the same loss as
    HF's full-sequence head at about a seventh of its cost."""
    encoded = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         token_type_ids=batch["token_type_ids"])
    masked = batch["labels"] != IGNORE
    logits = model.cls.predictions(encoded.last_hidden_state[masked])
    losses = {"mlm_loss": F.cross_entropy(logits.float(), batch["labels"][masked]),
              "masked_tokens": masked.sum()}
    if nsp:
        nsp_logits = model.cls.seq_relationship(encoded.pooler_output).float()
        losses["nsp_loss"] = F.cross_entropy(nsp_logits, batch["next_sentence_label"])
        losses["nsp_accuracy"] = (nsp_logits.argmax(-1) == batch["next_sentence_label"]).float().mean()
    losses["loss"] = losses["mlm_loss"] + losses.get("nsp_loss", 0)
    return losses


def build_model(model: dict, vocab_size: int, pad_id: int, nsp: bool):
    config = BertConfig(vocab_size=vocab_size, pad_token_id=pad_id, type_vocab_size=2,
                        **{k: v for k, v in model.items() if k != "name"})
    return (BertForPreTraining if nsp else BertForMaskedLM)(config)


class PretrainModule(pl.LightningModule):
    def __init__(self, model: dict, vocab_size: int, pad_id: int, nsp: bool, optimizer: dict,
                 steps: int, warmup_steps: int):
        super().__init__()
        self.save_hyperparameters()  # plain containers only: checkpoints load with weights_only=True
        self.model = build_model(model, vocab_size, pad_id, nsp)
        self.val_loss = MeanMetric()
        self.tokens_seen = 0
        self.diverged = False

    def training_step(self, batch, batch_idx):
        losses = pretraining_losses(self.model, batch, self.hparams.nsp)
        if not torch.isfinite(losses["loss"]):
            self.diverged = True
            self.trainer.should_stop = True
        self.tokens_seen += int(batch["attention_mask"].sum()) * self.trainer.world_size
        if self._logging_step():
            self.log_dict({**{f"train/{k}": v.detach() for k, v in losses.items() if k != "masked_tokens"},
                           "train/tokens_seen": float(self.tokens_seen),
                           "train/lr": self.lr_schedulers().get_last_lr()[0]})
        return losses["loss"]

    def _logging_step(self) -> bool:
        """The trainer's own cadence (every log_every_n_steps, the last step, a stop): values it would not
        write are not logged, since self.log costs about 2% of a tiny model's step."""
        step = self.trainer.global_step + 1
        return step % self.trainer.log_every_n_steps == 0 or step >= self.trainer.max_steps or self.trainer.should_stop

    def validation_step(self, batch, batch_idx):
        losses = pretraining_losses(self.model, batch, nsp=False)
        self.val_loss.update(losses["mlm_loss"], weight=losses["masked_tokens"])

    def on_validation_epoch_end(self):
        loss = self.val_loss.compute()
        self.val_loss.reset()
        self.log_dict({"val/mlm_loss": loss, "val/perplexity": torch.exp(loss)})

    def configure_optimizers(self):
        opt = self.hparams.optimizer
        decay = [p for n, p in self.model.named_parameters() if p.ndim > 1]
        no_decay = [p for n, p in self.model.named_parameters() if p.ndim <= 1]  # biases and LayerNorm
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": opt["weight_decay"]},
                                       {"params": no_decay, "weight_decay": 0.0}],
                                      lr=opt["lr"], betas=tuple(opt["betas"]), eps=opt["eps"])
        schedule = get_linear_schedule_with_warmup(optimizer, self.hparams.warmup_steps, self.hparams.steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint):
        checkpoint["tokens_seen"] = self.tokens_seen

    def on_load_checkpoint(self, checkpoint):
        self.tokens_seen = checkpoint.get("tokens_seen", 0)
