"""Callbacks of the pretraining run: fingerprints of the masks actually fed (static vs dynamic checkable from the
logs alone), an exact resume, and the time held-out evaluations take out of training."""

import hashlib
import time

import pytorch_lightning as pl
import torch


class MaskFingerprint(pl.Callback):
    """Per epoch, a hash of the masks fed to the probe sequences (the collate digests every fed copy of sequences
    0..PROBE-1): static masking repeats its fingerprints with period dupe_factor, dynamic never repeats one. An
    epoch's fingerprint is taken at the first step that starts past it: every finished epoch has one, a last
    partial one none. Under DDP each rank feeds a share of every global batch, so an epoch's digests are gathered
    from all ranks (which close it at the same step) and a checkpoint keeps every rank's pending ones."""

    def __init__(self, batches):
        self.batches = batches  # the GlobalBatches: which epoch a step starts in
        self.fingerprints: list[int] = []
        self.pending: dict[int, dict[int, str]] = {}  # epoch -> {index: digest} of probe sequences fed so far

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        for epoch in range(len(self.fingerprints), int(self.batches.epochs(trainer.global_step))):
            self._close(trainer, epoch)
        for micro_batch in batch:
            for epoch, index, digest in micro_batch["probe"]:
                self.pending.setdefault(epoch, {})[index] = digest

    def _close(self, trainer, epoch: int) -> None:
        digests = _gathered({epoch: self.pending.pop(epoch, {})})[epoch]
        fingerprint = hashlib.sha256("".join(digests[i] for i in sorted(digests)).encode())
        self.fingerprints.append(int(fingerprint.hexdigest()[:8], 16))  # 32 bits: exact in a float metric
        if trainer.logger is not None and trainer.is_global_zero:
            trainer.logger.log_metrics({"data/mask_fingerprint": self.fingerprints[-1], "data/epoch": epoch},
                                       step=trainer.global_step)

    def state_dict(self):
        return {"fingerprints": self.fingerprints, "pending": _gathered(self.pending)}

    def load_state_dict(self, state_dict):
        self.fingerprints = list(state_dict["fingerprints"])
        self.pending = {int(e): dict(d) for e, d in state_dict["pending"].items()}


def _gathered(pending: dict[int, dict[int, str]]) -> dict[int, dict[int, str]]:
    """Every rank's digests merged (a collective: every rank calls it at the same point); on one device, as is."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return pending
    shares = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(shares, pending)
    merged: dict[int, dict[int, str]] = {}
    for share in shares:
        for epoch, digests in share.items():
            merged.setdefault(epoch, {}).update(digests)
    return merged


class ResumeAtStep(pl.Callback):
    """A resumed cell's loader starts at its checkpoint's step. Set when the checkpoint loads, before Lightning
    creates the data iterator (and before workers prefetch), so a resumed run feeds exactly the global batches
    an uninterrupted one would, with any number of workers."""

    def __init__(self, sampler):
        self.sampler = sampler

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        self.sampler.start_step = checkpoint["global_step"]


class EvaluationClock(pl.Callback):
    """Seconds spent in held-out evaluations (trainer.eval_every_steps), which tokens/s and MFU leave out: they
    measure training, and an implementation setting must not change them."""

    def __init__(self):
        self.seconds = 0.0

    def on_validation_start(self, trainer, pl_module):
        self.started = time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        self.seconds += time.perf_counter() - self.started
