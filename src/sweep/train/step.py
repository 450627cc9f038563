"""The model, optimizer and one optimizer step, shared by the training loop and `sweep bench`, with the step's
helpers (this rank's micro-batch, the mean over ranks, the non-finite check); and evaluation."""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import replace

import torch
import torch.distributed as dist

from ..config import ModelConfig, TrainConfig
from .model import GPT
from .runtime import Runtime


class NonFiniteLoss(RuntimeError):
    pass


def mean_over_ranks(value: torch.Tensor, runtime: Runtime) -> float:
    if runtime.world_size > 1:
        value = value.clone()
        dist.all_reduce(value)
        value /= runtime.world_size
    return value.item()


def device_batch(batches, step: int, micro: int, runtime: Runtime) -> tuple:
    """Micro-batch `micro` of `step` (of data.TokenBatches) for this rank, on the device."""
    x, y = batches.get(step, micro * runtime.world_size + runtime.rank)
    if runtime.device.type == "cuda":  # from pageable memory the copy would wait for the GPU to drain
        x, y = x.pin_memory(), y.pin_memory()
    return x.to(runtime.device, non_blocking=True), y.to(runtime.device, non_blocking=True)


def check_finite(bad_steps: torch.Tensor, upto: int, run_name: str) -> None:
    """Raise NonFiniteLoss naming the first bad step among the first `upto` (a host sync: log and checkpoint
    steps only)."""
    if bool(bad_steps[:upto].any()):
        first = int(bad_steps[:upto].nonzero()[0])
        raise NonFiniteLoss(f"{run_name}: non-finite loss or gradient at step {first + 1}; no checkpoint was "
                            f"written after it. Lower train.lr, or set train.nonfinite=skip")


def build(m: ModelConfig, t: TrainConfig, vocab_size: int, seed: int, lr: float, beta2: float,
          runtime: Runtime) -> tuple[GPT, torch.optim.Optimizer]:
    """The model (initialised from `seed`) on the runtime's device and its AdamW (β2 as the plan chose it)."""
    torch.manual_seed(seed)
    model = GPT(replace(m, vocab_size=vocab_size)).to(runtime.device)
    groups, betas = model.param_groups(t.weight_decay), (t.beta1, beta2)
    try:  # one fused kernel over all parameters: much faster than foreach on CPU (README, Performance)
        optimizer = torch.optim.AdamW(groups, lr=lr, betas=betas, fused=True)
    except RuntimeError:  # torch < 2.4 has no fused CPU AdamW; its per-tensor loop beats foreach on CPU
        optimizer = torch.optim.AdamW(groups, lr=lr, betas=betas, foreach=runtime.device.type == "cuda")
    return model, optimizer


def step_module(model: GPT, runtime: Runtime) -> torch.nn.Module:
    """What the step calls: the model compiled and/or wrapped in DDP as the (settled) runtime says; weights shared."""
    train_model = torch.compile(model) if runtime.compile else model
    if runtime.world_size > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(train_model)
    return train_model


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def train_step(train_model, model: GPT, optimizer: torch.optim.Optimizer, get_batch, accum: int,
               runtime: Runtime, grad_clip: float, loss_sum: torch.Tensor, skip_nonfinite: bool = False):
    """One optimizer step: `accum` micro-batches (get_batch(i) → x, y on the device) forward and backward under
    autocast, clip, AdamW. Adds the step's mean loss to loss_sum on the device. Returns the step's finite flag as a
    device tensor (no host sync), or with skip_nonfinite a bool, the step not taken (and loss_sum left as it was)
    when False."""
    step_loss = torch.zeros_like(loss_sum) if skip_nonfinite else loss_sum  # a skipped step adds nothing
    for micro in range(accum):
        x, y = get_batch(micro)
        # DDP all-reduces gradients only on the last micro-batch of the step.
        skip_sync = runtime.world_size > 1 and micro < accum - 1
        with (train_model.no_sync() if skip_sync else nullcontext()), runtime.autocast():
            _, loss = train_model(x, y)
            (loss / accum).backward()
        step_loss += loss.detach() / accum
    finite = clip_and_step(model, optimizer, grad_clip, skip_nonfinite)
    if skip_nonfinite and finite:
        loss_sum += step_loss
    optimizer.zero_grad(set_to_none=True)
    return finite


def clip_and_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, grad_clip: float,
                  skip_nonfinite: bool = False):
    """Clip the gradients' norm and take the AdamW step (train_step's, and each cell's of a pack). Returns the finite
    flag: a device tensor (no host sync), or with skip_nonfinite a bool, the step not taken when False."""
    finite = torch.isfinite(torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip))
    if not skip_nonfinite:
        optimizer.step()  # a non-finite step is caught later from the returned flag
    elif finite := bool(finite):  # the host sync is the price of skipping
        optimizer.step()
    return finite


@torch.no_grad()
def evaluate(model: GPT, windows: torch.Tensor, target_bytes: int, micro_batch: int, runtime: Runtime) -> tuple:
    """(val_loss in nats/token, val_bpb) over this rank's share of the fixed validation windows, summed over ranks."""
    model.eval()
    nats = torch.zeros((), dtype=torch.float64, device=runtime.device)
    for chunk in windows[runtime.rank::runtime.world_size].split(micro_batch):
        chunk = chunk.to(runtime.device, non_blocking=True)
        with runtime.autocast():
            _, loss_sum = model(chunk[:, :-1], chunk[:, 1:], reduction="sum")
        nats += loss_sum.double()
    if runtime.world_size > 1:
        dist.all_reduce(nats)
    model.train()
    total = nats.item()
    n_targets = windows.shape[0] * (windows.shape[1] - 1)
    return total / n_targets, total / math.log(2) / target_bytes
