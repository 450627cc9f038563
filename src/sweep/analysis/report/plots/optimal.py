"""The compute-optimal plots: N*(C) and D*(C) from Approaches 1-3 with their 95% bands, and the compute frontier
(every run's eval points, Approach 1's lower envelope, Approach 2's minima and Approach 3's L at its optimal N, D
for each C). Each returns None when no fit it needs is there.
"""

from __future__ import annotations

import numpy as np

from ...laws.approaches import optimal_nd, optimal_nd_flops
from ...laws.lse import law_loss
from ...result.fits import FlopsPerToken
from .base import NO_BAND, clipped_errorbar, draws_band, figure, law, legend, note, note_excluded, own_flops, \
    param_draws, recipe_band, run_tips, set_limits, tidy_log_axis, tip


def optimum(p: dict, fpt: FlopsPerToken | None, c_grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The law's optimal N, D over c_grid: under the data's own FLOPs/token if they did not count 6ND (so it shares
    the x axis with the data), else C = 6ND."""
    if fpt:
        return np.array([optimal_nd_flops(p, c, fpt.exponent, fpt.coefficient) for c in c_grid]).T
    return np.array(optimal_nd(p, c_grid))


def plot_compute_optimal(ds, fits):
    """N*(C) and D*(C): Approach 3's law with the 95% band of the recipe's bootstrap intervals, Approach 2's minima
    (95% CI, cut at the axis) and power law with its band, Approach 1's envelope and power law."""
    p3, a1, a2 = law(fits), fits.approach1, fits.approach2
    rows2 = a2.budgets or []
    if p3 is None and not rows2 and not a1.envelope:
        return None
    C_data = ds.runs["C"].to_numpy(float)
    draw3 = p3 is not None and not fits.approach3.degenerate
    top = max([r.C for r in fits.recipe if draw3] + [C_data.max() * 2])  # the recipe's reach
    c_grid = np.logspace(np.log10(C_data.min()) - 0.3, np.log10(top), 100)
    fpt = own_flops(fits)
    with np.errstate(all="ignore"):
        opt = optimum(p3, fpt, c_grid) if draw3 else None
    fig, axes = figure(1, 2, figsize=(11, 4.4))
    for ax, idx, name in ((axes[0], 0, "N"), (axes[1], 1, "D")):
        key = f"{name}_opt"
        ax.axvspan(C_data.min(), C_data.max(), color="grey", alpha=0.08, label="FLOPs of the data")
        shown = []  # values that set the y axis: lines and points, never intervals
        if p3 is not None and not draw3:
            note(ax, "Approach 3: degenerate fit, not drawn")
        if draw3:
            ax.plot(c_grid, opt[idx], color="C3", lw=1.8,
                    label="Approach 3 (parametric" + (", data's FLOPs/token)" if fpt else ", C = 6ND)"))
            shown.append(opt[idx])
            band = recipe_band(fits, key + ("_flops" if fpt else ""), c_grid)
            if band:
                ax.fill_between(c_grid, band[0], band[1], color="C3", alpha=0.15, lw=0,
                                label="95% bootstrap band (recipe budgets, joined in log-log)")
        env = a1.envelope
        if env:
            ax.scatter([r.C for r in env], [getattr(r, key) for r in env], marker="x", color="C0", s=22,
                       label="Approach 1 envelope")
            shown.append([getattr(r, key) for r in env])
            if a1.a is not None:
                k, e = (a1.k_N, a1.a.value) if name == "N" else (a1.k_D, a1.b.value)
                ax.plot(c_grid, k * c_grid**e, color="C0", ls="--", lw=1.2, label=f"Approach 1 fit: ∝ C^{e:.3f}")
        if a2.a is not None and 0 < a2.a.value < 1:  # else no allocation at all (budgets too close): not drawn
            k, e = (a2.k_N, a2.a.value) if name == "N" else (a2.k_D, a2.b.value)
            ax.plot(c_grid, k * c_grid**e, color="C2", lw=1.2, label=f"Approach 2 fit: ∝ C^{e:.3f}")
            shown.append(k * c_grid**e)
            band = recipe_band(fits, key + "_a2", c_grid)
            if band:
                ax.fill_between(c_grid, band[0], band[1], color="C2", alpha=0.12, lw=0,
                                label="95% bootstrap band (recipe budgets)")
        shown += [[getattr(r, key).value for r in rows2]]
        values = np.concatenate([np.ravel(np.asarray(v, float)) for v in shown])
        ax.set_xscale("log")
        set_limits(ax, "x", c_grid, margin=0)
        if not (np.isfinite(values) & (values > 0)).any():  # nothing fitted to draw (e.g. a lone envelope point)
            note(ax, "no fitted optimum to draw")
            ax.set(xlabel="training FLOPs C", title=f"{name}*(C)")
            continue
        ax.set_yscale("log")
        set_limits(ax, "y", values)
        if rows2:
            cis = [getattr(r, key).ci or [np.nan, np.nan] for r in rows2]
            clipped_errorbar(ax, [r.C for r in rows2], [getattr(r, key).value for r in rows2], [c[0] for c in cis],
                             [c[1] for c in cis], color="C2", mec="black", zorder=4, label="Approach 2 minima (95% CI)")
        if draw3 and not recipe_band(fits, key, c_grid):
            note(ax, "no band: no bootstrap intervals in fits.json")
        ax.set(xlabel="training FLOPs C", ylabel=f"compute-optimal {'parameters N*' if name == 'N' else 'tokens D*'}",
               title=f"{name}*(C)")
        legend(ax, fontsize=7)
    fig.tight_layout()
    return fig


def plot_frontier(ds, fits):
    """Loss against FLOPs: every run's eval points (faint), Approach 1's lower envelope, Approach 2's minima (95% CI),
    and Approach 3's frontier L(N*(C), D*(C)), with its band when fits keeps the bootstrap's parameter draws."""
    p3, env, rows2 = law(fits), fits.approach1.envelope, fits.approach2.budgets or []
    if p3 is None and not env and not rows2:
        return None
    pts = ds.points
    C, L = pts["C"].to_numpy(float), pts["loss"].to_numpy(float)
    fpt = own_flops(fits)
    fig, ax = figure(figsize=(7.5, 4.8))
    sc = ax.scatter(C, L, s=5, color="grey", alpha=0.35, lw=0, label="eval points of every run"
                    if ds.has_curves else "final point of every run")
    tip(fig, sc, run_tips(ds, pts["run"].to_numpy()))
    c_grid = np.logspace(np.log10(C.min()), np.log10(C.max()) + 1, 120)  # the data's FLOPs and a decade beyond
    shown = [L]
    if p3 is not None and fits.approach3.degenerate:
        note(ax, "Approach 3: degenerate fit, no frontier drawn")
    elif p3 is not None:
        with np.errstate(all="ignore"):
            n, d = optimum(p3, fpt, c_grid)
            frontier = law_loss(p3, n, d)
        ax.plot(c_grid, frontier, color="C3", lw=1.8, label="Approach 3: L at the compute-optimal N, D")
        draws = param_draws(fits.approach3.samples)
        if draws:
            lo, hi = draws_band(lambda q: law_loss(q, *optimum(q, fpt, c_grid)), draws)
            ax.fill_between(c_grid, lo, hi, color="C3", alpha=0.15, lw=0,
                            label="95% band: over the bootstrap's parameter draws")
        else:
            note(ax, NO_BAND)
        shown.append(frontier)
    if env:
        ax.plot([r.C for r in env], [r.L for r in env], color="black", lw=1.6, marker="o", ms=3,
                label="lower envelope (Approach 1)")
    ax.axvline(C.max(), color="grey", lw=0.8, ls=":", label="largest FLOPs in the data")
    ax.set_xscale("log")
    set_limits(ax, "x", c_grid, margin=0.02)
    lo_l, med = np.nanmin(np.concatenate(shown)), np.median(L)  # the frontier may run below every run
    ax.set_ylim(lo_l - 0.03 * abs(lo_l), min(L.max(), med + 2.5 * (med - L.min())) + 0.03 * abs(lo_l))
    if rows2:
        cis = [r.L_opt.ci or [np.nan, np.nan] for r in rows2]
        clipped_errorbar(ax, [r.C for r in rows2], [r.L_opt.value for r in rows2], [c[0] for c in cis],
                         [c[1] for c in cis], color="C2", mec="black", ms=5, zorder=4,
                         label="Approach 2 minima (95% CI)")
    tidy_log_axis(ax)
    note_excluded(ax, ds)
    ax.set(xlabel="training FLOPs C", ylabel="validation loss", title="Compute frontier: loss vs FLOPs")
    legend(ax, fontsize=7.5)
    fig.tight_layout()
    return fig
