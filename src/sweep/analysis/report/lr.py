"""The outputs of an lr study (lr/study.py's LrStudy): the rule file lr_rule.json (`rule_from_study`,
`write_rule`), the report.md section (`report_lines`) and the figure (`plot_lr`: loss against lr per size; best lr
against size with the fitted law). Formatting only: no fits.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter

from ...config.lr_rule import LrRule, to_json
from ...files import json_safe, write_json_atomic
from ..result.lr import LrOptimum, LrStudy, PowerLaw
from ..lr.fit import law_band
from .plots.base import PLOT_STYLE  # the Agg backend and the style of every plot of the analysis
TABLE_KEYS = ("model", "n_params", "lrs", "losses", "best_lr", "ci", "edge", "best_loss", "in_law")


# ----------------------------------------------------------------------------------------------- the rule
def rule_from_study(result: LrStudy, meta: dict | None = None, name: str = "lr_rule",
                    source: str = "sweep analyze") -> LrRule:
    """The measured rule of an lr study; ValueError (saying why) when the study has none."""
    law = result.law
    if not law:
        raise ValueError(f"no lr rule: {result.no_rule or 'no law was fitted'}")
    if result.params != "matmul":
        raise ValueError("no lr rule: the runs carry no matmul parameter counts (N_matmul), and rules are over them")
    meta = {**(result.meta or {}), **(meta or {})}
    measured = {**meta, "tokens_per_param": meta.get("tokens_per_param", result.tokens_per_param),
                "horizon": result.horizon, "slice": result.slice or None,
                "per_size": [{k: getattr(r, k) for k in TABLE_KEYS} for r in result.per_size],
                "sizes_fitted": law.sizes, "exponent_ci": law.exponent.ci, "lr_ref_ci": law.lr_ref.ci,
                "method": "per size: vertex of a parabola of final loss in ln lr, parametric-bootstrap interval; "
                          "across sizes: random-effects weighted least squares, Knapp-Hartung interval"}
    return LrRule(name=name, source=source, lr_ref=law.lr_ref.value, n_ref=law.n_ref, exponent=law.exponent.value,
                  min_params=law.min_params, max_params=law.max_params, measured=json_safe(measured))


def _law_text(law: PowerLaw, y: str = "lr*", ci: bool = True) -> str:
    """lr*(N) = lr_ref·(N/n_ref)^exponent (or batch*(N) from batch_ref), with the exponent's interval."""
    e = law.exponent.value
    text = f"{y}(N) = {law.ref.value:.3g}·(N/{law.n_ref:.3g})^{e:.3f}"
    return text + _ci(e, law.exponent.ci, "{:.3f}", " (exponent 95% interval [{}])") if ci else text


def write_rule(path, result: LrStudy, meta: dict | None = None) -> LrRule:
    """lr_rule.json (train.lr_rule=PATH reads it back): the rule's JSON plus a human-readable "about"."""
    path = Path(path)
    rule = rule_from_study(result, meta, name=path.stem, source=str(path))
    m, law = rule.measured, result.law
    about = (f"Measured by `sweep analyze` on the lr sweep {m.get('sweep') or ''} (data {m.get('data') or '?'}, "
             f"{result.horizon}{', ' + result.slice if result.slice else ''}): {_law_text(law)} over "
             f"matmul parameter counts {rule.min_params:.3g}–{rule.max_params:.3g} ({len(law.sizes)} sizes); "
             f"outside that range it is an extrapolation.")
    write_json_atomic(path, {**to_json(rule), "about": about})
    return rule


# --------------------------------------------------------------------------------------------- the report
def _ci(value, ci, fmt="{:.3g}", wrap=" [{}]") -> str:
    """' [lo, hi]' for a real interval; nothing for none or one that is zero-width at the shown precision."""
    if not ci or ci[0] is None or ci[1] is None or fmt.format(ci[0]) == fmt.format(ci[1]):
        return ""
    return wrap.format(f"{fmt.format(ci[0])}, {fmt.format(ci[1])}")


def _best_text(r: LrOptimum) -> str:
    if len(r.lrs) < 3:
        return f"— (only {len(r.lrs)} lr(s))"
    if r.edge:
        return f"{'≤' if r.edge == 'low' else '≥'} {r.best_lr:.3g} (edge: a bound)"
    if not r.in_law:
        return f"~{r.best_lr:.3g} (lowest point)"
    return f"{r.best_lr:.3g}" + _ci(r.best_lr, r.ci)


def report_lines(result: LrStudy, rule_path="<out>/lr_rule.json") -> list[str]:
    """The report.md section of an lr study: per-size table, the law with its interval, what to do next."""
    noise = result.noise
    sl = f"; slice {result.slice}" if result.slice else ""
    how = (f"95% interval: parametric bootstrap of the parabola, residual scale {noise.sigma:.3g} nats pooled "
           f"over {noise.dof} dof" if noise.sigma else "no intervals: the parabolas have no residual "
           "degrees of freedom (3 lrs × 1 run each)")
    out = ["## Learning rate per size (sweep=lr)", "",
           f"Horizon {result.horizon}{sl}. Best lr: the vertex of a parabola of final loss in ln lr through the "
           f"lowest loss and up to two lrs either side; {how}. A lowest loss at an edge of the lrs tried is a bound "
           f"and is left out of the law.", "",
           "| model | N (matmul) | lrs tried | best lr [95% interval] | loss at best | flags |",
           "|---|---|---|---|---|---|"]
    for r in result.per_size:
        out.append(f"| {r.model} | {r.n_params:.3g} | {', '.join(f'{x:.2g}' for x in r.lrs)} | "
                   f"{_best_text(r)} | {r.best_loss:.4f} | {'; '.join(r.flags)} |")
    out.append("")
    law = result.law
    if law:
        ref = _ci(law.lr_ref.value, law.lr_ref.ci, wrap=", lr_ref 95% interval [{}]")
        out += [f"**Law:** {_law_text(law)}{ref}; fitted over {len(law.sizes)} sizes (N_matmul "
                f"{law.min_params:.3g}–{law.max_params:.3g}), " +
                (f"weighted by the per-size intervals, between-size scatter τ = {law.tau:.3g} in ln lr."
                 if law.weighted else "unweighted (the per-size optima have no intervals)."), "",
                f"**Next:** train with it: `sweep train ... train.lr_rule={rule_path}` (sizes outside "
                f"{law.min_params:.3g}–{law.max_params:.3g} are an extrapolation, which the plan records)."]
    else:
        out.append(f"**No rule:** {result.no_rule}.")
    batch = result.batch
    if batch:
        out += ["", "Best batch per size (over the batch_tokens slices): " + "; ".join(
            f"{r.model} {'≤ ' if r.edge == 'low' else '≥ ' if r.edge == 'high' else ''}{r.best_batch:.3g}"
            for r in batch.per_size) + ". " + (f"**Batch law:** {_law_text(batch.law, 'batch*')}."
                                               if batch.law else f"No batch law: {batch.no_rule}.")]
    if result.slices:
        out += ["", "Slices (mean best loss over the sizes they share): " + "; ".join(
            f"{s.slice}: {s.mean_best_loss:.4f}" for s in result.slices)]
    for o in result.others or []:
        out += ["", f"Also at {o.horizon}{' (' + o.slice + ')' if o.slice else ''}: "
                + (_law_text(o.law) if o.law else f"no rule ({o.no_rule})")]
    if result.warnings:
        out += ["", *[f"- {w}" for w in result.warnings]]
    return out + [""]


# --------------------------------------------------------------------------------------------- the figure
def plot_lr(result: LrStudy):
    """Left: loss against lr per size with its parabola and ★ best lr (bar: 95% interval); right: best lr against
    N_matmul with the fitted law and its band, edge-bound sizes as hollow triangles. The caller saves and closes it."""
    rows = result.per_size
    logs = np.log10([r.n_params for r in rows])
    span = max(logs.max() - logs.min(), 1e-9)
    with plt.rc_context(PLOT_STYLE), np.errstate(all="ignore"):
        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.8))
        marks = {"edge": False, "out": False}
        for r, lg in zip(rows, logs):
            c = plt.cm.viridis(0.85 * (lg - logs.min()) / span)
            ax0.plot(r.lrs, r.losses, "o", color=c, ms=4, label=f"{r.model} (N={r.n_params:.3g})")
            p = r.parabola
            if p:
                lo, hi = np.log(p.window_lr)
                x = np.linspace(lo - 0.15, hi + 0.15, 100)
                ax0.plot(np.exp(x), np.polyval(p.coef, x - np.log(p.center_lr)), color=c, lw=1.3)
            ci = r.ci
            if r.in_law:
                err = None if not ci else [[r.best_lr - ci[0]], [ci[1] - r.best_lr]]
                for ax, y, kw in ((ax0, r.best_loss, {"xerr": err}), (ax1, r.best_lr, {"yerr": err})):
                    ax.errorbar(r.n_params if ax is ax1 else r.best_lr, y, fmt="*", ms=12, color=c,
                                mec="black", mew=0.6, capsize=3, zorder=4, **kw)
            elif r.edge:
                marks["edge"] = True
                ax0.plot(r.best_lr, r.best_loss, "<" if r.edge == "low" else ">", ms=10, mfc="none", mec=c)
                ax1.plot(r.n_params, r.best_lr, "v" if r.edge == "low" else "^", ms=10, mfc="none", mec=c,
                         mew=1.5, zorder=4)
            elif len(r.lrs) >= 3:
                marks["out"] = True
                ax1.plot(r.n_params, r.best_lr, "x", color=c, ms=8, zorder=4)
        ax0.set_xscale("log")
        ax0.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a lr grid in factors of 2 overlap
        ax0.set(xlabel="peak learning rate", ylabel="final validation loss (nats/token)",
                title="Loss against lr per size: ★ best lr (bar: 95% interval)")
        ax0.legend(fontsize=7, title="size (matmul params)", title_fontsize=7)
        handles = [Line2D([], [], ls="", marker="*", ms=10, color="gray", mec="black", label="best lr, 95% interval")]
        law = result.law
        if law:
            n = np.geomspace(law.min_params / 1.5, law.max_params * 1.5, 100)
            mid, lo, hi = law_band(law, n)
            handles.append(ax1.plot(n, mid, "k-", lw=1.5, label=_law_text(law, ci=False))[0])
            handles.append(ax1.fill_between(n, lo, hi, color="black", alpha=0.12, lw=0, label="95% band of the law"))
        else:
            ax1.text(0.03, 0.04, "no rule: fewer than 3 sizes with an interior best lr", transform=ax1.transAxes)
        if marks["edge"]:
            handles.append(Line2D([], [], ls="", marker="v", ms=9, mfc="none", mec="gray", mew=1.5,
                                  label="edge of the lrs tried: a bound (▼ ≤, ▲ ≥), left out"))
        if marks["out"]:
            handles.append(Line2D([], [], ls="", marker="x", color="gray", label="no minimum placed: left out"))
        ax1.set_xscale("log")
        ax1.set_yscale("log")
        ax1.set(xlabel="matmul parameters N", ylabel="best peak learning rate",
                title=f"Best lr against size ({result.horizon})")
        ax1.legend(handles=handles, fontsize=7)
        fig.tight_layout()
    return fig
