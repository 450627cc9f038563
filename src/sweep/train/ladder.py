"""The model ladder (configs/model/*.yaml): its one shape rule, and a table of shapes, parameters by convention and
FLOPs per token as the runs of a given config would have them (a preset's context length and vocabulary included).

The shape rule (README, "The ladder"): a rung named gpt-<N> is the shape whose non-embedding count is within 10% of N
and whose width/depth ratio is closest to ASPECT (the score adds both log errors); widths are even, multiples of 32
from 128 on; heads are HEAD_DIM wide where the width is a multiple of HEAD_DIM (from 64 on), else two. Neighbouring
rungs then differ in size, not in kind: depth never shrinks up the ladder, width only once (gpt-8k 1×26 → gpt-12k
2×22, where √2 spacing leaves no shape between), and d/L stays within 11-22 from two layers on.
"""

from __future__ import annotations

import importlib.resources
import math

from ..config import compose
from ..config.compose import CONFIG_MODULE
from .accounting import flops_per_token, param_counts
from .plan import model_vocab

CONVENTIONS = ("total", "non_embedding", "embedding", "matmul")
ASPECT = 16  # d_model / n_layer
HEAD_DIM = 32
NAME_TOLERANCE = 0.10  # a rung's non-embedding count is within this of its name
_SUFFIX = {"k": 1e3, "m": 1e6, "b": 1e9}


def nominal_params(name: str) -> float:
    """gpt-25k → 25,000."""
    size = name.rsplit("-", 1)[-1].lower()
    return float(size[:-1]) * _SUFFIX[size[-1]]


def n_head_for(d_model: int) -> int:
    return d_model // HEAD_DIM if d_model >= 2 * HEAD_DIM and d_model % HEAD_DIM == 0 else 2


def shape_for(n_params: float) -> tuple[int, int, int]:
    """(n_layer, d_model, n_head) of the rung with this nominal non-embedding count, by the shape rule above."""
    best = None
    for n_layer in range(1, 97):
        for d_model in range(8, 4097, 2):
            if d_model >= 128 and d_model % HEAD_DIM:
                continue
            n = param_counts(n_layer, d_model, 0, 0)["non_embedding"]
            if abs(n / n_params - 1) > NAME_TOLERANCE:
                continue
            score = abs(math.log(d_model / (ASPECT * n_layer))) + abs(math.log(n / n_params))
            if best is None or score < best[0]:
                best = (score, n_layer, d_model)
    if best is None:
        raise ValueError(f"no shape within {NAME_TOLERANCE:.0%} of {n_params:g} non-embedding parameters")
    return best[1], best[2], n_head_for(best[2])


def names() -> list[str]:
    return [p.name[:-5] for p in importlib.resources.files(CONFIG_MODULE).joinpath("model").iterdir()
            if p.name.endswith(".yaml")]


def rows(overrides: list[str], vocab_size: int | None = None) -> list[dict]:
    """One row per ladder size, smallest first, composed with these overrides (e.g. sweep=cpu); vocab_size, when
    given, replaces the vocabulary the config implies (model.vocab_size, else data.vocab_size)."""
    out = []
    for name in names():
        run = compose([*overrides, f"model={name}"])
        m = run.model
        vocab = vocab_size or model_vocab(m, run.data.vocab_size)
        counts = param_counts(m.n_layer, m.d_model, vocab, m.seq_len, m.tie_embeddings)
        out.append({"name": m.name, "n_layer": m.n_layer, "d_model": m.d_model, "n_head": m.n_head,
                    "seq_len": m.seq_len, "vocab_size": vocab, **{k: counts[k] for k in CONVENTIONS},
                    "flops_per_token": flops_per_token(m.n_layer, m.d_model, vocab, m.seq_len)})
    return sorted(out, key=lambda r: r["non_embedding"])


def table(rows: list[dict]) -> str:
    lines = [f"{'name':<10}{'n_layer':>8}{'d_model':>8}{'n_head':>7}{'seq_len':>8}{'vocab':>7}{'non_embedding':>15}"
             f"{'embedding':>12}{'matmul':>13}{'total':>13}{'FLOPs/token':>13}"]
    lines += [f"{r['name']:<10}{r['n_layer']:>8}{r['d_model']:>8}{r['n_head']:>7}{r['seq_len']:>8}{r['vocab_size']:>7}"
              f"{r['non_embedding']:>15,}{r['embedding']:>12,}{r['matmul']:>13,}{r['total']:>13,}"
              f"{r['flops_per_token']:>13.3g}" for r in rows]
    lines.append("(non_embedding excludes token and position embeddings; matmul counts the output head; "
                 "FLOPs/token = 6·matmul + 6·n_layer·seq_len·d_model)")
    return "\n".join(lines)
