"""The laws around the fitter, as pure numerics (no I/O): Approach 3's compute-optimal allocation (`allocation`,
`optimal_nd`, `optimal_nd_flops`), Approach 2's isoFLOP parabolas (`fit_isoflop`), Approach 1's lower envelope
(`fit_envelope`), the held-out-size check (`holdout_largest`), and the small helpers they share (`loglog_fit`,
`budget_groups`).

Every fit takes per-run arrays and an optional weight vector `w` (how often each run is counted, as a bootstrap
resample draws it). Inputs must be finite (finite.require_finite): a non-finite value raises ValueError.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar

from ..inputs.finite import require_finite
from ..inputs.sizes import size_clusters
from .lse import law_loss

# ------------------------------------------------------------------------------ compute-optimal allocation
def safe_div(x: float, y: float) -> float:
    """x / y, with IEEE's inf or NaN where Python raises ZeroDivisionError (a degenerate fit's zero)."""
    with np.errstate(all="ignore"):
        return float(np.float64(x) / y)


def safe_pow(x: float, y: float) -> float:
    """x ** y, inf where Python raises OverflowError (an absurd exponent) or ZeroDivisionError (0 ** -y)."""
    try:
        return float(x**y)
    except (OverflowError, ZeroDivisionError):
        return math.inf


def allocation(p: dict) -> dict:
    """Approach 3's optimum under C = 6ND: N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b (NaN or inf for a degenerate
    fit, an exponent at 0, rather than an error)."""
    s = p["alpha"] + p["beta"]
    G = safe_pow(safe_div(p["alpha"] * p["A"], p["beta"] * p["B"]), safe_div(1.0, s))
    return {"G": G, "a": safe_div(p["beta"], s), "b": safe_div(p["alpha"], s)}


def optimal_nd(p: dict, C) -> tuple[np.ndarray, np.ndarray]:
    al = allocation(p)
    c6 = np.asarray(C, float) / 6.0
    return al["G"] * c6 ** al["a"], c6 ** al["b"] / al["G"]


def optimal_nd_flops(p: dict, C: float, slope: float, coef: float) -> tuple[float, float]:
    """Argmin of L(N, D) along C = coef·N^slope·D (the data's own FLOPs per token), by bounded 1-D search."""
    n0 = optimal_nd(p, C)[0]
    if not 0 < n0 < np.inf:  # a degenerate law: no optimum to search around
        return math.nan, math.nan
    res = minimize_scalar(lambda x: law_loss(p, np.exp(x), C / (coef * np.exp(x) ** slope)),
                          bounds=(np.log(n0) - 12, np.log(n0) + 12), method="bounded", options={"xatol": 1e-10})
    n = float(np.exp(res.x))
    return n, safe_div(C, coef * safe_pow(n, slope))


# ---------------------------------------------------------------------------------------- small helpers
def loglog_fit(x, y, w=None) -> tuple[float, float]:
    """Slope and coefficient k of y = k·x^slope, by least squares in log space.

    Not guarded: it also fits derived values (a resample's isoFLOP minima), where a non-finite one must give NaN for
    that quantity, not an error that would drop the whole resample. Its data inputs are checked by its callers.
    """
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    slope, icpt = np.polyfit(lx, ly, 1, w=None if w is None else np.sqrt(w))
    with np.errstate(over="ignore"):  # an absurd fit's coefficient: inf (null in fits.json)
        return float(slope), float(np.exp(icpt))


# -------------------------------------------------------------------------------------------- Approach 2
OFF_CENTRE = 0.5  # a minimum in the outer quarter of the log-size range, at either end, is off-centre


def budget_groups(budget: np.ndarray) -> list[np.ndarray]:
    """The indices of each FLOP budget's runs (in index order), budgets ascending; NaN (no budget) left out."""
    idx = np.flatnonzero(np.isfinite(budget))
    idx = idx[np.argsort(budget[idx], kind="stable")]
    return np.split(idx, np.flatnonzero(np.diff(budget[idx])) + 1) if len(idx) else []


def fit_isoflop(N, D, L, budget, w=None) -> dict:
    """Per budget a parabola of L in log10 N, its minimum; then N_opt ∝ C^a and D_opt ∝ C^b."""
    N, D, L = (require_finite(f"fit_isoflop: {k}", v, positive=True) for k, v in (("N", N), ("D", D), ("L", L)))
    budget = require_finite("fit_isoflop: budget", budget, allow_nan=True)  # NaN: a run in no FLOP budget
    w = np.ones(len(L)) if w is None else require_finite("fit_isoflop: w", w)
    rows, warnings, few = [], [], 0
    for runs in budget_groups(budget):  # ascending budgets
        c, m = budget[runs[0]], runs[w[runs] > 0]
        tag = f"budget {c:.3g}"
        if len(np.unique(size_clusters(N[m]))) < 3:
            few += 1
            if few <= 3:
                warnings.append(f"{tag}: fewer than 3 model sizes, no parabola")
            continue
        x = np.log10(N[m])
        c2, c1, c0 = np.polyfit(x, L[m], 2, w=np.sqrt(w[m]))
        if c2 <= 0:
            warnings.append(f"{tag}: the parabola opens downward (no minimum); budget left out")
            continue
        xs = -c1 / (2 * c2)
        # D at the optimum from the budget's own tokens-vs-size relation (exactly C/(6N) when flops = 6ND).
        slope, k = loglog_fit(N[m], D[m], w[m])
        with np.errstate(all="ignore"):
            n_opt = 10**xs
            d_opt = k * n_opt**slope
        if not (0 < n_opt < np.inf and 0 < d_opt < np.inf):  # a nearly flat parabola: its vertex is nowhere
            warnings.append(f"{tag}: the fitted minimum (N = 10^{xs:.3g}) is beyond any size; budget left out")
            continue
        edge = None
        if not x.min() <= xs <= x.max():
            edge = "outside"
            warnings.append(f"{tag}: the fitted minimum N={n_opt:.3g} lies outside the sizes tried "
                            f"({N[m].min():.3g}–{N[m].max():.3g}); extend the grid")
        elif _at_edge_size(N[m], int(np.argmin(L[m]))):
            edge = "edge"
            warnings.append(f"{tag}: the lowest loss is at the edge of the sizes tried; the minimum is extrapolated")
        elif abs(xs - (x.min() + x.max()) / 2) > OFF_CENTRE * (x.max() - x.min()) / 2:
            warnings.append(f"{tag}: the sizes tried are off-centre around the minimum (N* = {n_opt:.3g}, sizes "
                            f"{N[m].min():.3g}–{N[m].max():.3g}): an asymmetric grid biases the parabola's minimum "
                            f"(Approach 2's known bias); centre the sizes on N*")
        rows.append({"C": float(c), "N_opt": float(n_opt), "D_opt": float(d_opt),
                     "L_opt": float(c0 + c1 * xs + c2 * xs * xs), "coef_log10N": [float(c2), float(c1), float(c0)],
                     "n_runs": len(m), "edge": edge})
    if few > 3:
        warnings.append(f"{few - 3} more budgets with fewer than 3 model sizes, no parabola")
    out = {"budgets": rows, "warnings": warnings}
    if len(rows) < 2:
        out["warnings"].append(f"only {len(rows)} usable budget(s): no power law for N_opt(C), D_opt(C)")
        return out
    C = np.array([r["C"] for r in rows])
    out["a"], out["k_N"] = loglog_fit(C, [r["N_opt"] for r in rows])
    out["b"], out["k_D"] = loglog_fit(C, [r["D_opt"] for r in rows])
    if len(rows) == 2:
        out["warnings"].append("only 2 budgets: the power laws pass exactly through them")
    if C.max() < 2 * C.min():
        out["warnings"].append(f"the budgets span only a factor {C.max() / C.min():.3g} in FLOPs: the exponents of "
                               f"N_opt(C), D_opt(C) are not pinned down")
    return out


def _at_edge_size(N, best: int) -> bool:
    """Whether run `best` is of the smallest or the largest size among N: sizes compared, not run indices, so that a
    size with several runs (seeds) counts as one."""
    sizes = size_clusters(N)
    return sizes[best] in (sizes.min(), sizes.max())


# -------------------------------------------------------------------------------------------- Approach 1
def fit_envelope(C, N, D, L, run, w=None, bins_per_decade: float = 8.0) -> dict:
    """Lower envelope of loss vs FLOPs over all eval points; per log-C bin, the size of the run that attains it.

    A bin counts only where at least two runs have points (a lone run is trivially on the envelope), and only if
    its best loss beats every cheaper bin's (the envelope of loss against compute cannot rise).
    """
    C, N, D, L = (require_finite(f"fit_envelope: {k}", v, positive=True)
                  for k, v in (("C", C), ("N", N), ("D", D), ("L", L)))
    run = np.asarray(run)
    keep = np.ones(len(L), bool) if w is None else require_finite("fit_envelope: w", w)[run] > 0
    C, N, D, L, run = C[keep], N[keep], D[keep], L[keep], run[keep]
    lc = np.log10(C)
    n_bins = int(np.clip(round((lc.max() - lc.min()) * bins_per_decade), 4, 40))
    edges = np.linspace(lc.min(), lc.max() + 1e-9, n_bins + 1)
    idx = np.digitize(lc, edges) - 1
    rows = []
    for b in range(n_bins):
        m = np.flatnonzero(idx == b)
        if len(np.unique(run[m])) < 2:
            continue
        i = m[np.argmin(L[m])]
        if rows and L[i] >= rows[-1]["L"]:
            continue  # a cheaper point already did better: this bin's best is off the frontier
        rows.append({"C": float(C[i]), "N_opt": float(N[i]), "D_opt": float(D[i]), "L": float(L[i])})
    out = {"envelope": rows, "warnings": []}
    if len(rows) < 3 or len({r["N_opt"] for r in rows}) < 2:
        out["warnings"].append("the envelope has fewer than 3 contested FLOP bins or one size only: no power law")
        return out
    out["a"], out["k_N"] = loglog_fit([r["C"] for r in rows], [r["N_opt"] for r in rows])
    out["b"], out["k_D"] = loglog_fit([r["C"] for r in rows], [r["D_opt"] for r in rows])
    return out


# ------------------------------------------------------------------------------------------------ holdout
def holdout_largest(N, fit_predict, continuum: bool = False) -> dict | None:
    """Fit on all sizes but the largest, predict the largest: relative loss error (pred − obs) / obs.

    fit_predict(train_mask, test_mask) → (predicted, observed) for the test runs. Needs ≥ 4 distinct sizes. For
    runs whose sizes are a continuum (continuum=True: one run each, nearly), the largest "size" held out is the top
    tenth of the range of log N.
    """
    labels = size_clusters(N)
    if labels.max() + 1 < 4:
        return None
    test = labels == labels.max()
    out = {}
    if continuum:
        logn = np.log(np.asarray(N, float))
        test = logn >= logn.max() - 0.1 * (logn.max() - logn.min())
        out["held_out_N_min"] = float(np.exp(logn[test].min()))
    pred, obs = fit_predict(~test, test)
    rel = (np.asarray(pred) - np.asarray(obs)) / np.asarray(obs)
    return {"held_out_N": float(np.asarray(N)[test].mean()), "n_test": int(test.sum()),
            "mean_rel_error": float(rel.mean()), "max_abs_rel_error": float(np.abs(rel).max()), **out}
