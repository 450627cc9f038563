"""The plan of one run: what the config and the model size imply (horizon, batch, micro-batch, lr, warmup) and the
learning-rate schedule over it. Pure but for the device's free memory, which sizes the micro-batch on a GPU."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..config import ConfigError, DataConfig, ModelConfig, RunConfig, ScheduleConfig, TrainConfig
from ..config.schema import is_auto
from . import accounting

# Muennighoff et al. 2023 ("Scaling Data-Constrained Language Models"): up to ~4 passes, repeated tokens are worth
# nearly as much as fresh ones; far beyond, their value decays, and a law fitted to such runs is not one of N and D.
MAX_EPOCHS = 4.0
CPU_ACTIVATION_BUDGET = 1.5e9  # bytes of activations per micro-batch on CPU
GPU_MEMORY_FRACTION = 0.7  # of what the weights and optimizer leave free
EVALS_PER_RUN = 20  # with train.eval_every=auto: enough points for loss curves and Approach 1's envelope


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
    warmup_steps: int
    eval_every: int

    @property
    def flops(self) -> float:
        return self.tokens * self.flops_per_token

    @property
    def warmup_tokens(self) -> int:
        return self.warmup_steps * self.batch_tokens

    def record(self) -> dict:
        """config.yaml's `plan` block."""
        return {**asdict(self), "flops": self.flops}

    def defaults(self) -> dict:
        """The per-size defaults this plan filled in, by train.* key (what a resumed run must still agree on)."""
        return {"batch_tokens": self.batch_tokens, "lr": self.lr, "warmup_tokens": self.warmup_tokens}


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


def make_plan(m: ModelConfig, t: TrainConfig, vocab_size: int, runtime) -> Plan:
    """The plan for model `m` trained as `t` says, with this vocabulary, on this runtime (device, ranks)."""
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
    lr = accounting.default_lr(counts["matmul"]) if is_auto(t.lr) else float(t.lr)
    warmup = accounting.default_warmup_tokens(counts["matmul"], horizon) if is_auto(t.warmup_tokens) \
        else float(t.warmup_tokens)
    eval_every = max(1, steps // EVALS_PER_RUN) if is_auto(t.eval_every) else int(t.eval_every)
    return Plan(n_params=counts, flops_per_token=per_token, horizon=source,
                flops_budget=float(t.flops) if t.flops is not None else None, steps=steps,
                tokens=steps * batch_tokens, batch_tokens=batch_tokens, micro_batch=micro,
                accum=local_sequences // micro, lr=lr, warmup_steps=min(steps, round(warmup / batch_tokens)),
                eval_every=eval_every)


def model_vocab(m: ModelConfig, tokenizer_vocab: int) -> int:
    """The model's vocabulary: model.vocab_size, or the tokenizer's when auto."""
    return tokenizer_vocab if is_auto(m.vocab_size) else int(m.vocab_size)


def check_plan(run: RunConfig) -> Plan:
    """Everything checkable before any data or model work (horizon, batch arithmetic, device), for a fast, clean
    rejection; the tokenizer's real vocabulary can only be smaller than data.vocab_size, which changes nothing here."""
    from .runtime import select

    return make_plan(run.model, run.train, model_vocab(run.model, run.data.vocab_size), select(run.device, run.train))


def lr_at(step: int, plan: Plan, schedule: ScheduleConfig) -> float:
    """lr for optimizer step `step` (0-based): linear warmup, then cosine / WSD / constant."""
    if step < plan.warmup_steps:
        return plan.lr * (step + 1) / plan.warmup_steps
    if schedule.name == "constant":
        return plan.lr
    floor = plan.lr * schedule.min_lr_ratio
    if schedule.name == "wsd":
        decay_steps = max(1, round(schedule.decay_fraction * plan.steps))
        decay_start = plan.steps - decay_steps
        if step < decay_start:
            return plan.lr
        return plan.lr + (floor - plan.lr) * (step + 1 - decay_start) / decay_steps
    progress = (step + 1 - plan.warmup_steps) / max(1, plan.steps - plan.warmup_steps)
    return floor + 0.5 * (plan.lr - floor) * (1 + math.cos(math.pi * min(1.0, progress)))


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
