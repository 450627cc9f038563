"""One training run: plan the horizon, train with AdamW, evaluate, checkpoint, resume, write the run directory."""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import contextmanager, nullcontext
import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from omegaconf import OmegaConf
from tqdm import tqdm

from . import accounting, checkpoint
from .config import ConfigError, RunConfig, ScheduleConfig
from .data import PreparedData, TokenBatches, open_tokens, prepare, val_windows
from .model import GPT, GPTConfig
from .runtime import EXIT_STOPPED, Runtime, StopRequest
from .tracking import Tracker, write_json_atomic, write_text_atomic

log = logging.getLogger("sweep.train")
CPU_ACTIVATION_BUDGET = 1.5e9  # bytes of activations per micro-batch on CPU
GPU_MEMORY_FRACTION = 0.7  # of what the weights and optimizer leave free
CPU_COMPILE_MIN_FLOPS = 1e14  # ≥ ~5 min at the fastest CPU speeds measured: a ~30 s compile is then repaid
EVALS_PER_RUN = 20  # with train.eval_every=null: enough points for loss curves and Approach 1's envelope


class NonFiniteLoss(RuntimeError):
    pass


class Stopped(SystemExit):
    """Raised after a signal-triggered checkpoint; exits with runtime.EXIT_STOPPED."""

    def __init__(self):
        super().__init__(EXIT_STOPPED)


@dataclass(frozen=True)
class Plan:
    """Everything derived from the config and the model size; written into config.yaml and summary.json."""
    n_params: dict
    flops_per_token: float
    horizon: str
    flops_budget: float | None
    steps: int
    tokens: int
    batch_tokens: int
    micro_batch: int
    accum: int
    lr: float
    warmup_steps: int

    @property
    def flops(self) -> float:
        return self.tokens * self.flops_per_token


def make_plan(run: RunConfig, vocab_size: int, runtime: Runtime) -> Plan:
    m, t = run.model, run.train
    counts = accounting.param_counts(m.n_layer, m.d_model, vocab_size, m.seq_len, m.tie_embeddings)
    per_token = accounting.flops_per_token(m.n_layer, m.d_model, vocab_size, m.seq_len)
    try:
        horizon, source = accounting.horizon_tokens(t.tokens, t.flops, t.tokens_per_param,
                                                    counts["non_embedding"], per_token)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    batch_tokens = int(t.batch_tokens or accounting.default_batch_tokens(counts["matmul"], m.seq_len,
                                                                          runtime.world_size))
    sequences, rest = divmod(batch_tokens, m.seq_len)
    if rest or sequences % runtime.world_size:
        raise ConfigError(f"train.batch_tokens={batch_tokens} must be a multiple of model.seq_len={m.seq_len} × "
                          f"{runtime.world_size} process(es); try "
                          f"{math.ceil(max(1, sequences) / runtime.world_size) * runtime.world_size * m.seq_len}")
    local_sequences = sequences // runtime.world_size
    if t.micro_batch is None:
        per_token_bytes = accounting.activation_bytes_per_token(
            m.n_layer, m.d_model, m.n_head, m.seq_len, vocab_size,
            flash_attention=runtime.device.type == "cuda")
        if runtime.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(runtime.device)
            budget = GPU_MEMORY_FRACTION * (free - accounting.training_state_bytes(counts["total"]))
        else:
            budget = CPU_ACTIVATION_BUDGET
        micro = accounting.default_micro_batch(local_sequences, m.seq_len, per_token_bytes, budget)
    else:
        micro = t.micro_batch
    if local_sequences % micro:
        raise ConfigError(f"train.batch_tokens={batch_tokens} is not a multiple of train.micro_batch={micro} × "
                          f"model.seq_len={m.seq_len} × {runtime.world_size} process(es)")
    steps = accounting.steps_for(horizon, batch_tokens)
    lr = t.lr or accounting.default_lr(counts["matmul"])
    warmup = t.warmup_tokens if t.warmup_tokens is not None else accounting.default_warmup_tokens(
        counts["matmul"], horizon)
    return Plan(n_params=counts, flops_per_token=per_token, horizon=source,
                flops_budget=float(t.flops) if t.flops is not None else None, steps=steps,
                tokens=steps * batch_tokens, batch_tokens=batch_tokens, micro_batch=micro,
                accum=local_sequences // micro, lr=lr, warmup_steps=min(steps, round(warmup / batch_tokens)))


def check_plan(run: RunConfig) -> Plan:
    """Everything checkable before any data or model work (horizon, batch arithmetic, device), for a fast, clean
    rejection; the tokenizer's real vocabulary can only be smaller than data.vocab_size, which changes nothing here."""
    from .runtime import select

    return make_plan(run, run.model.vocab_size or run.data.vocab_size, select(run.device, run.train))


def lr_at(step: int, plan: Plan, schedule: ScheduleConfig) -> float:
    """lr for optimizer step `step` (0-based): linear warmup, then cosine / WSD / constant."""
    if step < plan.warmup_steps:
        return plan.lr * (step + 1) / plan.warmup_steps
    floor = plan.lr * schedule.min_lr_ratio
    if schedule.name == "constant":
        return plan.lr
    if schedule.name == "wsd":
        decay_steps = max(1, round(schedule.decay_fraction * plan.steps))
        decay_start = plan.steps - decay_steps
        if step < decay_start:
            return plan.lr
        return plan.lr + (floor - plan.lr) * (step + 1 - decay_start) / decay_steps
    progress = (step + 1 - plan.warmup_steps) / max(1, plan.steps - plan.warmup_steps)
    return floor + 0.5 * (plan.lr - floor) * (1 + math.cos(math.pi * min(1.0, progress)))


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


def _config_record(run: RunConfig, plan: Plan, vocab_size: int) -> dict:
    """The fully resolved config: per-size defaults filled in with the values the run uses."""
    record = OmegaConf.to_container(OmegaConf.structured(run), resolve=True)
    record["model"]["vocab_size"] = vocab_size
    record["train"].update(batch_tokens=plan.batch_tokens, micro_batch=plan.micro_batch, lr=plan.lr,
                           warmup_tokens=plan.warmup_steps * plan.batch_tokens)
    record["plan"] = {**asdict(plan), "flops": plan.flops}
    return record


def build(run: RunConfig, vocab_size: int, runtime: Runtime, plan: Plan) -> tuple[GPT, torch.optim.Optimizer]:
    torch.manual_seed(run.seed)
    m = run.model
    model = GPT(GPTConfig(m.n_layer, m.d_model, m.n_head, m.seq_len, vocab_size, m.tie_embeddings))
    model.to(runtime.device)
    groups, betas = model.param_groups(run.train.weight_decay), (run.train.beta1, run.train.beta2)
    try:  # one fused kernel over all parameters: on a 2-core CPU 6x faster than foreach (gpt-10m: 5 vs 33 ms)
        optimizer = torch.optim.AdamW(groups, lr=plan.lr, betas=betas, fused=True)
    except RuntimeError:  # torch < 2.4 has no fused CPU AdamW; its per-tensor loop beats foreach on CPU
        optimizer = torch.optim.AdamW(groups, lr=plan.lr, betas=betas, foreach=runtime.device.type == "cuda")
    return model, optimizer


def settle(runtime: Runtime, plan: Plan) -> Runtime:
    """train.compile=auto on CPU, which depends on the run: torch.compile only for runs of ≥ CPU_COMPILE_MIN_FLOPS.
    Compiling takes 10-30 s on 2 cores and needs a C++ toolchain that short cells should not depend on."""
    if runtime.compile is not None:
        return runtime
    return dataclasses.replace(runtime, compile=plan.flops >= CPU_COMPILE_MIN_FLOPS)


def step_module(model: GPT, runtime: Runtime) -> torch.nn.Module:
    """What the step calls: the model compiled and/or wrapped in DDP as the (settled) runtime says; weights shared."""
    train_model = torch.compile(model) if runtime.compile else model
    if runtime.world_size > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(train_model)
    return train_model


def train_step(train_model, model: GPT, optimizer: torch.optim.Optimizer, get_batch, accum: int,
               runtime: Runtime, grad_clip: float, loss_sum: torch.Tensor, skip_nonfinite: bool = False):
    """One optimizer step, the code both train() and `sweep bench` run: `accum` micro-batches (get_batch(i) → x, y
    on the device) forward and backward under autocast, clip, AdamW. Adds the step's mean loss to loss_sum on the
    device. Returns the step's finite flag as a device tensor (no host sync), or with skip_nonfinite a bool, the
    step not taken when False."""
    for micro in range(accum):
        x, y = get_batch(micro)
        # DDP all-reduces gradients only on the last micro-batch of the step.
        skip_sync = runtime.world_size > 1 and micro < accum - 1
        with (train_model.no_sync() if skip_sync else nullcontext()), runtime.autocast():
            _, loss = train_model(x, y)
            (loss / accum).backward()
        loss_sum += loss.detach() / accum
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    finite = torch.isfinite(grad_norm)
    if not skip_nonfinite:
        optimizer.step()  # a non-finite step is caught later from the returned flag
    elif finite := bool(finite):  # the host sync is the price of skipping
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return finite


def summary_path(run_dir: Path) -> Path:
    return run_dir / "summary.json"


def is_completed(run_dir: Path) -> bool:
    path = summary_path(run_dir)
    try:
        return path.exists() and json.loads(path.read_text()).get("status") == "completed"
    except json.JSONDecodeError:
        return False


# Keys that may change between launches of one cell without changing what it computes.
_NON_DEFINING = {"train": {"eval_every", "checkpoint_every", "log_every", "compile", "threads", "micro_batch",
                           "nonfinite", "max_skipped_steps"},
                 "data": {"cache_dir"}}


def saved_config(run_dir: Path) -> dict | None:
    """The config.yaml a run directory was started with (resolved: per-size defaults and runtime filled in)."""
    path = run_dir / "config.yaml"
    return OmegaConf.to_container(OmegaConf.load(path)) if path.exists() else None


def check_same_cell(run: RunConfig, run_dir: Path, saved: dict | None) -> None:
    """A re-launch must mean the same cell: refuse to resume or skip a directory trained with other settings."""
    if saved is None:
        return
    current = OmegaConf.to_container(OmegaConf.structured(run))
    differ = []
    for section in ("model", "data", "train", "schedule"):
        for key, value in current[section].items():
            if value is None or key in _NON_DEFINING.get(section, ()):
                continue  # None: a per-size default, filled in the saved file
            if saved.get(section, {}).get(key) != value:
                differ.append(f"{section}.{key}: {saved.get(section, {}).get(key)!r} there, {value!r} now")
    if saved.get("seed") != run.seed:
        differ.append(f"seed: {saved.get('seed')!r} there, {run.seed!r} now")
    if differ:
        raise ConfigError(f"{run_dir} holds a run with other settings ({'; '.join(differ)}); use another "
                          f"out_dir or sweep.name, or delete that directory to retrain it")


def check_same_plan(run_dir: Path, saved: dict | None, plan: Plan) -> None:
    """The per-size defaults (batch, lr, warm-up) a run directory was started with must still be what this version
    computes: resuming with others would change the run mid-way."""
    if saved is None:
        return
    saved = saved.get("train", {})
    now = {"batch_tokens": plan.batch_tokens, "lr": plan.lr, "warmup_tokens": plan.warmup_steps * plan.batch_tokens}
    differ = {k: (saved.get(k), v) for k, v in now.items() if saved.get(k) is not None and saved.get(k) != v}
    if differ:
        raise ConfigError(f"{run_dir} was started with other per-size defaults ("
                          + "; ".join(f"train.{k}: {a!r} there, {b!r} now" for k, (a, b) in differ.items())
                          + "); to resume it as it was, pass " + " ".join(f"train.{k}={a}" for k, (a, _) in
                          differ.items()) + f" (a single run also needs run_name={run_dir.name}, which those "
                          f"overrides would otherwise rename), or use another out_dir or sweep.name")


def _started_precision(run_dir: Path, saved: dict | None, runtime: Runtime) -> Runtime:
    """A resumed run keeps the precision train.dtype=auto chose when it started (config.yaml's runtime block), even
    on a machine whose auto choice differs, so the run does not change arithmetic half-way."""
    saved = ((saved or {}).get("runtime") or {}).get("dtype")
    if saved is None or saved == runtime.dtype_name:
        return runtime
    dtype = getattr(torch, saved)
    if dtype == torch.bfloat16 and runtime.device.type == "cuda" and not torch.cuda.is_bf16_supported():
        log.warning("%s started in bfloat16, which this GPU lacks; going on in %s", run_dir.name, runtime.dtype)
        return runtime
    log.warning("%s started in %s under train.dtype=auto; keeping it (auto here would be %s)", run_dir.name, saved,
                runtime.dtype_name)
    return dataclasses.replace(runtime, dtype=dtype)


class TrainClock:
    """Seconds since it was made, minus the spans spent inside paused() (evals): the time tok_per_s divides by."""

    def __init__(self, now=time.perf_counter):
        self.now, self.start, self.paused_s = now, now(), 0.0

    @contextmanager
    def paused(self):
        began = self.now()
        try:
            yield
        finally:
            self.paused_s += self.now() - began

    def elapsed(self) -> float:
        return self.now() - self.start - self.paused_s


def train(run: RunConfig, run_dir: Path, runtime: Runtime, data: PreparedData | None = None,
          progress: bool = True) -> dict:
    """Train one cell into run_dir (resuming from its checkpoint if any); returns summary.json's content.
    progress: a tqdm bar (off when cells share a terminal: their bars would interleave; a log line ends each)."""
    saved = saved_config(run_dir)
    check_same_cell(run, run_dir, saved)
    if is_completed(run_dir):
        log.info("%s is already completed; nothing to train", run_dir)
        return json.loads(summary_path(run_dir).read_text())
    started = time.time()
    data = data or prepare(run.data, Path(run.out_dir) / run.data.cache_dir)
    vocab_size = run.model.vocab_size or data.vocab_size
    if vocab_size < data.vocab_size:
        raise ConfigError(f"model.vocab_size={vocab_size} is smaller than the tokenizer's {data.vocab_size} tokens "
                          f"({data.tokenizer_path}); drop model.vocab_size or set it ≥ {data.vocab_size}")
    plan = make_plan(run, vocab_size, runtime)
    check_same_plan(run_dir, saved, plan)
    runtime = settle(runtime, plan)
    model, optimizer = build(run, vocab_size, runtime, plan)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = checkpoint.load(run_dir, warn=log.warning)
    step, skipped, wall_before = 0, 0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        checkpoint.set_rng_state(state["rng"])
        step, skipped, wall_before = state["step"], state["skipped"], state["wall_s"]
        log.info("resuming %s at step %d/%d", run.run_name, step, plan.steps)
        if run.train.dtype == "auto":
            runtime = _started_precision(run_dir, saved, runtime)
    record = _config_record(run, plan, vocab_size)
    record["runtime"] = {"device": str(runtime.device), "dtype": runtime.dtype_name,
                         "compile": runtime.compile, "threads": torch.get_num_threads(),
                         "world_size": runtime.world_size}  # what the `auto` settings became on this machine
    log.info("%s: %s params (matmul), %d steps of %d tokens (%d micro-batches of %d sequences), lr %.3g; %s",
             run.run_name, f"{plan.n_params['matmul']:,}", plan.steps, plan.batch_tokens, plan.accum,
             plan.micro_batch, plan.lr, ", ".join(f"{k} {v}" for k, v in record["runtime"].items()))
    tracker = None
    if runtime.is_main:
        write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(record))
        tracker = Tracker(run_dir, run.logger, run.run_name, run.sweep.name, record,
                          wandb_id=state and state.get("wandb_id"),
                          resume_offset=state and state["metrics_offset"])

    train_model = step_module(model, runtime)
    batches = TokenBatches(open_tokens(data.train_path), run.model.seq_len, plan.micro_batch, run.seed)
    windows = val_windows(open_tokens(data.val_path), run.model.seq_len)
    target_bytes = int(data.token_bytes()[windows[:, 1:].numpy()].sum())
    stop = StopRequest().install()
    bad_steps = torch.zeros(plan.steps, dtype=torch.bool, device=runtime.device)  # checked lazily: no per-step sync
    loss_sum = torch.zeros((), device=runtime.device)
    # A resume restores the loss interval's steps, not their time: tok_per_s counts only the steps the clock saw.
    interval_clock, interval_steps, timed_steps = TrainClock(), 0, 0
    if state is not None:
        loss_sum.fill_(state["loss_interval"][0])
        interval_steps = state["loss_interval"][1]
    t = run.train
    eval_every = t.eval_every or max(1, plan.steps // EVALS_PER_RUN)
    val_loss = val_bpb = None

    def mean_over_ranks(value: torch.Tensor) -> float:
        if runtime.world_size > 1:
            value = value.clone()
            dist.all_reduce(value)
            value /= runtime.world_size
        return value.item()

    def save() -> None:
        check_finite(step)
        interval_loss = mean_over_ranks(loss_sum)  # every rank restores this; their later sums average onto it
        if runtime.is_main:
            checkpoint.save(run_dir, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "tokens": step * plan.batch_tokens, "skipped": skipped, "rng": checkpoint.rng_state(),
                "wandb_id": tracker.wandb_id, "metrics_offset": tracker.offset(),
                "loss_interval": (interval_loss, interval_steps),  # a stop between log steps resumes the mean
                "wall_s": wall_before + time.time() - started})

    def check_finite(upto: int) -> None:
        if t.nonfinite == "stop" and bool(bad_steps[:upto].any()):
            first = int(bad_steps[:upto].nonzero()[0])
            raise NonFiniteLoss(f"{run.run_name}: non-finite loss or gradient at step {first + 1}; no checkpoint "
                                f"was written after it. Lower train.lr, or set train.nonfinite=skip")

    def event() -> dict:
        return {"step": step, "tokens": step * plan.batch_tokens, "flops": step * plan.batch_tokens * plan.flops_per_token}

    bar = tqdm(total=plan.steps, initial=step, desc=run.run_name, unit="step",
               disable=not (runtime.is_main and progress), dynamic_ncols=True, leave=False)
    try:
        while step < plan.steps:
            lr = lr_at(step, plan, run.schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr

            def get_batch(micro: int) -> tuple[torch.Tensor, torch.Tensor]:
                x, y = batches.get(step, micro * runtime.world_size + runtime.rank)
                if runtime.device.type == "cuda":  # from pageable memory the copy would wait for the GPU to drain
                    x, y = x.pin_memory(), y.pin_memory()
                return x.to(runtime.device, non_blocking=True), y.to(runtime.device, non_blocking=True)

            finite = train_step(train_model, model, optimizer, get_batch, plan.accum, runtime, t.grad_clip,
                                loss_sum, skip_nonfinite=t.nonfinite == "skip")
            if finite is False:
                skipped += 1
                log.warning("%s: skipped step %d (non-finite gradient), %d/%d", run.run_name, step + 1,
                            skipped, t.max_skipped_steps)
                if skipped > t.max_skipped_steps:
                    raise NonFiniteLoss(f"{run.run_name}: more than train.max_skipped_steps="
                                        f"{t.max_skipped_steps} non-finite steps (last at step {step + 1})")
                loss_sum.zero_()
            elif t.nonfinite == "stop":
                bad_steps[step] = ~finite
            step += 1
            interval_steps += 1
            timed_steps += 1
            bar.update(1)
            last = step == plan.steps
            if step % t.log_every == 0 or last:
                check_finite(step)
                elapsed = interval_clock.elapsed()
                train_loss = mean_over_ranks(loss_sum) / interval_steps
                tok_per_s = timed_steps * plan.batch_tokens / elapsed
                if tracker:
                    tracker.log({**event(), "train_loss": train_loss, "lr": lr, "tok_per_s": tok_per_s})
                bar.set_postfix(loss=f"{train_loss:.3f}", tok_s=f"{tok_per_s:,.0f}",
                                tokens=f"{step * plan.batch_tokens:.3g}")
                loss_sum.zero_()
                interval_clock, interval_steps, timed_steps = TrainClock(), 0, 0
            if step % eval_every == 0 or last:
                with interval_clock.paused():  # eval time is not training throughput
                    val_loss, val_bpb = evaluate(model, windows, target_bytes, plan.micro_batch, runtime)
                    if tracker:
                        tracker.log({**event(), "val_loss": val_loss, "val_bpb": val_bpb})
            if step % t.checkpoint_every == 0 or last:
                save()
            # Under DDP the ranks agree on stopping through an all-reduce and a host sync: only on log steps,
            # which sync anyway, so the steps between run ahead of the host.
            check_stop = runtime.world_size == 1 or step % t.log_every == 0
            if not last and check_stop and stop.requested(runtime):
                save()
                log.warning("%s: signal %d received; checkpointed at step %d, exiting with code %d",
                            run.run_name, stop.signum, step, EXIT_STOPPED)
                if tracker:
                    tracker.finish()
                    tracker = None
                if not stop.forward():
                    raise Stopped()
                return {"status": "stopped", "step": step}
        if val_loss is None:  # resumed from the final checkpoint: its eval is logged already, recompute the value
            val_loss, val_bpb = evaluate(model, windows, target_bytes, plan.micro_batch, runtime)
        summary = {
            "run_name": run.run_name, "status": "completed", "sweep": run.sweep.name, "model": run.model.name,
            "data": run.data.name, "seed": run.seed, "n_params": plan.n_params, "flops_per_token": plan.flops_per_token,
            "flops_budget": plan.flops_budget, "tokens_per_param": plan.tokens / plan.n_params["non_embedding"],
            "tokens": plan.tokens, "flops": plan.flops, "val_loss": val_loss, "val_bpb": val_bpb, "lr": plan.lr,
            "batch_tokens": plan.batch_tokens, "steps": plan.steps, "skipped_steps": skipped,
            "data_fingerprint": data.fingerprint, "wall_s": wall_before + time.time() - started,
        }
        if tracker:
            tracker.finish(summary)
            tracker = None
            write_json_atomic(summary_path(run_dir), summary)  # last: its presence means the cell is done
            log.info("%s: completed in %.0f s, val_loss %.4f (%.3f bits/byte)", run.run_name, summary["wall_s"],
                     val_loss, val_bpb)
        return summary
    finally:
        bar.close()
        stop.uninstall()
        if tracker:
            tracker.finish()
