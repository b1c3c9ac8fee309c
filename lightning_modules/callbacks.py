"""Makes static vs dynamic masking checkable from the logs alone."""

import hashlib

import pytorch_lightning as pl


class MaskFingerprint(pl.Callback):
    """Logs, each epoch, a hash of the masks the epoch feeds to a fixed probe set of sequences: static
    masking repeats its fingerprints with period dupe_factor, dynamic masking never repeats one."""

    def __init__(self, dataset, probe_size: int = 64):
        self.dataset, self.probe = dataset, range(min(probe_size, len(dataset)))
        self.fingerprints: list[int] = []

    def on_train_epoch_start(self, trainer, pl_module):
        digest = hashlib.sha256()
        for index in self.probe:
            for array in self.dataset.masked(trainer.current_epoch, index):
                digest.update(array.tobytes())
        self.fingerprints.append(int(digest.hexdigest()[:8], 16))  # 32 bits: exact in a float metric
        if trainer.logger is not None and trainer.is_global_zero:
            trainer.logger.log_metrics({"data/mask_fingerprint": self.fingerprints[-1],
                                        "data/epoch": trainer.current_epoch}, step=trainer.global_step)
