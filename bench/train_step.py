"""(a) The Lightning training step against a plain PyTorch loop: same model, same batches, same optimizer
and schedule, measured side by side (alternating, best of rounds). Target: Lightning >= 0.95x the loop."""

import argparse
import tempfile
import time
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from common import default_cfg
from ablations.config import check
from ablations.data.masking import EpochSampler, collate
from ablations.data.pipeline import prepare
from lightning_modules.pretrain import PretrainModule, pretraining_losses


def module_for(cfg, plan, tok):
    return PretrainModule(model=dict(cfg.model), vocab_size=len(tok), pad_id=tok.pad_token_id, nsp=cfg.objective.nsp,
                          steps=plan.steps, warmup_steps=plan.warmup_steps,
                          optimizer={"lr": plan.peak_lr, "weight_decay": 0.01, "betas": [0.9, 0.98], "eps": 1e-6})


def plain_loop(module, batches):
    optimizer_cfg = module.configure_optimizers()
    optimizer, schedule = optimizer_cfg["optimizer"], optimizer_cfg["lr_scheduler"]["scheduler"]
    module.train()
    start = time.perf_counter()
    for batch in batches:
        loss = pretraining_losses(module.model, batch, module.hparams.nsp)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        schedule.step()
    return time.perf_counter() - start


def lightning(module, batches):
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=len(batches), logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    start = time.perf_counter()
    trainer.fit(module, DataLoader(batches, batch_size=None))
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. objective=mlm_nsp")
    args = parser.parse_args()
    cfg = default_cfg(*args.overrides)
    plan = check(cfg)
    data = prepare(cfg, Path(tempfile.mkdtemp()))
    loader = DataLoader(data.train, batch_size=plan.micro_batch, sampler=EpochSampler(len(data.train), 0),
                        collate_fn=partial(collate, pad_id=data.tokenizer.pad_token_id), drop_last=True)
    batches = [b for _, b in zip(range(args.steps), (b for e in range(100) for b in loader))]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    best = {"plain": float("inf"), "lightning": float("inf")}
    lightning(module_for(cfg, plan, data.tokenizer), batches[:10])  # warm-up: imports, first-call costs
    for _ in range(args.rounds):
        for name, fn in (("plain", plain_loop), ("lightning", lightning)):
            torch.manual_seed(0)
            best[name] = min(best[name], fn(module_for(cfg, plan, data.tokenizer), batches))
    rate = {name: tokens / seconds for name, seconds in best.items()}
    print(f"model {cfg.model.name}, objective {cfg.objective.name}, {len(batches)} steps of {plan.micro_batch} x "
          f"<= {cfg.seq_len} tokens, {torch.get_num_threads()} threads, best of {args.rounds} rounds")
    print(f"plain PyTorch loop: {rate['plain']:10.0f} tokens/s")
    print(f"Lightning:          {rate['lightning']:10.0f} tokens/s")
    print(f"ratio Lightning / plain: {rate['lightning'] / rate['plain']:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
