"""The plots of the laws beyond one fit: `leaderboard` (every law's held-out errors per fold), `extrapolation` (fit
small, predict big: observed and
predicted loss of the held-out runs against C, with their intervals) and `overtraining` (the LLaMA view: loss
against tokens per parameter, per size, with Gadre et al.'s law). Each returns None when its section is missing.
"""

from __future__ import annotations

import matplotlib
import numpy as np

from .base import HELD, clipped_errorbar, error_limits, figure, hollow, legend, run_tips, set_limits, \
    tidy_log_axis, tip


def plot_extrapolation(ds, fits):
    """Left: every run's loss against its compute C, the held-out runs highlighted with Approach 3's prediction from
    the rest and its interval; right: the relative error per held-out run, with the interval as a bar."""
    h = fits.holdout_protocol
    rows = h.runs if h else None
    if not rows:
        return None
    r = ds.runs
    names = r["run_name"].astype(str).to_numpy()
    held = np.isin(names, [row.run_name for row in rows])
    C, L = r["C"].to_numpy(float), r["loss"].to_numpy(float)  # C, not N: one size's runs differ in C
    hC = np.array([row.C for row in rows])
    pred = np.array([row.predicted for row in rows])
    obs = np.array([row.observed for row in rows])
    lo, hi = (np.array([(row.interval or [np.nan, np.nan])[i] for row in rows]) for i in (0, 1))
    fig, (a, b) = figure(1, 2, figsize=(11.5, 4.4), gridspec_kw={"width_ratios": [1.6, 1]})
    sc = a.scatter(C[~held], L[~held], color="grey", s=14, zorder=3, label=f"runs fitted ({h.fitted_runs})")
    tip(fig, sc, run_tips(ds, np.flatnonzero(~held)))
    set_limits(a, "x", C)
    set_limits(a, "y", np.r_[L, pred], log=False, margin=0.08)
    tip(fig, hollow(a, C[held], L[held], "held out: observed", **HELD), run_tips(ds, np.flatnonzero(held)))
    clipped_errorbar(a, hC, pred, lo, hi, color="C0", fmt="x", ms=6,
                     label="held out: predicted (bar: 95% prediction interval)")
    a.set_xscale("log")
    tidy_log_axis(a)
    s = h.summary
    a.set(xlabel="training FLOPs C", ylabel="final validation loss",
          title=f"Fit small, predict big ({h.expr}): median |error| {s.median_abs_rel_error * 100:.2f}%")
    legend(a, fontsize=7)
    b.axhline(0, color="black", lw=0.9)
    err, lo_e, hi_e = error_limits(b, hC, pred, lo, hi, obs, min_decades=0.5)
    inside = np.array([bool(row.inside) for row in rows])
    for mask, color, label in ((inside, "C2", "observed inside its interval"),
                               (~inside, "C3", "observed outside its interval")):
        if mask.any():
            clipped_errorbar(b, hC[mask], err[mask], lo_e[mask], hi_e[mask], color=color, fmt="D",
                             mfc="none", label=label)
    b.set_xscale("log")
    tidy_log_axis(b)
    b.set(xlabel="training FLOPs C of the held-out runs", ylabel="(predicted − observed) / observed, %",
          title="error per held-out run")
    legend(b, fontsize=7)
    fig.tight_layout()
    return fig


def plot_overtraining(ds, fits):
    """The LLaMA view: loss against tokens per parameter, one colour per size, with Gadre et al.'s law at each size
    (fitted to every run; a dotted line at M = 20 when the extrapolation check fitted below it)."""
    o = fits.overtraining
    if o is None or o.eta is None:
        return None
    from ...inputs.sizes import size_clusters
    from ...laws.overtrain import M_SPLIT, overtrain_loss

    r = ds.runs
    N, D, L = (r[k].to_numpy(float) for k in ("N", "D", "loss"))
    M = D / N
    labels = size_clusters(N)
    sizes = np.unique(labels)
    if len(sizes) > 12:  # past a dozen colours no one tells them apart: an even spread of sizes
        sizes = sizes[np.unique(np.linspace(0, len(sizes) - 1, 12).round().astype(int))]
    fig, a = figure(figsize=(7.5, 4.8))
    cmap = matplotlib.colormaps["plasma"]
    m_grid = np.logspace(np.log10(M.min()) - 0.1, np.log10(M.max()) + 0.1, 120)
    for i, s in enumerate(sizes):
        m = labels == s
        n = float(np.exp(np.log(N[m]).mean()))
        color = cmap(0.85 * i / max(len(sizes) - 1, 1))
        order = np.argsort(M[m])
        sc = a.scatter(M[m][order], L[m][order], color=color, s=18, zorder=3, label=f"N = {n:.3g}")
        tip(fig, sc, run_tips(ds, np.flatnonzero(m)[order]))
        a.plot(m_grid, overtrain_loss(o.params(), 6 * n * n * m_grid, m_grid), color=color, lw=1, alpha=0.8)
    if o.extrapolation:
        a.axvline(M_SPLIT, color="grey", lw=0.8, ls=":", label=f"M = {M_SPLIT:g} (extrapolation check fits below)")
    a.set_xscale("log")
    tidy_log_axis(a)
    set_limits(a, "y", L, log=False, margin=0.08)
    a.set(xlabel="tokens per parameter M = D/N", ylabel="final validation loss",
          title=f"Loss against tokens/param per size; lines: Gadre et al. (η = {o.eta.value:.3f})")
    legend(a, fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_leaderboard(ds, fits):
    """Which law to believe: per fold, every scored law's relative error on each held-out run against its N, with the
    95% prediction interval as a bar (ranked laws in the legend, the recommended one first)."""
    board = fits.leaderboard
    scored = [s for s in board.laws if s.score is not None] if board else []
    if not scored:
        return None
    folds = [f.index for f in board.folds]
    fig, axes = figure(1, len(folds), figsize=(4.2 * len(folds) + 1.5, 4.2), squeeze=False)
    offsets = np.linspace(-0.04, 0.04, len(scored))  # a few percent apart in log N, so bars do not overlap
    for ax, fold in zip(axes[0], folds):
        for k, (law, dx) in enumerate(zip(scored, offsets)):
            rows = [p for p in law.predictions if p.fold == fold]
            n = np.array([p.N for p in rows]) * np.exp(dx)
            err = np.array([p.rel_error for p in rows]) * 100
            lo = np.array([(p.interval[0] / p.observed - 1) * 100 if p.interval else np.nan for p in rows])
            hi = np.array([(p.interval[1] / p.observed - 1) * 100 if p.interval else np.nan for p in rows])
            label = f"{law.rank}. {law.key}: {law.score * 100:.2f}%" if fold == folds[0] else None
            ax.errorbar(n, err, yerr=[np.where(np.isfinite(lo), err - lo, 0), np.where(np.isfinite(hi), hi - err, 0)],
                        fmt="o" if k == 0 else ".", ms=5 if k == 0 else 4, color=f"C{k}", lw=0.8, capsize=0,
                        label=label, zorder=4 - 0.1 * k)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xscale("log")
        tidy_log_axis(ax)
        held = next(f.held_out for f in board.folds if f.index == fold)
        ax.set(xlabel="N (held-out runs)", ylabel="(predicted − observed) / observed, %",
               title=f"fold {fold}: {held.split(' (')[0]}")
        errs = np.concatenate([[p.rel_error * 100 for p in s.predictions if p.fold == fold] for s in scored])
        span = max(np.abs(errs).max() * 1.6, 0.5)
        ax.set_ylim(-span, span)  # from the errors: a vast interval is cut at the frame, not the scale
    legend(axes[0][0], fontsize=7, title="rank. law: score", title_fontsize=7)
    fig.tight_layout()
    return fig


LAW_PLOTS = (("leaderboard", plot_leaderboard), ("extrapolation", plot_extrapolation),
             ("overtraining", plot_overtraining))
LAW_CAPTIONS = {
    "leaderboard": "Which law to believe: each law's relative error on every held-out run, per fold, with its 95% "
                   "prediction interval as a bar; the legend ranks the laws by score",
    "extrapolation": "Fit small, predict big (--holdout): the held-out runs' observed loss (hollow) and Approach 3's "
                     "prediction from the other runs with its 95% prediction interval; right, the error per run",
    "overtraining": "The LLaMA view: loss against tokens per parameter, one colour per size, with Gadre et al.'s law "
                    "L(C, M) at each size",
}

