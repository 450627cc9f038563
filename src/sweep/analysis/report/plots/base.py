"""What every plot of `sweep analyze` shares: the style and colours; Approach 3's law read so that a missing or
failed one is None (a grid too small to fit draws what it can); axis limits set by the data, with an interval that
runs past them cut at the edge and ended in an arrow head (one wild interval never rescales an axis); hollow markers
for runs a fit left out; per-point tooltips for report.html; and the runs as one table (plots, wandb).

The 95% bands drawn around fitted curves come from bootstrap draws only: the law evaluated over each resample's
parameters where the fit keeps them (Approach3.samples), else the percentile intervals the result holds for a
quantity itself (the recipe's N*(C), D*(C) at its budgets), joined in log-log. Marginal parameter intervals are never
combined into a band: the parameters are strongly correlated, so their endpoints would draw a band far too wide.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ...inputs.sizes import size_clusters  # noqa: E402
from ...laws.lse import law_loss  # noqa: E402
from ...result.laws import LawFit, ParamDraws  # noqa: E402
from ...result.fits import FlopsPerToken, Laws  # noqa: E402
from ..fmt import sci  # noqa: E402

PLOT_STYLE = {"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
              "axes.spines.right": False, "font.size": 9, "svg.hashsalt": "sweep"}
LAW = ("E", "A", "B", "alpha", "beta")
HOLLOW = {"facecolors": "none", "linewidths": 1.1}  # runs a fit left out: hollow markers in every plot
NO_BAND = "no band: fits.json holds no bootstrap draws of the parameters"
MAX_MARKS = 6000  # tooltips per figure in report.html: past this, an even spread of them


# ------------------------------------------------------------------------------------------ the fits' sections
def law(fits: LawFit) -> dict | None:
    """Approach 3's parameters {E, A, B, alpha, beta} (as lse.law_loss takes them), if it was fitted with finite
    values."""
    p = fits.approach3.params()
    ok = p is not None and all(isinstance(v, (int, float)) and np.isfinite(v) for v in p.values())
    return p if ok else None


def own_flops(fits: Laws) -> FlopsPerToken | None:
    """The data's FLOPs/token fit when the runs did not count C = 6ND (the law's optimum then follows it)."""
    fpt = fits.flops_per_token_fit
    return fpt if not fpt.is_6N else None


def param_draws(draws: ParamDraws | None) -> list[dict] | None:
    """The bootstrap's per-resample parameters, if the fit keeps them (Approach3.samples), as dicts for law_loss."""
    if draws is None:
        return None
    arr = np.array([[np.nan if v is None else v for v in getattr(draws, k)] for k in LAW], float).T
    arr = arr[np.isfinite(arr).all(axis=1)]
    return [dict(zip(LAW, row)) for row in arr] if len(arr) >= 10 else None


def draws_band(f, draws: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise 2.5 and 97.5 percentiles of f(params) over the bootstrap draws."""
    with np.errstate(all="ignore"):
        values = np.array([f(p) for p in draws], float)
    return np.nanpercentile(values, 2.5, axis=0), np.nanpercentile(values, 97.5, axis=0)


def recipe_band(fits: LawFit, key: str, c_grid: np.ndarray):
    """The recipe's 95% bootstrap intervals of the quantity `key` (N_opt, D_opt, N_opt_a2, ...: a RecipeRow field)
    at its budgets, joined in log-log over c_grid (NaN outside their span): (lo, hi, budgets), or None with fewer
    than 2 intervals."""
    cis = [(r.C, v.ci) for r in fits.recipe if (v := getattr(r, key)) is not None and v.ci
           and all(x is not None and 0 < x < np.inf for x in v.ci)]
    if len(cis) < 2:
        return None
    lc = np.log([c for c, _ in cis])
    lo, hi = (np.log([ci[i] for _, ci in cis]) for i in (0, 1))
    x = np.log(c_grid)
    inside = (x >= lc.min()) & (x <= lc.max())
    out = [np.where(inside, np.exp(np.interp(x, lc, v)), np.nan) for v in (lo, hi)]
    return out[0], out[1], np.array([c for c, _ in cis], float)


# ------------------------------------------------------------------------------------------------- the runs
def runs_table(ds, fits: Laws) -> pd.DataFrame:
    """One row per run: its numbers, Approach 3's prediction and residual ln(observed / predicted), whether it is in
    a FLOP budget Approach 2 fitted, whether the holdout check held it out; runs excluded before fitting last, with
    their reason and no numbers."""
    r = ds.runs
    t = pd.DataFrame({k: r[k].to_numpy(float) for k in ("N", "D", "C", "loss", "budget")})
    t.insert(0, "run_name", r["run_name"].astype(str).to_numpy())
    p = law(fits)
    t["predicted"] = law_loss(p, t["N"], t["D"]) if p else np.nan
    t["residual"] = np.log(t["loss"] / t["predicted"])
    t["approach2"] = np.isin(t["budget"], [row.C for row in fits.approach2.budgets or []])
    test = holdout_mask(ds, fits)
    t["held_out"] = test if test is not None else False
    t["status"] = "included"
    gone = pd.DataFrame([{"run_name": e["run_name"], "status": f"excluded: {e['reason']}", "approach2": False,
                          "held_out": False} for e in ds.excluded])
    return pd.concat([t, gone], ignore_index=True) if len(gone) else t


def holdout_mask(ds, fits: Laws) -> np.ndarray | None:
    """The runs the held-out-largest-size check left out (as estimate.py chose them), or None if it did not run."""
    h = fits.holdout.approach3
    if h is None:
        return None
    N = ds.runs["N"].to_numpy(float)
    labels = size_clusters(N)
    if h.held_out_N_min is not None:  # a continuum of sizes: the top tenth of log N
        test = N >= h.held_out_N_min
    else:
        test = labels == labels.max()
    return test if int(test.sum()) == h.n_test else None


def run_tips(ds, idx) -> list[str]:
    """Tooltip text of runs (row indices of ds.runs)."""
    r = ds.runs
    idx = np.asarray(idx, int)
    names = r["run_name"].astype(str).to_numpy()[idx]
    N, D, C, L = (r[k].to_numpy(float)[idx] for k in ("N", "D", "C", "loss"))
    return [f"{n}: N={sci(a)}, D={sci(b)}, C={sci(c)}, loss={v:.4f}" for n, a, b, c, v in zip(names, N, D, C, L)]


# -------------------------------------------------------------------------------------------------- drawing
def figure(*args, **kwargs):
    """plt.subplots, with a place for the figure's tooltips (see tip)."""
    fig, axes = plt.subplots(*args, **kwargs)
    fig.sweep_tips = []
    return fig, axes


def tip(fig, artist, labels) -> None:
    """Tooltips for report.html: one label per point of a scatter (or line of a LineCollection), in order."""
    fig.__dict__.setdefault("sweep_tips", []).append((artist, list(labels)))


def hover_marks(fig, limit: int = MAX_MARKS) -> dict:
    """Where each tooltip's point or line landed in the figure's image, in pixels from its top left (call after a
    draw at the figure's dpi): {width, height, marks: [{label, xy} or {label, line}]}, at most `limit` marks (an
    even spread). An artist whose points do not match its labels one to one gets none."""
    width, height = fig.canvas.get_width_height()
    marks = []
    for artist, labels in getattr(fig, "sweep_tips", []):
        box = artist.axes.bbox
        if isinstance(artist, matplotlib.collections.LineCollection):
            segments = artist.get_segments()
            if len(segments) != len(labels):
                continue
            for seg, label in zip(segments, labels):
                xy = artist.get_transform().transform(np.asarray(seg, float)) if len(seg) else np.zeros((0, 2))
                xy = xy[np.isfinite(xy).all(axis=1) & _inside(xy, box)]
                if len(xy) >= 2:
                    marks.append({"label": label, "line": [(x, height - y) for x, y in xy]})
            continue
        xy = artist.get_offset_transform().transform(np.asarray(artist.get_offsets(), float))
        if len(xy) != len(labels):
            continue
        keep = np.isfinite(xy).all(axis=1) & _inside(xy, box)
        marks += [{"label": label, "xy": (x, height - y)} for (x, y), label, k in zip(xy, labels, keep) if k]
    if len(marks) > limit:
        marks = [marks[i] for i in np.unique(np.linspace(0, len(marks) - 1, limit).round().astype(int))]
    return {"width": width, "height": height, "marks": marks}


def _inside(xy: np.ndarray, box) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (xy[:, 0] >= box.x0) & (xy[:, 0] <= box.x1) & (xy[:, 1] >= box.y0) & (xy[:, 1] <= box.y1)


def tidy_log_axis(ax, axis="x"):
    """Minor tick labels crowd a log axis that spans more than a decade: keep only the decades then."""
    a = ax.xaxis if axis == "x" else ax.yaxis
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    if lo > 0 and hi / lo > 10:
        a.set_minor_formatter(matplotlib.ticker.NullFormatter())


def budget_colors(budgets):
    logs = np.log10(budgets)
    span = max(logs.max() - logs.min(), 1e-9)
    return {b: plt.cm.viridis(0.85 * (lg - logs.min()) / span) for b, lg in zip(budgets, logs)}


def data_limits(values, log: bool = True, margin: float = 0.06, min_decades: float = 0.3):
    """The range of the finite values (positive ones on a log axis, at least min_decades wide) widened by a margin:
    (low, high), or None if there are none."""
    v = np.asarray(values, float).ravel()
    v = v[np.isfinite(v) & ((v > 0) if log else True)]
    if not len(v):
        return None
    lo, hi = v.min(), v.max()
    if log:
        pad = max(min_decades - np.log10(hi / lo), 0) / 2
        lo, hi = lo / 10**pad, hi * 10**pad
        span = np.log10(hi / lo)
        return lo / 10 ** (margin * span), hi * 10 ** (margin * span)
    span = hi - lo if hi > lo else max(abs(hi) * 0.05, 1e-3)
    return lo - margin * span, hi + margin * span


def set_limits(ax, axis: str, values, log: bool = True, margin: float = 0.06, min_decades: float = 0.3) -> None:
    """Fix an axis to the data's range: later artists (a wild interval, a band) cannot widen it."""
    lim = data_limits(values, log, margin, min_decades)
    if lim is not None:
        (ax.set_xlim if axis == "x" else ax.set_ylim)(*lim)


HELD = {"color": "C3", "marker": "D", "s": 36}  # the held-out runs, in every plot


def error_limits(ax, x, pred, lo, hi, observed, min_decades: float) -> tuple:
    """A prediction check's error panel: (predicted − observed) / observed in %, and its interval's ends in %, with
    the axes set from them (x log); an interval far beyond every error does not set the axis (clipped_errorbar cuts
    it with an arrow), so one wild interval cannot flatten the others."""
    err = (pred / observed - 1) * 100
    lo_e, hi_e = (lo / observed - 1) * 100, (hi / observed - 1) * 100
    set_limits(ax, "x", x, min_decades=min_decades)
    reach = 10 * max(np.abs(err).max(), 0.5)
    set_limits(ax, "y", np.r_[err, 0, lo_e[lo_e > -reach], hi_e[hi_e < reach]], log=False, margin=0.1)
    return err, lo_e, hi_e


def clipped_errorbar(ax, x, y, lo, hi, axis: str = "y", color="C2", label=None, **kw) -> int:
    """Points with their 95% bars [lo, hi] (NaN: none) along `axis`, cut at the axis limits, which must be set
    already; a cut end is drawn as an arrow head at the edge. Returns how many ends were cut."""
    x, y, lo, hi = (np.asarray(v, float) for v in (x, y, lo, hi))
    v = y if axis == "y" else x
    lim = ax.get_ylim() if axis == "y" else ax.get_xlim()
    lo_c, hi_c = np.fmin(np.fmax(np.nan_to_num(lo, nan=v), lim[0]), v), np.fmax(np.fmin(np.nan_to_num(hi, nan=v),
                                                                                           lim[1]), v)
    err = np.array([v - lo_c, hi_c - v])
    ax.errorbar(x, y, **{f"{axis}err": err}, fmt=kw.pop("fmt", "o"), color=color, capsize=3, label=label, **kw)
    cut = 0
    for ends, edge, mark in ((lo < lim[0], lim[0], "v" if axis == "y" else "<"),
                             (hi > lim[1], lim[1], "^" if axis == "y" else ">")):
        if ends.any():
            cut += int(ends.sum())
            px, py = (x[ends], np.full(ends.sum(), edge)) if axis == "y" else (np.full(ends.sum(), edge), y[ends])
            ax.scatter(px, py, marker=mark, s=40, color=color, clip_on=False, zorder=5)
    if cut:
        ax.scatter([], [], marker="^" if axis == "y" else ">", color=color, label="interval beyond the axis")
    return cut


def hollow(ax, x, y, label, color="black", marker="o", s=30, **kw):
    """Runs a fit left out, hollow, with a legend entry."""
    return ax.scatter(x, y, marker=marker, s=s, edgecolors=color, label=label, zorder=4, **HOLLOW, **kw)


def note_excluded(ax, ds) -> None:
    """A legend line for the runs excluded before any fit (failed, incomplete, non-finite): they have no point."""
    if ds.excluded:
        ax.plot([], [], " ", label=f"{len(ds.excluded)} run(s) excluded before fitting (not drawn)")


def legend(ax, **kwargs) -> None:
    """The axes' legend, if anything in it has a label."""
    if ax.get_legend_handles_labels()[1]:
        ax.legend(frameon=False, **{"fontsize": 7.5, **kwargs})


def note(ax, text: str) -> None:
    """A line of explanation in the legend."""
    ax.plot([], [], " ", label=text)
