"""The PNG plots of `sweep analyze`: isoFLOP curves with fitted minima, the L(N, D) fit against the data,
compute-optimal N*(C) and D*(C) from Approaches 1-3, and loss against tokens and FLOPs with the lower envelope.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .laws import optimal_nd, optimal_nd_flops, size_clusters  # noqa: E402
from .lse import law_loss  # noqa: E402
from .report import sci  # noqa: E402

PLOT_STYLE = {"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
              "axes.spines.right": False, "font.size": 9}


def _tidy_log_axis(ax, axis="x"):
    """Minor tick labels crowd a log axis that spans more than a decade: keep only the decades then."""
    a = ax.xaxis if axis == "x" else ax.yaxis
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    if hi / lo > 10:
        a.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _budget_colors(budgets):
    logs = np.log10(budgets)
    span = max(logs.max() - logs.min(), 1e-9)
    return {b: plt.cm.viridis(0.85 * (lg - logs.min()) / span) for b, lg in zip(budgets, logs)}


def plot_isoflop(ds, fits):
    a2 = fits["approach2"]
    r = ds.runs[np.isfinite(ds.runs["budget"])]
    if r.empty or "budgets" not in a2:
        return None
    colors = _budget_colors(np.unique(r["budget"]))
    fitted = {row["C"]: row for row in a2["budgets"]}
    fig, ax = plt.subplots(figsize=(7, 4.6))
    for c, g in r.groupby("budget"):
        ax.scatter(g["N"], g["loss"], color=colors[c], s=28, zorder=3, label=f"C = {sci(c)} FLOPs")
        row = fitted.get(c)
        if row is None:
            continue
        x = np.linspace(np.log10(g["N"].min()) - 0.15, np.log10(g["N"].max()) + 0.15, 200)
        ax.plot(10**x, np.polyval(row["coef_log10N"], x), color=colors[c], lw=1.5)
        ci = (row.get("ci") or {}).get("N_opt")
        xerr = None if not ci else [[row["N_opt"] - ci[0]], [ci[1] - row["N_opt"]]]
        ax.errorbar(row["N_opt"], row["L_opt"], xerr=xerr, fmt="*", ms=13, color=colors[c], mec="black",
                    mew=0.7, capsize=3, zorder=4)
    ax.set_xscale("log")
    ax.set_xlim(r["N"].min() / 1.6, r["N"].max() * 1.6)  # a wild interval must not squash the curves
    _tidy_log_axis(ax)
    ax.set(xlabel=f"parameters N ({ds.params})", ylabel="final validation loss (nats/token)",
           title="IsoFLOP curves (Approach 2): ★ fitted minimum, bar = 95% CI")
    if len(colors) <= 8:
        ax.legend(fontsize=8, frameon=False)
    else:  # many budgets: a colour bar reads better than a long legend
        logs = np.log10(list(colors))
        top = logs.min() + (logs.max() - logs.min()) / 0.85  # the curves use viridis up to 0.85
        sm = matplotlib.cm.ScalarMappable(norm=matplotlib.colors.Normalize(logs.min(), top), cmap="viridis")
        fig.colorbar(sm, ax=ax, label="log10 FLOP budget")
    fig.tight_layout()
    return fig


def plot_fit_nd(ds, fits):
    p = fits["approach3"]
    N, D, L = (ds.runs[k].to_numpy() for k in ("N", "D", "loss"))
    pred = law_loss(p, N, D)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.4))
    sc = a.scatter(L, pred, c=np.log10(N), cmap="plasma", s=18)
    lo, hi = min(L.min(), pred.min()), max(L.max(), pred.max())
    grid = np.linspace(lo, hi, 10)
    a.plot(grid, grid, color="black", lw=1)
    a.fill_between(grid, grid * 0.98, grid * 1.02, color="grey", alpha=0.15, label="±2%")
    a.set(xlabel="observed loss", ylabel="predicted loss (Approach 3)",
          title=f"L(N, D) fit vs data: median |error| {np.median(np.abs(pred / L - 1)) * 100:.2f}%")
    a.legend(frameon=False)
    fig.colorbar(sc, ax=a, label="log10 N")
    norm = matplotlib.colors.Normalize(np.log10(D.min()), np.log10(D.max()))
    b.scatter(N, L, c=np.log10(D), cmap="viridis", norm=norm, s=18, zorder=3)
    n_grid = np.logspace(np.log10(N.min()) - 0.2, np.log10(N.max()) + 0.2, 200)
    for d in np.quantile(D, [0.02, 0.25, 0.5, 0.75, 0.98]):
        b.plot(n_grid, law_loss(p, n_grid, d), color=plt.cm.viridis(norm(np.log10(d))), lw=1.3)
    b.set_xscale("log")
    _tidy_log_axis(b)
    b.set(xlabel=f"parameters N ({ds.params})", ylabel="loss",
          title="loss vs N, coloured by tokens D; lines: the law at fixed D")
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=b, label="log10 D (tokens)")
    fig.tight_layout()
    return fig


def plot_compute_optimal(ds, fits):
    a1, a2, p3 = fits["approach1"], fits["approach2"], fits["approach3"]
    C_data = ds.runs["C"].to_numpy()
    c_grid = np.logspace(np.log10(C_data.min()) - 0.3, np.log10(max(r["C"] for r in fits["recipe"])), 100)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    own = not fits["flops_per_token_fit"]["is_6N"]
    degenerate = bool(p3["at_bound"] or p3["negligible"])
    if own:  # the law's optimum under the data's own FLOPs/token, so it shares the x axis with the data
        fpt = fits["flops_per_token_fit"]
        opt = np.array([optimal_nd_flops(p3, c, fpt["exponent"], fpt["coefficient"]) for c in c_grid]).T
    else:
        opt = np.array(optimal_nd(p3, c_grid))
    for ax, idx, name in ((axes[0], 0, "N"), (axes[1], 1, "D")):
        key = f"{name}_opt"
        ax.axvspan(C_data.min(), C_data.max(), color="grey", alpha=0.08, label="FLOPs of the data")
        if degenerate:  # its optimum would be meaningless, and would stretch the axis by decades
            ax.plot([], [], " ", label="Approach 3: degenerate fit, not drawn")
        else:
            ax.plot(c_grid, opt[idx], color="C3", lw=1.8,
                    label="Approach 3 (parametric" + (", data's FLOPs/token)" if own else ", C = 6ND)"))
        if "envelope" in a1 and a1["envelope"]:
            env = a1["envelope"]
            ax.scatter([r["C"] for r in env], [r[key] for r in env], marker="x", color="C0", s=22,
                       label="Approach 1 envelope")
            if "a" in a1:
                k, e = (a1["k_N"], a1["a"]) if name == "N" else (a1["k_D"], a1["b"])
                ax.plot(c_grid, k * c_grid**e, color="C0", ls="--", lw=1.2, label=f"Approach 1 fit: ∝ C^{e:.3f}")
        if a2.get("budgets"):
            rows = a2["budgets"]
            y = np.array([r[key] for r in rows])
            cis = [(r.get("ci") or {}).get(key) for r in rows]
            err = np.array([[v - c[0], c[1] - v] if c else [0, 0] for v, c in zip(y, cis)]).T
            ax.errorbar([r["C"] for r in rows], y, yerr=err, fmt="o", color="C2", mec="black", capsize=3,
                        zorder=4, label="Approach 2 minima (95% CI)")
            if "a" in a2 and 0 < a2["a"] < 1:  # else no allocation at all (budgets too close): not drawn
                k, e = (a2["k_N"], a2["a"]) if name == "N" else (a2["k_D"], a2["b"])
                ax.plot(c_grid, k * c_grid**e, color="C2", lw=1.2, label=f"Approach 2 fit: ∝ C^{e:.3f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set(xlabel="training FLOPs C", ylabel=f"compute-optimal {'parameters N*' if name == 'N' else 'tokens D*'}",
               title=f"{name}*(C)")
        ax.legend(fontsize=7.5, frameon=False)
    fig.tight_layout()
    return fig


def plot_loss_curves(ds, fits):
    """With eval curves: loss vs tokens per run, and loss vs FLOPs with Approach 1's envelope; else the latter only."""
    pts, runs = ds.points, ds.runs
    logn = np.log10(runs["N"].to_numpy())
    norm = matplotlib.colors.Normalize(logn.min(), logn.max() + 1e-9)
    sizes = size_clusters(runs["N"].to_numpy())
    legend = sizes.max() + 1 <= 8  # a legend of sizes when it stays short, a colour bar otherwise
    fig, axes = plt.subplots(1, 2 if ds.has_curves else 1, figsize=(11 if ds.has_curves else 6.5, 4.4), squeeze=False)
    axes = axes[0]
    color = plt.cm.plasma(0.9 * norm(logn))  # per run; all runs drawn at once (a large CSV has thousands)
    order = np.lexsort((np.arange(len(runs)), runs["N"].to_numpy()))  # smallest size first, as the legend reads
    run = pts["run"].to_numpy()
    if ds.has_curves:
        idx = np.argsort(run, kind="stable")
        parts = dict(zip(run[idx[np.r_[0, np.flatnonzero(np.diff(run[idx])) + 1]]],
                         np.split(idx, np.flatnonzero(np.diff(run[idx])) + 1)))
        drawn = [i for i in order if i in parts]
        for ax, x, alpha in ((axes[0], "D", 0.85), (axes[1], "C", 0.6)):
            lines = [np.column_stack([pts[x].to_numpy()[parts[i]], pts["loss"].to_numpy()[parts[i]]]) for i in drawn]
            ax.add_collection(matplotlib.collections.LineCollection(lines, colors=color[drawn], lw=1, alpha=alpha))
            ax.autoscale_view()
    else:
        by_size = np.argsort(order)[run]  # each point drawn in its run's place in `order`
        p = np.argsort(by_size, kind="stable")
        axes[0].scatter(pts["C"].to_numpy()[p], pts["loss"].to_numpy()[p], color=color[run[p]], s=14)
    if legend:  # one entry per size, coloured as its first run
        first = np.sort(np.unique(sizes[order], return_index=True)[1])
        for i in order[first]:
            axes[0].plot([], [], color=color[i], **({"lw": 1} if ds.has_curves else {"marker": "o", "ls": ""}),
                         label=f"N = {sci(runs['N'].iloc[i])}")
    env = fits["approach1"].get("envelope") or []
    if env:
        axes[-1].plot([r["C"] for r in env], [r["L"] for r in env], color="black", lw=1.8, marker="o", ms=3,
                      label="lower envelope (Approach 1)")
    if ds.has_curves:
        axes[0].set(xscale="log", xlabel="tokens seen", ylabel="validation loss", title="loss vs tokens, per run")
    axes[-1].set(xscale="log", xlabel="training FLOPs", ylabel="validation loss",
                 title="loss vs FLOPs" + (", all eval points" if ds.has_curves else ", final loss per run"))
    for ax in axes:
        ax.legend(fontsize=7.5, frameon=False)
        _tidy_log_axis(ax)
    if not legend:
        fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap="plasma"), ax=axes[-1], label="log10 N")
    lo, med = pts["loss"].min(), pts["loss"].median()
    for ax in axes:  # early eval losses (≈ ln vocab at step 0) would squash everything else
        ax.set_ylim(lo - 0.03 * abs(lo), min(pts["loss"].max(), med + 2.5 * (med - lo)) + 0.03 * abs(lo))
    fig.tight_layout()
    return fig


def make_plots(ds, fits, out: Path, formats: tuple[str, ...] = ("png",)) -> dict[str, Path]:
    """Each plot the data allow, saved as PNG (what report.md and wandb show) and in every other format asked for;
    returns {name: its PNG}."""
    formats = ("png", *(f for f in formats if f != "png"))
    made = {}
    with plt.rc_context(PLOT_STYLE), np.errstate(all="ignore"):  # a degenerate fit's inf is simply not drawn
        for name, fn in (("isoflop", plot_isoflop), ("fit_nd", plot_fit_nd),
                         ("compute_optimal", plot_compute_optimal), ("loss_curves", plot_loss_curves)):
            fig = fn(ds, fits)
            if fig is None:
                continue
            for fmt in formats:
                fig.savefig(out / f"{name}.{fmt}")
            plt.close(fig)
            made[name] = out / f"{name}.{formats[0]}"
    return made
