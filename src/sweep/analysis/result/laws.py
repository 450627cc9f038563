"""The laws fitted once with one set of run weights (LawFit: Estimator.compute, on the data and per resample) and
their parts: Approach 3's L(N, D) and the allocation under C = 6ND, Approaches 2 and 1, the recipe, L(N) per
tokens/param and L(D) per size, the leave-largest-out check. fits.py's tree holds them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .beyond import LawParams
from .record import Record, Value, absent


# ------------------------------------------------------------------------------------------------- Approach 3
@dataclass(kw_only=True)
class Starts(Record):
    """The Approach-3 fitter's starts: how many were scored and refined, how many reached the best optimum."""
    candidates: int
    refined: int
    reached_best: int
    objective_range: list[float]
    theta_spread_at_best: dict[str, list[float]]  # per entry of θ (e, a0, alpha0, a1, alpha1): [min, max] at best


@dataclass(kw_only=True)
class ParamDraws(Record):
    """Approach 3's parameters per bootstrap resample, aligned (None: a resample that failed)."""
    E: list[float | None]
    A: list[float | None]
    B: list[float | None]
    alpha: list[float | None]
    beta: list[float | None]


@dataclass(kw_only=True)
class Approach3(Record):
    """L(N, D) = E + A/N^α + B/D^β, or `error`: what the runs lack to fit it (then nothing else is set)."""
    CI_AT = "samples"
    error: str | None = absent()
    E: Value | None = absent()
    A: Value | None = absent()
    B: Value | None = absent()
    alpha: Value | None = absent()
    beta: Value | None = absent()
    objective: float | None = absent()
    n_points: int | None = absent()
    starts: Starts | None = absent()
    at_bound: list[str] | None = absent()  # θ's entries at a bound of the box (e, a0, alpha0, a1, alpha1)
    negligible: list[str] | None = absent()  # terms below 0.1% of the loss everywhere (e, a0, a1)
    theta: list[float] | None = absent()
    samples: ParamDraws | None = absent()

    @property
    def fitted(self) -> bool:
        return self.error is None

    @property
    def degenerate(self) -> bool:
        """A parameter at its bound or a negligible term: the data do not pin the law down."""
        return bool(self.at_bound or self.negligible)

    def params(self) -> dict[str, float] | None:
        """{E, A, B, alpha, beta}: the law as the numerics evaluate it (lse.law_loss), None if not fitted."""
        return None if not self.fitted else {k: getattr(self, k).value for k in LawParams.NAMES}


@dataclass(kw_only=True)
class Allocation(Record):
    """Approach 3's optimum under C = 6ND: N* = G·(C/6)^a, D* = G⁻¹·(C/6)^b, or `error` as Approach 3's."""
    error: str | None = absent()
    G: Value | None = absent()
    a: Value | None = absent()
    b: Value | None = absent()
    convention: str | None = absent()


# ------------------------------------------------------------------------------------------ Approaches 2 and 1
@dataclass(kw_only=True)
class IsoflopMinimum(Record):
    """One FLOP budget's parabola in log10 N and its minimum."""
    C: float
    N_opt: Value
    D_opt: Value
    L_opt: Value
    coef_log10N: list[float]
    n_runs: int
    edge: str | None  # "outside" the sizes tried, at the "edge" of them, or None
    key: str
    tpp: Value
    N_opt_approach3: Value | None = absent()  # Approach 3's optimum at this budget, along the runs' own FLOPs


@dataclass(kw_only=True)
class Approach2(Record):
    """IsoFLOP parabolas, then N* = k_N·C^a and D* = k_D·C^b (a, b absent with fewer than 2 usable budgets), or
    `skipped`: why the runs form no FLOP budgets."""
    skipped: str | None = absent()
    budgets: list[IsoflopMinimum] | None = absent()
    warnings: list[str] | None = absent()
    a: Value | None = absent()
    k_N: float | None = absent()
    b: Value | None = absent()
    k_D: float | None = absent()


@dataclass(kw_only=True)
class EnvelopePoint(Record):
    C: float
    N_opt: float
    D_opt: float
    L: float


@dataclass(kw_only=True)
class Approach1(Record):
    """The lower envelope of loss against FLOPs, and N*, D* ∝ C^a, C^b through it (absent: too few points)."""
    envelope: list[EnvelopePoint]
    warnings: list[str]
    a: Value | None = absent()
    k_N: float | None = absent()
    b: Value | None = absent()
    k_D: float | None = absent()
    source: str | None = absent()  # which points: every run's eval points, or each run's final one


@dataclass(kw_only=True)
class RecipeRow(Record):
    """The compute-optimal N*, D* at one budget: Approach 3's (under 6ND, and under the data's own FLOPs per token
    when they differ) and Approach 2's."""
    key: str
    C: float
    N_opt: Value
    D_opt: Value
    tpp: Value
    N_opt_flops: Value | None = absent()
    D_opt_flops: Value | None = absent()
    tpp_flops: Value | None = absent()
    N_opt_a2: Value | None = absent()
    D_opt_a2: Value | None = absent()
    tpp_a2: Value | None = absent()


# --------------------------------------------------------------------------------------------- L(N) and L(D)
@dataclass(kw_only=True)
class PowerFit(Record):
    """L(N) = E + A/N^α at one tokens/param (`key` names it)."""
    key: str
    E: Value
    A: Value
    alpha: Value
    n_sizes: int
    at_bound: list[str]
    negligible: list[str]
    theta: list[float]


@dataclass(kw_only=True)
class Kaplan(Record):
    form: str
    fits: list[PowerFit]
    skipped: str | None = absent()


@dataclass(kw_only=True)
class TokensFit(Record):
    """L(D) = E + B/D^β of one size (descriptive: no interval)."""
    key: str
    N: float
    E: float
    B: float
    beta: float
    n_points: int
    basis: str
    at_bound: list[str]
    negligible: list[str]


@dataclass(kw_only=True)
class HoldoutCheck(Record):
    """The fit made without the largest size, scored on that size's runs (relative loss errors)."""
    held_out_N: float
    n_test: int
    mean_rel_error: float
    max_abs_rel_error: float
    held_out_N_min: float | None = absent()  # a continuum of sizes: the top tenth of log N was held out
    basis: str | None = absent()  # L(N)'s tokens/param


@dataclass(kw_only=True)
class Holdout(Record):
    approach3: HoldoutCheck | None  # None: fewer than 4 sizes (or no Approach 3)
    kaplan: HoldoutCheck | None


# ------------------------------------------------------------------------------------------- the laws of one fit
@dataclass(kw_only=True)
class LawFit(Record):
    """The laws fitted with one set of run weights: Estimator.compute, once on the data and once per resample."""
    approach3: Approach3
    allocation: Allocation
    approach2: Approach2
    approach1: Approach1
    recipe: list[RecipeRow]
    kaplan: Kaplan
