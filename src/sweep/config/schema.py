"""Typed config schemas and validation.

Hydra composes YAML from configs/; `load` merges it onto these dataclasses once, at the entry point, so a
typo'd key or a wrong type fails before any heavy work. Each stage then receives only its own slice.

`auto` is the one spelling of "derive it" (from the tokenizer, a per-size rule, the machine): every field that can
be derived takes the string "auto" (null is read as auto too). Code asks `is_auto(value)`. A field set to a value
that has no effect under the other settings (schedule.decay_fraction under cosine) is named by `no_effect`, which the
launcher reports once before training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf


AUTO = "auto"


class ConfigError(ValueError):
    """An input a user can fix: the message names the key and the fix."""


def is_auto(value) -> bool:
    return value is None or value == AUTO


@dataclass
class ModelConfig:
    name: str = "custom"
    n_layer: int = 4
    d_model: int = 128
    n_head: int = 4
    seq_len: int = 256
    vocab_size: Any = AUTO  # auto: the tokenizer's
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
    seed: Any = AUTO  # the order of the training windows (and of the task rows); auto: `seed`
    val_tokens: int = 262_144  # held-out tokens, the same for every run of a sweep
    tokenizer_train_bytes: int = 64_000_000  # text the BPE is trained on (a prefix of the stream)
    cache_dir: str = "cache"
    allow_repeat: bool = False  # train past MAX_EPOCHS passes over the corpus (train/plan.py) anyway


@dataclass
class ScheduleConfig:
    name: str = "cosine"  # cosine | wsd | constant
    min_lr_ratio: Optional[float] = 0.1  # cosine, wsd: the final lr as a fraction of the peak
    decay_fraction: Optional[float] = None  # wsd: share of the horizon spent decaying
    # wsd: linear | 1-sqrt (Hägele et al. 2024); the other schedules' yaml set it null. Its default is what a wsd run
    # directory older than this key did.
    decay_shape: Optional[str] = "linear"


# Which schedule reads which field (the others must stay unset).
SCHEDULE_FIELDS = {"cosine": ("min_lr_ratio",), "wsd": ("min_lr_ratio", "decay_fraction", "decay_shape"),
                   "constant": ()}
DECAY_SHAPES = ("linear", "1-sqrt")
COOLDOWN_UNITS = ("tokens", "tokens_per_param", "flops")  # train.cooldowns_in: the train.* key a branch's horizon sets


@dataclass
class TrainConfig:
    # Horizon: exactly one is needed (two that agree are accepted); none means tokens_per_param=20.
    tokens: Optional[float] = None
    flops: Optional[float] = None
    tokens_per_param: Optional[float] = None
    batch_tokens: Any = AUTO  # tokens per optimizer step; auto: per-size rule
    micro_batch: Any = AUTO  # sequences per forward pass; auto: as large as batch and memory allow
    lr: Any = AUTO  # auto: the lr rule's value for this size
    lr_rule: str = AUTO  # auto: the packaged rule (configs/lr_rule/); a packaged rule's name, or an lr_rule.json path
    warmup_tokens: Any = AUTO  # auto: per-size rule
    seed: Any = AUTO  # the weights' initialisation; auto: `seed` (data.seed orders the data)
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: Any = AUTO  # auto: 0.99 below 128×2048-token batches, else 0.95 (Porian et al. 2024)
    grad_clip: float = 1.0
    eval_every: Any = AUTO  # optimizer steps; auto: up to 20 evals within eval_share; the last step always evaluates
    eval_share: float = 0.1  # at most this share of the training FLOPs goes to evaluation (train/plan.py eval_plan)
    checkpoint_every: int = 100  # optimizer steps
    log_every: int = 10  # optimizer steps between train events in metrics.jsonl
    dtype: str = AUTO  # auto | float32 | bfloat16 (autocast)
    compile: str = AUTO  # auto | true | false
    nonfinite: str = "stop"  # stop | skip
    max_skipped_steps: int = 10  # with nonfinite=skip
    threads: Any = AUTO  # torch intra-op threads; auto: usable cores / cells in parallel / ranks
    # WSD cooldown branches (train/branches.py): a warmup-stable trunk, and one branch per horizon that decays from it.
    cooldowns: list = field(default_factory=list)  # the branches' horizons, in cooldowns_in's unit; []: none
    cooldowns_in: str = "tokens"  # tokens | tokens_per_param | flops


@dataclass
class LauncherConfig:
    """How a grid's cells are spread over processes (whatever Hydra launcher runs them)."""
    # Same-shape cells trained together in one process (train/pack.py): a number (1: each cell alone), or auto:
    # 1 on a CPU (packing measured slower there than cells side by side; README, "Many small models at once"),
    # on a GPU the most cells up to MAX_AUTO_PACK whose memory fits.
    pack: Any = AUTO


MAX_AUTO_PACK = 16


@dataclass
class LoggerConfig:
    name: str = "none"  # none | wandb
    mode: str = "offline"  # offline | online | disabled
    project: str = "sweep"
    entity: Optional[str] = None
    group: str = AUTO  # auto: one per study, <sweep>-<data>-<id of the sweep directory> (naming.study_group)
    tags: list = field(default_factory=list)  # added to each run's own: model, horizon, preset
    system_metrics: bool = True  # wandb's CPU/GPU/memory charts


@dataclass
class SweepConfig:
    name: str = "single"
    grid: list = field(default_factory=list)  # the keys a multirun sweeps (set by `sweep train -m`)
    # [min, max] tokens per non-embedding parameter a cell of a grid may have; cells outside are skipped, so an
    # isoFLOP grid trains, per budget, the sizes around its optimum (as Chinchilla did). null: every cell.
    tokens_per_param_range: Optional[list] = None
    # Replicates: a grid trains each cell once per seed in this list (the `seed` key swept; README, "Seeds").
    # []: the one `seed`. The analysis fits each cell's mean over its seeds and resamples cells with their seeds.
    seeds: list = field(default_factory=list)


@dataclass
class TasksConfig:
    """The task suite (sweep/tasks): mixed into training, scored at every eval."""
    mix: float = 0.0  # share of training sequences replaced by packed task examples (0: natural text only)
    eval: Any = AUTO  # score the suite at every eval and write tasks.json; auto: when mix > 0
    seed: int = 0  # the suite's seed: the same items for every run of a sweep
    eval_share: float = 0.2  # of each pool's canonical forms, held out for eval (tasks/suite.py: twins share one)
    # the trainable families' shares of the task rows (0: not trained; their eval items are still scored)
    weights: dict[str, float] = field(default_factory=lambda: {
        "add": 1.0, "add_cot": 1.0, "muladd": 1.0, "muladd_cot": 1.0, "icl": 1.0, "copy": 1.0, "fact": 1.0})
    items: int = 500  # eval items per task variant in the final scoring
    items_during: int = 100  # eval items per task variant at intermediate evals (the first of the final set)
    icl_windows: int = 256  # held-out windows (spread over the set) for the per-position loss and the ICL score


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    seed: int = 0
    out_dir: str = "runs"
    device: str = AUTO  # auto | cpu | cuda
    run_name: str = "run"

    @property
    def cache_root(self) -> Path:
        return cache_root(self.out_dir, self.data)

    @property
    def init_seed(self) -> int:
        """The seed of the weights' initialisation: train.seed, else `seed`."""
        return self.seed if is_auto(self.train.seed) else self.train.seed

    @property
    def order_seed(self) -> int:
        """The seed of the training windows' order (and the task rows'): data.seed, else `seed`."""
        return self.seed if is_auto(self.data.seed) else self.data.seed


def cache_root(out_dir, data: DataConfig) -> Path:
    """Where a sweep's prepared corpora, tokenizers and task files live: <out_dir>/<data.cache_dir> (an absolute
    data.cache_dir stands alone), shared by every sweep under out_dir."""
    return Path(out_dir) / data.cache_dir


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
    validate(run)  # also turns a null auto field into AUTO: one spelling from here on
    return run


# Fields that take `auto`, with the kind of value they take otherwise.
AUTO_FIELDS = {("model", "vocab_size"): int, ("train", "batch_tokens"): int, ("train", "micro_batch"): int,
               ("train", "lr"): float, ("train", "warmup_tokens"): float, ("train", "eval_every"): int,
               ("train", "threads"): int, ("train", "beta2"): float}


def _auto_or_number(key: str, value, kind: type, strict: bool = True):
    """The value of an auto field as a number of `kind` (ints must be whole), or AUTO; ConfigError otherwise."""
    if is_auto(value):
        return AUTO
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (kind is int and value != int(value)):
        raise ConfigError(f"{key}={value!r} is not {'a whole number' if kind is int else 'a number'} or auto")
    if value < 0 or (strict and value == 0):
        raise ConfigError(f"{key} must be {'positive' if strict else 'non-negative'} or auto, got {value}")
    return kind(value)


def no_effect(run: "RunConfig") -> list[str]:
    """Settings given a value that the rest of the config ignores: a message for each."""
    out = [f"schedule.{f.name}={getattr(run.schedule, f.name)} has no effect with schedule={run.schedule.name}"
           for f in fields(ScheduleConfig) if f.name != "name" and getattr(run.schedule, f.name) is not None
           and f.name not in SCHEDULE_FIELDS.get(run.schedule.name, ())]
    if run.train.nonfinite == "stop" and run.train.max_skipped_steps != TrainConfig.max_skipped_steps:
        out.append(f"train.max_skipped_steps={run.train.max_skipped_steps} has no effect with "
                   f"train.nonfinite=stop (it bounds train.nonfinite=skip)")
    return out


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")


def tasks_enabled(tasks: TasksConfig) -> bool:
    """Whether runs score the task suite (tasks.eval, or auto: when tasks are mixed into training)."""
    return tasks.mix > 0 if is_auto(tasks.eval) else bool(tasks.eval)


def _validate_tasks(tasks: TasksConfig) -> None:
    if isinstance(tasks.mix, bool) or not isinstance(tasks.mix, (int, float)) or not 0 <= tasks.mix < 1:
        raise ConfigError(f"tasks.mix={tasks.mix!r} must be a fraction in [0, 1) (the share of training sequences "
                          f"replaced by task examples)")
    if is_auto(tasks.eval):
        tasks.eval = AUTO
    elif not isinstance(tasks.eval, bool):
        raise ConfigError(f"tasks.eval={tasks.eval!r} must be true, false or auto (auto: when tasks.mix > 0)")
    for key in ("items", "items_during", "icl_windows"):
        if not isinstance(getattr(tasks, key), int) or getattr(tasks, key) <= 0:
            raise ConfigError(f"tasks.{key} must be a positive integer, got {getattr(tasks, key)!r}")
    if tasks.items_during > tasks.items:
        raise ConfigError(f"tasks.items_during={tasks.items_during} exceeds tasks.items={tasks.items} (intermediate "
                          f"evals score the first items of the final set)")


def validate(run: RunConfig) -> None:
    """Checks that need no data and no hardware; raises ConfigError naming the key and the fix."""
    m, t = run.model, run.train
    for key, value in (("model.n_layer", m.n_layer), ("model.d_model", m.d_model), ("model.n_head", m.n_head),
                       ("model.seq_len", m.seq_len), ("data.vocab_size", run.data.vocab_size),
                       ("data.val_tokens", run.data.val_tokens), ("train.checkpoint_every", t.checkpoint_every),
                       ("train.log_every", t.log_every)):
        if value is None or value <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {value}")
    for (section, key), kind in AUTO_FIELDS.items():
        value = getattr(getattr(run, section), key)
        setattr(getattr(run, section), key, _auto_or_number(f"{section}.{key}", value, kind,
                                                            strict=key != "warmup_tokens"))
    if m.seq_len + 1 > run.data.val_tokens:
        raise ConfigError(f"model.seq_len={m.seq_len} needs data.val_tokens ≥ {m.seq_len + 1} (one validation window "
                          f"of seq_len + 1 tokens), got {run.data.val_tokens}; raise data.val_tokens or lower "
                          f"model.seq_len")
    if m.d_model % m.n_head:
        raise ConfigError(f"model.d_model={m.d_model} is not divisible by model.n_head={m.n_head}; "
                          f"pick n_head among {[h for h in range(1, m.d_model + 1) if m.d_model % h == 0]}")
    if not is_auto(m.vocab_size) and m.vocab_size < run.data.vocab_size:
        raise ConfigError(f"model.vocab_size={m.vocab_size} is smaller than the tokenizer's "
                          f"data.vocab_size={run.data.vocab_size}; set model.vocab_size=auto or raise it")
    for key in ("tokens", "flops", "tokens_per_param"):
        value = getattr(t, key)
        if value is not None and (not math.isfinite(value) or value <= 0):
            raise ConfigError(f"train.{key} must be positive, got {value}")
    if not is_auto(t.beta2) and not 0 < t.beta2 < 1:
        raise ConfigError(f"train.beta2 must lie in (0, 1) or be auto, got {t.beta2}")
    if not 0 < t.eval_share <= 1:
        raise ConfigError(f"train.eval_share must lie in (0, 1] (the share of training FLOPs evaluation may take), "
                          f"got {t.eval_share}")
    if is_auto(t.lr_rule):  # null too: one spelling of auto
        t.lr_rule = AUTO
    span = run.sweep.tokens_per_param_range
    if span is not None and (len(span) != 2 or not all(isinstance(v, (int, float)) and v > 0 for v in span)
                             or span[0] >= span[1]):
        raise ConfigError(f"sweep.tokens_per_param_range={list(span)} must be [min, max] with 0 < min < max "
                          f"(tokens per non-embedding parameter), or null")
    _validate_seeds(run)
    pack = run.launcher.pack
    if is_auto(pack):
        run.launcher.pack = AUTO
    elif isinstance(pack, bool) or not isinstance(pack, int) or pack < 1:
        raise ConfigError(f"launcher.pack={pack!r} must be a positive integer (1: each cell alone) or auto")
    _validate_tasks(run.tasks)
    _choice("device", run.device, ("auto", "cpu", "cuda"))
    _choice("train.dtype", t.dtype, ("auto", "float32", "bfloat16"))
    _choice("train.compile", str(t.compile).lower(), ("auto", "true", "false"))
    _choice("train.nonfinite", t.nonfinite, ("stop", "skip"))
    _choice("schedule.name", run.schedule.name, ("cosine", "wsd", "constant"))
    _choice("logger.name", run.logger.name, ("none", "wandb"))
    _choice("logger.mode", run.logger.mode, ("offline", "online", "disabled"))
    _choice("data.source", run.data.source, ("pystdlib", "local", "hub"))
    # The data settings that need the data stage (vocabulary, token cap, where the corpus is) are checked once, by
    # sweep.data.check, before launching.
    sched = run.schedule
    for key in SCHEDULE_FIELDS.get(sched.name, ()):
        value = getattr(sched, key)
        if key == "decay_shape":
            _choice("schedule.decay_shape", value, DECAY_SHAPES)
        elif value is None:
            raise ConfigError(f"schedule={sched.name} needs schedule.{key} (a fraction in [0, 1])")
        elif not 0 <= value <= 1:
            raise ConfigError(f"schedule.{key} must be in [0, 1], got {value}")
    _validate_cooldowns(run)


def _is_seed(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _validate_seeds(run: RunConfig) -> None:
    """seed, train.seed and data.seed: non-negative integers (the last two or auto); sweep.seeds: distinct ones."""
    if not _is_seed(run.seed):
        raise ConfigError(f"seed={run.seed!r} must be a non-negative integer")
    for key, cfg in (("train.seed", run.train), ("data.seed", run.data)):
        if is_auto(cfg.seed):
            cfg.seed = AUTO
        elif not _is_seed(cfg.seed):
            raise ConfigError(f"{key}={cfg.seed!r} must be a non-negative integer, or auto (auto: `seed`)")
    check_seed_list(list(run.sweep.seeds))


def check_seed_list(seeds: list) -> None:
    """sweep.seeds: distinct non-negative integers."""
    if not all(_is_seed(s) for s in seeds):
        raise ConfigError(f"sweep.seeds={seeds} must be a list of non-negative integers, e.g. sweep.seeds=[0,1,2]")
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ConfigError(f"sweep.seeds={seeds} lists seed {', '.join(map(str, twice))} more than once: a replicate "
                          f"is a cell of its own seed; list each seed once")


def _validate_cooldowns(run: RunConfig) -> None:
    """train.cooldowns: positive, distinct horizons of branches from a schedule=wsd trunk that sets no horizon."""
    t = run.train
    _choice("train.cooldowns_in", t.cooldowns_in, COOLDOWN_UNITS)
    if not t.cooldowns:
        return
    values = list(t.cooldowns)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
               for v in values):
        raise ConfigError(f"train.cooldowns={values} must be a list of positive numbers (the branches' horizons in "
                          f"train.cooldowns_in={t.cooldowns_in}), e.g. train.cooldowns=[1e11,1e12]")
    if len(set(values)) < len(values):
        raise ConfigError(f"train.cooldowns={values} names a horizon twice; list each branch once")
    if run.schedule.name != "wsd":
        raise ConfigError(f"train.cooldowns needs schedule=wsd (a warmup-stable trunk whose branches decay), not "
                          f"schedule={run.schedule.name}; add schedule=wsd")
    set_horizons = [k for k in ("tokens", "flops", "tokens_per_param") if getattr(t, k) is not None]
    if set_horizons:
        raise ConfigError(f"train.cooldowns sets the horizons (one per branch), so train.{set_horizons[0]} must stay "
                          f"null; drop it, or set train.cooldowns=[] for a single run")
    t.cooldowns = sorted(float(v) for v in values)
