"""The analysis run in wandb (job_type=analysis, in the group of its study's runs), and which wandb mode `--wandb
auto` means for a sweep. One run per sweep: its id is derived from the analysed sweep directory (or CSV), project
and group, and it is resumed, so re-analysing updates the same run. It holds the fitted values in its summary, a
table of the runs (included or why not, Approach 3's prediction and residual), native charts built from it (hover,
filter: loss vs N per FLOP budget, loss vs C, residuals vs N, D and C, the compute frontier, N*(C)), the plots as
images, and fits.json, report.md and report.html as a new version of an `analysis` artifact (and in its files).

A mirror: the files on disk stand without it, and any wandb failure is reported, never raised.
"""

from __future__ import annotations

import hashlib
import re
import sys
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..laws.lse import law_loss
from ..result.fits import Fits, WandbRecord
from .plots.base import law, own_flops, runs_table
from .plots.optimal import optimum
from .fmt import sci

MAX_SERIES = 20  # budgets drawn as lines in one chart: past this, a spread of them


def summary_values(fits: Fits) -> dict[str, float]:
    """Flat key values for wandb's summary and quick reading (what the fits hold; a missing fit adds nothing)."""
    out = {}
    for name, keys in (("approach3", ("E", "A", "B", "alpha", "beta")), ("allocation", ("a", "b", "G")),
                       ("approach2", ("a", "b")), ("approach1", ("a", "b"))):
        values = {k: getattr(getattr(fits, name), k) for k in keys}
        out.update({f"{name}/{k}": v.value for k, v in values.items() if v is not None})
        if name in ("approach3", "approach2"):  # their intervals too
            for k, v in values.items():
                if v is not None and v.ci:
                    out[f"{name}/{k}_ci_low"], out[f"{name}/{k}_ci_high"] = v.ci
    h = fits.holdout.approach3
    if h is not None:
        out["holdout/mean_rel_error"] = h.mean_rel_error
    board = fits.leaderboard
    if board is not None and board.recommended is not None:  # the ranking's numbers (the names are in fits.json)
        for law in board.laws:
            if law.score is not None:
                out[f"leaderboard/{law.key}/score"] = law.score
                out[f"leaderboard/{law.key}/rank"] = law.rank
                if law.coverage is not None:
                    out[f"leaderboard/{law.key}/coverage"] = law.coverage
        if board.resolved is not None:
            out["leaderboard/resolved"] = int(board.resolved)
    return out


def run_id(ds) -> str:
    """The analysis run's id: the same for every analysis of one sweep directory (or CSV) into one project/group."""
    key = "\n".join([str(Path(ds.source).resolve()), str(ds.logger.get("entity") or ""), _project(ds), _group(ds)])
    return "analysis-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _project(ds) -> str:
    return ds.logger.get("project") or "sweep"


def _group(ds) -> str:
    return ds.logger.get("group") or ds.sweep_name


def _column(values) -> list:
    """Python values for a wandb.Table column: NaN as None."""
    return [None if isinstance(v, float) and not np.isfinite(v) else v for v in
            (x.item() if hasattr(x, "item") else x for x in values)]


def _charts(wandb, ds, fits: Fits, table, t) -> dict:
    """Native wandb charts (tables with a Vega spec) from the runs table t and the fits."""
    charts = {"charts/loss_vs_C": wandb.plot.scatter(table, "log10_C", "loss", title="final loss vs log10 FLOPs C")}
    if law(fits) is not None:
        for key in ("N", "D", "C"):
            charts[f"charts/residual_vs_{key}"] = wandb.plot.scatter(
                table, f"log10_{key}", "residual", title=f"Approach 3 residual ln(observed/predicted) vs log10 {key}")
    budgets = np.unique(t["budget"][np.isfinite(t["budget"].to_numpy(float))])
    if len(budgets):
        budgets = budgets[np.unique(np.linspace(0, len(budgets) - 1, MAX_SERIES).round().astype(int))]
        xs, ys = [], []
        for c in budgets:
            g = t[t["budget"] == c].sort_values("N")
            xs.append(np.log10(g["N"]).tolist())
            ys.append(g["loss"].tolist())
        charts["charts/loss_vs_N_by_budget"] = wandb.plot.line_series(
            xs=xs, ys=ys, keys=[f"C = {sci(c)}" for c in budgets], title="final loss vs log10 N, per FLOP budget",
            xname="log10 N")
    xs, ys, keys = [], [], []
    env = fits.approach1.envelope
    if env:
        xs.append([float(np.log10(r.C)) for r in env])
        ys.append([r.L for r in env])
        keys.append("lower envelope (Approach 1)")
    p3 = law(fits)
    if p3 is not None and not fits.approach3.degenerate:
        C = ds.points["C"].to_numpy(float)
        c_grid = np.logspace(np.log10(C.min()), np.log10(C.max()) + 1, 60)
        with np.errstate(all="ignore"):
            n, d = optimum(p3, own_flops(fits), c_grid)
            frontier = law_loss(p3, n, d)
        ok = np.isfinite(frontier)
        xs.append(np.log10(c_grid[ok]).tolist())
        ys.append(frontier[ok].tolist())
        keys.append("Approach 3 at the compute-optimal N, D")
        budgets = fits.approach2.budgets
        series = [(np.log10(c_grid[ok]).tolist(), np.log10(n[ok]).tolist(), "Approach 3")]
        if budgets:
            series.append(([float(np.log10(r.C)) for r in budgets],
                           [float(np.log10(r.N_opt.value)) for r in budgets], "Approach 2 minima"))
        charts["charts/compute_optimal_N"] = wandb.plot.line_series(
            xs=[o[0] for o in series], ys=[o[1] for o in series], keys=[o[2] for o in series],
            title="log10 N* vs log10 C", xname="log10 C")
    if xs:
        charts["charts/frontier"] = wandb.plot.line_series(xs=xs, ys=ys, keys=keys, xname="log10 C",
                                                           title="compute frontier: loss vs log10 FLOPs")
    return charts


def _task_table(wandb, fits: Fits, out: Path) -> dict:
    """The per-run task metrics (tasks.csv: run × variant × metric) as a table, when the sweep has task results."""
    name = fits.emergence.table if fits.emergence else None
    if not name or not (Path(out) / name).exists():
        return {}
    import pandas as pd

    return {"tasks": wandb.Table(dataframe=pd.read_csv(Path(out) / name))}


def start_run(ds, fits: Fits, plots: dict, out: Path, mode: str) -> tuple[object, WandbRecord]:
    """Open (or resume) the sweep's analysis run and log its summary, runs table, charts and plots.
    Returns (run, what fits.json records of it); run is None if wandb failed (the record then holds the error)."""
    run = None
    try:
        import wandb

        rid = run_id(ds)
        run = wandb.init(project=_project(ds), entity=ds.logger.get("entity"), group=_group(ds), job_type="analysis",
                         name=f"analysis-{ds.sweep_name}", id=rid, resume="allow", dir=str(out), mode=mode,
                         settings=wandb.Settings(console="off", x_disable_stats=True))
        run.config.update({"params": ds.params, "source": ds.source, "bootstrap": fits.bootstrap.to_json()},
                          allow_val_change=True)  # a re-analysis may change them
        run.summary.update(summary_values(fits))
        t = runs_table(ds, fits)
        for key in ("N", "D", "C"):
            with np.errstate(all="ignore"):
                t[f"log10_{key}"] = np.log10(t[key].to_numpy(float))
        table = wandb.Table(columns=list(t.columns), data=list(zip(*(_column(t[c]) for c in t.columns))),
                            allow_mixed_types=True)
        run.log({"runs": table, **_charts(wandb, ds, fits, table, t), **_task_table(wandb, fits, out),
                 **{f"plots/{k}": wandb.Image(str(v)) for k, v in plots.items()}})
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", ds.sweep_name).strip("-.") or "sweep"
        return run, WandbRecord(mode=mode, id=run.id, project=_project(ds), dir=str(Path(run.dir).parent),
                                artifact=f"analysis-{name}-{rid[-8:]}")
    except Exception as err:  # the fits and report stand without wandb: say so, don't lose them
        if run is not None:
            with suppress(Exception):
                run.finish(exit_code=1)
        return None, _failed(mode, err)


def finish_run(run, info: WandbRecord, files: list[Path]) -> WandbRecord:
    """Attach the written files to the run (a new version of its `analysis` artifact, and its files) and finish it.
    Returns info, with the error if this failed."""
    try:
        import wandb

        art = wandb.Artifact(info.artifact, type="analysis", metadata={"run": info.id},
                             description="fits.json, report.md and report.html of a `sweep analyze`")
        for f in files:
            art.add_file(str(f), name=f.name)
        run.log_artifact(art)
        for f in files:
            run.save(str(f), base_path=str(f.parent), policy="now")
        run.finish()
        return info
    except Exception as err:
        with suppress(Exception):
            run.finish(exit_code=1)
        return replace(info, error=_failed(info.mode, err).error)


def _failed(mode: str, err: Exception) -> WandbRecord:
    print(f"sweep analyze: wandb logging failed ({type(err).__name__}: {err}); results are on disk", file=sys.stderr)
    return WandbRecord(mode=mode, error=f"{type(err).__name__}: {err}")


def resolve_mode(ds, requested: str, environ=None) -> str:
    """The wandb mode of the analysis run: as requested, or with `auto` as the runs' logger config said, except
    that `auto` never goes online on a config's word alone (the runs may be someone else's, and their config would
    send this machine's results to their project): online needs --wandb online or WANDB_MODE=online here."""
    import logging
    import os

    env = (os.environ if environ is None else environ).get("WANDB_MODE", "").strip().lower()
    if requested != "auto":
        return "off" if requested == "disabled" else requested
    if env in ("disabled", "off"):
        return "off"
    if ds.logger.get("name") != "wandb" or ds.logger.get("mode", "offline") == "disabled":
        return "off"
    mode = ds.logger.get("mode") or "offline"
    if mode == "online" and env != "online":
        logging.getLogger("sweep.analysis").warning(
            "the runs logged to wandb online; the analysis run stays offline (wandb sync uploads it later); "
            "--wandb online or WANDB_MODE=online sends it now")
        return "offline"
    return mode
