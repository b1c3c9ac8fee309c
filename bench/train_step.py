"""(a) The Lightning training step against a plain PyTorch loop: same model, same batches, same optimizer
and schedule, measured side by side (alternating, best of rounds). Target: Lightning >= 0.95x the loop."""

import argparse
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from common import default_cfg, train_steps
from ablations.budget import budget
from ablations.data.pipeline import prepare
from lightning_modules.pretrain import PretrainModule, pretraining_losses


def module_for(cfg, spend, tok):
    plan = spend.plan
    return PretrainModule(model=dict(cfg.model), vocab_size=len(tok), pad_id=tok.pad_token_id, nsp=cfg.objective.nsp,
                          steps=plan.steps, warmup_steps=plan.warmup_steps, sequences=plan.sequences,
                          optimizer={"lr": plan.peak_lr, "weight_decay": 0.01, "betas": [0.9, 0.98], "eps": 1e-6})


def plain_loop(module, steps):
    """The same step as PretrainModule.training_step, written as a bare loop."""
    optimizer_cfg = module.configure_optimizers()
    optimizer, schedule = optimizer_cfg["optimizer"], optimizer_cfg["lr_scheduler"]["scheduler"]
    module.train()
    start = time.perf_counter()
    for micro_batches in steps:
        masked = sum(mb["masked_tokens"] for mb in micro_batches)
        for mb in micro_batches:
            losses = pretraining_losses(module.model, mb, module.hparams.nsp)
            (losses["mlm_sum"] / masked + losses.get("nsp_sum", 0) / module.hparams.sequences).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
    return time.perf_counter() - start


def lightning(module, steps):
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=len(steps), logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    start = time.perf_counter()
    trainer.fit(module, DataLoader(steps, batch_size=None, collate_fn=lambda step: step))
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. objective=mlm_nsp")
    args = parser.parse_args()
    cfg = default_cfg(*args.overrides)
    data = prepare(cfg, Path(tempfile.mkdtemp()))
    spend = budget(cfg, data)
    steps = train_steps(data, spend, args.steps)
    tokens = sum(mb["real_tokens"] for step in steps for mb in step)
    best = {"plain": float("inf"), "lightning": float("inf")}
    lightning(module_for(cfg, spend, data.tokenizer), steps[:10])  # warm-up: imports, first-call costs
    for _ in range(args.rounds):
        for name, fn in (("plain", plain_loop), ("lightning", lightning)):
            torch.manual_seed(0)
            best[name] = min(best[name], fn(module_for(cfg, spend, data.tokenizer), steps))
    rate = {name: tokens / seconds for name, seconds in best.items()}
    print(f"model {cfg.model.name}, objective {cfg.objective.name}, {len(steps)} steps of {spend.plan.sequences} "
          f"sequences, {torch.get_num_threads()} threads, best of {args.rounds} rounds")
    print(f"plain PyTorch loop: {rate['plain']:10.0f} tokens/s")
    print(f"Lightning:          {rate['lightning']:10.0f} tokens/s")
    print(f"ratio Lightning / plain: {rate['lightning'] / rate['plain']:.3f} (target >= 0.97)")


if __name__ == "__main__":
    main()
