"""report.md's sections on the laws beyond one fit (beyond.py): fit small, predict big; over-training (the LLaMA
view); the inference-aware optimum; Kaplan's forms. Formatting only: the numbers are in fits.json already.
"""

from __future__ import annotations

from ..result.record import Value
from ..result.fits import Fits
from .fmt import pct, sci


def _interval(iv, fmt="{:.4f}") -> str:
    return "—" if not iv else f"[{fmt.format(iv[0])}, {fmt.format(iv[1])}]"


def _holdout_table(section) -> list[str]:
    rows = ["| run | N | D | predicted [95% interval] | observed | error | inside |", "|---|---|---|---|---|---|---|"]
    shown = section.runs[:30]
    rows += [f"| `{r.run_name}` | {sci(r.N)} | {sci(r.D)} | {r.predicted:.4f} {_interval(r.interval)} "
             f"| {r.observed:.4f} | {pct(r.rel_error, signed=True)} | "
             f"{'—' if r.inside is None else ('yes' if r.inside else '**no**')} |" for r in shown]
    if len(section.runs) > len(shown):
        rows.append(f"| … {len(section.runs) - len(shown)} more in fits.json | | | | | | |")
    return rows


def _summary_line(name: str, section) -> str:
    s = section.summary
    inside = "no intervals (--bootstrap 0)" if s.share_inside is None else \
        f"{s.share_inside * 100:.0f}% of observations inside their 95% interval"
    return (f"{name}: median |error| {s.median_abs_rel_error * 100:.2f}% (max {s.max_abs_rel_error * 100:.2f}%) "
            f"over {s.n} held-out run(s); {inside}.")


def holdout_lines(fits: Fits) -> list[str]:
    h = fits.holdout_protocol
    if not h:
        return []
    L = ["## Fit small, predict big", "",
         f"`--holdout {h.expr}`: {h.held_out_runs} run(s) held out, the laws fitted on the other "
         f"{h.fitted_runs}. Intervals: {h.interval}.", ""]
    if h.error is not None:
        return L + [f"Not fitted: {h.error}.", ""]
    L += [f"- {_summary_line('Approach 3', h)}"]
    if h.kaplan:
        ln = h.kaplan
        L += [f"- {_summary_line('L(N) at ' + ln.basis, ln)}"]
    return L + ["", "Approach 3, per held-out run:", "", *_holdout_table(h), ""]


def _value(v: Value, fmt: str = "{:.4g}") -> str:
    """The value with its interval, if it has one (none: nothing said, as the section's own table says)."""
    return fmt.format(v.value) + (f" [{fmt.format(v.ci[0])}, {fmt.format(v.ci[1])}]" if v.ci else "")


def _gain(x) -> str:
    return "—" if x is None else f"{x:.4f}"


def overtraining_lines(fits: Fits) -> list[str]:
    o = fits.overtraining
    if not o:
        return []
    L = ["## Over-training (Gadre et al. 2024)", ""]
    if o.skipped is not None:
        return L + [f"Not fitted: {o.skipped}.", ""]
    lo, hi = o.M_range
    L += [f"Loss against compute and the token multiplier M = D/N: {o.form}, fitted to every run (M from "
          f"{lo:.3g} to {hi:.3g}) beside Approach 3:", "",
          "| E | a | b | η | α = β = 2η |", "|---|---|---|---|---|",
          f"| {_value(o.E)} | {_value(o.a)} | {_value(o.b)} | {_value(o.eta, '{:.4f}')} | "
          f"{o.alpha_equivalent:.4f} |", "",
          f"Median |residual| {o.median_abs_residual * 100:.2f}%"
          + (f" (Approach 3 on the same runs: {o.median_abs_residual_approach3 * 100:.2f}%)."
             if o.median_abs_residual_approach3 is not None else "."), ""]
    ex = o.extrapolation
    if ex:
        L += [f"**Extrapolation in M.** Both laws fitted on the {ex.fitted_runs} runs with {ex.fit_on}, each "
              f"run beyond predicted: median |error| {ex.median_abs_rel_error * 100:.2f}% (Gadre et al.), "
              f"{ex.median_abs_rel_error_approach3 * 100:.2f}% (Approach 3).", "",
              "| N | M | observed | Gadre et al. | error | Approach 3 | error |", "|---|---|---|---|---|---|---|"]
        L += [f"| {sci(r.N)} | {r.M:.3g} | {r.observed:.4f} | {r.predicted:.4f} | {pct(r.rel_error, signed=True)} | "
              f"{r.predicted_approach3:.4f} | {pct(r.rel_error_approach3, signed=True)} |" for r in ex.runs[:20]]
        L += ([f"| … {len(ex.runs) - 20} more in fits.json | | | | | | |"] if len(ex.runs) > 20 else []) + [""]
    else:
        L += [f"Extrapolation in M: not run ({o.extrapolation_skipped}).", ""]
    rows = o.doubling or []
    if rows:
        L += ["### The LLaMA view: what doubling the tokens buys", "",
              "Per size, each run against the same size's next-shorter run: loss gained per doubling of training "
              "tokens, observed and by each law at that run (plot `overtraining`: loss against tokens/param).", "",
              "| N | tokens/param | loss | gain per doubling (observed) | Approach 3 | Gadre et al. |",
              "|---|---|---|---|---|---|"]
        L += [f"| {sci(r.N)} | {r.M:.3g} | {r.loss:.4f} | {r.gain_per_doubling:.4f} | "
              f"{_gain(r.gain_approach3)} | {_gain(r.gain_gadre)} |" for r in rows[:30]]
        L += ([f"| … {len(rows) - 30} more in fits.json | | | | | |"] if len(rows) > 30 else []) + [""]
    return L


def inference_lines(fits: Fits) -> list[str]:
    inf = fits.inference_optimal
    if not inf:
        return []
    L = ["## Inference-aware optimum (Sardana et al. 2023)", ""]
    if inf.error is not None:
        return L + [f"Not computed: {inf.error}.", ""]
    L += [f"For an expected inference demand D_inf (tokens served over the model's life): {inf.objective}. The "
          f"target at each budget C is the loss of its compute-optimal model; the saving is against training that "
          f"model and serving it the same demand. Intervals: Approach 3's bootstrap draws, each with its own "
          f"target and optimum.", "",
          "| C (FLOPs) | D_inf | target loss | N* | D* | tokens/param | N (compute-optimal) | lifetime FLOPs saved |",
          "|---|---|---|---|---|---|---|---|"]
    L += [f"| {sci(r.C)} | {sci(r.inference_tokens)} | {r.target_loss:.4f} | {_value(r.N_opt, '{:.3g}')} "
          f"| {_value(r.D_opt, '{:.3g}')} | {_value(r.tpp, '{:.3g}')} | {sci(r.N_chinchilla)} | "
          f"{_value(r.saving, '{:.1%}')} |" for r in inf.rows]
    return L + [""]


def _factor(f) -> str:
    if not f:
        return "—"
    return f"{f.factor:.2f}×" + (f" [{f.ci[0]:.2f}, {f.ci[1]:.2f}]" if f.ci else "")


def _power(name: str, var: str, law, basis: str) -> str:
    if not law:
        return f"- {name}: not fitted (fewer than 3 points, or the loss does not fall, on {basis})."
    return (f"- {name} = ({var}_c/{var})^α on {basis} ({law.n_points} points): α = {law.alpha:.4f}, "
            f"{var}_c = {law.x_c:.3g}; per 10× {var} the loss is ×{10 ** -law.alpha:.4f}.")


def kaplan_lines(fits: Fits) -> list[str]:
    k = fits.kaplan_forms
    if not k:
        return []
    L = ["## Kaplan's forms and the wall question", "",
         _power("L(N)", "N", k.L_of_N, k.L_of_N_basis), _power("L(C)", "C", k.L_of_C, k.L_of_C_basis)]
    j = k.joint
    if j:
        L += [f"- Kaplan's joint law {j.form}: N_c = {j.N_c:.3g}, D_c = {j.D_c:.3g}, "
              f"α_N = {j.alpha_N:.4f}, α_D = {j.alpha_D:.4f}; median |residual| "
              f"{j.median_abs_residual * 100:.2f}%" + (f" ({', '.join(j.at_bound)} at a bound)"
                                                      if j.at_bound else "") + "; descriptive, no intervals."]
    L += ["", "**Per 10× compute**, the compute-optimal model grows (95% intervals from each Approach's exponents):",
          "", "| source | N × | D × |", "|---|---|---|"]
    L += [f"| {r.source} | {_factor(r.N)} | {_factor(r.D)} |" for r in k.allocation_per_10x]
    L += [f"| {r.source} (published) | {r.N:.1f}× | {r.D:.1f}× |" for r in k.reference_per_10x] + [""]
    if k.gain_per_10x:
        L += ["**Loss gained per 10× compute** along Approach 3's frontier (the compute-optimal model at C and at "
              "10·C):", "", "| C (FLOPs) | loss at C | loss at 10·C | gain | relative |", "|---|---|---|---|---|"]
        L += [f"| {sci(r.C)} | {r.loss:.4f} | {r.loss_10x:.4f} | {_value(r.gain, '{:.4f}')} | "
              f"{r.relative_gain * 100:.2f}% |" for r in k.gain_per_10x] + [""]
    rows = k.counterfactual or []
    if rows:
        shown = sorted(rows, key=lambda r: -r.C)[:25]
        L += ["**Each run against the compute-optimal model at its compute** (the Gopher → Chinchilla "
              "counterfactual; Approach 3's law, C = 6ND" + (f"; the 25 largest of {len(rows)} runs" if len(rows) > 25
                                                             else "") + "):", "",
              "| run | C | N | D | observed | predicted | N* | D* | predicted at N*, D* | N / N* | loss left |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        L += [f"| `{r.run_name}` | {sci(r.C)} | {sci(r.N)} | {sci(r.D)} | {r.observed:.4f} | "
              f"{r.predicted:.4f} | {sci(r.N_opt)} | {sci(r.D_opt)} | {r.predicted_opt:.4f} | "
              f"{r.N_over_opt:.3g} | {r.loss_left:.4f} |" for r in shown] + [""]
    return L


def report_lines(fits: Fits) -> list[str]:
    """Every section this module writes, in report order (empty for those fits.json lacks)."""
    return holdout_lines(fits) + overtraining_lines(fits) + inference_lines(fits) + kaplan_lines(fits)
