"""The numerics of an lr study (lr.py), pure: one size's optimum over a setting (ln lr, or ln batch) with its
interval, and the power law of the optima across sizes with its interval.

Per size (`fit_curve`, `vertex_interval`). The lowest mean loss among the lrs tried and up to two lrs either side
(the window, ≥ 3 lrs) get a parabola in ln lr, least squares over their runs (seeds count apart); its vertex is the
best lr. Its 95% interval is a parametric bootstrap: the fitted parabola plus Gaussian noise of scale σ, refitted
N_SIM times (lr.py), the 2.5/97.5 percentiles of the vertex. σ is pooled over the study's sizes (Σ RSS / Σ residual
dof: the final loss's noise is taken to be alike across sizes), drawn in each resample from its scaled-inverse-χ²
so that few degrees of freedom widen the interval, and never below SIGMA_FLOOR (an almost exact fit through a
handful of points is luck, not precision). A resample without a minimum inside the window counts at the window's
end where its curve is lower; the interval then reaches that edge and says so. With no residual dof at all (every
window 3 lrs × 1 run) there is no interval. A lowest loss at the smallest or largest lr tried is an edge: the
optimum is a bound (≤ or ≥ that lr), gets no interval and is LEFT OUT of the power law (not weighted down); so is a
parabola opening downward or with its vertex outside the lrs tried.

Across sizes (`power_law`). Weighted least squares of ln lr* on ln(N/n_ref), n_ref the geometric mean of the fitted
sizes, as a random-effects meta-regression: weights 1/(se_i² + τ²), se_i half the central 68% range of the size's
bootstrap in ln lr, τ² the between-size scatter beyond those (DerSimonian–Laird). The 95% intervals of the exponent
and lr_ref are the wider of Knapp–Hartung's (covariance × the weighted residual variance, Student t with k − 2 dof)
and the plain normal one (a guard against luckily small residuals). Without per-size intervals the fit is
unweighted, with the ordinary t interval. `law_band` is the fitted mean law's 95% band. Simulated (5 sizes × 7 lrs,
noise 0.003–0.01 nats): per-size intervals cover the true optimum 96% of the time, the exponent's 98–99% (wide
rather than narrow: 3–4 sizes give wide intervals, as they should).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from ..inputs.sizes import size_clusters
from ..result.lr import PowerLaw

SIGMA_FLOOR = 1e-3  # nats/token: the smallest residual scale an interval is built on
LEVEL = 0.95
Z = stats.norm.ppf(0.5 + LEVEL / 2)  # an interval of width 2·Z·se


def levels(x: np.ndarray) -> np.ndarray:
    """Labels of the distinct settings (ln lr or ln batch) within 0.1%, 0 = the smallest."""
    return size_clusters(np.exp(x), rel_tol=1e-3, max_span=np.inf)


def fit_curve(x: np.ndarray, y: np.ndarray) -> dict:
    """The optimum of loss y over settings x (ln lr or ln batch), one entry per run: the window's parabola."""
    lev = levels(x)
    k = int(lev.max()) + 1
    xl = np.array([x[lev == j].mean() for j in range(k)])
    yl = np.array([y[lev == j].mean() for j in range(k)])
    i = int(np.argmin(yl))
    out = {"xl": xl, "yl": yl, "x_best": xl[i], "y_best": yl[i], "edge": None, "down": False, "outside": False,
           "coef": None, "dof": 0, "rss": 0.0}
    if k < 3:
        return out
    if i in (0, k - 1):
        out["edge"] = "low" if i == 0 else "high"
        return out
    lo, hi = max(0, i - 2), min(k - 1, i + 2)
    m = (lev >= lo) & (lev <= hi)
    X = np.vander(x[m] - xl[i], 3)  # centred on the lowest point: a well-conditioned fit
    coef = np.linalg.lstsq(X, y[m], rcond=None)[0]
    out.update(coef=coef, x0=xl[i], X=X, window=(xl[lo] - xl[i], xl[hi] - xl[i]), dof=int(m.sum()) - 3,
               rss=float(((X @ coef - y[m]) ** 2).sum()))
    if coef[0] <= 0:
        out["down"] = True
        return out
    v = -coef[1] / (2 * coef[0])
    if not xl[0] <= xl[i] + v <= xl[-1]:
        out["outside"] = True
        return out
    out["x_best"], out["y_best"] = xl[i] + v, float(np.polyval(coef, v))
    return out


def vertex_interval(fit: dict, sigma: float, dof: int, rng, n_sim: int) -> tuple[list[float], float, bool]:
    """The parametric bootstrap of the window's parabola (module docstring): the interval [lo, hi] in ln, the
    standard error in ln (half the central 68% range: the law's weight), and whether it reaches the window's edge."""
    X, coef = fit["X"], fit["coef"]
    s = sigma * np.sqrt(dof / rng.chisquare(dof, n_sim))
    Y = (X @ coef)[:, None] + rng.standard_normal((len(X), n_sim)) * s[None, :]
    a, b, _ = np.linalg.lstsq(X, Y, rcond=None)[0]
    lo, hi = fit["window"]
    with np.errstate(all="ignore"):
        v = -b / (2 * a)
    none = ~((a > 0) & (v >= lo) & (v <= hi))
    v[none] = np.where(a * lo * lo + b * lo <= a * hi * hi + b * hi, lo, hi)[none]
    q = np.percentile(v, [50 - 50 * LEVEL, 50 + 50 * LEVEL, 15.87, 84.13])
    return ([float(fit["x0"] + q[0]), float(fit["x0"] + q[1])], float(q[3] - q[2]) / 2,
            bool(none.mean() > (1 - LEVEL) / 2))


# ------------------------------------------------------------------------------------------- the law
def power_law(n: np.ndarray, y: np.ndarray, se: np.ndarray | None) -> dict:
    """ln y = ln lr_ref + exponent·ln(n/n_ref) over k ≥ 3 sizes (module docstring); y a per-size optimum."""
    n, ly = np.asarray(n, float), np.log(np.asarray(y, float))
    k, n_ref = len(n), float(np.exp(np.log(n).mean()))
    X = np.column_stack([np.ones(k), np.log(n / n_ref)])

    def wls(w):
        V = np.linalg.inv(X.T @ (w[:, None] * X))
        beta = V @ X.T @ (w * ly)
        return beta, V, ly - X @ beta

    tau2 = 0.0
    if se is None:
        beta, V, r = wls(np.ones(k))
        cov = V * float(r @ r) / (k - 2)
    else:
        w0 = 1.0 / np.asarray(se, float) ** 2
        _, V0, r0 = wls(w0)
        c = w0.sum() - np.trace(V0 @ X.T @ ((w0**2)[:, None] * X))
        tau2 = max(0.0, (float(w0 @ r0**2) - (k - 2)) / c) if c > 0 else 0.0
        w = 1.0 / (np.asarray(se, float) ** 2 + tau2)
        beta, V, r = wls(w)
    t = float(stats.t.ppf(0.5 + LEVEL / 2, k - 2))
    if se is not None:  # t·√(cov) is the wider of Knapp–Hartung's t·√(qV) and the plain z·√V
        cov = V * max(float(w @ r**2) / (k - 2), (Z / t) ** 2)
    half = t * np.sqrt(np.diag(cov))
    return {"lr_ref": float(np.exp(beta[0])), "n_ref": n_ref, "exponent": float(beta[1]),
            "ci": {"exponent": [float(beta[1] - half[1]), float(beta[1] + half[1])],
                   "lr_ref": [float(np.exp(beta[0] - half[0])), float(np.exp(beta[0] + half[0]))]},
            "cov": cov.tolist(), "t": t, "dof": k - 2, "tau": math.sqrt(tau2), "weighted": se is not None,
            "min_params": float(n.min()), "max_params": float(n.max())}


def law_band(law: PowerLaw, n) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The law at sizes n and its 95% band (the mean law's interval, from its covariance)."""
    x = np.log(np.asarray(n, float) / law.n_ref)
    c = np.asarray(law.cov)
    mid = np.log(law.ref.value) + law.exponent.value * x
    half = law.t * np.sqrt(c[0, 0] + 2 * x * c[0, 1] + x * x * c[1, 1])
    return np.exp(mid), np.exp(mid - half), np.exp(mid + half)


