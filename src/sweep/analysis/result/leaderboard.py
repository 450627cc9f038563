"""fits.json's `leaderboard` (predict/leaderboard.py): every law form fitted on the smaller runs and scored on the
larger runs it did not see, ranked by held-out error, the law to extrapolate with named (or "not resolved" when the
ranking is within noise), each law's compute-optimal N*, D* beside the recommended one's; and `conventions`
(predict/conventions.py): the laws under each parameter convention.
"""

from __future__ import annotations

from dataclasses import dataclass

from .record import Record, Value, absent


@dataclass(kw_only=True)
class Fold(Record):
    index: int
    held_out: str  # which runs, in words
    fitted_runs: int
    held_out_runs: int


@dataclass(kw_only=True)
class LawPrediction(Record):
    """One held-out run predicted by one law in one fold."""
    fold: int
    run_name: str
    N: float
    D: float
    predicted: float
    interval: list[float] | None  # 95% prediction interval; None: no bootstrap
    observed: float
    rel_error: float  # predicted / observed − 1
    inside: bool | None


@dataclass(kw_only=True)
class LawOptimum(Record):
    """The law's compute-optimal model at budget C (C = 6ND, fresh data), fitted on every run."""
    C: float
    N_opt: float | None  # None: no minimum (a degenerate law)
    D_opt: float | None
    tpp: float | None


@dataclass(kw_only=True)
class LawScore(Record):
    key: str
    name: str
    formula: str
    n_params: int
    rank: int | None  # None: not scored (error)
    score: float | None  # mean over folds of the fold's mean |relative error|: what the ranking uses
    mean_abs_rel_error: float | None  # over every held-out prediction
    median_abs_rel_error: float | None
    max_abs_rel_error: float | None
    coverage: float | None  # share of held-out runs inside their 95% interval (None: no bootstrap)
    n_predictions: int
    params: dict[str, float] | None  # fitted on every run
    at_bound: list[str]
    optimum: list[LawOptimum]
    interval_scales: list[float | None]  # per fold, how much its intervals were widened (None: not calibrated)
    predictions: list[LawPrediction]
    error: str | None = absent()  # why it was not scored (too few runs, no convergence): nothing dropped silently


@dataclass(kw_only=True)
class Leaderboard(Record):
    protocol: str  # "rolling" or "--holdout EXPR"
    interval: str  # how the prediction intervals are made, in words
    resamples: int  # bootstrap resamples per law and fold (0: no intervals, and no resolution)
    folds: list[Fold]
    laws: list[LawScore]  # ranked first, then the laws not scored
    recommended: str | None  # key of the law to extrapolate with (the best score), None: none scored
    resolved: bool | None  # False: the best and the runner-up are within noise
    margin: list[float] | None  # the runner-up's score minus the best's, 95% interval over held-out runs
    verdict: str  # the ranking in one sentence
    skipped: str | None = absent()  # why no protocol ran (too few sizes)


@dataclass(kw_only=True)
class ConventionRow(Record):
    """The same runs with N counted one way: the exponents, and the best law's held-out error."""
    params: str
    what: str  # which parameters that counts, in words
    N_min: float
    N_max: float
    approach2_a: Value | None = absent()  # N* ∝ C^a, C the runs' own FLOPs (absent: no two isoFLOP budgets)
    approach2_b: Value | None = absent()
    approach2_a_6ND: Value | None = absent()  # the same minima against C = 6·N*·D*
    approach3_a: float | None = None  # β/(α+β) of Chinchilla's form fitted to every run (no interval)
    approach3_degenerate: bool | None = None
    best_law: str | None = None  # the leaderboard's first law under this convention (no intervals)
    best_score: float | None = None
    chinchilla_score: float | None = None
    scores: dict[str, float | None] | None = None  # every law's held-out score under this convention (None: unscored)
    error: str | None = absent()


@dataclass(kw_only=True)
class Conventions(Record):
    used: str  # the convention the rest of fits.json counts N by (--params)
    rows: list[ConventionRow]
    best: str | None  # the convention whose best law predicts the held-out runs best
    resolved: bool | None  # whether ahead of the next beyond the leaderboard's noise (None: no bootstrap)
    verdict: str
    unavailable: dict[str, str] | None = absent()  # conventions the runs could not be counted in, with why
    skipped: str | None = absent()
