from lightning_modules.pretrain import PretrainModule, pretraining_losses

__all__ = ["PretrainModule", "pretraining_losses"]
