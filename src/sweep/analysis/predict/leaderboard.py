"""Which law to believe (fits.json's `leaderboard`): every form of forms.py fitted on each split's smaller runs
(protocol.py), each held-out run predicted with a 95% prediction interval, the forms ranked by held-out error, and
the ranking called resolved only when the runner-up is worse beyond the bootstrap's noise: both laws refitted to
the same resampled runs and scored on the same resample of the held-out runs (`_margin`).

The interval: the fitted runs are resampled (the same resamples for every law), each resample refitted from the
full fit and from the best-scoring start under its own weights (so a resample can leave the full fit's basin), and
each prediction carries a residual of that resample's own fit, drawn at random: the law's uncertainty and the
run-to-run scatter; then it is widened by the factor that made the same intervals cover 95% one step inside the
split (holdout.inner_step, holdout.interval_scale). Score: per fold the mean |relative error| of its held-out runs,
averaged over folds (a law that cannot be fitted in a fold is not scored, and says why).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..inputs.sizes import size_clusters
from ..laws.holdout import LEVEL, inner_step, interval_scale, widen
from ..laws.lse import single_threaded_blas
from ..result.leaderboard import Fold, LawOptimum, LawPrediction, LawScore, Leaderboard
from .forms import FORMS, Form, FormFitter, compute_optimal
from .protocol import Split, expression_split, rolling_splits

MIN_SIZES = 3
# Resamples per law and split (and half as many for the calibration step inside it): every law is fitted on every
# split twice over, so the bootstrap's full count would multiply the analysis time; 100 keeps 95% percentiles usable.
# Large inputs (aggregated bins) get fewer, so that points × resamples stays near WORK_BUDGET.
MAX_RESAMPLES, WORK_BUDGET = 100, 25_000
INTERVAL = ("95% bootstrap prediction interval: the fitted runs resampled, each resample refitted from the full fit "
            "and from its own best-scoring start, each prediction with a residual of its resample drawn (the law's "
            "uncertainty and the run-to-run scatter); then widened in log space by the factor that made the same "
            "intervals cover 95% one step inside the split (its fitted runs' largest sizes predicted from the rest)")


class _Runs:
    def __init__(self, runs: pd.DataFrame):
        self.names = runs["run_name"].astype(str).to_numpy()
        self.N, self.D, self.L = (runs[k].to_numpy(float) for k in ("N", "D", "loss"))
        ep = runs["epochs"].to_numpy(float) if "epochs" in runs else np.full(len(runs), np.nan)
        self.epochs = np.maximum(np.nan_to_num(ep, nan=1.0), 1.0)
        self.w = runs["weight"].to_numpy(float) if "weight" in runs else np.ones(len(runs))

    def repeats(self) -> bool:
        return bool((self.epochs > 1 + 1e-6).any())


def _too_few(form: Form, r: _Runs, m: np.ndarray) -> str | None:
    n_sizes = len(np.unique(size_clusters(r.N[m])))
    if n_sizes < MIN_SIZES or m.sum() < form.n_params + 2:
        return (f"{int(m.sum())} runs over {n_sizes} sizes to fit; its {form.n_params} parameters need ≥ "
                f"{form.n_params + 2} runs over ≥ {MIN_SIZES} sizes")
    return None


def _fit_predict(form: Form, r: _Runs, fit: np.ndarray, test: np.ndarray, n_boot: int, seed: int):
    """The form fitted on the `fit` runs, the `test` runs (indices) predicted: (predicted, lo, hi, per resample the
    law's predictions) with the 95% prediction interval (NaN without a bootstrap), or a str saying why there is no
    fit. The resamples depend on `seed` alone, so laws fitted with one seed see the same resamples (paired)."""
    if (why := _too_few(form, r, fit)) is not None:
        return why
    fitter = FormFitter(form, r.N[fit], r.D[fit], r.L[fit], r.epochs[fit])
    w = r.w[fit]
    full = fitter.fit(w, n_starts=6)
    if not full.converged:
        return f"the fit did not converge ({full.message})"
    pred = full.predict(r.N[test], r.D[test], r.epochs[test])
    lo = hi = np.full(len(test), np.nan)
    draw_rng, resid_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    n = int(fit.sum())
    laws = np.full((n_boot, len(test)), np.nan)
    noisy = np.full((n_boot, len(test)), np.nan)
    for b in range(n_boot):
        counts = np.bincount(draw_rng.integers(0, n, n), minlength=n).astype(float)
        th = fitter.fit(w * counts, n_starts=0, warm=full.theta)
        if th.converged:
            laws[b] = th.predict(r.N[test], r.D[test], r.epochs[test])
            resid = fitter.residuals(th)[counts > 0]
            noisy[b] = laws[b] * np.exp(resid_rng.choice(resid, size=len(test)))
    if np.isfinite(noisy[:, 0]).sum() >= 10:
        q = 100 * (1 - LEVEL) / 2
        lo, hi = np.nanpercentile(noisy, [q, 100 - q], axis=0)
    return pred, lo, hi, laws


def _calibration(form: Form, r: _Runs, split: Split, n_boot: int, seed: int) -> float | None:
    """The interval scale measured one step inside the split (holdout.inner_step), as the split predicts its
    held-out runs (None: too few sizes left for that step)."""
    step = inner_step(r.N, split.fit, split.test, MIN_SIZES)
    if step is None:
        return None
    inner_fit, inner_test = step
    got = _fit_predict(form, r, inner_fit, inner_test, n_boot, seed)
    if isinstance(got, str):
        return None
    return interval_scale(*got[:3], r.L[inner_test])


def _predict_split(form: Form, r: _Runs, split: Split, n_boot: int, seed: int):
    """The split's held-out runs predicted by the form fitted on its other runs, with intervals calibrated one step
    inside (interval_scale): (rows, scale, the law's per-resample predictions, None) or (None, None, None, why)."""
    test = np.flatnonzero(split.test)
    got = _fit_predict(form, r, split.fit, test, n_boot, seed)
    if isinstance(got, str):
        return None, None, None, f"fold {split.index}: {got}"
    pred, lo, hi, laws = got
    scale = _calibration(form, r, split, max(n_boot // 2, 10), seed + 7) if n_boot else None
    if scale is not None:
        lo, hi = widen(pred, lo, hi, scale)
    rows = []
    for j, i in enumerate(test):
        has = bool(np.isfinite(lo[j]))
        rows.append(LawPrediction(fold=split.index, run_name=str(r.names[i]), N=float(r.N[i]), D=float(r.D[i]),
                                  predicted=float(pred[j]), interval=[float(lo[j]), float(hi[j])] if has else None,
                                  observed=float(r.L[i]), rel_error=float(pred[j] / r.L[i] - 1),
                                  inside=bool(lo[j] <= r.L[i] <= hi[j]) if has else None))
    return rows, scale, laws, None


def _score(rows: list[LawPrediction]) -> float:
    folds = sorted({p.fold for p in rows})
    return float(np.mean([np.mean([abs(p.rel_error) for p in rows if p.fold == f]) for f in folds]))


def _margin(best: dict, other: dict, observed: dict, seed: int) -> list[float] | None:
    """95% interval of score(other) − score(best) over the bootstrap: in each resample both laws refitted to the same
    resampled runs (their per-resample predictions, {fold: (resamples, held-out runs)}) and scored on the same
    resample of each fold's held-out runs. None: no bootstrap, or fewer than 10 resamples both laws could fit."""
    folds = sorted(set(best) & set(other))
    if not folds or not len(best[folds[0]]):
        return None
    rng = np.random.default_rng(seed)
    diffs = np.zeros(len(best[folds[0]]))
    for f in folds:
        obs = observed[f]
        idx = rng.integers(0, len(obs), (len(diffs), len(obs)))
        rows = np.arange(len(diffs))[:, None]
        err = {k: np.abs(d[f][rows, idx] / obs[idx] - 1).mean(axis=1) for k, d in (("a", best), ("b", other))}
        diffs += (err["b"] - err["a"]) / len(folds)
    diffs = diffs[np.isfinite(diffs)]
    if len(diffs) < 10:
        return None
    q = 100 * (1 - LEVEL) / 2
    return [float(v) for v in np.percentile(diffs, [q, 100 - q])]


def _summary(form: Form, rows, errors, full, budgets, scales) -> LawScore:
    err = [abs(p.rel_error) for p in rows]
    inside = [p.inside for p in rows if p.inside is not None]
    optimum = []
    if full is not None:
        for c in budgets:
            n, d = compute_optimal(full, c)
            ok = bool(np.isfinite(n))
            optimum.append(LawOptimum(C=float(c), N_opt=n if ok else None, D_opt=d if ok else None,
                                      tpp=d / n if ok else None))
    return LawScore(key=form.key, name=form.name, formula=form.formula, n_params=form.n_params, rank=None,
                    score=_score(rows) if rows and not errors else None,
                    mean_abs_rel_error=float(np.mean(err)) if err else None,
                    median_abs_rel_error=float(np.median(err)) if err else None,
                    max_abs_rel_error=float(np.max(err)) if err else None,
                    coverage=float(np.mean(inside)) if inside else None, n_predictions=len(rows),
                    params=full.params() if full is not None else None,
                    at_bound=full.at_bound if full is not None else [], optimum=optimum, interval_scales=scales,
                    predictions=rows,
                    error="; ".join(errors) if errors else None)


def leaderboard(runs: pd.DataFrame, holdout: str | None = None, n_boot: int = 200, seed: int = 0,
                budgets=(), forms: tuple[str, ...] | None = None) -> Leaderboard:
    """The leaderboard on the runs: --holdout EXPR's split, else the rolling protocol; each law's optimum at the
    given budgets (FLOPs, C = 6ND). forms: the keys of the forms to score (default: every one that applies)."""
    r = _Runs(runs)
    n_boot = min(n_boot, MAX_RESAMPLES, max(10, WORK_BUDGET // max(len(r.L), 1))) if n_boot > 0 else 0
    protocol = f"--holdout {holdout}" if holdout is not None else "rolling"
    splits = expression_split(holdout, runs) if holdout is not None else rolling_splits(r.N)
    if isinstance(splits, str):
        return Leaderboard(protocol=protocol, interval=INTERVAL, resamples=n_boot, folds=[], laws=[],
                           recommended=None, resolved=None, margin=None, verdict=f"no leaderboard: {splits}",
                           skipped=splits)
    forms = [f for k, f in FORMS.items() if (not f.needs_repeats or r.repeats()) and (forms is None or k in forms)]
    folds = [Fold(index=s.index, held_out=s.held_out, fitted_runs=int(s.fit.sum()), held_out_runs=int(s.test.sum()))
             for s in splits]
    scores, draws = [], {}
    observed = {s.index: r.L[s.test] for s in splits}
    with single_threaded_blas():
        for form in forms:
            rows, errors, scales, draws[form.key] = [], [], [], {}
            for s in splits:
                got, scale, laws, why = _predict_split(form, r, s, n_boot, seed + 100 * s.index)
                rows += got or []
                errors += [why] if why else []
                scales.append(scale)
                if laws is not None:
                    draws[form.key][s.index] = laws
            full = None
            if _too_few(form, r, np.ones(len(r.L), bool)) is None:
                full = FormFitter(form, r.N, r.D, r.L, r.epochs).fit(r.w, n_starts=6)
                full = full if full.converged else None
            scores.append(_summary(form, rows, errors, full, budgets, scales))
    return _rank(protocol, folds, scores, draws, observed, seed, n_boot)


def _rank(protocol: str, folds: list[Fold], scores: list[LawScore], draws: dict, observed: dict,
          seed: int, n_boot: int) -> Leaderboard:
    scored = sorted((s for s in scores if s.score is not None), key=lambda s: s.score)
    for i, s in enumerate(scored):
        s.rank = i + 1
    laws = scored + [s for s in scores if s.score is None]
    out = Leaderboard(protocol=protocol, interval=INTERVAL, resamples=n_boot, folds=folds, laws=laws,
                      recommended=scored[0].key if scored else None, resolved=None, margin=None, verdict="")
    if not scored:
        out.verdict = "no law could be scored: " + "; ".join(f"{s.key}: {s.error}" for s in scores)
        return out
    best = scored[0]
    head = f"{best.name} predicts the held-out runs best (mean |error| {best.score * 100:.2f}%)"
    if len(scored) == 1:
        out.verdict = head + "; it is the only law scored"
        return out
    second = scored[1]
    out.margin = _margin(draws[best.key], draws[second.key], observed, seed)
    gap = f"{second.name} is worse by {(second.score - best.score) * 100:.2f} points"
    if out.margin is None:
        out.verdict = head + f"; {gap}, with no bootstrap to say whether beyond noise (--bootstrap 0)"
        return out
    out.resolved = out.margin[0] > 0
    gap += f" [{out.margin[0] * 100:.2f}, {out.margin[1] * 100:.2f}]"
    out.verdict = head + (f"; resolved: {gap}" if out.resolved else f"; not resolved: {gap}, within noise")
    return out
