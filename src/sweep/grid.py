"""Grids (`sweep train -m`, `sweep demo`): every cell composed and checked before any data or training work, the
shared corpus prepared once, the cells run by Hydra's launcher (basic, joblib, submitit), then a table of the cells
and the next command. A cooldown trunk's branches (train/branches.py) are listed after it, as cells of their own."""

from __future__ import annotations

import itertools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from . import rundir
from .config import ConfigError, compose_raw, load
from .config.compose import explain
from .exits import EXIT_FAILED
from .launch import GRID_CELLS_ENV, _hydra_run, preflight
from .train.branches import branch_run, branches_of, skipped_branches
from .train.plan import outside_range

MAX_ERRORS_SHOWN = 5


@dataclass(frozen=True)
class Grid:
    """A multirun as planned before launching."""
    argv: list[str]  # what Hydra runs: the user's arguments plus sweep.grid
    keys: list[str]  # the swept keys
    sweep_dir: Path
    cells: list[str]  # run names, in launch order (a trunk's branches after it)
    runs: list  # the launched cells' RunConfigs (the first cell's corpus is the one prepared up front)
    skipped: dict  # run name → why the grid skips it (sweep.tokens_per_param_range)
    branches: dict  # a trunk's run name → its kept branches (train/branches.Branch)

    @property
    def run(self):
        return self.runs[0]


def cell_overrides(argv: list[str]) -> tuple[list[list[str]], list[str]]:
    """Every cell's overrides, as Hydra's basic sweeper makes them (the preset's sweeper params, then the command
    line, a later value for a key replacing an earlier one, then their product), and the swept keys."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    overrides = [a for a in argv if not a.startswith("-")]
    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
        fixed = [text for text, o in zip(overrides, parsed) if not o.is_sweep_override()]
        preset = compose_raw(fixed).hydra.sweeper.params or {}
        axes: dict[str, list[str]] = {}
        for o in parser.parse_overrides([f"{k}={v}" for k, v in preset.items()]) + parsed:
            key = o.get_key_element()
            if not o.is_sweep_override():
                axes[key] = [f"{key}={o.get_value_element_as_str()}"]
            elif o.is_discrete_sweep():
                axes[key] = [f"{key}={v}" for v in o.sweep_string_iterator()]
            else:
                raise ConfigError(f"{key}: a grid takes lists and range() sweeps, not intervals")
    except HydraException as err:
        raise ConfigError(explain(err, overrides)) from None
    keys = sorted(k.lstrip("+~") for k, values in axes.items() if len(values) > 1 or k in preset
                  or any(o.is_sweep_override() and o.get_key_element() == k for o in parsed))
    return [list(combo) for combo in itertools.product(*axes.values())], keys


def plan_grid(argv: list[str]) -> Grid:
    """Compose and check every cell before any data or training work: bad input anywhere in the grid is one
    ConfigError naming the cells, and nothing is written."""
    cells, keys = cell_overrides(argv)
    grid_key = f"sweep.grid=[{','.join(keys)}]"
    runs, errors, skipped, branches, names = [], [], {}, {}, []
    for overrides in cells:
        try:
            run = load(compose_raw([*overrides, grid_key]))
            plan = preflight(run)
            why = outside_range(plan, run.sweep.tokens_per_param_range)
            if why:
                skipped[run.run_name] = why
            runs.append(run)
            names.append(run.run_name)
            if run.train.cooldowns:
                branches[run.run_name] = branches_of(run, plan)
                skipped.update(skipped_branches(run, plan))
                names += [branch_run(run, horizon).run_name for horizon in run.train.cooldowns]
        except (ConfigError, ValueError) as err:
            errors.append(f"{' '.join(o for o in overrides if o.split('=')[0] in keys) or 'the grid'}: {err}")
    if errors:
        shown = "\n  ".join(errors[:MAX_ERRORS_SHOWN])
        more = f"\n  … and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise ConfigError(f"{len(errors)} of {len(cells)} cell(s) of this grid are invalid; nothing was run:\n  "
                          f"{shown}{more}")
    twins = sorted({n for n in names if names.count(n) > 1})
    if twins:
        raise ConfigError(f"cells of this grid share a directory ({', '.join(twins)}): their runs would refuse each "
                          f"other; sweep a key that defines the cell, or give each grid its own sweep.name")
    if all(run.run_name in skipped for run in runs):
        raise ConfigError(f"every cell of this grid is outside sweep.tokens_per_param_range "
                          f"{list(runs[0].sweep.tokens_per_param_range)}; widen it or change the grid")
    first = runs[0]
    return Grid([*argv, grid_key], keys, Path(first.out_dir) / first.sweep.name, names, runs, skipped, branches)


def check_repetition(grid: Grid, prepared) -> None:
    """Every cell's passes over the shared corpus, before any trains: cells past MAX_EPOCHS are one ConfigError."""
    from .train.plan import check_repetition as check_cell, make_plan, model_vocab
    from .train.runtime import select

    errors = []
    for run in grid.runs + [b.run for kept in grid.branches.values() for b in kept]:  # a trunk's: its branches'
        if run.run_name in grid.skipped or run.train.cooldowns:
            continue
        vocab = model_vocab(run.model, prepared.vocab_size)
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
    for run in grid.runs:
        key = (run.tasks.seed, run.tasks.items, run.model.seq_len, run.tasks.mix > 0)
        if run.run_name not in grid.skipped and key not in seen:
            seen.add(key)
            tasks_of(run, prepared)


def cell_table(sweep_dir: Path, cells: list[str], skipped: dict | None = None) -> str:
    """One line per cell: status, val_loss, tokens, wall time; a skipped cell says why."""
    lines = [f"{'cell':<40}{'status':>11}{'val_loss':>10}{'tokens':>10}{'wall':>8}"]
    for name in cells:
        if name in (skipped or {}):
            lines.append(f"{name[:39]:<40}{'skipped':>11}  {skipped[name]}")
            continue
        s = rundir.read_summary(sweep_dir / name) or {"status": "not run"}
        loss, tokens, wall = s.get("val_loss"), s.get("tokens"), s.get("wall_s")
        lines.append(f"{name[:39]:<40}{s.get('status', '?'):>11}"
                     f"{f'{loss:.4f}' if isinstance(loss, float) else '-':>10}"
                     f"{f'{tokens:.3g}' if isinstance(tokens, (int, float)) else '-':>10}"
                     f"{f'{wall:.0f} s' if isinstance(wall, (int, float)) else '-':>8}")
    return "\n".join(lines)


def launch_grid(argv: list[str]) -> tuple[int, Path]:
    """Run every cell of the grid; 1 when a cell failed (each named on stderr), else Hydra's exit code. Ends with
    the table of cells and the next command."""
    grid = plan_grid(argv)
    if not any(k == "data" or k.startswith("data.") for k in grid.keys):
        from .data import prepare  # parallel cells share one corpus: tokenize it once, up front

        prepared = prepare(grid.run.data, Path(grid.run.out_dir) / grid.run.data.cache_dir)
        check_repetition(grid, prepared)
        check_tasks(grid, prepared)
    # cells side by side divide the cores (launch.parallel_cells); skipped cells take none
    os.environ[GRID_CELLS_ENV] = str(sum(run.run_name not in grid.skipped for run in grid.runs))
    code = _hydra_run(grid.argv)
    print(f"\n{grid.sweep_dir}: {len(grid.cells)} cell(s)" + (f", {len(grid.skipped)} skipped" if grid.skipped else "")
          + f"\n{cell_table(grid.sweep_dir, grid.cells, grid.skipped)}")
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
