"""report.md's section "Abilities and emergence", from the result's `emergence` (result/emergence.py): per
task in words, emergent or a metric artefact (with intervals); a table per task of each variant's metrics (smallest
and largest size, rank correlation, jump share, verdict); the Schaeffer overlay, CoT and shots findings; the ICL
table; the two-step prediction's error; and the figures. Formatting only: no numerics, no plots.
"""

from __future__ import annotations

from ..result.emergence import CotPair, Emergence, IclSize, Shots, Trend, TwoStep, Variant
from .fmt import ci_text, sci
from .plots.emergence import PREFIX, caption

DISPLAY = ("exact", "exact_final", "mc_acc", "p_seq", "digit_acc", "nll", "edit_distance", "brier")


def is_emergence_plot(name: str) -> bool:
    return name.startswith(PREFIX)


def _num(x, fmt="{:.3g}") -> str:
    return "—" if x is None else fmt.format(x)


def _with_ci(point) -> str:
    """A size's value (a SizePoint or ShotPoint) with its Wilson interval, flagged when at chance."""
    lo, hi = point.lo, point.hi
    text = ci_text(point.value, [lo, hi] if lo is not None and hi is not None else None, "{:.3g}")
    return text + (" (at chance)" if point.at_chance else "")


def _ends(v: Variant, metric: str) -> str:
    """smallest → largest size, with intervals and, for a proportion, the difference with Newcombe's interval."""
    pts, diff = v.per_size[metric], v.trend[metric].difference
    text = f"{metric} {_with_ci(pts[0])} at N={sci(pts[0].N)} → {_with_ci(pts[-1])} at N={sci(pts[-1].N)}"
    return text + (f" (difference {diff[0]:+.3g} [{diff[1]:+.3g}, {diff[2]:+.3g}])" if diff else "")


def _state(t: Trend) -> str:
    return "flat (within noise)" if t.state == "flat" and t.within_noise else t.state


def _task_words(task: str, variants: dict[str, Variant]) -> str:
    """One line per task: each variant's verdict with its primary metric's ends (and NLL's)."""
    parts = []
    for key, v in sorted(variants.items()):
        if v.task != task:
            continue
        evidence = [_ends(v, m) for m in (v.primary, "nll") if m and m in v.per_size]
        parts.append(f"{v.variant} — {v.verdict_text} ({'; '.join(evidence)})")
    return f"- **{task}**: " + "; ".join(parts) + "."


def _task_table(task: str, variants: dict) -> list[str]:
    L = [f"**{task}**", "", "| variant | sizes | metric | smallest size | largest size | ρ(log N) | jump share | "
         "trend | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for key, v in sorted(variants.items()):
        if v.task != task:
            continue
        first = True
        for m in (m for m in DISPLAY if m in v.trend):
            t = v.trend[m]
            L.append(f"| {v.variant if first else ''} | {v.n_sizes if first else ''} | {m} | "
                     f"{_with_ci(v.per_size[m][0])} | {_with_ci(v.per_size[m][-1])} | "
                     f"{_num(t.spearman, '{:+.2f}')} | {_num(t.jump_share, '{:.2f}')} | {_state(t)} | "
                     f"{v.verdict_text if first else ''} |")
            first = False
    return L + [""]


def _overlay(variants: dict) -> list[str]:
    rows = [(k, v) for k, v in sorted(variants.items()) if v.overlay]
    if not rows:
        return []
    L = ["**Schaeffer overlay** (exact match predicted from the per-token probability, p̄^L with p̄ = exp(−nll) and "
         "L the answer's tokens including END, beside the measured exact match):", ""]
    for key, v in rows:
        gaps = [abs(p.predicted - p.measured) for p in v.overlay if p.predicted is not None]
        top = v.overlay[-1]
        L.append(f"- {key} (L = {v.answer_tokens:.3g}): at N={sci(top.N)} measured {top.measured:.3g} "
                 f"[{_num(top.lo)}, {_num(top.hi)}], p̄^L {_num(top.predicted)}"
                 + (f", mean p_seq {_num(top.p_seq)}" if top.p_seq is not None else "")
                 + (f"; largest |p̄^L − measured| over sizes {max(gaps):.3g}" if gaps else "") + ".")
    return L + [""]


def _cot(cot: list[CotPair]) -> list[str]:
    if not cot:
        return []
    L = ["**Scratchpad (CoT) against direct answers** (the result's exact match; difference CoT − direct with "
         "Newcombe's 95% interval):", "", "| pair | N | direct | CoT | difference |", "|---|---|---|---|---|"]
    for pair in cot:
        for r in pair.per_size:
            L.append(f"| {pair.cot} vs {pair.direct} | {sci(r.N)} | {r.direct:.3g} | {r.cot:.3g} | "
                     f"{r.diff:+.3g} [{r.lo:+.3g}, {r.hi:+.3g}] |")
    L.append("")
    for pair in cot:
        helps = pair.smallest_helping_N
        L.append(f"- {pair.cot}: " + (f"the scratchpad helps significantly from N={sci(helps)} on (the smallest "
                                       f"size where the interval is above 0)" if helps is not None else
                                       "the scratchpad helps significantly at no size")
                 + (f"; it hurts at N={', '.join(sci(n) for n in pair.hurts_at_N)}" if pair.hurts_at_N else "")
                 + ".")
    return L + [""]


def _shots(shots: Shots | None) -> list[str]:
    if not shots or not shots.per_size:
        return []
    ks = sorted({p.k for r in shots.per_size for p in r.icl})
    rk = sorted({p.k for r in shots.per_size for p in r.icl_random})
    head = "| N | " + " | ".join(f"k={k:g}" for k in ks) + "".join(f" | random k={k:g}" for k in rk) + " |"
    L = [f"**Accuracy against shots** ({shots.metric}, chance {_num(shots.chance)}; random: the "
         f"icl_random control, whose labels carry no mapping):", "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in shots.per_size:
        icl, rnd = ({p.k: p for p in points} for points in (r.icl, r.icl_random))
        L.append(f"| {sci(r.N)} | " + " | ".join(_with_ci(icl[k]) if k in icl else "—" for k in ks)
                 + "".join(f" | {_with_ci(rnd[k]) if k in rnd else '—'}" for k in rk) + " |")
    return L + [""]


def _icl(icl: list[IclSize]) -> list[str]:
    if not icl:
        return []
    L = ["**In-context learning per size** (ICL score: mean loss late in the context minus early, negative when the "
         "context helps; induction ratio: NLL on a sequence's second copy ÷ its first; both means over the size's "
         "runs, without intervals):", "",
         "| N | runs | ICL score | induction ratio |", "|---|---|---|---|"]
    L += [f"| {sci(r.N)} | {r.n_runs} | {_num(r.icl_score, '{:.4g}')} | {_num(r.induction_ratio, '{:.3g}')} |"
          for r in icl]
    return L + [""]


def _two_step(rows: list[TwoStep]) -> list[str]:
    if not rows:
        return []
    done = [r for r in rows if r.skipped is None]
    L = ["**Two-step prediction** (largest size held out): task NLL = E + A·(C/C_ref)^−α fitted on the other sizes' "
         "final scores, then accuracy = chance + (1 − chance)·σ(−k·(NLL − NLL₀)) on those sizes and their runs' "
         "intermediate checkpoints; the held-out size's accuracy predicted from its FLOPs alone (a point prediction, "
         "without an interval; the observed accuracy carries its Wilson interval).", ""]
    if done:
        L += ["| variant | held-out N | observed | predicted | error | from its observed NLL | NLL observed / "
              "predicted |", "|---|---|---|---|---|---|---|"]
        L += [f"| {r.key} ({r.metric}) | {sci(r.held_out_N)} | "
              f"{ci_text(r.observed, r.observed_ci, '{:.3g}')} | {r.predicted:.3g} | {r.error:+.3g} | "
              f"{r.predicted_from_observed_nll:.3g} | {r.nll_observed:.3g} / {r.nll_predicted:.3g} |" for r in done]
        inside = sum(r.observed_ci[0] <= r.predicted <= r.observed_ci[1] for r in done)
        L += ["", f"Mean |error| {sum(abs(r.error) for r in done) / len(done):.3g} over {len(done)} variant(s); "
                  f"{inside} prediction(s) inside the observed Wilson interval."]
    skipped = [r for r in rows if r.skipped is not None]
    if skipped:
        listed = "; ".join(f"{r.key} ({r.skipped})" for r in skipped[:8])
        L.append(f"Not predicted: {listed}"
                 + (f"; … {len(skipped) - 8} more" if len(skipped) > 8 else "") + ".")
    return L + [""]


def section_lines(em: Emergence | None, plots: dict) -> list[str]:
    """The section's markdown lines from the result's `emergence`; none when the sweep has no task results."""
    if em is None or not em.variants:
        return []
    th, variants = em.thresholds, em.variants
    tasks = sorted({v.task for v in variants.values()})
    L = ["## Abilities and emergence", "",
         f"{em.runs} run(s) scored on the task suite; {em.runs_used} stand for {len(em.sizes)} size(s): each "
         f"size's runs at its largest token count (at its best lr by val_loss, if several), averaged over seeds. "
         f"Proportions carry 95% Wilson intervals over all their items; a value is *at chance* when chance lies "
         f"inside its interval (flagged, not signal).", "",
         f"Rules: a change counts only when it stands out of the noise: for a proportion (exact, exact_final, "
         f"mc_acc, digit_acc) when Newcombe's 95% interval of the difference excludes 0; for a mean without "
         f"per-size intervals (nll, p_seq, edit_distance, brier) when it exceeds {th.noise_multiple:g}× the "
         f"metric's noise, the residual standard deviation of a least-squares line in log N through its sizes' "
         f"values (k − 2 degrees of freedom; conservative, as genuine curvature counts as noise too). A metric is "
         f"**sharp** when its net improvement from the smallest to the largest size counts, so does its largest "
         f"improvement between adjacent sizes, and that jump is ≥ {th.sharp_jump_share} of the net (its jump "
         f"share; lower is better for nll, edit_distance and brier), over ≥ {th.min_sizes} sizes; **smooth** "
         f"when not sharp, its net improvement counts and its Spearman ρ with log N is ≥ "
         f"{th.smooth_rank_correlation}; **flat** otherwise (*flat (within noise)* when it improved, but not out "
         f"of the noise), or when its net improvement is below "
         + ", ".join(f"{v:g} ({k})" for k, v in th.min_change.items()) + ". "
         "A variant's verdict compares its discontinuous metric (mc_acc, else exact_final, else exact) with its "
         "per-token continuous metrics (nll, digit_acc, edit_distance, brier; sharp when at least half of them "
         "are); p_seq, a product over the answer's tokens, scales like exact match and is shown in the overlay. "
         "**Emergent** needs the discontinuous metric sharp (its jump significant) and not at chance at the largest "
         "size: one still at chance there counts as flat. A verdict whose discontinuous metric improves through a "
         "single significant jump between two sizes names that jump. "
         "**No signal**: the discontinuous metric is at chance at every size and no continuous metric improves.",
         "", "### Emergent, or a metric artefact?", "", *(_task_words(t, variants) for t in tasks), ""]
    L += ["### Per task and variant", ""]
    for t in tasks:
        L += _task_table(t, variants)
    L += _overlay(variants) + _cot(em.cot or []) + _shots(em.shots) + _icl(em.icl or [])
    L += _two_step(em.two_step or [])
    if em.skipped:
        L += ["Runs with task results left out: " + "; ".join(f"`{s.run_name}` ({s.reason})" for s in em.skipped)
              + ".", ""]
    figs = [k for k in plots if is_emergence_plot(k)]
    if figs:
        L += ["### Figures", ""]
        for k in figs:
            L += [f"![{caption(k)}]({plots[k].name})", f"*{caption(k)}*", ""]
    return L
