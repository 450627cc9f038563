"""A plain GPT trained the nanoGPT way: eager, fp32, torch's default AdamW. The reference `sweep` is measured against.

    python scripts/baseline_gpt.py [--n-layer 4 --d-model 128 --n-head 4 --seq-len 256 --vocab 4096 --batch 16]
                                   [--steps 200] [--lr 0.003] [--tokens FILE.npy]
    python scripts/baseline_gpt.py --compare [shape flags] [--steps 200] [--chunk 10] [SWEEP_OVERRIDES ...]

Alone, it trains the baseline (on random tokens, or a 1-D token array saved with numpy) and prints tok/s and the
loss. With --compare, the baseline and sweep's own trainer step (`sweep.train.bench.Stepper`: its model, AdamW, autocast
and compile, at its defaults for the device unless overridden, e.g. train.dtype=float32) train the same shape from
the same initial weights on the same batches of the `pystdlib` corpus at the same lr schedule, in interleaved chunks
of --chunk steps so that a busy machine slows both alike. The first --warmup steps of each are untimed (compilation
happens there). It prints both throughputs and their ratio (medians over chunk pairs, robust to a neighbour's bursts
of load) and both losses after the last step (the mean train loss of the last chunk, and the loss on fixed held-out
windows); --seed-spread adds a baseline from another seed, for scale. The last line is one JSON object.

Everything above --compare's glue is self-contained: the model, optimizer, data sampling and step here import
nothing from `sweep`.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, d_model: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.c_attn = nn.Linear(d_model, 3 * d_model, bias=False)
        self.c_proj = nn.Linear(d_model, d_model, bias=False)

    def forward(self, x):
        b, t, c = x.size()
        q, k, v = self.c_attn(x).split(c, dim=2)
        q = q.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        k = k.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        v = v.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, c))


class FeedForward(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.c_fc = nn.Linear(d_model, 4 * d_model, bias=False)
        self.c_proj = nn.Linear(4 * d_model, d_model, bias=False)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x)))


class Layer(nn.Module):
    def __init__(self, d_model: int, n_head: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model, bias=False)
        self.attn = Attention(d_model, n_head)
        self.ln_2 = nn.LayerNorm(d_model, bias=False)
        self.mlp = FeedForward(d_model)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class BaselineGPT(nn.Module):
    """Same shape and parameter count as sweep's GPT (pre-norm, no biases, untied head), written independently."""

    def __init__(self, n_layer: int, d_model: int, n_head: int, seq_len: int, vocab: int):
        super().__init__()
        self.wte = nn.Embedding(vocab, d_model)
        self.wpe = nn.Embedding(seq_len, d_model)
        self.h = nn.ModuleList([Layer(d_model, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(d_model, bias=False)
        self.lm_head = nn.Linear(d_model, vocab, bias=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, idx, targets=None):
        pos = torch.arange(idx.size(1), device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for layer in self.h:
            x = layer(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    def make_optimizer(self, lr: float, weight_decay: float = 0.1):
        decay = [p for p in self.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.parameters() if p.dim() < 2]
        # torch's defaults, as nanoGPT leaves them on CPU (fused only on CUDA): the per-tensor loop.
        return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                  {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.95))


def baseline_step(model, optimizer, x, y, lr: float, grad_clip: float = 1.0) -> torch.Tensor:
    for group in optimizer.param_groups:
        group["lr"] = lr
    _, loss = model(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def lr_at(step: int, steps: int, peak: float) -> float:
    """Linear warm-up over the first 10% of steps, then cosine to a tenth of the peak."""
    warmup = max(1, steps // 10)
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step + 1 - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress))))


class Sampler:
    """Random windows of seq_len+1 tokens; batch i is a pure function of (seed, i) so both trainers see it."""

    def __init__(self, tokens: np.ndarray, seq_len: int, batch: int, seed: int = 0):
        self.tokens, self.seq_len, self.batch, self.seed = tokens, seq_len, batch, seed

    def get(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, i])
        starts = rng.integers(0, len(self.tokens) - self.seq_len - 1, size=self.batch)
        w = torch.from_numpy(np.stack([self.tokens[s:s + self.seq_len + 1] for s in starts]).astype(np.int64))
        return w[:, :-1].contiguous(), w[:, 1:].contiguous()


@torch.no_grad()
def held_out_loss(forward, windows: torch.Tensor, batch: int) -> float:
    """Mean next-token loss over fixed windows; `forward(x, y)` returns a mean loss."""
    total = 0.0
    for chunk in windows.split(batch):
        total += float(forward(chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous())) * len(chunk)
    return total / len(windows)


def standalone(args) -> dict:
    torch.manual_seed(args.seed)
    tokens = np.load(args.tokens) if args.tokens else np.random.default_rng(args.seed).integers(
        0, args.vocab, 1_000_000)
    sampler = Sampler(tokens, args.seq_len, args.batch, args.seed)
    model = BaselineGPT(args.n_layer, args.d_model, args.n_head, args.seq_len, args.vocab)
    optimizer = model.make_optimizer(args.lr)
    losses, start = [], None
    for step in range(args.steps):
        if step == args.warmup:
            start = time.perf_counter()
        x, y = sampler.get(step)
        losses.append(baseline_step(model, optimizer, x, y, lr_at(step, args.steps, args.lr)))
    timed = time.perf_counter() - start
    tok_per_s = (args.steps - args.warmup) * args.batch * args.seq_len / timed
    result = {"tok_per_s": tok_per_s, "loss": float(torch.stack(losses[-10:]).mean()),
              "threads": torch.get_num_threads()}
    print(f"baseline: {tok_per_s:,.0f} tok/s, train loss (last 10 steps) {result['loss']:.4f}")
    return result


def compare(args, overrides: list[str]) -> dict:
    """Baseline vs sweep's trainer step, interleaved, on the same batches of real text."""
    from sweep.config import compose
    from sweep.data import open_tokens, prepare
    from sweep.train.bench import Stepper
    from sweep.train.plan import make_plan
    from sweep.train.runtime import resolve

    run = compose([f"model.n_layer={args.n_layer}", f"model.d_model={args.d_model}", f"model.n_head={args.n_head}",
                   f"model.seq_len={args.seq_len}", f"model.vocab_size={args.vocab}", f"data.vocab_size={args.vocab}",
                   f"train.batch_tokens={args.batch * args.seq_len}", f"out_dir={args.out_dir}", f"seed={args.seed}",
                   "device=cpu", *overrides])
    data = prepare(run.data, run.cache_root)
    runtime = resolve(run.device, run.train)
    plan = make_plan(run.model, run.train, args.vocab, runtime, run.data.val_tokens)
    lr = args.lr or plan.lr
    sampler = Sampler(open_tokens(data.train_path), args.seq_len, args.batch, args.seed)
    val = open_tokens(data.val_path)
    n_val = min(64, len(val) // (args.seq_len + 1))
    windows = torch.from_numpy(np.asarray(val[:n_val * (args.seq_len + 1)], dtype=np.int64)).view(n_val, -1)

    ours = Stepper(run.model, run.train, run.seed, args.vocab, plan)
    base = BaselineGPT(args.n_layer, args.d_model, args.n_head, args.seq_len, args.vocab)
    # The same initial weights (parameters correspond in order and shape): what differs is the trainer alone.
    base.load_state_dict(dict(zip(base.state_dict(), ours.model.state_dict().values())))
    base_opt = base.make_optimizer(lr, run.train.weight_decay)
    other = None
    if args.seed_spread:  # a baseline from another init, untimed: how far apart two seeds land at this horizon
        torch.manual_seed(args.seed + 1)
        other = BaselineGPT(args.n_layer, args.d_model, args.n_head, args.seq_len, args.vocab)
        other_opt = other.make_optimizer(lr, run.train.weight_decay)
    print(f"compare: n_layer={args.n_layer} d_model={args.d_model} n_head={args.n_head} seq_len={args.seq_len} "
          f"vocab={args.vocab} batch={args.batch} steps={args.steps} lr={lr:.4g} threads={torch.get_num_threads()}; "
          f"sweep: dtype={ours.runtime.dtype} compile={ours.runtime.compile} micro_batch={plan.micro_batch}",
          flush=True)

    times = {"baseline": [], "sweep": []}  # per timed chunk
    losses = {"baseline": [], "sweep": []}
    step = 0
    while step < args.steps:
        n = args.warmup if step == 0 else min(args.chunk, args.steps - step)
        batches = [(sampler.get(s), lr_at(s, args.steps, lr)) for s in range(step, step + n)]
        start = time.perf_counter()
        chunk_losses = [baseline_step(base, base_opt, x, y, s_lr) for (x, y), s_lr in batches]
        losses["baseline"].append(float(torch.stack(chunk_losses).mean()))
        middle = time.perf_counter()
        for (x, y), s_lr in batches:
            ours.step(x, y, s_lr)
        losses["sweep"].append(ours.pop_loss() / n)
        end = time.perf_counter()
        if step > 0 and n == args.chunk:  # the warm-up chunk (compilation, allocator) and a short tail are not timed
            times["baseline"].append(middle - start)
            times["sweep"].append(end - middle)
        if other is not None:
            for (x, y), s_lr in batches:
                baseline_step(other, other_opt, x, y, s_lr)
        step += n
        print(f"  step {step:4d}: loss baseline {losses['baseline'][-1]:.4f} sweep {losses['sweep'][-1]:.4f}; "
              f"chunk s baseline {middle - start:.2f} sweep {end - middle:.2f}", flush=True)

    chunk_tokens = args.chunk * args.batch * args.seq_len
    ratios = [b / o for b, o in zip(times["baseline"], times["sweep"])]
    base.eval()
    ours.model.eval()

    def sweep_forward(x, y):
        with ours.runtime.autocast():
            return ours.model(x, y)[1]

    result = {
        "shape": {"n_layer": args.n_layer, "d_model": args.d_model, "n_head": args.n_head, "seq_len": args.seq_len,
                  "vocab": args.vocab, "batch": args.batch, "matmul_params": plan.n_params["matmul"]},
        "steps": args.steps, "timed_chunks": len(ratios), "chunk": args.chunk, "threads": torch.get_num_threads(),
        "sweep_dtype": ours.runtime.dtype_name, "sweep_compile": ours.runtime.compile,
        # Medians over chunks: a neighbour's burst of load slows a chunk pair, not the whole comparison.
        "baseline_tok_per_s": chunk_tokens / statistics.median(times["baseline"]),
        "sweep_tok_per_s": chunk_tokens / statistics.median(times["sweep"]),
        "speedup": statistics.median(ratios), "speedup_total": sum(times["baseline"]) / sum(times["sweep"]),
        "baseline_train_loss": losses["baseline"][-1], "sweep_train_loss": losses["sweep"][-1],
        "baseline_val_loss": held_out_loss(lambda x, y: base(x, y)[1], windows, args.batch),
        "sweep_val_loss": held_out_loss(sweep_forward, windows, args.batch),
    }
    if other is not None:
        other.eval()
        result["other_seed_val_loss"] = held_out_loss(lambda x, y: other(x, y)[1], windows, args.batch)
        result["seed_spread"] = abs(result["other_seed_val_loss"] - result["baseline_val_loss"])
    print(f"baseline {result['baseline_tok_per_s']:,.0f} tok/s, sweep {result['sweep_tok_per_s']:,.0f} tok/s (median "
          f"chunks): {result['speedup']:.2f}x (median chunk ratio; {result['speedup_total']:.2f}x on total time); "
          f"held-out loss after {args.steps} steps: baseline "
          f"{result['baseline_val_loss']:.4f}, sweep {result['sweep_val_loss']:.4f}"
          + (f" (baseline from another seed: {result['other_seed_val_loss']:.4f})" if other is not None else ""))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-layer", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=16, help="sequences per optimizer step")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10, help="untimed first steps")
    parser.add_argument("--chunk", type=int, default=10, help="--compare: steps per interleaved chunk")
    parser.add_argument("--lr", type=float, default=None, help="peak lr (default: 3e-3 alone, sweep's per-size "
                                                               "rule with --compare)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tokens", help="alone: a .npy 1-D token array (default: random tokens)")
    parser.add_argument("--out-dir", default="/tmp/sweep-baseline", help="--compare: where the corpus cache goes")
    parser.add_argument("--compare", action="store_true", help="side by side with sweep's trainer step")
    parser.add_argument("--seed-spread", action="store_true",
                        help="--compare: also train (untimed) a baseline from seed+1, for the seed-to-seed spread")
    args, overrides = parser.parse_known_args()
    if overrides and not args.compare:
        parser.error(f"config overrides {overrides} only apply with --compare")
    if args.compare:
        result = compare(args, overrides)
    else:
        args.lr = args.lr or 3e-3
        result = standalone(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
