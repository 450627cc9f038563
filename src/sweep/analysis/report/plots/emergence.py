"""The abilities figures, drawn from the result's `emergence` alone (result/emergence.py): per task each
metric against N, training FLOPs and val_loss (one line per variant, chance dashed, 95% intervals (seeds, then
items) as bars, values at chance hollow); the Schaeffer overlay (measured exact match beside p̄^L and mean p_seq);
CoT against direct answers; accuracy against shots with the random-label control; the per-position loss and ICL
score per size; the two-step prediction.
`emergence_figures` yields (name, figure) for plots.make_plots, which saves them; names start with "emergence".
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Iterator

import matplotlib.pyplot as plt
import numpy as np

from ...result.emergence import CotPair, Emergence, IclSize, Shots, TwoStep, Variant
from .base import HOLLOW, figure, legend, tidy_log_axis

METRIC_ORDER = ("exact", "exact_final", "mc_acc", "p_seq", "digit_acc", "nll", "edit_distance", "brier")
AXES = (("N", "parameters N", True), ("C", "training FLOPs C", True), ("val_loss", "val_loss (better →)", False))
MAX_TWO_STEP = 4
PREFIX = "emergence"
EMERGENCE_CAPTIONS = {
    "emergence_overlay": "Schaeffer overlay: measured exact match (bars: 95% interval, seeds then items) beside "
                         "exact match predicted from the per-token probability, p̄^L with p̄ = exp(−nll) and L the "
                         "answer's tokens (dashed), "
                         "and the mean sequence probability p_seq (dotted)",
    "emergence_cot": "Scratchpad (CoT) against direct answers per size: the result's exact match of each; ★ where "
                     "the scratchpad helps significantly (the 95% interval of the difference above 0)",
    "emergence_shots": "In-context learning: accuracy against shots per size (solid), the random-label control "
                       "icl_random (dashed), chance (grey dashed); hollow: chance within the 95% interval",
    "emergence_icl": "Per-position loss on held-out text per size (lower later in the context: in-context "
                     "learning), and the ICL score and induction ratio against N",
    "emergence_two_step": "Two-step prediction, largest size held out: task NLL against FLOPs (power law with "
                          "offset), then accuracy against NLL (sigmoid; grey: intermediate checkpoints); ★ observed, "
                          "✕ predicted from the held-out size's FLOPs alone",
}


def caption(name: str) -> str:
    if name in EMERGENCE_CAPTIONS:
        return EMERGENCE_CAPTIONS[name]
    task = name.removeprefix(f"{PREFIX}_task_")
    return (f"Task {task}: each metric against N, training FLOPs and val_loss (one line per variant, 95% "
            f"bars, chance dashed, hollow at chance)")


def _draw_series(ax, pts: list, x: str, color, label, style="-"):
    """One variant's metric (SizePoints, ShotPoints: `x` names the axis field): a line through its sizes, bars for
    proportions, hollow markers at chance."""
    xs = np.array([getattr(p, x) for p in pts], float)
    ys = np.array([np.nan if p.value is None else p.value for p in pts], float)
    ax.plot(xs, ys, style, color=color, lw=1.2, label=label)
    lo = np.array([np.nan if p.lo is None else p.lo for p in pts], float)
    hi = np.array([np.nan if p.hi is None else p.hi for p in pts], float)
    if np.isfinite(lo).any():
        err = np.array([np.clip(ys - lo, 0, None), np.clip(hi - ys, 0, None)])
        ax.errorbar(xs, ys, yerr=np.nan_to_num(err), fmt="none", ecolor=color, capsize=2, lw=0.8)
    flat = np.array([bool(p.at_chance) for p in pts])
    ax.scatter(xs[~flat], ys[~flat], color=color, s=16, zorder=3)
    ax.scatter(xs[flat], ys[flat], edgecolors=color, s=22, zorder=3, **HOLLOW)


def task_figure(task: str, variants: dict[str, Variant]):
    """One task: rows are its metrics, columns N, C and val_loss."""
    metrics = [m for m in METRIC_ORDER if any(m in v.per_size for v in variants.values())]
    fig, axes = figure(len(metrics), 3, figsize=(11, 2.3 * len(metrics) + 0.6), squeeze=False)
    for r, metric in enumerate(metrics):
        for c, (x, xlabel, log) in enumerate(AXES):
            ax = axes[r, c]
            for i, (key, v) in enumerate(sorted(variants.items())):
                if metric in v.per_size:
                    _draw_series(ax, v.per_size[metric], x, f"C{i % 10}", v.variant if r == c == 0 else None)
            chances = {v.chance.get(metric) for v in variants.values()} - {None}
            for ch in chances:
                ax.axhline(ch, ls="--", color="grey", lw=0.9, label="chance" if r == c == 0 else None)
            if log:
                ax.set_xscale("log")
                tidy_log_axis(ax)
            else:
                ax.invert_xaxis()  # lower loss is the better model: keep "better" to the right as on N and C
            ax.set_xlabel(xlabel) if r == len(metrics) - 1 else None
            ax.set_ylabel(metric) if c == 0 else None
    legend(axes[0, 0])
    fig.suptitle(f"{task}: metrics against size, compute and loss (one line per variant)")
    fig.tight_layout()
    return fig


def overlay_figure(variants: dict[str, Variant]):
    tasks = sorted({v.task for v in variants.values() if v.overlay})
    if not tasks:
        return None
    fig, axes = figure(1, len(tasks), figsize=(3.8 * len(tasks), 3.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for i, (key, v) in enumerate(sorted((k, v) for k, v in variants.items() if v.task == task and v.overlay)):
            pts, color = v.overlay, f"C{i % 10}"
            measured = [SimpleNamespace(N=p.N, value=p.measured, lo=p.lo, hi=p.hi, at_chance=False) for p in pts]
            _draw_series(ax, measured, "N", color, v.variant)
            ax.plot([p.N for p in pts], [p.predicted for p in pts], "--", color=color, lw=1)
            if all(p.p_seq is not None for p in pts):
                ax.plot([p.N for p in pts], [p.p_seq for p in pts], ":", color=color, lw=1.2)
        ax.plot([], [], "k--", lw=1, label="p̄^L")
        ax.plot([], [], "k:", lw=1.2, label="mean p_seq")
        ax.set(xscale="log", xlabel="parameters N", ylabel="exact match", title=task)
        legend(ax)
    fig.tight_layout()
    return fig


def cot_figure(cot: list[CotPair]):
    if not cot:
        return None
    fig, axes = figure(1, len(cot), figsize=(3.6 * len(cot), 3.2), squeeze=False)
    for ax, pair in zip(axes[0], cot):
        rows = pair.per_size
        N = [r.N for r in rows]
        ax.plot(N, [r.direct for r in rows], "o-", color="C0", label=f"{pair.direct} exact")
        ax.plot(N, [r.cot for r in rows], "s--", color="C3", label=f"{pair.cot} {pair.metric}")
        helps = [r for r in rows if r.lo is not None and r.lo > 0]
        ax.scatter([r.N for r in helps], [r.cot for r in helps], marker="*", s=90, color="C3", zorder=4,
                   label="scratchpad helps (95%)" if helps else None)
        ax.set(xscale="log", xlabel="parameters N", ylabel="exact match of the result")
        legend(ax)
    fig.tight_layout()
    return fig


def shots_figure(shots: Shots | None):
    if not shots or not shots.per_size:
        return None
    fig, ax = figure(figsize=(5.5, 3.6))
    rows = shots.per_size
    colors = [plt.cm.viridis(0.85 * i / max(len(rows) - 1, 1)) for i in range(len(rows))]
    for row, color in zip(rows, colors):
        for pts, style, label in ((row.icl, "-", f"N={row.N:.3g}"), (row.icl_random, "--", None)):
            if pts:
                _draw_series(ax, pts, "k", color, label, style)
    if shots.chance is not None:
        ax.axhline(shots.chance, ls="--", color="grey", lw=0.9, label="chance")
    ax.set(xlabel="shots k", ylabel=shots.metric, title="accuracy against shots (dashed: random labels)")
    legend(ax)
    fig.tight_layout()
    return fig


def icl_figure(icl: list[IclSize]):
    if not icl:
        return None
    fig, (a, b) = figure(1, 2, figsize=(10, 3.6))
    for i, row in enumerate(icl):
        if row.per_position_loss:
            a.plot(np.asarray(row.positions) + 1, row.per_position_loss, lw=1.1, label=f"N={row.N:.3g}",
                   color=plt.cm.viridis(0.85 * i / max(len(icl) - 1, 1)))
    a.set(xscale="log", xlabel="token position in the context", ylabel="loss (nats)", title="per-position loss")
    N = [r.N for r in icl]
    b.plot(N, [r.icl_score for r in icl], "o-", label="ICL score (late − early loss)")
    b.plot(N, [r.induction_ratio for r in icl], "s--", label="induction ratio (2nd copy / 1st copy NLL)")
    b.set(xscale="log", xlabel="parameters N", title="ICL score and induction ratio")
    legend(a)
    legend(b)
    fig.tight_layout()
    return fig


def two_step_figure(rows: list[TwoStep]):
    from ...emergence.two_step import power_law_nll, sigmoid_acc

    done = [r for r in rows if r.skipped is None][:MAX_TWO_STEP]
    if not done:
        return None
    fig, axes = figure(len(done), 2, figsize=(9, 2.8 * len(done)), squeeze=False)
    for (a, b), r in zip(axes, done):
        C = np.array([p.C for p in r.points] + [r.held_out_C])
        grid = np.geomspace(C.min() / 1.5, C.max() * 1.5, 80)
        a.scatter(C[:-1], [p.nll for p in r.points], color="C0", label="fitted sizes")
        a.plot(grid, power_law_nll(vars(r.step1), grid), color="C0", lw=1)
        a.scatter([r.held_out_C], [r.nll_observed], marker="*", s=90, color="C3", label="held out")
        a.scatter([r.held_out_C], [r.nll_predicted], marker="x", s=50, color="k", label="predicted")
        a.set(xscale="log", xlabel="training FLOPs C", ylabel="task NLL", title=r.key)
        nll = np.array([p.nll for p in r.points] + [e.nll for e in r.events] + [r.nll_observed])
        g = np.linspace(nll.min() * 0.9, nll.max() * 1.05, 100)
        s2 = r.step2
        b.scatter([e.nll for e in r.events], [e.acc for e in r.events], s=8, color="0.7", label="checkpoints")
        b.scatter([p.nll for p in r.points], [p.acc for p in r.points], color="C0")
        b.plot(g, sigmoid_acc(g, s2.k, s2.nll0, s2.chance), color="C0", lw=1)
        lo, hi = r.observed_ci
        # the interval is pooled over items, the value a mean over seeds: clip, never a negative bar
        bar = [[max(r.observed - lo, 0)], [max(hi - r.observed, 0)]]
        b.errorbar([r.nll_observed], [r.observed], yerr=bar,
                   fmt="*", ms=10, color="C3", capsize=3, label="held out (observed)")
        b.scatter([r.nll_predicted], [r.predicted], marker="x", s=50, color="k", label="predicted")
        b.set(xlabel="task NLL", ylabel=r.metric, title=f"error {r.error:+.3f}")
        b.invert_xaxis()
        legend(a)
        legend(b)
    fig.tight_layout()
    return fig


def emergence_figures(em: Emergence | None) -> Iterator[tuple[str, object]]:
    """(name, figure) of every abilities figure the result's emergence section allows (none without it)."""
    if em is None or not em.variants:
        return
    variants = em.variants
    for task in sorted({v.task for v in variants.values()}):
        yield f"{PREFIX}_task_{task}", task_figure(task, {k: v for k, v in variants.items() if v.task == task})
    for name, fig in (("overlay", overlay_figure(variants)), ("cot", cot_figure(em.cot or [])),
                      ("shots", shots_figure(em.shots)), ("icl", icl_figure(em.icl or [])),
                      ("two_step", two_step_figure(em.two_step or []))):
        if fig is not None:
            yield f"{PREFIX}_{name}", fig
