"""The analysis run in wandb (job_type=analysis, in the group of its study's runs): the fitted values in its summary,
a table of the runs and the plots; and which wandb mode `--wandb auto` means for a sweep. A mirror: the files on
disk stand without it.
"""

from __future__ import annotations

import sys
from pathlib import Path


def summary_values(fits: dict) -> dict[str, float]:
    """Flat key values for wandb's summary and quick reading."""
    out = {f"approach3/{k}": fits["approach3"][k] for k in ("E", "A", "B", "alpha", "beta")}
    out.update({f"allocation/{k}": fits["allocation"][k] for k in ("a", "b", "G")})
    for sec in ("approach2", "approach1"):
        out.update({f"{sec}/{k}": fits[sec][k] for k in ("a", "b") if k in fits[sec]})
    for sec, ci in (("approach3", fits["approach3"].get("ci") or {}), ("approach2", fits["approach2"].get("ci") or {})):
        for k, (lo, hi) in ci.items():
            out[f"{sec}/{k}_ci_low"], out[f"{sec}/{k}_ci_high"] = lo, hi
    return out


def log_wandb(ds, fits, plots: dict, out: Path, mode: str) -> dict:
    """Log the analysis run; returns what fits.json records of it (mode, id, dir; or the error, which is not fatal)."""
    try:
        import wandb

        run = wandb.init(project=ds.logger.get("project") or "sweep", entity=ds.logger.get("entity"),
                         group=ds.logger.get("group") or ds.sweep_name, job_type="analysis",
                         name=f"analysis-{ds.sweep_name}", dir=str(out),
                         mode=mode, config={"params": ds.params, "source": ds.source, "bootstrap": fits["bootstrap"]},
                         settings=wandb.Settings(console="off", x_disable_stats=True))
        run.summary.update(summary_values(fits))
        table = wandb.Table(dataframe=ds.runs[["run_name", "N", "D", "C", "loss", "budget"]].astype(
            {"N": float, "D": float, "C": float, "loss": float, "budget": float}))
        run.log({"runs": table, **{f"plots/{k}": wandb.Image(str(v)) for k, v in plots.items()}})
        info = {"mode": mode, "id": run.id, "dir": str(Path(run.dir).parent)}
        run.finish()
        return info
    except Exception as err:  # the fits and report stand without wandb: say so, don't lose them
        print(f"sweep analyze: wandb logging failed ({type(err).__name__}: {err}); results are on disk",
              file=sys.stderr)
        return {"mode": mode, "error": f"{type(err).__name__}: {err}"}


def resolve_mode(ds, requested: str) -> str:
    """The wandb mode of the analysis run: as requested, or with `auto` as the runs' logger config said."""
    if requested != "auto":
        return "off" if requested == "disabled" else requested
    if ds.logger.get("name") == "wandb" and ds.logger.get("mode", "offline") != "disabled":
        return ds.logger.get("mode") or "offline"
    return "off"
