"""Large inputs as weighted bins, so that the fits cost the same however many rows a CSV has. Pure: no I/O.

`aggregate(ds)` returns a Dataset of at most AGGREGATE_ABOVE runs unchanged: those are fitted run by run. Above
it, runs that share a FLOP budget, a model size (or, past MAX_SIZES distinct sizes, a narrow band of log N) and a
narrow band of log tokens become one bin: a pseudo-run at the geometric mean of their N, D and FLOPs, weighted by
how many runs it holds, with their median loss (the robust centre Huber's objective itself aims at) once the law's
own change across the bin is taken out (by a first fit to the plain medians). The bands are the narrowest of
WIDTHS that leaves at most MAX_BINS bins (the widest, if none does). Every fit then weights a bin by its runs
(estimate.py), and the bootstrap resamples bins, each with its runs: a cluster bootstrap. `aggregation` on the
Dataset says what was done, for fits.json and report.md.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from ..inputs.sizes import size_clusters
from ..inputs.load import Dataset
from .lse import LseFitter, approach3_params, single_threaded_blas

AGGREGATE_ABOVE = 5000  # runs: at most this many are fitted one by one
MAX_BINS = 2000
MAX_SIZES = 400  # distinct model sizes kept apart; more (a continuum) are banded in log N like tokens
WIDTHS = 0.005 * 2.0 ** np.arange(7)  # band widths tried, in decades: 0.005 … 0.32


def _codes(values: np.ndarray) -> np.ndarray:
    """0, 1, … per distinct value (NaN its own code)."""
    return pd.factorize(pd.Series(values), use_na_sentinel=False)[0]


def _keys(columns: list[np.ndarray]) -> np.ndarray:
    """One bin index per run from several integer key columns."""
    shifted = [c - c.min() for c in columns]
    flat = np.ravel_multi_index(shifted, [int(c.max()) + 1 for c in shifted])
    return np.unique(flat, return_inverse=True)[1]


def _bins(ds: Dataset, max_bins: int) -> tuple[np.ndarray, str]:
    """The bin of each run and a description of the key: the narrowest bands that give at most max_bins bins."""
    r = ds.runs
    logn, logd = np.log10(r["N"].to_numpy(float)), np.log10(r["D"].to_numpy(float))
    fixed = [_codes(r["budget"].to_numpy(float))]
    if "tpp_req" in r:  # a ladder's runs stay apart from other tokens/param
        fixed.append(_codes(r["tpp_req"].to_numpy(float)))
    sizes = size_clusters(r["N"].to_numpy(float))
    tries = ([("sizes", h) for h in WIDTHS] if sizes.max() + 1 <= MAX_SIZES else []) + [("band", h) for h in WIDTHS]
    for n_key, h in tries:
        kn = sizes if n_key == "sizes" else np.floor(logn / h).astype(np.int64)
        bins = _keys(fixed + [kn, np.floor(logd / h).astype(np.int64)])
        if bins.max() + 1 <= max_bins:
            break
    by_n = "model size (each distinct size)" if n_key == "sizes" else f"log10 N in {h:g}-decade bands"
    return bins, f"FLOP budget (if any) × {by_n} × log10 tokens in {h:g}-decade bands"


def aggregate(ds: Dataset, above: int | None = None, max_bins: int | None = None) -> Dataset:
    """ds itself if it has at most `above` (AGGREGATE_ABOVE) runs, else its runs binned into at most about
    `max_bins` (MAX_BINS) bins: see the module's docstring."""
    above = AGGREGATE_ABOVE if above is None else above
    max_bins = MAX_BINS if max_bins is None else max_bins
    r = ds.runs
    if len(r) <= above:
        return ds
    r = r.assign(budget=_isoflop_budgets(r))
    bins, key = _bins(replace(ds, runs=r), max_bins)
    n_bins = int(bins.max()) + 1
    count = np.bincount(bins, minlength=n_bins).astype(float)

    def gmean(col):
        return np.exp(np.bincount(bins, np.log(r[col].to_numpy(float)), n_bins) / count)

    c = count.astype(int)
    start = np.concatenate([[0], np.cumsum(c[:-1])])
    first = np.argsort(bins, kind="stable")[start]  # a bin's runs share its budget (and tokens/param): the first's

    def medians(v):  # per bin, the median of v over its runs
        order = np.lexsort((v, bins))
        return 0.5 * (v[order[start + (c - 1) // 2]] + v[order[start + c // 2]])

    # The law's own change across a bin is taken out before the median, by a first fit to the plain medians; the
    # bin's loss is that law at its centre plus its runs' median residual. First order in the bin's width: exact.
    logl, rows, centre = np.log(r["loss"].to_numpy(float)), r[["N", "D"]].to_numpy(float), [gmean("N"), gmean("D")]
    with single_threaded_blas():
        pilot = LseFitter(np.column_stack(centre), np.exp(medians(logl)))
        theta = pilot.fit(count, n_refine=4).theta
    median = np.log(pilot.predict(theta, np.column_stack(centre))) + medians(logl - np.log(pilot.predict(theta, rows)))
    runs = pd.DataFrame({"run_name": [f"bin{i + 1}" for i in range(n_bins)], "N": centre[0], "D": centre[1],
                         "C": gmean("C"), "loss": np.exp(median), "budget": r["budget"].to_numpy(float)[first],
                         "weight": count})
    if "tpp_req" in r:
        runs["tpp_req"] = r["tpp_req"].to_numpy(float)[first]
    runs["model"], runs["seed"] = None, None
    pts = runs.assign(run=np.arange(n_bins))[["run", "N", "D", "C", "loss"]]
    dropped = int(np.isfinite(ds.runs["budget"]).sum() - np.isfinite(r["budget"]).sum())
    info = {"applied": True, "runs": len(r), "bins": n_bins, "above": above, "max_bins": max_bins, "key": key,
            "runs_per_bin": {"min": int(c.min()), "median": float(np.median(c)), "max": int(c.max())},
            "representative": "geometric-mean N, D and FLOPs of the bin's runs; loss: a first Approach-3 fit to the "
                              "bins' median losses, at that centre, plus the median of the runs' residuals from it "
                              "(the law's change across a bin taken out before the median); weight = runs",
            "first_fit": approach3_params(theta),
            "fits": "Approach 3's Huber objective and Approach 2's parabolas weight each bin by its runs; "
                    "Approach 1's envelope, L(N), L(D) and the plots use the bins' points",
            "bootstrap": "bins resampled with replacement (within FLOP budgets), each with its runs: a cluster "
                         "bootstrap",
            "runs_out_of_budgets": dropped, "eval_curves_dropped": ds.has_curves}
    return replace(ds, runs=runs, points=pts, has_curves=False, aggregation=info)


def _isoflop_budgets(r: pd.DataFrame) -> np.ndarray:
    """The runs' budgets, with NaN (no budget) for a budget of fewer than 3 model sizes: it is no isoFLOP curve,
    and as a key of its own it would only split bins (a group column with a label per run would keep every run)."""
    budget = r["budget"].to_numpy(float).copy()
    codes = _codes(budget)
    sizes = size_clusters(r["N"].to_numpy(float))
    per_budget = pd.Series(sizes).groupby(codes).nunique().to_numpy()
    budget[per_budget[codes] < 3] = np.nan
    return budget
