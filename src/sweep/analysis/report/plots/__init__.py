"""The plots of `sweep analyze`, written in every format asked for: `make_plots` draws each plot the data and fits
allow (data.py: isoFLOP curves, loss curves; fit.py: the L(N, D) fit, its residuals, the held-out-size check;
optimal.py: N*(C) and D*(C), the compute frontier; laws.py, emergence.py: the laws beyond one fit, the abilities),
saves it, and keeps where its runs' points landed in the PNG, for report.html's tooltips. A fit that is missing or
failed (a grid too small to fit) skips the plots that need it, never the rest. base.py holds what every plot
shares; compare.py draws `sweep compare`'s figures. Plot modules import from inputs/, laws/, lr/, emergence/ and
report/fmt.py, never from the rest of report/.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ...result.fits import Fits
from .base import PLOT_STYLE, hover_marks
from .data import plot_isoflop, plot_loss_curves
from .fit import plot_fit_nd, plot_holdout, plot_residuals
from .laws import LAW_CAPTIONS, LAW_PLOTS
from .optimal import plot_compute_optimal, plot_frontier
from .emergence import EMERGENCE_CAPTIONS, emergence_figures


def plot_lr_study(ds, fits):
    """An lr sweep's best lr per size and lr*(N) (lr_outputs.plot_lr), when the runs form one."""
    from ..lr import plot_lr

    return plot_lr(fits.lr) if fits.lr else None


PLOTS = (("lr", plot_lr_study), ("isoflop", plot_isoflop), ("fit_nd", plot_fit_nd), ("residuals", plot_residuals),
         ("holdout", plot_holdout), ("compute_optimal", plot_compute_optimal), ("frontier", plot_frontier),
         ("loss_curves", plot_loss_curves)) + LAW_PLOTS

CAPTIONS = {
    "lr": "Learning-rate study: loss against peak lr per size with its parabola and ★ best lr (95% interval); best lr "
          "against N_matmul with the fitted lr*(N); edge-bound sizes hollow",
    "isoflop": "IsoFLOP curves with fitted parabolas and minima (Approach 2); runs Approach 2 left out are hollow",
    "fit_nd": "Approach 3: predicted vs observed, and loss vs N coloured by D with the law's curves",
    "residuals": "Approach 3 residuals ln(observed / predicted) against N, D and C; the held-out largest size "
                 "hollow, under the fit made without it",
    "holdout": "Extrapolation check: the fit made without the largest size, its prediction for those runs (with its "
               "interval) and what they observed",
    "compute_optimal": "Compute-optimal N*(C) and D*(C): Approaches 1, 2, 3; bands are the recipe's 95% bootstrap "
                       "intervals joined in log-log",
    "frontier": "Compute frontier: every run's loss vs FLOPs, Approach 1's envelope, Approach 2's minima and "
                "Approach 3's loss at the compute-optimal N, D",
    "loss_curves": "Loss vs tokens per run, and loss vs FLOPs with the lower envelope (Approach 1)",
    **LAW_CAPTIONS,
    **EMERGENCE_CAPTIONS,  # the per-task figures' captions: plots/emergence.py
}


class PlotSet(dict):
    """{name: path of its PNG} (what report.md, report.html and wandb show), in drawing order; `hover[name]` where its
    runs' points landed in that PNG, with their tooltips (plots/base.py's hover_marks), for report.html."""

    def __init__(self):
        super().__init__()
        self.hover: dict[str, dict] = {}


def _figures(ds, fits: Fits):
    """(name, figure or None) of each plot, drawn one at a time: the laws' plots, then the abilities' (emergence)."""
    yield from ((name, fn(ds, fits)) for name, fn in PLOTS)
    yield from emergence_figures(fits.emergence)


def make_plots(ds, fits: Fits, out: Path, formats: tuple[str, ...] = ("png",)) -> PlotSet:
    """Each plot the data and fits allow, saved as PNG and in every other format asked for; returns a PlotSet."""
    formats = ("png", *(f for f in formats if f != "png"))
    made = PlotSet()
    with plt.rc_context(PLOT_STYLE), np.errstate(all="ignore"):  # a degenerate fit's inf is simply not drawn
        for name, fig in _figures(ds, fits):
            if fig is None:
                continue
            try:
                fig.savefig(out / f"{name}.png")
                made.hover[name] = hover_marks(fig)  # the PNG's layout: read before another format redraws it
                for fmt in formats[1:]:
                    fig.savefig(out / f"{name}.{fmt}")
            finally:
                plt.close(fig)
            made[name] = out / f"{name}.png"
    return made
