"""report.md's leaderboard, first in its laws section: which law predicts runs it did not see, whether that is
resolved, the recommended law's compute-optimal N*, D* with every other law's beside it, and its held-out runs.
Formatting only: the numbers are fits.json's `leaderboard`.
"""

from __future__ import annotations

from ..result.fits import Fits
from .fmt import pct, sci


def _optimum_table(board) -> list[str]:
    scored = [s for s in board.laws if s.optimum]
    if not scored:
        return []
    budgets = [o.C for o in scored[0].optimum]
    head = "| law (C = 6ND) | " + " | ".join(f"N*, tokens/param at C = {sci(c)}" for c in budgets) + " |"
    rows = [head, "|---|" + "---|" * len(budgets)]
    for s in scored:
        cells = [("—" if o.N_opt is None else f"{o.N_opt:.3g}, {o.tpp:.1f}") for o in s.optimum]
        name = f"**{s.name}** (recommended)" if s.key == board.recommended else s.name
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return rows


def leaderboard_lines(fits: Fits) -> list[str]:
    board = fits.leaderboard
    if board is None:
        return []
    L = ["### Which law to believe: the leaderboard", ""]
    if board.skipped is not None:
        return L + [f"Not run: {board.skipped}.", ""]
    protocol = ("the rolling protocol" if board.protocol == "rolling" else f"`{board.protocol}`")
    L += [f"Every law fitted on the smaller runs and scored on the larger runs it did not see ({protocol}; parameters "
          f"N counted as **{fits.params}**):", ""]
    L += [f"- fold {f.index}: {f.held_out} predicted from the other {f.fitted_runs}" for f in board.folds] + [""]
    L += ["| rank | law | form | parameters | score | median |error| | worst |error| | inside 95% interval |",
          "|---|---|---|---|---|---|---|---|"]
    for s in board.laws:
        if s.score is None:
            L.append(f"| — | {s.name} | {s.formula} | {s.n_params} | not scored: {s.error} | | | |")
            continue
        cov = "— (--bootstrap 0)" if s.coverage is None else f"{s.coverage * 100:.0f}% of {s.n_predictions}"
        L.append(f"| {s.rank} | {s.name} | {s.formula} | {s.n_params} | {pct(s.score)} | "
                 f"{pct(s.median_abs_rel_error)} | {pct(s.max_abs_rel_error)} | {cov} |")
    margin = (" The ranking's margin is the runner-up's score minus the best's over the bootstrap (both laws "
              "refitted to the same resampled runs, scored on the same resample of held-out runs)."
              if board.margin else "")
    L += ["", "Score: each fold's mean |relative error| of its held-out runs, averaged over folds. "
          f"**{board.verdict}.**{margin}",
          "", f"Intervals ({board.resamples} resamples per law and fold): {board.interval}.", ""]
    if board.recommended:
        L += ["**The compute-optimal model by each law** (fitted on every run; the recommended law first):", "",
              *_optimum_table(board), ""]
        best = next(s for s in board.laws if s.key == board.recommended)
        shown = best.predictions[:30]
        L += [f"{best.name}, per held-out run:", "",
              "| fold | run | N | D | predicted [95% interval] | observed | error | inside |",
              "|---|---|---|---|---|---|---|---|"]
        L += [f"| {p.fold} | `{p.run_name}` | {sci(p.N)} | {sci(p.D)} | {p.predicted:.4f}"
              + (f" [{p.interval[0]:.4f}, {p.interval[1]:.4f}]" if p.interval else "")
              + f" | {p.observed:.4f} | {pct(p.rel_error, signed=True)} | "
              + ("—" if p.inside is None else ("yes" if p.inside else "**no**")) + " |" for p in shown]
        if len(best.predictions) > len(shown):
            L.append(f"| … {len(best.predictions) - len(shown)} more in fits.json | | | | | | | |")
        L.append("")
    return L


def _a(v) -> str:
    if v is None or v.value is None:
        return "—"
    return f"{v.value:.3f}" + (f" [{v.ci[0]:.3f}, {v.ci[1]:.3f}]" if v.ci else "")


def conventions_lines(fits: Fits) -> list[str]:
    c = fits.conventions
    if c is None or c.skipped is not None:
        return []
    L = ["### The parameter convention, measured", "",
         "The same runs with N counted three ways: the exponents move with the convention (at small sizes the "
         "embeddings and the head are a large share of N), and the held-out error says which count the laws "
         "extrapolate best with (the leaderboard's protocol, without intervals):", "",
         "| N counted as | N from – to | Approach 2's a (runs' FLOPs) | Approach 2's a (C = 6·N·D at the minima) | "
         "Approach 3's a = β/(α+β) | best law: held-out mean |error| | Chinchilla's form |",
         "|---|---|---|---|---|---|---|"]
    for r in c.rows:
        name = f"**{r.params}** (this report)" if r.params == c.used else r.params
        a3 = "—" if r.approach3_a is None else f"{r.approach3_a:.3f}" + (" (degenerate)" if r.approach3_degenerate
                                                                          else "")
        best = f"{r.best_law}: {pct(r.best_score)}" if r.best_law else (r.error or "—")
        L.append(f"| {name} — {r.what} | {sci(r.N_min)} – {sci(r.N_max)} | {_a(r.approach2_a)} | "
                 f"{_a(r.approach2_a_6ND)} | {a3} | {best} | {pct(r.chinchilla_score)} |")
    missing = [f"{k} ({why})" for k, why in (c.unavailable or {}).items()]
    return L + ["", c.verdict + (f" Not compared: {'; '.join(missing)}." if missing else ""), ""]


def headline(fits: Fits) -> str | None:
    """The recommended law's compute-optimal model at the sweep's largest budget and 100× beyond, in one sentence
    (None: no leaderboard, or its law has no optimum there)."""
    board = fits.leaderboard
    if board is None or board.recommended is None:
        return None
    best = next(s for s in board.laws if s.key == board.recommended)
    rows = [o for o in best.optimum if o.N_opt is not None]
    if not rows:
        return None
    picks = [rows[min(1, len(rows) - 1)]] + ([rows[3]] if len(rows) > 3 else [])
    said = "; ".join(f"at C = {sci(o.C)}, N* = {o.N_opt:.3g} on D* = {o.D_opt:.3g} ({o.tpp:.1f} tokens/param)"
                     for o in picks)
    tie = "" if board.resolved else " (the ranking is not resolved: see the leaderboard for the others' optima)"
    return f"By the recommended law, {best.name} (C = 6ND): {said}{tie}."
