"""Packed training against the best way without it, on this machine: cells × tokens/s of the trainer's own step.

For each model size (default: the demo's three smallest, with the cpu preset's context, vocabulary and batch):
  - alone: one cell per process with the cores divided among processes (what `sweep demo`'s joblib launcher runs),
    every process stepping at once;
  - packed K: K cells in one process (all cores), for K in --packs, through train/pack.py's packed_step;
  - packed K × P: P processes each with a pack of K cells, the cores divided among them.
Random tokens, the trainer's plan (batch, micro-batch, lr), fp32 as the demo runs; steady-state steps after a
warm-up. Prints a table and, last, one JSON line.

    python scripts/bench_pack.py                        # the demo's sizes, packs of 1, 2, 4, 8, 16
    python scripts/bench_pack.py --models gpt-25k --packs 1,4 --steps 20
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time


def _plan(model: str, device: str = "cpu"):
    from sweep.config import compose
    from sweep.train.plan import make_plan, model_vocab
    from sweep.train.runtime import resolve

    run = compose(["sweep=cpu", f"model={model}", "train.flops=1e12", f"device={device}", "train.dtype=float32",
                   "train.threads=1"])
    vocab = model_vocab(run.model, run.data.vocab_size)
    runtime = resolve(device, run.train)
    return run, vocab, make_plan(run.model, run.train, vocab, runtime, run.data.val_tokens)


def _steps_per_s(model: str, cells: int, threads: int, steps: int, warmup: int, start, out, device: str) -> None:
    """One process: a pack of `cells` (1: the trainer's own single-model step) stepping `steps` times."""
    import torch

    from sweep.train.bench import Stepper
    from sweep.train.pack import packed_step
    from sweep.train.packed import PackedGPT
    from sweep.train.runtime import _sync

    torch.set_num_threads(threads)
    run, vocab, plan = _plan(model, device)
    rt = plan.runtime
    gen = torch.Generator().manual_seed(0)
    seqs = plan.batch_tokens // run.model.seq_len
    data = torch.randint(vocab, (4, cells, seqs, run.model.seq_len + 1), generator=gen).to(rt.device)
    mb = plan.micro_batch
    if cells == 1:
        stepper = Stepper(run.model, run.train, 0, vocab, plan)

        def step(i):
            w = data[i % 4, 0]
            stepper.step(w[:, :-1].contiguous(), w[:, 1:].contiguous())
    else:
        steppers = [Stepper(run.model, run.train, k, vocab, plan) for k in range(cells)]
        packed = PackedGPT([s.model for s in steppers])

        def step(i):
            w = data[i % 4]
            packed_step(packed, [s.optimizer for s in steppers],
                        lambda m: (w[:, m * mb:(m + 1) * mb, :-1], w[:, m * mb:(m + 1) * mb, 1:]), plan.accum, rt,
                        [run.train.grad_clip] * cells, [False] * cells)
    for i in range(warmup):
        step(i)
    _sync(rt.device)
    start.wait()  # every process of a configuration steps at the same time
    began = time.perf_counter()
    for i in range(steps):
        step(i)
    _sync(rt.device)
    out.put(cells * steps * plan.batch_tokens / (time.perf_counter() - began))


def measure(model: str, cells: int, processes: int, steps: int, warmup: int, device: str = "cpu") -> float:
    """cells × tokens/s of `processes` processes, each with a pack of `cells` and cores / processes threads."""
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(processes), ctx.Queue()
    threads = max(1, (os.cpu_count() or 1) // processes)
    procs = [ctx.Process(target=_steps_per_s, args=(model, cells, threads, steps, warmup, start, out, device))
             for _ in range(processes)]
    for p in procs:
        p.start()
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="gpt-3k,gpt-6k,gpt-12k")
    parser.add_argument("--packs", default="1,2,4,8,16")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda: one process per row there (the GPU's)")
    args = parser.parse_args()
    cores = (os.cpu_count() or 1) if args.device == "cpu" else 1
    rows = []
    for model in args.models.split(","):
        alone = measure(model, 1, cores, args.steps, args.warmup, args.device)
        row = {"model": model, "alone": alone, "packed": {}, "packed_side_by_side": {}}
        for k in (int(k) for k in args.packs.split(",")):
            if k > 1:
                row["packed"][k] = measure(model, k, 1, args.steps, args.warmup, args.device)
                if k % cores == 0 and k // cores > 1:
                    row["packed_side_by_side"][k] = measure(model, k // cores, cores, args.steps, args.warmup,
                                                            args.device)
        rows.append(row)
        best = max([alone, *row["packed"].values(), *row["packed_side_by_side"].values()])
        print(f"{model}: alone ({cores} processes × 1 cell) {alone:,.0f} cell-tokens/s; " + "; ".join(
            f"pack {k} {v:,.0f} ({v / alone:.2f}×)" for k, v in row["packed"].items()) + "; " + "; ".join(
            f"{cores} packs of {k // cores} {v:,.0f} ({v / alone:.2f}×)" for k, v in row["packed_side_by_side"].items())
            + f"; best {best / alone:.2f}× alone", flush=True)
    print(json.dumps({"cores": cores, "rows": rows}))


if __name__ == "__main__":
    main()
