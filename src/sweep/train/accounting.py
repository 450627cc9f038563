"""Pure bookkeeping: parameters by convention, FLOPs per token, horizons and per-size defaults.

Conventions (README, "Conventions"): `non_embedding` is everything but the token and position embeddings and the
output head (Kaplan); `matmul` is the weights that take part in matmuls, output head included (Porian et al.).
FLOPs per token are
6·N_matmul + 6·n_layer·seq_len·d_model, the second term being the attention scores (Kaplan's C ≈ 6N + 6·L·T·d).
"""

from __future__ import annotations

import math

# Porian et al. 2024 (as used by OLMo's ladder): tuned at N = 108M with 160 sequences of 2048 tokens.
_REF_PARAMS = 108e6
_REF_BATCH_TOKENS = 160 * 2048
# Clamp for tiny models, where the power law was never measured. (The lr is the lr rule's: config/lr_rule.py.)
MIN_BATCH_SEQUENCES = 8
MAX_WARMUP_FRACTION = 0.2
# At the tiny batches of CPU models, N tokens of warmup is a handful of steps: AdamW then stalls on a unigram plateau
# at any lr above ~0.005 (measured on pystdlib: README, "Learning rate"); warm up for at least this many steps.
MIN_WARMUP_STEPS = 100
DEFAULT_TOKENS_PER_PARAM = 20.0


def param_counts(n_layer: int, d_model: int, vocab_size: int, seq_len: int, tie_embeddings: bool = False) -> dict:
    """Parameter counts of model.GPT by convention; equal to the module's numel sums."""
    d = d_model
    per_block = 12 * d * d + 2 * d  # qkv 3d², out d², MLP 8d², two LayerNorm weights
    blocks_matmul = n_layer * 12 * d * d
    non_embedding = n_layer * per_block + d  # + final LayerNorm
    token_embedding = vocab_size * d
    position_embedding = seq_len * d
    head = 0 if tie_embeddings else vocab_size * d
    return {
        "total": non_embedding + token_embedding + position_embedding + head,
        "non_embedding": non_embedding,
        "embedding": token_embedding + position_embedding,
        "matmul": blocks_matmul + vocab_size * d,  # the head's matmul runs whether or not it is tied
        "head": vocab_size * d,
    }


def flops_per_token(n_layer: int, d_model: int, vocab_size: int, seq_len: int) -> float:
    """Training FLOPs (forward + backward) per token, attention scores included."""
    matmul = param_counts(n_layer, d_model, vocab_size, seq_len)["matmul"]
    return 6.0 * matmul + 6.0 * n_layer * seq_len * d_model


def tokens_for_flops(flops: float, per_token: float) -> float:
    return flops / per_token


def horizon_tokens(tokens: float | None, flops: float | None, tokens_per_param: float | None,
                   n_params: float, per_token: float, rel_tol: float = 0.01) -> tuple[float, str]:
    """The training horizon in tokens from whichever of tokens / flops / tokens_per_param is set.

    Returns (tokens, source). Several set must agree within rel_tol; none set means DEFAULT_TOKENS_PER_PARAM.
    """
    implied = {}
    if tokens is not None:
        implied["train.tokens"] = float(tokens)
    if flops is not None:
        implied["train.flops"] = tokens_for_flops(float(flops), per_token)
    if tokens_per_param is not None:
        implied["train.tokens_per_param"] = float(tokens_per_param) * n_params
    if not implied:
        return DEFAULT_TOKENS_PER_PARAM * n_params, "default tokens_per_param"
    values = list(implied.values())
    if max(values) > min(values) * (1 + rel_tol):
        detail = ", ".join(f"{k} → {v:.4g} tokens" for k, v in implied.items())
        raise ValueError(f"conflicting horizons: {detail}; set exactly one of train.tokens, train.flops, "
                         f"train.tokens_per_param (set the others to null)")
    return values[0], next(iter(implied))


def default_batch_tokens(n_params: float, seq_len: int, ranks: int = 1) -> int:
    """≈ 160·(N/108M)^(2/3) sequences of 2048 tokens, in tokens: whole sequences (≥ 8), rounded to a multiple of
    the largest power of two ≤ sequences/8 (at most ~6% off) and of the number of DDP ranks. A count with many
    divisors lets default_micro_batch find a micro-batch near the memory budget; a prime count (gpt-10m's 281)
    would force micro-batches of one."""
    sequences = max(MIN_BATCH_SEQUENCES, round(_REF_BATCH_TOKENS * (n_params / _REF_PARAMS) ** (2 / 3) / seq_len))
    grain = math.lcm(max(2, 2 ** int(math.log2(sequences / 8))), ranks)
    return max(math.ceil(MIN_BATCH_SEQUENCES / grain), round(sequences / grain)) * grain * seq_len


def size_warmup_tokens(n_params: float, batch_tokens: int) -> float:
    """≈ N tokens (Porian et al. 2024) but at least MIN_WARMUP_STEPS steps: a size's warmup, whatever the horizon
    (schedule=wsd's, so that the runs of one size share everything before their decay)."""
    return max(float(n_params), float(MIN_WARMUP_STEPS * batch_tokens))


def default_warmup_tokens(n_params: float, horizon: float, batch_tokens: int) -> float:
    """The size's warmup (size_warmup_tokens), but never more than a fifth of the horizon (cosine, constant)."""
    return min(size_warmup_tokens(n_params, batch_tokens), MAX_WARMUP_FRACTION * horizon)


def steps_for(tokens: float, batch_tokens: int) -> int:
    return max(1, math.ceil(tokens / batch_tokens - 1e-9))


def activation_bytes_per_token(n_layer: int, d_model: int, n_head: int, seq_len: int, vocab_size: int,
                               bytes_per_value: int = 4, flash_attention: bool = True) -> float:
    """Memory held for backward, per token (Korthikanti et al. 2022: 34·d per layer in 16-bit, without dropout
    masks), plus the attention matrix when no flash kernel runs, plus the fp32 logits, their softmax and grad."""
    per_layer = 17 * d_model * bytes_per_value
    if not flash_attention:
        per_layer += 2.5 * n_head * seq_len * bytes_per_value
    return n_layer * per_layer + 3 * 4 * vocab_size


def training_state_bytes(n_total_params: int) -> int:
    """fp32 weights, grads and AdamW's two moments."""
    return 16 * n_total_params


def default_micro_batch(batch_sequences: int, seq_len: int, bytes_per_token: float, memory_budget: float) -> int:
    """The largest divisor of the batch whose activations fit the budget (gradient accumulation covers the rest)."""
    fit = max(1, int(memory_budget // (bytes_per_token * seq_len)))
    return max(d for d in range(1, batch_sequences + 1) if batch_sequences % d == 0 and d <= fit)
