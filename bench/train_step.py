"""(a) The Lightning training step against a plain PyTorch loop: same model, same batches, same optimizer
and schedule, measured side by side (alternating in every round; the median of the rounds' ratios). Target:
Lightning >= 0.97x the loop. Also the loop's model FLOPs utilisation against this CPU's measured matmul peak."""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from common import default_cfg, train_steps
from ablations import compute
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


def measure(overrides: list[str], steps: int, rounds: int, threads: int | None = None) -> dict:
    """Tokens/s of both, the median ratio of rounds, and MFU of each against the measured fp32 matmul peak at the
    same thread count (`threads` for this measurement only, else torch's default)."""
    cores = torch.get_num_threads()
    torch.set_num_threads(threads or cores)
    cfg = default_cfg(*overrides)
    data = prepare(cfg, Path(tempfile.mkdtemp()))
    spend = budget(cfg, data)
    batches = train_steps(data, spend, steps)
    tokens = sum(mb["real_tokens"] for step in batches for mb in step)
    lightning(module_for(cfg, spend, data.tokenizer), batches[:10])  # warm-up: imports, first-call costs
    seconds = {"plain": [], "lightning": []}
    for _ in range(rounds):
        for name, fn in (("plain", plain_loop), ("lightning", lightning)):
            torch.manual_seed(0)
            seconds[name].append(fn(module_for(cfg, spend, data.tokenizer), batches))
    per_token = compute.flops_per_token(cfg.model, len(data.tokenizer), data.stats["tokens_per_sequence"])
    peak = compute.cpu_peak()
    rate = {name: tokens / statistics.median(s) for name, s in seconds.items()}
    torch.set_num_threads(cores)
    return {"model": cfg.model.name, "steps": len(batches), "sequences": spend.plan.sequences,
            "threads": threads or cores,
            "ratio": statistics.median(p / l for p, l in zip(seconds["plain"], seconds["lightning"])),
            **{f"{name}_tokens_per_sec": r for name, r in rate.items()},
            **{f"{name}_mfu": r * per_token / peak for name, r in rate.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=mini")
    args = parser.parse_args()
    m = measure(args.overrides, args.steps, args.rounds, args.threads)
    print(f"model {m['model']}, {m['steps']} steps of {m['sequences']} sequences, {m['threads']} threads, "
          f"median of {args.rounds} rounds")
    for name in ("plain", "lightning"):
        print(f"{name:10s} {m[f'{name}_tokens_per_sec']:10.0f} tokens/s, MFU {m[f'{name}_mfu']:.1%}")
    print(f"ratio Lightning / plain: {m['ratio']:.3f} (target >= 0.97)")


if __name__ == "__main__":
    main()
