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


def bert_config(model: dict, vocab_size: int, pad_id: int) -> BertConfig:
    return BertConfig(vocab_size=vocab_size, pad_token_id=pad_id, type_vocab_size=2,
                      **{k: v for k, v in model.items() if k not in ("name", "pretrained")})


def build_model(model: dict, vocab_size: int, pad_id: int, nsp: bool):
    return (BertForPreTraining if nsp else BertForMaskedLM)(bert_config(model, vocab_size, pad_id))


def adamw(named_parameters, lr: float, weight_decay: float, betas=(0.9, 0.98), eps: float = 1e-6):
    """AdamW without decay on biases and LayerNorm weights, as BERT and RoBERTa train."""
    params = list(named_parameters)
    return torch.optim.AdamW([{"params": [p for _, p in params if p.ndim > 1], "weight_decay": weight_decay},
                              {"params": [p for _, p in params if p.ndim <= 1], "weight_decay": 0.0}],
                             lr=lr, betas=tuple(betas), eps=eps)


class PretrainModule(pl.LightningModule):
    def __init__(self, model: dict, vocab_size: int, pad_id: int, nsp: bool, optimizer: dict,
                 steps: int, warmup_steps: int):
        super().__init__()
        self.save_hyperparameters()  # plain containers only: checkpoints load with weights_only=True
        self.model = build_model(model, vocab_size, pad_id, nsp)
        self.val_loss = MeanMetric()
        self.tokens_seen = 0
        self.curve: list[tuple[int, float]] = []  # (step, training loss) at logging steps, for the report's plots
        self.diverged = False
        self._rng = None  # a resumed run's RNG state, until its first batch

    def training_step(self, batch, batch_idx):
        losses = pretraining_losses(self.model, batch, self.hparams.nsp)
        if not torch.isfinite(losses["loss"]):
            self.diverged = True
            self.trainer.should_stop = True
        self.tokens_seen += int(batch["attention_mask"].sum()) * self.trainer.world_size
        if self._logging_step():
            self.curve.append((self.trainer.global_step + 1, float(losses["loss"])))
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
        optimizer = adamw(self.model.named_parameters(), opt["lr"], opt["weight_decay"], opt["betas"], opt["eps"])
        schedule = get_linear_schedule_with_warmup(optimizer, self.hparams.warmup_steps, self.hparams.steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint):
        """With the RNG state (dropout), a resumed cell continues exactly as an uninterrupted one."""
        checkpoint.update(tokens_seen=self.tokens_seen, curve=self.curve, torch_rng=torch.get_rng_state())

    def on_load_checkpoint(self, checkpoint):
        self.tokens_seen = checkpoint["tokens_seen"]
        self.curve = checkpoint["curve"]
        self._rng = checkpoint["torch_rng"]

    def on_train_batch_start(self, batch, batch_idx):
        """The RNG state is put back at the first resumed batch: starting the data iterator draws from it."""
        if self._rng is not None:
            torch.set_rng_state(self._rng)
            self._rng = None
