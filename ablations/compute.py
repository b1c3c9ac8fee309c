"""Compute accounting: model FLOPs per real token from the model's shape, the device's peak, MFU, and what a grid
will cost on a named device before it runs.

FLOPs count multiply-adds as 2 and the backward pass as twice the forward (6 x params x tokens, in the form
that keeps attention and the sparse MLM head apart): per token and layer, the Q, K, V and output projections
(8 H^2), the feed-forward (4 H I) and attention over the sequence's own tokens (4 T H); the MLM head runs on the
masked positions only (15% of tokens: transform 2 H^2, vocabulary 2 H V). Embedding lookups, LayerNorms,
softmax and the NSP head (2 H^2 per sequence) are left out, as MFU conventions do.
"""

import json
import math
import os
import platform
import re
import time
from pathlib import Path

import torch

from ablations.config import PRECISION_DTYPE, ConfigError

MASK_RATE = 0.15
GPU_CHECK = Path(__file__).resolve().parent.parent / "bench" / "results" / "gpu_check.json"
DEFAULT_MFU = 0.4
SLURM_LIMIT_HOURS = 96  # conf/hydra/launcher/slurm.yaml: timeout_min 1440 x (max_num_timeout 3 + 1)
# Dense (no sparsity) peaks from NVIDIA's datasheets, per dtype; a device is matched by the words of its name.
GPU_PEAKS = {
    "h200": {"bf16": 989e12, "fp16": 989e12, "tf32": 494e12, "fp32": 67e12},
    "h100": {"bf16": 989e12, "fp16": 989e12, "tf32": 494e12, "fp32": 67e12},  # SXM
    "h100 pcie": {"bf16": 756e12, "fp16": 756e12, "tf32": 378e12, "fp32": 51e12},
    "a100": {"bf16": 312e12, "fp16": 312e12, "tf32": 156e12, "fp32": 19.5e12},
    "l4": {"bf16": 121e12, "fp16": 121e12, "tf32": 60e12, "fp32": 30e12},
    "a10g": {"bf16": 125e12, "fp16": 125e12, "tf32": 62.5e12, "fp32": 31.2e12},
}


def flops_per_token(model: dict, vocab_size: int, tokens_per_sequence: float) -> float:
    """Training FLOPs (forward + backward) of one real token of a BERT with `model`'s shape."""
    h, i, layers = model["hidden_size"], model["intermediate_size"], model["num_hidden_layers"]
    encoder = layers * (8 * h * h + 4 * h * i + 4 * tokens_per_sequence * h)
    head = MASK_RATE * (2 * h * h + 2 * h * vocab_size)
    return 3 * (encoder + head)


def gpu_peak(name: str, precision: str) -> float | None:
    """The dense peak FLOP/s of a GPU named like `name` (h100, "NVIDIA H100 PCIe", ...) at a trainer precision."""
    name, dtype = name.lower(), PRECISION_DTYPE.get(str(precision), "fp32")
    if dtype == "fp32" and torch.backends.cuda.matmul.allow_tf32:
        dtype = "tf32"
    words = set(re.findall(r"[a-z0-9]+", name))  # whole words: "l4" is in "NVIDIA L40S", not one of its words
    chip = max((c for c in GPU_PEAKS if words.issuperset(c.split())), key=len, default=None)
    return None if chip is None else GPU_PEAKS[chip][dtype]


def cpu_peak(cache: Path | None = None) -> float:
    """fp32 matmul FLOP/s of this machine at the current thread count, per CPU model and thread count: the highest
    rate measured so far (a quarter of a second each time), since one taken while other work held the cores is
    too low and would make every MFU against it too high."""
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    cache = cache or home / "roberta-ablations" / "cpu_peak.json"
    key = f"{platform.node()}|{platform.processor() or platform.machine()}|{os.cpu_count()}|{torch.get_num_threads()}"
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(2):
            torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    measured = 2 * 2 * 1024 ** 3 / best
    if measured > known.get(key, 0):
        known[key] = measured
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known, indent=1))
    return known[key]


def device_peak(accelerator: str, precision: str) -> tuple[float | None, str]:
    """(peak FLOP/s, what it is) for the device this process trains on."""
    if accelerator in ("gpu", "cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name()
        peak = gpu_peak(name, precision)
        return peak, f"{name} {PRECISION_DTYPE.get(str(precision), precision)} dense peak (datasheet)"
    return cpu_peak(), f"CPU fp32 matmul, measured ({torch.get_num_threads()} threads)"


def measured_mfu(results: Path) -> float | None:
    """The MFU bench/gpu_check.sh measured on a GPU, when it has run on this checkout."""
    try:
        return float(json.loads(results.read_text())["mfu"])
    except (OSError, ValueError, KeyError):
        return None


def estimate(flops: float, device: str, precision: str, devices: int, mfu: float) -> dict:
    """Wall hours and device-hours of `flops` on `devices` GPUs named `device` at an assumed MFU."""
    peak = gpu_peak(device, precision)
    if peak is None:
        raise ConfigError(f"cost.device={device}: no peak known; allowed {', '.join(GPU_PEAKS)}")
    hours = flops / (peak * mfu * devices) / 3600
    return {"device": device, "devices": devices, "mfu": mfu, "peak_flops": peak, "hours": hours,
            "device_hours": hours * devices}


def cell_cost(cfg, flops: float) -> dict:
    """What `flops` cost on cfg.cost's device (the trainer's device count unless cost.devices says), at cost.mfu,
    else the MFU the GPU check measured, else an assumed 40%."""
    measured = measured_mfu(GPU_CHECK)
    mfu, source = ((cfg.cost.mfu, "cost.mfu") if cfg.cost.mfu else (measured, "bench/gpu_check.sh") if measured
                   else (DEFAULT_MFU, "assumed"))
    devices = cfg.cost.devices or cfg.trainer.devices * cfg.trainer.num_nodes
    precision = cfg.trainer.precision if cfg.trainer.accelerator != "cpu" else "bf16-mixed"
    return {**estimate(flops, cfg.cost.device, precision, devices, mfu), "mfu_source": source}


def describe_cost(flops: float, tokens: float, cost: dict) -> str:
    text = (f"cost: {flops:.3g} FLOPs ({flops / tokens / 1e6:.0f}M a token) = {cost['hours']:.3g} h on "
            f"{cost['devices']} x {cost['device']} at {cost['mfu']:.0%} MFU ({cost['mfu_source']}), "
            f"{cost['device_hours']:.3g} GPU-hours")
    if cost["hours"] > SLURM_LIMIT_HOURS:
        needed = math.ceil(cost["hours"] * cost["devices"] / SLURM_LIMIT_HOURS)
        text += (f"; more than the SLURM launcher's {SLURM_LIMIT_HOURS} h (timeout_min x max_num_timeout): use at "
                 f"least {needed} devices (trainer.devices x trainer.num_nodes)")
    return text
