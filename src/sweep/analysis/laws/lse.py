"""The Approach-3 fitter: laws log L̂ = LSE(e, a_1 − α_1·log x_1, …), i.e. L̂ = E + Σ A_j / x_j^α_j, fitted as Epoch AI
did Chinchilla's: Huber (δ = 1e-3) on log L̂ − log L, summed, L-BFGS-B from several starts; and the helpers that turn
its parameter vector into a law (`approach3_params`, `power_params`, `law_loss`). Pure numerics: no I/O.

`LseFitter.fit` takes an optional weight vector `w` (how often each point is counted), so a bootstrap over runs is
the same call with resampled counts: no copies, and a warm start from the full-data optimum. Its inputs must be
finite and positive (finite.require_finite): a non-finite value raises ValueError rather than reaching the fit.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize, nnls
from threadpoolctl import threadpool_limits

from ..inputs.finite import require_finite

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


def nnls_relative(cols: np.ndarray, L: np.ndarray, w=None) -> tuple[np.ndarray, float]:
    """A law linear in its coefficients for fixed exponents (its terms as the columns of `cols`, n × m): the
    coefficients ≥ 0 (floored at 1e-12) minimising Σ w·(L̂/L − 1)², relative residuals ≈ log residuals, and that sum.
    Each column is scaled to its largest value first, for NNLS's conditioning. The inner step of variable projection
    and of every linear start set (here, predict/forms.py, overtrain.py)."""
    sw = np.ones(len(L)) if w is None else np.sqrt(np.asarray(w, float))
    scale = cols.max(axis=0)
    coef, rnorm = nnls(cols / scale / L[:, None] * sw[:, None], sw)
    return np.maximum(coef / scale, 1e-12), float(rnorm**2)


@dataclass
class LseFit:
    theta: np.ndarray
    objective: float
    at_bound: list[str]  # parameters at a bound of the box
    negligible: list[str]  # terms (by their coefficient: e, a0, a1) below 0.1% of the loss at every point
    starts: dict = field(default_factory=dict)


class LseFitter:
    """Fits L̂ = E + Σ_j A_j / x_j^α_j (x_j = N, D, …) to losses, Epoch-style, from a vectorised start set.

    Start set: variable projection's optimum (`varpro_start`: the exponents searched, E and A_j solved exactly),
    then Epoch's grid (e ∈ {-1,…,1}, a_j ∈ {0,5,…,25}, α_j ∈ {0,.5,…,2}) plus variable-projection starts on a
    fine grid of exponents, all scored, vectorised (in chunks: memory stays bounded for any number of points);
    the best few are refined too, with L-BFGS-B and an analytic gradient, and the lowest objective wins. On
    Epoch's data the variable-projection start alone reaches the multi-start's optimum (to 1e-8 in θ); on a few
    synthetic sets it lands in a basin 1e-4 worse, which the grid's starts catch. A bootstrap refit is warm-started
    and rescores the grid's best starts by one product.
    """

    KEEP = 256

    def __init__(self, x: np.ndarray, loss: np.ndarray, delta: float = DELTA):
        loss = require_finite("LseFitter: loss", loss, positive=True)
        self.X = np.log(require_finite("LseFitter: x", x, positive=True).reshape(len(loss), -1))
        self.y = np.log(loss)
        self.k = self.X.shape[1]
        self.delta = delta
        names = ["e"] + [f"{p}{j}" for j in range(self.k) for p in ("a", "alpha")]
        self.names = names
        self.bounds = [E_BOUNDS] + [A_BOUNDS, EXP_BOUNDS] * self.k
        cands = np.vstack([self.epoch_grid(self.k), self._varpro_starts()])
        self.n_scored = len(cands)
        # Per-point Huber terms of the best KEEP candidates on the full data, so that a resample's start scores
        # are one matrix product; the rest could only matter to a resample far from the data. Scored in chunks of
        # at most ~2^21 point-candidate pairs, so memory stays bounded however many points there are.
        rows = int(np.clip(2**21 // max(len(self.y), 1), 1, 256))
        scores = np.concatenate([self._terms(c).sum(axis=1) for c in np.array_split(cands, -(-len(cands) // rows))])
        keep = np.argsort(scores)[: self.KEEP]
        self.candidates = cands[keep]
        self._cand_terms = np.vstack([self._terms(c) for c in np.array_split(self.candidates, -(-len(keep) // rows))])

    def _terms(self, thetas: np.ndarray) -> np.ndarray:
        """Per-point Huber terms (m, n) of candidate parameter vectors (m, 1+2k)."""
        return huber(_log_pred(thetas, self.X)[0] - self.y, self.delta)

    @staticmethod
    def epoch_grid(k: int) -> np.ndarray:
        axes = [np.arange(-1, 1.01, 0.5)] + [np.arange(0, 26, 5.0), np.arange(0, 2.01, 0.5)] * k
        return np.array(list(itertools.product(*axes)))

    def _varpro_starts(self) -> np.ndarray:
        exps = np.linspace(0.05, 1.5, 30 if self.k == 1 else 24)
        return np.array([self.profile(alphas)[1] for alphas in itertools.product(exps, repeat=self.k)])

    def _refine(self, start, w):
        res = minimize(_value_and_grad, start, args=(self.X, self.y, w, self.delta), jac=True,
                       method="L-BFGS-B", bounds=self.bounds, options=_LBFGS)
        return res.x, float(res.fun)

    def fit(self, w=None, n_refine: int = 8, warm: np.ndarray | None = None) -> LseFit:
        """Refine the n_refine best-scoring starts and, from scratch, variable projection's start (`varpro_start`),
        or `warm`, if given; the lowest objective wins.

        With `warm` (a bootstrap refit), n_refine=0 refines only the warm start, and then also any candidate
        that already scores better than the result: rare, but it keeps a resample from sitting in a worse basin.
        """
        w = np.ones(len(self.y)) if w is None else require_finite("LseFitter.fit: w", w)
        scores = self._cand_terms @ w
        order = np.argsort(scores)
        starts = [self.candidates[i] for i in order[:n_refine]]
        if warm is not None:
            starts.insert(0, np.clip(warm, [b[0] for b in self.bounds], [b[1] for b in self.bounds]))
        elif n_refine > 0:  # a fit from scratch also starts where variable projection puts it (`varpro_start`)
            starts.insert(0, self.varpro_start(w))
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

    def profile(self, alphas, w=None) -> tuple[float, np.ndarray]:
        """Variable projection's inner step: for fixed exponents, E and the A_j ≥ 0 solved exactly (`nnls_relative`);
        (that sum of squared relative residuals, θ)."""
        cols = np.column_stack([np.ones(len(self.y))] + [np.exp(-a * self.X[:, j]) for j, a in enumerate(alphas)])
        coef, rss = nnls_relative(cols, np.exp(self.y), w)
        theta = [np.log(coef[0])]
        for j, a in enumerate(alphas):
            theta += [np.log(coef[1 + j]), float(a)]
        return rss, np.clip(theta, [b[0] for b in self.bounds], [b[1] for b in self.bounds])

    def varpro_start(self, w=None, scan: int = 16) -> np.ndarray:
        """Variable projection (VPNLS, after Open-Athena's 2026 analysis of Approach 2's bias): the exponents alone
        searched — a coarse scan of `profile`, then Nelder-Mead on it — with E and the A_j solved exactly inside.
        Its optimum (of the squared relative residuals) is the start the Huber objective is polished from: the k
        exponents need searching, not all 1 + 2k parameters."""
        lo, hi = EXP_BOUNDS[0] + 1e-3, EXP_BOUNDS[1]
        grid = np.linspace(0.02, 2.5, scan)
        best = min(itertools.product(grid, repeat=self.k), key=lambda a: self.profile(a, w)[0])
        res = minimize(lambda a: self.profile(np.clip(a, lo, hi), w)[0], np.array(best), method="Nelder-Mead",
                       options={"xatol": 1e-6, "fatol": 1e-14, "maxiter": 2000})
        return self.profile(np.clip(res.x, lo, hi), w)[1]

    def _at_bound(self, theta) -> list[str]:
        return [n for n, t, (lo, hi) in zip(self.names, theta, self.bounds) if min(t - lo, hi - t) < 1e-6]

    def predict(self, theta, x) -> np.ndarray:
        X = np.log(np.asarray(x, float).reshape(-1, self.k))
        return np.exp(_log_pred(np.asarray(theta)[None, :], X)[0][0])


# ------------------------------------------------------------------------------------------ law parameters
def approach3_params(theta) -> dict:
    """Approach 3's θ = (e, a, α, b, β) as the law's E, A, B, α, β."""
    e, a, alpha, b, beta = theta
    return {"E": float(np.exp(e)), "A": float(np.exp(a)), "B": float(np.exp(b)),
            "alpha": float(alpha), "beta": float(beta)}


def power_params(theta) -> dict:
    """A one-variable law's θ = (e, a, α) as E, A, α (L = E + A/x^α)."""
    e, a, alpha = theta
    return {"E": float(np.exp(e)), "A": float(np.exp(a)), "alpha": float(alpha)}


def law_loss(p: dict, N, D) -> np.ndarray:
    """L(N, D) = E + A/N^α + B/D^β for Approach 3's parameters p."""
    return p["E"] + p["A"] / np.asarray(N, float) ** p["alpha"] + p["B"] / np.asarray(D, float) ** p["beta"]

