"""A pack: cells of one shape trained together in one process (packed.py's PackedGPT), each still a run of its own.

Each cell is set up exactly as loop.py sets up a run alone (its directory claimed, its plan, its init seed, its
resume from its own checkpoint, its config.yaml, metrics.jsonl and tracker), and after each packed step the loop's
own parts log, evaluate, checkpoint and finish it, so a packed cell's directory is one a run alone would have
written. The step is the pack's: the cells' micro-batches stacked, one forward and backward, then per cell its
gradient clipping, its non-finite check and its AdamW step with its own lr. A cell that goes non-finite fails alone
(recorded in its directory as a run alone's failure is) and leaves the pack; so does a cell that completes. A stop
signal checkpoints every cell, then exits as a run alone does. A cell already completed is only read.

What must agree for cells to pack (`pack_key`): the model's shape, the micro-batch and accumulation, the device
and precision. Cooldown trunks and DDP ranks are not packed.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from pathlib import Path

import torch

from .. import rundir
from ..config import ConfigError, RunConfig
from ..config.schema import MAX_AUTO_PACK, is_auto
from ..data import PreparedData
from . import accounting, loop
from .packed import PackedGPT
from .plan import GPU_MEMORY_FRACTION, model_vocab
from .runtime import Runtime, StopRequest
from .step import NonFiniteLoss, clip_and_step, device_batch

log = logging.getLogger("sweep.train")


def cell_bytes(run: RunConfig, plan) -> float:
    """What one cell of a pack holds in memory: fp32 weights, grads and AdamW moments, and one micro-batch's
    activations (accounting.py's estimates, as the micro-batch rule uses them)."""
    m, vocab = run.model, model_vocab(run.model, run.data.vocab_size)
    per_token = accounting.activation_bytes_per_token(m.n_layer, m.d_model, m.n_head, m.seq_len, vocab,
                                                      flash_attention=plan.runtime.device.type == "cuda")
    return accounting.training_state_bytes(plan.n_params["total"]) + per_token * plan.micro_batch * m.seq_len


def memory_for_packs(device: torch.device) -> float:
    """The bytes a pack may take: GPU_MEMORY_FRACTION of the GPU's free memory, or half the host's available RAM."""
    if device.type == "cuda":
        return GPU_MEMORY_FRACTION * torch.cuda.mem_get_info(device)[0]
    return 0.5 * os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def pack_size(run: RunConfig, plan) -> int:
    """launcher.pack as a number: auto is 1 on a CPU (README: packing measured slower there than cells side by
    side), and on a GPU the most cells, up to MAX_AUTO_PACK, whose memory fits."""
    size = run.launcher.pack
    if not is_auto(size):
        return int(size)
    if plan.runtime.device.type != "cuda":
        return 1
    return int(max(1, min(MAX_AUTO_PACK, memory_for_packs(plan.runtime.device) // cell_bytes(run, plan))))


def check_pack_memory(cells: list[tuple[RunConfig, object]]) -> None:
    """Refuse a pack whose cells would not fit in memory, with the sizes and the fix."""
    need = sum(cell_bytes(run, plan) for run, plan in cells)
    have = memory_for_packs(cells[0][1].runtime.device)
    if need > have:
        run = cells[0][0]
        raise ConfigError(f"a pack of {len(cells)} {run.model.name} cells needs ~{need / 1e9:.2f} GB, and "
                          f"{have / 1e9:.2f} GB is free for it: lower launcher.pack (at most "
                          f"{max(1, int(have // (need / len(cells))))} here), or launcher.pack=1")


def pack_key(run: RunConfig, plan) -> tuple:
    """What cells of one pack share: the model's shape and the step's arithmetic (and where it runs)."""
    m = run.model
    return (m.n_layer, m.d_model, m.n_head, m.seq_len, m.vocab_size, m.tie_embeddings, plan.micro_batch,
            plan.accum, str(plan.runtime.device), str(plan.runtime.dtype))


def train_pack(runs: list[RunConfig], run_dirs: list[Path], runtime: Runtime, data: PreparedData | None = None
               ) -> list[dict | BaseException]:
    """Train these cells as one pack; per cell its summary.json's content, or the error it failed with (recorded
    in its directory). Raises loop.Stopped after a stop signal's checkpoints, as a run alone does."""
    if runtime.world_size > 1:
        raise ConfigError("a pack trains in one process: launcher.pack needs a single rank (no DDP)")
    if any(r.train.cooldowns for r in runs):
        raise ConfigError("a cooldown trunk (train.cooldowns) trains its branches itself: it is not packed")
    results: dict[int, dict | BaseException] = {}
    with ExitStack() as held:
        todo = []
        for i, (run, run_dir) in enumerate(zip(runs, run_dirs)):
            done, saved = loop.claim(run, run_dir, runtime, held)
            if done is not None:
                results[i] = done
            else:
                todo.append((i, run, run_dir, saved))
        stop = StopRequest().install()
        cells: dict[int, loop._Run] = {}
        try:
            for i, run, run_dir, saved in todo:
                cells[i] = loop._set_up(run, run_dir, runtime, saved, data, False, frozenset(), stop=stop)
                data = data or cells[i].data  # one corpus for the pack
            keys = {pack_key(r.run, r.plan) for r in cells.values()}
            if len(keys) > 1:
                raise ConfigError(f"cells of different shapes or step arithmetic cannot share a pack: {len(keys)} "
                                  f"kinds among {', '.join(r.run.run_name for r in cells.values())}")
            log.info("a pack of %d cell(s): %s", len(cells), ", ".join(r.run.run_name for r in cells.values()))
            _train(cells, results, stop)
        finally:
            for r in cells.values():
                r.close()
            stop.uninstall()
    return [results[i] for i in range(len(runs))]


def _train(cells: dict, results: dict, stop: StopRequest) -> None:
    active = {i: r for i, r in cells.items() if r.state.step < r.plan.steps}
    for i in set(cells) - set(active):  # resumed from its final checkpoint: only its summary is left to write
        results[i] = loop._finish(cells[i], {})
    packed = PackedGPT([r.model for r in active.values()]) if active else None
    while active:
        failed = _packed_step(packed, list(active.values()))
        stopping = stop.requested(next(iter(active.values())).runtime)
        leaving = []
        for i, r in active.items():
            try:
                if id(r) in failed:
                    raise failed[id(r)]
                if loop.after_step(r, lambda: stopping)[0]:
                    results[i] = loop._finish(r, {})
                    leaving.append(i)
            except NonFiniteLoss as err:  # this cell alone: recorded as its failure, its packmates go on
                log.error("%s", err)
                rundir.record_failure(r.run_dir, err)
                results[i] = err
                leaving.append(i)
        if stopping and len(leaving) < len(active):
            staying = [i for i in active if i not in leaving]
            outcome = loop._stop(active[staying[0]])  # raises Stopped, unless the signal was handed on
            results.update({i: outcome for i in staying})
            return
        for i in leaving:
            active.pop(i)
        if leaving and active:  # the cells left keep their weights and optimizer states, in a smaller stack
            packed = PackedGPT([r.model for r in active.values()])


def _packed_step(packed: PackedGPT, cells: list) -> dict:
    """One optimizer step of every cell (packed_step), then each cell's own bookkeeping, as loop.py's after a step;
    the cells that failed in it (too many skipped non-finite steps), by id, with their errors."""
    runtime = cells[0].runtime
    for r in cells:
        loop.set_step_lr(r)

    def batch(micro: int):
        xy = [device_batch(r.batches, r.state.step, micro, runtime) for r in cells]
        return torch.stack([x for x, _ in xy]), torch.stack([y for _, y in xy])

    losses, finite = packed_step(packed, [r.optimizer for r in cells], batch, cells[0].plan.accum, runtime,
                                 [r.run.train.grad_clip for r in cells],
                                 [r.run.train.nonfinite == "skip" for r in cells])
    failed = {}
    for k, r in enumerate(cells):
        if finite[k] is not False:  # a skipped step adds nothing to the interval's loss
            r.loss_sum += losses[k]
        try:
            loop.count_step(r, finite[k])
        except NonFiniteLoss as err:  # past train.max_skipped_steps: this cell fails, the others go on
            failed[id(r)] = err
    return failed


def packed_step(packed: PackedGPT, optimizers: list, get_batch, accum: int, runtime: Runtime, grad_clips: list,
                skip_nonfinite: list) -> tuple[torch.Tensor, list]:
    """step.train_step for a pack (shared with `sweep bench`): `accum` stacked micro-batches (get_batch(i) → x, y
    of shape (K, B, T)) forward and backward once under autocast, then per cell its clipping and AdamW step. Returns
    the cells' step losses (a device tensor) and per cell its finite flag: a device tensor (no host sync), or where
    the cell skips non-finite steps a bool, its step not taken when False."""
    losses = None
    for micro in range(accum):
        x, y = get_batch(micro)
        with runtime.autocast():
            micro_losses = packed(x, y)
            (micro_losses.sum() / accum).backward()
        losses = micro_losses.detach() / accum if losses is None else losses + micro_losses.detach() / accum
    packed.hand_grads()
    flags = [clip_and_step(cell, optimizer, clip, skip)
             for cell, optimizer, clip, skip in zip(packed.cells, optimizers, grad_clips, skip_nonfinite)]
    packed.zero_grad(set_to_none=True)
    return losses, flags

