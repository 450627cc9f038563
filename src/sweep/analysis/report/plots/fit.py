"""The plots of Approach 3's law L(N, D) = E + A/N^α + B/D^β against the runs: the fit (predicted vs observed,
loss vs N with the law at fixed D), its residuals against N, D and C, and the held-out-largest-size check (the fit
made without the largest size, its prediction for those runs, and what they observed). Each returns None when
Approach 3 is missing or failed (a grid too small to fit).
"""

from __future__ import annotations

import matplotlib
import numpy as np

from ...laws.lse import LseFitter, approach3_params, law_loss, single_threaded_blas
from ...result.fits import Laws
from .base import HELD, NO_BAND, clipped_errorbar, data_limits, draws_band, error_limits, figure, hollow, \
    holdout_mask, law, legend, note, note_excluded, param_draws, run_tips, set_limits, tidy_log_axis, tip

_REFITS: dict = {}  # the last held-out refit, by its inputs


def plot_fit_nd(ds, fits):
    """Predicted vs observed loss, and loss vs N coloured by D with the law at fixed D (95% band if fits keeps the
    bootstrap's parameter draws)."""
    p = law(fits)
    if p is None:
        return None
    N, D, L = (ds.runs[k].to_numpy(float) for k in ("N", "D", "loss"))
    pred = law_loss(p, N, D)
    fig, (a, b) = figure(1, 2, figsize=(11, 4.4))
    sc = a.scatter(L, pred, c=np.log10(N), cmap="plasma", s=18, label="runs (all in the fit)")
    tip(fig, sc, run_tips(ds, range(len(N))))
    lim = data_limits(np.r_[L, pred], log=False)
    grid = np.linspace(*lim, 10)
    a.plot(grid, grid, color="black", lw=1, label="observed = predicted")
    a.fill_between(grid, grid * 0.98, grid * 1.02, color="grey", alpha=0.15, label="±2%")
    a.set(xlim=lim, ylim=lim, xlabel="observed loss", ylabel="predicted loss (Approach 3)",
          title=f"L(N, D) fit vs data: median |error| {np.median(np.abs(pred / L - 1)) * 100:.2f}%")
    note_excluded(a, ds)
    legend(a, fontsize=7.5)
    fig.colorbar(sc, ax=a, label="log10 N")
    norm = matplotlib.colors.Normalize(np.log10(D.min()), np.log10(D.max()) + 1e-9)
    sc = b.scatter(N, L, c=np.log10(D), cmap="viridis", norm=norm, s=18, zorder=3, label="runs")
    tip(fig, sc, run_tips(ds, range(len(N))))
    n_grid = np.logspace(np.log10(N.min()) - 0.2, np.log10(N.max()) + 0.2, 200)
    draws = param_draws(fits.approach3.samples)
    for i, d in enumerate(np.quantile(D, [0.02, 0.25, 0.5, 0.75, 0.98])):
        color = matplotlib.pyplot.cm.viridis(norm(np.log10(d)))
        b.plot(n_grid, law_loss(p, n_grid, d), color=color, lw=1.3, label=None if i else "the law at fixed D")
        if draws:
            lo, hi = draws_band(lambda q: law_loss(q, n_grid, d), draws)
            b.fill_between(n_grid, lo, hi, color=color, alpha=0.15, lw=0,
                           label=None if i else "95% band: law over the bootstrap's parameter draws")
    if not draws:
        note(b, NO_BAND)
    set_limits(b, "x", n_grid, margin=0)
    set_limits(b, "y", L, log=False, margin=0.08)
    b.set_xscale("log")
    tidy_log_axis(b)
    b.set(xlabel=f"parameters N ({ds.params})", ylabel="loss", title="loss vs N, coloured by tokens D")
    legend(b, fontsize=7.5, loc="upper right")
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=b, label="log10 D (tokens)")
    fig.tight_layout()
    return fig


def holdout_law(ds, fits: Laws, test: np.ndarray) -> dict | None:
    """The Approach-3 law fitted without the held-out runs (the result keeps only its errors): refitted here as
    estimate.py fits it (same runs, weights and refinement), and kept only if it reproduces the result's mean
    held-out error."""
    h = fits.holdout.approach3
    r = ds.runs
    N, D, L = (r[k].to_numpy(float) for k in ("N", "D", "loss"))
    w = (~test) * (r["weight"].to_numpy(float) if "weight" in r else np.ones(len(r)))
    key = tuple(a.tobytes() for a in (N, D, L, w))
    if key not in _REFITS:  # two plots show it: fitted once
        _REFITS.clear()
        try:
            with single_threaded_blas():
                _REFITS[key] = approach3_params(LseFitter(np.column_stack([N, D]), L).fit(w, n_refine=8).theta)
        except (ValueError, ArithmeticError, np.linalg.LinAlgError):
            return None
    p = _REFITS[key]
    rel = (law_loss(p, N[test], D[test]) - L[test]) / L[test]
    return p if abs(rel.mean() - h.mean_rel_error) < 1e-4 else None


def _held_out(ds, fits):
    """(test mask, the held-out fit's law) or None."""
    test = holdout_mask(ds, fits) if law(fits) is not None else None
    h = fits.holdout.approach3
    error = None if h is None else h.mean_rel_error
    if test is None or not isinstance(error, (int, float)) or not np.isfinite(error):
        return None
    hp = holdout_law(ds, fits, test)
    return (test, hp) if hp is not None else None


def plot_residuals(ds, fits):
    """Residuals ln(observed / predicted) of the Approach 3 fit against N, D and C, coloured by FLOP budget (or size);
    the held-out runs' residuals under the fit made without them hollow."""
    p = law(fits)
    if p is None:
        return None
    r = ds.runs
    L = r["loss"].to_numpy(float)
    res = np.log(L / law_loss(p, r["N"].to_numpy(float), r["D"].to_numpy(float)))
    budget = r["budget"].to_numpy(float)
    by_budget = np.isfinite(budget).any()
    value = np.log10(budget if by_budget else r["N"].to_numpy(float))
    norm = matplotlib.colors.Normalize(np.nanmin(value), np.nanmax(value) + 1e-9)
    held = _held_out(ds, fits)
    res_h = None
    if held:
        test, hp = held
        res_h = np.log(L[test] / law_loss(hp, r["N"].to_numpy(float)[test], r["D"].to_numpy(float)[test]))
    fig, axes = figure(1, 3, figsize=(13, 4.2), sharey=True)
    for ax, key, name in zip(axes, ("N", "D", "C"), (f"parameters N ({ds.params})", "tokens D", "training FLOPs C")):
        x = r[key].to_numpy(float)
        ok = np.isfinite(value)
        sc = ax.scatter(x[ok], res[ok], c=value[ok], cmap="viridis", norm=norm, s=18, zorder=3,
                        label="runs: residual of the full fit")
        tip(fig, sc, [f"{t}; residual {v:+.4f}" for t, v in zip(run_tips(ds, np.flatnonzero(ok)), res[ok])])
        if (~ok).any():
            sc = ax.scatter(x[~ok], res[~ok], color="grey", s=18, zorder=3, label="runs in no FLOP budget")
            tip(fig, sc, run_tips(ds, np.flatnonzero(~ok)))
        ax.axhline(0, color="black", lw=0.9, label="zero: observed = predicted")
        if res_h is not None:
            tip(fig, hollow(ax, x[test], res_h, "held out (largest size): residual of the fit without it", **HELD),
                run_tips(ds, np.flatnonzero(test)))
        ax.set_xscale("log")
        tidy_log_axis(ax)
        ax.set(xlabel=name, title=f"residual vs {key}")
    lim = data_limits(np.r_[res, [] if res_h is None else res_h], log=False, margin=0.1) or (-1e-3, 1e-3)
    m = max(abs(lim[0]), abs(lim[1]))
    axes[0].set_ylim(-m, m)
    axes[0].set_ylabel("residual ln(observed / predicted loss)")
    note_excluded(axes[0], ds)
    legend(axes[0], fontsize=7)
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=axes[-1],
                 label="log10 FLOP budget" if by_budget else "log10 N")
    fig.suptitle(f"Approach 3 residuals: median |ln(obs/pred)| = {np.median(np.abs(res)):.4f}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_holdout(ds, fits):
    """The fit made without the largest size: its law out to that size, its prediction for the held-out runs with an
    interval, and what they observed; right, the prediction's relative error per held-out run."""
    held = _held_out(ds, fits)
    if held is None:
        return None
    test, hp = held
    h = fits.holdout.approach3
    r = ds.runs
    N, D, L = (r[k].to_numpy(float) for k in ("N", "D", "loss"))
    pred = law_loss(hp, N[test], D[test])
    # the held-out fit keeps no parameter draws: the run-to-run scatter it leaves on its own runs
    sigma = np.std(np.log(L[~test] / law_loss(hp, N[~test], D[~test])))
    lo, hi = pred * np.exp(-2 * sigma), pred * np.exp(2 * sigma)
    what = "±2σ of its residuals on its runs: noise only"
    fig, (a, b) = figure(1, 2, figsize=(11.5, 4.4), gridspec_kw={"width_ratios": [1.6, 1]})
    norm = matplotlib.colors.Normalize(np.log10(D.min()), np.log10(D.max()) + 1e-9)
    sc = a.scatter(N[~test], L[~test], c=np.log10(D[~test]), cmap="viridis", norm=norm, s=18, zorder=3,
                   label="runs fitted (all but the largest size)")
    tip(fig, sc, run_tips(ds, np.flatnonzero(~test)))
    n_grid = np.logspace(np.log10(N.min()) - 0.1, np.log10(N.max()) + 0.15, 200)
    d_lines = np.unique(D[test]) if len(np.unique(D[test])) <= 5 else np.quantile(D[test], [0, 0.25, 0.5, 0.75, 1])
    for i, d in enumerate(d_lines):
        a.plot(n_grid, law_loss(hp, n_grid, d), color=matplotlib.pyplot.cm.viridis(norm(np.log10(d))), lw=1.1,
               ls="--", label=None if i else "fit without the largest size (at held-out D)")
    a.axvline(N[~test].max(), color="grey", lw=0.8, ls=":", label="largest size fitted")
    set_limits(a, "x", n_grid, margin=0)
    set_limits(a, "y", np.r_[L, pred], log=False, margin=0.08)
    tip(fig, hollow(a, N[test], L[test], "held out: observed", **HELD), run_tips(ds, np.flatnonzero(test)))
    clipped_errorbar(a, N[test], pred, lo, hi, color="C3", fmt="x", ms=8, label=f"predicted, bar: {what}")
    a.set_xscale("log")
    tidy_log_axis(a)
    a.set(xlabel=f"parameters N ({ds.params})", ylabel="final validation loss",
          title=f"Extrapolation to the held-out size: mean error {h.mean_rel_error * 100:+.2f}%")
    note_excluded(a, ds)
    legend(a, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    b.axhline(0, color="black", lw=0.9, label="zero: prediction = observation")
    b.axhline(h.mean_rel_error * 100, color="C3", lw=0.9, ls="--", label="mean error")
    err, lo_e, hi_e = error_limits(b, D[test], pred, lo, hi, L[test], min_decades=1)
    clipped_errorbar(b, D[test], err, lo_e, hi_e, color="C3", fmt="D", mfc="none",
                     label="held-out runs (bar: the interval)")
    b.set_xscale("log")
    tidy_log_axis(b)
    b.set(xlabel="tokens D of the held-out runs", ylabel="(predicted − observed) / observed, %",
          title="prediction error per held-out run")
    legend(b, fontsize=7)
    fig.tight_layout()
    return fig
