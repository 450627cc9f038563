"""The plan of one run: what the config and the model size imply (horizon, batch, micro-batch, lr, warmup) and the
learning-rate schedule over it. Pure but for the device's free memory, which sizes the micro-batch on a GPU.

A cooldown trunk (train.cooldowns) is planned from its branches: each branch is planned as the independent
schedule=wsd run of its horizon, and the trunk is their shared part, up to the last branch point (where that
branch's decay starts), at constant lr after the warmup.

The plan is where every `auto` of a run is decided, once: the per-size defaults, and the runtime's precision and
compile (train.dtype, train.compile: Plan.runtime), so the trainer and the bench only read them."""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING

from ..config import ConfigError, DataConfig, ModelConfig, RunConfig, ScheduleConfig, TrainConfig
from ..config.schema import is_auto
from . import accounting

if TYPE_CHECKING:
    from .runtime import Runtime

# Muennighoff et al. 2023 ("Scaling Data-Constrained Language Models"): up to ~4 passes, repeated tokens are worth
# nearly as much as fresh ones; far beyond, their value decays, and a law fitted to such runs is not one of N and D.
MAX_EPOCHS = 4.0
CPU_ACTIVATION_BUDGET = 1.5e9  # bytes of activations per micro-batch on CPU
GPU_MEMORY_FRACTION = 0.7  # of what the weights and optimizer leave free
EVALS_PER_RUN = 20  # with train.eval_every=auto, at most: enough points for loss curves and Approach 1's envelope
MIN_EVAL_WINDOWS = 16  # an intermediate eval on fewer held-out windows would be mostly noise
# Porian et al. 2024: AdamW's β2 = 0.95 is too low at small batches (the second-moment average spans too few
# tokens); below this batch (in tokens) train.beta2=auto takes SMALL_BATCH_BETA2.
SMALL_BATCH_TOKENS = 128 * 2048
SMALL_BATCH_BETA2 = 0.99
LARGE_BATCH_BETA2 = 0.95
TRUNK = "train.cooldowns"  # a cooldown trunk's Plan.horizon: it has none of its own and never decays


@dataclass(frozen=True)
class Plan:
    """Everything derived from the config and the model size; written into config.yaml and summary.json."""
    n_params: dict
    flops_per_token: float
    horizon: str
    flops_budget: float | None
    steps: int
    tokens: int
    batch_tokens: int
    micro_batch: int
    accum: int
    lr: float
    lr_rule: dict  # what the lr rule says for this size, and whether it was measured there (config/lr_rule.py)
    beta2: float
    warmup_steps: int
    eval_every: int
    eval_windows: int  # held-out windows (seq_len+1 tokens) per intermediate eval: an evenly spaced subset
    final_windows: int  # held-out windows of the final eval: the whole held-out set unless that alone busts the share
    seq_len: int  # targets per window
    # a cooldown trunk's branches kept by sweep.tokens_per_param_range, by horizon: {horizon, steps, branch_step}
    branches: tuple = ()
    # the runtime this run trains on, its `auto` precision and compile decided (config.yaml's `runtime` block)
    runtime: Runtime | None = field(default=None, compare=False)

    @property
    def eval_flops(self) -> float:
        """What the evals cost: forward passes at a third of a training token's FLOPs each."""
        evals = (self.steps - 1) // self.eval_every
        return (evals * self.eval_windows + self.final_windows) * self.seq_len * self.flops_per_token / 3

    @property
    def flops(self) -> float:
        return self.tokens * self.flops_per_token

    @property
    def warmup_tokens(self) -> int:
        return self.warmup_steps * self.batch_tokens

    def record(self) -> dict:
        """config.yaml's `plan` block (`branches` only for a cooldown trunk)."""
        out = {**asdict(replace(self, runtime=None)), "flops": self.flops, "eval_flops": self.eval_flops,
               "eval_share": self.eval_flops / self.flops, "branches": [dict(b) for b in self.branches]}
        del out["runtime"]  # its own block
        if not self.branches:
            del out["branches"]
        return out

    def defaults(self) -> dict:
        """The per-size defaults this plan filled in, by train.* key (what a resumed run must still agree on)."""
        return {"batch_tokens": self.batch_tokens, "lr": self.lr, "warmup_tokens": self.warmup_tokens,
                "beta2": self.beta2}


def _micro_batch(m: ModelConfig, vocab_size: int, local_sequences: int, total_params: int, runtime) -> int:
    """The largest divisor of this rank's sequences whose activations fit the memory budget."""
    import torch

    per_token_bytes = accounting.activation_bytes_per_token(m.n_layer, m.d_model, m.n_head, m.seq_len, vocab_size,
                                                            flash_attention=runtime.device.type == "cuda")
    if runtime.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(runtime.device)
        budget = GPU_MEMORY_FRACTION * (free - accounting.training_state_bytes(total_params))
    else:
        budget = CPU_ACTIVATION_BUDGET
    return accounting.default_micro_batch(local_sequences, m.seq_len, per_token_bytes, budget)


def eval_plan(steps: int, tokens: int, seq_len: int, val_tokens: int, eval_every, share: float) -> tuple[int, int, int]:
    """(eval_every, windows per intermediate eval, windows of the final eval) such that all evals together cost at
    most `share` of the training FLOPs (an eval token costs a third of a training token): the final eval takes the
    whole held-out set (the same for every run of a sweep) unless that alone would take over half the budget; the
    rest is split over up to EVALS_PER_RUN − 1 intermediate evals of ≥ MIN_EVAL_WINDOWS windows each (fewer evals,
    not smaller ones, when it is short). A set train.eval_every keeps its count and only the subset shrinks."""
    windows = max(1, val_tokens // (seq_len + 1))
    budget = 3 * share * tokens / seq_len  # in windows of seq_len targets
    final = max(1, min(windows, int(budget / 2)))
    left = max(0.0, budget - final)
    if is_auto(eval_every):
        n_mid = min(EVALS_PER_RUN - 1, steps - 1, int(left // min(MIN_EVAL_WINDOWS, final)))
        every = max(1, math.ceil(steps / (n_mid + 1))) if n_mid > 0 else steps
    else:
        every = int(eval_every)
    n_mid = (steps - 1) // every  # the last step's eval is the final one
    mid = min(final, max(1, int(left / n_mid))) if n_mid > 0 else final
    return every, mid, final


def make_plan(m: ModelConfig, t: TrainConfig, vocab_size: int, runtime: Runtime, val_tokens: int,
              schedule: ScheduleConfig | None = None, tokens_per_param_range=None,
              started_dtype: str | None = None) -> Plan:
    """The plan for model `m` trained as `t` says, with this vocabulary and held-out set, on this runtime
    (runtime.select's). The schedule sets the warmup rule (schedule=wsd: the size's, whatever the horizon); a trunk's
    branches outside tokens_per_param_range are left out of it. started_dtype: the precision a resumed run started
    in (its config.yaml), which train.dtype=auto keeps."""
    if t.cooldowns:
        plan = _trunk_plan(m, t, vocab_size, runtime, val_tokens, schedule, tokens_per_param_range)
    else:
        plan = _cell_plan(m, t, vocab_size, runtime, val_tokens, schedule)
    from .runtime import keep_started_dtype, settle  # torch: imported only when a plan is made

    settled = settle(runtime, plan.flops)
    if started_dtype and is_auto(t.dtype):
        settled = keep_started_dtype(settled, started_dtype, logging.getLogger("sweep.train"))
    return replace(plan, runtime=settled)


def _cell_plan(m: ModelConfig, t: TrainConfig, vocab_size: int, runtime: Runtime, val_tokens: int,
               schedule: ScheduleConfig | None) -> Plan:
    """One run's plan (its runtime not yet settled)."""
    from ..config.lr_rule import load as load_rule

    counts = accounting.param_counts(m.n_layer, m.d_model, vocab_size, m.seq_len, m.tie_embeddings)
    per_token = accounting.flops_per_token(m.n_layer, m.d_model, vocab_size, m.seq_len)
    try:
        horizon, source = accounting.horizon_tokens(t.tokens, t.flops, t.tokens_per_param,
                                                    counts["non_embedding"], per_token)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    ranks = runtime.world_size
    batch_tokens = accounting.default_batch_tokens(counts["matmul"], m.seq_len, ranks) if is_auto(t.batch_tokens) \
        else int(t.batch_tokens)
    sequences, rest = divmod(batch_tokens, m.seq_len)
    if rest or sequences % ranks:
        raise ConfigError(f"train.batch_tokens={batch_tokens} must be a multiple of model.seq_len={m.seq_len} × "
                          f"{ranks} process(es); try {math.ceil(max(1, sequences) / ranks) * ranks * m.seq_len}")
    if horizon < batch_tokens / 2:  # rounding up to one step would more than double the compute asked for
        raise ConfigError(f"the horizon ({source}: {horizon:.3g} tokens, {horizon * per_token:.3g} FLOPs) is less "
                          f"than half of one optimizer step ({batch_tokens} tokens, {batch_tokens * per_token:.3g} "
                          f"FLOPs); raise it, or lower train.batch_tokens")
    local_sequences = sequences // ranks
    micro = _micro_batch(m, vocab_size, local_sequences, counts["total"], runtime) if is_auto(t.micro_batch) \
        else int(t.micro_batch)
    if local_sequences % micro:
        raise ConfigError(f"train.batch_tokens={batch_tokens} is not a multiple of train.micro_batch={micro} × "
                          f"model.seq_len={m.seq_len} × {ranks} process(es)")
    steps = accounting.steps_for(horizon, batch_tokens)
    rule = load_rule(t.lr_rule)
    lr = rule.lr(counts["matmul"]) if is_auto(t.lr) else float(t.lr)
    if is_auto(t.beta2):
        beta2 = SMALL_BATCH_BETA2 if batch_tokens < SMALL_BATCH_TOKENS else LARGE_BATCH_BETA2
    else:
        beta2 = float(t.beta2)
    if not is_auto(t.warmup_tokens):
        warmup = float(t.warmup_tokens)
    elif schedule is not None and schedule.name == "wsd":  # never shortened by the horizon: branches share it
        warmup = accounting.size_warmup_tokens(counts["matmul"], batch_tokens)
    else:
        warmup = accounting.default_warmup_tokens(counts["matmul"], horizon, batch_tokens)
    eval_every, eval_windows, final_windows = eval_plan(steps, steps * batch_tokens, m.seq_len, val_tokens,
                                                        t.eval_every, t.eval_share)
    return Plan(n_params=counts, flops_per_token=per_token, horizon=source,
                flops_budget=float(t.flops) if t.flops is not None else None, steps=steps,
                tokens=steps * batch_tokens, batch_tokens=batch_tokens, micro_batch=micro,
                accum=local_sequences // micro, lr=lr, lr_rule=rule.record(counts["matmul"]), beta2=beta2,
                warmup_steps=min(steps, round(warmup / batch_tokens)), eval_every=eval_every,
                eval_windows=eval_windows, final_windows=final_windows, seq_len=m.seq_len)


def branch_train(t: TrainConfig, horizon: float) -> TrainConfig:
    """The train config of a trunk's branch of this horizon (in train.cooldowns_in's unit): an independent run's."""
    horizons = {**dict.fromkeys(("tokens", "flops", "tokens_per_param")), t.cooldowns_in: horizon}
    return replace(t, cooldowns=[], **horizons)


def _trunk_plan(m: ModelConfig, t: TrainConfig, vocab_size: int, runtime, val_tokens: int, schedule: ScheduleConfig,
                tokens_per_param_range) -> Plan:
    """The trunk's plan: its last kept branch's, cut at that branch's point. No branch kept: the longest branch's,
    with no branches (outside_range then says why the grid skips it)."""
    plans = {h: _cell_plan(m, branch_train(t, h), vocab_size, runtime, val_tokens, schedule) for h in t.cooldowns}
    kept = {h: p for h, p in plans.items() if outside_range(p, tokens_per_param_range) is None}
    for h, p in kept.items():
        try:
            check_stable(p, schedule)
        except ConfigError as err:
            raise ConfigError(f"train.cooldowns: the branch at {h:g} {t.cooldowns_in}: {err}; or drop it from "
                              f"train.cooldowns") from None
    branches = tuple({"horizon": h, "steps": p.steps, "branch_step": decay_start(p, schedule)} for h, p in kept.items())
    base = max(kept.values() or plans.values(), key=lambda p: decay_start(p, schedule))
    steps = decay_start(base, schedule)
    every, windows, final = eval_plan(steps, steps * base.batch_tokens, m.seq_len, val_tokens, t.eval_every,
                                      t.eval_share)
    return replace(base, horizon=TRUNK, flops_budget=None, steps=steps, tokens=steps * base.batch_tokens,
                   warmup_steps=min(steps, base.warmup_steps), eval_every=every, eval_windows=windows,
                   final_windows=final, branches=branches)


def decay_start(plan: Plan, schedule: ScheduleConfig) -> int:
    """schedule=wsd: the step at which the decay starts (a branch's point on its trunk)."""
    return plan.steps - max(1, round(schedule.decay_fraction * plan.steps))


def check_stable(plan: Plan, schedule: ScheduleConfig) -> None:
    """schedule=wsd: the warmup does not shrink with the horizon, so a short horizon could leave no stable phase;
    refuse one whose stable phase is shorter than its warmup (ConfigError naming the fixes)."""
    if schedule.name != "wsd" or plan.horizon == TRUNK:
        return
    stable = decay_start(plan, schedule) - plan.warmup_steps
    if stable >= plan.warmup_steps:
        return
    fixes = "lower schedule.decay_fraction"
    if schedule.decay_fraction < 1:
        need = math.ceil(2 * plan.warmup_steps / (1 - schedule.decay_fraction))
        while need - max(1, round(schedule.decay_fraction * need)) < 2 * plan.warmup_steps:
            need += 1
        fixes = f"raise the horizon to ≥ {need * plan.batch_tokens} tokens ({need} steps)"
    raise ConfigError(f"schedule=wsd: the horizon ({plan.tokens:.4g} tokens, {plan.steps} steps) leaves a stable "
                      f"phase of {stable} steps, shorter than the warmup's {plan.warmup_steps} (under wsd the warmup "
                      f"is the size's, not a share of the horizon); {fixes}, lower train.warmup_tokens, or use "
                      f"schedule=cosine")


def lr_origin(t: TrainConfig, plan: Plan) -> str:
    """Where the plan's lr came from, for the run's log."""
    rule = plan.lr_rule
    if not is_auto(t.lr):
        return f"train.lr; the rule {rule['name']} says {rule['rule_lr']:.3g}"
    return f"rule {rule['name']}, " + ("tuned" if rule["in_range"] else "untuned for this size")


def untuned_lr(t: TrainConfig, plan: Plan) -> str | None:
    """A warning when the lr comes from a rule never measured at this size, else None."""
    rule = plan.lr_rule
    if not is_auto(t.lr) or rule["in_range"]:
        return None
    where = "never measured" if not rule["tuned"] else (f"measured over {rule['min_params']:.3g}-"
                                                        f"{rule['max_params']:.3g} matmul parameters, not this "
                                                        f"size's {plan.n_params['matmul']:.3g}")
    return (f"lr {plan.lr:.3g} comes from the lr rule {rule['name']}, which was {where}; tune it with a sweep=lr "
            f"sweep (README, \"Learning rate\")")


def model_vocab(m: ModelConfig, tokenizer_vocab: int) -> int:
    """The model's vocabulary: model.vocab_size, or the tokenizer's when auto."""
    return tokenizer_vocab if is_auto(m.vocab_size) else int(m.vocab_size)


def check_plan(run: RunConfig) -> Plan:
    """Everything checkable before any data or model work (horizon, batch arithmetic, device), for a fast, clean
    rejection; the tokenizer's real vocabulary can only be smaller than data.vocab_size, which changes nothing here."""
    from .runtime import select

    span = run.sweep.tokens_per_param_range
    plan = make_plan(run.model, run.train, model_vocab(run.model, run.data.vocab_size),
                     select(run.device, run.train), run.data.val_tokens, run.schedule, span)
    if outside_range(plan, span) is None:  # a cell a grid skips is not refused for what it would not do
        check_stable(plan, run.schedule)
    return plan


def lr_at(step: int, plan: Plan, schedule: ScheduleConfig) -> float:
    """lr for optimizer step `step` (0-based): linear warmup, then cosine / WSD (linear or 1-sqrt decay) / constant;
    a cooldown trunk stays at the peak (its branches decay)."""
    if step < plan.warmup_steps:
        return plan.lr * (step + 1) / plan.warmup_steps
    if schedule.name == "constant" or plan.horizon == TRUNK:
        return plan.lr
    floor = plan.lr * schedule.min_lr_ratio
    if schedule.name == "wsd":
        start = decay_start(plan, schedule)
        if step < start:
            return plan.lr
        if schedule.decay_shape == "1-sqrt":  # Hägele et al. 2024: lr = peak - (peak - floor)·sqrt(progress)
            return plan.lr + (floor - plan.lr) * math.sqrt((step + 1 - start) / (plan.steps - start))
        return plan.lr + (floor - plan.lr) * (step + 1 - start) / (plan.steps - start)
    progress = (step + 1 - plan.warmup_steps) / max(1, plan.steps - plan.warmup_steps)
    return floor + 0.5 * (plan.lr - floor) * (1 + math.cos(math.pi * min(1.0, progress)))


def outside_range(plan: Plan, tokens_per_param_range) -> str | None:
    """Why a grid skips this cell (its tokens per non-embedding parameter outside sweep.tokens_per_param_range), or
    None when it trains."""
    if tokens_per_param_range is None:
        return None
    lo, hi = tokens_per_param_range
    if plan.horizon == TRUNK:
        return None if plan.branches else (f"every cooldown branch is outside sweep.tokens_per_param_range "
                                           f"[{lo:g}, {hi:g}]")
    tpp = plan.tokens / plan.n_params["non_embedding"]
    if lo <= tpp <= hi:
        return None
    return f"{tpp:.3g} tokens/param, outside sweep.tokens_per_param_range [{lo:g}, {hi:g}]"


def check_repetition(plan: Plan, data: DataConfig, train_tokens: int, run_name: str) -> float:
    """Passes over the corpus's unique train tokens this plan makes; above MAX_EPOCHS a ConfigError naming the corpus,
    its size and the fixes, unless data.allow_repeat."""
    epochs = plan.tokens / train_tokens
    if epochs > MAX_EPOCHS and not data.allow_repeat:
        capped = f" (capped by data.max_tokens={data.max_tokens})" if data.max_tokens else ""
        raise ConfigError(f"{run_name}: {plan.tokens:.3g} training tokens are {epochs:.1f} passes over "
                          f"data={data.name}'s {train_tokens:,} unique train tokens{capped}; past {MAX_EPOCHS:g} "
                          f"repeated tokens are worth less than fresh ones (Muennighoff et al. 2023). Use a larger "
                          f"corpus (e.g. data=fineweb-edu, or data=local data.path=...), a shorter horizon, or "
                          f"data.allow_repeat=true")
    return epochs
