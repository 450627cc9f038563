"""Typed config schemas and validation.

Hydra composes YAML from configs/; `load` merges it onto these dataclasses once, at the entry point, so a
typo'd key or a wrong type fails before any heavy work. Each stage then receives only its own slice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """An input a user can fix: the message names the key and the fix."""


@dataclass
class ModelConfig:
    name: str = "custom"
    n_layer: int = 4
    d_model: int = 128
    n_head: int = 4
    seq_len: int = 256
    vocab_size: Optional[int] = None  # None: the tokenizer's
    tie_embeddings: bool = False


@dataclass
class DataConfig:
    name: str = "pystdlib"
    source: str = "pystdlib"  # pystdlib | local | hub
    path: Optional[str] = None  # local: a file or a directory of .txt/.jsonl/.json/.parquet
    hub_path: Optional[str] = None  # hub: a datasets repo id
    hub_name: Optional[str] = None  # hub: a datasets config name
    hub_split: str = "train"
    text_field: str = "text"
    vocab_size: int = 4096
    max_tokens: Optional[int] = None  # cap on training tokens taken from the corpus
    val_tokens: int = 262_144  # held-out tokens, the same for every run of a sweep
    tokenizer_train_bytes: int = 64_000_000  # text the BPE is trained on (a prefix of the stream)
    cache_dir: str = "cache"


@dataclass
class ScheduleConfig:
    name: str = "cosine"  # cosine | wsd | constant
    min_lr_ratio: float = 0.1
    decay_fraction: float = 0.2  # wsd: share of the horizon spent decaying


@dataclass
class TrainConfig:
    # Horizon: exactly one is needed (two that agree are accepted); none means tokens_per_param=20.
    tokens: Optional[float] = None
    flops: Optional[float] = None
    tokens_per_param: Optional[float] = None
    batch_tokens: Optional[int] = None  # tokens per optimizer step; None: per-size rule
    micro_batch: Optional[int] = None  # sequences per forward pass; None: as large as batch and memory allow
    lr: Optional[float] = None  # None: per-size rule
    warmup_tokens: Optional[float] = None  # None: per-size rule
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    eval_every: Optional[int] = None  # optimizer steps; None: about 20 evals per run; the last step always evaluates
    checkpoint_every: int = 100  # optimizer steps
    log_every: int = 10  # optimizer steps between train events in metrics.jsonl
    dtype: str = "auto"  # auto | float32 | bfloat16 (autocast)
    compile: str = "auto"  # auto | true | false
    nonfinite: str = "stop"  # stop | skip
    max_skipped_steps: int = 10  # with nonfinite=skip
    threads: Optional[int] = None  # torch intra-op threads; None: cores / parallel jobs


@dataclass
class LoggerConfig:
    name: str = "none"  # none | wandb
    mode: str = "offline"  # offline | online | disabled
    project: str = "sweep"
    entity: Optional[str] = None


@dataclass
class SweepConfig:
    name: str = "single"
    grid: list = field(default_factory=list)  # the keys a multirun sweeps (set by `sweep train -m`)


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    seed: int = 0
    out_dir: str = "runs"
    device: str = "auto"  # auto | cpu | cuda
    run_name: str = "run"


def load(cfg: DictConfig) -> RunConfig:
    """Hydra's composed config → a validated RunConfig (hydra's own node is dropped)."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra", None)  # hydra's node needs runtime values; `${hydra:...}` resolvers still work without it
    try:
        merged = OmegaConf.merge(OmegaConf.structured(RunConfig), plain)
        OmegaConf.resolve(merged)
    except Exception as err:  # omegaconf's errors name the key; keep that, drop the traceback
        raise ConfigError(f"invalid config: {err}") from None
    run = OmegaConf.to_object(merged)
    validate(run)
    return run


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")


def validate(run: RunConfig) -> None:
    """Checks that need no data and no hardware; raises ConfigError naming the key and the fix."""
    m, t = run.model, run.train
    for key, value in (("model.n_layer", m.n_layer), ("model.d_model", m.d_model), ("model.n_head", m.n_head),
                       ("model.seq_len", m.seq_len), ("data.vocab_size", run.data.vocab_size),
                       ("data.val_tokens", run.data.val_tokens), ("train.checkpoint_every", t.checkpoint_every), ("train.log_every", t.log_every)):
        if value is None or value <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {value}")
    if m.d_model % m.n_head:
        raise ConfigError(f"model.d_model={m.d_model} is not divisible by model.n_head={m.n_head}; "
                          f"pick n_head among {[h for h in range(1, m.d_model + 1) if m.d_model % h == 0]}")
    if m.vocab_size is not None and m.vocab_size < run.data.vocab_size:
        raise ConfigError(f"model.vocab_size={m.vocab_size} is smaller than the tokenizer's "
                          f"data.vocab_size={run.data.vocab_size}; drop model.vocab_size or raise it")
    for key in ("tokens", "flops", "tokens_per_param", "batch_tokens", "micro_batch", "lr", "warmup_tokens",
                "eval_every"):
        value = getattr(t, key)
        if value is not None and (not math.isfinite(value) or value <= 0 and key != "warmup_tokens"
                                  or value < 0):
            raise ConfigError(f"train.{key} must be positive, got {value}")
    _choice("device", run.device, ("auto", "cpu", "cuda"))
    _choice("train.dtype", t.dtype, ("auto", "float32", "bfloat16"))
    _choice("train.compile", str(t.compile).lower(), ("auto", "true", "false"))
    _choice("train.nonfinite", t.nonfinite, ("stop", "skip"))
    _choice("schedule.name", run.schedule.name, ("cosine", "wsd", "constant"))
    _choice("logger.name", run.logger.name, ("none", "wandb"))
    _choice("logger.mode", run.logger.mode, ("offline", "online", "disabled"))
    _choice("data.source", run.data.source, ("pystdlib", "local", "hub"))
    if run.data.source == "local" and not run.data.path:
        raise ConfigError("data=local needs data.path=FILE_OR_DIR (.txt, .jsonl/.json or .parquet)")
    if run.data.source == "local" and not Path(run.data.path).expanduser().exists():
        raise ConfigError(f"data.path={run.data.path} does not exist; point it at a file or a directory of "
                          f".txt, .jsonl/.json or .parquet files")
    if run.data.source == "hub" and not run.data.hub_path:
        raise ConfigError(f"data={run.data.name} needs data.hub_path (a datasets repo id)")
    if not 0 <= run.schedule.min_lr_ratio <= 1:
        raise ConfigError(f"schedule.min_lr_ratio must be in [0, 1], got {run.schedule.min_lr_ratio}")
