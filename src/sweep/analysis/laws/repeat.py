"""Runs that repeat their data (above 1 epoch: more tokens trained than the corpus holds unique ones).

`split_repeated` keeps them out of the laws (into `excluded`, with their epochs), or, with --include-repeated, in;
either way `Dataset.repeated` lists them. A law of N and D assumes fresh tokens: a repeated token is worth less.

`effective_data` then fits how much less, with Muennighoff et al. 2023's ("Scaling Data-Constrained Language
Models") effective data D' = U + U·R*·(1 − exp(−R/R*)), U the unique tokens a run saw (D / epochs), R = epochs − 1
the repetitions, R* how many repetitions the data's value decays over. Two stages, by choice: Approach 3's law is
fitted to the runs of at most 1 epoch alone (fresh data identify it; repeated runs cannot bend it), then R* alone to
the repeated runs' losses under that law, L = E + A/N^α + B/D'^β, by the same Huber objective on log loss. A joint
fit would let the few repeated runs trade R* against B and β. The interval is a bootstrap of both stages: each
resample redraws the fresh runs and refits the law (warm-started), redraws the repeated runs and refits R*.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy.optimize import minimize_scalar

from .bootstrap import percentile_ci
from ..inputs.load import A3_MIN_RUNS, A3_MIN_SIZES, Dataset, drop_runs, n_sizes
from .lse import DELTA, LseFitter, approach3_params, huber, law_loss, single_threaded_blas
from ..result.record import Value
from ..result.beyond import LawParams, RepeatedData

EPOCH_TOL = 1e-6  # exactly one pass, up to rounding, is no repetition
R_STAR_BOUNDS = (1e-2, 1e4)  # repetitions; at a bound R* is not identified (no decay seen, or all value lost at once)


def repeated_mask(ds: Dataset) -> np.ndarray:
    e = ds.runs["epochs"].to_numpy(float) if "epochs" in ds.runs else np.full(len(ds.runs), np.nan)
    return np.nan_to_num(e, nan=0.0) > 1 + EPOCH_TOL


def split_repeated(ds: Dataset, include: bool = False) -> Dataset:
    """ds with its runs above 1 epoch listed in `repeated`, and unless include, moved to `excluded` (their eval
    points dropped, the rest renumbered)."""
    rep = repeated_mask(ds)
    if not rep.any():
        return ds
    r = ds.runs
    listed = [{"run_name": str(r["run_name"].iloc[i]), "epochs": float(r["epochs"].iloc[i]), "included": include}
              for i in np.flatnonzero(rep)]
    listed.sort(key=lambda x: -x["epochs"])
    if include:
        return replace(ds, repeated=listed)
    for x in listed:
        x["reason"] = (f"repeats its data: {x['epochs']:.3g} epochs (tokens trained ÷ unique train tokens) > 1; "
                       f"--include-repeated fits it")
    out = drop_runs(ds, rep, "")
    excluded = ds.excluded + [{"run_name": x["run_name"], "reason": x.pop("reason")} for x in listed]
    return replace(out, excluded=excluded, repeated=listed)


# ------------------------------------------------------------------------------------------ effective data
def _draw(rng, n: int) -> np.ndarray:
    """A bootstrap resample of n runs, as counts."""
    return np.bincount(rng.integers(0, n, n), minlength=n).astype(float)


def effective_tokens(D, epochs, r_star) -> np.ndarray:
    """Muennighoff's D' = U + U·R*·(1 − exp(−R/R*)), U = D/epochs, R = epochs − 1 (D itself at ≤ 1 epoch)."""
    D, epochs = np.asarray(D, float), np.asarray(epochs, float)
    ep = np.maximum(epochs, 1.0)
    U = D / ep
    return U + U * r_star * -np.expm1(-(ep - 1.0) / r_star)


def fit_r_star(p: dict, N, D, epochs, L, w=None) -> tuple[float, bool]:
    """R* minimising Σ w·Huber(log L̂ − log L) over repeated runs under the fixed law p; (R*, at a bound)."""
    N, D, epochs, logl = (np.asarray(v, float) for v in (N, D, epochs, L))
    logl = np.log(logl)
    w = np.ones(len(logl)) if w is None else np.asarray(w, float)

    def obj(log_r):
        with np.errstate(all="ignore"):
            pred = np.log(law_loss(p, N, effective_tokens(D, epochs, np.exp(log_r))))
        value = float(huber(pred - logl, DELTA) @ w)
        return value if np.isfinite(value) else np.inf  # a resample's absurd law: no R* there

    lo, hi = np.log(R_STAR_BOUNDS[0]), np.log(R_STAR_BOUNDS[1])
    grid = np.linspace(lo, hi, 121)  # a grid first: the objective flattens at both ends
    i = int(np.argmin([obj(g) for g in grid]))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = minimize_scalar(obj, bounds=(a, b), method="bounded", options={"xatol": 1e-8})
    x = float(res.x) if res.fun <= obj(grid[i]) else float(grid[i])
    return float(np.exp(x)), bool(min(x - lo, hi - x) < 1e-3)


def effective_data(ds: Dataset, n_boot: int = 200, seed: int = 0) -> RepeatedData:
    """fits.json's `repeated_data`: R* of Muennighoff's effective data, from a dataset with its repeated runs in."""
    rep = repeated_mask(ds)
    out = RepeatedData(form="D' = U + U·R*·(1 − exp(−R/R*)), U = tokens/epochs, R = epochs − 1 (Muennighoff et al. "
                            "2023)",
                       method="Approach 3 fitted to the runs of at most 1 epoch; R* alone fitted to the repeated runs "
                              "under that law (Huber on log loss); interval: both resampled, the law and R* refitted",
                       n_repeated=int(rep.sum()), n_fresh=int((~rep).sum()))
    fresh = ds.runs[~rep]
    if n_sizes(fresh) < A3_MIN_SIZES or len(fresh) < A3_MIN_RUNS:
        out.skipped = (f"the runs of at most 1 epoch ({len(fresh)} runs, {n_sizes(fresh)} sizes) are too few for "
                       f"the law R* is fitted under (≥ {A3_MIN_SIZES} sizes, ≥ {A3_MIN_RUNS} runs)")
        return out
    if not rep.any():
        out.skipped = "no run repeats its data"
        return out
    fitter = LseFitter(fresh[["N", "D"]].to_numpy(float), fresh["loss"].to_numpy(float))
    with single_threaded_blas():
        fit = fitter.fit(n_refine=8)
        p = approach3_params(fit.theta)
        r = ds.runs[rep]
        args = [r[k].to_numpy(float) for k in ("N", "D", "epochs", "loss")]
        r_star, at_bound = fit_r_star(p, *args)
        rng = np.random.default_rng(seed)

        def resample() -> float:
            law = fitter.fit(_draw(rng, len(fresh)), n_refine=0, warm=fit.theta).theta
            return fit_r_star(approach3_params(law), *args, w=_draw(rng, len(r)))[0]

        draws = [resample() for _ in range(n_boot if len(r) >= 3 else 0)]
    ci = percentile_ci(np.log(np.array(draws))) if draws else {"ci": None}
    with np.errstate(all="ignore"):
        pred = law_loss(p, args[0], effective_tokens(args[1], args[2], r_star))
        naive = law_loss(p, args[0], args[1])
    out.law, out.law_at_bound, out.at_bound, out.fitted = LawParams(**p), fit.at_bound, at_bound, True
    out.R_star = Value(r_star, [float(np.exp(c)) for c in ci["ci"]] if ci["ci"] else None)
    out.mean_rel_error = float(np.mean(pred / args[3] - 1))
    out.mean_rel_error_as_fresh = float(np.mean(naive / args[3] - 1))
    return out
