"""The plots of `sweep compare`, one per law, each input in its own colour: the L(N, D) fits side by side, the
compute-optimal N*(C) and D*(C) (Approach 3 with its 95% band from the bootstrap's parameter draws, Approaches 2 and 1
as power laws), L(N) with its band, and a forest plot of every exponent with its interval and of the differences.
A plot that no input's fits allow is not drawn.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ...laws.approaches import optimal_nd
from ...inputs.sizes import size_clusters
from ...laws.lse import law_loss
from .base import PLOT_STYLE, draws_band, figure, law, legend, note, param_draws, set_limits, tidy_log_axis

FILES = {"approach3": "compare_fit_nd", "allocation": "compare_optimal", "kaplan": "compare_ln",
         "exponents": "compare_exponents"}


def colour(i: int) -> str:
    return f"C{i % 10}"


def plot_fit_nd(inputs, result):
    """Per input, loss against tokens D for each model size, with Approach 3's L(N, D) at that size."""
    if not any(law(f.fits) for f in inputs):
        return None
    fig, axes = figure(1, len(inputs), figsize=(4.6 * len(inputs), 4.2), sharey=True, squeeze=False)
    for ax, f in zip(axes[0], inputs):
        r, p = f.ds.runs, law(f.fits)
        N, D, L = (r[k].to_numpy(float) for k in ("N", "D", "loss"))
        sizes = size_clusters(N)
        shades = plt.cm.viridis(np.linspace(0, 0.9, sizes.max() + 1))
        d_grid = np.logspace(np.log10(D.min()) - 0.1, np.log10(D.max()) + 0.1, 80)
        for s in range(sizes.max() + 1):
            m = sizes == s
            ax.scatter(D[m], L[m], s=14, color=shades[s], label=f"N ≈ {N[m].mean():.3g}" if sizes.max() < 8 else None)
            if p is not None:
                ax.plot(d_grid, law_loss(p, N[m].mean(), d_grid), color=shades[s], lw=1)
        if p is None:
            note(ax, "Approach 3 not fitted")
        ax.set(xscale="log", xlabel="tokens D", title=f.label)
        tidy_log_axis(ax)
        legend(ax)
    # one shared y axis: set from every input's losses (curves past them never widen it)
    set_limits(axes[0][0], "y", np.concatenate([f.ds.runs["loss"].to_numpy(float) for f in inputs]), log=False)
    axes[0][0].set_ylabel("loss")
    return fig


def plot_optimal(inputs, result):
    """N*(C) and D*(C) per input: Approach 3's optimum with its band, Approach 2 (dashed) and 1 (dotted) power laws."""
    C = np.concatenate([f.ds.runs["C"].to_numpy(float) for f in inputs])
    c_grid = np.logspace(np.log10(C.min()) - 0.3, np.log10(C.max()) + 2, 100)
    fig, axes = figure(1, 2, figsize=(11, 4.4))
    drawn = False
    for ax, idx, name in ((axes[0], 0, "N"), (axes[1], 1, "D")):
        shown = []
        for i, f in enumerate(inputs):
            p3 = law(f.fits)
            if p3 is not None and not f.fits.approach3.degenerate:
                with np.errstate(all="ignore"):
                    opt = optimal_nd(p3, c_grid)[idx]
                ax.plot(c_grid, opt, color=colour(i), lw=1.8, label=f"{f.label}: Approach 3")
                shown.append(opt)
                draws = param_draws(f.fits.approach3.samples)
                if draws:
                    lo, hi = draws_band(lambda q: optimal_nd(q, c_grid)[idx], draws)
                    ax.fill_between(c_grid, lo, hi, color=colour(i), alpha=0.15, lw=0)
                drawn = True
            for number, sec, style in (("2", f.fits.approach2, "--"), ("1", f.fits.approach1, ":")):
                if sec.a is not None:  # with its power laws (k_N, k_D)
                    k, e = (sec.k_N, sec.a.value) if name == "N" else (sec.k_D, sec.b.value)
                    ax.plot(c_grid, k * c_grid**e, color=colour(i), ls=style, lw=1.1,
                            label=f"{f.label}: Approach {number} ∝ C^{e:.3f}")
                    shown.append(k * c_grid**e)
                    drawn = True
        ax.axvspan(C.min(), C.max(), color="grey", alpha=0.08, label="FLOPs of the data")
        ax.set(xscale="log", yscale="log", xlabel="training FLOPs C",
               ylabel=f"compute-optimal {'parameters N*' if name == 'N' else 'tokens D*'}")
        if shown:
            set_limits(ax, "y", np.concatenate([np.ravel(v) for v in shown]))
        set_limits(ax, "x", c_grid, margin=0)
        note(ax, "bands: 95% of Approach 3's bootstrap draws")
        legend(ax)
    if not drawn:
        plt.close(fig)
        return None
    return fig


def plot_ln(inputs, result):
    """L(N) per input over its runs' sizes, with the 95% band of its bootstrap draws."""
    entry = result["laws"]["kaplan"]["inputs"]
    fitted = [(i, f) for i, f in enumerate(inputs) if "missing" not in entry[f.label]]
    if not fitted:
        return None
    fig, ax = figure(figsize=(6.4, 4.4))
    for i, f in fitted:
        got = entry[f.label]
        N = f.ds.runs["N"].to_numpy(float)
        n_grid = np.logspace(np.log10(N.min()), np.log10(N.max()), 80)
        p = {k: got[k]["value"] for k in ("E", "A", "alpha")}
        ax.plot(n_grid, p["E"] + p["A"] / n_grid ** p["alpha"], color=colour(i), lw=1.8,
                label=f"{f.label}: α = {p['alpha']:.3f} ({got['basis']})")
        prefix = f"kaplan/fits/{got['basis']}/"
        rows = np.array([f.draws.get(prefix + k, []) for k in ("E", "A", "alpha")], float).T
        rows = rows[np.isfinite(rows).all(axis=1)] if rows.ndim == 2 else rows
        if len(rows) >= 10:
            lo, hi = draws_band(lambda q: q[0] + q[1] / n_grid ** q[2], list(rows))
            ax.fill_between(n_grid, lo, hi, color=colour(i), alpha=0.15, lw=0)
    ax.set(xscale="log", xlabel="parameters N", ylabel="loss", title="L(N); bands: 95% bootstrap")
    tidy_log_axis(ax)
    legend(ax)
    return fig


def plot_exponents(inputs, result):
    """Forest plot: each exponent per input with its 95% interval; beside it, each difference against the first."""
    rows = [(law, q) for law, entry in result["laws"].items() for q in entry["quantities"]
            if q in ("alpha", "beta", "a", "b") and any("missing" not in v for v in entry["inputs"].values())]
    if not rows:
        return None
    fig, (left, right) = figure(1, 2, figsize=(11, 0.45 * len(rows) + 1.6), sharey=True)
    y = np.arange(len(rows))[::-1]
    step = 0.6 / max(len(inputs), 1)
    for i, f in enumerate(inputs):
        offset = (i - (len(inputs) - 1) / 2) * step
        for yy, (law_name, q) in zip(y, rows):
            v = result["laws"][law_name]["inputs"][f.label].get(q)
            _bar(left, yy + offset, v, colour(i), f.label if yy == y[0] else None)
            d = result["laws"][law_name]["differences"].get(f.label, {}).get(q)
            _bar(right, yy + offset, d, colour(i), f"{f.label} − {inputs[0].label}" if yy == y[0] else None)
    right.axvline(0, color="black", lw=0.8)
    labels = [f"{q} ({law_name})" for law_name, q in rows]
    left.set_yticks(y, labels)
    left.set(xlabel="exponent (95% interval)")
    right.set(xlabel=f"difference from {inputs[0].label} (95% interval)")
    legend(left, loc="best")
    legend(right, loc="best")
    return fig


def _bar(ax, y, v, color, label):
    """One value with its interval as a horizontal bar (none when the value is missing)."""
    if not v or v.get("value") is None or not np.isfinite(v["value"]):
        return
    ci = v.get("ci")
    err = [[v["value"] - ci[0]], [ci[1] - v["value"]]] if ci else None
    ax.errorbar([v["value"]], [y], xerr=err, fmt="o", color=color, capsize=3, ms=4, label=label)


PLOTS = (("approach3", plot_fit_nd), ("allocation", plot_optimal), ("kaplan", plot_ln),
         ("exponents", plot_exponents))


def make_compare_plots(inputs, result: dict, out: Path) -> dict[str, Path]:
    """Each plot the fits allow, as PNG: {law (or "exponents"): its path}."""
    made = {}
    with plt.rc_context(PLOT_STYLE), np.errstate(all="ignore"):
        for key, plot in PLOTS:
            fig = plot(inputs, result)
            if fig is None:
                continue
            try:
                fig.savefig(out / f"{FILES[key]}.png", bbox_inches="tight")
            finally:
                plt.close(fig)
            made[key] = out / f"{FILES[key]}.png"
    return made
