"""BERT pretraining as a LightningModule. The objective is the one seam: BertForMaskedLM (MLM) or
BertForPreTraining (MLM + NSP) over the same encoder, so exported weights load in either class.

Optimization is manual because a step is one whole global batch: the loader yields a rank's share of it as
micro-batches, and the loss is the sum over every masked token divided by the global batch's masked-token
count (fairseq's normalisation by sample size), so the micro-batch size cannot change a gradient.
"""

import math
from contextlib import nullcontext

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.strategies import ParallelStrategy
from torchmetrics import MeanMetric
from transformers import BertConfig, BertForMaskedLM, BertForPreTraining, get_linear_schedule_with_warmup


def pretraining_losses(model, batch: dict, nsp: bool) -> dict:
    """Summed MLM (and NSP) losses of a micro-batch. The vocabulary projection runs on the masked positions only
    (gathered by index, no device sync): the same loss as HF's full-sequence head at a seventh of its cost."""
    encoded = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         token_type_ids=batch["token_type_ids"])
    hidden = encoded.last_hidden_state
    logits = model.cls.predictions(hidden.reshape(-1, hidden.size(-1)).index_select(0, batch["masked_positions"]))
    losses = {"mlm_sum": F.cross_entropy(logits.float(), batch["masked_labels"], reduction="sum")}
    if nsp:
        nsp_logits = model.cls.seq_relationship(encoded.pooler_output).float()
        losses["nsp_sum"] = F.cross_entropy(nsp_logits, batch["next_sentence_label"], reduction="sum")
        losses["nsp_correct"] = (nsp_logits.argmax(-1) == batch["next_sentence_label"]).sum()
    return losses


def bert_config(model: dict, vocab_size: int, pad_id: int) -> BertConfig:
    """Attention through PyTorch's scaled_dot_product_attention (flash or memory-efficient kernels on GPUs)."""
    return BertConfig(vocab_size=vocab_size, pad_token_id=pad_id, type_vocab_size=2, attn_implementation="sdpa",
                      **{k: v for k, v in model.items() if k not in ("name", "pretrained")})


def build_model(model: dict, vocab_size: int, pad_id: int, nsp: bool):
    return (BertForPreTraining if nsp else BertForMaskedLM)(bert_config(model, vocab_size, pad_id))


def adamw(named_parameters, lr: float, weight_decay: float, betas=(0.9, 0.98), eps: float = 1e-6):
    """AdamW without decay on biases and LayerNorm weights, as BERT and RoBERTa train; fused into one kernel on any
    device (on CPU too: 3.7x faster than the default per-tensor update for BERT-tiny)."""
    params = list(named_parameters)
    return torch.optim.AdamW([{"params": [p for _, p in params if p.ndim > 1], "weight_decay": weight_decay},
                              {"params": [p for _, p in params if p.ndim <= 1], "weight_decay": 0.0}],
                             lr=lr, betas=tuple(betas), eps=eps, fused=True)


class PretrainModule(pl.LightningModule):
    def __init__(self, model: dict, vocab_size: int, pad_id: int, nsp: bool, optimizer: dict, steps: int,
                 warmup_steps: int, sequences: int, clip_grad_norm: float | None = None, seed: int = 0,
                 cell_id: str | None = None):
        super().__init__()
        self.save_hyperparameters()  # plain containers only: checkpoints load with weights_only=True; cell_id names
        # the cell a checkpoint belongs to
        self.automatic_optimization = False
        self.model = build_model(model, vocab_size, pad_id, nsp)
        self.val_loss = MeanMetric()
        self.tokens_seen = 0     # real tokens fed to this rank
        self.tokens_at_start = 0  # of which a checkpoint this run resumed from had seen
        self.sequences_seen = 0  # sequences fed to this rank
        self.curve: list[tuple[int, float]] = []  # (step, training loss) at logging steps, for the report's plots
        self.diverged = False
        # since the last logging step, on the device (reading them back would sync every step): MLM and NSP loss sums,
        # correct NSP predictions
        self.register_buffer("_sums", torch.zeros(3, dtype=torch.float64), persistent=False)
        self._counts = np.zeros(2, dtype=np.int64)  # and masked tokens, sequences (counted on the host: no sync)
        self._rng = None  # a resumed run's RNG state, until its first batch

    def on_fit_start(self):
        """Ranks draw their own dropout masks (the weights are rank 0's, broadcast by DDP)."""
        if self.trainer.world_size > 1:
            torch.manual_seed(self.hparams.seed * 1000 + self.global_rank)

    def training_step(self, micro_batches: list[dict], batch_idx):
        optimizer, schedule = self.optimizers(), self.lr_schedulers()
        world = self.trainer.world_size
        masked = self.global_sum(sum(mb["masked_tokens"] for mb in micro_batches))
        for i, batch in enumerate(micro_batches):
            with self._no_sync() if i < len(micro_batches) - 1 else nullcontext():
                losses = pretraining_losses(self.model, batch, self.hparams.nsp)
                loss = losses["mlm_sum"] / masked + losses.get("nsp_sum", 0) / self.hparams.sequences
                self.manual_backward(loss * world)  # DDP averages gradients over ranks; the sums are global
            zero = losses["mlm_sum"].new_zeros(())
            self._sums += torch.stack([losses["mlm_sum"].detach(), losses.get("nsp_sum", zero).detach(),
                                       losses.get("nsp_correct", zero).float()])
            self._counts += [batch["masked_tokens"], batch["sequences"]]
        if self.hparams.clip_grad_norm:
            self.clip_gradients(optimizer, gradient_clip_val=self.hparams.clip_grad_norm, gradient_clip_algorithm="norm")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        self.tokens_seen += sum(mb["real_tokens"] for mb in micro_batches)
        self.sequences_seen += sum(mb["sequences"] for mb in micro_batches)
        if self._logging_step():
            self._log_training()

    def global_sum(self, value):
        """A count or a tensor of sums, summed over ranks (one small all-reduce under DDP, none on one device)."""
        if self.trainer.world_size == 1:
            return value
        return self.trainer.strategy.reduce(torch.as_tensor(value, device=self.device, dtype=torch.float64),
                                            reduce_op="sum")

    def _no_sync(self):
        """No gradient all-reduce on a step's micro-batches but its last."""
        strategy = self.trainer.strategy
        return strategy.block_backward_sync() if isinstance(strategy, ParallelStrategy) else nullcontext()

    def _logging_step(self) -> bool:
        """The trainer's own cadence (every log_every_n_steps, and the last step): the only steps that read the
        loss back from the device."""
        step = self.trainer.global_step
        return step % self.trainer.log_every_n_steps == 0 or step >= self.trainer.max_steps

    def _log_training(self):
        """Losses since the last logging step, summed over ranks; a non-finite loss on any rank stops every rank."""
        mlm_sum, nsp_sum, correct, masked, sequences = self.global_sum(
            torch.cat([self._sums, self._sums.new_tensor(self._counts)])).tolist()
        self._sums.zero_()
        self._counts = np.zeros(2, dtype=np.int64)
        values = {"train/mlm_loss": mlm_sum / masked}
        if self.hparams.nsp:
            values.update({"train/nsp_loss": nsp_sum / sequences, "train/nsp_accuracy": correct / sequences})
        values["train/loss"] = values["train/mlm_loss"] + values.get("train/nsp_loss", 0.0)
        diverged = not math.isfinite(values["train/loss"])
        if self.trainer.world_size > 1:
            diverged = self.trainer.strategy.reduce_boolean_decision(diverged, all=False)
        if diverged:
            self.diverged = self.trainer.should_stop = True
        self.curve.append((self.trainer.global_step, values["train/loss"]))
        values.update({"train/tokens_seen": float(self.global_tokens_seen()),
                       "train/lr": self.lr_schedulers().get_last_lr()[0]})
        self.log_dict(values, logger=False)  # for the progress lines and results.json
        if self.logger is not None:  # at the step results.json's curve has, the last one included
            self.logger.log_metrics(values, step=self.trainer.global_step)

    def global_tokens_seen(self) -> int:
        """Real tokens fed to every rank."""
        return int(self.global_sum(self.tokens_seen))

    def validation_step(self, batch, batch_idx):
        losses = pretraining_losses(self.model, batch, nsp=False)
        self.val_loss.update(losses["mlm_sum"] / batch["masked_tokens"], weight=batch["masked_tokens"])

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
        """Every rank's counts, loss sums since the last log and RNG states (CPU and CUDA: dropout), so a resumed
        cell continues as an uninterrupted one. Called on every rank; rank 0 writes what all of them sent."""
        state = {"tokens_seen": self.tokens_seen, "sequences_seen": self.sequences_seen,
                 "loss_sums": self._sums.cpu(), "loss_counts": self._counts.tolist(), "cpu_rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}
        ranks = [state]
        if self.trainer.world_size > 1:
            ranks = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(ranks, state)
        checkpoint.update(ranks=ranks, curve=self.curve)

    def on_load_checkpoint(self, checkpoint):
        ranks = checkpoint["ranks"]
        if len(ranks) != self.trainer.world_size:
            raise ValueError(f"the checkpoint holds {len(ranks)} ranks' state, this run has {self.trainer.world_size}: "
                             f"resume with the same trainer.devices x trainer.num_nodes (or force=true)")
        state = ranks[self.global_rank]
        self.tokens_seen, self.sequences_seen = state["tokens_seen"], state["sequences_seen"]
        self.tokens_at_start = self.tokens_seen
        self.curve = checkpoint["curve"]
        self._sums.copy_(state["loss_sums"])
        self._counts = np.array(state["loss_counts"], dtype=np.int64)
        self._rng = state

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        """Only the tensors of a batch (held-out) or of each micro-batch (training) move; counts and probe digests
        stay where they are (Lightning's walk through every item of them costs a small model's step about 1%)."""
        def move(part: dict) -> dict:
            return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in part.items()}
        return move(batch) if isinstance(batch, dict) else [move(micro_batch) for micro_batch in batch]

    def on_train_batch_start(self, batch, batch_idx):
        """The RNG states are put back at the first resumed batch: starting the data iterator draws from them."""
        if self._rng is not None:
            torch.set_rng_state(self._rng["cpu_rng"])
            if self._rng["cuda_rng"] is not None and self.device.type == "cuda":
                torch.cuda.set_rng_state(self._rng["cuda_rng"], self.device)
            self._rng = None
