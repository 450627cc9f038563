"""One training run, top to bottom: check the run directory, plan, build, resume, then the loop (step, log,
evaluate, checkpoint, stop on a signal), then summary.json. Everything a resume needs besides the weights, the
optimizer and the RNG is one small TrainState. A cooldown trunk also saves its state at its branch points
(`handoff`), from which train/branches.py starts each branch as a resume."""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

from .. import rundir
from ..config import ConfigError, RunConfig
from ..config.naming import horizon_tag, study_group
from ..config.schema import is_auto
from ..data import PreparedData, TokenBatches, open_tokens, prepare, spread, val_windows
from ..tasks.runner import task_event, tasks_of
from . import checkpoint
from .plan import Plan, check_repetition, check_stable, lr_at, lr_origin, make_plan, model_vocab, untuned_lr
from .progress import PEAK_SECONDS, Progress
from .records import TrainClock, TrainState, config_record, event, summary_of
from .runtime import Runtime, StopRequest, matmul_peak
from .step import (NonFiniteLoss, build, check_finite, device_batch, evaluate, mean_over_ranks, set_lr,
                   step_module, train_step)
from .tracking import Tracker, check_prefix

log = logging.getLogger("sweep.train")


class Stopped(SystemExit):
    """Raised after a signal-triggered checkpoint; exits with exits.EXIT_STOPPED, or EXIT_INTERRUPTED for Ctrl-C."""


def eval_set(windows, data: PreparedData) -> tuple:
    """(windows, UTF-8 bytes of their targets): what evaluate() takes."""
    return windows, int(data.token_bytes()[windows[:, 1:].numpy()].sum())


def train(run: RunConfig, run_dir: Path, runtime: Runtime, data: PreparedData | None = None,
          progress: bool = True, handoff: frozenset = frozenset(), summary_extra: dict | None = None) -> dict:
    """Train one cell into run_dir (resuming from its checkpoint if any); returns summary.json's content.
    A completed cell is only read (so a read-only directory still counts as done); otherwise the main rank holds the
    cell's lock while it trains, so a second launch of the same cell is refused instead of interleaving with it.
    progress: a bar on a terminal (False when cells share one: their bars would interleave); otherwise periodic
    log lines (train/progress.py). handoff: the steps at which a cooldown trunk saves its state for its branches
    (rundir.branch_point); summary_extra: fields added to summary.json (a trunk's or a branch's)."""
    with ExitStack() as held:
        done, saved = claim(run, run_dir, runtime, held)
        if done is not None:
            return done
        return _train_claimed(run, run_dir, runtime, saved, data, progress, handoff, summary_extra or {})


def claim(run: RunConfig, run_dir: Path, runtime: Runtime, held: ExitStack) -> tuple[dict | None, dict | None]:
    """The same-cell check, then (summary.json's content, None) for a completed cell, which is only read; else the
    main rank's claim on the directory, held in `held`, and (None, its config.yaml as it is once claimed)."""
    rundir.check_same_cell(run, run_dir, rundir.read_config(run_dir))
    if rundir.is_completed(run_dir):
        log.info("%s is already completed; nothing to train", run_dir)
        return rundir.read_summary(run_dir), None
    if runtime.is_main:
        held.enter_context(rundir.claim(run_dir))
    saved = rundir.read_config(run_dir)  # again, now that no other process can be writing it
    rundir.check_same_cell(run, run_dir, saved)
    if rundir.is_completed(run_dir):
        log.info("%s was completed by another process; nothing to train", run_dir)
        return rundir.read_summary(run_dir), None
    return None, saved


def _train_claimed(run: RunConfig, run_dir: Path, runtime: Runtime, saved: dict | None, data: PreparedData | None,
                   progress: bool, handoff: frozenset, summary_extra: dict) -> dict:
    """The run, top to bottom: set up (or resume), then each step: train, log, evaluate, checkpoint, stop."""
    r = _set_up(run, run_dir, runtime, saved, data, progress, handoff)
    t, plan = run.train, r.plan
    try:
        while r.state.step < plan.steps:
            _train_one_step(r)
            # Under DDP the ranks agree on stopping through an all-reduce and a host sync: only on log steps,
            # which sync anyway, so the steps between run ahead of the host.
            if after_step(r, lambda: (r.runtime.world_size == 1 or r.state.step % t.log_every == 0)
                          and r.stop.requested(r.runtime))[1]:
                return _stop(r)
        return _finish(r, summary_extra)
    finally:
        r.close()


@dataclass
class _Run:
    """What one attempt at a run holds while it trains: set up by _set_up, read and advanced by the loop's parts."""
    run: RunConfig
    run_dir: Path
    plan: Plan
    runtime: Runtime
    data: PreparedData
    epochs: float
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    train_model: torch.nn.Module  # the model as stepped (compiled, DDP-wrapped)
    batches: TokenBatches
    held_out: torch.Tensor
    final_set: tuple
    mid_set: tuple
    tasks: object  # tasks.runner.RunTasks, or None
    tracker: Tracker | None  # main rank only
    view: Progress
    stop: StopRequest
    state: TrainState
    bad_steps: torch.Tensor  # steps whose loss was non-finite, read lazily: no per-step sync
    loss_sum: torch.Tensor
    attempt_start: float
    handoff: frozenset
    lr: float = 0.0
    # A resume restores the loss interval's steps, not their time: tok_per_s counts only the steps the clock saw.
    clock: TrainClock = field(default_factory=TrainClock)
    timed_steps: int = 0
    val: tuple | None = None
    task_scores: dict | None = None

    def event(self) -> dict:
        return event(self.state.step, self.plan)

    def close(self) -> None:
        self.view.close()
        self.stop.uninstall()
        if self.tracker:
            self.tracker.finish()
            self.tracker = None


def _set_up(run: RunConfig, run_dir: Path, runtime: Runtime, saved: dict | None, data: PreparedData | None,
            progress: bool, handoff: frozenset, stop: StopRequest | None = None) -> _Run:
    """Data, plan (every `auto` decided there), model and optimizer, resumed from the checkpoint if there is one;
    config.yaml, the tracker, the batches and the held-out sets. stop: a pack's one StopRequest (else the run's)."""
    t = run.train
    attempt_start = time.time()
    data = data or prepare(run.data, run.cache_root)
    vocab_size = model_vocab(run.model, data.vocab_size)
    if vocab_size < data.vocab_size:
        raise ConfigError(f"model.vocab_size={vocab_size} is smaller than the tokenizer's {data.vocab_size} tokens "
                          f"({data.tokenizer_path}); set model.vocab_size=auto or ≥ {data.vocab_size}")
    started_dtype = ((saved or {}).get("runtime") or {}).get("dtype") if checkpoint.exists(run_dir) else None
    plan = make_plan(run.model, t, vocab_size, runtime, run.data.val_tokens, run.schedule,
                     run.sweep.tokens_per_param_range, started_dtype=started_dtype)
    runtime = plan.runtime
    check_stable(plan, run.schedule)
    rundir.check_same_defaults(run_dir, saved, plan.defaults())
    epochs = check_repetition(plan, run.data, data.train_tokens, run.run_name)
    if epochs > 1:
        log.warning("%s: %.2f passes over data=%s's %s unique train tokens: later passes repeat data", run.run_name,
                    epochs, run.data.name, f"{data.train_tokens:,}")
    tasks = tasks_of(run, data)  # before any training: a tokenizer or context the suite cannot use is an input error
    model, optimizer = build(run.model, t, vocab_size, run.init_seed, plan.lr, plan.beta2, runtime)
    run_dir.mkdir(parents=True, exist_ok=True)

    # A checkpoint newer than metrics.jsonl (its events lost, e.g. written before the metrics were fsynced) gives
    # way to the previous one, which the file still holds.
    resumed = checkpoint.load(run_dir, warn=log.warning, model=model,
                              fits=lambda s: check_prefix(run_dir / rundir.METRICS, s["metrics_offset"]))
    state = TrainState()
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        checkpoint.set_rng_state(resumed["rng"])
        state = TrainState.from_checkpoint(resumed)
        log.info("resuming %s at step %d/%d", run.run_name, state.step, plan.steps)
    record = config_record(run, plan, vocab_size, runtime)
    record["plan"]["epochs"] = epochs
    _log_plan(run, plan, record)
    tracker = None
    if runtime.is_main:
        rundir.write_config(run_dir, record)
        group = run.logger.group if not is_auto(run.logger.group) else \
            study_group(run.sweep.name, run.data.name, run_dir.parent)
        tags = (run.model.name, horizon_tag(t.tokens, t.flops, t.tokens_per_param, t.cooldowns), run.sweep.name)
        tracker = Tracker(run_dir, run.logger, run.run_name, group, record, tags=tags,
                          wandb_id=resumed and resumed.get("wandb_id"),
                          resume_offset=resumed and resumed["metrics_offset"])

    held_out = val_windows(open_tokens(data.val_path), run.model.seq_len)
    return _Run(
        run=run, run_dir=run_dir, plan=plan, runtime=runtime, data=data, epochs=epochs, model=model,
        optimizer=optimizer, train_model=step_module(model, runtime),
        batches=TokenBatches(open_tokens(data.train_path), run.model.seq_len, plan.micro_batch, run.order_seed,
                             task_rows=tasks and tasks.rows),
        held_out=held_out, final_set=eval_set(spread(held_out, plan.final_windows), data),  # the same for every run
        mid_set=eval_set(spread(held_out, plan.eval_windows), data), tasks=tasks, tracker=tracker,
        view=Progress(run.run_name, plan.steps, state.step, enabled=runtime.is_main, bar=None if progress else False,
                      flops_per_token=plan.flops_per_token,
                      peak=partial(matmul_peak, runtime.device, runtime.dtype, PEAK_SECONDS)),
        stop=stop or StopRequest().install(), state=state,
        bad_steps=torch.zeros(plan.steps, dtype=torch.bool, device=runtime.device),
        loss_sum=torch.full((), state.interval_loss, device=runtime.device), attempt_start=attempt_start,
        handoff=handoff)


def _log_plan(run: RunConfig, plan: Plan, record: dict) -> None:
    t = run.train
    log.info("%s: %s params (matmul), %d steps of %d tokens (%d micro-batches of %d sequences), lr %.3g (%s), "
             "beta2 %g; %s", run.run_name, f"{plan.n_params['matmul']:,}", plan.steps, plan.batch_tokens, plan.accum,
             plan.micro_batch, plan.lr, lr_origin(t, plan), plan.beta2,
             ", ".join(f"{k} {v}" for k, v in record["runtime"].items()))
    log.info("%s: evaluating every %d steps on %s held-out tokens, finally on %s: %.1f%% of the training FLOPs",
             run.run_name, plan.eval_every, f"{plan.eval_windows * plan.seq_len:,}",
             f"{plan.final_windows * plan.seq_len:,}", 100 * plan.eval_flops / plan.flops)
    if untuned := untuned_lr(t, plan):
        log.warning("%s: %s", run.run_name, untuned)


def after_step(r: _Run, stopping) -> tuple[bool, bool]:
    """After a step: log, evaluate and checkpoint as the step calls for, in that order; stopping() (asked between
    the evaluation and the checkpoint, unless this was the last step) says whether a stop signal ends the run here,
    which checkpoints it. Returns (the last step, stopping)."""
    t, plan, handoff = r.run.train, r.plan, r.handoff
    step, last = r.state.step, r.state.step == plan.steps
    # A trunk logs on the log grid only, so the loss interval it hands its last branch is an independent run's.
    if step % t.log_every == 0 or (last and not handoff):
        _log_interval(r)
    if step % plan.eval_every == 0 or last:
        _evaluate(r, final=last)
    stop = not last and stopping()
    if step % t.checkpoint_every == 0 or last or stop or step in handoff:
        _checkpoint(r)
    return last, stop


def _train_one_step(r: _Run) -> None:
    t, step = r.run.train, r.state.step
    set_step_lr(r)
    finite = train_step(r.train_model, r.model, r.optimizer, partial(device_batch, r.batches, step, runtime=r.runtime),
                        r.plan.accum, r.runtime, t.grad_clip, r.loss_sum, skip_nonfinite=t.nonfinite == "skip")
    count_step(r, finite)


def set_step_lr(r: _Run) -> None:
    """The schedule's lr for the step about to be taken, into the optimizer."""
    r.lr = lr_at(r.state.step, r.plan, r.run.schedule)
    set_lr(r.optimizer, r.lr)


def count_step(r: _Run, finite) -> None:
    """A step taken (finite: train_step's flag): the skipped-step bound, the lazy non-finite record, the counters."""
    t, state, step = r.run.train, r.state, r.state.step
    if finite is False:
        state.skipped += 1
        log.warning("%s: skipped step %d (non-finite gradient), %d/%d", r.run.run_name, step + 1, state.skipped,
                    t.max_skipped_steps)
        if state.skipped > t.max_skipped_steps:
            raise NonFiniteLoss(f"{r.run.run_name}: more than train.max_skipped_steps={t.max_skipped_steps} "
                                f"non-finite steps (last at step {step + 1})")
    else:
        state.interval_steps += 1  # the mean train loss divides by the steps whose losses it holds
        if t.nonfinite == "stop":
            r.bad_steps[step] = ~finite
    state.step += 1
    r.timed_steps += 1
    r.view.advance()


def _log_interval(r: _Run) -> None:
    """The train event of the steps since the last one (mean loss, lr, throughput); a host sync."""
    state, plan = r.state, r.plan
    check_finite(r.bad_steps, state.step, r.run.run_name)
    train_loss = mean_over_ranks(r.loss_sum, r.runtime) / state.interval_steps if state.interval_steps else None
    tok_per_s = r.timed_steps * plan.batch_tokens / r.clock.elapsed()
    if r.tracker:
        r.tracker.log({**r.event(), "train_loss": train_loss, "lr": r.lr, "tok_per_s": tok_per_s,
                       "epochs": state.step * plan.batch_tokens / r.data.train_tokens})
    r.view.report(state.step, state.step * plan.batch_tokens, train_loss, r.val and r.val[0], tok_per_s)
    r.loss_sum.zero_()
    state.interval_steps, r.clock, r.timed_steps = 0, TrainClock(), 0


def _evaluate(r: _Run, final: bool) -> None:
    """Held-out loss (the whole final set on the last step) and, on the main rank, the task suite."""
    with r.clock.paused():  # eval time is not training throughput
        began = time.perf_counter()
        r.val = evaluate(r.model, *(r.final_set if final else r.mid_set), r.plan.micro_batch, r.runtime)
        if r.tracker:
            r.tracker.log({**r.event(), "val_loss": r.val[0], "val_bpb": r.val[1]})
        if r.tasks and r.tasks.scoring and r.runtime.is_main:
            r.task_scores = r.tasks.score(r.model, r.held_out, r.runtime, final=final, at=r.event())
            r.tracker.log({**r.event(), **task_event(r.task_scores)})
        r.state.eval_s += time.perf_counter() - began


def _checkpoint(r: _Run) -> None:
    """latest.pt (and a trunk's branch point at a handoff step), after checking no bad step precedes it."""
    state = r.state
    if r.run.train.nonfinite == "stop":
        check_finite(r.bad_steps, state.step, r.run.run_name)
    state.interval_loss = mean_over_ranks(r.loss_sum, r.runtime)  # every rank restores it, then adds its own
    if not r.runtime.is_main:
        return
    saved_state = {"model": checkpoint.own_storage(r.model.state_dict()), "optimizer": r.optimizer.state_dict(),
                   "rng": checkpoint.rng_state(), "wandb_id": r.tracker.wandb_id, "metrics_offset": r.tracker.offset(),
                   **state.to_checkpoint(r.plan.batch_tokens, state.wall_s + time.time() - r.attempt_start)}
    if state.step in r.handoff:  # before the checkpoint: a resume past it would never write it
        checkpoint.save_as(rundir.branch_point(r.run_dir, state.step), saved_state)
    checkpoint.save(r.run_dir, saved_state)


def _stop(r: _Run) -> dict:
    """After a signal's checkpoint: exit with the signal's code (or hand it on to a wrapper that asked)."""
    log.warning("%s: signal %d received; checkpointed at step %d, exiting with code %d; relaunch the same command to "
                "resume", r.run.run_name, r.stop.signum, r.state.step, r.stop.exit_code)
    if r.tracker:
        r.tracker.finish()
        r.tracker = None
    if not r.stop.forward():
        raise Stopped(r.stop.exit_code)
    return {"status": "stopped", "step": r.state.step}


def _finish(r: _Run, summary_extra: dict) -> dict:
    """tasks.json and summary.json (last: its presence means the cell is done)."""
    run, state = r.run, r.state
    if r.val is None:  # resumed from the final checkpoint: its eval is logged already, recompute the value
        r.val = evaluate(r.model, *r.final_set, r.plan.micro_batch, r.runtime)
    if r.tasks and r.tasks.scoring and r.runtime.is_main:
        if r.task_scores is None or not r.task_scores["final"]:  # resumed from the final checkpoint
            r.task_scores = r.tasks.score(r.model, r.held_out, r.runtime, final=True, at=r.event())
        rundir.write_tasks(r.run_dir, r.task_scores)
    summary = {**summary_of(run, r.plan, state, r.val, r.data, state.wall_s + time.time() - r.attempt_start, r.epochs,
                            val_tokens=int(r.final_set[0].shape[0] * run.model.seq_len)), **summary_extra}
    if r.tracker:
        r.tracker.finish(summary)
        r.tracker = None
        rundir.write_summary(r.run_dir, summary)
        log.info("%s: completed in %.0f s, val_loss %.4f (%.3f bits/byte); %s", run.run_name, summary["wall_s"],
                 r.val[0], r.val[1], r.run_dir)
    return summary
