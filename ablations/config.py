"""Checks a composed config and derives the training plan, so bad input fails before any work starts."""

import math
import os
from dataclasses import dataclass

from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import MissingMandatoryValue


class ConfigError(ValueError):
    """Bad user input. The message names the key or file and what is allowed."""


class FineTuningFailed(Exception):
    """Fine-tuning tasks of a cell raised: results.json keeps everything else, but the cell is not finished."""


@dataclass(frozen=True)
class Plan:
    """How a cell spends its budget. Budgets and batches count real (non-padding) tokens: a step consumes about
    batch_tokens of them whatever the input format, so short-sequence formats take more sequences per step
    (as the paper raises the batch for SENTENCE-PAIR and DOC-SENTENCES)."""
    batch: int          # the preset's batch in full-length sequences, after batch_scale
    batch_tokens: int   # real tokens per optimizer step: batch x seq_len
    sequences: int      # sequences per optimizer step (one whole global batch)
    steps: int
    peak_lr: float
    warmup_steps: int
    micro_batch: int    # per rank; an implementation setting that never changes results


# trainer.precision -> the dtype of the peak its MFU and cost are measured against. Lightning also takes older
# names (bf16, 16) and trains them mixed: refused here, so no cell is costed or measured against the fp32 peak.
PRECISION_DTYPE = {"bf16-mixed": "bf16", "bf16-true": "bf16", "16-mixed": "fp16", "16-true": "fp16",
                   "32-true": "fp32", "32": "fp32"}


def check(cfg: DictConfig) -> None:
    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as err:
        raise ConfigError(f"{err.full_key} is required but not set (pass {err.full_key}=...)") from None
    _check_objective(cfg)
    _check_masking(cfg.masking)
    _check_data(cfg.data)
    if not 8 <= cfg.seq_len <= cfg.model.max_position_embeddings:
        raise ConfigError(f"seq_len={cfg.seq_len}: allowed 8 to model.max_position_embeddings "
                          f"({cfg.model.max_position_embeddings})")
    if str(cfg.trainer.precision) not in PRECISION_DTYPE:
        raise ConfigError(f"trainer.precision={cfg.trainer.precision}: allowed {', '.join(PRECISION_DTYPE)}")
    _batch(cfg)


def _check_objective(cfg):
    if cfg.objective.nsp and not cfg.input_format.pairs:
        raise ConfigError(f"objective={cfg.objective.name} needs sentence pairs for next sentence prediction, "
                          f"but input_format={cfg.input_format.name} packs single segments: "
                          f"use input_format=segment_pair or sentence_pair, or objective=mlm")


def _check_masking(m):
    if not 0 < m.mlm_probability < 1:
        raise ConfigError(f"masking.mlm_probability={m.mlm_probability}: allowed strictly between 0 and 1")
    for key in ("mask_replace_prob", "random_replace_prob"):
        if not 0 <= m[key] <= 1:
            raise ConfigError(f"masking.{key}={m[key]}: allowed 0 to 1")
    if m.mask_replace_prob + m.random_replace_prob > 1:
        raise ConfigError(f"masking.mask_replace_prob + masking.random_replace_prob = "
                          f"{m.mask_replace_prob + m.random_replace_prob}: the shares must sum to at most 1")
    if not isinstance(m.dupe_factor, int) or isinstance(m.dupe_factor, bool) or m.dupe_factor < 1:
        raise ConfigError(f"masking.dupe_factor={m.dupe_factor}: allowed a whole number >= 1")


def _check_data(d):
    if not d.sources:
        raise ConfigError("data.sources is empty: name at least one source (synthetic, text_files or hub)")
    for name, src in d.sources.items():
        if src.type not in ("synthetic", "text_files", "hub"):
            raise ConfigError(f"data.sources.{name}.type={src.type}: allowed synthetic, text_files, hub")
        if not src.weight > 0:
            raise ConfigError(f"data.sources.{name}.weight={src.weight}: allowed a number > 0")
        if src.type == "text_files" and src.path is not None:  # before the cell id and the cache keys hash them:
            from ablations.data.corpus import files_sha

            src.path = to_absolute_path(os.path.expanduser(src.path))  # the folder it was run from
            with open_dict(src):
                src.files_sha = files_sha(name, src)  # and what the folder holds now
    size = d.size
    if size is not None and not ((isinstance(size, int) and size > 1) or (isinstance(size, float) and 0 < size <= 1)):
        raise ConfigError(f"data.size={size}: allowed null (all), a token count > 1, or a fraction in (0, 1]")
    if not 0 < d.valid_fraction < 1:
        raise ConfigError(f"data.valid_fraction={d.valid_fraction}: allowed strictly between 0 and 1")


def _batch(cfg) -> int:
    s, t = cfg.schedule, cfg.trainer
    if not s.total_tokens > 0:
        raise ConfigError(f"schedule.total_tokens={s.total_tokens}: allowed a token count > 0")
    if not 0 < s.batch_scale <= 1 or not s.lr_scale > 0:
        raise ConfigError(f"schedule.batch_scale={s.batch_scale}, schedule.lr_scale={s.lr_scale}: "
                          f"allowed batch_scale in (0, 1] and lr_scale > 0")
    if s.clip_grad_norm is not None and not s.clip_grad_norm > 0:
        raise ConfigError(f"schedule.clip_grad_norm={s.clip_grad_norm}: allowed null (no clipping) or a norm > 0")
    scaled = s.batch_size * s.batch_scale
    if scaled < 1 or not float(scaled).is_integer():
        raise ConfigError(f"schedule.batch_scale={s.batch_scale} turns schedule.batch_size={s.batch_size} into "
                          f"{scaled}: allowed scales give a whole batch >= 1 (e.g. 1/8 -> 32, 256, 1024)")
    if s.total_tokens < scaled * cfg.seq_len:
        raise ConfigError(f"schedule.total_tokens={s.total_tokens} is less than one batch "
                          f"({int(scaled)} x seq_len {cfg.seq_len} tokens)")
    if not isinstance(t.micro_batch_size, int) or t.micro_batch_size < 1:
        raise ConfigError(f"trainer.micro_batch_size={t.micro_batch_size}: allowed a whole number >= 1")
    for key in ("devices", "num_nodes"):
        if not isinstance(t[key], int) or isinstance(t[key], bool) or t[key] < 1:
            raise ConfigError(f"trainer.{key}={t[key]}: allowed a whole number >= 1 (a count, so each cell's "
                              f"global batch is split the same way on every launch)")
    return int(scaled)


def plan(cfg: DictConfig, tokens_per_sequence: float) -> Plan:
    """The plan for data whose sequences hold tokens_per_sequence real tokens on average: every step one global
    batch of about batch x seq_len real tokens, and as many steps as spend schedule.total_tokens."""
    s = cfg.schedule
    batch = _batch(cfg)
    batch_tokens = batch * cfg.seq_len
    sequences = max(1, round(batch_tokens / tokens_per_sequence))
    steps = max(1, round(s.total_tokens / (sequences * tokens_per_sequence)))
    return Plan(batch=batch, batch_tokens=batch_tokens, sequences=sequences, steps=steps,
                peak_lr=s.peak_lr * s.lr_scale, warmup_steps=math.ceil(s.warmup_fraction * steps),
                micro_batch=cfg.trainer.micro_batch_size)
