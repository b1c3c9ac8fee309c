"""Compute accounting: the FLOPs formula against torch's own count of one training step, device peaks, and the
cost a dry run prints before a grid runs."""

import json
import re

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from ablations import compute
from ablations.config import ConfigError, check
from conftest import make_cfg, run_py
from lightning_modules.pretrain import build_model, pretraining_losses

MODELS = {"tiny": 2, "mini": 4}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("nsp", [False, True])
def test_flops_per_token_matches_torchs_count_of_a_training_step(name, nsp):
    """Full-length sequences (attention over T = seq_len), 15% of the positions masked, forward and backward."""
    cfg = make_cfg(f"model={name}")
    model_cfg, vocab, batch, seq_len = dict(cfg.model), 4096, 8, 64
    model = build_model(model_cfg, vocab, pad_id=1, nsp=nsp)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (batch, seq_len), generator=generator)
    positions = torch.randperm(batch * seq_len, generator=generator)[:round(0.15 * batch * seq_len)]
    micro_batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids),
                   "masked_positions": positions, "masked_labels": ids.reshape(-1)[positions],
                   "next_sentence_label": torch.zeros(batch, dtype=torch.long)}
    with FlopCounterMode(display=False) as counter:
        losses = pretraining_losses(model, micro_batch, nsp)
        (losses["mlm_sum"] + losses.get("nsp_sum", 0)).backward()
    per_token = compute.flops_per_token(model_cfg, vocab, seq_len)
    assert counter.get_total_flops() / (batch * seq_len) == pytest.approx(per_token, rel=0.10)


def test_gpu_peaks_are_dense_and_matched_by_name():
    assert compute.gpu_peak("NVIDIA H200", "bf16-mixed") == 989e12
    assert compute.gpu_peak("NVIDIA H100 PCIe", "bf16-mixed") == 756e12
    assert compute.gpu_peak("NVIDIA A100-SXM4-80GB", "16-mixed") == 312e12
    assert compute.gpu_peak("NVIDIA A10G", "bf16-mixed") == 125e12
    assert compute.gpu_peak("a mystery accelerator", "bf16-mixed") is None
    for unknown in ("NVIDIA L40S", "NVIDIA L40"):  # "l4" is in their names, not one of their words
        assert compute.gpu_peak(unknown, "bf16-mixed") is None


def test_a_precision_lightning_takes_under_an_old_name_is_refused_not_costed_at_fp32():
    """Lightning trains trainer.precision=bf16 as bf16-mixed (with a warning); costed at the fp32 peak, a paper
    grid read 15x longer than it is."""
    check(make_cfg("trainer=gpu"))
    for old in ("bf16", "16"):
        with pytest.raises(ConfigError, match=f"trainer.precision={old}: allowed bf16-mixed, bf16-true, 16-mixed"):
            check(make_cfg("trainer=gpu", f"trainer.precision={old}"))


def test_the_cpu_peak_is_the_highest_rate_measured_so_a_loaded_machine_never_lowers_it(tmp_path):
    """A peak measured while other work held the cores is too low, and every MFU against it too high (a cached
    2-thread peak taken on a busy machine gave an MFU of 1.11): the cache keeps the highest measurement."""
    cache = tmp_path / "peak.json"
    first = compute.cpu_peak(cache)
    assert 1e8 < first < 1e13
    [key] = json.loads(cache.read_text())
    cache.write_text(json.dumps({key: 1.0}))  # a measurement from a machine too busy to measure anything
    assert compute.cpu_peak(cache) > 1e8 and json.loads(cache.read_text())[key] > 1e8
    cache.write_text(json.dumps({key: 1e14}))  # higher than this run can measure: kept
    assert compute.cpu_peak(cache) == 1e14


def test_cost_of_a_cell_and_an_unknown_device():
    cfg = make_cfg("scale=paper", "cost.device=h100")
    cost = compute.cell_cost(cfg, flops=989e12 * 0.4 * 3600 * 8)  # one hour of 8 H100s at 40%
    assert cost["devices"] == 8 and cost["hours"] == pytest.approx(1.0) and cost["device_hours"] == pytest.approx(8)
    assert cost["mfu_source"] in ("assumed", "bench/gpu_check.sh")
    with pytest.raises(ConfigError, match="cost.device=tpu9: no peak known; allowed h200"):
        compute.cell_cost(make_cfg("cost.device=tpu9"), 1.0)


def test_paper_scale_dry_run_prints_each_cells_cost_and_the_grids(tmp_path):
    result = run_py("-m", "experiment=table3_batch_size", "scale=paper", "dry_run=true", "cost.device=h100",
                    "logger=none", f"paths.root={tmp_path}", f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path,
                    timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    costs = re.findall(r"cost: ([\d.e+]+) FLOPs \((\d+)M a token\) = ([\d.]+) h on 8 x h100 .* ([\d.]+) GPU-hours",
                       result.stdout)
    assert len(costs) == 6 and all(float(c[0]) > 1e19 for c in costs)
    total = re.search(r"grid cost: ([\d.e+]+) real tokens, ([\d.e+]+) FLOPs, .* ([\d.]+) GPU-hours on h100",
                      result.stdout + result.stderr)
    assert total and float(total[3]) == pytest.approx(sum(float(c[3]) for c in costs), rel=0.01)
