"""The result's lr study (lr/study.py; fits.py's tree): per size the best peak lr with its interval, the law
lr*(N) across sizes, the noise it rests on, and when beta2 or batch_tokens were swept the slices and batch*(N).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .record import Record, Value, absent


@dataclass(kw_only=True)
class Parabola(Record):
    """A size's parabola of loss in ln lr over its window: coefficients in ln(lr / center_lr)."""
    coef: list[float]
    center_lr: float
    window_lr: list[float]


@dataclass(kw_only=True)
class LrOptimum(Record):
    """One size: its lrs and mean losses, the best lr with its 95% interval (none for an edge), and whether the
    law uses it (`left_out` says why not)."""
    key: str
    model: str
    n_params: float
    lrs: list[float]
    losses: list[float]
    n_runs: int
    best_lr: float
    ci: list[float] | None
    se_ln: float | None
    best_loss: float
    edge: str | None  # "low" or "high": the best lr is a bound at that end of the lrs tried
    opens_down: bool
    in_law: bool
    left_out: str | None
    flags: list[str]
    parabola: Parabola | None


@dataclass(kw_only=True)
class PowerLaw(Record):
    """ln y = ln y_ref + exponent·ln(N/n_ref) across sizes (lr/fit.py's power_law), its intervals Knapp–Hartung's:
    lr*(N) with lr_ref, or batch*(N) with batch_ref."""
    CI_AT = "cov"
    CI_ORDER = ('exponent', 'lr_ref', 'batch_ref')
    lr_ref: Value | None = absent()
    n_ref: float
    exponent: Value
    cov: list[list[float]]
    t: float
    dof: int
    tau: float
    weighted: bool
    min_params: float
    max_params: float
    sizes: list[str] | None = absent()  # the sizes fitted (lr*(N) only)
    batch_ref: Value | None = absent()

    @property
    def ref(self) -> Value:
        return self.lr_ref if self.lr_ref is not None else self.batch_ref


@dataclass(kw_only=True)
class LrNoise(Record):
    """The final loss's noise pooled over the sizes (σ, never below the floor), and its residual dof."""
    sigma: float | None
    sigma_fitted: float | None
    dof: int
    floor: float


@dataclass(kw_only=True)
class LrSlice(Record):
    slice: str
    mean_best_loss: float
    law: PowerLaw | None
    no_rule: str | None


@dataclass(kw_only=True)
class BatchOptimum(Record):
    model: str
    n_params: float
    batches: list[float]
    best_losses: list[float]
    best_batch: float
    edge: str | None
    in_law: bool
    left_out: str | None
    flags: list[str]


@dataclass(kw_only=True)
class BatchStudy(Record):
    per_size: list[BatchOptimum]
    law: PowerLaw | None
    no_rule: str | None


@dataclass(kw_only=True)
class LrOther(Record):
    """The law at another horizon than the study's."""
    horizon: str
    slice: str
    law: PowerLaw | None
    no_rule: str | None


@dataclass(kw_only=True)
class LrStudy(Record):
    """fits.json's `lr`: the study at its horizon and best slice (`law` None: no rule, `no_rule` says why)."""
    params: str  # "matmul" (a rule file can be written) or "N"
    horizon: str
    tokens_per_param: float | None
    slice: str
    slice_values: dict[str, float | None]  # the swept settings (beta2, batch_tokens) of the slice, by name
    n_runs: int
    per_size: list[LrOptimum]
    law: PowerLaw | None
    no_rule: str | None
    warnings: list[str]
    noise: LrNoise
    slices: list[LrSlice] | None
    batch: BatchStudy | None
    meta: dict[str, Any]  # what the caller said of the runs (data, sweep): free-form, copied into the rule file
    others: list[LrOther]
