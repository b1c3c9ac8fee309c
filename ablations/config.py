"""Checks a composed config and derives the training plan, so bad input fails before any work starts."""

import math
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue


class ConfigError(ValueError):
    """Bad user input. The message names the key or file and what is allowed."""


@dataclass(frozen=True)
class Plan:
    global_batch: int
    micro_batch: int
    accumulate: int
    steps: int
    peak_lr: float
    warmup_steps: int


def check(cfg: DictConfig) -> Plan:
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
    return _plan(cfg)


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
    if m.name == "static" and (not isinstance(m.dupe_factor, int) or m.dupe_factor < 1):
        raise ConfigError(f"masking.dupe_factor={m.dupe_factor}: allowed a whole number >= 1")


def _check_data(d):
    if not d.sources:
        raise ConfigError("data.sources is empty: name at least one source (synthetic, text_files or hub)")
    for name, src in d.sources.items():
        if src.type not in ("synthetic", "text_files", "hub"):
            raise ConfigError(f"data.sources.{name}.type={src.type}: allowed synthetic, text_files, hub")
        if not src.weight > 0:
            raise ConfigError(f"data.sources.{name}.weight={src.weight}: allowed a number > 0")
    size = d.size
    if size is not None and not ((isinstance(size, int) and size > 1) or (isinstance(size, float) and 0 < size <= 1)):
        raise ConfigError(f"data.size={size}: allowed null (all), a token count > 1, or a fraction in (0, 1]")
    if not 0 < d.valid_fraction < 1:
        raise ConfigError(f"data.valid_fraction={d.valid_fraction}: allowed strictly between 0 and 1")


def _plan(cfg) -> Plan:
    s, t = cfg.schedule, cfg.trainer
    if not s.total_tokens > 0:
        raise ConfigError(f"schedule.total_tokens={s.total_tokens}: allowed a token count > 0")
    if not 0 < s.batch_scale <= 1 or not s.lr_scale > 0:
        raise ConfigError(f"schedule.batch_scale={s.batch_scale}, schedule.lr_scale={s.lr_scale}: "
                          f"allowed batch_scale in (0, 1] and lr_scale > 0")
    scaled = s.batch_size * s.batch_scale
    if scaled < 1 or not float(scaled).is_integer():
        raise ConfigError(f"schedule.batch_scale={s.batch_scale} turns schedule.batch_size={s.batch_size} into "
                          f"{scaled}: allowed scales give a whole batch >= 1 (e.g. 1/8 -> 32, 256, 1024)")
    global_batch = int(scaled)
    per_step = t.micro_batch_size * t.devices * t.num_nodes
    if global_batch % per_step:
        raise ConfigError(f"global batch {global_batch} (schedule={s.name}, batch_scale={s.batch_scale}) is not a "
                          f"multiple of trainer.micro_batch_size x devices x num_nodes = {per_step}: "
                          f"pick a micro_batch_size that divides it")
    steps = s.total_tokens // (global_batch * cfg.seq_len)
    if steps < 1:
        raise ConfigError(f"schedule.total_tokens={s.total_tokens} is less than one batch "
                          f"({global_batch} x seq_len {cfg.seq_len} tokens)")
    return Plan(global_batch=global_batch, micro_batch=t.micro_batch_size, accumulate=global_batch // per_step,
                steps=steps, peak_lr=s.peak_lr * s.lr_scale, warmup_steps=math.ceil(s.warmup_fraction * steps))
