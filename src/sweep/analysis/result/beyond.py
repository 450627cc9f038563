"""The result's sections beyond one fit (fits.py's tree): fit small, predict big (holdout.py), over-training
(overtrain.py), the inference-aware optimum (inference.py), Kaplan's forms (kaplan.py) and Muennighoff's effective
data (repeat.py). Each is absent from fits.json when its analysis did not run, and holds `skipped` or `error`
(why, and nothing fitted) when it ran but could not fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .record import Record, Value, absent, absent_when, lists_ci


@dataclass(kw_only=True)
class LawParams(Record):
    """L(N, D) = E + A/N^α + B/D^β's parameters, without intervals (a first or an auxiliary fit)."""
    NAMES: ClassVar[tuple[str, ...]] = ("E", "A", "B", "alpha", "beta")
    E: float
    A: float
    B: float
    alpha: float
    beta: float

    def params(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in self.NAMES}


# ------------------------------------------------------------------------------------- fit small, predict big
@dataclass(kw_only=True)
class HeldOutRun(Record):
    run_name: str
    N: float
    D: float
    C: float
    predicted: float
    interval: list[float] | None  # 95% prediction interval (the law's uncertainty and the run-to-run scatter)
    interval_law: list[float] | None  # the law's part alone
    observed: float
    rel_error: float
    inside: bool | None


@dataclass(kw_only=True)
class PredictionSummary(Record):
    n: int
    median_abs_rel_error: float
    max_abs_rel_error: float
    share_inside: float | None  # None: no intervals (--bootstrap 0)


@dataclass(kw_only=True)
class LnPrediction(Record):
    """L(N) on a ladder's runs at one tokens/param, fitted on the rest, predicting that tokens/param's held-out runs."""
    form: str
    basis: str
    fitted_runs: int
    runs: list[HeldOutRun]
    summary: PredictionSummary


@dataclass(kw_only=True)
class HoldoutProtocol(Record):
    """--holdout EXPR: the runs it holds out predicted by Approach 3 fitted on the rest (`error`: too few left)."""
    expr: str
    fitted_runs: int
    held_out_runs: int
    interval: str  # how the intervals are made, in words
    error: str | None = absent()
    runs: list[HeldOutRun] | None = absent()
    summary: PredictionSummary | None = absent()
    kaplan: LnPrediction | None = absent()


# ------------------------------------------------------------------------------------------------ over-training
@dataclass(kw_only=True)
class ExtrapolatedRun(Record):
    N: float
    D: float
    M: float
    observed: float
    predicted: float
    rel_error: float
    predicted_approach3: float
    rel_error_approach3: float


@dataclass(kw_only=True)
class Extrapolation(Record):
    """Both laws fitted on M ≤ 20, each run beyond predicted."""
    fit_on: str
    fitted_runs: int
    runs: list[ExtrapolatedRun]
    median_abs_rel_error: float
    median_abs_rel_error_approach3: float


@dataclass(kw_only=True)
class DoublingGain(Record):
    """A run against its size's next-shorter run: the loss gained per doubling of tokens, observed and by each law."""
    N: float
    M: float
    loss: float
    gain_per_doubling: float
    gain_approach3: float | None = absent()
    gain_gadre: float | None = absent()


@dataclass(kw_only=True)
class Overtraining(Record):
    """Gadre et al.'s L(C, M) = E + (a·M^η + b·M^−η)·C^−η with intervals (`ci` listed when bootstrapped)."""
    CI_AT = "extrapolation"
    form: str
    M_range: list[float]
    skipped: str | None = absent()
    E: Value | None = absent()
    a: Value | None = absent()
    b: Value | None = absent()
    eta: Value | None = absent()
    objective: float | None = absent()
    alpha_equivalent: float | None = absent()
    median_abs_residual: float | None = absent()
    median_abs_residual_approach3: float | None = absent()
    bootstrapped: bool = lists_ci()
    extrapolation: Extrapolation | None = absent_when("skipped")  # null: no run beyond M = 20, or too few below
    extrapolation_skipped: str | None = absent()
    doubling: list[DoublingGain] | None = absent()

    def params(self) -> dict[str, float]:
        """{E, a, b, eta}: the law as overtrain.overtrain_loss evaluates it."""
        return {k: getattr(self, k).value for k in ("E", "a", "b", "eta")}


# ------------------------------------------------------------------------------------ the inference-aware optimum
@dataclass(kw_only=True)
class InferenceAllocation(Record):
    """At budget C and demand D_inf: the target loss, the inference-aware N*, D*, and the saving in lifetime FLOPs
    against the compute-optimal model serving the same demand."""
    key: str
    C: float
    inference_tokens: float
    target_loss: float
    N_opt: Value
    D_opt: Value
    tpp: Value
    train_flops: float
    lifetime_flops: float
    N_chinchilla: float
    D_chinchilla: float
    lifetime_flops_chinchilla: float
    saving: Value


@dataclass(kw_only=True)
class InferenceOptimal(Record):
    error: str | None = absent()
    objective: str | None = absent()
    demands: list[float] | None = absent()
    rows: list[InferenceAllocation] | None = absent()


# ------------------------------------------------------------------------------------------------ Kaplan's forms
@dataclass(kw_only=True)
class PurePower(Record):
    """L = (x_c/x)^α by least squares in log-log."""
    alpha: float
    x_c: float
    n_points: int


@dataclass(kw_only=True)
class Per10x(Record):
    """The factor a quantity ∝ C^exponent grows by per 10× compute, with its interval's."""
    factor: float
    ci: list[float] | None = absent()


@dataclass(kw_only=True)
class AllocationPer10x(Record):
    source: str
    N: Per10x | None
    D: Per10x | None


@dataclass(kw_only=True)
class PublishedPer10x(Record):
    source: str
    N: float
    D: float


@dataclass(kw_only=True)
class KaplanJoint(Record):
    """L(N, D) = [(N_c/N)^(α_N/α_D) + D_c/D]^α_D."""
    form: str
    N_c: float
    D_c: float
    alpha_N: float
    alpha_D: float
    objective: float
    at_bound: list[str]
    median_abs_residual: float


@dataclass(kw_only=True)
class FrontierGain(Record):
    """Along Approach 3's frontier: the loss at C and at 10·C, and the gain between them."""
    key: str
    C: float
    loss: float
    loss_10x: float
    gain: Value
    relative_gain: float


@dataclass(kw_only=True)
class Counterfactual(Record):
    """A run against the compute-optimal model at its compute (Approach 3's law, C = 6ND)."""
    run_name: str
    C: float
    N: float
    D: float
    observed: float
    predicted: float
    N_opt: float
    D_opt: float
    predicted_opt: float
    N_over_opt: float
    loss_left: float


@dataclass(kw_only=True)
class KaplanForms(Record):
    L_of_N: PurePower | None  # None: fewer than 3 points, or the loss does not fall
    L_of_N_basis: str
    L_of_C: PurePower | None
    L_of_C_basis: str
    allocation_per_10x: list[AllocationPer10x]
    reference_per_10x: list[PublishedPer10x]
    joint: KaplanJoint | None = absent()
    gain_per_10x: list[FrontierGain] | None = absent()
    counterfactual: list[Counterfactual] | None = absent()


# ------------------------------------------------------------------------------------------------ repeated data
@dataclass(kw_only=True)
class RepeatedData(Record):
    """Muennighoff's effective data: R* fitted to the repeated runs under the law of the fresh ones (`ci` listed
    whenever R* is fitted, {} without an interval)."""
    CI_AT = "mean_rel_error"
    form: str
    method: str
    n_repeated: int
    n_fresh: int
    skipped: str | None = absent()
    law: LawParams | None = absent()
    law_at_bound: list[str] | None = absent()
    R_star: Value | None = absent()
    at_bound: bool | None = absent()
    fitted: bool = lists_ci()
    mean_rel_error: float | None = absent()
    mean_rel_error_as_fresh: float | None = absent()
