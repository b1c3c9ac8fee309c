"""Callbacks of the pretraining run: mask fingerprints (static vs dynamic checkable from the logs alone) and
an exact mid-epoch resume."""

import hashlib

import pytorch_lightning as pl


class MaskFingerprint(pl.Callback):
    """Logs, each epoch, a hash of the masks the epoch feeds to a fixed probe set of sequences: static
    masking repeats its fingerprints with period dupe_factor, dynamic masking never repeats one."""

    def __init__(self, dataset, probe_size: int = 64):
        self.dataset, self.probe = dataset, range(min(probe_size, len(dataset)))
        self.fingerprints: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        """At an epoch's first batch rather than its start hook, which a resumed epoch may skip."""
        if trainer.current_epoch < len(self.fingerprints):
            return
        digest = hashlib.sha256()
        for index in self.probe:
            for array in self.dataset.masked(trainer.current_epoch, index):
                digest.update(array.tobytes())
        self.fingerprints.append(int(digest.hexdigest()[:8], 16))  # 32 bits: exact in a float metric
        if trainer.logger is not None and trainer.is_global_zero:
            trainer.logger.log_metrics({"data/mask_fingerprint": self.fingerprints[-1],
                                        "data/epoch": trainer.current_epoch}, step=trainer.global_step)

    def state_dict(self):
        return {"fingerprints": self.fingerprints}

    def load_state_dict(self, state_dict):
        self.fingerprints = list(state_dict["fingerprints"])


class ResumeMidEpoch(pl.Callback):
    """Lightning restarts a resumed epoch's data from its first batch; the sampler skips the batches the
    checkpoint already trained on, so a resumed cell sees exactly the batches of an uninterrupted one.
    Reads the fit loop's batch progress (checked on pytorch-lightning 2.6). A checkpoint taken exactly at an
    epoch's last batch still resumes one epoch late in Lightning: close to, not equal to, the uninterrupted run."""

    def __init__(self, sampler, micro_batch: int):
        self.sampler, self.micro_batch = sampler, micro_batch

    def on_train_start(self, trainer, pl_module):
        done = trainer.fit_loop.epoch_loop.batch_progress.current.ready
        if done < trainer.num_training_batches:  # (at an epoch's last batch Lightning moves on to the next epoch)
            self.sampler.skip = done * self.micro_batch
