"""The plots of `sweep analyze` and report.html: every plot in every format for Epoch's Chinchilla data and for a real
tiny sweep; axes that one wild interval does not rescale; partial fits (a grid too small for Approach 3); runs the
fits left out drawn hollow; tooltips and no network in report.html."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PathCollection

from sweep.analysis.laws.estimate import estimate
from sweep.analysis.result.record import Value
from sweep.analysis.result.laws import Allocation, Approach1, Approach2, Approach3, Holdout, ParamDraws, RecipeRow
from sweep.analysis.result.fits import Fits, read_fits
from sweep.analysis.inputs.load import load_csv, load_sweep
from sweep.analysis.main import main, run
from sweep.analysis.report.plots import CAPTIONS, PLOTS, make_plots
from sweep.analysis.report.plots.base import recipe_band
from sweep.analysis.report.plots.data import plot_isoflop, plot_loss_curves
from sweep.analysis.report.plots.fit import plot_holdout, plot_residuals
from sweep.analysis.report.plots.emergence import EMERGENCE_CAPTIONS
from sweep.analysis.report.plots.optimal import plot_compute_optimal

CHINCHILLA = Path(__file__).parent / "data" / "chinchilla_epoch_240.csv"
FORMATS = ("png", "svg", "pdf")
# the lr plot is an lr sweep's (test_lr_analysis); extrapolation needs --holdout (test_holdout_protocol)
ALL = {name for name, _ in PLOTS} - {"lr", "extrapolation"}


@pytest.fixture(scope="module")
def chinchilla():
    ds = load_csv(CHINCHILLA)
    return ds, Fits.assemble(estimate(ds, n_boot=0), trust=[])


def labels(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def hollow(fig) -> list[PathCollection]:
    """Marker collections with points and no fill: the runs a fit left out."""
    return [c for ax in fig.axes for c in ax.collections
            if isinstance(c, PathCollection) and len(c.get_offsets()) and c.get_facecolors().size == 0]


def close(*figs):
    for f in figs:
        plt.close(f)


@pytest.mark.slow
def test_every_plot_in_every_format_for_chinchilla(tmp_path):
    out = tmp_path / "out"
    assert main(["--csv", str(CHINCHILLA), "--out", str(out), "--bootstrap", "0", "--wandb", "off",
                 "--format", ",".join(FORMATS)]) == 0
    fits = json.loads((out / "fits.json").read_text())
    # without task results no emergence figure is drawn (test_emergence)
    assert set(fits["plots"]) == ALL == set(CAPTIONS) - {"lr", "extrapolation"} - set(EMERGENCE_CAPTIONS)
    for name in ALL:
        assert all((out / f"{name}.{fmt}").stat().st_size > 5000 for fmt in FORMATS), name
    assert fits["report_html"] == "report.html"
    html = (out / "report.html").read_text()
    assert "<table>" in html and "<h2>" in html and html.count("data:image/png;base64,") == len(ALL)
    assert not re.search(r'(src|href)="https?:', html) and "<script" not in html  # self-contained, no network
    for name in ALL:
        assert f'id="fig-{name}"' in html
    tips = re.findall(r"<title>(row\d+): N=", html)
    assert len(set(tips)) == 240  # every run has a tooltip somewhere


@pytest.mark.slow
def test_one_wild_interval_keeps_the_axes(chinchilla):
    ds, fits = chinchilla
    wild = copy.deepcopy(fits)
    row = wild.approach2.budgets[3]
    for v in (row.N_opt, row.D_opt):
        v.ci = [v.value * 1e-6, v.value * 1e6]
    for fn, axis in ((plot_isoflop, "x"), (plot_compute_optimal, "y")):
        tame, loose = fn(ds, fits), fn(ds, wild)
        get = f"get_{axis}lim"
        for a, b in zip(tame.axes, loose.axes):
            if a.get_label() == "<colorbar>":
                continue
            assert getattr(a, get)() == pytest.approx(getattr(b, get)()), fn.__name__
        assert "interval beyond the axis" in labels(loose) and "interval beyond the axis" not in labels(tame)
        close(tame, loose)
    fig = plot_isoflop(ds, wild)  # and the axis spans the data, not the interval
    lo, hi = fig.axes[0].get_xlim()
    N = ds.runs["N"].to_numpy()
    assert N.min() / 20 < lo < N.min() and N.max() < hi < N.max() * 20
    close(fig)


@pytest.mark.slow  # every plot of a partial fit drawn: the full suite
def test_partial_fits_still_give_the_loss_curves(chinchilla, tmp_path):
    ds, fits = chinchilla
    why = "only 2 model sizes: Approach 3 needs 3 or more"
    partial = replace(copy.deepcopy(fits), approach3=Approach3(error=why), allocation=Allocation(error=why),
                      approach2=Approach2(skipped=why), recipe=[], holdout=Holdout(approach3=None, kaplan=None))
    made = make_plots(ds, partial, tmp_path)
    assert {"loss_curves", "frontier", "compute_optimal"} <= set(made)
    assert not {"fit_nd", "residuals", "holdout"} & set(made) and (tmp_path / "loss_curves.png").exists()
    fig = plot_isoflop(ds, partial)  # no parabola at all: every budget's runs hollow, left out of Approach 2
    assert len(hollow(fig)) >= 2 and any("left out" in t for t in labels(fig))
    close(fig)
    nothing = Fits.assemble(estimate(replace(ds, runs=ds.runs.iloc[:0])), trust=[])  # every run left out
    # nothing fitted: only the plots of the runs themselves
    assert all(fn(ds, nothing) is None for name, fn in PLOTS if name not in ("isoflop", "loss_curves"))


def test_left_out_runs_are_hollow(chinchilla):
    ds, fits = chinchilla
    fig = plot_isoflop(ds, fits)  # log-binned budgets: runs in none are left out of Approach 2
    assert hollow(fig) and "in no FLOP budget: left out of Approach 2" in labels(fig)
    close(fig)
    fig = plot_residuals(ds, fits)  # the held-out largest size, under the fit made without it
    assert len(hollow(fig)) == 3 and any(t.startswith("held out") for t in labels(fig))
    ylabel = fig.axes[0].get_ylabel()
    assert "ln(observed / predicted" in ylabel
    close(fig)
    fig = plot_holdout(ds, fits)
    assert hollow(fig) and "held out: observed" in labels(fig)
    held = fits.holdout.approach3
    assert f"{held.mean_rel_error * 100:+.2f}%" in fig.axes[0].get_title()  # the refit reproduces fits.json's
    close(fig)
    assert plot_holdout(ds, replace(fits, holdout=Holdout(approach3=None, kaplan=None))) is None


def test_size_legend_on_the_flops_panel_and_excluded_runs_named(tmp_path):
    from helpers import write_sweep

    root = write_sweep(tmp_path / "synth")  # 12 runs with eval curves, 2 excluded (failed, incomplete)
    ds = load_sweep(root, "non_embedding")
    fits = SimpleNamespace(approach1=Approach1(envelope=[], warnings=[]))  # all the plot reads of the fits
    fig = plot_loss_curves(ds, fits)
    tokens, flops = fig.axes[:2]
    sizes = [t.get_text() for t in flops.get_legend().get_texts() if t.get_text().startswith("N = ")]
    assert len(sizes) == 4 and sizes == [t.get_text() for t in tokens.get_legend().get_texts()]
    assert "2 run(s) excluded before fitting (not drawn)" in labels(fig)
    close(fig)


def test_bands_from_the_recipe_intervals():
    def row(C, ci):
        return RecipeRow(key=f"{C:.3g}", C=C, N_opt=Value(2e8 * C / 1e18, ci), D_opt=Value(1e9), tpp=Value(20.0))

    fits = SimpleNamespace(recipe=[row(1e18, [1e8, 4e8]), row(1e20, [1e9, 4e9]), row(1e22, None)])
    c = np.array([1e17, 1e18, 1e19, 1e20, 1e21])
    lo, hi, at = recipe_band(fits, "N_opt", c)
    assert np.isnan(lo[0]) and np.isnan(hi[-1]) and list(at) == [1e18, 1e20]
    assert lo[2] == pytest.approx(np.sqrt(1e8 * 1e9)) and hi[2] == pytest.approx(np.sqrt(4e8 * 4e9))  # log-log
    assert recipe_band(SimpleNamespace(recipe=[]), "N_opt", c) is None


@pytest.mark.slow
def test_bands_from_bootstrap_draws_when_fits_keep_them(chinchilla):
    from sweep.analysis.report.plots.fit import plot_fit_nd
    from sweep.analysis.report.plots.optimal import plot_frontier

    ds, fits = chinchilla
    rng = np.random.default_rng(0)
    a3 = fits.approach3
    draws = {k: (getattr(a3, k).value * np.exp(rng.normal(0, 0.01, 30))).tolist()
             for k in ("E", "A", "B", "alpha", "beta")}
    kept = replace(fits, approach3=replace(a3, samples=ParamDraws(**draws)))
    for fn in (plot_fit_nd, plot_frontier):
        without, with_draws = fn(ds, fits), fn(ds, kept)
        assert any(t.startswith("no band") for t in labels(without))
        assert any(t.startswith("95% band") for t in labels(with_draws)), fn.__name__
        close(without, with_draws)


@pytest.mark.slow
def test_every_plot_for_a_real_tiny_sweep(tmp_path, corpus):
    from helpers import local_overrides, run_cell

    from sweep.config import compose

    for model in ("gpt-6k", "gpt-12k", "gpt-25k", "gpt-50k"):
        for flops in ("5e9", "1e10"):  # under one pass over the small corpus: no run repeats its data
            summary, _ = run_cell(compose(local_overrides(tmp_path, corpus, f"model={model}", f"train.flops={flops}",
                                                          "sweep.name=tiny", "train.eval_every=10")))
            assert summary["status"] == "completed"
    report = run(sweep_dir=tmp_path / "tiny", bootstrap=20, wandb_mode="off", formats="png,svg,pdf")
    out = report.parent
    fits = json.loads((out / "fits.json").read_text())
    made = set(fits["plots"])
    assert {"isoflop", "fit_nd", "residuals", "compute_optimal", "frontier", "loss_curves"} <= made
    assert ("holdout" in made) == bool((fits.get("holdout") or {}).get("approach3"))
    for name in made:
        assert all((out / f"{name}.{fmt}").stat().st_size > 5000 for fmt in FORMATS), name
    html = (out / "report.html").read_text()
    assert html.count('<figure id="fig-') == len(made) and re.search(r"<title>gpt-50k_f1e10_s0\S*: N=", html)


def test_report_html_tooltips_and_markdown(tmp_path):
    from sweep.analysis.report.html import figure_html, markdown_html
    from sweep.analysis.report.plots import PlotSet
    from sweep.analysis.report.plots.base import figure, hover_marks, tip

    fig, ax = figure()
    tip(fig, ax.scatter([1, 2, 3], [3, 1, 2]), ["run a", "run <b>", "run c"])
    tip(fig, ax.scatter([1, 2], [1, 1]), ["one label too few"])  # mismatched: no tooltips rather than wrong ones
    ax.set_xlim(0.5, 2.5)  # the third point is outside the axes: clipped, no tooltip
    plots = PlotSet()
    plots["demo"] = tmp_path / "demo.png"
    fig.savefig(plots["demo"])
    plots.hover["demo"] = hover = hover_marks(fig)
    close(fig)
    assert [m["label"] for m in hover["marks"]] == ["run a", "run <b>"]
    (x1, y1), (x2, y2) = (m["xy"] for m in hover["marks"])
    assert 0 < x1 < x2 < hover["width"] and 0 < y1 < y2 < hover["height"]  # y grows downwards, as in the image
    page = figure_html("demo", plots, "a caption")
    assert re.findall(r"<title>([^<]*)</title>", page) == ["run a", "run &lt;b&gt;"]
    assert 'href="data:image/png;base64,' in page and "<figcaption>a caption</figcaption>" in page
    shown = []
    text = ("# Title\n\nSome **bold** and `code <x>`.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two\n\n"
            "![cap](fit_nd.png)\n*the caption*\n")
    html = markdown_html(text, lambda src, alt, cap: shown.append((src, cap)) or "<figure></figure>")
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html and "<code>code &lt;x&gt;</code>" in html
    assert "<td>1</td><td>2</td>" in html and "<li>two</li>" in html and shown == [("fit_nd.png", "the caption")]


@pytest.mark.slow
def test_fits_keep_the_bootstrap_draws_that_band_the_law(tmp_path):
    from sweep.analysis.report.plots.base import param_draws

    out = tmp_path / "out"
    assert main(["--csv", str(CHINCHILLA), "--out", str(out), "--bootstrap", "20", "--wandb", "off"]) == 0
    a3 = json.loads((out / "fits.json").read_text())["approach3"]
    assert {k: len(v) for k, v in a3["samples"].items()} == {k: 20 for k in ("E", "A", "B", "alpha", "beta")}
    draws = param_draws(read_fits(out / "fits.json").approach3.samples)  # the saved draws, read back
    assert draws and min(d["alpha"] for d in draws) <= a3["alpha"] <= max(d["alpha"] for d in draws)
