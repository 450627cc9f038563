"""The parameter convention settled by measurement (fits.json's `conventions`): the same runs with N counted three
ways (README, "Conventions": non_embedding, matmul, total), and per convention Approach 2's exponent a with
its bootstrap interval (under the runs' own FLOPs and under C = 6·N·D at each budget's minimum), Approach 3's
a = β/(α+β), and how well the best law predicts the held-out runs (the leaderboard's protocol, without intervals).

At small sizes the embedding and the head are a large share of N, so the convention moves the exponent more than its
interval does (Pearce & Song 2024; Porian et al. 2024): the table shows by how much, and which convention's law
predicts the runs it did not see best.
"""

from __future__ import annotations

import numpy as np

from ..laws.approaches import fit_isoflop, loglog_fit
from ..laws.bootstrap import bootstrap, percentile_ci
from ..laws.estimate import Estimator
from ..laws.lse import approach3_params, single_threaded_blas
from ..inputs.load import Dataset
from ..result.leaderboard import ConventionRow, Conventions, Leaderboard
from ..result.record import Value
from .leaderboard import leaderboard

WHAT = {"non_embedding": "the blocks and final LayerNorm: no embeddings, no output head",
        "matmul": "every weight matrix in a matmul, the output head included",
        "total": "every parameter, embeddings and head included"}
MAX_RESAMPLES = 200


def _approach2(est: Estimator, w=None) -> dict:
    out = fit_isoflop(est.N, est.D, est.L, est.budget, w)
    if out.get("a") is None:
        return {}
    rows = out["budgets"]
    n = np.array([r["N_opt"] for r in rows])
    c6 = 6 * n * np.array([r["D_opt"] for r in rows])  # the budget's compute counted as 6ND at its minimum
    return {"a": out["a"], "b": out["b"], "a_6ND": loglog_fit(c6, n)[0]}


def _row(params: str, ds: Dataset, n_boot: int, seed: int, board: Leaderboard | None = None) -> ConventionRow:
    runs = ds.runs
    row = ConventionRow(params=params, what=WHAT[params], N_min=float(runs["N"].min()), N_max=float(runs["N"].max()))
    est = Estimator(ds)
    a2 = _approach2(est) if len(est.isoflop) >= 2 else {}
    if a2:  # resampled as estimate's Approach 2 is: within isoFLOP budgets, each budget kept a parabola
        draws = bootstrap(lambda w: _approach2(est, w * est.w0), len(runs), min(n_boot, MAX_RESAMPLES), seed,
                          strata=est.strata() if ds.budget_basis != "log-binned flops" else None,
                          accept=est.keeps_budgets)
        for k in ("a", "b", "a_6ND"):
            ci = percentile_ci(draws.get(k, np.array([])))["ci"]
            setattr(row, f"approach2_{k}", Value(a2[k], ci))
    if est.a3 is not None:  # Approach 3 fitted as estimate fits it: for --params' own convention, the report's a
        fit = est.a3.fit(est.w0, n_refine=3)
        p = approach3_params(fit.theta)
        row.approach3_a = float(p["beta"] / (p["alpha"] + p["beta"]))
        row.approach3_degenerate = bool(fit.at_bound or fit.negligible)
    board = board or leaderboard(runs, n_boot=0)  # scores are the point fits': the same with or without intervals
    row.scores = {s.key: s.score for s in board.laws}
    scored = [s for s in board.laws if s.score is not None]
    if board.skipped:
        row.error = board.skipped
    elif scored:
        row.best_law, row.best_score = scored[0].key, scored[0].score
        row.chinchilla_score = next((s.score for s in scored if s.key == "chinchilla"), None)
    return row


def compare_conventions(by_params: dict[str, Dataset], used: str, n_boot: int = 200, seed: int = 0,
                        noise: float | None = None, unavailable: dict[str, str] | None = None,
                        board: Leaderboard | None = None) -> Conventions:
    """The table over the conventions given ({convention: the Dataset the laws see, N counted that way}); `used`:
    the convention the rest of the report counts N by; noise: the held-out score difference within noise (half the
    leaderboard's margin interval), None if unknown; unavailable: the conventions the runs could not be counted
    in, with why; board: the report's own leaderboard, reused for `used` when it ran the rolling protocol."""
    missing = "; ".join(f"{k}: {v}" for k, v in (unavailable or {}).items())
    if len(by_params) < 2:
        why = f"the runs cannot be counted in another convention ({missing})" if missing else \
            "one parameter count per run (a CSV): nothing to compare"
        return Conventions(used=used, rows=[], best=None, resolved=None, verdict="", skipped=why)
    with single_threaded_blas():
        own = board if board is not None and board.protocol == "rolling" else None
        rows = [_row(k, v, n_boot, seed, own if k == used else None) for k, v in by_params.items()]
    ranked = sorted((r for r in rows if r.best_score is not None), key=lambda r: r.best_score)
    out = Conventions(used=used, rows=rows, best=ranked[0].params if ranked else None, resolved=None, verdict="",
                      unavailable=dict(unavailable) if unavailable else None)
    a2 = [r for r in rows if r.approach2_a is not None]
    spread = (f"Approach 2's a runs from {min(r.approach2_a.value for r in a2):.3f} to "
              f"{max(r.approach2_a.value for r in a2):.3f} across the conventions. ") if len(a2) >= 2 else ""
    if not ranked:
        out.verdict = spread + "No convention's laws could be scored on held-out runs."
        return out
    b = ranked[0]
    out.verdict = spread + (f"Counting {b.params}, the best law ({b.best_law}) predicts the held-out runs best "
                            f"(mean |error| {b.best_score * 100:.2f}%)")
    if len(ranked) >= 2:
        gap = ranked[1].best_score - b.best_score
        out.resolved = None if noise is None else bool(gap > noise)
        out.verdict += f", {gap * 100:.2f} points ahead of {ranked[1].params}"
        if out.resolved is False:
            out.verdict += (f": within the leaderboard's noise (±{noise * 100:.2f} points, half its margin interval), "
                            f"so not resolved")
        elif out.resolved is None:
            out.verdict += " (no bootstrap: whether beyond noise is not assessed)"
    out.verdict += ("; the report counts N that way." if b.params == used else
                    f"; the report counts N as {used} (--params {b.params} to count N that way).")
    return out
