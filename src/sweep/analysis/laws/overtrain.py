"""Over-training (Gadre et al. 2024, "Language models scale reliably with over-training and on downstream tasks"):
loss as a function of compute C = 6ND and the token multiplier M = D/N,

    L(C, M) = E + (a·M^η + b·M^−η)·C^−η,

Chinchilla's law with α = β = 2η rewritten along C and M (a = A·6^η, b = B·6^η). `fit_overtrain` fits it as the
Approach-3 fitter does (Huber δ = 1e-3 on log L̂ − log L, L-BFGS-B), `overtraining` is fits.json's section: the fit
with bootstrap intervals, the extrapolation check in M (fit on M ≤ 20, predict the rest, beside Approach 3 fitted on
the same runs) and the LLaMA view's gain per doubling of tokens per size. Pure numerics: no I/O.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from .bootstrap import bootstrap, percentile_ci
from ..inputs.finite import require_finite
from ..inputs.sizes import size_clusters
from .lse import DELTA, LseFitter, approach3_params, huber, law_loss, nnls_relative
from ..result.record import Value
from ..result.beyond import DoublingGain, ExtrapolatedRun, Extrapolation, Overtraining

M_SPLIT = 20.0  # Chinchilla's tokens/param: the extrapolation check fits at or below it
ETA_BOUNDS, LOG_BOUNDS = (1e-3, 2.0), (-30.0, 60.0)
MIN_RUNS, MIN_M_VALUES = 6, 3


def overtrain_loss(p: dict, C, M) -> np.ndarray:
    """L(C, M) = E + (a·M^η + b·M^−η)·C^−η."""
    C, M = np.asarray(C, float), np.asarray(M, float)
    return p["E"] + (p["a"] * M ** p["eta"] + p["b"] * M ** -p["eta"]) * C ** -p["eta"]


def _parts(theta, u1, u2):
    """log L̂ and the three terms' softmax weights; u1 = log(C/M), u2 = log(C·M) (the law's two axes)."""
    e, la, lb, eta = theta
    z = np.stack([np.full(len(u1), e), la - eta * u1, lb - eta * u2], axis=-1)
    top = z.max(axis=-1, keepdims=True)
    ez = np.exp(z - top)
    s = ez.sum(axis=-1, keepdims=True)
    return (top + np.log(s))[:, 0], ez / s


def _value_and_grad(theta, u1, u2, y, w):
    pred, soft = _parts(theta, u1, u2)
    r = pred - y
    g = w * np.clip(r, -DELTA, DELTA)  # Huber's derivative
    grad = np.array([g @ soft[:, 0], g @ soft[:, 1], g @ soft[:, 2], -(g @ (soft[:, 1] * u1 + soft[:, 2] * u2))])
    return float(huber(r) @ w), grad


def _starts(u1, u2, L) -> list[np.ndarray]:
    """For each η on a grid, E, a, b by non-negative least squares on relative residuals; the best few."""
    scored = []
    for eta in np.linspace(0.02, 0.8, 40):
        coef, rss = nnls_relative(np.column_stack([np.ones(len(L)), np.exp(-eta * u1), np.exp(-eta * u2)]), L)
        scored.append((rss, np.r_[np.log(coef), eta]))
    scored.sort(key=lambda s: s[0])
    return [np.clip(t, [LOG_BOUNDS[0]] * 3 + [ETA_BOUNDS[0]], [LOG_BOUNDS[1]] * 3 + [ETA_BOUNDS[1]])
            for _, t in scored[:4]]


def fit_overtrain(C, M, L, w=None, warm=None) -> dict:
    """Gadre et al.'s law fitted to runs (C, M, loss): {E, a, b, eta, objective, theta}; warm: a start to refine
    alone (a bootstrap refit)."""
    C, M, L = (require_finite(f"fit_overtrain: {k}", v, positive=True) for k, v in (("C", C), ("M", M), ("L", L)))
    w = np.ones(len(L)) if w is None else require_finite("fit_overtrain: w", w)
    u1, u2, y = np.log(C / M), np.log(C * M), np.log(L)
    bounds = [LOG_BOUNDS] * 3 + [ETA_BOUNDS]
    best = None
    for start in ([np.asarray(warm, float)] if warm is not None else _starts(u1, u2, L)):
        res = minimize(_value_and_grad, start, args=(u1, u2, y, w), jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 5000})
        if best is None or res.fun < best.fun:
            best = res
    e, la, lb, eta = best.x
    return {"E": float(np.exp(e)), "a": float(np.exp(la)), "b": float(np.exp(lb)), "eta": float(eta),
            "objective": float(best.fun), "theta": [float(t) for t in best.x]}


def _extrapolation_in_m(runs_N, D, L, w) -> Extrapolation | None:
    """Both laws fitted on the runs with M ≤ 20, each larger-M run predicted: per-run and median relative errors."""
    M, C = D / runs_N, 6 * runs_N * D
    fit = M <= M_SPLIT * (1 + 1e-9)
    test = ~fit
    if not test.any() or fit.sum() < MIN_RUNS or len(np.unique(size_clusters(runs_N[fit]))) < 3:
        return None
    g = fit_overtrain(C[fit], M[fit], L[fit], w[fit])
    a3 = LseFitter(np.column_stack([runs_N[fit], D[fit]]), L[fit])
    p3 = approach3_params(a3.fit(w[fit], n_refine=8).theta)
    pred_g, pred_3 = overtrain_loss(g, C[test], M[test]), law_loss(p3, runs_N[test], D[test])
    rows = [ExtrapolatedRun(N=float(n), D=float(d), M=float(m), observed=float(o), predicted=float(pg),
                            rel_error=float(pg / o - 1), predicted_approach3=float(p),
                            rel_error_approach3=float(p / o - 1))
            for n, d, m, o, pg, p in zip(runs_N[test], D[test], M[test], L[test], pred_g, pred_3)]
    return Extrapolation(fit_on=f"M ≤ {M_SPLIT:g}", fitted_runs=int(fit.sum()), runs=rows,
                         median_abs_rel_error=float(np.median(np.abs(pred_g / L[test] - 1))),
                         median_abs_rel_error_approach3=float(np.median(np.abs(pred_3 / L[test] - 1))))


def doubling_gains(N, D, L, p3: dict | None, pg: dict | None) -> list[dict]:
    """The LLaMA view per size: each run against the same size's next-shorter run, the loss gained per doubling of
    tokens (observed, and by Approach 3 and Gadre's law at that run: L(D/2) − L(D))."""
    rows = []
    labels = size_clusters(N)
    for s in np.unique(labels):
        idx = np.flatnonzero(labels == s)
        idx = idx[np.argsort(D[idx], kind="stable")]
        for prev, cur in zip(idx[:-1], idx[1:]):
            doublings = np.log2(D[cur] / D[prev])
            if doublings < 0.05:  # the same horizon twice (seeds): no slope between them
                continue
            n, d = N[cur], D[cur]
            row = {"N": float(n), "M": float(d / n), "loss": float(L[cur]),
                   "gain_per_doubling": float((L[prev] - L[cur]) / doublings)}
            if p3:
                row["gain_approach3"] = float(law_loss(p3, n, d / 2) - law_loss(p3, n, d))
            if pg:
                half, full = overtrain_loss(pg, 3 * n * d, d / (2 * n)), overtrain_loss(pg, 6 * n * d, d / n)
                row["gain_gadre"] = float(half - full)
            rows.append(row)
    return rows


def overtraining(runs, p3: dict | None = None, n_boot: int = 200, seed: int = 0) -> Overtraining:
    """fits.json's `overtraining`: Gadre et al.'s law with intervals, its extrapolation check in M beside Approach
    3's, and the gain per doubling of tokens per size (p3: Approach 3's parameters on all runs, if fitted)."""
    N, D, L = (runs[k].to_numpy(float) for k in ("N", "D", "loss"))
    w = runs["weight"].to_numpy(float) if "weight" in runs else np.ones(len(runs))
    M, C = D / N, 6 * N * D
    out = Overtraining(form="L(C, M) = E + (a·M^eta + b·M^-eta)·C^-eta, C = 6ND, M = D/N",
                       M_range=[float(M.min()), float(M.max())])
    n_m = len(np.unique(size_clusters(M)))
    if len(L) < MIN_RUNS or n_m < MIN_M_VALUES or len(np.unique(size_clusters(N))) < 2:
        out.skipped = (f"needs ≥ {MIN_RUNS} runs over ≥ {MIN_M_VALUES} tokens/param values and ≥ 2 sizes (have "
                       f"{len(L)} runs, {n_m} tokens/param values)")
        return out
    fit = fit_overtrain(C, M, L, w)
    out.E, out.a, out.b, out.eta = (Value(fit[k]) for k in ("E", "a", "b", "eta"))
    out.objective = fit["objective"]
    out.alpha_equivalent = 2 * fit["eta"]
    out.median_abs_residual = float(np.median(np.abs(overtrain_loss(fit, C, M) / L - 1)))
    if p3:
        out.median_abs_residual_approach3 = float(np.median(np.abs(law_loss(p3, N, D) / L - 1)))
    if n_boot > 0:
        def statistic(counts):
            f = fit_overtrain(C, M, L, w * counts, warm=fit["theta"])
            return {k: f[k] for k in ("E", "a", "b", "eta")}

        samples = bootstrap(statistic, len(L), n_boot, seed)
        out.bootstrapped = True
        for k, v in samples.items():
            getattr(out, k).ci = percentile_ci(v)["ci"]
    out.extrapolation = _extrapolation_in_m(N, D, L, w) if M.max() > M_SPLIT else None
    if out.extrapolation is None:
        out.extrapolation_skipped = (f"no run beyond M = {M_SPLIT:g}" if M.max() <= M_SPLIT else
                                     f"too few runs (or sizes) at M ≤ {M_SPLIT:g} to fit on")
    out.doubling = [DoublingGain(**row) for row in doubling_gains(N, D, L, p3, fit)]
    return out
