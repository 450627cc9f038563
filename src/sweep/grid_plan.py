"""A grid turned into its cells once: every cell's run name, overrides, plan and whether the grid skips it, decided
here and read by every later stage (the checks before launching, the launch, the end table, the cells themselves
through the manifest). A cooldown trunk's branches (train/branches.py) follow it, as cells of their own.

The manifest, `<sweep_dir>/manifest.jsonl` (rundir.MANIFEST, read by rundir.read_manifest), is that plan as one JSON
object per cell, written atomically before the first cell starts. A sweep directory can take several grids: the
manifest keeps the cells of the others as they were written, and a relaunch of the same grid rewrites it byte for
byte. A cell whose directory holds a run with other settings refuses the grid before anything is written
(rundir.OtherSettings, as the cell itself would), so a refused relaunch never writes over what its runs were."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import rundir
from .config import ConfigError, RunConfig, compose_raw, load
from .config.schema import check_seed_list
from .config.compose import explain
from .files import dumps, write_text_atomic
from .launch import preflight
from .train.branches import branch_run
from .train.plan import Plan, check_plan, model_vocab, outside_range

MAX_ERRORS_SHOWN = 5


@dataclass(frozen=True)
class Cell:
    """One cell as the grid planned it."""
    name: str  # its run name: its directory in the sweep directory
    overrides: tuple  # what composes it (sweep.grid included); a branch: its trunk's, whose process trains it
    run: RunConfig = field(repr=False)
    plan: Plan = field(repr=False)
    skipped: str | None = None  # why the grid skips it (sweep.tokens_per_param_range); None: it trains
    trunk: str | None = None  # a cooldown branch's trunk
    branch_step: int | None = None  # a kept branch's point on its trunk
    pack: tuple = ()  # a pack's first cell: the other cells its process trains with it (train/pack.py)
    packed_in: str | None = None  # a cell another cell's process trains, in its pack

    def record(self) -> dict:
        """Its manifest line: only what is decided by the config, so that a relaunch writes the same bytes (the
        micro-batch and runtime, which the machine can change, are the run's config.yaml's)."""
        p, run = self.plan, self.run
        out = {"name": self.name, "status": rundir.SKIPPED if self.skipped else rundir.PLANNED,
               "reason": self.skipped, "overrides": list(self.overrides)}
        if self.trunk:
            out.update(trunk=self.trunk, branch_step=self.branch_step)
        if self.pack:
            out["pack"] = list(self.pack)
        if self.packed_in:
            out["packed_in"] = self.packed_in
        out["plan"] = {"n_params": dict(p.n_params), "vocab_size": model_vocab(run.model, run.data.vocab_size),
                       "horizon": p.horizon, "tokens": p.tokens, "flops": p.flops,
                       "flops_per_token": p.flops_per_token, "steps": p.steps, "batch_tokens": p.batch_tokens,
                       "lr": p.lr, "tokens_per_param": p.tokens / p.n_params["non_embedding"]}
        return out


@dataclass(frozen=True)
class Grid:
    """A multirun as planned before launching."""
    argv: list[str]  # what Hydra runs: the user's arguments plus sweep.grid
    keys: list[str]  # the swept keys
    sweep_dir: Path
    planned: tuple  # every Cell, in launch order (a trunk's branches after it)

    @property
    def cells(self) -> list[str]:
        return [c.name for c in self.planned]

    @property
    def skipped(self) -> dict:
        """Run name → why the grid skips it."""
        return {c.name: c.skipped for c in self.planned if c.skipped}

    @property
    def runs(self) -> list:
        """The RunConfigs Hydra launches (branches train in their trunk's process)."""
        return [c.run for c in self.planned if c.trunk is None]

    @property
    def run(self):
        """The first cell's: its corpus is the one prepared up front."""
        return self.runs[0]

    @property
    def processes(self) -> int:
        """Cells that train in a process of their own: skipped cells take none, a pack one for all its cells."""
        return sum(c.trunk is None and not c.skipped and c.packed_in is None for c in self.planned)


def cell_overrides(argv: list[str]) -> tuple[list[list[str]], list[str]]:
    """Every cell's overrides, as Hydra's basic sweeper makes them (the preset's sweeper params, then the command
    line, a later value for a key replacing an earlier one, then their product), and the swept keys. sweep.seeds
    adds the `seed` axis last (plan_grid passes Hydra the same seed list)."""
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
        seeds = list(compose_raw(fixed).sweep.seeds or [])
    except HydraException as err:
        raise ConfigError(explain(err, overrides)) from None
    if seeds:  # replicates: the seed axis
        check_seed_list(seeds)
        if "seed" in axes:
            raise ConfigError(f"sweep.seeds={seeds} and seed={axes['seed'][0].split('=', 1)[1]}"
                              f"{' …' if len(axes['seed']) > 1 else ''} both set the seeds: give one of them")
        axes["seed"] = [f"seed={s}" for s in seeds]
    keys = sorted(k.lstrip("+~") for k, values in axes.items() if len(values) > 1 or k in preset
                  or (k == "seed" and seeds) or any(o.is_sweep_override() and o.get_key_element() == k for o in parsed))
    return [list(combo) for combo in itertools.product(*axes.values())], keys


def plan_cell(run: RunConfig, overrides: tuple) -> list[Cell]:
    """The cell of this config, checked (launch.preflight) and planned once, then a trunk's branches, each planned
    once as the independent run it equals."""
    plan = preflight(run)
    span = run.sweep.tokens_per_param_range
    cells = [Cell(run.run_name, overrides, run, plan, outside_range(plan, span))]
    kept = {b["horizon"]: b["branch_step"] for b in plan.branches}  # the branches the trunk's plan trains
    for horizon in run.train.cooldowns:
        branch = branch_run(run, horizon)
        branch_plan = check_plan(branch)
        why = None if horizon in kept else outside_range(branch_plan, span)
        cells.append(Cell(branch.run_name, overrides, branch, branch_plan, why, run.run_name, kept.get(horizon)))
    return cells


def plan_grid(argv: list[str]) -> Grid:
    """Compose, check and plan every cell before any data or training work: bad input anywhere in the grid is one
    ConfigError naming the cells, and nothing is written."""
    combos, keys = cell_overrides(argv)
    grid_key = f"sweep.grid=[{','.join(keys)}]"
    planned, errors = [], []
    for overrides in combos:
        try:
            planned += plan_cell(load(compose_raw([*overrides, grid_key])), (*overrides, grid_key))
        except (ConfigError, ValueError) as err:
            errors.append(f"{' '.join(o for o in overrides if o.split('=')[0] in keys) or 'the grid'}: {err}")
    if errors:
        raise ConfigError(f"{len(errors)} of {len(combos)} cell(s) of this grid are invalid; nothing was run:"
                          f"{_listed(errors)}")
    names = [c.name for c in planned]
    twins = sorted({n for n in names if names.count(n) > 1})
    if twins:
        raise ConfigError(f"cells of this grid share a directory ({', '.join(twins)}): their runs would refuse each "
                          f"other; sweep a key that defines the cell, or give each grid its own sweep.name")
    planned = assign_packs(planned)
    first = planned[0].run
    seeds = [f"seed={','.join(map(str, first.sweep.seeds))}"] if first.sweep.seeds else []  # Hydra sweeps them too
    grid = Grid([*argv, *seeds, grid_key], keys, Path(first.out_dir) / first.sweep.name, tuple(planned))
    if grid.processes == 0:
        raise ConfigError(f"every cell of this grid is outside sweep.tokens_per_param_range "
                          f"{list(first.sweep.tokens_per_param_range)}; widen it or change the grid")
    check_directories(grid)
    return grid


def assign_packs(planned: list[Cell]) -> list[Cell]:
    """Same-shape cells grouped into packs of launcher.pack (train/pack.py: pack_size, pack_key), in launch order:
    a pack's first cell lists the others, which name it. Skipped cells, cooldown trunks and their branches train
    alone. A pack that would not fit in memory is refused here, before any work."""
    from .train.pack import check_pack_memory, pack_key, pack_size

    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(planned):
        if not c.skipped and c.trunk is None and not c.run.train.cooldowns and pack_size(c.run, c.plan) > 1:
            groups.setdefault(pack_key(c.run, c.plan), []).append(i)
    out = list(planned)
    for members in groups.values():
        size = pack_size(planned[members[0]].run, planned[members[0]].plan)
        for start in range(0, len(members), size):
            chunk = members[start:start + size]
            if len(chunk) < 2:
                continue
            check_pack_memory([(planned[i].run, planned[i].plan) for i in chunk])
            lead = planned[chunk[0]]
            out[chunk[0]] = replace(lead, pack=tuple(planned[i].name for i in chunk[1:]))
            for i in chunk[1:]:
                out[i] = replace(planned[i], packed_in=lead.name)
    return out


def check_directories(grid: Grid) -> None:
    """The same-cell check (rundir.check_same_cell) of every cell the grid trains whose directory holds a run, before
    any work: cells with other settings are one OtherSettings, the manifest and every directory left as they were."""
    errors = []
    for cell in grid.planned:
        run_dir = grid.sweep_dir / cell.name
        if cell.skipped or not (run_dir / rundir.CONFIG).exists():
            continue
        try:
            saved = rundir.read_config(run_dir)
        except ConfigError:
            continue  # a damaged config.yaml: the cell's own failure to record, as for any launch
        try:
            rundir.check_same_cell(cell.run, run_dir, saved)
        except rundir.OtherSettings as err:
            errors.append(str(err))
    if errors:
        raise rundir.OtherSettings(f"{len(errors)} cell(s) of this grid would be refused; nothing was run:"
                                   f"{_listed(errors)}")


def write_manifest(grid: Grid) -> Path:
    """Write the grid's cells into the sweep directory's manifest, atomically: each replaces the line of its name in
    place, new ones follow in launch order, and the lines of other grids' cells stay as they were."""
    path = grid.sweep_dir / rundir.MANIFEST
    ours = {c.name: c.record() for c in grid.planned}
    lines = [ours.pop(old["name"], old) for old in rundir.read_manifest(grid.sweep_dir) or []] + list(ours.values())
    grid.sweep_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, "".join(dumps(line) + "\n" for line in lines))
    return path


def _listed(errors: list[str]) -> str:
    more = f"\n  … and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
    return "\n  " + "\n  ".join(errors[:MAX_ERRORS_SHOWN]) + more
