"""Outputs of `sweep analyze`: PNG plots, fits.json, report.md, and the wandb analysis run."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import fit  # noqa: E402

PLOT_STYLE = {"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
              "axes.spines.right": False, "font.size": 9}


def _ci_text(value, ci, fmt="{:.4g}") -> str:
    if value is None:
        return "—"
    return fmt.format(value) + (f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else "")


def _get(section: dict, key: str, fmt="{:.4g}") -> str:
    return _ci_text(section.get(key), (section.get("ci") or {}).get(key), fmt)


def _sci(x: float) -> str:
    return f"{x:.3g}"


# ------------------------------------------------------------------------------------------------ plots
def _tidy_log_axis(ax, axis="x"):
    """Minor tick labels crowd a log axis that spans more than a decade: keep only the decades then."""
    a = ax.xaxis if axis == "x" else ax.yaxis
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    if hi / lo > 10:
        a.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _budget_colors(budgets):
    logs = np.log10(budgets)
    span = max(logs.max() - logs.min(), 1e-9)
    return {b: plt.cm.viridis(0.85 * (l - logs.min()) / span) for b, l in zip(budgets, logs)}


def plot_isoflop(ds, fits, path: Path) -> bool:
    a2 = fits["approach2"]
    r = ds.runs[np.isfinite(ds.runs["budget"])]
    if r.empty or "budgets" not in a2:
        return False
    colors = _budget_colors(np.unique(r["budget"]))
    fitted = {row["C"]: row for row in a2["budgets"]}
    fig, ax = plt.subplots(figsize=(7, 4.6))
    for c, g in r.groupby("budget"):
        ax.scatter(g["N"], g["loss"], color=colors[c], s=28, zorder=3, label=f"C = {_sci(c)} FLOPs")
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
    fig.savefig(path)
    plt.close(fig)
    return True


def plot_fit_nd(ds, fits, path: Path) -> bool:
    p = fits["approach3"]
    N, D, L = (ds.runs[k].to_numpy() for k in ("N", "D", "loss"))
    pred = fit.law_loss(p, N, D)
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
        b.plot(n_grid, fit.law_loss(p, n_grid, d), color=plt.cm.viridis(norm(np.log10(d))), lw=1.3)
    b.set_xscale("log")
    _tidy_log_axis(b)
    b.set(xlabel=f"parameters N ({ds.params})", ylabel="loss",
          title="loss vs N, coloured by tokens D; lines: the law at fixed D")
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=b, label="log10 D (tokens)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def plot_compute_optimal(ds, fits, path: Path) -> bool:
    a1, a2, p3 = fits["approach1"], fits["approach2"], fits["approach3"]
    C_data = ds.runs["C"].to_numpy()
    c_grid = np.logspace(np.log10(C_data.min()) - 0.3, np.log10(max(r["C"] for r in fits["recipe"])), 100)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    own = not fits["flops_per_token_fit"]["is_6N"]
    degenerate = bool(p3["at_bound"] or p3["negligible"])
    if own:  # the law's optimum under the data's own FLOPs/token, so it shares the x axis with the data
        fpt = fits["flops_per_token_fit"]
        opt = np.array([fit.optimal_nd_flops(p3, c, fpt["exponent"], fpt["coefficient"]) for c in c_grid]).T
    else:
        opt = np.array(fit.optimal_nd(p3, c_grid))
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
            if "a" in a2:
                k, e = (a2["k_N"], a2["a"]) if name == "N" else (a2["k_D"], a2["b"])
                ax.plot(c_grid, k * c_grid**e, color="C2", lw=1.2, label=f"Approach 2 fit: ∝ C^{e:.3f}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set(xlabel="training FLOPs C", ylabel=f"compute-optimal {'parameters N*' if name == 'N' else 'tokens D*'}",
               title=f"{name}*(C)")
        ax.legend(fontsize=7.5, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def plot_loss_curves(ds, fits, path: Path) -> bool:
    """With eval curves: loss vs tokens per run, and loss vs FLOPs with Approach 1's envelope; else the latter only."""
    pts, runs = ds.points, ds.runs
    logn = np.log10(runs["N"].to_numpy())
    norm = matplotlib.colors.Normalize(logn.min(), logn.max() + 1e-9)
    sizes = fit.size_clusters(runs["N"].to_numpy())
    legend = sizes.max() + 1 <= 8  # a legend of sizes when it stays short, a colour bar otherwise
    fig, axes = plt.subplots(1, 2 if ds.has_curves else 1, figsize=(11 if ds.has_curves else 6.5, 4.4), squeeze=False)
    axes = axes[0]
    seen = set()
    for i, g in sorted(pts.groupby("run"), key=lambda ig: (runs["N"].iloc[ig[0]], ig[0])):  # legend by size
        color = plt.cm.plasma(0.9 * norm(logn[i]))
        label = None if (sizes[i] in seen or not legend) else f"N = {_sci(runs['N'].iloc[i])}"
        seen.add(sizes[i])
        if ds.has_curves:
            axes[0].plot(g["D"], g["loss"], color=color, lw=1, alpha=0.85, label=label)
            axes[1].plot(g["C"], g["loss"], color=color, lw=1, alpha=0.6)
        else:
            axes[0].scatter(g["C"], g["loss"], color=color, s=14, label=label)
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
    fig.savefig(path)
    plt.close(fig)
    return True


def make_plots(ds, fits, out: Path) -> dict[str, Path]:
    made = {}
    with plt.rc_context(PLOT_STYLE):
        for name, fn in (("isoflop", plot_isoflop), ("fit_nd", plot_fit_nd),
                         ("compute_optimal", plot_compute_optimal), ("loss_curves", plot_loss_curves)):
            path = out / f"{name}.png"
            if fn(ds, fits, path):
                made[name] = path
    return made


# -------------------------------------------------------------------------------------------- fits.json
def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    return obj


def summary_values(fits: dict) -> dict[str, float]:
    """Flat key values for wandb's summary and quick reading."""
    out = {f"approach3/{k}": fits["approach3"][k] for k in ("E", "A", "B", "alpha", "beta")}
    out.update({f"allocation/{k}": fits["allocation"][k] for k in ("a", "b", "G")})
    for sec in ("approach2", "approach1"):
        out.update({f"{sec}/{k}": fits[sec][k] for k in ("a", "b") if k in fits[sec]})
    for sec, ci in (("approach3", fits["approach3"].get("ci") or {}), ("approach2", fits["approach2"].get("ci") or {})):
        for k, (lo, hi) in ci.items():
            out[f"{sec}/{k}_ci_low"], out[f"{sec}/{k}_ci_high"] = lo, hi
    return out


# ------------------------------------------------------------------------------------------- warnings
def diagnostics(res: dict, n_sizes: int, n_runs: int, cis: dict, n_boot: int) -> list[str]:
    """The warnings a reader must see: degenerate fits, thin data, resamples that could not be refitted."""
    w = [f"approach2: {m}" for m in res["approach2"].get("warnings", [])]
    w += [f"approach1: {m}" for m in res["approach1"].get("warnings", [])]
    names = {"e": "E", "a0": "A", "alpha0": "alpha", "a1": "B", "alpha1": "beta"}
    terms = {"e": "E", "a0": "A/N^alpha", "a1": "B/D^beta"}
    for b in res["approach3"]["at_bound"]:
        w.append(f"approach3: {names.get(b, b)} sits at its bound: the data do not pin it down (degenerate fit)")
    for t in res["approach3"]["negligible"]:
        w.append(f"approach3: the term {terms[t]} is below 0.1% of the loss at every run: the data do not "
                 f"identify it (degenerate fit)")
    for label, fits, term in (("L(N)", res["kaplan"]["fits"], "A/N^alpha"),
                              ("L(D)", res["loss_vs_tokens"], "B/D^beta")):
        for f in fits:
            w += [f"{label} {f['key']}: {b} at its bound (degenerate fit)" for b in f["at_bound"]]
            w += [f"{label} {f['key']}: the term {term if t == 'a0' else 'E'} is negligible (degenerate fit)"
                  for t in f["negligible"]]
    if n_sizes < 4:
        w.append(f"only {n_sizes} model sizes: no held-out-size check, and Approach 3 is weakly constrained")
    if n_runs < 15:
        w.append(f"only {n_runs} runs for a 5-parameter law: treat Approach 3 as indicative")
    st = res["approach3"]["starts"]
    if st["reached_best"] < st["refined"] // 2:
        w.append(f"approach3: only {st['reached_best']} of {st['refined']} refined starts reached the best optimum")
    bad = sorted(k for k, c in cis.items() if c["n_valid"] < 0.9 * n_boot)
    if bad:
        w.append(f"bootstrap: {len(bad)} quantities could not be refitted on over 10% of resamples "
                 f"(e.g. {bad[0]}); their intervals are from the resamples that fit")
    return w


# ------------------------------------------------------------------------------------------------ wandb
def log_wandb(ds, fits, plots: dict, out: Path, mode: str) -> dict:
    try:
        import wandb

        run = wandb.init(project=ds.logger.get("project") or "sweep", entity=ds.logger.get("entity"),
                         group=ds.sweep_name, job_type="analysis", name=f"analysis-{ds.sweep_name}", dir=str(out),
                         mode=mode, config={"params": ds.params, "source": ds.source, "bootstrap": fits["bootstrap"]},
                         settings=wandb.Settings(console="off", x_disable_stats=True))
        run.summary.update(summary_values(fits))
        table = wandb.Table(dataframe=ds.runs[["run_name", "N", "D", "C", "loss", "budget"]].astype(
            {"N": float, "D": float, "C": float, "loss": float, "budget": float}))
        run.log({"runs": table, **{f"plots/{k}": wandb.Image(str(v)) for k, v in plots.items()}})
        info = {"mode": mode, "id": run.id, "dir": str(Path(run.dir).parent)}
        run.finish()
        return info
    except Exception as err:  # the fits and report stand without wandb: say so, don't lose them
        print(f"sweep analyze: wandb logging failed ({type(err).__name__}: {err}); results are on disk",
              file=sys.stderr)
        return {"mode": mode, "error": f"{type(err).__name__}: {err}"}


# ----------------------------------------------------------------------------------------------- report
def _recipe_table(fits) -> list[str]:
    own = not fits["flops_per_token_fit"]["is_6N"]
    has2 = "a" in fits["approach2"]
    head = "| C (FLOPs) | N* (A3) | D* (A3) | tokens/param (A3) |"
    head += " tokens/param (A3, data's FLOPs/token) |" if own else ""
    head += " N* (A2) | D* (A2) | tokens/param (A2) |" if has2 else ""
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in fits["recipe"]:
        row = (f"| {_sci(r['C'])} | {_get(r, 'N_opt', '{:.3g}')} | {_get(r, 'D_opt', '{:.3g}')} | "
               f"{_get(r, 'tpp', '{:.1f}')} |")
        row += f" {_get(r, 'tpp_flops', '{:.1f}')} |" if own else ""
        if has2:
            row += (f" {_get(r, 'N_opt_a2', '{:.3g}')} | {_get(r, 'D_opt_a2', '{:.3g}')} | "
                    f"{_get(r, 'tpp_a2', '{:.1f}')} |")
        lines.append(row)
    return lines


def write_report(ds, fits, plots: dict, out: Path) -> Path:
    a3, al, a2, a1, ho = fits["approach3"], fits["allocation"], fits["approach2"], fits["approach1"], fits["holdout"]
    bs = fits["bootstrap"]
    L = [f"# Scaling-law analysis: {ds.sweep_name}", "",
         f"Source: `{ds.source}` — {fits['runs']['used']} runs used, {len(ds.excluded)} excluded. "
         f"Parameters N are counted as **{ds.params}**; tokens D are training tokens; C is training FLOPs "
         f"({'6·N·D' if fits['flops_per_token_fit']['is_6N'] else 'as each run counted them'}). " +
         (f"Intervals are 95% bootstrap percentiles over {bs['n']} resamples of runs ({bs['method']})."
          if bs["n"] else "No bootstrap was run (--bootstrap 0), so no intervals."), "",
         "## The laws", "",
         "**Approach 3** (parametric, Huber δ=1e-3 on log loss, L-BFGS-B): L(N, D) = E + A/N^α + B/D^β with",
         "", "| E | A | B | α | β |", "|---|---|---|---|---|",
         "| " + " | ".join(_get(a3, k) for k in ("E", "A", "B", "alpha", "beta")) + " |", "",
         f"Compute-optimal allocation implied (C = 6ND): N* = G·(C/6)^a, D* = G⁻¹·(C/6)^b with "
         f"a = β/(α+β) = {_get(al, 'a', '{:.3f}')}, b = α/(α+β) = {_get(al, 'b', '{:.3f}')}, "
         f"G = {_get(al, 'G', '{:.3g}')}.", ""]
    if "a" in a2:
        L.append(f"**Approach 2** (isoFLOP parabolas, {len(a2['budgets'])} budgets): N* ∝ C^a with "
                 f"a = {_get(a2, 'a', '{:.3f}')}; D* ∝ C^b with b = {_get(a2, 'b', '{:.3f}')}.")
    else:
        L.append(f"**Approach 2**: not fitted — {a2.get('skipped') or '; '.join(a2.get('warnings', []))}.")
    if "a" in a1:
        L.append(f"\n**Approach 1** (lower envelope of loss vs FLOPs, {a1['source']}): N* ∝ C^a with "
                 f"a = {_get(a1, 'a', '{:.3f}')}; D* ∝ C^b with b = {_get(a1, 'b', '{:.3f}')}.")
    else:
        L.append(f"\n**Approach 1**: not fitted — {'; '.join(a1.get('warnings', []))}.")
    L += ["", "## Compute-optimal recipe", "",
          "Tokens per parameter at a few budgets (the sweep's range, then extrapolated 10×–1000× beyond it):", "",
          *_recipe_table(fits), ""]
    L += ["## Extrapolation check (largest size held out)", ""]
    for name, h in (("Approach 3", ho.get("approach3")), ("L(N)", ho.get("kaplan"))):
        if h:
            L.append(f"- {name}: fitted without N ≈ {_sci(h['held_out_N'])}, its {h['n_test']} run(s) predicted with "
                     f"mean relative loss error {h['mean_rel_error'] * 100:+.2f}% (max |error| "
                     f"{h['max_abs_rel_error'] * 100:.2f}%).")
        else:
            L.append(f"- {name}: not run (it needs a fit over at least 4 distinct model sizes).")
    L += ["", "## Plots", ""]
    captions = {"isoflop": "IsoFLOP curves with fitted parabolas and minima (Approach 2)",
                "fit_nd": "Approach 3: predicted vs observed, and loss vs N coloured by D with the law's curves",
                "compute_optimal": "Compute-optimal N*(C) and D*(C): Approaches 1, 2, 3",
                "loss_curves": "Loss vs tokens per run, and loss vs FLOPs with the lower envelope (Approach 1)"
                if ds.has_curves else "Final loss vs FLOPs per run, with the lower envelope (Approach 1)"}
    for k, p in plots.items():
        L += [f"![{captions[k]}]({p.name})", f"*{captions[k]}*", ""]
    L += ["## Details", "", "### Approach 3 fit", "",
          f"Objective (sum of Huber losses) {a3['objective']:.6g} over {a3['n_points']} runs; "
          f"{a3['starts']['refined']} starts refined out of {a3['starts']['candidates']} scored, "
          f"{a3['starts']['reached_best']} reached the best optimum (objective range "
          f"{a3['starts']['objective_range'][0]:.6g}–{a3['starts']['objective_range'][1]:.6g}).", ""]
    if a2.get("budgets"):
        L += ["### Approach 2 budgets", "", "| C | runs | N* | D* | tokens/param | loss at N* | note |",
              "|---|---|---|---|---|---|---|"]
        L += [f"| {_sci(r['C'])} | {r['n_runs']} | {_get(r, 'N_opt', '{:.3g}')} | {_get(r, 'D_opt', '{:.3g}')} | "
              f"{_get(r, 'tpp', '{:.1f}')} | {r['L_opt']:.4f} | {r['edge'] or ''} |" for r in a2["budgets"]]
        L.append("")
    if fits["kaplan"].get("skipped"):
        L += ["### L(N) = E + A/N^α", "", f"Not fitted: {fits['kaplan']['skipped']}.", ""]
    if fits["kaplan"]["fits"]:
        L += ["### L(N) = E + A/N^α", "", "| basis | sizes | E | A | α |", "|---|---|---|---|---|"]
        L += [f"| {f['key']} | {f['n_sizes']} | {_get(f, 'E')} | {_get(f, 'A')} | {_get(f, 'alpha')} |"
              for f in fits["kaplan"]["fits"]]
        L.append("")
    if fits["loss_vs_tokens"]:
        rows = fits["loss_vs_tokens"]
        L += ["### L(D) = E + B/D^β per size (descriptive, no intervals)", "", "| N | points | E | B | β | from |",
              "|---|---|---|---|---|---|"]
        L += [f"| {_sci(f['N'])} | {f['n_points']} | {f['E']:.4g} | {f['B']:.4g} | {f['beta']:.3f} | {f['basis']} |"
              for f in rows[:12]]
        L += ([f"| … {len(rows) - 12} more in fits.json | | | | | |"] if len(rows) > 12 else []) + [""]
    L += ["## Warnings", ""] + ([f"- {w}" for w in fits["warnings"]] or ["- none"]) + [""]
    L += ["## Excluded runs", ""] + ([f"- `{e['run_name']}`: {e['reason']}" for e in ds.excluded] or ["- none"])
    if fits.get("wandb", {}).get("id"):
        L += ["", f"wandb analysis run `{fits['wandb']['id']}` ({fits['wandb']['mode']}), files in "
                  f"`{fits['wandb']['dir']}`."]
    path = out / "report.md"
    path.write_text("\n".join(L) + "\n")
    return path


def write(ds, fits: dict, out: Path, wandb_mode: str = "off") -> Path:
    """Plots, then the wandb run (so fits.json can name it), then fits.json and report.md. Returns report.md."""
    plots = make_plots(ds, fits, out)
    fits["plots"] = {k: p.name for k, p in plots.items()}
    wb = wandb_mode in ("offline", "online")
    fits["wandb"] = log_wandb(ds, fits, plots, out, wandb_mode) if wb else {"mode": "off"}
    (out / "fits.json").write_text(json.dumps(_jsonable(fits), indent=2) + "\n")
    return write_report(ds, fits, plots, out)


def summary_text(fits: dict, report_path: Path) -> str:
    """The few lines `sweep analyze` prints: the key laws with their intervals, warnings, where the report is."""
    a3, a2 = fits["approach3"], fits["approach2"]
    lines = [f"runs used: {fits['runs']['used']}, excluded: {len(fits['runs']['excluded'])} "
             f"(parameters: {fits['params']})",
             "Approach 3  L = E + A/N^alpha + B/D^beta:  " + ", ".join(f"{k}={_get(a3, k)}"
                                                                    for k in ("E", "A", "B", "alpha", "beta"))]
    if "a" in a2:
        lines.append(f"Approach 2  N_opt ∝ C^a, D_opt ∝ C^b:  a={_get(a2, 'a')}, b={_get(a2, 'b')}")
    else:
        lines.append(f"Approach 2  not fitted: {a2.get('skipped') or 'no two usable FLOP budgets'}")
    lines += [f"warning: {w}" for w in fits["warnings"][:5]]
    if len(fits["warnings"]) > 5:
        lines.append(f"... {len(fits['warnings']) - 5} more warnings in the report")
    return "\n".join(lines + [f"report: {report_path}"])
