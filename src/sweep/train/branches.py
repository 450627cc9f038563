"""WSD cooldown branches (Hägele et al. 2024): a cell with `train.cooldowns` trains one warmup-stable trunk, and for
each horizon listed a branch that decays from the trunk into a run directory of its own, `<trunk>_cd<horizon tag>`
beside it.

The order: the trunk trains first, at constant lr after its warmup, up to its last branch point, and saves its whole
state (weights, optimizer, RNG, TrainState, metrics offset) at each branch point (rundir.branch_point, kept in the
trunk's directory until the branches from it complete). Then each branch, in increasing order, starts as a *resume*
of the independent schedule=wsd run of its horizon: its directory is seeded with its branch point as checkpoint.pt
and the trunk's metrics.jsonl up to that point, and the ordinary trainer runs its decay to the end. A branch is thus
the independent run resumed where its decay starts, bit-identical to it by the trainer's resume guarantee (the
warmup of a wsd run does not depend on its horizon, train/plan.py), and resumable and idempotent like any cell: a
relaunch skips a completed trunk and completed branches, resumes an interrupted trunk or branch from its own
checkpoint, and seeds a branch not yet started. This order, rather than decaying each branch in the middle of the
trunk, keeps the trainer one plain loop at the cost of a checkpoint file per pending branch point.

summary.json of a branch adds `trunk`, `branch_step`, `flops_alone` (what an independent run of its horizon costs)
and `flops_added` (its decay's FLOPs); the trunk's lists its `branches`. A branch's tokens, flops and flops_budget
are its horizon's, so the analysis takes it for the independent run it equals.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from .. import rundir
from ..config import ConfigError, RunConfig
from ..config.naming import branch_name, horizon_tag
from . import checkpoint
from .plan import Plan, branch_train, check_plan, make_plan, model_vocab, outside_range

log = logging.getLogger("sweep.train")


@dataclass(frozen=True)
class Branch:
    run: RunConfig  # the independent schedule=wsd run of its horizon, named <trunk>_cd<horizon tag>
    step: int  # its branch point: the trunk's step at which its decay starts
    steps: int  # its horizon in optimizer steps

    @property
    def name(self) -> str:
        return self.run.run_name


def branch_run(run: RunConfig, horizon: float) -> RunConfig:
    """The RunConfig of a trunk's branch of this horizon (in train.cooldowns_in's unit)."""
    t = branch_train(run.train, horizon)
    return replace(run, train=t, run_name=branch_name(run.run_name, horizon_tag(t.tokens, t.flops,
                                                                                 t.tokens_per_param)))


def branches_of(run: RunConfig, plan: Plan) -> list[Branch]:
    """The trunk's branches its plan keeps (sweep.tokens_per_param_range), in increasing order."""
    return [Branch(branch_run(run, b["horizon"]), b["branch_step"], b["steps"]) for b in plan.branches]


def skipped_branches(run: RunConfig, plan: Plan) -> dict[str, str]:
    """Branch name → why the trunk leaves it out (its tokens/param outside sweep.tokens_per_param_range)."""
    kept = {b["horizon"] for b in plan.branches}
    out = {}
    for horizon in run.train.cooldowns:
        if horizon not in kept:
            branch = branch_run(run, horizon)
            out[branch.run_name] = outside_range(check_plan(branch), run.sweep.tokens_per_param_range)
    return out


def train_with_branches(run: RunConfig, trunk_dir: Path, runtime, progress: bool = True) -> dict:
    """Train the trunk into trunk_dir, then each branch beside it (the order: the module's docstring); returns the
    trunk's summary."""
    from ..data import prepare
    from .loop import train

    if runtime.world_size > 1:
        raise ConfigError("train.cooldowns trains a trunk and its branches in one process; launch it without "
                          "torchrun (or train the branches' horizons as independent schedule=wsd runs)")
    data = prepare(run.data, run.cache_root)
    plan = make_plan(run.model, run.train, model_vocab(run.model, data.vocab_size), runtime, run.data.val_tokens,
                     run.schedule, run.sweep.tokens_per_param_range)
    branches = branches_of(run, plan)
    for name, why in skipped_branches(run, plan).items():
        log.info("%s: branch %s skipped: %s", run.run_name, name, why)
    summary = train(run, trunk_dir, runtime, data, progress, handoff=frozenset(b.step for b in branches),
                    summary_extra={"branches": [b.name for b in branches]})
    if summary.get("status") != "completed":  # stopped by a signal (its checkpoint resumes it)
        return summary
    for branch in branches:
        branch_dir = trunk_dir.parent / branch.name
        extra = {"trunk": run.run_name, "branch_step": branch.step,
                 "flops_alone": branch.steps * plan.batch_tokens * plan.flops_per_token,
                 "flops_added": (branch.steps - branch.step) * plan.batch_tokens * plan.flops_per_token}
        try:
            if not rundir.is_completed(branch_dir):
                _seed(branch_dir, trunk_dir, branch.step)
            result = train(branch.run, branch_dir, runtime, data, progress, summary_extra=extra)
        except (rundir.RunDirBusy, rundir.OtherSettings):
            raise  # another launch's directory: leave it as it is
        except Exception as err:
            rundir.record_failure(branch_dir, err)
            raise
        if result.get("status") != "completed":
            return result
        if all(rundir.is_completed(trunk_dir.parent / b.name) for b in branches if b.step == branch.step):
            rundir.branch_point(trunk_dir, branch.step).unlink(missing_ok=True)
    return summary


def _seed(branch_dir: Path, trunk_dir: Path, step: int) -> None:
    """A branch not yet started gets its trunk's state at its branch point as its checkpoint, and the trunk's
    metrics.jsonl up to that point as its own (its loss curve is whole); one already started keeps its own."""
    with rundir.claim(branch_dir):
        if (branch_dir / rundir.CHECKPOINT).exists() or (branch_dir / rundir.CHECKPOINT_PREVIOUS).exists():
            return
        point = rundir.branch_point(trunk_dir, step)
        if not point.exists():
            raise rundir.RunDirError(f"{point} is missing: {trunk_dir.name} completed without its state at step "
                                     f"{step}, where {branch_dir.name} starts (were train.cooldowns or "
                                     f"sweep.tokens_per_param_range changed since?); delete {trunk_dir} to retrain "
                                     f"the trunk and its branches")
        state = checkpoint.read(point)
        state["wandb_id"] = None  # a wandb run of its own
        with open(trunk_dir / rundir.METRICS, "rb") as trunk_metrics:
            (branch_dir / rundir.METRICS).write_bytes(trunk_metrics.read(state["metrics_offset"]))
        checkpoint.save(branch_dir, state)  # last: its presence means the branch is seeded
