"""Grids (`sweep train -m`, `sweep demo`): planned once (grid_plan.py: every cell composed, checked and planned
before any data or training work, the plan written as the sweep directory's manifest.jsonl), the shared corpus
prepared once, the cells run by Hydra's launcher (basic, joblib, submitit) through launch's entry point and task,
then a table of the cells and the next command. Every stage here reads the plan; none composes or plans again."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from . import rundir
from .config import ConfigError
from .exits import EXIT_FAILED
from .grid_plan import MAX_ERRORS_SHOWN, Cell, Grid, plan_grid, write_manifest
from .launch import GRID_CELLS_ENV, hydra_run

def check_repetition(grid: Grid, prepared) -> None:
    """Every cell's passes over the shared corpus, before any trains: cells past MAX_EPOCHS are one ConfigError. A
    trunk trains no horizon of its own: its branches are checked, each on its own plan."""
    from .train.plan import check_repetition as check_cell, make_plan, model_vocab
    from .train.runtime import select

    errors = []
    for cell in grid.planned:
        run, plan = cell.run, cell.plan
        if cell.skipped or run.train.cooldowns:
            continue
        vocab = model_vocab(run.model, prepared.vocab_size)
        if vocab != model_vocab(run.model, run.data.vocab_size):  # the tokenizer came out smaller than
            # data.vocab_size (a small corpus): the run's real plan is another one, on the vocabulary it will have
            plan = make_plan(run.model, run.train, vocab, select(run.device, run.train), run.data.val_tokens,
                             run.schedule)
        try:
            check_cell(plan, run.data, prepared.train_tokens, run.run_name)
        except ConfigError as err:
            errors.append(str(err))
    if errors:
        raise ConfigError(f"{len(errors)} of {len(grid.runs)} cell(s) would repeat the corpus too often; nothing "
                          f"was trained:\n  " + "\n  ".join(errors[:MAX_ERRORS_SHOWN]))


def check_tasks(grid: Grid, prepared) -> None:
    """The task suite of the cells that use it, prepared once and checked against the corpus's tokenizer and each
    context length before any cell trains (a TaskError, a ConfigError, names the fix)."""
    from .tasks.runner import tasks_of

    seen = set()
    for cell in grid.planned:
        run = cell.run
        key = (run.tasks.seed, run.tasks.items, run.model.seq_len, run.tasks.mix > 0)
        if cell.trunk is None and not cell.skipped and key not in seen:
            seen.add(key)
            tasks_of(run, prepared)


def cell_table(sweep_dir: Path, cells: list[Cell]) -> str:
    """One line per planned cell: status, val_loss, tokens, wall time; a skipped cell says why."""
    lines = [f"{'cell':<40}{'status':>11}{'val_loss':>10}{'tokens':>10}{'wall':>8}"]
    for cell in cells:
        name = cell.name
        if cell.skipped:
            lines.append(f"{name[:39]:<40}{'skipped':>11}  {cell.skipped}")
            continue
        s = rundir.read_summary(sweep_dir / name) or {"status": "not run"}
        loss, tokens, wall = s.get("val_loss"), s.get("tokens"), s.get("wall_s")
        lines.append(f"{name[:39]:<40}{s.get('status', '?'):>11}"
                     f"{f'{loss:.4f}' if isinstance(loss, float) else '-':>10}"
                     f"{f'{tokens:.3g}' if isinstance(tokens, (int, float)) else '-':>10}"
                     f"{f'{wall:.0f} s' if isinstance(wall, (int, float)) else '-':>8}")
    return "\n".join(lines)


def _run_cells(grid: Grid) -> int:
    """The shared corpus and the suite prepared and checked, the manifest written, then Hydra's launcher runs the
    cells; Hydra's exit code."""
    if not any(k == "data" or k.startswith("data.") for k in grid.keys):
        from .data import prepare  # parallel cells share one corpus: tokenize it once, up front

        prepared = prepare(grid.run.data, Path(grid.run.out_dir) / grid.run.data.cache_dir)
        check_repetition(grid, prepared)
        check_tasks(grid, prepared)
    write_manifest(grid)  # before any cell starts: the cells read their skip decision from it
    os.environ[GRID_CELLS_ENV] = str(grid.processes)  # cells side by side divide the cores (launch.parallel_cells)
    return hydra_run(grid.argv)


def launch_grid(argv: list[str]) -> tuple[int, Path]:
    """Run every cell of the grid; 1 when a cell failed (each named on stderr), else Hydra's exit code. Ends with
    the table of cells and the next command."""
    grid = plan_grid(argv)
    code = _run_cells(grid)
    skipped = len(grid.skipped)
    print(f"\n{grid.sweep_dir}: {len(grid.planned)} cell(s)" + (f", {skipped} skipped" if skipped else "")
          + f"\n{cell_table(grid.sweep_dir, grid.planned)}")
    failed = rundir.failed_cells(grid.sweep_dir) if grid.sweep_dir.is_dir() else []
    if failed:
        print(f"{len(failed)} cell(s) of {grid.sweep_dir} failed:", file=sys.stderr)
        for name, error in failed:
            print(f"  {name}: {error}", file=sys.stderr)
        print("relaunch the same command to retry them; completed cells are skipped", file=sys.stderr)
        return EXIT_FAILED, grid.sweep_dir
    if code == 0:
        print(f"next: sweep analyze {grid.sweep_dir}")
    return code, grid.sweep_dir


SUBMIT_LAUNCHER = ["hydra/launcher=slurm", "hydra.launcher.wait=false"]


def submit_grid(argv: list[str]) -> int:
    """`sweep submit`: every cell checked, the cells with work to do submitted to SLURM as one job array, and back
    at once with the job ids (the SLURM launcher records them in jobs.jsonl; `sweep status` follows them)."""
    import time

    from .scheduler import read_jobs, reachable

    chosen = [a for a in argv if a.startswith("hydra/launcher=")]
    launcher = chosen[-1] if chosen else SUBMIT_LAUNCHER[0]
    if not launcher.startswith(SUBMIT_LAUNCHER[0]):  # slurm, or a preset over it (slurm_multinode)
        raise ConfigError(f"sweep submit sends a grid to SLURM (hydra/launcher=slurm or slurm_multinode), not "
                          f"{launcher}: drop it, or run `sweep train -m ...` for that launcher")
    reachable()  # before anything is written: no sbatch or no controller is one line
    argv = [a for a in argv if a not in ("-m", "--multirun") and not a.startswith("hydra/launcher=")]
    grid = plan_grid(["-m", *argv, launcher, *SUBMIT_LAUNCHER[1:]])
    from hydra_plugins.sweep_slurm import SchedulerRefused, try_settings

    from .config import compose_raw

    try:  # the scheduler's word on partition, account, time and resources, before anything is written
        try_settings(compose_raw(list(grid.planned[0].overrides)).hydra.launcher)
    except SchedulerRefused as err:
        raise ConfigError(str(err.code).removeprefix("error: ")) from None
    started = time.time()
    code = _run_cells(grid)
    if code != 0:
        return code
    new = {name: job for name, job in read_jobs(grid.sweep_dir).items() if job.get("submitted", 0) >= started}
    todo = [c.name for c in grid.planned if not c.skipped and c.packed_in is None and c.trunk is None]
    print(f"\n{grid.sweep_dir}: {len(grid.planned)} cell(s); {len(new)} job(s) submitted")
    for name, job in new.items():
        print(f"  {job['job_id']:<12}{name}")
    if len(new) < len(todo):
        print(f"  ({len(todo) - len(new)} cell(s) already done, queued or running: not submitted again)")
    print(f"next: sweep status {grid.sweep_dir}")
    return 0
