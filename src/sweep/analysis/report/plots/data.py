"""The plots of the runs themselves: isoFLOP curves with Approach 2's parabolas and minima, and loss against tokens
and FLOPs per run with Approach 1's lower envelope. Each takes (Dataset, fits) and returns a figure, or None when
the data cannot show it; a fit that is missing or failed is simply not drawn.
"""

from __future__ import annotations

import matplotlib
import numpy as np

from ...inputs.sizes import size_clusters
from .base import budget_colors, clipped_errorbar, figure, hollow, legend, note, note_excluded, run_tips, \
    set_limits, sci, tidy_log_axis, tip

MAX_LEGEND = 8  # more budgets or sizes than this: a colour bar instead of a legend entry each


def plot_isoflop(ds, fits):
    """Loss against N per FLOP budget: the fitted parabolas, their minima (★, bar = 95% CI); runs Approach 2 left
    out (a budget without a parabola, or no budget) hollow."""
    r = ds.runs
    in_budget = np.isfinite(r["budget"].to_numpy(float))
    if not in_budget.any():
        return None
    budgets = np.unique(r["budget"][in_budget])
    colors = budget_colors(budgets)
    fitted = {row.C: row for row in fits.approach2.budgets or []}
    listed = len(budgets) <= MAX_LEGEND
    fig, ax = figure(figsize=(7, 4.6))
    N, L = r["N"].to_numpy(float), r["loss"].to_numpy(float)
    lo, hi = N.min(), N.max()
    n_opt = np.clip([row.N_opt.value for row in fitted.values()], lo / 10, hi * 10)
    ax.set_xlim(min(lo, *n_opt, hi) / 1.6, max(hi, *n_opt, lo) * 1.6)  # wild intervals must not squash the curves
    set_limits(ax, "y", np.r_[L, [row.L_opt.value for row in fitted.values()]], log=False, margin=0.08)
    left_out = False
    for c in budgets:
        idx = np.flatnonzero(r["budget"].to_numpy(float) == c)
        row = fitted.get(c)
        if row is None:
            label = f"C = {sci(c)} FLOPs: no parabola, left out" if listed else None
            tip(fig, hollow(ax, N[idx], L[idx], label, color=colors[c], s=34), run_tips(ds, idx))
            left_out = True
            continue
        sc = ax.scatter(N[idx], L[idx], color=colors[c], s=28, zorder=3,
                        label=f"C = {sci(c)} FLOPs" if listed else None)
        tip(fig, sc, run_tips(ds, idx))
        x = np.linspace(np.log10(N[idx].min()) - 0.15, np.log10(N[idx].max()) + 0.15, 200)
        ax.plot(10**x, np.polyval(row.coef_log10N, x), color=colors[c], lw=1.5)
        ci = row.N_opt.ci or [np.nan, np.nan]
        clipped_errorbar(ax, [row.N_opt.value], [row.L_opt.value], [ci[0]], [ci[1]], axis="x", color=colors[c], fmt="*",
                         ms=13, mec="black", mew=0.7, zorder=4)
    ax.plot([], [], "*", ms=11, color="grey", mec="black", label="fitted minimum (bar: 95% CI)")
    if left_out and not listed:
        hollow(ax, [], [], "budget without a parabola: left out of Approach 2", color="grey")
    if (~in_budget).any():
        idx = np.flatnonzero(~in_budget)
        tip(fig, hollow(ax, N[idx], L[idx], "in no FLOP budget: left out of Approach 2", color="grey", s=20),
            run_tips(ds, idx))
    off = [sci(row.C) for row in fitted.values() if not ax.get_xlim()[0] <= row.N_opt.value <= ax.get_xlim()[1]]
    if off:
        note(ax, f"minimum beyond the axis at C = {', '.join(off)}")
    note_excluded(ax, ds)
    ax.set_xscale("log")
    tidy_log_axis(ax)
    ax.set(xlabel=f"parameters N ({ds.params})", ylabel="final validation loss (nats/token)",
           title="IsoFLOP curves (Approach 2): ★ fitted minimum, bar = 95% CI")
    legend(ax, fontsize=7.5)
    if not listed:  # many budgets: a colour bar reads better than a long legend
        logs = np.log10(list(colors))
        top = logs.min() + (logs.max() - logs.min()) / 0.85  # the curves use viridis up to 0.85
        sm = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(logs.min(), top), cmap="viridis")
        fig.colorbar(sm, ax=ax, label="log10 FLOP budget")
    fig.tight_layout()
    return fig


def _run_parts(run: np.ndarray) -> dict[int, np.ndarray]:
    """Indices of each run's eval points, by run."""
    idx = np.argsort(run, kind="stable")
    starts = np.flatnonzero(np.diff(run[idx])) + 1
    return dict(zip(run[idx[np.r_[0, starts]]].tolist(), np.split(idx, starts)))


def plot_loss_curves(ds, fits):
    """With eval curves: loss vs tokens per run, and loss vs FLOPs with Approach 1's envelope; else the latter only.
    Both panels carry the size legend (or colour bar)."""
    pts, runs = ds.points, ds.runs
    logn = np.log10(runs["N"].to_numpy())
    norm = matplotlib.colors.Normalize(logn.min(), logn.max() + 1e-9)
    sizes = size_clusters(runs["N"].to_numpy())
    listed = sizes.max() + 1 <= MAX_LEGEND  # a legend of sizes when it stays short, a colour bar otherwise
    fig, axes = figure(1, 2 if ds.has_curves else 1, figsize=(11 if ds.has_curves else 6.5, 4.4), squeeze=False)
    axes = axes[0]
    color = matplotlib.pyplot.cm.plasma(0.9 * norm(logn))  # per run; all drawn at once (a large CSV has thousands)
    order = np.lexsort((np.arange(len(runs)), runs["N"].to_numpy()))  # smallest size first, as the legend reads
    run = pts["run"].to_numpy()
    if ds.has_curves:
        parts = _run_parts(run)
        drawn = [i for i in order if i in parts]
        for ax, x, alpha in ((axes[0], "D", 0.85), (axes[1], "C", 0.6)):
            lines = [np.column_stack([pts[x].to_numpy()[parts[i]], pts["loss"].to_numpy()[parts[i]]]) for i in drawn]
            lc = matplotlib.collections.LineCollection(lines, colors=color[drawn], lw=1, alpha=alpha)
            ax.add_collection(lc)
            tip(fig, lc, run_tips(ds, drawn))
            ax.autoscale_view()
    else:
        by_size = np.argsort(order)[run]  # each point drawn in its run's place in `order`
        p = np.argsort(by_size, kind="stable")
        sc = axes[0].scatter(pts["C"].to_numpy()[p], pts["loss"].to_numpy()[p], color=color[run[p]], s=14)
        tip(fig, sc, run_tips(ds, run[p]))
    n_sizes = sizes.max() + 1
    if listed:  # one entry per size, coloured as its first run, in every panel
        first = np.sort(np.unique(sizes[order], return_index=True)[1])
        for ax in axes:
            for i in order[first]:
                ax.plot([], [], color=color[i], **({"lw": 1} if ds.has_curves else {"marker": "o", "ls": ""}),
                        label=f"N = {sci(runs['N'].iloc[i])}")
    env = fits.approach1.envelope
    if env:
        axes[-1].plot([r.C for r in env], [r.L for r in env], color="black", lw=1.8, marker="o", ms=3,
                      label="lower envelope (Approach 1)")
    note_excluded(axes[-1], ds)
    if ds.has_curves:
        axes[0].set(xscale="log", xlabel="tokens seen", ylabel="validation loss", title="loss vs tokens, per run")
    axes[-1].set(xscale="log", xlabel="training FLOPs", ylabel="validation loss",
                 title="loss vs FLOPs" + (", all eval points" if ds.has_curves else ", final loss per run"))
    for ax in axes:
        legend(ax, fontsize=7, ncol=2 if listed and n_sizes > 4 else 1)
        tidy_log_axis(ax)
    if not listed:
        for ax in axes:
            fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap="plasma"), ax=ax, label="log10 N")
    lo, med = pts["loss"].min(), pts["loss"].median()
    for ax in axes:  # early eval losses (≈ ln vocab at step 0) would squash everything else
        ax.set_ylim(lo - 0.03 * abs(lo), min(pts["loss"].max(), med + 2.5 * (med - lo)) + 0.03 * abs(lo))
    fig.tight_layout()
    return fig
