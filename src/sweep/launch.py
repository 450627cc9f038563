"""Launching cells through Hydra: `sweep train` validates a run before Hydra creates anything (`preflight`), then
runs Hydra's own entry point (`hydra_run`), whose task is `train_cell`: train into the directory Hydra gives it and
record a failure there. Grids (`-m`) are planned, launched and reported by sweep.grid, which cli.py sends them to: it
runs its cells through this entry point and task, and this module never imports it.
"""

from __future__ import annotations

import errno
import logging
import sys
from pathlib import Path

from . import rundir
from .config import ConfigError, compose, load
from .config.compose import CONFIG_MODULE, PRIMARY, register
from .data import DataError
from .exits import EXIT_FAILED, EXIT_INPUT_ERROR

log = logging.getLogger("sweep.launch")


# ---------------------------------------------------------------------------------------------- one cell
GRID_CELLS_ENV = "SWEEP_GRID_CELLS"  # set by grid.launch_grid: how many processes its cells take


def parallel_cells() -> int:
    """How many cells of this multirun share the machine, for dividing its cores among their torch threads: joblib
    runs n_jobs at a time, submitit's local launcher all of them; never more than the grid has cells."""
    import os

    from hydra.core.hydra_config import HydraConfig

    launcher = HydraConfig.get().launcher
    target = str(launcher.get("_target_", ""))
    cells = int(os.environ.get(GRID_CELLS_ENV, 0)) or None
    if "joblib" in target:
        from joblib import effective_n_jobs  # n_jobs=-1: the usable CPUs (affinity and cgroup quota), as joblib runs

        at_once = effective_n_jobs(int(launcher.get("n_jobs") or 1))
    elif target.endswith("submitit_launcher.LocalLauncher"):  # one local process per cell, all at once
        at_once = cells or 1
    else:  # one at a time (basic), or each on its own allocation (SLURM)
        return 1
    return max(1, min(at_once, cells or at_once))


def _is_single_run() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.get().mode == RunMode.RUN


def describe_failure(err: BaseException) -> str:
    """One line for an operational failure: what failed, where, and what to do."""
    if isinstance(err, OSError) and err.strerror:
        where = f" writing {err.filename}" if err.filename else ""
        fix = ("free some space" if err.errno == errno.ENOSPC else "make it writable" if err.errno in
               (errno.EACCES, errno.EPERM, errno.EROFS) else "fix the cause")
        return (f"{err.strerror}{where}; {fix} and relaunch the same command: the run resumes from its last "
                f"checkpoint, which was left intact")
    return str(err)


def grid_entries(run_dir: Path) -> dict[str, dict]:
    """What the grid that launched this cell decided for its cells, by name, as its manifest says (written before
    any cell starts): whether each is skipped, and its pack. The grid decided once, from the plan it made; the cell
    reads that decision rather than planning itself again: the manifest lies in the sweep directory every cell
    writes to, so it reaches cells on any launcher and host."""
    return {c["name"]: c for c in rundir.read_manifest(run_dir.parent) or []}


def _pack_mates(run_dir: Path, names: list[str], entries: dict[str, dict]) -> tuple[list, list[Path]]:
    """The other cells of a pack, composed from their manifest overrides (after which Hydra's own config for this
    job is put back), and their directories."""
    from hydra.core.hydra_config import HydraConfig

    from .config import compose_raw

    mine = HydraConfig.instance().cfg
    try:
        runs = [load(compose_raw(list(entries[name]["overrides"]))) for name in names]
    finally:
        HydraConfig.instance().set_config(mine)
    return runs, [run_dir.parent / name for name in names]


def train_cell(cfg) -> float | None:
    """The Hydra task of one cell: train into Hydra's output directory; a failure is recorded there (except that a
    cell another process is training is left alone). A single run's known failures end in one line on stderr: exit 2
    for bad input, 1 for a failed run; a grid's go to Hydra, which goes on with the other cells."""
    from hydra.core.hydra_config import HydraConfig

    from .train import runtime
    from .train.branches import train_with_branches
    from .train.checkpoint import CheckpointError
    from .train.loop import NonFiniteLoss, train

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    single = _is_single_run()
    entries = {} if single else grid_entries(run_dir)
    entry = entries.get(run_dir.name, {})
    mates: list[Path] = []
    try:
        if entry.get("status") == rundir.SKIPPED:  # the grid lists it skipped; Hydra's product launches it anyway
            rundir.discard_unstarted(run_dir)
            return None
        if entry.get("packed_in"):  # its pack's first cell trains it, in that cell's process
            return None
        run = load(cfg)
        cells = parallel_cells()
        rt = runtime.resolve(run.device, run.train, cells)
        if entry.get("pack"):
            from .train.pack import train_pack

            mate_runs, mates = _pack_mates(run_dir, entry["pack"], entries)
            results = train_pack([run, *mate_runs], [run_dir, *mates], rt)
            if isinstance(results[0], BaseException):
                raise results[0]
            summary = results[0]
        else:
            trainer = train_with_branches if run.train.cooldowns else train  # a trunk trains its branches after it
            summary = trainer(run, run_dir, rt, progress=cells == 1)
        runtime.leave_together(rt)
    except (rundir.RunDirBusy, rundir.OtherSettings) as err:  # the directory is another launch's: leave it be
        if single:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(EXIT_INPUT_ERROR if isinstance(err, ConfigError) else EXIT_FAILED) from None
        raise
    except (ConfigError, DataError) as err:
        if single and rundir.discard_unstarted(run_dir):  # refused before training: leave nothing behind
            raise SystemExit(f"error: {err}") from None
        rundir.record_failure(run_dir, err)
        if single:
            raise SystemExit(f"error: {err}") from None
        raise
    except (rundir.RunDirError, CheckpointError, NonFiniteLoss, OSError) as err:
        _record_failures([run_dir, *mates], err)
        if single:
            print(f"error: {describe_failure(err)}", file=sys.stderr)
            raise SystemExit(EXIT_FAILED) from None
        raise
    except Exception as err:
        _record_failures([run_dir, *mates], err)
        raise
    return summary.get("val_loss")


def _record_failures(run_dirs: list[Path], err: BaseException) -> None:
    """A cell's failure in its directory; a pack's, in each of its cells' that had not completed or failed alone."""
    for d in run_dirs:
        if d == run_dirs[0] or not rundir.read_summary(d):
            rundir.record_failure(d, err)


def hydra_run(argv: list[str]) -> int:
    """Hydra's own entry point on these arguments (so -m, --cfg, --help, tab completion behave as Hydra's)."""
    import hydra

    register()
    app = hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name=PRIMARY, version_base="1.3")(train_cell)
    saved, handlers = sys.argv, logging.root.handlers[:]
    sys.argv = ["sweep", *argv]
    logging.root.handlers.clear()  # Hydra installs its own (console and the job's log file): one line each, not two
    try:
        app()
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return EXIT_INPUT_ERROR
        return exc.code or 0
    finally:
        sys.argv = saved
        logging.root.handlers[:] = handlers
    return 0


def preflight(run):
    """Everything checkable before Hydra creates a directory or any data work starts: the plan (horizon, batch
    arithmetic, device), the data config (vocabulary, token cap, where the corpus is) and the task suite's (weights,
    held-out partitions). Returns the plan."""
    from .config.schema import no_effect
    from .train.plan import check_plan

    plan = check_plan(run)
    from .data import check as check_data

    check_data(run.data)
    from .tasks.suite import check_suite

    check_suite(run.tasks)
    for message in no_effect(run):
        log.warning(message)
    return plan


def launch(argv: list[str]) -> int:
    """`sweep train ARGS` without -m (cli.py sends a grid to grid.launch_grid). The run is validated (config,
    horizon, batch arithmetic, device) before Hydra creates its directory, so a rejected config leaves nothing
    behind."""
    if not any(a.startswith("-") for a in argv):  # Hydra's own flags (--help, --cfg, -sc) go straight to Hydra
        preflight(compose(argv))
    return hydra_run(argv)
