import importlib.resources

import pytest
import torch
from omegaconf import OmegaConf

from sweep.config import ModelConfig
from sweep.config import lr_rule
from sweep.train import accounting
from sweep.train.model import GPT

LADDER = sorted(p.name[:-5] for p in importlib.resources.files("sweep.configs").joinpath("model").iterdir()
                if p.name.endswith(".yaml"))


def _model_cfg(name):
    return OmegaConf.create(importlib.resources.files("sweep.configs").joinpath(f"model/{name}.yaml").read_text())


def _named_count(name: str) -> float:
    number = name.removeprefix("gpt-")
    return float(number[:-1]) * {"k": 1e3, "m": 1e6}[number[-1]]


def test_ladder_spans_3k_to_100m():
    """Rungs 2-3× apart, and √2 apart below 100k (the demo law's grid)."""
    assert "gpt-3k" in LADDER and "gpt-100m" in LADDER
    counts = sorted(_named_count(n) for n in LADDER)
    ratios = [b / a for a, b in zip(counts, counts[1:])]
    assert all(1.2 <= r <= 3.0 for r in ratios), ratios
    assert all(r < 1.6 for a, r in zip(counts, ratios) if a < 7e4), ratios


@pytest.mark.parametrize("name", LADDER)
@pytest.mark.parametrize("tied", [False, True])
def test_param_formula_matches_module(name, tied):
    m = _model_cfg(name)
    vocab = 4096
    with torch.device("meta"):  # gpt-100m without allocating it
        model = GPT(ModelConfig(n_layer=m.n_layer, d_model=m.d_model, n_head=m.n_head, seq_len=m.seq_len,
                                  vocab_size=vocab, tie_embeddings=tied))
    counts = accounting.param_counts(m.n_layer, m.d_model, vocab, m.seq_len, tie_embeddings=tied)
    unique = {id(p): p for p in model.parameters()}.values()
    assert counts["total"] == sum(p.numel() for p in unique)
    embedding = model.wte.weight.numel() + model.wpe.weight.numel()
    assert counts["embedding"] == embedding
    assert counts["non_embedding"] == counts["total"] - embedding - (0 if tied else model.lm_head.weight.numel())
    matmul = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and not n.startswith(("wte", "wpe")))
    assert counts["matmul"] == matmul + (model.lm_head.weight.numel() if tied else 0)


@pytest.mark.parametrize("name", LADDER)
def test_ladder_names_within_15_percent(name):
    m = _model_cfg(name)
    assert m.name == name
    assert m.d_model % m.n_head == 0
    real = accounting.param_counts(m.n_layer, m.d_model, 4096, m.seq_len)["non_embedding"]
    assert abs(real / _named_count(name) - 1) <= 0.15


def test_flops_per_token_counts_head_and_attention():
    c = accounting.param_counts(2, 64, 1000, 128)
    assert accounting.flops_per_token(2, 64, 1000, 128) == 6 * c["matmul"] + 6 * 2 * 128 * 64


def test_horizon_from_each_key_and_conflicts():
    n, per_token = 1e6, 1e7
    assert accounting.horizon_tokens(2e6, None, None, n, per_token) == (2e6, "train.tokens")
    assert accounting.horizon_tokens(None, 1e13, None, n, per_token)[0] == pytest.approx(1e6)
    assert accounting.horizon_tokens(None, None, 20, n, per_token)[0] == 2e7
    assert accounting.horizon_tokens(None, None, None, n, per_token)[0] == 2e7  # default 20 tokens/param
    assert accounting.horizon_tokens(2e7, None, 20, n, per_token)[0] == 2e7  # two that agree are fine
    with pytest.raises(ValueError, match="conflicting horizons.*train.tokens.*train.flops"):
        accounting.horizon_tokens(2e6, 1e14, None, n, per_token)


def test_per_size_defaults_follow_porian_and_clamp():
    ref = 108e6
    porian = lr_rule.load("porian")  # the literature rule, as a rule file
    assert porian.lr(ref) == pytest.approx(0.0047)
    assert porian.lr(ref * 8) == pytest.approx(0.0047 / 2)
    assert porian.lr(1e4) == porian.max_lr == 0.006
    assert not porian.tuned and not porian.in_range(ref)
    assert accounting.default_batch_tokens(ref, 2048) == 160 * 2048
    assert accounting.default_batch_tokens(ref / 8, 2048) == 40 * 2048
    assert accounting.default_batch_tokens(1e4, 256) == accounting.MIN_BATCH_SEQUENCES * 256
    for ranks in (1, 2, 3, 4, 6, 8):  # every DDP world splits the default batch evenly
        for n in (1e4, 1e5, 1e6, 1e7, 1e8):
            sequences = accounting.default_batch_tokens(n, 256, ranks) // 256
            assert sequences % ranks == 0, (n, ranks, sequences)
    assert accounting.default_warmup_tokens(1e6, 1e9, 4096) == 1e6  # N tokens
    assert accounting.default_warmup_tokens(1e6, 1e6, 4096) == 0.2e6  # at most a fifth of the horizon
    assert accounting.default_warmup_tokens(5e4, 1e7, 2560) == 100 * 2560  # at least MIN_WARMUP_STEPS


def test_default_micro_batch_divides_batch_and_fits_budget():
    assert accounting.default_micro_batch(64, 256, 1000.0, 1e12) == 64
    micro = accounting.default_micro_batch(60, 256, 1000.0, 256 * 1000.0 * 7)
    assert micro == 6 and 60 % micro == 0
    assert accounting.default_micro_batch(7, 256, 1e9, 1.0) == 1
