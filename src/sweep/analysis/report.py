"""report.md and the text around the fits: the report itself, the warnings a reader must see (`diagnostics`), and
the few lines `sweep analyze` prints (`summary_text`). Formatting only: no fits, no plots.
"""

from __future__ import annotations

from pathlib import Path

from ..files import write_text_atomic


def _ci_text(value, ci, fmt="{:.4g}") -> str:
    if value is None:
        return "—"
    return fmt.format(value) + (f" [{fmt.format(ci[0])}, {fmt.format(ci[1])}]" if ci else "")


def _get(section: dict, key: str, fmt="{:.4g}") -> str:
    return _ci_text(section.get(key), (section.get("ci") or {}).get(key), fmt)


def sci(x: float) -> str:
    """A FLOP count or size as the report and the plots show it."""
    return f"{x:.3g}"


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


# ----------------------------------------------------------------------------------------------- report
def _recipe_table(fits) -> list[str]:
    own = not fits["flops_per_token_fit"]["is_6N"]
    has2 = "a" in fits["approach2"]
    head = "| C (FLOPs) | N* (A3) | D* (A3) | tokens/param (A3) |"
    head += " tokens/param (A3, data's FLOPs/token) |" if own else ""
    head += " N* (A2) | D* (A2) | tokens/param (A2) |" if has2 else ""
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in fits["recipe"]:
        row = (f"| {sci(r['C'])} | {_get(r, 'N_opt', '{:.3g}')} | {_get(r, 'D_opt', '{:.3g}')} | "
               f"{_get(r, 'tpp', '{:.1f}')} |")
        row += f" {_get(r, 'tpp_flops', '{:.1f}')} |" if own else ""
        if has2:
            row += (f" {_get(r, 'N_opt_a2', '{:.3g}')} | {_get(r, 'D_opt_a2', '{:.3g}')} | "
                    f"{_get(r, 'tpp_a2', '{:.1f}')} |")
        lines.append(row)
    return lines


def _aggregation_text(agg: dict) -> list[str]:
    """What was binned and how, when the input was large enough to be (aggregate.py)."""
    if not agg.get("applied"):
        return []
    per = agg["runs_per_bin"]
    text = (f"**Aggregated input.** More than {agg['above']} runs: the {agg['runs']} runs were binned by "
            f"{agg['key']} into {agg['bins']} bins ({per['min']}–{per['max']} runs each, median {per['median']:g}). "
            f"A bin is a pseudo-run at the {agg['representative']}. Fits: {agg['fits']}. Bootstrap: "
            f"{agg['bootstrap']}.")
    if agg["runs_out_of_budgets"]:
        text += (f" {agg['runs_out_of_budgets']} runs were in FLOP budgets of fewer than 3 model sizes (no isoFLOP "
                 f"curve) and count as in no budget.")
    if agg.get("eval_curves_dropped"):
        text += " The runs' eval curves are not used: a bin holds its runs' final points."
    return [text, ""]


def write_report(ds, fits, plots: dict, out: Path) -> Path:
    a3, al, a2, a1, ho = fits["approach3"], fits["allocation"], fits["approach2"], fits["approach1"], fits["holdout"]
    bs, agg = fits["bootstrap"], fits.get("aggregation") or {}
    unit = "bins" if agg.get("applied") else "runs"
    binned = f" (aggregated into {agg['bins']} bins)" if agg.get("applied") else ""
    L = [f"# Scaling-law analysis: {ds.sweep_name}", "",
         f"Source: `{ds.source}` — {fits['runs']['used']} runs used{binned}, {len(ds.excluded)} excluded. "
         f"Parameters N are counted as **{ds.params}**; tokens D are training tokens; C is training FLOPs "
         f"({'6·N·D' if fits['flops_per_token_fit']['is_6N'] else 'as each run counted them'}). " +
         (f"Intervals are 95% bootstrap percentiles over {bs['n']} resamples of {unit} ({bs['method']})."
          if bs["n"] else "No bootstrap was run (--bootstrap 0), so no intervals."), "", *_aggregation_text(agg),
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
            held = (f"N ≥ {sci(h['held_out_N_min'])} (the top tenth of a continuum of sizes)" if "held_out_N_min" in h
                    else f"N ≈ {sci(h['held_out_N'])}")
            L.append(f"- {name}: fitted without {held}, its {h['n_test']} {unit[:-1]}(s) predicted with "
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
          f"Objective (sum of Huber losses) {a3['objective']:.6g} over {a3['n_points']} {unit}; "
          f"{a3['starts']['refined']} starts refined out of {a3['starts']['candidates']} scored, "
          f"{a3['starts']['reached_best']} reached the best optimum (objective range "
          f"{a3['starts']['objective_range'][0]:.6g}–{a3['starts']['objective_range'][1]:.6g}).", ""]
    if a2.get("budgets"):
        L += ["### Approach 2 budgets", "", "| C | runs | N* | D* | tokens/param | loss at N* | note |",
              "|---|---|---|---|---|---|---|"]
        L += [f"| {sci(r['C'])} | {r['n_runs']} | {_get(r, 'N_opt', '{:.3g}')} | {_get(r, 'D_opt', '{:.3g}')} | "
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
        L += [f"| {sci(f['N'])} | {f['n_points']} | {f['E']:.4g} | {f['B']:.4g} | {f['beta']:.3f} | {f['basis']} |"
              for f in rows[:12]]
        L += ([f"| … {len(rows) - 12} more in fits.json | | | | | |"] if len(rows) > 12 else []) + [""]
    L += ["## Warnings", ""] + ([f"- {w}" for w in fits["warnings"]] or ["- none"]) + [""]
    L += ["## Excluded runs", ""] + ([f"- `{e['run_name']}`: {e['reason']}" for e in ds.excluded] or ["- none"])
    if fits.get("wandb", {}).get("id"):
        L += ["", f"wandb analysis run `{fits['wandb']['id']}` ({fits['wandb']['mode']}), files in "
                  f"`{fits['wandb']['dir']}`."]
    path = out / "report.md"
    write_text_atomic(path, "\n".join(L) + "\n")
    return path


def summary_text(fits: dict, report_path: Path) -> str:
    """The few lines `sweep analyze` prints: the key laws with their intervals, warnings, where the report is."""
    a3, a2 = fits["approach3"], fits["approach2"]
    agg = fits.get("aggregation") or {}
    binned = f" (aggregated into {agg['bins']} bins: see the report)" if agg.get("applied") else ""
    lines = [f"runs used: {fits['runs']['used']}{binned}, excluded: {len(fits['runs']['excluded'])} "
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
