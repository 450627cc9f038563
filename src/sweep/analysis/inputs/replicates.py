"""Seeds as replicates: runs that differ only in their seeds (`seed`, train.seed, data.seed) are one cell, and the
laws are fitted to each cell's mean over its seeds. `seed_means(ds)` makes that Dataset: the bootstrap then resamples
cells, each with all its seeds (laws/estimate.py), and its `replicates` keeps every seed's final loss, whose spread
the report sets beside the differences between sizes (laws/seeds.py).

A sweep's cells are named by config/naming.py: a run's cell is its name without its seed. A CSV's rows are seeds
of one cell when a `seed` column is given and the rows share n_params, tokens, flops and group.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ...config.naming import cell_name
from .load import Dataset


@dataclass(frozen=True)
class Replicates:
    """The seeds behind a Dataset of cell means: per cell (a row of its runs) its seeds' final losses."""
    losses: tuple  # per cell, an array of its seeds' final losses

    @property
    def counts(self) -> np.ndarray:
        return np.array([len(x) for x in self.losses])


def pooled_sd(losses) -> float | None:
    """The seeds' standard deviation pooled over the cells (arrays of their seeds' losses) with 2+ seeds:
    √(Σ (k−1)·s² / Σ (k−1)); None when no cell has two."""
    dof = sum(len(x) - 1 for x in losses)
    return float(np.sqrt(sum(((x - x.mean()) ** 2).sum() for x in losses) / dof)) if dof > 0 else None


def cell_keys(runs: pd.DataFrame, from_csv: bool = False) -> np.ndarray:
    """Each run's cell, as a string: runs of one cell differ only in their seeds."""
    if "seed" not in runs or runs["seed"].isna().all():
        return runs["run_name"].astype(str).to_numpy()
    if from_csv:  # a CSV's rows: the cell is what was trained
        cols = [c for c in ("N", "D", "C", "budget") if c in runs]
        return runs[cols].astype(str).agg("|".join, axis=1).to_numpy()
    return np.array([cell_name(str(n), None if pd.isna(s) else int(s)) for n, s in zip(runs["run_name"], runs["seed"])])


def seed_means(ds: Dataset) -> Dataset:
    """ds with one row per cell when some cell has two or more seeds (else ds itself): the cell's mean final loss and
    `n_seeds`, the other columns its first seed's, run_name its cell's name; eval curves averaged over its seeds
    where they share their points, else its first seed's. `replicates` keeps the seeds."""
    if ds.runs.empty or ds.aggregation:
        return ds
    keys = cell_keys(ds.runs, from_csv=ds.source.lower().endswith(".csv"))
    codes, uniques = pd.factorize(pd.Series(keys))
    if len(uniques) == len(keys):
        return ds
    r = ds.runs
    members = [np.flatnonzero(codes == c) for c in range(len(uniques))]
    first = np.array([m[0] for m in members])
    losses = tuple(r["loss"].to_numpy(float)[m] for m in members)
    cells = r.iloc[first].reset_index(drop=True).copy()
    cells["run_name"] = list(uniques)
    cells["loss"] = [x.mean() for x in losses]
    cells["n_seeds"] = [len(x) for x in losses]
    return replace(ds, runs=cells, points=_mean_curves(ds.points, members), replicates=Replicates(losses=losses))


def _mean_curves(points: pd.DataFrame, members: list[np.ndarray]) -> pd.DataFrame:
    """Per cell its seeds' eval points averaged at each (D, C) they all have, else its first seed's points."""
    by_run = {run: g for run, g in points.groupby("run", sort=False)}
    out = []
    for cell, m in enumerate(members):
        curves = [by_run[i] for i in m if i in by_run]
        if not curves:
            continue
        same = all(len(c) == len(curves[0]) and np.array_equal(c["D"].to_numpy(), curves[0]["D"].to_numpy())
                   for c in curves)
        curve = curves[0].copy()
        if same and len(curves) > 1:
            curve["loss"] = np.mean([c["loss"].to_numpy(float) for c in curves], axis=0)
        out.append(curve.assign(run=cell))
    return pd.concat(out, ignore_index=True) if out else points.iloc[:0]
