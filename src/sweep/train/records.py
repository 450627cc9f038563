"""What a run keeps and records: its TrainState (what a checkpoint restores besides the weights, the optimizer and
the RNG), the clock its throughput divides by, and the records it writes (config.yaml's content, each metrics
event's position, summary.json's content)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass

from ..config import RunConfig
from ..data import PreparedData
from .plan import Plan
from .runtime import Runtime, describe


@dataclass
class TrainState:
    """Where a run is, beyond its weights, optimizer and RNG: what a checkpoint restores."""
    step: int = 0  # optimizer steps done
    skipped: int = 0  # steps skipped under train.nonfinite=skip
    wall_s: float = 0.0  # wall time of the attempts before this one
    interval_loss: float = 0.0  # sum of the step losses since the last train event (mean over ranks)
    interval_steps: int = 0  # steps whose losses that sum holds
    eval_s: float = 0.0  # seconds spent evaluating, over all attempts

    @classmethod
    def from_checkpoint(cls, saved: dict) -> "TrainState":
        loss, steps = saved["loss_interval"]
        return cls(saved["step"], saved["skipped"], saved["wall_s"], loss, steps, saved.get("eval_s", 0.0))

    def to_checkpoint(self, batch_tokens: int, wall_s: float) -> dict:
        return {"step": self.step, "tokens": self.step * batch_tokens, "skipped": self.skipped, "wall_s": wall_s,
                "loss_interval": (self.interval_loss, self.interval_steps), "eval_s": self.eval_s}


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


def event(step: int, plan: Plan) -> dict:
    return {"step": step, "tokens": step * plan.batch_tokens, "flops": step * plan.batch_tokens * plan.flops_per_token}


def config_record(run: RunConfig, plan: Plan, vocab_size: int, runtime: Runtime) -> dict:
    """config.yaml: the resolved config with the per-size defaults filled in, the plan and the runtime."""
    from omegaconf import OmegaConf

    record = OmegaConf.to_container(OmegaConf.structured(run), resolve=True)
    record["model"]["vocab_size"] = vocab_size
    record["train"].update(plan.defaults(), micro_batch=plan.micro_batch)
    record["plan"] = plan.record()
    record["runtime"] = describe(runtime)
    return record


def summary_of(run: RunConfig, plan: Plan, state: TrainState, val: tuple, data: PreparedData, wall_s: float,
               epochs: float, val_tokens: int) -> dict:
    return {
        "run_name": run.run_name, "status": "completed", "sweep": run.sweep.name, "model": run.model.name,
        "data": run.data.name, "seed": run.seed, "init_seed": run.init_seed, "order_seed": run.order_seed,
        "n_params": plan.n_params, "flops_per_token": plan.flops_per_token,
        "flops_budget": plan.flops_budget, "tokens_per_param": plan.tokens / plan.n_params["non_embedding"],
        "tokens": plan.tokens, "flops": plan.flops, "val_loss": val[0], "val_bpb": val[1], "lr": plan.lr,
        "batch_tokens": plan.batch_tokens, "steps": plan.steps, "skipped_steps": state.skipped,
        "data_fingerprint": data.fingerprint, "wall_s": wall_s, "epochs": epochs, "val_tokens": val_tokens,
        "eval_s": state.eval_s,
    }
