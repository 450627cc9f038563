"""The law forms that predict a run's loss from its size N, tokens D (and epochs), and one fitter for all of them.

Every form is fitted as Epoch AI fitted Chinchilla's: Huber (δ = 1e-3) on log L̂ − log L, summed with run weights,
L-BFGS-B. Each form gives log L̂ vectorised over rows of candidate parameter vectors, so that a grid of starts is
scored in one product and the gradient is one call (central differences over a stacked batch). The forms:

- chinchilla:   E + A/N^α + B/D^β (Hoffmann et al. 2022, Approach 3)
- overtrain:    E + (a·M^η + b·M^−η)·C^−η, C = 6ND, M = D/N (Gadre et al. 2024): Chinchilla's form with α = β = 2η
- kaplan:       [(N_c/N)^(α_N/α_D) + D_c/D]^α_D (Kaplan et al. 2020), no irreducible loss
- kaplan_e:     E + [(N_c/N)^(α_N/α_D) + D_c/D]^α_D (Kaplan's joint form with Henighan et al. 2020's irreducible E)
- data_exp:     E + A/N^α + B/D^β(N), β(N) = β + γ·ln(N/N_ref) (a data exponent that changes with size, as in
                Farseer, Li et al. 2025; N_ref is the fitted runs' geometric mean size)
- repeated:     E + A/N^α + B/D'^β, D' = U + U·R*·(1 − e^(−R/R*)) (Muennighoff et al. 2023; U = D/epochs,
                R = epochs − 1), only when runs that repeat their data are fitted

Pure numerics: no I/O, no result records.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from ..laws.lse import DELTA, huber, nnls_relative

_LBFGS = dict(ftol=1e-14, gtol=1e-10, maxiter=3000, maxls=50)  # f is ~1e-4: scipy's ftol is then absolute
_LBFGS_REFIT = dict(ftol=1e-12, gtol=1e-8, maxiter=3000, maxls=50)  # a resample's refit: predictions to ~1e-6
_LOG, _EXP, _E = (-50.0, 100.0), (1e-3, 3.0), (-15.0, 15.0)  # wide: a bound that binds marks a degenerate fit


@dataclass(frozen=True)
class Points:
    """The per-run inputs a form reads: log N, log D, epochs, and the fitted runs' mean log N (data_exp's N_ref)."""
    x1: np.ndarray
    x2: np.ndarray
    epochs: np.ndarray
    ref: float

    @classmethod
    def of(cls, N, D, epochs=None, ref: float | None = None) -> Points:
        x1, x2 = np.log(np.asarray(N, float)), np.log(np.asarray(D, float))
        ep = np.ones(len(x1)) if epochs is None else np.nan_to_num(np.asarray(epochs, float), nan=1.0)
        return cls(x1, x2, np.maximum(ep, 1.0), float(x1.mean()) if ref is None else ref)


def _lse(*z):
    """log Σ exp(z_k), stable, over arrays that broadcast together."""
    top = z[0]
    for t in z[1:]:
        top = np.maximum(top, t)
    total = 0.0
    for t in z:
        total = total + np.exp(t - top)
    return top + np.log(total)


def _cols(t, k):
    return [t[:, i, None] for i in range(k)]


# --------------------------------------------------------------------------------------------- the forms
def _chinchilla(t, P):
    e, a, al, b, be = _cols(t, 5)
    return _lse(e, a - al * P.x1, b - be * P.x2)


def _overtrain(t, P):
    e, a, b, eta = _cols(t, 4)
    return _lse(e, a - 2 * eta * P.x1, b - 2 * eta * P.x2)


def _kaplan_core(lnc, ldc, an, ad, P):
    return ad * _lse(an / ad * (lnc - P.x1), ldc - P.x2)


def _kaplan(t, P):
    return _kaplan_core(*_cols(t, 4), P)


def _kaplan_e(t, P):
    e, *rest = _cols(t, 5)
    return _lse(e, _kaplan_core(*rest, P))


def _data_exp(t, P):
    e, a, al, b, be, g = _cols(t, 6)
    return _lse(e, a - al * P.x1, b - (be + g * (P.x1 - P.ref)) * P.x2)


def effective_log_tokens(x2, epochs, log_r_star):
    """log D' of Muennighoff's effective data (log D itself at one epoch)."""
    r_star = np.exp(log_r_star)
    U = np.exp(x2) / epochs
    return np.log(U + U * r_star * -np.expm1(-(epochs - 1.0) / r_star))


def _repeated(t, P):
    e, a, al, b, be, lr = _cols(t, 6)
    return _lse(e, a - al * P.x1, b - be * effective_log_tokens(P.x2, P.epochs, lr))


# ------------------------------------------------------------------------------------------------ starts
def _nnls_coefs(cols: list[np.ndarray], L: np.ndarray) -> np.ndarray | None:
    """log E, A, B ≥ 0 for fixed exponents (lse.nnls_relative: the linear part of a form solved exactly), None where
    a column is not finite and positive (an exponent that overflows on these runs)."""
    M = np.column_stack(cols)
    scale = M.max(axis=0)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        return None
    return np.log(nnls_relative(M, L)[0])


def _linear_starts(P, L, exps_N, exps_D, data_x2=None, extra=()) -> list[np.ndarray]:
    """Starts for E + A·N^−α + B·exp(−β·x2): per exponent pair, E, A, B by NNLS."""
    x2 = P.x2 if data_x2 is None else data_x2
    out = []
    for al, be in itertools.product(exps_N, exps_D):
        c = _nnls_coefs([np.ones(len(L)), np.exp(-al * P.x1), np.exp(-be * x2)], L)
        if c is not None:
            out.append(np.array([c[0], c[1], al, c[2], be, *extra]))
    return out


_GRID = np.linspace(0.05, 1.5, 16)


def _chinchilla_starts(P, L):
    grid = [np.array(p) for p in itertools.product((-1, -0.5, 0, 0.5, 1), (0, 5, 10, 15, 20, 25), (0, 0.5, 1, 1.5),
                                                   (0, 5, 10, 15, 20, 25), (0, 0.5, 1, 1.5))]
    return grid + _linear_starts(P, L, _GRID, _GRID)


def _overtrain_starts(P, L):
    out = []
    for eta in np.linspace(0.02, 0.8, 40):
        c = _nnls_coefs([np.ones(len(L)), np.exp(-2 * eta * P.x1), np.exp(-2 * eta * P.x2)], L)
        if c is not None:
            out.append(np.array([c[0], c[1], c[2], eta]))
    return out


_KAPLAN_GRID = list(itertools.product(np.arange(10.0, 61.0, 5.0), np.arange(10.0, 61.0, 5.0),
                                      (0.03, 0.07, 0.15, 0.3, 0.6), (0.03, 0.07, 0.15, 0.3, 0.6)))


def _kaplan_starts(P, L):
    return [np.array(p) for p in _KAPLAN_GRID]


def _kaplan_e_starts(P, L):
    e0 = np.log(np.min(L)) + np.log([0.3, 0.6, 0.85])
    return [np.array([e, *p]) for e in e0 for p in _KAPLAN_GRID[::3]]


def _data_exp_starts(P, L):
    out = []
    for al, be, g in itertools.product(_GRID[::2], _GRID[::2], (-0.1, -0.03, 0.0, 0.03, 0.1)):
        c = _nnls_coefs([np.ones(len(L)), np.exp(-al * P.x1), np.exp(-(be + g * (P.x1 - P.ref)) * P.x2)], L)
        if c is not None:
            out.append(np.array([c[0], c[1], al, c[2], be, g]))
    return out


def _repeated_starts(P, L):
    out = []
    for lr in np.log([0.5, 2.0, 5.0, 15.0, 50.0, 300.0]):
        out += _linear_starts(P, L, _GRID[::2], _GRID[::2], effective_log_tokens(P.x2, P.epochs, lr), (lr,))
    return out


# ------------------------------------------------------------------------------------------ the catalogue
@dataclass(frozen=True)
class Form:
    key: str
    name: str  # with its source
    formula: str
    names: tuple[str, ...]  # θ's entries
    bounds: tuple[tuple[float, float], ...]
    log_pred: Callable  # (θ rows (m, p), Points) → log L̂ (m, n)
    starts: Callable  # (Points, loss) → candidate θs
    params: Callable  # θ → the law's readable parameters
    needs_repeats: bool = False

    @property
    def n_params(self) -> int:
        return len(self.names)


def _chinchilla_params(t):
    e, a, al, b, be = t
    return {"E": np.exp(e), "A": np.exp(a), "alpha": al, "B": np.exp(b), "beta": be}


def _overtrain_params(t):
    e, a, b, eta = t  # A = a·6^−η, B = b·6^−η (C = 6ND, M = D/N)
    return {"E": np.exp(e), "a": np.exp(a + eta * np.log(6)), "b": np.exp(b + eta * np.log(6)), "eta": eta}


def _kaplan_params(t):
    lnc, ldc, an, ad = t
    return {"N_c": np.exp(lnc), "D_c": np.exp(ldc), "alpha_N": an, "alpha_D": ad}


def _kaplan_e_params(t):
    return {"E": np.exp(t[0]), **_kaplan_params(t[1:])}


def _data_exp_params(t):
    e, a, al, b, be, g = t
    return {"E": np.exp(e), "A": np.exp(a), "alpha": al, "B": np.exp(b), "beta": be, "gamma": g}


def _repeated_params(t):
    return {**_chinchilla_params(t[:5]), "R_star": np.exp(t[5])}


FORMS: dict[str, Form] = {f.key: f for f in (
    Form("chinchilla", "Chinchilla (Hoffmann et al. 2022)", "E + A/N^α + B/D^β", ("e", "a", "alpha", "b", "beta"),
         (_E, _LOG, _EXP, _LOG, _EXP), _chinchilla, _chinchilla_starts, _chinchilla_params),
    Form("overtrain", "over-training (Gadre et al. 2024)", "E + (a·M^η + b·M^−η)·C^−η, C = 6ND, M = D/N",
         ("e", "a", "b", "eta"), (_E, _LOG, _LOG, (1e-3, 1.5)), _overtrain, _overtrain_starts, _overtrain_params),
    Form("kaplan", "Kaplan's joint law (Kaplan et al. 2020)", "[(N_c/N)^(α_N/α_D) + D_c/D]^α_D",
         ("ln_N_c", "ln_D_c", "alpha_N", "alpha_D"), ((0.0, 80.0), (0.0, 80.0), (1e-3, 2.0), (1e-3, 2.0)),
         _kaplan, _kaplan_starts, _kaplan_params),
    Form("kaplan_e", "Kaplan's joint law with irreducible loss (Henighan et al. 2020)",
         "E + [(N_c/N)^(α_N/α_D) + D_c/D]^α_D", ("e", "ln_N_c", "ln_D_c", "alpha_N", "alpha_D"),
         (_E, (0.0, 80.0), (0.0, 80.0), (1e-3, 2.0), (1e-3, 2.0)), _kaplan_e, _kaplan_e_starts, _kaplan_e_params),
    Form("data_exp", "size-dependent data exponent (after Farseer, Li et al. 2025)",
         "E + A/N^α + B/D^(β + γ·ln(N/N_ref))", ("e", "a", "alpha", "b", "beta", "gamma"),
         (_E, _LOG, _EXP, _LOG, _EXP, (-0.5, 0.5)), _data_exp, _data_exp_starts, _data_exp_params),
    Form("repeated", "data-constrained (Muennighoff et al. 2023)", "E + A/N^α + B/D'^β, D' = U + U·R*·(1 − e^(−R/R*))",
         ("e", "a", "alpha", "b", "beta", "ln_R_star"), (_E, _LOG, _EXP, _LOG, _EXP, (np.log(1e-2), np.log(1e4))),
         _repeated, _repeated_starts, _repeated_params, needs_repeats=True),
)}


# ------------------------------------------------------------------------------------------------ fitting
@dataclass
class FormFit:
    form: Form
    theta: np.ndarray
    objective: float
    ref: float  # N_ref's log (data_exp): predictions must use the fitted runs' own
    converged: bool
    message: str
    at_bound: list[str] = field(default_factory=list)  # θ entries at a bound, and "E (negligible)"

    def predict(self, N, D, epochs=None) -> np.ndarray:
        return np.exp(self.form.log_pred(self.theta[None, :], Points.of(N, D, epochs, self.ref))[0])

    def params(self) -> dict[str, float]:
        out = {k: float(v) for k, v in self.form.params(self.theta).items()}
        if self.form.key == "data_exp":
            out["N_ref"] = float(np.exp(self.ref))
        return out


class FormFitter:
    """One form on one set of runs: `fit(w, warm)` with run weights w (bootstrap counts), from the best-scoring of
    its starts (scored on the full data once; a resample rescores the best KEEP by one product) and `warm`."""

    KEEP = 64

    def __init__(self, form: Form, N, D, loss, epochs=None, delta: float = DELTA):
        self.form, self.delta = form, delta
        self.P = Points.of(N, D, epochs)
        self.y = np.log(np.asarray(loss, float))
        lo, hi = np.array([b[0] for b in form.bounds]), np.array([b[1] for b in form.bounds])
        self.lo, self.hi = lo, hi
        p = form.n_params
        self._steps = np.vstack([np.zeros(p), np.eye(p), -np.eye(p)])  # θ, then θ ± h along each axis
        cands = np.clip(np.array(form.starts(self.P, np.exp(self.y)), float), lo, hi)
        terms = np.vstack([self._terms(c) for c in np.array_split(cands, max(1, len(cands) // 256))])
        score = np.nan_to_num(terms.sum(axis=1), nan=np.inf)
        keep = np.argsort(score)[: self.KEEP]
        self.cands, self.cand_terms = cands[keep], np.nan_to_num(terms[keep], nan=1e30, posinf=1e30)

    def _terms(self, thetas):
        with np.errstate(all="ignore"):
            return huber(self.form.log_pred(thetas, self.P) - self.y, self.delta)

    def _value_and_grad(self, theta, w):
        p = len(theta)
        h = 1e-6 * np.maximum(1.0, np.abs(theta))
        v = huber(self.form.log_pred(theta + self._steps * h, self.P) - self.y, self.delta) @ w
        if not np.isfinite(v[0]):
            return 1e30, np.zeros(p)
        g = (v[1:p + 1] - v[p + 1:]) / (2 * h)
        g[~np.isfinite(g)] = 0.0
        return float(v[0]), g

    def fit(self, w=None, n_starts: int = 4, warm=None) -> FormFit:
        """The lowest objective of L-BFGS-B from the n_starts best-scoring starts (under w) and warm, if given.

        With warm and n_starts=0 (a bootstrap refit) the warm start is refined, and then the best-scoring start too
        if it already scores better than that result: a resample can leave the full fit's basin at little cost.
        """
        w = np.ones(len(self.y)) if w is None else np.asarray(w, float)
        scores = self.cand_terms @ w
        order = np.argsort(scores)
        starts = [self.cands[i] for i in order[:n_starts]]
        if warm is not None:
            starts.insert(0, np.clip(np.asarray(warm, float), self.lo, self.hi))
        options = _LBFGS if warm is None or n_starts else _LBFGS_REFIT
        best = None
        with np.errstate(all="ignore"):  # an absurd trial θ gives inf or NaN: the objective says 1e30
            for s in starts:
                best = self._better(best, s, w, options)
            if warm is not None and n_starts == 0 and scores[order[0]] < best.fun:
                best = self._better(best, self.cands[order[0]], w, options)
        ok = bool(np.isfinite(best.fun) and best.fun < 1e29)
        at_bound = [n for n, t, lo, hi in zip(self.form.names, best.x, self.lo, self.hi)
                    if min(t - lo, hi - t) < 1e-6 * max(1.0, abs(hi - lo))]
        if self.form.params(best.x).get("E", np.inf) < 1e-3 * np.exp(self.y.min()):
            at_bound.append("E (negligible)")  # no irreducible loss the data can see: as good as at its bound
        return FormFit(self.form, np.asarray(best.x, float), float(best.fun), self.P.ref, ok,
                       str(getattr(best, "message", "")), at_bound)

    def _better(self, best, start, w, options):
        res = minimize(self._value_and_grad, start, args=(w,), jac=True, method="L-BFGS-B", bounds=self.form.bounds,
                       options=options)
        return res if best is None or res.fun < best.fun else best

    def residuals(self, fit: FormFit) -> np.ndarray:
        """log L − log L̂ of every fitted run."""
        return self.y - self.form.log_pred(fit.theta[None, :], self.P)[0]


def compute_optimal(fit: FormFit, C: float, flops_per_token: float = 6.0) -> tuple[float, float]:
    """The form's N*, D* on C = flops_per_token·N·D at fresh data (one epoch): a grid in log N, then a bounded
    search around its best (NaN, NaN where the form has no minimum inside the grid: a degenerate law)."""
    lc = np.log(C / flops_per_token)
    xs = np.linspace(lc / 2 - 14, lc / 2 + 14, 1401)

    def loss(x):
        x = np.atleast_1d(x)
        with np.errstate(all="ignore"):
            return fit.form.log_pred(fit.theta[None, :], Points(x, lc - x, np.ones(len(x)), fit.ref))[0]

    v = loss(xs)
    if not np.isfinite(v).any():
        return float("nan"), float("nan")
    i = int(np.nanargmin(v))
    if i in (0, len(xs) - 1):
        return float("nan"), float("nan")
    res = minimize_scalar(lambda x: float(loss(x)[0]), bounds=(xs[i - 1], xs[i + 1]), method="bounded",
                          options={"xatol": 1e-9})
    n = float(np.exp(res.x))
    return n, float(C / (flops_per_token * n))
