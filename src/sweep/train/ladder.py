"""The model ladder (configs/model/*.yaml) as a table: shapes, parameters by convention, FLOPs per token."""

from __future__ import annotations

import importlib.resources

from ..config.compose import CONFIG_MODULE
from ..config.schema import is_auto
from .accounting import flops_per_token, param_counts

CONVENTIONS = ("total", "non_embedding", "embedding", "matmul")


def rows(vocab_size: int) -> list[dict]:
    """One row per ladder size, smallest first; a size with its own vocab_size keeps it."""
    from omegaconf import OmegaConf

    out = []
    for path in importlib.resources.files(CONFIG_MODULE).joinpath("model").iterdir():
        if not path.name.endswith(".yaml"):
            continue
        m = OmegaConf.create(path.read_text())
        vocab = vocab_size if is_auto(m.vocab_size) else m.vocab_size
        counts = param_counts(m.n_layer, m.d_model, vocab, m.seq_len, m.tie_embeddings)
        out.append({"name": m.name, "n_layer": m.n_layer, "d_model": m.d_model, "n_head": m.n_head,
                    "seq_len": m.seq_len, "vocab_size": vocab, **{k: counts[k] for k in CONVENTIONS},
                    "flops_per_token": flops_per_token(m.n_layer, m.d_model, vocab, m.seq_len)})
    return sorted(out, key=lambda r: r["non_embedding"])


def table(rows: list[dict], vocab_size: int) -> str:
    lines = [f"{'name':<10}{'n_layer':>8}{'d_model':>8}{'n_head':>7}{'non_embedding':>15}{'embedding':>12}"
             f"{'matmul':>13}{'total':>13}{'FLOPs/token':>13}"]
    lines += [f"{r['name']:<10}{r['n_layer']:>8}{r['d_model']:>8}{r['n_head']:>7}{r['non_embedding']:>15,}"
              f"{r['embedding']:>12,}{r['matmul']:>13,}{r['total']:>13,}{r['flops_per_token']:>13.3g}" for r in rows]
    lines.append(f"(vocab {vocab_size}; non_embedding excludes token and position embeddings; matmul counts the "
                 f"output head; FLOPs/token = 6·matmul + 6·n_layer·seq_len·d_model)")
    return "\n".join(lines)
