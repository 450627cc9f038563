""""Can I trust this?": concrete findings about a sweep and its fits, each a TrustCheck (check, ok, detail: fits.json's
`trust`, report.md's opening checklist). ok is True (passed), False (a finding: the detail says what, where and what
to do) or None (not checkable: the detail says why). Reads the loaded runs (with the facts load.py carries) and the
fits; fits nothing itself.
"""

from __future__ import annotations


import numpy as np

from ..inputs.load import A3_MIN_RUNS, A3_MIN_SIZES, HOLDOUT_MIN_SIZES, Dataset, n_sizes
from ..inputs.sizes import size_clusters
from ..result.fits import Laws, TrustCheck
from ...train.ladder import names, nominal_params

KAPLAN_A, CHINCHILLA_A = 0.73, 0.50  # N_opt ∝ C^a: Kaplan et al. 2020, Hoffmann et al. 2022
LR_OFF = 1.5  # an lr further than this factor from its tuned rule's is flagged
SHOWN = 4  # names listed in one finding before "and k more"
GLYPH = {True: "✓", False: "✗", None: "–"}


def _item(check: str, ok: bool | None, detail: str) -> TrustCheck:
    return TrustCheck(check=check, ok=ok, detail=detail)


def _names(names: list[str]) -> str:
    return ", ".join(names[:SHOWN]) + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


# ------------------------------------------------------------------------------------------------ the checks
def _more_sizes(models: list[str], wanted: int) -> str | None:
    """`model=...` with the sweep's ladder sizes and `wanted` more next to them (larger first), if they are rungs."""
    ladder = sorted(names(), key=nominal_params)  # the packaged ladder, smallest first
    have = [ladder.index(m) for m in models if m in ladder]
    if not have or len(have) != len(models):
        return None
    lo, hi, add = min(have), max(have), []
    while len(add) < wanted and (lo > 0 or hi < len(ladder) - 1):
        if hi < len(ladder) - 1:
            hi += 1
            add.append(hi)
        if len(add) < wanted and lo > 0:
            lo -= 1
            add.append(lo)
    return "model=" + ",".join(ladder[i] for i in sorted(set(have) | set(add))) if add else None


def enough_data(ds: Dataset, fits: Laws) -> TrustCheck:
    k, n = n_sizes(ds.runs), len(ds.runs)
    models = sorted({m for m in ds.runs.get("model", []) if isinstance(m, str)})
    missing = fits.approach3.error
    if missing and not n and ds.repeated:
        return _item("enough_data", False, f"nothing fitted: every one of the {_plural(len(ds.repeated), 'run')} "
                     f"repeats its data; pass --include-repeated to fit them anyway, or train on a larger corpus")
    if missing:
        fixes = []
        if k < A3_MIN_SIZES:
            hint = _more_sizes(models, A3_MIN_SIZES - k)
            fixes.append(f"add {A3_MIN_SIZES - k} or more model sizes" + (f" (e.g. {hint}; `sweep sizes` lists the "
                                                                          f"ladder)" if hint else ""))
        if n < A3_MIN_RUNS:
            fixes.append(f"train {A3_MIN_RUNS - n} or more further runs (more sizes, FLOP budgets or horizons)")
        return _item("enough_data", False, f"{missing}; {' and '.join(fixes) or 'add runs'}")
    if k < HOLDOUT_MIN_SIZES:
        hint = _more_sizes(models, HOLDOUT_MIN_SIZES - k)
        return _item("enough_data", False, f"only {k} model sizes: the laws are fitted but never checked on a "
                     f"held-out size (that needs ≥ {HOLDOUT_MIN_SIZES}); add a size" + (f" ({hint})" if hint else ""))
    return _item("enough_data", True, f"{k} model sizes, {n} runs: enough for Approach 3 (≥ {A3_MIN_SIZES} sizes, "
                 f"≥ {A3_MIN_RUNS} runs) and the held-out-size check (≥ {HOLDOUT_MIN_SIZES} sizes)")


def repeated_data(loaded: Dataset, fitted: Dataset) -> TrustCheck:
    rep = fitted.repeated
    if rep:
        worst = rep[0]
        where = ("included in the laws (--include-repeated); the effective-data fit (below) measures what the "
                 "repetition cost" if worst["included"] else "left out of the laws (--include-repeated fits them)")
        verb = "repeats its" if len(rep) == 1 else "repeat their"
        return _item("repeated_data", False, f"{_plural(len(rep), 'run')} {verb} data (above 1 epoch), the worst "
                     f"{worst['run_name']} at {worst['epochs']:.3g} epochs: {where}; train on a larger corpus "
                     f"(data=...) or at smaller budgets for laws of fresh data")
    e = loaded.runs["epochs"].to_numpy(float) if "epochs" in loaded.runs else np.full(len(loaded.runs), np.nan)
    unknown = int(np.isnan(e).sum())
    if unknown:
        return _item("repeated_data", None, f"epochs not recorded for {unknown} of {_plural(len(e), 'run')} (run "
                     f"directories from before epochs were recorded, or a CSV without an 'epochs' column): "
                     f"repetition not checked for them")
    return _item("repeated_data", True, f"no run repeats its data (the most: {e.max():.3g} epochs)")


def _by_size(runs) -> list[tuple[str, np.ndarray]]:
    """Run indices per model size, named by the model (else by N), smallest first."""
    sizes = size_clusters(runs["N"].to_numpy(float))
    out = []
    for s in range(sizes.max() + 1 if len(runs) else 0):
        idx = np.flatnonzero(sizes == s)
        model = runs["model"].iloc[idx[0]] if "model" in runs else None
        out.append((model if isinstance(model, str) else f"N≈{runs['N'].iloc[idx[0]]:.3g}", idx))
    return out


def lr_rule(loaded: Dataset) -> TrustCheck:
    r = loaded.runs
    tuned = r["lr_rule_tuned"].to_numpy(object) if "lr_rule_tuned" in r else np.full(len(r), None)
    if all(t is None for t in tuned):
        return _item("lr_rule", None, "no lr rule recorded (runs from before plan.lr_rule, or a CSV): whether the "
                     "lr was tuned is not checked")
    rules = sorted({str(x) for x, t in zip(r["lr_rule_name"], tuned) if t is False})
    in_range = r["lr_rule_in_range"].to_numpy(object)
    untuned = [name for name, idx in _by_size(r) if any(tuned[i] is False for i in idx)]
    # a rule's range is only known if it was measured: out of range means out of a tuned rule's range
    outside = [name for name, idx in _by_size(r) if any(tuned[i] is True and in_range[i] is False for i in idx)]
    found = []
    if untuned:
        found.append(f"the lr of {_plural(len(untuned), 'size')} ({_names(untuned)}) comes from an untuned rule "
                     f"({', '.join(rules)}: a literature default, not measured here); measure one with an lr sweep "
                     f"(sweep train -m sweep=lr ..., then sweep analyze it) and train with "
                     f"train.lr_rule=<its lr_rule.json>")
    if outside:
        rule = next(n for n, t, x in zip(r["lr_rule_name"], tuned, in_range) if t is True and x is False)
        found.append(f"{_plural(len(outside), 'size')} ({_names(outside)}) {'lies' if len(outside) == 1 else 'lie'} "
                     f"outside the sizes the lr rule {rule} was measured on: its lr there is extrapolated; extend "
                     f"the lr sweep to them")
    horizon = _off_horizon(r, tuned)
    if horizon:
        found.append(horizon)
    if found:
        return _item("lr_rule", False, "; ".join(found))
    return _item("lr_rule", True, "every run's lr rule was measured (tuned), over a range that holds its size and "
                 "near its tokens/param")


TPP_SLACK = 2.0  # a run within this factor of the tokens/param its lr rule was measured at counts as measured


def _off_horizon(r, tuned) -> str | None:
    """Runs trained far from the tokens/param their (tuned) lr rule was measured at: the best lr falls with longer
    horizons (Bjorck et al. 2024), so the rule's lr there is an extrapolation in the horizon."""
    if "lr_rule_tpp" not in r or "tpp" not in r:
        return None
    at, tpp = r["lr_rule_tpp"].to_numpy(float), r["tpp"].to_numpy(float)
    ok = np.array([t is True for t in tuned]) & np.isfinite(at) & np.isfinite(tpp)
    off = ok & ((tpp > at * TPP_SLACK) | (tpp < at / TPP_SLACK))
    if not off.any():
        return None
    lo, hi = tpp[off].min(), tpp[off].max()
    return (f"{_plural(int(off.sum()), 'run')} trained at {lo:.3g}–{hi:.3g} tokens/param, more than {TPP_SLACK:g}× "
            f"from the {at[off][0]:.3g} tokens/param their lr rule was measured at: the best lr moves with the "
            f"horizon, so theirs is extrapolated; measure the rule with an lr sweep at their horizon")


def lr_vs_rule(loaded: Dataset) -> TrustCheck:
    r = loaded.runs
    if "rule_lr" not in r or r["rule_lr"].isna().all():
        return _item("lr_vs_rule", None, "no rule lr recorded (runs from before plan.lr_rule, or a CSV): the lr "
                     "used is not compared with a tuned one")
    ratio = r["lr"].to_numpy(float) / r["rule_lr"].to_numpy(float)
    tuned = np.array([t is True for t in r["lr_rule_tuned"]])
    if not tuned.any():
        return _item("lr_vs_rule", None, "no run's lr rule is tuned: the lr used is not compared with a tuned one")
    off = []
    for name, idx in _by_size(r):
        q = ratio[idx][tuned[idx] & np.isfinite(ratio[idx])]
        worst = q[np.argmax(np.abs(np.log(q)))] if len(q) else 1.0
        if max(worst, 1 / worst) > LR_OFF:
            off.append(f"{name} {worst:.3g}×")
    if off:
        return _item("lr_vs_rule", False, f"the lr used is off its tuned rule's by more than {LR_OFF:g}× at "
                     f"{_plural(len(off), 'size')} ({_names(off)}, lr ÷ rule lr): train.lr was set by hand; drop it "
                     f"to use the rule, or re-tune")
    return _item("lr_vs_rule", True, f"every run's lr is within {LR_OFF:g}× of its tuned rule's")


def val_tokens(loaded: Dataset) -> TrustCheck:
    v = loaded.runs["val_tokens"].to_numpy(float) if "val_tokens" in loaded.runs else np.full(len(loaded.runs), np.nan)
    known = v[np.isfinite(v)]
    values, counts = np.unique(known, return_counts=True)
    if len(values) > 1:
        sizes = ", ".join(f"{x:,.0f} ({_plural(int(c), 'run')})" for x, c in zip(values, counts))
        return _item("val_tokens", False, f"the final evals used different held-out sizes: {sizes}; their losses "
                     f"are not measured alike: evaluate every run on the same data.val_tokens")
    if len(known) < len(v):
        return _item("val_tokens", None, f"held-out size not recorded for {len(v) - len(known)} of "
                     f"{_plural(len(v), 'run')} (older run directories, or a CSV): not checked for them")
    return _item("val_tokens", True, f"every run's final eval used the same {values[0]:,.0f} held-out tokens")


def isoflop_edges(fitted: Dataset, fits: Laws) -> TrustCheck:
    a2 = fits.approach2
    rows = a2.budgets or []
    if not rows:
        return _item("isoflop_edges", None, f"no isoFLOP minima to check: {a2.skipped or 'no parabola'}")
    r, flagged = fitted.runs, []
    for row in rows:
        if not row.edge:
            continue
        g = r[np.isclose(r["budget"].to_numpy(float), row.C, rtol=1e-9)]
        lo, hi = g["N"].min(), g["N"].max()
        outside = row.edge == "outside"
        small = row.N_opt.value < lo if outside else g["N"].iloc[int(np.argmin(g["loss"]))] == lo
        where = (("beyond" if outside else "lowest loss at") + (f" the smallest size {lo:.3g}" if small
                                                                 else f" the largest size {hi:.3g}"))
        flagged.append(f"C = {row.C:.3g} (N* ≈ {row.N_opt.value:.3g}, {where}: add a "
                       f"{'smaller' if small else 'larger'} model)")
    if flagged:
        return _item("isoflop_edges", False, f"{len(flagged)} of the {len(rows)} isoFLOP minima lie at an edge of the "
                     f"sizes tried in their budget, so they are extrapolated: {'; '.join(flagged)}")
    return _item("isoflop_edges", True, f"every isoFLOP minimum ({len(rows)} budgets) lies inside the sizes tried "
                 f"in its budget")


def exponent_bounds(fits: Laws) -> TrustCheck:
    a3 = fits.approach3
    if not a3.fitted:
        return _item("exponent_bounds", None, "Approach 3 not fitted, so no bounds to check")
    names = {"e": "E", "a0": "A", "alpha0": "α", "a1": "B", "alpha1": "β"}
    terms = {"e": "E", "a0": "A/N^α", "a1": "B/D^β"}
    found = [f"{names.get(b, b)} sits at its bound" for b in a3.at_bound]
    found += [f"the term {terms.get(t, t)} is negligible" for t in a3.negligible]
    if found:
        return _item("exponent_bounds", False, f"Approach 3 is degenerate: {'; '.join(found)}; the data do not pin "
                     f"the law down, so no recipe is given from it: widen the range of sizes and of tokens per size")
    return _item("exponent_bounds", True, "no parameter of Approach 3 is at a bound of its box, and every term "
                 "matters")


def allocation_interval(fits: Laws) -> TrustCheck:
    found, ok, none = [], [], []
    degenerate = fits.approach3.degenerate  # its allocation is an artefact of the bounds
    for name, sec in (("Approach 2's a", fits.approach2), ("Approach 3's allocation a", fits.allocation)):
        if sec.a is None or not isinstance(sec.a.value, (int, float)) or (degenerate and sec is fits.allocation):
            continue
        ci = sec.a.ci
        if not ci or not ci[0] < ci[1]:
            none.append(name)
            continue
        text = f"{name} = {sec.a.value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
        (found if ci[0] <= CHINCHILLA_A and KAPLAN_A <= ci[1] else ok).append(text)
    if found:
        return _item("allocation_interval", False, f"the 95% interval of {'; '.join(found)} holds both Chinchilla's "
                     f"a ≈ {CHINCHILLA_A:.2f} and Kaplan's a ≈ {KAPLAN_A:.2f}: this sweep cannot tell them apart; "
                     f"add FLOP budgets over a wider range, and sizes per budget")
    if ok:
        return _item("allocation_interval", True, f"the intervals separate Kaplan's a ≈ {KAPLAN_A:.2f} from "
                     f"Chinchilla's a ≈ {CHINCHILLA_A:.2f}: {'; '.join(ok)}")
    if not none:
        return _item("allocation_interval", None, "no exponent a to judge (Approach 2 not fitted, Approach 3 "
                     f"{'degenerate' if degenerate else 'not fitted'}): nothing to set against Kaplan's and "
                     "Chinchilla's")
    why = "no bootstrap (--bootstrap 0)" if not fits.bootstrap.n else "no interval"
    return _item("allocation_interval", None, f"{why} for {' or '.join(none)}: whether a separates Kaplan's from "
                 f"Chinchilla's is not checked")


A_WIDE = 0.3  # Approach 2's a with a 95% interval wider than this cannot tell Kaplan's 0.73 from Chinchilla's 0.50


def seeds(fits: Laws) -> TrustCheck:
    """Whether the seed noise was measured, and whether the differences between sizes stand out of it."""
    sd, a = fits.seeds, fits.approach2.a
    ci = a.ci if a is not None and a.ci else None
    if sd is None:
        wide = ci is not None and ci[1] - ci[0] > A_WIDE
        detail = ("one seed per cell, so the seed noise is not measured: each isoFLOP minimum rests on single runs "
                  "whose losses carry it, and resampling a budget's few runs measures it only crudely")
        if wide:
            return _item("seeds", False, f"{detail}; Approach 2's a has a 95% interval {ci[1] - ci[0]:.2f} wide "
                         f"(over {A_WIDE}): train seeds (sweep.seeds=[0,1]) and sizes √2 apart (on the demo: "
                         f"`sweep demo law`)")
        return _item("seeds", None, f"{detail} (sweep.seeds=[0,1] measures it)")
    if sd.sd is None:
        return _item("seeds", None, f"{sd.runs} runs as {sd.cells} cells, but no cell has two seeds: no seed spread")
    text = (f"{sd.runs} runs as {sd.cells} cells of {sd.seeds_min}–{sd.seeds_max} seeds, fitted as cell means: the "
            f"seeds of a cell differ by {sd.sd:.4f} nats (sd), a cell mean by {sd.sd_mean:.4f}")
    if sd.gap is None or sd.gap_over_noise is None:
        return _item("seeds", None, text)
    text += f"; neighbouring sizes at a budget differ by {sd.gap:.4f} (median), {sd.gap_over_noise:.1f}× that noise"
    if sd.gap_over_noise < 2:
        return _item("seeds", False, f"{text}: the isoFLOP curves are drawn in seed noise; add seeds")
    return _item("seeds", True, text)


def trust_checks(loaded: Dataset, fitted: Dataset, fits: Laws) -> list[TrustCheck]:
    """Every check, in the order a reader should fix them. loaded: every usable run (repeated ones too); fitted:
    the runs the laws were fitted to (before any aggregation)."""
    return [enough_data(fitted, fits), repeated_data(loaded, fitted), lr_rule(loaded), lr_vs_rule(loaded),
            val_tokens(loaded), isoflop_edges(fitted, fits), exponent_bounds(fits), allocation_interval(fits),
            seeds(fits)]


def checklist(items: list[TrustCheck]) -> list[str]:
    """report.md's lines for the checks: findings first, then what passed, then what could not be checked."""
    order = sorted(items, key=lambda i: {False: 0, True: 1, None: 2}[i.ok])
    return [f"- {GLYPH[i.ok]} {i.detail}" for i in order]
