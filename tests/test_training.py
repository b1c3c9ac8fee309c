"""The pretraining step in process, on the pipeline's own data: one step's gradient does not depend on the
micro-batch size, clipping reaches the optimizer, a resumed loader starts at the checkpoint's step, the
curve W&B holds is the curve results.json holds, a held-out evaluation leaves the training unchanged, and
trainer.compile compiles the code a step runs, and the training rate leaves out held-out evaluations."""

import time

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ablations.budget import budget
from ablations.data.masking import training_loader
from ablations.data.pipeline import prepare
from ablations.report.runs import load
from ablations.runner import run_cell
from conftest import make_cfg
from lightning_modules.callbacks import ResumeAtStep
from lightning_modules.pretrain import PretrainModule

NO_DROPOUT = ["model.hidden_dropout_prob=0", "model.attention_probs_dropout_prob=0",
              "data.sources.synthetic.num_documents=40"]


class Gradients(pl.Callback):
    """The gradients the optimizer steps on (after clipping)."""

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.grads = {n: p.grad.detach().clone() for n, p in pl_module.named_parameters() if p.grad is not None}


def one_step_gradients(tmp_path, micro_batch: int, *overrides) -> dict:
    cfg = make_cfg(*NO_DROPOUT, "objective=mlm_nsp", *overrides)
    data = prepare(cfg, tmp_path)
    plan = budget(cfg, data).plan
    loader = training_loader(data.train, budget(cfg, data).batches, data.tokenizer.pad_token_id, micro_batch)
    step = next(iter(loader))
    assert len(step) == -(-plan.sequences // micro_batch)
    torch.manual_seed(0)
    module = PretrainModule(dict(cfg.model), len(data.tokenizer), data.tokenizer.pad_token_id, nsp=True,
                            optimizer={"lr": 1e-3, "weight_decay": 0.01, "betas": [0.9, 0.98], "eps": 1e-6}, steps=10,
                            warmup_steps=1, sequences=plan.sequences, clip_grad_norm=cfg.schedule.clip_grad_norm)
    gradients = Gradients()
    trainer = pl.Trainer(accelerator="cpu", max_steps=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[gradients])
    trainer.fit(module, DataLoader([step], batch_size=None, collate_fn=lambda s: s))
    return gradients.grads


def test_one_steps_gradient_is_the_same_whatever_the_micro_batch(tmp_path):
    """The loss of a global batch is its sum over masked tokens over their count (NSP: over its sequences)."""
    small, whole = one_step_gradients(tmp_path, 4), one_step_gradients(tmp_path, 128)
    assert small.keys() == whole.keys() and len(small) > 10
    for name in small:
        assert torch.allclose(small[name], whole[name], rtol=1e-4, atol=1e-7), name


def test_gradient_clipping_reaches_the_optimizer_step(tmp_path):
    free = one_step_gradients(tmp_path, 128)
    clipped = one_step_gradients(tmp_path, 128, "schedule.clip_grad_norm=0.001")
    norm = lambda grads: torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads.values()]))
    assert norm(free) > 0.01 and norm(clipped) == pytest.approx(0.001, rel=1e-3)


def test_a_loaded_checkpoint_moves_the_loader_to_its_step(tmp_path):
    cfg = make_cfg(*NO_DROPOUT)
    batches = budget(cfg, prepare(cfg, tmp_path)).batches
    whole = list(batches)
    ResumeAtStep(batches).on_load_checkpoint(None, None, {"global_step": 7})
    assert list(batches) == whole[7:]


def test_the_curve_in_wandb_is_the_curve_in_results_json(tmp_path):
    """Every logging step, the last included, at the step results.json records (read back with W&B's reader)."""
    results = run_cell(make_cfg(*NO_DROPOUT, "stage=pretrain", "schedule.total_tokens=30000",
                                "trainer.log_every_steps=4", f"logger.dir={tmp_path}", root=tmp_path))
    assert results["steps"] % 4 and results["curve"][-1][0] == results["steps"]  # a last step off the cadence
    [run] = load(f"wandb-offline:{tmp_path / 'wandb'}").runs
    assert run.curve == [tuple(p) for p in results["curve"]]


def test_trainer_compile_runs_the_encoder_compiled(tmp_path, monkeypatch):
    """The loss calls the encoder and the head directly, so compiling the model's own forward would compile
    nothing that runs. Dynamo's eager backend stands in for inductor: the same graph capture, without half a
    minute of code generation (with inductor this test passes too, in 35 s)."""
    from torch._dynamo.utils import counters

    compile_module = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: compile_module(self, backend="eager", **kw))
    counters.clear()
    results = run_cell(make_cfg(*NO_DROPOUT, "stage=pretrain", "schedule.total_tokens=8000", "trainer.compile=true",
                                "logger=none", root=tmp_path))
    assert results["status"] == "ok" and counters["stats"]["unique_graphs"] >= 1


def test_held_out_evaluation_during_training_leaves_the_training_unchanged(tmp_path):
    """trainer.eval_every_steps is an implementation setting: a held-out evaluation must not draw from the random
    stream dropout uses (a DataLoader's iterator takes its seed there), or turning it on changes every later step,
    and a cell resumed from a checkpoint taken before an evaluation is no longer the uninterrupted one."""
    base = ["data.sources.synthetic.num_documents=40", "schedule.total_tokens=16384", "trainer.log_every_steps=2",
            "stage=pretrain", "logger=none"]
    plain = run_cell(make_cfg(*base, root=tmp_path / "plain"))
    evaluated = run_cell(make_cfg(*base, "trainer.eval_every_steps=3", root=tmp_path / "evaluated"))
    assert plain["steps"] > 6 and evaluated["curve"] == plain["curve"]
    assert evaluated["metrics"]["val/mlm_loss"] == plain["metrics"]["val/mlm_loss"]


def test_a_cell_resumed_with_no_step_left_records_no_rate_rather_than_zero(tmp_path):
    """Killed after its last step (during the held-out evaluation or the export), a cell resumes from last.ckpt at
    its final step and trains nothing: tokens/s and MFU are not measured then, and a 0 would halve its arm's mean."""
    cfg = make_cfg("data.sources.synthetic.num_documents=40", "schedule.total_tokens=16384", "stage=pretrain",
                   "logger=none", root=tmp_path)
    first = run_cell(cfg)
    assert first["compute"]["mfu"] > 0 and first["metrics"]["train/tokens_per_sec"] > 0
    (tmp_path / "cells" / first["cell_id"] / "results.json").unlink()
    again = run_cell(cfg)
    assert again["status"] == "ok" and again["steps"] == first["steps"]
    assert again["compute"]["mfu"] is None and again["metrics"]["train/tokens_per_sec"] is None


def test_the_training_rate_leaves_out_the_held_out_evaluations(tmp_path, monkeypatch):
    """tokens/s and MFU measure training: with trainer.eval_every_steps set, the time fit spends evaluating is not
    training time. Each evaluation here takes 100 s on the clock every timer reads (and no real time)."""
    clock = {"offset": 0.0}
    real_clock, evaluate = time.perf_counter, PretrainModule.validation_step

    def slow_evaluation(self, *args, **kwargs):
        clock["offset"] += 100.0
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(time, "perf_counter", lambda: real_clock() + clock["offset"])
    monkeypatch.setattr(PretrainModule, "validation_step", slow_evaluation)
    results = run_cell(make_cfg("data.sources.synthetic.num_documents=40", "schedule.total_tokens=16384",
                                "trainer.eval_every_steps=3", "stage=pretrain", "logger=none", root=tmp_path))
    timing = results["timing"]
    assert clock["offset"] >= 300 and timing["eval_seconds"] >= 200  # two during fit, one after it
    assert 0 < timing["train_seconds"] < 100
    trained = results["tokens_seen"]
    assert results["metrics"]["train/tokens_per_sec"] == pytest.approx(trained / timing["train_seconds"])
