"""Callbacks of the pretraining run: fingerprints of the masks actually fed (static vs dynamic checkable from the
logs alone) and an exact resume."""

import hashlib

import pytorch_lightning as pl


class MaskFingerprint(pl.Callback):
    """Per epoch, a hash of the masks fed to the probe sequences (the collate digests every fed copy of sequences
    0..PROBE-1): static masking repeats its fingerprints with period dupe_factor, dynamic never repeats one. An
    epoch's fingerprint is taken when the stream moves past it: every finished epoch has one, a last partial one
    none."""

    def __init__(self):
        self.fingerprints: list[int] = []
        self.pending: dict[int, dict[int, str]] = {}  # epoch -> {index: digest} of probe sequences fed so far

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        for micro_batch in batch:
            for epoch, index, digest in micro_batch["probe"]:
                self.pending.setdefault(epoch, {})[index] = digest
        for epoch in sorted(self.pending)[:-1]:
            self._close(trainer, epoch)

    def _close(self, trainer, epoch: int) -> None:
        digests = self.pending.pop(epoch)
        fingerprint = hashlib.sha256("".join(digests[i] for i in sorted(digests)).encode())
        self.fingerprints.append(int(fingerprint.hexdigest()[:8], 16))  # 32 bits: exact in a float metric
        if trainer.logger is not None and trainer.is_global_zero:
            trainer.logger.log_metrics({"data/mask_fingerprint": self.fingerprints[-1], "data/epoch": epoch},
                                       step=trainer.global_step)

    def state_dict(self):
        return {"fingerprints": self.fingerprints, "pending": self.pending}

    def load_state_dict(self, state_dict):
        self.fingerprints = list(state_dict["fingerprints"])
        self.pending = {int(e): dict(d) for e, d in state_dict["pending"].items()}


class ResumeAtStep(pl.Callback):
    """A resumed cell's loader starts at its checkpoint's step. Set when the checkpoint loads, before Lightning
    creates the data iterator (and before workers prefetch), so a resumed run feeds exactly the global batches
    an uninterrupted one would, with any number of workers."""

    def __init__(self, sampler):
        self.sampler = sampler

    def on_load_checkpoint(self, trainer, pl_module, checkpoint):
        self.sampler.start_step = checkpoint["global_step"]
