"""The result's abilities section (emergence/trends.py; fits.py's tree): per task variant and metric the values
per size and the trend, the verdict in words, the Schaeffer overlay, CoT against direct answers, shots, ICL and the
two-step prediction. Values are JSON-safe already (non-finite as None) as emergence/ makes them; a metric, a
variant and a task are data here, so they key mappings (variants by key, a variant's points and trends by metric).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .record import Record, absent


@dataclass(kw_only=True)
class Thresholds(Record):
    """The verdict rules' constants (emergence/verdict.py's THRESHOLDS)."""
    sharp_jump_share: float
    min_sizes: int
    smooth_rank_correlation: float
    min_seeds: int  # seeds per size a verdict across seeds needs
    schaeffer_tolerance: float  # |exact − p̄^L| within which per-token probability explains exact match
    min_change: dict[str, float]  # per metric: the smallest net change that counts


@dataclass(kw_only=True)
class SizeRow(Record):
    N: float
    C: float
    D: float
    val_loss: float
    runs: list[str]


@dataclass(kw_only=True)
class SkippedRun(Record):
    run_name: str
    reason: str


@dataclass(kw_only=True)
class SizePoint(Record):
    """A metric at one size: the mean over seeds, their min and max, items n (over all seeds), the hierarchical
    bootstrap's 95% interval (for a proportion widened to hold Wilson's) and whether chance is in it."""
    N: float
    C: float
    val_loss: float
    value: float | None
    n: float | None
    lo: float | None
    hi: float | None
    at_chance: bool
    seed_min: float | None
    seed_max: float | None
    n_seeds: int


@dataclass(kw_only=True)
class Jump(Record):
    """The change between two adjacent sizes with its bootstrap interval."""
    from_N: float
    to_N: float
    change: float
    lo: float | None
    hi: float | None


@dataclass(kw_only=True)
class Trend(Record):
    """How a metric moves across sizes: sharp, smooth, uneven or flat (emergence/verdict.py's trend)."""
    smallest: float | None
    largest: float | None
    spearman: float | None
    jump_share: float | None
    net: float | None
    difference: list[float | None] | None  # largest − smallest with its bootstrap interval: [d, lo, hi]
    jump: Jump | None
    significant_jumps: list[Jump]
    state: str
    within_noise: bool
    regresses: bool = False  # some adjacent step is a significant worsening: neither sharp nor smooth


@dataclass(kw_only=True)
class OverlayPoint(Record):
    N: float
    measured: float | None
    lo: float | None
    hi: float | None
    predicted: float | None  # p̄^L
    p_seq: float | None
    deviation: float | None  # measured − p̄^L, with its bootstrap interval
    deviation_lo: float | None
    deviation_hi: float | None


@dataclass(kw_only=True)
class Variant(Record):
    task: str
    variant: str
    axis: dict[str, Any]  # the variant's own parameters as tasks.json names them (free-form per task family)
    chance: dict[str, float]  # per metric
    answer_tokens: float | None
    primary: str | None  # the discontinuous metric the verdict reads
    n_sizes: int
    min_seeds: int  # the fewest seeds at any size
    per_size: dict[str, list[SizePoint]]  # per metric
    trend: dict[str, Trend]  # per metric
    verdict: str
    verdict_text: str
    explained_by_per_token: bool | None  # exact match within the tolerance of p̄^L at every size (None: not judged)
    overlay: list[OverlayPoint] | None = absent()


@dataclass(kw_only=True)
class CotSize(Record):
    N: float
    direct: float
    cot: float
    diff: float
    lo: float | None
    hi: float | None


@dataclass(kw_only=True)
class CotPair(Record):
    cot: str
    direct: str
    metric: str
    per_size: list[CotSize]
    smallest_helping_N: float | None
    hurts_at_N: list[float]


@dataclass(kw_only=True)
class ShotPoint(Record):
    k: float | None
    value: float | None
    lo: float | None
    hi: float | None
    at_chance: bool


@dataclass(kw_only=True)
class ShotsSize(Record):
    N: float
    icl: list[ShotPoint]
    icl_random: list[ShotPoint]


@dataclass(kw_only=True)
class Shots(Record):
    metric: str
    chance: float | None
    per_size: list[ShotsSize]


@dataclass(kw_only=True)
class IclSize(Record):
    N: float
    n_runs: int
    icl_score: float | None
    induction_ratio: float | None
    early: Any  # the context positions of the ICL score's bands, as tasks.json names them
    late: Any
    icl_score_ci: list[float | None] | None = absent()  # the bootstrap's (seeds, then windows)
    icl_score_seeds: list[float | None] | None = absent()  # the seeds' min and max
    induction_ratio_ci: list[float | None] | None = absent()  # the bootstrap's (seeds, then copy items)
    induction_ratio_seeds: list[float | None] | None = absent()
    positions: list[int] | None = absent()
    per_position_loss: list[float | None] | None = absent()


@dataclass(kw_only=True)
class PowerLawNll(Record):
    """Step 1: task NLL = E + A·(C/C_ref)^−α."""
    E: float
    A: float
    alpha: float
    C_ref: float


@dataclass(kw_only=True)
class SigmoidAcc(Record):
    """Step 2: accuracy = chance + (1 − chance)·σ(−k·(NLL − nll0))."""
    k: float
    nll0: float
    chance: float


@dataclass(kw_only=True)
class NllPoint(Record):
    C: float
    nll: float
    acc: float


@dataclass(kw_only=True)
class EventPoint(Record):
    nll: float
    acc: float


@dataclass(kw_only=True)
class TwoStep(Record):
    """One variant's two-step prediction of the largest size's accuracy, or `skipped` and why."""
    key: str
    metric: str
    skipped: str | None = absent()
    held_out_N: float | None = absent()
    held_out_C: float | None = absent()
    observed: float | None = absent()
    observed_ci: list[float | None] | None = absent()
    predicted: float | None = absent()
    predicted_ci: list[float | None] | None = absent()  # both steps refitted on the bootstrap's replicates
    error: float | None = absent()
    nll_observed: float | None = absent()
    nll_predicted: float | None = absent()
    predicted_from_observed_nll: float | None = absent()
    step1: PowerLawNll | None = absent()
    step2: SigmoidAcc | None = absent()
    fit_sizes: int | None = absent()
    step2_points: int | None = absent()
    points: list[NllPoint] | None = absent()
    events: list[EventPoint] | None = absent()


@dataclass(kw_only=True)
class RecallSize(Record):
    N: float
    seen: float | None
    seen_ci: list[float | None]
    held_out: float | None
    held_out_ci: list[float | None]
    difference: float | None


@dataclass(kw_only=True)
class Recall(Record):
    """A memorisation control (items the mix trained on) beside the held-out variant: recall and generalisation."""
    seen: str
    held_out: str
    per_size: list[RecallSize]


@dataclass(kw_only=True)
class Emergence(Record):
    thresholds: Thresholds
    replicates: int  # of the hierarchical bootstrap
    runs: int
    runs_used: int
    seeds_per_size: list[int]
    sizes: list[SizeRow]
    skipped: list[SkippedRun]
    variants: dict[str, Variant]  # by key, task/variant
    cot: list[CotPair]
    shots: Shots | None
    icl: list[IclSize]
    two_step: list[TwoStep]
    recall: list[Recall]
    table: str | None = absent()  # the per-run table's file beside fits.json (tasks.csv)
