"""The model ladder (configs/model/*.yaml) as a table: shapes, parameters by convention, FLOPs per token, as the runs
of a given config would have them (a preset's context length and vocabulary included)."""

from __future__ import annotations

import importlib.resources

from ..config import compose
from ..config.compose import CONFIG_MODULE
from .accounting import flops_per_token, param_counts
from .plan import model_vocab

CONVENTIONS = ("total", "non_embedding", "embedding", "matmul")


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
