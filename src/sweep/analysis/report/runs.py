"""The report's sections about the runs themselves: for runs too few for Approach 3, what each law needs that they
lack and the runs listed; and the runs that repeat their data, with Muennighoff's effective-data fit when they were
fitted (repeat.py). Formatting only.
"""

from __future__ import annotations

from .fmt import sci, value_text, why_none
from ..inputs.load import HOLDOUT_MIN_SIZES, n_sizes
from ..result.fits import Cooldown, Fits
from ..result.seeds import Seeds


def missing(ds, fits: Fits) -> list[str]:
    """A report on too few runs: what each law needs that the runs lack, then the runs themselves."""
    enough = next((t.detail for t in fits.trust if t.check == "enough_data"), None)
    L = ["## What is missing", "", f"- {enough or fits.approach3.error}.",
         f"- Approach 2 (isoFLOP curves) needs ≥ 2 FLOP budgets of ≥ 3 model sizes each: "
         f"{fits.approach2.skipped or 'not fitted'}.",
         *([f"- The held-out-size check needs ≥ {HOLDOUT_MIN_SIZES} model sizes: "
            f"{'this sweep has' if ds.has_curves else 'there are'} {n_sizes(ds.runs)}."]
           if n_sizes(ds.runs) < HOLDOUT_MIN_SIZES else [])]
    if fits.kaplan.skipped:
        L.append(f"- L(N) needs one tokens/param reached by ≥ 3 sizes: {fits.kaplan.skipped}.")
    r = ds.runs
    L += ["", "What could be drawn and fitted is below.", "", "## Runs", "",
          "| run | model | N | tokens D | FLOPs C | loss | epochs |", "|---|---|---|---|---|---|---|"]
    for i in range(min(len(r), 50)):
        row = r.iloc[i]
        epochs = row.get("epochs")
        epochs = f"{epochs:.3g}" if isinstance(epochs, float) and epochs == epochs else ""
        L.append(f"| `{row['run_name']}` | {row.get('model') or ''} | {sci(row['N'])} | {sci(row['D'])} | "
                 f"{sci(row['C'])} | {row['loss']:.4f} | {epochs} |")
    L += [f"| … {len(r) - 50} more | | | | | | |"] if len(r) > 50 else []
    return L + [""]


def repeated(ds, fits: Fits) -> list[str]:
    """The runs above 1 epoch, and Muennighoff's effective-data fit when they were fitted."""
    rep = ds.repeated
    if not rep:
        return []
    inc = rep[0]["included"]
    L = ["## Repeated data", "", f"{len(rep)} run(s) trained on more tokens than the corpus holds unique ones "
         f"(above 1 epoch); " + ("**included** in the laws (--include-repeated)." if inc else
                                 "left out of the laws (pass --include-repeated to fit them)."), "",
         "| run | epochs |", "|---|---|", *[f"| `{x['run_name']}` | {x['epochs']:.3g} |" for x in rep[:30]]]
    L += [f"| … {len(rep) - 30} more | |"] if len(rep) > 30 else []
    eff = fits.repeated_data
    if eff:
        why = why_none(fits) if eff.n_repeated >= 3 else "under 3 runs to resample"
        bound = " (at a bound of its range: not identified)" if eff.at_bound else ""
        L += ["", f"**Effective data** ({eff.form}; {eff.method}): " + (
            f"not fitted — {eff.skipped}." if eff.skipped is not None else
            f"R* = {value_text(eff.R_star, '{:.3g}', why)} repetitions{bound}. With it the "
            f"{eff.n_repeated} repeated runs' losses are predicted with mean error "
            f"{eff.mean_rel_error * 100:+.2f}% (as if every token were fresh: "
            f"{eff.mean_rel_error_as_fresh * 100:+.2f}%).")]
    return L + [""]


def cooldown_lines(cooldown: Cooldown | None) -> list[str]:
    """report.md's statement of the compute saved (nothing without branches)."""
    if not cooldown:
        return []
    missing = cooldown.trunks_missing
    saving = cooldown.saving
    return [f"Cooldown branches: {cooldown.branches} branches from {cooldown.trunks} trunk(s) cost "
            f"{cooldown.flops_spent:.3g} FLOPs, against {cooldown.flops_independent:.3g} for independent runs "
            f"of the same horizons" + (f": {100 * saving:.0f}% saved" if saving is not None else "")
            + (f" (without the trunks {', '.join(missing)}, whose summary.json is missing)" if missing else "")
            + ". Each branch is fitted as the independent run it equals; the bootstrap resamples a trunk with its "
              "branches.", ""]


def seed_lines(seeds: Seeds | None) -> list[str]:
    """The seed spread per size beside the differences between neighbouring sizes (nothing with one seed per cell)."""
    if seeds is None or seeds.sd is None:
        return []
    L = ["## Seeds", "", f"{seeds.runs} runs are {seeds.cells} cells of {seeds.seeds_min}–{seeds.seeds_max} seeds "
         f"(`seed`: initialisation and data order). Each law is fitted to the cells' mean losses; the bootstrap "
         f"resamples the cells, each with all its seeds. The spread of a cell's seeds, beside the loss gap to the "
         f"next size up at the same budget (nats):", "",
         "| N | cells | seeds | seed sd | sd of a cell mean | gap to the next size (median) |",
         "|---|---|---|---|---|---|"]
    for r in seeds.sizes:
        L.append(f"| {sci(r.N)} | {r.cells} | {r.seeds} | {_nats(r.sd)} | {_nats(r.sd_mean)} | "
                 f"{_nats(r.gap)} |")
    L += ["", f"Pooled: seed sd {_nats(seeds.sd)}, a cell mean {_nats(seeds.sd_mean)}; the median gap "
          f"{_nats(seeds.gap)} is " + (f"{seeds.gap_over_noise:.1f}×" if seeds.gap_over_noise is not None else "—")
          + " the noise of a difference of two cell means (√2 × sd of a mean)."
          + (f" Approach 3's residuals (RMS {_nats(seeds.residual_rms)}) are {seeds.residual_over_noise:.1f}× the "
             f"noise of a cell mean" + (": the law misses structure the seeds do not explain."
                                        if seeds.residual_over_noise > 2 else ": the law fits down to the seed noise.")
             if seeds.residual_over_noise is not None else ""), ""]
    return L


def _nats(x: float | None) -> str:
    return "—" if x is None else f"{x:.4f}"
