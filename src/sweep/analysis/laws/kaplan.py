"""Kaplan's forms and the wall question (fits.json's `kaplan_forms`): pure power laws L(N) = (N_c/N)^α_N (each
size's best run) and L(C) = (C_c/C)^α_C (the compute frontier), Kaplan's joint law
L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D (`fit_kaplan_joint`), each Approach's allocation as "per 10× compute:
N ×…, D ×…" beside Kaplan's and Chinchilla's, the loss gained per 10× compute along Approach 3's frontier, and every
run set against the compute-optimal model at its compute (the Gopher → Chinchilla counterfactual). Pure numerics.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import minimize

from ..inputs.finite import require_finite
from ..inputs.sizes import size_clusters
from .approaches import loglog_fit, optimal_nd
from .lse import DELTA, huber, law_loss
from ..result.record import Value
from ..result.laws import LawFit
from ..result.beyond import AllocationPer10x, Counterfactual, FrontierGain, KaplanForms, KaplanJoint, Per10x, \
    PublishedPer10x, PurePower

# Published allocations per 10× compute (N, D): Kaplan et al. 2020 and Hoffmann et al. 2022 (a = b ≈ 0.5)
REFERENCE_PER_10X = {"Kaplan et al. 2020": (5.5, 1.8), "Chinchilla (Hoffmann et al. 2022)": (10**0.5, 10**0.5)}
JOINT_BOUNDS = [(0.0, 80.0), (0.0, 80.0), (1e-3, 2.0), (1e-3, 2.0)]  # ln N_c, ln D_c, α_N, α_D


def kaplan_joint_loss(p: dict, N, D) -> np.ndarray:
    """L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D."""
    N, D = np.asarray(N, float), np.asarray(D, float)
    return ((p["N_c"] / N) ** (p["alpha_N"] / p["alpha_D"]) + p["D_c"] / D) ** p["alpha_D"]


def _joint_log_pred(theta, x1, x2):
    """log L̂, the log-sum-exp S and the first term's softmax weight, vectorised over rows of theta (m, 4)."""
    t = np.atleast_2d(theta)
    lnc, ldc, an, ad = (t[:, i, None] for i in range(4))
    u, v = an / ad * (lnc - x1), ldc - x2
    top = np.maximum(u, v)
    S = top + np.log(np.exp(u - top) + np.exp(v - top))
    return ad * S, S, np.exp(u - S)


def _joint_value_and_grad(theta, x1, x2, y, w):
    pred, S, su = _joint_log_pred(theta, x1, x2)
    pred, S, su = pred[0], S[0], su[0]
    lnc, _, an, ad = theta
    r = pred - y
    g = w * np.clip(r, -DELTA, DELTA)
    grad = np.array([g @ (an * su), g @ (ad * (1 - su)), g @ (su * (lnc - x1)),
                     g @ (S - su * an / ad * (lnc - x1))])
    return float(huber(r) @ w), grad


def fit_kaplan_joint(N, D, L, w=None) -> dict:
    """Kaplan's joint law by Huber (δ = 1e-3) on log L̂ − log L, L-BFGS-B from the best of a grid of starts."""
    N, D, L = (require_finite(f"fit_kaplan_joint: {k}", v, positive=True) for k, v in (("N", N), ("D", D), ("L", L)))
    w = np.ones(len(L)) if w is None else require_finite("fit_kaplan_joint: w", w)
    x1, x2, y = np.log(N), np.log(D), np.log(L)
    grid = np.array(list(itertools.product(np.arange(10.0, 61.0, 5.0), np.arange(10.0, 61.0, 5.0),
                                           (0.03, 0.07, 0.15, 0.3, 0.6), (0.03, 0.07, 0.15, 0.3, 0.6))))
    scores = huber(_joint_log_pred(grid, x1, x2)[0] - y) @ w
    best = None
    for start in grid[np.argsort(scores)[:6]]:
        res = minimize(_joint_value_and_grad, start, args=(x1, x2, y, w), jac=True, method="L-BFGS-B",
                       bounds=JOINT_BOUNDS, options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000})
        if best is None or res.fun < best.fun:
            best = res
    lnc, ldc, an, ad = best.x
    at_bound = [n for n, t, (lo, hi) in zip(("N_c", "D_c", "alpha_N", "alpha_D"), best.x, JOINT_BOUNDS)
                if min(t - lo, hi - t) < 1e-6]
    return {"N_c": float(np.exp(lnc)), "D_c": float(np.exp(ldc)), "alpha_N": float(an), "alpha_D": float(ad),
            "objective": float(best.fun), "at_bound": at_bound,
            "median_abs_residual": float(np.median(np.abs(np.exp(_joint_log_pred(best.x, x1, x2)[0][0] - y) - 1)))}


def pure_power(x, L) -> dict | None:
    """L = (x_c/x)^α by least squares in log-log: {alpha, x_c}; None with fewer than 3 points or a rising loss."""
    x, L = np.asarray(x, float), np.asarray(L, float)
    if len(x) < 3 or len(np.unique(x)) < 3:
        return None
    slope, k = loglog_fit(x, L)
    if slope >= 0:
        return None
    alpha = -slope
    return {"alpha": float(alpha), "x_c": float(k ** (1 / alpha)), "n_points": int(len(x))}


def per_10x(exponent: float | None, ci=None) -> dict | None:
    """The factor a quantity ∝ C^exponent grows by per 10× compute: 10^exponent (and its interval's)."""
    if exponent is None or not np.isfinite(exponent):
        return None
    return {"factor": float(10**exponent), **({"ci": [float(10 ** ci[0]), float(10 ** ci[1])]} if ci else {})}


def allocation_per_10x(fits: LawFit) -> list[AllocationPer10x]:
    """Each Approach's N and D growth per 10× compute, from its exponents a, b (with their intervals); none from a
    degenerate Approach 3."""
    rows = []
    for name, sec in (("Approach 3", fits.allocation), ("Approach 2", fits.approach2), ("Approach 1", fits.approach1)):
        if name == "Approach 3" and fits.approach3.degenerate:
            continue  # a degenerate fit's allocation is an artefact of its bounds, not a result
        if sec.a is not None and sec.b is not None:
            rows.append(AllocationPer10x(source=name, N=_per_10x(sec.a), D=_per_10x(sec.b)))
    return rows


def _per_10x(v: Value) -> Per10x | None:
    f = per_10x(v.value, v.ci)
    return None if f is None else Per10x(**f)


def frontier_loss(p: dict, C) -> np.ndarray:
    """Approach 3's loss at the compute-optimal N, D for budget C (C = 6ND)."""
    n, d = optimal_nd(p, C)
    return law_loss(p, n, d)


def gain_per_10x(p: dict, budgets, draws: list[dict] | None = None) -> list[dict]:
    """Along Approach 3's frontier: the loss at C and at 10·C, and their difference (with an interval over the
    bootstrap's parameter draws)."""
    rows = []
    for c in budgets:
        lo_c, hi_c = float(frontier_loss(p, c)), float(frontier_loss(p, 10 * c))
        row = {"key": f"{c:.3g}", "C": float(c), "loss": lo_c, "loss_10x": hi_c, "gain": lo_c - hi_c,
               "relative_gain": (lo_c - hi_c) / lo_c}
        if draws:
            with np.errstate(all="ignore"):
                g = np.array([float(frontier_loss(q, c) - frontier_loss(q, 10 * c)) for q in draws])
            g = g[np.isfinite(g)]
            if len(g) >= 10:
                row["ci"] = {"gain": [float(v) for v in np.percentile(g, [2.5, 97.5])]}
        rows.append(row)
    return rows


def counterfactual(runs, p: dict) -> list[dict]:
    """Each run against the compute-optimal model at its compute (Gopher → Chinchilla): Approach 3's loss for the
    run's own N, D and for the optimum's, and how much larger (>1) or smaller the run's model is than the optimum."""
    N, D, L = (runs[k].to_numpy(float) for k in ("N", "D", "loss"))
    C = 6 * N * D  # the allocation is under C = 6ND: the run's compute counted the same way
    n_opt, d_opt = optimal_nd(p, C)
    own, best = law_loss(p, N, D), law_loss(p, n_opt, d_opt)
    return [{"run_name": str(name), "C": float(c), "N": float(n), "D": float(d), "observed": float(o),
             "predicted": float(pr), "N_opt": float(no), "D_opt": float(do), "predicted_opt": float(b),
             "N_over_opt": float(n / no), "loss_left": float(pr - b)}
            for name, c, n, d, o, pr, no, do, b in zip(runs["run_name"], C, N, D, L, own, n_opt, d_opt, best)]


def kaplan_forms(runs, fits: LawFit, p3: dict | None, draws: list[dict] | None = None) -> KaplanForms:
    """fits.json's `kaplan_forms`: the pure power laws, Kaplan's joint law, the allocation per 10× compute beside
    the published ones, the gain per 10× compute along the frontier and the counterfactual per run."""
    N, D, L = (runs[k].to_numpy(float) for k in ("N", "D", "loss"))
    labels = size_clusters(N)
    best = [np.flatnonzero(labels == s)[np.argmin(L[labels == s])] for s in np.unique(labels)]
    envelope = fits.approach1.envelope
    out = KaplanForms(L_of_N=_pure(pure_power(N[best], L[best])), L_of_N_basis="each size's lowest loss",
                      L_of_C=_pure(pure_power([r.C for r in envelope], [r.L for r in envelope])),
                      L_of_C_basis="Approach 1's lower envelope of loss against FLOPs",
                      allocation_per_10x=allocation_per_10x(fits),
                      reference_per_10x=[PublishedPer10x(source=k, N=v[0], D=v[1])
                                         for k, v in REFERENCE_PER_10X.items()])
    if len(np.unique(labels)) >= 3 and len(L) >= 6:
        out.joint = KaplanJoint(form="L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D",
                                **fit_kaplan_joint(N, D, L))
    if p3:
        out.gain_per_10x = [FrontierGain(**{k: v for k, v in row.items() if k not in ("ci", "gain")},
                                         gain=Value(row["gain"], (row.get("ci") or {}).get("gain")))
                            for row in gain_per_10x(p3, [r.C for r in fits.recipe], draws)]
        out.counterfactual = [Counterfactual(**row) for row in counterfactual(runs, p3)]
    return out


def _pure(law: dict | None) -> PurePower | None:
    return None if law is None else PurePower(**law)
