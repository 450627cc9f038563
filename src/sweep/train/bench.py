"""`sweep bench`: training throughput of one shape through the trainer's own step, against the machine's matmul peak.

The model, optimizer, autocast, compile and step are the trainer's (train/step.py), on random tokens,
so what this measures is what a run spends. No run directory is created.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import sys
import time

import torch

from ..config import ConfigError, compose
from .plan import make_plan, model_vocab
from .runtime import _sync, matmul_peak, resolve
from .step import build, set_lr, step_module, train_step

VARIANTS = {"fp32-eager": (torch.float32, False), "fp32-compile": (torch.float32, True),
            "bf16-eager": (torch.bfloat16, False), "bf16-compile": (torch.bfloat16, True)}
OPTIONS = {"steps": 20, "warmup": 3, "variants": "default", "peak_seconds": 1.0, "profile": 0}
N_BATCHES = 4  # distinct random batches cycled through, so no step reuses its predecessor's input


def parse(argv: list[str]) -> tuple[dict, list[str]]:
    """bench.KEY=VALUE options out of the arguments; the rest are the usual config overrides."""
    options, overrides = dict(OPTIONS), []
    for arg in argv:
        if not arg.startswith("bench."):
            overrides.append(arg)
            continue
        key, sep, value = arg[len("bench."):].partition("=")
        if key not in OPTIONS or not sep:
            raise ConfigError(f"unknown bench option {arg!r}; bench takes "
                              f"{', '.join(f'bench.{k}=' for k in OPTIONS)} and config overrides")
        try:
            options[key] = type(OPTIONS[key])(value)
        except ValueError:
            raise ConfigError(f"bench.{key}={value!r} is not a {type(OPTIONS[key]).__name__}") from None
    if options["steps"] < 1 or options["warmup"] < 1:
        raise ConfigError("bench.steps and bench.warmup must be at least 1")
    return options, overrides


def variant_name(dtype: torch.dtype, compiled: bool) -> str:
    return f"{'bf16' if dtype == torch.bfloat16 else 'fp32'}-{'compile' if compiled else 'eager'}"


def peak_memory(device: torch.device) -> int:
    """Peak resident set of this process on CPU (the high-water mark since it started), max allocated on CUDA."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)  # bytes on macOS, KiB on Linux


class Stepper:
    """The trainer's model, optimizer and optimizer step for one config, fed batches by the caller (this bench, and
    scripts/baseline_gpt.py's side-by-side comparison)."""

    def __init__(self, m, t, seed: int, vocab_size: int, plan, runtime=None):
        """runtime: a variant to measure; by default the plan's, which the trainer runs."""
        self.grad_clip, self.runtime, self.plan = t.grad_clip, runtime or plan.runtime, plan
        self.model, self.optimizer = build(m, t, vocab_size, seed, plan.lr, plan.beta2, self.runtime)
        self.module = step_module(self.model, self.runtime)
        self.loss_sum = torch.zeros((), device=self.runtime.device)

    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float | None = None) -> None:
        """One optimizer step on a batch of plan.batch_tokens tokens (split into the plan's micro-batches)."""
        if lr is not None:
            set_lr(self.optimizer, lr)
        mb = self.plan.micro_batch
        train_step(self.module, self.model, self.optimizer, lambda i: (x[i * mb:(i + 1) * mb], y[i * mb:(i + 1) * mb]),
                   self.plan.accum, self.runtime, self.grad_clip, self.loss_sum)

    def pop_loss(self) -> float:
        """Sum of the step losses since the last call (a host sync)."""
        value = self.loss_sum.item()
        self.loss_sum.zero_()
        return value


def measure(run, vocab_size: int, runtime, plan, steps: int, warmup: int, profile_steps: int = 0) -> dict:
    """Warm up (compiles, allocator), then time `steps` optimizer steps of the trainer's step on random tokens;
    with profile_steps, then a torch.profiler table of that many more."""
    device = runtime.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    stepper = Stepper(run.model, run.train, run.init_seed, vocab_size, plan, runtime)
    gen = torch.Generator().manual_seed(run.order_seed)
    sequences = plan.batch_tokens // run.model.seq_len
    windows = torch.randint(vocab_size, (N_BATCHES, sequences, run.model.seq_len + 1), generator=gen)
    xs = windows[:, :, :-1].contiguous().to(device)
    ys = windows[:, :, 1:].contiguous().to(device)

    start = time.perf_counter()
    for i in range(warmup):
        stepper.step(xs[i % N_BATCHES], ys[i % N_BATCHES])
    stepper.pop_loss()  # drains queued work before the clock starts
    _sync(device)
    warmup_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(steps):
        stepper.step(xs[i % N_BATCHES], ys[i % N_BATCHES])
    loss = stepper.pop_loss() / steps  # the only host sync of the timed steps
    _sync(device)
    elapsed = time.perf_counter() - start
    tok_per_s = steps * plan.batch_tokens / elapsed
    result = {"tok_per_s": tok_per_s, "flops_per_s": tok_per_s * plan.flops_per_token, "step_s": elapsed / steps,
              "warmup_s": warmup_s, "loss": loss, "peak_mem_bytes": peak_memory(device),
              "dtype": stepper.runtime.dtype_name, "compile": stepper.runtime.compile}  # what ran, after settle
    if profile_steps:
        from torch._inductor import config as inductor_config
        from torch.profiler import ProfilerActivity, profile

        if stepper.runtime.compile and device.type == "cpu":  # a second compile whose kernels show by name
            with inductor_config.patch({"cpp.enable_kernel_profile": True}):
                stepper = Stepper(run.model, run.train, run.init_seed, vocab_size, plan, runtime)
                stepper.step(xs[0], ys[0])

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            for i in range(profile_steps):
                stepper.step(xs[i % N_BATCHES], ys[i % N_BATCHES])
            stepper.pop_loss()
        sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        events = prof.key_averages()
        result["profile"] = events.table(sort_by=sort, row_limit=20, max_name_column_width=60)
        if device.type == "cpu":
            result["gemm"] = gemm_share(events, profile_steps * plan.batch_tokens * 6 * plan.n_params["matmul"])
    return result


def gemm_share(events, dense_flops: float) -> dict:
    """Where a profiled CPU step's time went: the share in the weight matmuls (aten::mm/addmm, which carry the
    6·N·tokens dense FLOPs) and the FLOP/s they ran at; attention's share (bmm, SDPA); the rest (elementwise,
    softmax, norms, casts, optimizer) is memory-bound and is what keeps MFU below the matmul rate."""
    self_us = {e.key: e.self_cpu_time_total for e in events}
    total = sum(self_us.values()) or 1
    dense = sum(self_us.get(k, 0) for k in ("aten::mm", "aten::addmm"))
    attention = sum(us for key, us in self_us.items()
                    if key in ("aten::bmm", "aten::baddbmm") or key.startswith("aten::_scaled_dot_product"))
    return {"dense_share": dense / total, "attention_share": attention / total,
            "other_share": 1 - (dense + attention) / total,
            "dense_flops_per_s": dense_flops / (dense * 1e-6) if dense else 0.0}


def bench(argv: list[str], out=None) -> dict:
    """Run the variants asked for, print a table, and print the default variant's result as the last line (JSON)."""
    out = out or sys.stdout
    options, overrides = parse(argv)
    run = compose(overrides)
    runtime = resolve(run.device, run.train)
    vocab_size = model_vocab(run.model, run.data.vocab_size)
    plan = make_plan(run.model, run.train, vocab_size, runtime, run.data.val_tokens)
    default = variant_name(plan.runtime.dtype, plan.runtime.compile)  # what the trainer would run
    names = list(VARIANTS) if options["variants"] == "all" else \
        [default] if options["variants"] == "default" else options["variants"].split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise ConfigError(f"bench.variants: unknown {unknown}; use default, all, or a comma list of "
                          f"{', '.join(VARIANTS)}")
    if runtime.device.type == "cuda" and not torch.cuda.is_bf16_supported():
        names = [n for n in names if not n.startswith("bf16")]
    # The default first: on CPU peak memory is the process's high-water mark, clean only for the first variant.
    names = sorted(dict.fromkeys(names), key=lambda n: n != default)
    peaks, rows = {}, {}
    for name in names:
        dtype, compiled = VARIANTS[name]
        rt = dataclasses.replace(runtime, dtype=dtype, compile=compiled)
        if dtype not in peaks:
            peaks[dtype] = matmul_peak(rt.device, dtype, options["peak_seconds"])
        result = measure(run, vocab_size, rt, plan, options["steps"], options["warmup"], options["profile"])
        if "profile" in result:
            print(f"profile of {options['profile']} step(s), {name}:\n{result.pop('profile')}", file=out)
        if "gemm" in result:
            g = result.pop("gemm")
            print(f"{name}: weight matmuls {g['dense_share']:.0%} of the step at {g['dense_flops_per_s'] / 1e9:.0f} "
                  f"GFLOP/s ({g['dense_flops_per_s'] / peaks[dtype]:.0%} of the matmul peak), attention "
                  f"{g['attention_share']:.0%}, everything else {g['other_share']:.0%}", file=out)
        rows[name] = {**result, "peak_flops_per_s": peaks[dtype], "mfu": result["flops_per_s"] / peaks[dtype],
                      "device": rt.device.type, "variant": name}
    m = run.model
    print(f"sweep bench: n_layer={m.n_layer} d_model={m.d_model} n_head={m.n_head} seq_len={m.seq_len} "
          f"vocab={vocab_size} batch_tokens={plan.batch_tokens} micro_batch={plan.micro_batch} "
          f"params(matmul)={plan.n_params['matmul']:,} FLOPs/token={plan.flops_per_token:.3g} "
          f"threads={torch.get_num_threads()} steps={options['steps']} (+{options['warmup']} warm-up); the trainer's "
          f"setting for this config: {default}", file=out)
    print(f"{'variant':<14}{'tok/s':>10}{'GFLOP/s':>10}{'peak GFLOP/s':>14}{'MFU':>8}{'step ms':>9}"
          f"{'warm-up s':>11}{'loss':>8}{'peak mem MB':>13}", file=out)
    for name, r in rows.items():
        print(f"{name:<14}{r['tok_per_s']:>10,.0f}{r['flops_per_s'] / 1e9:>10.1f}{r['peak_flops_per_s'] / 1e9:>14.1f}"
              f"{r['mfu']:>8.1%}{r['step_s'] * 1e3:>9.0f}{r['warmup_s']:>11.1f}{r['loss']:>8.3f}"
              f"{r['peak_mem_bytes'] / 2**20:>13,.0f}", file=out)
    if len(rows) > 1 and runtime.device.type == "cpu":
        print("(peak mem on CPU is the process's high-water mark: exact for the first row, an upper bound after)",
              file=out)
    chosen = rows.get(default, next(iter(rows.values())))
    record = {k: chosen[k] for k in ("tok_per_s", "flops_per_s", "peak_flops_per_s", "mfu", "device", "dtype",
                                     "compile", "peak_mem_bytes", "variant", "loss")}
    record.update(n_params=plan.n_params["matmul"], flops_per_token=plan.flops_per_token,
                  batch_tokens=plan.batch_tokens, micro_batch=plan.micro_batch, threads=torch.get_num_threads())
    print(json.dumps(record), file=out, flush=True)
    return record
