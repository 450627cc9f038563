"""report.md and the text around the fits: the report itself (opening with the trust checklist, trust.py), the
warnings a reader must see (`diagnostics`), and the few lines `sweep analyze` prints (`summary_text`). Formatting
only: no fits, no plots.

An interval of zero width (every resample gave the same value) is never shown as one: the value is, with why it has
no interval. A report on runs too few for Approach 3 says what is missing, lists the runs, and shows what could be
drawn and fitted.
"""

from __future__ import annotations

from pathlib import Path

from ...files import write_text_atomic
from ..inputs.load import UNFINISHED
from ..result.laws import Approach1
from ..result.fits import Fits
from .fmt import sci, value_text as _get, why_none as _why_none
from .emergence import is_emergence_plot, section_lines
from .laws import report_lines as laws_beyond_lines
from .leaderboard import conventions_lines, headline, leaderboard_lines
from .plots import CAPTIONS
from .runs import cooldown_lines, missing, repeated, seed_lines
from .trust import checklist



def _recipe_table(fits: Fits) -> list[str]:
    """One FLOP convention per table: the runs' own FLOPs (Approach 3's optimum along them, and Approach 2's, which
    is fitted to them); where the runs did not count C = 6ND, Approach 3's closed form under 6ND in a table apart."""
    own = not fits.flops_per_token_fit.is_6N
    has2 = fits.approach2.a is not None
    unit = "C (FLOPs as the runs counted them)" if own else "C (FLOPs, = 6·N·D)"
    head = f"| {unit} | N* (A3) | D* (A3) | tokens/param (A3) |"
    head += " N* (A2) | D* (A2) | tokens/param (A2) |" if has2 else ""
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in fits.recipe:
        n, d, t = (r.N_opt_flops, r.D_opt_flops, r.tpp_flops) if own else (r.N_opt, r.D_opt, r.tpp)
        row = f"| {sci(r.C)} | {_get(n, '{:.3g}')} | {_get(d, '{:.3g}')} | {_get(t, '{:.1f}')} |"
        if has2:
            row += f" {_get(r.N_opt_a2, '{:.3g}')} | {_get(r.D_opt_a2, '{:.3g}')} | {_get(r.tpp_a2, '{:.1f}')} |"
        lines.append(row)
    if own:
        lines += ["", "Approach 3's closed-form optimum if C were counted as 6·N·D instead (Approach 2 is fitted to "
                  "the runs' own FLOPs and has no such column):", "",
                  "| C (FLOPs, = 6·N·D) | N* (A3) | D* (A3) | tokens/param (A3) |", "|---|---|---|---|"]
        lines += [f"| {sci(r.C)} | {_get(r.N_opt, '{:.3g}')} | {_get(r.D_opt, '{:.3g}')} | {_get(r.tpp, '{:.1f}')} |"
                  for r in fits.recipe]
    return lines


def _aggregation_text(agg) -> list[str]:
    """What was binned and how, when the input was large enough to be (aggregate.py)."""
    if not agg.applied:
        return []
    per = agg.runs_per_bin
    text = (f"**Aggregated input.** More than {agg.above} runs: the {agg.runs} runs were binned by "
            f"{agg.key} into {agg.bins} bins ({per.min}–{per.max} runs each, median {per.median:g}). "
            f"A bin is a pseudo-run at the {agg.representative}. Fits: {agg.fits}. Bootstrap: "
            f"{agg.bootstrap}.")
    if agg.runs_out_of_budgets:
        text += (f" {agg.runs_out_of_budgets} runs were in FLOP budgets of fewer than 3 model sizes (no isoFLOP "
                 f"curve) and count as in no budget.")
    if agg.eval_curves_dropped:
        text += " The runs' eval curves are not used: a bin holds its runs' final points."
    return [text, ""]


def _laws(fits: Fits) -> list[str]:
    """The fitted laws: Approach 3 and its allocation, Approaches 2 and 1 (headline values say why if no interval)."""
    a3, al, a2, a1, why = fits.approach3, fits.allocation, fits.approach2, fits.approach1, _why_none(fits)
    L = ["## The laws", "", *leaderboard_lines(fits), *conventions_lines(fits),
         f"### Each law (N counted as {fits.params})", "",
         "**Approach 3** (parametric, Huber δ=1e-3 on log loss, L-BFGS-B): L(N, D) = E + A/N^α + B/D^β with",
         "", "| E | A | B | α | β |", "|---|---|---|---|---|",
         "| " + " | ".join(_get(getattr(a3, k), why_none=why) for k in ("E", "A", "B", "alpha", "beta")) + " |", "",
         *_allocation(a3, al, why), ""]
    if a2.a is not None:
        L.append(f"**Approach 2** (isoFLOP parabolas, {len(a2.budgets)} budgets): N* ∝ C^a with "
                 f"a = {_get(a2.a, '{:.3f}', why)}; D* ∝ C^b with b = {_get(a2.b, '{:.3f}', why)}.")
    else:
        L.append(f"**Approach 2**: not fitted — {a2.skipped or '; '.join(a2.warnings or [])}.")
    return L + [""] + _approach1(a1, why)


def _allocation(a3, al, why: str) -> list[str]:
    """Approach 3's implied allocation, or, for a degenerate fit, why it is not a result."""
    if a3.degenerate:
        causes = [f"{b} at its bound" for b in a3.at_bound] + [f"term {t} negligible" for t in a3.negligible]
        return [f"Compute-optimal allocation: not given, as Approach 3 is degenerate ({', '.join(causes)}): the a, b "
                "it would imply are artefacts of its bounds (fits.json keeps them, beside approach3's at_bound and "
                "negligible)."]
    return [f"Compute-optimal allocation implied (C = 6ND): N* = G·(C/6)^a, D* = G⁻¹·(C/6)^b with "
            f"a = β/(α+β) = {_get(al.a, '{:.3f}', why)}, b = α/(α+β) = {_get(al.b, '{:.3f}', why)}, "
            f"G = {_get(al.G, '{:.3g}', why)}."]


def _approach1(a1: Approach1, why: str) -> list[str]:
    if a1.a is not None:
        return [f"**Approach 1** (lower envelope of loss vs FLOPs, {a1.source}): N* ∝ C^a with "
                f"a = {_get(a1.a, '{:.3f}', why)}; D* ∝ C^b with b = {_get(a1.b, '{:.3f}', why)}.", ""]
    return [f"**Approach 1**: not fitted — {'; '.join(a1.warnings) or 'no envelope'}.", ""]


def _recipe(fits: Fits) -> list[str]:
    a3, a2 = fits.approach3, fits.approach2
    L = [f"## Compute-optimal recipe (N counted as {fits.params})", ""]
    if (line := headline(fits)) is not None:
        L += [line + " Approach 3's own recipe follows.", ""]
    if a3.degenerate:
        why = [f"{b} at its bound" for b in a3.at_bound] + [f"term {t} negligible" for t in a3.negligible]
        alt = (f" Approach 2's allocation stands apart from it: N* ∝ C^{a2.a.value:.3f}, D* ∝ C^{a2.b.value:.3f}."
               if a2.a is not None else "")
        return L + [f"Not given: Approach 3 is degenerate ({', '.join(why)}), so the N*, D* it implies would be "
                    f"artefacts of its bounds, not of the data.{alt}", ""]
    return L + ["Tokens per parameter at a few budgets (the sweep's range, then extrapolated 10×–1000× beyond it):",
                "", *_recipe_table(fits), ""]


def _holdout(fits: Fits, unit: str) -> list[str]:
    L = ["## Extrapolation check (largest size held out)", ""]
    for name, h in (("Approach 3", fits.holdout.approach3), ("L(N)", fits.holdout.kaplan)):
        if h:
            held = (f"N ≥ {sci(h.held_out_N_min)} (the top tenth of a continuum of sizes)"
                    if h.held_out_N_min is not None else f"N ≈ {sci(h.held_out_N)}")
            L.append(f"- {name}: fitted without {held}, its {h.n_test} {unit[:-1]}(s) predicted with "
                     f"mean relative loss error {h.mean_rel_error * 100:+.2f}% (max |error| "
                     f"{h.max_abs_rel_error * 100:.2f}%).")
        else:
            L.append(f"- {name}: not run (it needs a fit over at least 4 distinct model sizes).")
    return L + [""]


def write_report(ds, fits: Fits, plots: dict, out: Path) -> Path:
    a3, a2, bs, agg = fits.approach3, fits.approach2, fits.bootstrap, fits.aggregation
    unit = "bins" if agg.applied else "runs"
    binned = f" (aggregated into {agg.bins} bins)" if agg.applied else ""
    L = [f"# Scaling-law analysis: {ds.sweep_name}", "", "## Can I trust this?", "",
         *checklist(fits.trust), "",
         f"Source: `{ds.source}` — {fits.runs.used} runs used{binned}, {len(ds.excluded)} excluded. "
         f"Parameters N are counted as **{ds.params}**; tokens D are training tokens; C is training FLOPs "
         f"({'6·N·D' if fits.flops_per_token_fit.is_6N else 'as each run counted them'}). " +
         (f"Intervals are 95% bootstrap percentiles over {bs.n} resamples of {unit} ({bs.method})."
          if bs.n else "No bootstrap was run (--bootstrap 0), so no intervals."), "", *_aggregation_text(agg),
         *cooldown_lines(fits.cooldown), *seed_lines(fits.seeds)]
    fitted = a3.fitted
    if fitted:
        L += _laws(fits) + _recipe(fits) + _holdout(fits, unit)
        L += laws_beyond_lines(fits)  # report/laws.py: --holdout, over-training, inference, Kaplan
    else:
        L += missing(ds, fits) + _approach1(fits.approach1, _why_none(fits)) + leaderboard_lines(fits)
    if fits.lr:
        from .lr import report_lines

        L += report_lines(fits.lr, rule_path=out / "lr_rule.json")

    L += section_lines(fits.emergence, plots)  # "Abilities and emergence" with its figures (none without tasks)
    L += ["## Plots", ""]

    captions = {**CAPTIONS, **({} if ds.has_curves else
                               {"loss_curves": "Final loss vs FLOPs per run, with the lower envelope (Approach 1)"})}
    for k, p in ((k, p) for k, p in plots.items() if not is_emergence_plot(k)):
        L += [f"![{captions.get(k, k)}]({p.name})", f"*{captions.get(k, k)}*", ""]
    L += ["## Details", ""]
    if fitted:
        L += ["### Approach 3 fit", "",
              f"Objective (sum of Huber losses) {a3.objective:.6g} over {a3.n_points} {unit}; "
              f"{a3.starts.refined} starts refined out of {a3.starts.candidates} scored, "
              f"{a3.starts.reached_best} reached the best optimum (objective range "
              f"{a3.starts.objective_range[0]:.6g}–{a3.starts.objective_range[1]:.6g}).", ""]
    if a2.budgets:
        L += [f"### Approach 2 budgets (C as the runs counted it, N counted as {fits.params})", "",
              "| C | runs | N* | D* | tokens/param | loss at N* | N* by Approach 3 | note |",
              "|---|---|---|---|---|---|---|---|"]
        L += [f"| {sci(r.C)} | {r.n_runs} | {_get(r.N_opt, '{:.3g}')} | {_get(r.D_opt, '{:.3g}')} | "
              f"{_get(r.tpp, '{:.1f}')} | {r.L_opt.value:.4f} | "
              f"{_get(r.N_opt_approach3, '{:.3g}') if r.N_opt_approach3 else '—'}"
              f"{' (degenerate)' if r.N_opt_approach3 and a3.degenerate else ''} | {r.edge or ''} |"
              for r in a2.budgets]
        L.append("")
    if fits.kaplan.skipped and fitted:
        L += ["### L(N) = E + A/N^α", "", f"Not fitted: {fits.kaplan.skipped}.", ""]
    if fits.kaplan.fits:
        L += ["### L(N) = E + A/N^α", "", "| basis | sizes | E | A | α |", "|---|---|---|---|---|"]
        L += [f"| {f.key} | {f.n_sizes} | {_get(f.E)} | {_get(f.A)} | {_get(f.alpha)} |" for f in fits.kaplan.fits]
        L.append("")
    if fits.loss_vs_tokens:
        rows = fits.loss_vs_tokens
        L += ["### L(D) = E + B/D^β per size (descriptive, no intervals)", "", "| N | points | E | B | β | from |",
              "|---|---|---|---|---|---|"]
        L += [f"| {sci(f.N)} | {f.n_points} | {f.E:.4g} | {f.B:.4g} | {f.beta:.3f} | {f.basis} |" for f in rows[:12]]
        L += ([f"| … {len(rows) - 12} more in fits.json | | | | | |"] if len(rows) > 12 else []) + [""]
    L += repeated(ds, fits)
    L += ["## Warnings", ""] + ([f"- {w}" for w in fits.warnings] or ["- none"]) + [""]
    L += ["## Excluded runs", ""] + ([f"- `{e['run_name']}`: {e['reason']}" for e in ds.excluded] or ["- none"])
    if fits.wandb is not None and fits.wandb.id:
        L += ["", f"wandb analysis run `{fits.wandb.id}` ({fits.wandb.mode}), files in `{fits.wandb.dir}`."]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(L) + "\n")
    return path


def summary_text(fits: Fits, report_path: Path) -> str:
    """The few lines `sweep analyze` prints: the key laws with their intervals, warnings, where the report is."""
    a3, a2, agg = fits.approach3, fits.approach2, fits.aggregation
    binned = f" (aggregated into {agg.bins} bins: see the report)" if agg.applied else ""
    lines = [f"runs used: {fits.runs.used}{binned}, excluded: {len(fits.runs.excluded)} (parameters: {fits.params})"]
    unfinished = sum(e.reason in UNFINISHED for e in fits.runs.excluded)
    if unfinished:
        lines.append(f"{unfinished} cell(s) of the grid not done yet (queued, running or stopped: `sweep status` says "
                     f"which); these fits are of the {fits.runs.used} done")
    lines.append(f"Approach 3  not fitted: {a3.error}" if not a3.fitted else
                 "Approach 3  L = E + A/N^alpha + B/D^beta:  " + ", ".join(f"{k}={_get(getattr(a3, k))}"
                                                                        for k in ("E", "A", "B", "alpha", "beta")))
    if a2.a is not None:
        lines.append(f"Approach 2  N_opt ∝ C^a, D_opt ∝ C^b:  a={_get(a2.a)}, b={_get(a2.b)}")
    else:
        lines.append(f"Approach 2  not fitted: {a2.skipped or 'no two usable FLOP budgets'}")
    if fits.leaderboard is not None:
        lines.append(f"leaderboard ({fits.leaderboard.protocol}): {fits.leaderboard.verdict}")
        if (line := headline(fits)) is not None:
            lines.append(line)
    flagged = [t for t in fits.trust if t.ok is False]
    lines += [f"check: {t.detail}" for t in flagged[:3]]
    if len(flagged) > 3:
        lines.append(f"... {len(flagged) - 3} more findings under \"Can I trust this?\" in the report")
    lines += [f"warning: {w}" for w in fits.warnings[:5]]
    if len(fits.warnings) > 5:
        lines.append(f"... {len(fits.warnings) - 5} more warnings in the report")
    return "\n".join(lines + [f"report: {report_path}"])
