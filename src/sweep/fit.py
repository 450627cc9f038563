"""Scaling-law fits: pure numerics (numpy/scipy), no I/O.

Every fit takes per-run arrays and an optional weight vector `w` (how often each run is counted), so a bootstrap
over runs is the same call with resampled counts: no copies, and a warm start from the full-data optimum.

- `LseFitter`: laws log L̂ = LSE(e, a_1 − α_1·log x_1, …), i.e. L̂ = E + Σ A_j / x_j^α_j, fitted as Epoch AI
  did Chinchilla's Approach 3: Huber (δ = 1e-3) on log L̂ − log L, summed, L-BFGS-B from several starts.
- `allocation` / `optimal_nd`: Approach 3's closed-form optimum under C = 6ND; `optimal_nd_flops` the same law's
  optimum under another FLOPs-per-token accounting.
- `fit_isoflop` (Approach 2), `fit_envelope` (Approach 1), `holdout_largest`.
- `bootstrap` / `percentile_ci`, and `flatten_estimates` / `attach_intervals` to carry intervals on nested results.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits
from scipy.optimize import minimize, minimize_scalar, nnls

DELTA = 1e-3
# Generous box: wide enough never to bind on sane data, so a bound that binds signals a degenerate fit.
E_BOUNDS, A_BOUNDS, EXP_BOUNDS = (-15.0, 15.0), (-50.0, 100.0), (0.0, 5.0)
_LBFGS = dict(ftol=1e-15, gtol=1e-12, maxiter=5000, maxls=50)  # default tolerances stop early: f is only ~1e-3


# ------------------------------------------------------------------------------------------- BLAS threads
def single_threaded_blas():
    """Run the tiny matrix work of many small fits on one BLAS thread.

    L-BFGS-B's inner linear algebra is a few 10×10 matrices: OpenBLAS threads only add wake-ups, and on a busy
    2-core machine they made a bootstrap 15-25× slower.
    """
    return threadpool_limits(1, user_api="blas")


# ----------------------------------------------------------------------------------------------- objective
def _log_pred(thetas: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log L̂ and its terms' softmax weights, for thetas (m, 1+2k) at points X (n, k): shapes (m, n), (m, n, 1+k)."""
    z = [np.broadcast_to(thetas[:, :1], (len(thetas), len(X)))]
    for j in range(X.shape[1]):
        z.append(thetas[:, 1 + 2 * j, None] - thetas[:, 2 + 2 * j, None] * X[None, :, j])
    z = np.stack(z, axis=-1)
    top = z.max(axis=-1, keepdims=True)  # shift for a stable log-sum-exp
    ez = np.exp(z - top)
    s = ez.sum(axis=-1, keepdims=True)
    return (top + np.log(s))[..., 0], ez / s


def huber(r: np.ndarray, delta: float = DELTA) -> np.ndarray:
    a = np.abs(r)
    return np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))


def objective(thetas, X, y, w=None, delta=DELTA) -> np.ndarray:
    """Σ w·Huber(log L̂ − log L) for each row of thetas (vectorised over candidate parameter vectors)."""
    thetas = np.atleast_2d(thetas)
    w = np.ones(len(y)) if w is None else w
    return huber(_log_pred(thetas, X)[0] - y, delta) @ w


def _value_and_grad(theta, X, y, w, delta):
    pred, soft = _log_pred(theta[None, :], X)
    r = pred[0] - y
    f = float(huber(r, delta) @ w)
    g = w * np.clip(r, -delta, delta)  # Huber' is r inside ±δ, δ·sign(r) outside
    grad = np.empty_like(theta)
    grad[0] = g @ soft[0, :, 0]
    for j in range(X.shape[1]):
        gj = g * soft[0, :, 1 + j]
        grad[1 + 2 * j] = gj.sum()
        grad[2 + 2 * j] = -(gj @ X[:, j])
    return f, grad


@dataclass
class LseFit:
    theta: np.ndarray
    objective: float
    at_bound: list[str]  # parameters at a bound of the box
    negligible: list[str]  # terms (by their coefficient: e, a0, a1) below 0.1% of the loss at every point
    starts: dict = field(default_factory=dict)


class LseFitter:
    """Fits L̂ = E + Σ_j A_j / x_j^α_j (x_j = N, D, …) to losses, Epoch-style, from a vectorised start set.

    Start set: Epoch's grid (e ∈ {-1,…,1}, a_j ∈ {0,5,…,25}, α_j ∈ {0,.5,…,2}) plus variable-projection starts
    (for each exponent pair on a fine grid, E and A_j by non-negative least squares on relative residuals). All
    are scored at once; only the best few are refined with L-BFGS-B and an analytic gradient.
    """

    KEEP = 256

    def __init__(self, x: np.ndarray, loss: np.ndarray, delta: float = DELTA):
        self.X = np.log(np.asarray(x, float).reshape(len(loss), -1))
        self.y = np.log(np.asarray(loss, float))
        self.k = self.X.shape[1]
        self.delta = delta
        names = ["e"] + [f"{p}{j}" for j in range(self.k) for p in ("a", "alpha")]
        self.names = names
        self.bounds = [E_BOUNDS] + [A_BOUNDS, EXP_BOUNDS] * self.k
        cands = np.vstack([self.epoch_grid(self.k), self._varpro_starts()])
        self.n_scored = len(cands)
        # Per-point Huber terms of the best KEEP candidates on the full data, so that a resample's start scores
        # are one matrix product; the rest could only matter to a resample far from the data (and cost memory).
        terms = [huber(_log_pred(c, self.X)[0] - self.y, delta) for c in np.array_split(cands, -(-len(cands) // 256))]
        terms = np.vstack(terms)
        keep = np.argsort(terms.sum(axis=1))[: self.KEEP]
        self.candidates, self._cand_terms = cands[keep], terms[keep]

    @staticmethod
    def epoch_grid(k: int) -> np.ndarray:
        axes = [np.arange(-1, 1.01, 0.5)] + [np.arange(0, 26, 5.0), np.arange(0, 2.01, 0.5)] * k
        return np.array(list(itertools.product(*axes)))

    def _varpro_starts(self) -> np.ndarray:
        exps = np.linspace(0.05, 1.5, 30 if self.k == 1 else 24)
        L = np.exp(self.y)
        starts = []
        for alphas in itertools.product(exps, repeat=self.k):
            cols = np.column_stack([np.ones(len(L))] + [np.exp(-a * self.X[:, j]) for j, a in enumerate(alphas)])
            scale = cols.max(axis=0)
            coef, _ = nnls(cols / scale / L[:, None], np.ones(len(L)))  # relative residuals ≈ log residuals
            coef = np.maximum(coef / scale, 1e-12)
            theta = [np.log(coef[0])]
            for j, a in enumerate(alphas):
                theta += [np.log(coef[1 + j]), a]
            starts.append(theta)
        return np.clip(np.array(starts), [b[0] for b in self.bounds], [b[1] for b in self.bounds])

    def _refine(self, start, w):
        res = minimize(_value_and_grad, start, args=(self.X, self.y, w, self.delta), jac=True,
                       method="L-BFGS-B", bounds=self.bounds, options=_LBFGS)
        return res.x, float(res.fun)

    def fit(self, w=None, n_refine: int = 8, warm: np.ndarray | None = None) -> LseFit:
        """Refine the n_refine best-scoring starts (and `warm`, if given); the lowest objective wins.

        With `warm` (a bootstrap refit), n_refine=0 refines only the warm start, and then also any candidate
        that already scores better than the result: rare, but it keeps a resample from sitting in a worse basin.
        """
        w = np.ones(len(self.y)) if w is None else np.asarray(w, float)
        scores = self._cand_terms @ w
        order = np.argsort(scores)
        starts = [self.candidates[i] for i in order[:n_refine]]
        if warm is not None:
            starts.insert(0, np.clip(warm, [b[0] for b in self.bounds], [b[1] for b in self.bounds]))
        results = [self._refine(s, w) for s in starts]
        best = min(results, key=lambda r: r[1])
        if warm is not None and n_refine == 0 and scores[order[0]] < best[1]:
            results.append(self._refine(self.candidates[order[0]], w))
            best = min(results, key=lambda r: r[1])
        thetas = np.array([r[0] for r in results])
        objs = np.array([r[1] for r in results])
        near = objs <= best[1] * (1 + 1e-6) + 1e-12
        spread = {n: [float(thetas[near, i].min()), float(thetas[near, i].max())] for i, n in enumerate(self.names)}
        starts_info = {"candidates": self.n_scored, "refined": len(results),
                       "reached_best": int(near.sum()), "objective_range": [float(objs.min()), float(objs.max())],
                       "theta_spread_at_best": spread}
        share = _log_pred(best[0][None, :], self.X)[1][0].max(axis=0)  # each term's largest share of L̂
        negligible = [self.names[0 if t == 0 else 2 * t - 1] for t in np.flatnonzero(share < 1e-3)]
        return LseFit(best[0], best[1], self._at_bound(best[0]), negligible, starts_info)

    def _at_bound(self, theta) -> list[str]:
        return [n for n, t, (lo, hi) in zip(self.names, theta, self.bounds) if min(t - lo, hi - t) < 1e-6]

    def predict(self, theta, x) -> np.ndarray:
        X = np.log(np.asarray(x, float).reshape(-1, self.k))
        return np.exp(_log_pred(np.asarray(theta)[None, :], X)[0][0])


def approach3_params(theta) -> dict:
    e, a, alpha, b, beta = theta
    return {"E": float(np.exp(e)), "A": float(np.exp(a)), "B": float(np.exp(b)),
            "alpha": float(alpha), "beta": float(beta)}


def power_params(theta) -> dict:
    e, a, alpha = theta
    return {"E": float(np.exp(e)), "A": float(np.exp(a)), "alpha": float(alpha)}


def law_loss(p: dict, N, D) -> np.ndarray:
    return p["E"] + p["A"] / np.asarray(N, float) ** p["alpha"] + p["B"] / np.asarray(D, float) ** p["beta"]


# ------------------------------------------------------------------------------ compute-optimal allocation
def allocation(p: dict) -> dict:
    """Approach 3's optimum under C = 6ND: N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b."""
    s = p["alpha"] + p["beta"]
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1.0 / s)
    return {"G": float(G), "a": float(p["beta"] / s), "b": float(p["alpha"] / s)}


def optimal_nd(p: dict, C) -> tuple[np.ndarray, np.ndarray]:
    al = allocation(p)
    c6 = np.asarray(C, float) / 6.0
    return al["G"] * c6 ** al["a"], c6 ** al["b"] / al["G"]


def optimal_nd_flops(p: dict, C: float, slope: float, coef: float) -> tuple[float, float]:
    """Argmin of L(N, D) along C = coef·N^slope·D (the data's own FLOPs per token), by bounded 1-D search."""
    n0 = optimal_nd(p, C)[0]
    res = minimize_scalar(lambda x: law_loss(p, np.exp(x), C / (coef * np.exp(x) ** slope)),
                          bounds=(np.log(n0) - 12, np.log(n0) + 12), method="bounded", options={"xatol": 1e-10})
    n = float(np.exp(res.x))
    return n, float(C / (coef * n**slope))


# ---------------------------------------------------------------------------------------- small helpers
def size_clusters(N, rel_tol: float = 0.01) -> np.ndarray:
    """Label runs by model size: sizes within rel_tol of their neighbour are one size (digitised data jitter)."""
    logn = np.log(np.asarray(N, float))
    order = np.argsort(logn)
    breaks = np.diff(logn[order]) > np.log1p(rel_tol)
    labels = np.empty(len(logn), int)
    labels[order] = np.concatenate([[0], np.cumsum(breaks)])
    return labels


def loglog_fit(x, y, w=None) -> tuple[float, float]:
    """Slope and coefficient k of y = k·x^slope, by least squares in log space."""
    lx, ly = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    slope, icpt = np.polyfit(lx, ly, 1, w=None if w is None else np.sqrt(w))
    return float(slope), float(np.exp(icpt))


# -------------------------------------------------------------------------------------------- Approach 2
def fit_isoflop(N, D, L, budget, w=None) -> dict:
    """Per budget a parabola of L in log10 N, its minimum; then N_opt ∝ C^a and D_opt ∝ C^b."""
    N, D, L, budget = (np.asarray(v, float) for v in (N, D, L, budget))
    w = np.ones(len(L)) if w is None else np.asarray(w, float)
    rows, warnings = [], []
    for c in np.unique(budget[np.isfinite(budget)]):
        m = (budget == c) & (w > 0)
        tag = f"budget {c:.3g}"
        if len(np.unique(size_clusters(N[m]))) < 3:
            warnings.append(f"{tag}: fewer than 3 model sizes, no parabola")
            continue
        x = np.log10(N[m])
        c2, c1, c0 = np.polyfit(x, L[m], 2, w=np.sqrt(w[m]))
        if c2 <= 0:
            warnings.append(f"{tag}: the parabola opens downward (no minimum); budget left out")
            continue
        xs = -c1 / (2 * c2)
        edge = None
        if not x.min() <= xs <= x.max():
            edge = "outside"
            warnings.append(f"{tag}: the fitted minimum N={10**xs:.3g} lies outside the sizes tried "
                            f"({N[m].min():.3g}–{N[m].max():.3g}); extend the grid")
        elif np.argmin(L[m]) in (np.argmin(x), np.argmax(x)):
            edge = "edge"
            warnings.append(f"{tag}: the lowest loss is at the edge of the sizes tried; the minimum is extrapolated")
        # D at the optimum from the budget's own tokens-vs-size relation (exactly C/(6N) when flops = 6ND).
        slope, k = loglog_fit(N[m], D[m], w[m])
        n_opt = 10**xs
        rows.append({"C": float(c), "N_opt": float(n_opt), "D_opt": float(k * n_opt**slope),
                     "L_opt": float(c0 + c1 * xs + c2 * xs * xs), "coef_log10N": [float(c2), float(c1), float(c0)],
                     "n_runs": int(m.sum()), "edge": edge})
    out = {"budgets": rows, "warnings": warnings}
    if len(rows) < 2:
        out["warnings"].append(f"only {len(rows)} usable budget(s): no power law for N_opt(C), D_opt(C)")
        return out
    C = np.array([r["C"] for r in rows])
    out["a"], out["k_N"] = loglog_fit(C, [r["N_opt"] for r in rows])
    out["b"], out["k_D"] = loglog_fit(C, [r["D_opt"] for r in rows])
    if len(rows) == 2:
        out["warnings"].append("only 2 budgets: the power laws pass exactly through them")
    return out


# -------------------------------------------------------------------------------------------- Approach 1
def fit_envelope(C, N, D, L, run, w=None, bins_per_decade: float = 8.0) -> dict:
    """Lower envelope of loss vs FLOPs over all eval points; per log-C bin, the size of the run that attains it.

    A bin counts only where at least two runs have points (a lone run is trivially on the envelope), and only if
    its best loss beats every cheaper bin's (the envelope of loss against compute cannot rise).
    """
    C, N, D, L = (np.asarray(v, float) for v in (C, N, D, L))
    run = np.asarray(run)
    keep = np.ones(len(L), bool) if w is None else np.asarray(w, float)[run] > 0
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


# ----------------------------------------------------------------------------------- holdout, bootstrap
def holdout_largest(N, fit_predict) -> dict | None:
    """Fit on all sizes but the largest, predict the largest: relative loss error (pred − obs) / obs.

    fit_predict(train_mask, test_mask) → (predicted, observed) for the test runs. Needs ≥ 4 distinct sizes.
    """
    labels = size_clusters(N)
    if labels.max() + 1 < 4:
        return None
    test = labels == labels.max()
    pred, obs = fit_predict(~test, test)
    rel = (np.asarray(pred) - np.asarray(obs)) / np.asarray(obs)
    return {"held_out_N": float(np.asarray(N)[test].mean()), "n_test": int(test.sum()),
            "mean_rel_error": float(rel.mean()), "max_abs_rel_error": float(np.abs(rel).max())}


def bootstrap(statistic, n_units: int, n_boot: int, seed: int = 0, strata=None, accept=None) -> dict[str, np.ndarray]:
    """Resample runs with replacement (within strata, if given) as counts; statistic(counts) → {name: float}.

    accept(counts) → bool redraws a resample that cannot be fitted by design (an isoFLOP curve left with two
    sizes); without it such resamples would drop out, and only the lucky ones would set the interval.
    """
    rng = np.random.default_rng(seed)
    strata = np.zeros(n_units, int) if strata is None else np.asarray(strata)
    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    samples: dict[str, list[float]] = {}
    for i in range(n_boot):
        for _ in range(1000):
            counts = np.zeros(n_units)
            for g in groups:
                np.add.at(counts, rng.choice(g, size=len(g), replace=True), 1.0)
            if accept is None or accept(counts):
                break
        try:
            values = statistic(counts)
        except (ValueError, ArithmeticError, np.linalg.LinAlgError):
            values = {}  # a resample the fits cannot handle counts as missing for every quantity
        for k, v in values.items():
            samples.setdefault(k, [np.nan] * i).append(v)
        for k in samples:  # a quantity that a resample could not fit stays NaN there
            if len(samples[k]) < i + 1:
                samples[k].append(np.nan)
    return {k: np.asarray(v, float) for k, v in samples.items()}


def percentile_ci(samples: np.ndarray, level: float = 0.95) -> dict:
    s = samples[np.isfinite(samples)]
    if len(s) < 10:
        return {"ci": None, "n_valid": int(len(s))}
    q = 100 * (1 - level) / 2
    return {"ci": [float(np.percentile(s, q)), float(np.percentile(s, 100 - q))], "n_valid": int(len(s))}


def flatten_estimates(tree: dict, names: set, prefix: str = "") -> dict[str, float]:
    """Numeric leaves worth an interval, keyed by a path that is stable across resamples (rows by their key)."""
    flat = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            flat.update(flatten_estimates(v, names, f"{prefix}{k}/"))
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for row in v:
                if "key" in row:
                    flat.update(flatten_estimates(row, names, f"{prefix}{k}/{row['key']}/"))
        elif k in names and isinstance(v, (int, float)) and not isinstance(v, bool):
            flat[prefix + k] = float(v)
    return flat


def attach_intervals(tree: dict, cis: dict, prefix: str = "") -> None:
    """Put each interval next to its value: section["ci"][name] = [lo, hi] (the inverse of flatten_estimates)."""
    for k, v in list(tree.items()):
        if isinstance(v, dict):
            attach_intervals(v, cis, f"{prefix}{k}/")
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for row in v:
                if "key" in row:
                    attach_intervals(row, cis, f"{prefix}{k}/{row['key']}/")
        elif prefix + k in cis and cis[prefix + k] is not None:
            tree.setdefault("ci", {})[k] = cis[prefix + k]
