"""Fit small, predict big (`sweep analyze --holdout EXPR`): which runs an expression holds out (`select_holdout`,
parsed without eval), and the protocol on them (`holdout_protocol`): Approach 3 (and L(N) on a ladder's runs)
fitted on the rest, each held-out run predicted with a 95% bootstrap interval, set against what it observed.

The interval is a prediction interval for one run: each resample of the fitted runs is refitted (warm-started),
and its prediction carries a residual of that resample's own fit drawn at random, so it holds both the law's
uncertainty and the run-to-run scatter an observed loss has; then it is widened (in log space) by the factor that
made the same intervals cover 95% one step inside the split (`inner_step`, `interval_scale`: the leaderboard's
calibration too). `interval_law` is the law's part alone, not widened.
"""

from __future__ import annotations

import operator
import re

import numpy as np
import pandas as pd

from .bootstrap import bootstrap, percentile_ci
from ..inputs.sizes import size_clusters, size_groups
from ..inputs.load import AnalysisError
from .lse import LseFitter, single_threaded_blas
from ..result.beyond import HeldOutRun, HoldoutProtocol, LnPrediction, PredictionSummary

# the run columns an expression may compare, by the names a user may give them
COLUMNS = {"n_params": "N", "N": "N", "tokens": "D", "D": "D", "flops": "C", "C": "C", "loss": "loss"}
OPERATORS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
_COMPARISON = re.compile(r"^\s*([A-Za-z_]\w*)\s*(>=|<=|==|>|<)\s*([-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*$")
MIN_FIT_SIZES, MIN_FIT_RUNS, MIN_LN_SIZES = 3, 6, 3
LEVEL = 0.95
MAX_SCALE = 100.0


class HoldoutError(AnalysisError):
    """An --holdout expression that names no usable set of runs: the message says what is wrong."""


def _comparison(text: str, runs: pd.DataFrame) -> np.ndarray:
    m = _COMPARISON.match(text)
    if m is None:
        raise HoldoutError(f"--holdout: {text.strip()!r} is not a comparison COLUMN OP NUMBER (OP one of "
                           f"{', '.join(OPERATORS)}; e.g. 'n_params>=1e6')")
    name, op, value = m.groups()
    if name not in COLUMNS:
        raise HoldoutError(f"--holdout: unknown column {name!r}; use one of {', '.join(COLUMNS)}")
    return OPERATORS[op](runs[COLUMNS[name]].to_numpy(float), float(value))


def select_holdout(expr: str, runs: pd.DataFrame) -> np.ndarray:
    """The runs `expr` holds out, as a boolean mask over runs: a comparison on a run column ('n_params>=1e6', two
    joined by 'and'), or a comma list of run names. Raises HoldoutError if it names no run, every run, a column or
    a run that does not exist."""
    expr = (expr or "").strip()
    if not expr:
        raise HoldoutError("--holdout: empty expression; give e.g. 'n_params>=1e6' or a comma list of run names")
    if re.search(r"[<>=]", expr):
        parts = re.split(r"\s+and\s+", expr)
        mask = np.logical_and.reduce([_comparison(p, runs) for p in parts])
    else:
        names = [n.strip() for n in expr.split(",") if n.strip()]
        known = set(runs["run_name"].astype(str))
        unknown = [n for n in names if n not in known]
        if unknown:
            raise HoldoutError(f"--holdout: {', '.join(map(repr, unknown))} is no run of this analysis (runs are "
                               f"named like {runs['run_name'].iloc[0]!r})")
        mask = runs["run_name"].astype(str).isin(names).to_numpy()
    if not mask.any():
        raise HoldoutError(f"--holdout {expr!r}: no run matches")
    if mask.all():
        raise HoldoutError(f"--holdout {expr!r}: every run matches; nothing would be left to fit")
    return mask


def interval_scale(pred, lo, hi, observed, level: float = LEVEL) -> float:
    """How far (in log space, about the prediction) intervals must widen for `level` of the observations to lie
    inside: the level quantile of each run's |log error| over its interval's half-width on its side, at least 1 (and
    at most MAX_SCALE: past it the step says only that the law does not extrapolate, and the interval is vast)."""
    ok = np.isfinite(lo) & np.isfinite(hi)
    if not ok.any():
        return 1.0
    err = np.log(observed[ok] / pred[ok])
    half = np.where(err >= 0, np.log(hi[ok] / pred[ok]), np.log(pred[ok] / lo[ok]))
    ratio = np.abs(err) / np.maximum(half, 1e-12)
    return float(np.clip(np.quantile(ratio, level, method="higher"), 1.0, MAX_SCALE))


def widen(pred, lo, hi, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The interval [lo, hi] about pred widened by `scale` in log space (interval_scale's factor)."""
    return pred * (lo / pred) ** scale, pred * (hi / pred) ** scale


def inner_step(N, fit, test, min_sizes: int = MIN_FIT_SIZES):
    """One step inside a split, to calibrate its intervals on: of the fitted runs, those within the split's own
    reach in log N of their largest (at least their largest size group) held out, the rest fitted. (inner fit mask,
    inner held-out indices) over all runs, or None if fewer than min_sizes sizes would be left to fit."""
    N = np.asarray(N, float)
    fit_idx = np.flatnonzero(fit)
    logn = np.log(N[fit_idx])
    reach = np.log(N[test].max()) - logn.max()
    groups = size_groups(N[fit_idx])
    inner = (logn > logn.max() - reach) | (groups == groups.max())
    if len(np.unique(groups[~inner])) < min_sizes:
        inner = groups == groups.max()
    if len(np.unique(groups[~inner])) < min_sizes:
        return None
    inner_fit = np.zeros(len(N), bool)
    inner_fit[fit_idx[~inner]] = True
    return inner_fit, fit_idx[inner]


def _predict_with_intervals(x, loss, weight, fit, test, n_boot, seed, n_refine, calibrate: bool = True):
    """Fit x → loss on the `fit` runs, predict the `test` runs: (predicted, prediction interval, law interval). The
    prediction interval is widened by the scale that made the same intervals cover one step inside (inner_step)."""
    fitter = LseFitter(x[fit], loss[fit])
    w_fit = weight[fit]
    theta = fitter.fit(w_fit, n_refine=n_refine).theta
    predicted = fitter.predict(theta, x[test])
    nan = np.full((len(predicted), 2), np.nan)
    if n_boot <= 0:
        return predicted, nan, nan
    rng = np.random.default_rng(seed + 1)

    def statistic(counts):
        th = fitter.fit(w_fit * counts, n_refine=0, warm=theta).theta
        law = fitter.predict(th, x[test])
        drawn = np.flatnonzero(counts > 0)
        resid = np.log(loss[fit][drawn] / fitter.predict(th, x[fit][drawn]))
        noisy = law * np.exp(rng.choice(resid, size=len(law)))
        return {**{f"law/{i}": v for i, v in enumerate(law)}, **{f"run/{i}": v for i, v in enumerate(noisy)}}

    samples = bootstrap(statistic, int(fit.sum()), n_boot, seed)

    def interval(kind):
        cis = [percentile_ci(samples.get(f"{kind}/{i}", np.array([])))["ci"] for i in range(len(predicted))]
        return np.array([c if c else [np.nan, np.nan] for c in cis], float)

    run = interval("run")
    step = inner_step(x[:, 0], fit, test) if calibrate else None
    if step is not None:
        inner_fit, inner_test = step
        mask = np.zeros(len(loss), bool)
        mask[inner_test] = True
        p, iv, _ = _predict_with_intervals(x, loss, weight, inner_fit, mask, max(n_boot // 2, 10), seed + 7, n_refine,
                                           calibrate=False)
        scale = interval_scale(p, iv[:, 0], iv[:, 1], loss[mask])
        run = np.column_stack(widen(predicted, run[:, 0], run[:, 1], scale))
    return predicted, run, interval("law")


def _rows(runs, test, predicted, interval, interval_law) -> list[HeldOutRun]:
    rows = []
    for j, i in enumerate(np.flatnonzero(test)):
        obs, lo, hi = float(runs["loss"].iloc[i]), float(interval[j, 0]), float(interval[j, 1])
        rows.append(HeldOutRun(run_name=str(runs["run_name"].iloc[i]), N=float(runs["N"].iloc[i]),
                               D=float(runs["D"].iloc[i]), C=float(runs["C"].iloc[i]), predicted=float(predicted[j]),
                               interval=None if np.isnan(lo) else [lo, hi],
                               interval_law=None if np.isnan(interval_law[j, 0]) else
                               [float(v) for v in interval_law[j]],
                               observed=obs, rel_error=float(predicted[j] / obs - 1),
                               inside=None if np.isnan(lo) else bool(lo <= obs <= hi)))
    return rows


def _summary(rows: list[HeldOutRun]) -> PredictionSummary:
    inside = [r.inside for r in rows if r.inside is not None]
    return PredictionSummary(n=len(rows), median_abs_rel_error=float(np.median([abs(r.rel_error) for r in rows])),
                             max_abs_rel_error=float(max(abs(r.rel_error) for r in rows)),
                             share_inside=float(np.mean(inside)) if inside else None)


def _ln_basis(runs: pd.DataFrame, fit: np.ndarray, test: np.ndarray):
    """L(N) applies to a ladder: the requested tokens/param with the most held-out runs and ≥ 3 sizes fitted."""
    if "tpp_req" not in runs:
        return None
    tpp = runs["tpp_req"].to_numpy(float)
    best = None
    for t in np.unique(tpp[np.isfinite(tpp)]):
        g = tpp == t
        n_sizes = len(np.unique(size_clusters(runs["N"].to_numpy(float)[g & fit]))) if (g & fit).any() else 0
        if n_sizes >= MIN_LN_SIZES and (g & test).any() and (best is None or (g & test).sum() > best[1]):
            best = (t, int((g & test).sum()))
    return None if best is None else best[0]


def holdout_protocol(runs: pd.DataFrame, expr: str, n_boot: int = 200, seed: int = 0) -> HoldoutProtocol:
    """fits.json's `holdout_protocol`: the runs `expr` holds out predicted by Approach 3 fitted on the rest (and by
    L(N) = E + A/N^α on a ladder's runs), each with its interval, observed loss, relative error and whether the
    observation lies inside. Raises HoldoutError for an expression that selects nothing usable."""
    test = select_holdout(expr, runs)
    fit = ~test
    N, D, L = (runs[k].to_numpy(float) for k in ("N", "D", "loss"))
    weight = runs["weight"].to_numpy(float) if "weight" in runs else np.ones(len(runs))
    out = HoldoutProtocol(expr=expr, fitted_runs=int(fit.sum()), held_out_runs=int(test.sum()),
                          interval="95% bootstrap prediction interval: the fitted runs resampled and refitted, each "
                                   "prediction with a residual of its resample drawn (the law's uncertainty and the "
                                   "run-to-run scatter), widened by the factor that made such intervals cover 95% one "
                                   "step inside the split")
    n_sizes = len(np.unique(size_clusters(N[fit])))
    if n_sizes < MIN_FIT_SIZES or fit.sum() < MIN_FIT_RUNS:
        out.error = (f"the runs left to fit have {n_sizes} size(s) and {int(fit.sum())} run(s); Approach 3 needs "
                     f"≥ {MIN_FIT_SIZES} sizes and ≥ {MIN_FIT_RUNS} runs")
        return out
    with single_threaded_blas():
        pred, ci, ci_law = _predict_with_intervals(np.column_stack([N, D]), L, weight, fit, test, n_boot, seed, 8)
        out.runs = _rows(runs, test, pred, ci, ci_law)
        out.summary = _summary(out.runs)
        t = _ln_basis(runs, fit, test)
        if t is not None:
            g = runs["tpp_req"].to_numpy(float) == t
            sub = runs[g].reset_index(drop=True)
            p, c, cl = _predict_with_intervals(N[g][:, None], L[g], weight[g], fit[g], test[g], n_boot, seed, 6)
            rows = _rows(sub, test[g], p, c, cl)
            out.kaplan = LnPrediction(form="L(N) = E + A/N^alpha", basis=f"tokens/param {t:.3g}",
                                      fitted_runs=int((fit & g).sum()), runs=rows, summary=_summary(rows))
    return out
