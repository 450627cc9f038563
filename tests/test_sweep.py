"""Grids through real Hydra launches: stable cells, skip on re-launch, resume after a kill, launchers, wandb; the
grid planned once, and its manifest."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers import SWEEP, config_keys, history_keys, local_overrides, run_record, summaries, summary_keys


def tiny(out: Path, corpus: Path, *extra: str) -> list[str]:
    return local_overrides(out, corpus, "train.eval_every=10", "train.checkpoint_every=5", *extra)


def sweep_cmd(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*SWEEP, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


GRID = ["model=gpt-25k,gpt-50k", "train.flops=2e10,4e10", "sweep.name=grid"]


@pytest.mark.slow
def test_grid_runs_every_cell_and_relaunch_trains_nothing(tmp_path, corpus):
    first = sweep_cmd("train", "-m", *tiny(tmp_path, corpus), *GRID)
    assert first.returncode == 0, first.stderr[-3000:]
    cells = summaries(tmp_path / "grid")
    assert sorted(cells) == ["gpt-25k_f2e10_s0", "gpt-25k_f4e10_s0", "gpt-50k_f2e10_s0", "gpt-50k_f4e10_s0"]
    assert all(c["status"] == "completed" and c["flops_budget"] in (2e10, 4e10) for c in cells.values())
    # Every cell of the sweep saw one corpus, tokenizer and validation set.
    assert len({json.dumps(c["data_fingerprint"], sort_keys=True) for c in cells.values()}) == 1
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "grid").glob("*/metrics.jsonl")}

    assert f"next: sweep analyze {tmp_path / 'grid'}" in first.stdout
    assert "\r" not in first.stdout + first.stderr  # no terminal: log lines, not redrawn progress bars
    again = sweep_cmd("train", "-m", *tiny(tmp_path, corpus), *GRID)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already completed" in again.stderr + again.stdout
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


@pytest.mark.slow
def test_grid_killed_midway_completes_on_relaunch(tmp_path, corpus):
    args = ["train", "-m", *tiny(tmp_path, corpus, "train.checkpoint_every=2"), "model=gpt-25k,gpt-50k",
            "train.flops=1.5e11", "sweep.name=killed"]
    proc = subprocess.Popen([*SWEEP, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    second = tmp_path / "killed" / "gpt-50k_f1.5e11_s0" / "checkpoint.pt"
    deadline = time.time() + 240
    while not second.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # A kill between a checkpoint's two renames leaves only checkpoint.prev.pt, which a resume falls back to.
    assert second.exists() or second.with_name("checkpoint.prev.pt").exists(), "the second cell never checkpointed"
    done = summaries(tmp_path / "killed")
    assert "gpt-50k_f1.5e11_s0" not in done  # killed mid-cell

    relaunch = sweep_cmd(*args)
    assert relaunch.returncode == 0, relaunch.stderr[-3000:]
    assert "resuming gpt-50k_f1.5e11_s0" in relaunch.stderr + relaunch.stdout
    assert all(c["status"] == "completed" for c in summaries(tmp_path / "killed").values())
    assert len(summaries(tmp_path / "killed")) == 2


@pytest.mark.slow
def test_an_invalid_cell_stops_the_grid_before_any_work(tmp_path, corpus):
    # n_head=3 does not divide d_model=32 of gpt-25k: the grid is refused naming that cell, and nothing is written.
    result = sweep_cmd("train", "-m", *tiny(tmp_path, corpus), "model=gpt-25k", "model.n_head=2,3",
                       "train.tokens=2048", "sweep.name=failing")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "1 of 2 cell(s) of this grid are invalid" in result.stderr and "model.n_head=3" in result.stderr
    assert "Traceback" not in result.stderr and not any(tmp_path.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_parallel_launchers(tmp_path, corpus, launcher):
    extra = ["hydra.launcher.n_jobs=2"] if launcher == "joblib" else ["hydra.launcher.timeout_min=10"]
    result = sweep_cmd("train", "-m", *tiny(tmp_path, corpus), "model=gpt-25k,gpt-50k", "train.tokens=5120",
                       f"sweep.name={launcher}", f"hydra/launcher={launcher}", "train.threads=auto", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    cells = summaries(tmp_path / launcher)
    assert len(cells) == 2 and all(c["status"] == "completed" for c in cells.values())
    # Two cells side by side divide the machine's cores between them.
    from joblib import cpu_count

    threads = {OmegaConf.load(tmp_path / launcher / name / "config.yaml").runtime.threads for name in cells}
    assert threads == {max(1, cpu_count() // 2)}, threads
    if launcher == "joblib":  # cells sharing the terminal: no interleaved bars, one line per finished cell
        output = result.stdout + result.stderr
        assert "step/s" not in output
        assert all(f"{name}: completed in" in output for name in cells)


@pytest.mark.slow
def test_wandb_offline_one_run_per_cell(tmp_path, corpus):
    result = sweep_cmd("train", "-m", *tiny(tmp_path, corpus), "model=gpt-25k,gpt-50k", "train.tokens=2048",
                       "sweep.name=wb", "logger=wandb", env={"WANDB_MODE": "offline"})
    assert result.returncode == 0, result.stderr[-3000:]
    ids, groups = set(), set()
    for cell, model in (("gpt-25k_t2.05e3_s0", "gpt-25k"), ("gpt-50k_t2.05e3_s0", "gpt-50k")):
        runs = list((tmp_path / "wb" / cell / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, runs  # one run per cell: finish() ended it, nothing merged
        run = run_record(runs[0])
        assert (run.job_type, run.display_name) == ("train", cell)
        assert run.run_group.startswith("wb-local-")  # <sweep>-<data>-<id of this sweep directory>
        assert {model, "t2.05e3", "wb"} <= set(run.tags)
        assert {"model", "train", "plan"} <= config_keys(run)  # plan carries n_params, tokens, flops, lr, batch
        assert {"val_loss", "val_bpb", "train_loss", "tokens", "flops"} <= history_keys(runs[0])
        assert {"n_params/total", "n_params/non_embedding", "best_val_loss", "val_loss", "tokens"} <= \
            summary_keys(runs[0])
        ids.add(run.run_id)
        groups.add(run.run_group)
    assert len(ids) == 2 and len(groups) == 1  # one group per study


@pytest.mark.slow
def test_demo_end_to_end_then_again_trains_nothing(tmp_path, corpus):
    # The demo's own path (cpu preset, parallel cells, analysis) on a small corpus and budgets.
    # (every cell of a 4 × 3 grid: the preset's tokens/param range would skip most cells of budgets this small)
    args = ["demo", f"out_dir={tmp_path}", "data=local", f"data.path={corpus}", "data.val_tokens=2048",
            "data.allow_repeat=true", "train.flops=1e10,2e10,4e10", "model=gpt-6k,gpt-12k,gpt-25k,gpt-50k",
            "sweep.tokens_per_param_range=null"]
    first = sweep_cmd(*args, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    report = tmp_path / "cpu" / "analysis" / "report.md"
    assert f"report: {report}" in first.stdout
    cells = summaries(tmp_path / "cpu")
    assert len(cells) == 12 and all(c["status"] == "completed" for c in cells.values())
    fits = json.loads((tmp_path / "cpu" / "analysis" / "fits.json").read_text())
    assert {"E", "A", "B", "alpha", "beta"} <= set(fits["approach3"])
    # Budgets this small need not give a U; then each budget must be accounted for by a warning, not dropped silently.
    approach2 = fits["approach2"]
    accounted = {f"{b['C']:.0e}" for b in approach2["budgets"]} if approach2["budgets"] else set()
    warned = " ".join(approach2["warnings"])
    assert all(c in accounted or f"budget {c}" in warned for c in ("1e+10", "2e+10", "4e+10"))
    assert "## The laws" in report.read_text()
    assert (tmp_path / "cpu" / "analysis" / "isoflop.png").stat().st_size > 10_000

    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "cpu").glob("*/metrics.jsonl")}
    again = sweep_cmd(*args, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


@pytest.mark.slow
def test_grid_over_a_data_path_reports_its_failed_cell(tmp_path, corpus):
    """A grid whose shared overrides alone do not compose (data=local needs a path) still names its failed cells."""
    binary = tmp_path / "binary.txt"
    binary.write_bytes(bytes(range(256)) * 64)
    args = [*tiny(tmp_path, corpus), "train.tokens=2048", "sweep.name=paths"]
    args = [a for a in args if not a.startswith("data.path=")]
    result = sweep_cmd("train", "-m", *args, f"data.path={corpus},{binary}")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "1 cell(s) of" in result.stderr and "NUL bytes" in result.stderr
    assert [c["status"] for c in summaries(tmp_path / "paths").values()].count("completed") == 1
    # The end-of-grid table lists both cells, one failed.
    table = result.stdout[result.stdout.index("2 cell(s)"):]
    assert "completed" in table and "failed" in table


@pytest.mark.slow
def test_refused_relaunch_keeps_completed_results(tmp_path, corpus):
    """Relaunching a finished grid with another setting is refused, and its completed cells stay completed."""
    grid = ["model=gpt-25k,gpt-50k", "train.tokens=2048", "sweep.name=kept"]
    first = sweep_cmd("train", "-m", *tiny(tmp_path, corpus), *grid)
    assert first.returncode == 0, first.stderr[-3000:]
    before = summaries(tmp_path / "kept")
    manifest = (tmp_path / "kept" / "manifest.jsonl").read_bytes()
    refused = sweep_cmd("train", "-m", *tiny(tmp_path, corpus), *grid, "train.weight_decay=0.2")
    assert refused.returncode != 0 and "other settings" in refused.stderr
    assert summaries(tmp_path / "kept") == before
    assert (tmp_path / "kept" / "manifest.jsonl").read_bytes() == manifest  # the refused grid wrote nothing


def test_a_tokens_per_param_range_skips_the_cells_outside_it(tmp_path, corpus):
    from sweep.grid import plan_grid

    grid = plan_grid(["-m", *tiny(tmp_path, corpus), "model=gpt-3k,gpt-25k", "train.flops=2e10,8e10",
                      "sweep.tokens_per_param_range=[20,400]", "sweep.name=window"])
    # at these budgets gpt-3k trains on 87 and 348 tokens per parameter, gpt-25k on 3 and 12
    assert set(grid.skipped) == {"gpt-25k_f2e10_s0", "gpt-25k_f8e10_s0"} and len(grid.cells) == 4
    assert all("outside sweep.tokens_per_param_range [20, 400]" in why for why in grid.skipped.values())


@pytest.mark.slow
def test_skipped_cells_leave_nothing_and_are_listed(tmp_path, corpus):
    args = [*tiny(tmp_path, corpus), "model=gpt-3k,gpt-25k", "train.flops=2e10",
            "sweep.tokens_per_param_range=[20,4000]", "sweep.name=window"]
    result = sweep_cmd("train", "-m", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(summaries(tmp_path / "window")) == ["gpt-3k_f2e10_s0"]
    assert not (tmp_path / "window" / "gpt-25k_f2e10_s0").exists()
    assert "1 skipped" in result.stdout and "outside sweep.tokens_per_param_range" in result.stdout
    # The manifest lists both, the skipped one with its reason; the run directories are only the trained cell's.
    from sweep import rundir

    listed = {c["name"]: c for c in rundir.read_manifest(tmp_path / "window")}
    assert listed["gpt-3k_f2e10_s0"]["status"] == "planned" and listed["gpt-3k_f2e10_s0"]["reason"] is None
    assert listed["gpt-25k_f2e10_s0"]["status"] == "skipped"
    assert "outside sweep.tokens_per_param_range" in listed["gpt-25k_f2e10_s0"]["reason"]
    assert [d.name for d in rundir.run_dirs(tmp_path / "window")] == ["gpt-3k_f2e10_s0"]


def test_a_bad_tokens_per_param_range_is_refused():
    from sweep.config import ConfigError, compose

    with pytest.raises(ConfigError, match=r"sweep.tokens_per_param_range=\[40, 20\] must be \[min, max\]"):
        compose(["sweep.tokens_per_param_range=[40,20]"])


@pytest.mark.slow
def test_demo_emergence_end_to_end(tmp_path, corpus):
    # `sweep demo emergence`'s own path (the emergence preset, parallel cells, analysis) with four small sizes, a small
    # suite and few tokens: task events, tasks.json per run, and the report's abilities section.
    args = ["demo", "emergence", f"out_dir={tmp_path}", "data=local", f"data.path={corpus}", "data.val_tokens=4096",
            "data.allow_repeat=true", "train.tokens=20480", "model=gpt-3k,gpt-6k,gpt-12k,gpt-25k", "tasks.items=30",
            "tasks.items_during=10", "tasks.icl_windows=8", "train.eval_every=10", "sweep.seeds=[0,1]"]
    result = sweep_cmd(*args, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    sweep_dir = tmp_path / "emergence"
    cells = summaries(sweep_dir)
    assert len(cells) == 8 and all(c["status"] == "completed" for c in cells.values())  # four sizes, two seeds
    for name in cells:
        events = [json.loads(line) for line in (sweep_dir / name / "metrics.jsonl").read_text().splitlines()]
        assert sum("tasks" in e for e in events) == sum("val_loss" in e for e in events) >= 2
        assert json.loads((sweep_dir / name / "tasks.json").read_text())["variants"]["add/d2"]["n"] == 30
    report = (sweep_dir / "analysis" / "report.md").read_text()
    assert "## Abilities and emergence" in report and "### Emergent, or a metric artefact?" in report
    fits = json.loads((sweep_dir / "analysis" / "fits.json").read_text())
    assert fits["emergence"]["table"] == "tasks.csv" and (sweep_dir / "analysis" / "tasks.csv").exists()
    assert (sweep_dir / "analysis" / "emergence_task_add.png").stat().st_size > 10_000


# ------------------------------------------------------------------------------------ the plan and the manifest
def count_calls(monkeypatch, module: str, name: str) -> list:
    """Every call of sweep's function module.name, wherever the package bound it (module-level imports under any
    alias, and the function-local imports that read it from its module at call time): its first arguments."""
    import importlib

    original = getattr(importlib.import_module(module), name)
    calls = []

    def counted(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    for loaded in [m for n, m in sys.modules.items() if n == "sweep" or n.startswith("sweep.")]:
        for attr, value in list(vars(loaded).items()):
            if value is original:
                monkeypatch.setattr(loaded, attr, counted)
    return calls


def planning_calls(monkeypatch) -> tuple[list, list]:
    """(run names check_plan was called for, make_plan's calls) from now on, in this process."""
    import sweep.grid  # noqa: F401  every module of the lead process and of a cell, so that their bindings count
    import sweep.train.branches  # noqa: F401
    import sweep.train.loop  # noqa: F401

    checked = count_calls(monkeypatch, "sweep.train.plan", "check_plan")
    made = count_calls(monkeypatch, "sweep.train.plan", "make_plan")
    return checked, made


@pytest.mark.slow
def test_every_cell_and_branch_is_planned_once_and_the_manifest_lists_them(tmp_path, monkeypatch):
    from sweep import rundir
    from sweep.grid_plan import plan_grid, write_manifest

    checked, made = planning_calls(monkeypatch)
    grid = plan_grid(["sweep=isoflop_cooldown", "device=cpu", f"out_dir={tmp_path}"])
    # Each trunk, and each of its branches as a cell of its own, planned exactly once.
    assert Counter(run.run_name for run in checked) == Counter(grid.cells) and len(made) == len(grid.cells)
    assert list(tmp_path.iterdir()) == []  # planned, nothing written
    write_manifest(grid)
    cells = rundir.read_manifest(grid.sweep_dir)
    assert [c["name"] for c in cells] == grid.cells
    branch = next(c for c in cells if c["name"] == "gpt-12k_wsd_s0_cdf2e12")
    assert branch["status"] == "planned" and branch["trunk"] == "gpt-12k_wsd_s0" and branch["branch_step"] > 0
    assert branch["plan"]["flops"] == pytest.approx(2e12, rel=0.01)
    skipped = next(c for c in cells if c["name"] == "gpt-25k_wsd_s0_cdf1e11")
    assert skipped["status"] == "skipped" and "outside sweep.tokens_per_param_range [15, 2000]" in skipped["reason"]
    assert skipped["plan"]["tokens_per_param"] < 15
    assert all(c["overrides"][-1].startswith("sweep.grid=") for c in cells)


@pytest.mark.slow
def test_a_relaunch_rewrites_the_manifest_identically_and_another_grid_keeps_the_first_grids_cells(tmp_path, corpus):
    from sweep import rundir
    from sweep.grid_plan import plan_grid, write_manifest

    first = ["-m", *tiny(tmp_path, corpus), "model=gpt-3k,gpt-6k", "train.tokens=2048", "sweep.name=m"]
    path = write_manifest(plan_grid(first))
    written = path.read_bytes()
    assert write_manifest(plan_grid(first)).read_bytes() == written  # deterministic: the same bytes
    other = ["-m", *tiny(tmp_path, corpus), "model=gpt-3k,gpt-12k", "train.tokens=4096", "sweep.name=m"]
    write_manifest(plan_grid(other))
    names = [c["name"] for c in rundir.read_manifest(path.parent)]
    assert names == ["gpt-3k_t2.05e3_s0", "gpt-6k_t2.05e3_s0", "gpt-3k_t4.1e3_s0", "gpt-12k_t4.1e3_s0"]
    assert path.read_bytes().startswith(written)  # the first grid's lines as they were written
    write_manifest(plan_grid(first))  # relaunching the first grid leaves the other's lines in place
    assert [c["name"] for c in rundir.read_manifest(path.parent)] == names


def test_a_cell_whose_directory_holds_other_settings_refuses_the_grid_before_the_manifest_is_touched(tmp_path, corpus):
    from omegaconf import OmegaConf

    from sweep import rundir
    from sweep.config import compose
    from sweep.grid_plan import plan_grid, write_manifest

    grid = ["-m", *tiny(tmp_path, corpus), "model=gpt-3k,gpt-6k", "train.tokens=2048", "sweep.name=m"]
    path = write_manifest(plan_grid(grid))
    written = path.read_bytes()
    other = compose([*tiny(tmp_path, corpus), "model=gpt-3k", "train.tokens=2048", "train.weight_decay=0.2"])
    cell = path.parent / "gpt-3k_t2.05e3_s0"  # a cell of the grid, trained with another weight decay
    cell.mkdir()
    rundir.write_config(cell, OmegaConf.to_container(OmegaConf.structured(other)))
    with pytest.raises(rundir.OtherSettings, match=r"1 cell\(s\) of this grid would be refused(.|\n)*weight_decay"):
        plan_grid(grid)
    assert path.read_bytes() == written


def test_read_manifest_says_none_when_absent_and_names_the_line_when_damaged(tmp_path):
    from sweep import rundir
    from sweep.config import ConfigError

    assert rundir.read_manifest(tmp_path) is None  # single runs, or a sweep from before manifests
    path = tmp_path / rundir.MANIFEST
    good = json.dumps({"name": "gpt-3k_t2.05e3_s0", "status": "planned", "reason": None})
    for bad in ('{"name": "gpt-3k_t2', '["a list"]', json.dumps({"name": "x", "status": "done"})):
        path.write_text(f"{good}\n{bad}\n")
        with pytest.raises(ConfigError, match=rf"{path}:2 is not a cell of a grid's manifest.*delete it"):
            rundir.read_manifest(tmp_path)
    path.write_text(f"{good}\n")
    assert rundir.read_manifest(tmp_path) == [json.loads(good)]
    (tmp_path / "gpt-3k_t2.05e3_s0").mkdir()
    assert rundir.run_dirs(tmp_path) == [tmp_path / "gpt-3k_t2.05e3_s0"]  # the manifest is no run


@pytest.mark.slow
def test_a_launched_grid_is_planned_once_and_its_manifest_is_there_before_any_cell_runs(tmp_path, corpus, monkeypatch):
    """In-process, through Hydra's basic launcher: the lead plans each cell once, writes the manifest, and the cells
    (here in the same process) take their skip decision from it, planning nothing more to make it."""
    import sweep.grid
    from sweep import rundir

    args = ["-m", *tiny(tmp_path, corpus), "model=gpt-3k,gpt-25k", "train.flops=2e9",
            "sweep.tokens_per_param_range=[5,4000]", "sweep.name=once"]
    sweep_dir = tmp_path / "once"
    checked, made = planning_calls(monkeypatch)
    seen = {}
    real_run = sweep.grid.hydra_run

    def hydra_run(argv):  # the moment the cells start: what the lead has done by then
        seen.update(cells=rundir.read_manifest(sweep_dir), dirs=rundir.run_dirs(sweep_dir),
                    checked=Counter(run.run_name for run in checked), made=len(made))
        return real_run(argv)

    monkeypatch.setattr(sweep.grid, "hydra_run", hydra_run)
    code, _ = sweep.grid.launch_grid(args)
    assert code == 0
    names = ["gpt-3k_f2e9_s0", "gpt-25k_f2e9_s0"]
    assert seen["dirs"] == [] and [c["name"] for c in seen["cells"]] == names
    assert [c["status"] for c in seen["cells"]] == ["planned", "skipped"]
    assert "outside sweep.tokens_per_param_range [5, 4000]" in seen["cells"][1]["reason"]
    assert seen["checked"] == Counter(names) and seen["made"] == len(names)  # once each, in the lead
    assert Counter(run.run_name for run in checked) == Counter(names)  # the skipped cell did not plan itself
    assert [d.name for d in rundir.run_dirs(sweep_dir)] == names[:1]
    manifest = (sweep_dir / rundir.MANIFEST).read_bytes()
    assert sweep.grid.launch_grid(args)[0] == 0  # a relaunch: nothing to train, the same manifest
    assert (sweep_dir / rundir.MANIFEST).read_bytes() == manifest
