"""report.md's section "Abilities and emergence", from the result's `emergence` (result/emergence.py): per
task in words, emergent or a metric artefact (with intervals); a table per task of each variant's metrics (smallest
and largest size, rank correlation, jump share, verdict); the seeds' mean and range per task, size and metric;
Schaeffer's relation (exact match's deviation from p̄^L), recall against generalisation, CoT and shots findings; the
ICL table; the two-step prediction with its interval; and the figures. Formatting only: no numerics, no plots.
"""

from __future__ import annotations

from ..result.emergence import CotPair, Emergence, IclSize, Shots, Trend, TwoStep, Variant
from .fmt import ci_text, sci
from .plots.emergence import PREFIX, caption

VISIBLE = 0.3  # exact match a held-out task should reach for a demo to show the two kinds of metrics apart
DISPLAY = ("exact", "exact_final", "mc_acc", "p_seq", "digit_acc", "nll", "edit_distance", "brier")


def is_emergence_plot(name: str) -> bool:
    return name.startswith(PREFIX)


def _num(x, fmt="{:.3g}") -> str:
    return "—" if x is None else fmt.format(x)


def _with_ci(point) -> str:
    """A size's value (a SizePoint or ShotPoint) with its 95% interval, flagged when at chance."""
    lo, hi = point.lo, point.hi
    text = ci_text(point.value, [lo, hi] if lo is not None and hi is not None else None, "{:.3g}")
    return text + (" (at chance)" if point.at_chance else "")


def _ends(v: Variant, metric: str) -> str:
    """smallest → largest size, with intervals, and the difference with its bootstrap interval."""
    pts, diff = v.per_size[metric], v.trend[metric].difference
    text = f"{metric} {_with_ci(pts[0])} at N={sci(pts[0].N)} → {_with_ci(pts[-1])} at N={sci(pts[-1].N)}"
    return text + (f" (difference {diff[0]:+.3g} [{diff[1]:+.3g}, {diff[2]:+.3g}])"
                   if diff and diff[1] is not None else "")


def _state(t: Trend) -> str:
    if t.state == "flat" and t.within_noise:
        return "flat (within noise)"
    return f"{t.state} (worsens at a step)" if t.regresses else t.state


def _best_generative(variants: dict) -> tuple[str, float] | None:
    """The held-out generative variant (not multiple choice, not a memorisation control, not fact recall) with the
    highest exact match at the largest size, and that value."""
    found = [(key, v.per_size[v.primary][-1].value) for key, v in variants.items()
             if v.primary in ("exact", "exact_final") and not v.variant.endswith("_seen") and v.task != "fact"
             and v.per_size.get(v.primary) and v.per_size[v.primary][-1].value is not None]
    return max(found, key=lambda x: x[1]) if found else None


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


def _seed_table(variants: dict) -> list[str]:
    """Per variant and size, each metric's seed mean with the seeds' range (min–max); variants at chance at every
    size under their discontinuous metric and without a continuous trend are left to fits.json."""
    shown = [(k, v) for k, v in sorted(variants.items()) if v.verdict not in ("no_signal", "no_trend")]
    if not shown:
        return []
    metrics = [m for m in DISPLAY if any(m in v.per_size for _, v in shown)]
    L = ["**Seeds per size** (each metric's mean over the size's seeds, then the seeds' range min–max; variants "
         "with no signal and no trend are in fits.json):", "",
         "| variant | N | seeds | " + " | ".join(metrics) + " |", "|---|---|---|" + "---|" * len(metrics)]
    for key, v in shown:
        first = next(iter(v.per_size.values()))
        for i, p in enumerate(first):
            cells = []
            for m in metrics:
                q = v.per_size[m][i] if m in v.per_size and i < len(v.per_size[m]) else None
                cells.append("—" if q is None or q.value is None else
                             f"{q.value:.3g} ({q.seed_min:.3g}–{q.seed_max:.3g})" if q.n_seeds > 1 else
                             f"{q.value:.3g}")
            L.append(f"| {key} | {sci(p.N)} | {p.n_seeds} | " + " | ".join(cells) + " |")
    return L + [""]


def _overlay(variants: dict, tolerance: float) -> list[str]:
    rows = [(k, v) for k, v in sorted(variants.items()) if v.overlay and v.primary == "exact"
            and v.verdict not in ("no_signal", "no_trend")]
    if not rows:
        return []
    L = ["**Schaeffer's relation** (exact match against p̄^L, the per-token probability p̄ = exp(−nll) to the "
         "answer's L tokens including END: the deviation measured − p̄^L per size with its bootstrap interval; exact "
         f"match counts as explained by the per-token metric when every size's interval reaches within ±{tolerance:g} "
         "of 0):", "", "| variant (L) | N | measured | p̄^L | p_seq | deviation | explained |",
         "|---|---|---|---|---|---|---|"]
    for key, v in rows:
        for i, p in enumerate(v.overlay):
            dev = "—" if p.deviation is None else ci_text(p.deviation, [p.deviation_lo, p.deviation_hi], "{:+.3g}")
            L.append(f"| {key} ({v.answer_tokens:.3g}) | {sci(p.N)} | {_num(p.measured)} | {_num(p.predicted)} | "
                     f"{_num(p.p_seq)} | {dev} | "
                     f"{('yes' if v.explained_by_per_token else 'no') if i == len(v.overlay) - 1 else ''} |")
    return L + [""]


def _recall(recall: list) -> list[str]:
    if not recall:
        return []
    L = ["**Recall against generalisation** (exact match on items the training mix contained, `_seen`, beside the "
         "held-out items, which share no canonical form with any trained item):", "",
         "| control | N | seen (recall) | held out (generalisation) | seen − held out |", "|---|---|---|---|---|"]
    for r in recall:
        for p in r.per_size:
            L.append(f"| {r.seen} vs {r.held_out} | {sci(p.N)} | {ci_text(p.seen, p.seen_ci, '{:.3g}')} | "
                     f"{ci_text(p.held_out, p.held_out_ci, '{:.3g}')} | {_num(p.difference, '{:+.3g}')} |")
    return L + [""]


def _cot(cot: list[CotPair]) -> list[str]:
    if not cot:
        return []
    L = ["**Scratchpad (CoT) against direct answers** (the result's exact match; difference CoT − direct with "
         "Newcombe's 95% interval):", "", "| pair | N | direct | CoT | difference |", "|---|---|---|---|---|"]
    for pair in cot:
        for r in pair.per_size:
            L.append(f"| {pair.cot} vs {pair.direct} | {sci(r.N)} | {r.direct:.3g} | {r.cot:.3g} | "
                     f"{ci_text(r.diff, [r.lo, r.hi], '{:+.3g}')} |")
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
    first = icl[0]
    L = ["**In-context learning per size** (ICL score: a window's mean loss over the late band of context positions "
         f"{first.late} minus over the early band {first.early} (Olsson et al.'s 500th and 50th token of 512, scaled "
         "to the context), negative when the context helps; induction ratio: NLL on a sequence's second copy ÷ its "
         "first; seed means with their 95% interval (seeds, then windows or copy items) and the seeds' range):", "",
         "| N | runs | ICL score | seeds | induction ratio | seeds |", "|---|---|---|---|---|---|"]
    for r in icl:
        seeds = [(f"{s[0]:.3g}–{s[1]:.3g}" if s else "—") for s in (r.icl_score_seeds, r.induction_ratio_seeds)]
        L.append(f"| {sci(r.N)} | {r.n_runs} | {ci_text(r.icl_score, r.icl_score_ci, '{:.4g}')} | {seeds[0]} | "
                 f"{ci_text(r.induction_ratio, r.induction_ratio_ci, '{:.3g}')} | {seeds[1]} |")
    return L + [""]


def _two_step(rows: list[TwoStep]) -> list[str]:
    if not rows:
        return []
    done = [r for r in rows if r.skipped is None]
    L = ["**Two-step prediction** (largest size held out): task NLL = E + A·(C/C_ref)^−α fitted on the other sizes' "
         "final scores, then accuracy = chance + (1 − chance)·σ(−k·(NLL − NLL₀)) on those sizes and their runs' "
         "intermediate checkpoints; the held-out size's accuracy predicted from its FLOPs alone, its interval from "
         "both steps refitted on bootstrap replicates of the fitted sizes (the observed accuracy carries its own).", ""]
    if done:
        L += ["| variant | held-out N | observed | predicted | error | from its observed NLL | NLL observed / "
              "predicted |", "|---|---|---|---|---|---|---|"]
        L += [f"| {r.key} ({r.metric}) | {sci(r.held_out_N)} | "
              f"{ci_text(r.observed, r.observed_ci, '{:.3g}')} | {ci_text(r.predicted, r.predicted_ci, '{:.3g}')} | "
              f"{r.error:+.3g} | "
              f"{r.predicted_from_observed_nll:.3g} | {r.nll_observed:.3g} / {r.nll_predicted:.3g} |" for r in done]
        inside = sum(r.observed_ci[0] <= r.predicted <= r.observed_ci[1] for r in done)
        L += ["", f"Mean |error| {sum(abs(r.error) for r in done) / len(done):.3g} over {len(done)} variant(s); "
                  f"{inside} prediction(s) inside the observed interval."]
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
    seeds = sorted(set(em.seeds_per_size))
    L = ["## Abilities and emergence", "",
         f"{em.runs} run(s) scored on the task suite; {em.runs_used} stand for {len(em.sizes)} size(s) with "
         f"{'–'.join(str(s) for s in (seeds[0], seeds[-1]) if True) if len(seeds) > 1 else seeds[0]} seed(s) each: "
         f"each size's runs at its largest token count (at its best lr by val_loss, if several), averaged over "
         f"seeds. Every interval is a 95% interval from a hierarchical bootstrap ({em.replicates} replicates): the "
         f"size's seeds drawn with replacement, then each drawn seed's items (held-out windows for the ICL score), "
         f"so an interval holds the seed-to-seed spread as well as the items' noise; a proportion's is widened to "
         f"hold Wilson's over all its items. A value is *at chance* when chance lies inside its interval (flagged, "
         f"not signal). Eval items are held out by canonical form: none shares its operand multiset, its "
         f"digit-reversed twin or (ICL) its question with any trained item.", "",
         f"Rules: a change counts only when its bootstrap interval excludes 0 (lower is better for nll, "
         f"edit_distance and brier). A metric is **sharp** when its net improvement from the smallest to the "
         f"largest size counts, so does its largest improvement between adjacent sizes, and that jump is ≥ "
         f"{th.sharp_jump_share} of the net (its jump share), over ≥ {th.min_sizes} sizes; **smooth** (the stated "
         f"test of smoothness) when its net improvement counts, its Spearman ρ with log N is ≥ "
         f"{th.smooth_rank_correlation} and no step carries {th.sharp_jump_share} of the net or more; neither when "
         f"a step between adjacent sizes is a significant worsening; **uneven** when it improved out of the noise "
         f"but is neither; **flat** otherwise (*flat (within noise)* when it "
         f"improved, but not out of the noise), or when its net improvement is below "
         + ", ".join(f"{v:g} ({k})" for k, v in th.min_change.items()) + ". "
         "A variant's verdict compares its discontinuous metric (mc_acc, else exact_final, else exact) with its "
         "per-token continuous metrics (nll, digit_acc, edit_distance, brier): *consistent with a metric artefact* "
         "needs one of them smooth while the discontinuous metric is sharp, none of them sharp, and exact match "
         f"within ±{th.schaeffer_tolerance:g} of p̄^L at every size (Schaeffer's relation, below); *sharp under both* "
         "(a candidate emergent ability) when a continuous metric is sharp too. A discontinuous metric still at "
         "chance at the largest size counts as flat. A verdict whose discontinuous metric improves through a single "
         "significant jump between two sizes names that jump. **No signal**: the discontinuous metric is at chance "
         "at every size and no continuous metric moves. With fewer than "
         f"{th.min_seeds} seeds at a size there is no verdict across seeds: it says *one seed*, and what items "
         "alone would say.",
         "", "### Emergent, or a metric artefact?", "", *(_task_words(t, variants) for t in tasks), ""]
    best = _best_generative(variants)
    if best is not None and best[1] < VISIBLE:
        L += [f"The best held-out generative task reaches exact match {best[1]:.3g} ({best[0]}) at the largest size, "
              f"below {VISIBLE:g}: little for the two kinds of metrics to disagree about. Measured on a 2-core CPU "
              "(README \"Abilities and emergence\"): direct 2-digit addition goes from 0.07 to 0.90 between gpt-100k "
              "and gpt-200k after 12M tokens of a mix that is 90% addition (`sweep train -m sweep=emergence_add`, "
              "about two hours there).", ""]
    L += ["### Per task and variant", ""]
    for t in tasks:
        L += _task_table(t, variants)
    L += _seed_table(variants) + _overlay(variants, th.schaeffer_tolerance) + _recall(em.recall or [])
    L += _cot(em.cot or []) + _shots(em.shots) + _icl(em.icl or [])
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
