"""The GPU path, measured: a BERT-base cell at seq_len 128 in bf16 (trainer=gpu) for a few hundred steps through
the harness itself, then tokens/s, model FLOPs utilisation against the GPU's dense peak, peak memory, and how
much faster the configured data loader feeds steps than training consumes them. Writes
bench/results/gpu_check.json (its MFU becomes the cost estimate's default). Without CUDA it checks what a CPU
can (the configs compose, the model builds with SDPA attention, the cost estimate) and says so."""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import ROOT, default_cfg, train_steps
from ablations import compute
from ablations.budget import budget
from ablations.config import check
from ablations.data.pipeline import prepare
from lightning_modules.pretrain import build_model

RESULTS = ROOT / "bench" / "results" / "gpu_check.json"


def overrides(steps: int, root: Path) -> list[str]:
    return ["trainer=gpu", "model=base", "seq_len=128", "schedule=bsz256", "schedule.batch_scale=1",
            "schedule.lr_scale=1", f"schedule.total_tokens={steps * 256 * 128}", "stage=pretrain", "logger=none",
            "data.sources.synthetic.num_documents=20000", f"paths.root={root}", "trainer.log_every_steps=50"]


def loader_headroom(cfg, steps: int) -> float:
    """Optimizer steps per second the configured loader (its workers, pinned memory) delivers on its own."""
    data = prepare(cfg, Path(cfg.paths.root))
    spend = budget(cfg, data)
    start = time.perf_counter()
    train_steps(data, spend, steps, workers=cfg.trainer.num_workers, pin_memory=True)
    return steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp())
    cfg = default_cfg(*overrides(args.steps, root))
    check(cfg)
    model = build_model(dict(cfg.model), 8192, 1, nsp=False)
    assert model.config._attn_implementation == "sdpa"
    per_token = compute.flops_per_token(cfg.model, 8192, 128)
    cost = compute.cell_cost(cfg, per_token * 131_072_000_000)
    print(f"BERT-base, seq_len 128: {per_token / 1e6:.0f}M FLOPs a token; the paper's 131B tokens: "
          f"{cost['hours']:.0f} h on one H100 at {cost['mfu']:.0%} MFU ({cost['mfu_source']})")
    if not torch.cuda.is_available():
        print("no CUDA device: configs, model (SDPA attention) and cost estimate checked; nothing measured on a GPU")
        return
    from ablations.runner import run_cell

    torch.cuda.reset_peak_memory_stats()
    results = run_cell(cfg)
    headroom = loader_headroom(cfg, 50) / (results["steps"] / results["timing"]["train_seconds"])
    row = {"device": torch.cuda.get_device_name(), "steps": results["steps"],
           "tokens_per_sec": results["metrics"]["train/tokens_per_sec"], "mfu": results["compute"]["mfu"],
           "peak_flops": results["compute"]["peak_flops"], "peak_memory_gb": torch.cuda.max_memory_allocated() / 2 ** 30,
           "loader_headroom": headroom, "status": results["status"]}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(row, indent=1))
    print(f"{row['device']}: {row['steps']} steps, {row['tokens_per_sec']:.0f} tokens/s, MFU {row['mfu']:.1%} "
          f"(target >= 45%), peak memory {row['peak_memory_gb']:.1f} GiB, data loader {headroom:.1f}x what training "
          f"consumes (target >= 2x); {RESULTS}")
    sys.exit(0 if results["status"] == "ok" else 1)


if __name__ == "__main__":
    main()
