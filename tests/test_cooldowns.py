"""WSD cooldown branches (train.cooldowns): a horizon-free wsd warmup, the trunk's plan and its branches' names, the
bookkeeping a relaunch relies on, the analysis of trunks and branches, and (slow) a branch bit-identical to the
independent wsd run of its horizon, also after a SIGKILL during a branch."""

import json
import math
import re
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import local_overrides, read_metrics, run_cell, run_dir_of
from sweep import rundir
from sweep.analysis.inputs.cooldown import TRUNK_REASON
from sweep.analysis.laws.cooldown import compute_saved, trunk_units, unit_bootstrap
from sweep.analysis.inputs.load import load_sweep
from sweep.config import ConfigError, compose
from sweep.config.schema import ScheduleConfig
from sweep.train import checkpoint, runtime
from sweep.train.branches import branch_run, branches_of, skipped_branches, train_with_branches
from sweep.train.plan import TRUNK, check_plan, decay_start, lr_at

CPU = ["sweep=cpu", "device=cpu"]
COOLDOWN = ["sweep=isoflop_cooldown", "device=cpu"]


# ------------------------------------------------------------------------------------------------ plans
def test_wsd_warmup_does_not_depend_on_the_horizon_and_cosine_is_unchanged():
    wsd = [check_plan(compose([*CPU, "model=gpt-50k", "schedule=wsd", f"train.flops={f}"])) for f in (5e11, 2e12)]
    assert wsd[0].warmup_steps == wsd[1].warmup_steps == 100  # MIN_WARMUP_STEPS, though 5e11 is a 379-step run
    cosine = compose([*CPU, "model=gpt-50k", "train.flops=5e11"])
    assert cosine.run_name == "gpt-50k_f5e11_s0"
    plan = check_plan(cosine)
    assert plan.warmup_steps == 76  # a fifth of this short cosine horizon (379 steps), as before
    assert plan.defaults()["warmup_tokens"] == 76 * 2560 and "branches" not in plan.record()


def test_wsd_refuses_a_stable_phase_shorter_than_its_warmup_and_names_a_horizon_that_fits():
    wsd = [*CPU, "model=gpt-50k", "schedule=wsd", "sweep.tokens_per_param_range=null"]  # a grid would skip these
    with pytest.raises(ConfigError, match="stable phase of 22 steps, shorter than the warmup's 100") as err:
        check_plan(compose([*wsd, "train.flops=2e11"]))  # 152 steps, 30 of them decaying
    tokens = float(re.search(r"raise the horizon to ≥ (\S+) tokens", str(err.value)).group(1))
    check_plan(compose([*wsd, f"train.tokens={tokens}"]))  # the fix fits
    with pytest.raises(ConfigError, match="stable phase"):
        check_plan(compose([*wsd, f"train.tokens={tokens - 2560}"]))


@pytest.mark.parametrize("overrides,message", [
    (["train.cooldowns=[1e6]"], "train.cooldowns needs schedule=wsd"),
    (["schedule=wsd", "train.cooldowns=[1e6]", "train.tokens=1e6"], "train.tokens must stay null"),
    (["schedule=wsd", "train.cooldowns=[1e6,1e6]"], "names a horizon twice"),
    (["schedule=wsd", "train.cooldowns=[0]"], "list of positive numbers"),
    (["schedule=wsd", "train.cooldowns=[1e6]", "train.cooldowns_in=steps"], "train.cooldowns_in='steps'"),
    (["schedule=wsd", "schedule.decay_shape=cubic"], "schedule.decay_shape='cubic' is not one of linear, 1-sqrt"),
])
def test_bad_cooldown_settings_are_refused_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        compose(overrides)


def test_a_trunk_is_planned_from_its_branches_each_an_independent_wsd_run():
    trunk = compose([*COOLDOWN, "model=gpt-25k"])
    assert trunk.run_name == "gpt-25k_wsd_s0"
    plan = check_plan(trunk)
    branches = branches_of(trunk, plan)
    assert [b.name for b in branches] == [f"gpt-25k_wsd_s0_cdf{f}" for f in ("2e11", "5e11", "1e12", "2e12")]
    assert list(skipped_branches(trunk, plan)) == ["gpt-25k_wsd_s0_cdf1e11"]  # 13.7 tokens/param < 15
    assert plan.horizon == TRUNK and plan.flops_budget is None and plan.steps == branches[-1].step
    for branch in branches:
        alone = check_plan(compose([*CPU, "model=gpt-25k", "schedule=wsd", f"train.flops={branch.run.train.flops}"]))
        mine = check_plan(branch.run)
        assert mine == alone  # the branch's plan is the independent run's
        assert decay_start(alone, trunk.schedule) == branch.step and alone.steps == branch.steps
        assert (mine.warmup_steps, mine.lr, mine.batch_tokens) == (plan.warmup_steps, plan.lr, plan.batch_tokens)
        assert all(lr_at(s, plan, trunk.schedule) == lr_at(s, alone, trunk.schedule) for s in range(branch.step))
    assert {lr_at(s, plan, trunk.schedule) for s in range(plan.warmup_steps, plan.steps)} == {plan.lr}


def test_every_branch_outside_the_range_skips_the_trunk():
    from sweep.train.plan import outside_range

    run = compose([*COOLDOWN, "model=gpt-100k", "train.cooldowns=[1e11,2e11]"])
    assert outside_range(check_plan(run), run.sweep.tokens_per_param_range).startswith("every cooldown branch")


def test_one_minus_sqrt_decay():
    plan = check_plan(compose([*CPU, "model=gpt-50k", "schedule=wsd", "train.flops=2e12"]))
    schedule = ScheduleConfig("wsd", 0.0, 0.2, "1-sqrt")
    start = decay_start(plan, schedule)
    lrs = [lr_at(s, plan, schedule) for s in range(plan.steps)]
    assert lrs[start - 1] == plan.lr and lrs[-1] == 0.0
    mid = start + (plan.steps - start) // 2 - 1  # progress 1/2 after this step
    progress = (mid + 1 - start) / (plan.steps - start)
    assert lrs[mid] == pytest.approx(plan.lr * (1 - math.sqrt(progress)))
    linear = lr_at(mid, plan, ScheduleConfig("wsd", 0.0, 0.2, "linear"))
    assert linear == pytest.approx(plan.lr * (1 - progress)) and lrs[mid] < linear  # 1-sqrt falls faster first


def test_a_run_directory_older_than_the_cooldown_keys_still_resumes(tmp_path):
    from omegaconf import OmegaConf

    run = compose([*CPU, "model=gpt-50k", "train.flops=5e11", f"out_dir={tmp_path}"])
    saved = OmegaConf.to_container(OmegaConf.structured(run))
    for section, key in (("train", "cooldowns"), ("train", "cooldowns_in"), ("schedule", "decay_shape")):
        del saved[section][key]
    rundir.check_same_cell(run, tmp_path, saved)  # no refusal: the keys it predates hold their defaults
    wsd = compose([*CPU, "model=gpt-50k", "train.flops=5e11", "schedule=wsd", f"out_dir={tmp_path}"])
    old_wsd = OmegaConf.to_container(OmegaConf.structured(wsd))
    del old_wsd["schedule"]["decay_shape"]
    rundir.check_same_cell(wsd, tmp_path, old_wsd)  # a wsd run from before decay_shape decayed linearly
    saved["train"]["cooldowns_in"] = "flops"
    with pytest.raises(rundir.OtherSettings, match="train.cooldowns_in: 'flops' there, 'tokens' now"):
        rundir.check_same_cell(run, tmp_path, saved)


@pytest.mark.slow
def test_the_grid_lists_each_trunks_branches_and_skips_those_outside_the_range(tmp_path):
    from sweep.grid import plan_grid

    grid = plan_grid(["sweep=isoflop_cooldown", "device=cpu", f"out_dir={tmp_path}"])
    assert [r.run_name for r in grid.runs] == [f"gpt-{s}_wsd_s0" for s in ("3k", "6k", "12k", "25k", "50k", "100k")]
    trained = [n for n in grid.cells if n not in grid.skipped]
    assert len(trained) == 6 + 19  # six trunks; the cpu preset's 19 cells, as branches
    assert "gpt-25k_wsd_s0_cdf1e11" in grid.skipped and "gpt-12k_wsd_s0_cdf2e12" in trained
    assert grid.cells.index("gpt-12k_wsd_s0") < grid.cells.index("gpt-12k_wsd_s0_cdf1e11")
    assert list(tmp_path.iterdir()) == []  # planned, nothing written


# ------------------------------------------------------------------------------------------------ analysis
def write_summary(root: Path, name: str, **fields) -> None:
    (root / name).mkdir(parents=True)
    rundir.write_summary(root / name, {"run_name": name, "status": "completed", **fields})


def true_loss(N, D):
    return 1.7 + 400 / N**0.34 + 1100 / D**0.28


def write_cooldown_sweep(root: Path) -> Path:
    """Per size a trunk and a branch per budget (the law's loss at its horizon), and one independent run."""
    for N in (3e3, 1e4, 3e4, 1e5):
        trunk = f"n{N:.0e}_wsd_s0"
        budgets = (1e11, 3e11, 1e12, 3e12)
        branches = [f"{trunk}_cdf{C:.0e}" for C in budgets]
        write_summary(root, trunk, n_params={"non_embedding": N}, tokens=0.8 * 3e12 / (6 * N), flops=0.8 * 3e12,
                      val_loss=3.0, branches=branches)
        for C, name in zip(budgets, branches):
            D = C / (6 * N)
            write_summary(root, name, n_params={"non_embedding": N}, tokens=D, flops=C, flops_budget=C,
                          val_loss=true_loss(N, D), trunk=trunk, branch_step=100, flops_alone=C, flops_added=0.2 * C)
    write_summary(root, "alone", n_params={"non_embedding": 2e4}, tokens=1e7, flops=6 * 2e4 * 1e7,
                  val_loss=true_loss(2e4, 1e7))
    return root


def test_trunks_are_excluded_branches_are_runs_and_the_saving_is_stated(tmp_path):
    ds = load_sweep(write_cooldown_sweep(tmp_path / "cd"), "non_embedding")
    assert len(ds.runs) == 17 and len(ds.trunks) == 4
    assert [e["reason"] for e in ds.excluded] == [TRUNK_REASON] * 4
    saved = compute_saved(ds.runs, ds.trunks)
    independent = 4 * sum((1e11, 3e11, 1e12, 3e12))
    spent = 4 * 0.8 * 3e12 + 0.2 * independent
    assert saved.to_json() == {"trunks": 4, "branches": 16, "flops_independent": pytest.approx(independent),
                               "flops_spent": pytest.approx(spent), "saving": pytest.approx(1 - spent / independent)}
    units = trunk_units(ds.runs)
    assert len(set(units)) == 5  # four trunks and the independent run
    assert compute_saved(ds.runs[ds.runs["trunk"].isna()], ds.trunks) is None


def test_the_bootstrap_draws_a_trunk_with_all_its_branches():
    units = np.array([0, 0, 0, 1, 1, 2])
    drawn = []

    def statistic(counts):
        drawn.append(counts)
        return {"x": float(counts.sum())}

    unit_bootstrap(statistic, 6, 50, 0, None, lambda counts: True, units)
    for counts in drawn:
        assert counts[0] == counts[1] == counts[2] and counts[3] == counts[4]  # a trunk's branches move together
    assert {float(c[0]) for c in drawn} > {0.0}  # and trunks are drawn with replacement: some twice, some never


@pytest.mark.slow
def test_analyze_a_cooldown_sweep_states_the_saving(tmp_path):
    from sweep.analysis.main import run

    root = write_cooldown_sweep(tmp_path / "cd")
    report = run(sweep_dir=root, bootstrap=20, wandb_mode="off")
    fits = json.loads((root / "analysis" / "fits.json").read_text())
    spent, independent = 4 * 0.8 * 3e12 + 0.2 * 4 * 4.4e12, 4 * 4.4e12
    assert fits["cooldown"]["branches"] == 16 and fits["cooldown"]["saving"] == pytest.approx(1 - spent / independent)
    assert "cooldown trunks each with its branches" in fits["bootstrap"]["method"]
    assert abs(fits["approach3"]["alpha"] - 0.34) < 0.05
    text = report.read_text()
    assert "Cooldown branches: 16 branches from 4 trunk(s)" in text and "25% saved" in text
    # these hand-made summaries count only non_embedding parameters: no other convention to compare, and why
    conv = fits["conventions"]
    assert "skipped" in conv and "cannot be counted in another convention (total: no completed runs" in conv["skipped"]


# ------------------------------------------------------------------------------------------------ training
def cooldown_args(out: Path, corpus: Path, cache: Path, *extra: str) -> list[str]:
    # gpt-3k, 8 sequences of 64 tokens a step, warmup 10 steps, 1-sqrt decays over a fifth of each horizon; logging
    # every 5 steps, so that no branch point (64, 256) falls on the log grid except by design
    return local_overrides(out, corpus, f"data.cache_dir={cache}", "model=gpt-3k", "schedule=wsd",
                           "schedule.decay_shape=1-sqrt", "train.warmup_tokens=5120", "train.log_every=5",
                           "train.checkpoint_every=10", "train.eval_every=20", *extra)


HORIZONS = (40960, 163840)  # 80 and 320 steps: branch points 64 and 256


def trunk_of(out: Path, corpus: Path, cache: Path):
    return compose(cooldown_args(out, corpus, cache, f"train.cooldowns=[{','.join(map(str, HORIZONS))}]"))


def comparable(events: list[dict], after: int = -1) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "tok_per_s"} for e in events if e["step"] > after]


def weights(run_dir: Path) -> dict:
    return torch.load(run_dir / checkpoint.LATEST, weights_only=False)["model"]


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def straight(tmp_path_factory, corpus, cache) -> Path:
    """A trunk and its branches trained in one go, in-process: the sweep directory."""
    trunk = trunk_of(tmp_path_factory.mktemp("straight"), corpus, cache)
    summary = train_with_branches(trunk, run_dir_of_run(trunk), runtime.resolve("cpu", trunk.train))
    assert summary["status"] == "completed"
    return run_dir_of_run(trunk).parent


def run_dir_of_run(run) -> Path:
    return Path(run.out_dir) / run.sweep.name / run.run_name


@pytest.mark.slow
def test_a_branch_is_bit_identical_to_the_independent_wsd_run_of_its_horizon(tmp_path, corpus, cache, straight):
    trunk = trunk_of(straight.parent, corpus, cache)
    trunk_dir = straight / trunk.run_name
    trunk_summary = rundir.read_summary(trunk_dir)
    names = [branch_run(trunk, h).run_name for h in HORIZONS]
    assert trunk_summary["branches"] == names and trunk_summary["steps"] == 256
    assert not list(trunk_dir.glob("branch_point.*"))  # released once their branches completed
    trunk_events = comparable(read_metrics(trunk_dir))
    for horizon, name, point in zip(HORIZONS, names, (64, 256)):
        alone_summary, alone_dir = run_cell(compose(cooldown_args(tmp_path, corpus, cache, f"train.tokens={horizon}")))
        branch_dir = straight / name
        summary = rundir.read_summary(branch_dir)
        assert summary["val_loss"] == alone_summary["val_loss"]
        assert (summary["tokens"], summary["flops"], summary["steps"]) == \
            (alone_summary["tokens"], alone_summary["flops"], alone_summary["steps"])
        assert summary["trunk"] == trunk.run_name and summary["branch_step"] == point
        assert summary["flops_alone"] == alone_summary["flops"]
        assert summary["flops_added"] == pytest.approx(alone_summary["flops"] * (1 - point / alone_summary["steps"]))
        assert same_weights(branch_dir, alone_dir)
        events = comparable(read_metrics(branch_dir))
        assert comparable(read_metrics(alone_dir), after=point) == [e for e in events if e["step"] > point] != []
        assert [e for e in events if e["step"] <= point] == [e for e in trunk_events if e["step"] <= point]
        assert events[0]["step"] <= 5  # the loss curve is whole: from the trunk's start
    before = {p: p.stat().st_mtime_ns for p in straight.rglob("*") if p.is_file()}
    train_with_branches(trunk, trunk_dir, runtime.resolve("cpu", trunk.train))  # a relaunch: everything done
    assert {p: p.stat().st_mtime_ns for p in straight.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_sigkill_during_a_branch_then_relaunch_is_bit_identical(tmp_path, corpus, cache, straight):
    from helpers import launch, wait_for

    args = cooldown_args(tmp_path, corpus, cache, f"train.cooldowns=[{','.join(map(str, HORIZONS))}]")
    trunk_dir = run_dir_of(args)
    last = trunk_dir.parent / branch_run(compose(args), HORIZONS[-1]).run_name
    proc = launch(args)
    wait_for(last / "config.yaml", proc)  # the last branch (64 decay steps) has started
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not rundir.is_completed(last) and rundir.is_completed(trunk_dir)
    assert rundir.branch_point(trunk_dir, 256).exists()  # kept until its branch completes
    relaunch = launch(args)
    err, _ = relaunch.communicate(timeout=300)
    assert relaunch.returncode == 0, err[-3000:]
    assert f"{trunk_dir.name} is already completed" in err and f"resuming {last.name} at step" in err
    for run_dir in [trunk_dir, *sorted(trunk_dir.parent.glob(f"{trunk_dir.name}_cd*"))]:
        twin = straight / run_dir.name
        assert comparable(read_metrics(run_dir)) == comparable(read_metrics(twin))
        assert same_weights(run_dir, twin)
        assert rundir.read_summary(run_dir)["val_loss"] == rundir.read_summary(twin)["val_loss"]
    assert len(list(trunk_dir.parent.glob(f"{trunk_dir.name}_cd*"))) == 2

