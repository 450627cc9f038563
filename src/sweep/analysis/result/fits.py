"""The result of `sweep analyze` as one typed tree, and fits.json is its JSON (record.py writes and reads it).

    Fits                       what `sweep analyze` found (main.py assembles it), schema_version first in fits.json
    └ Laws                     what `estimate` fits (estimate.py), with the bootstrap's settings and the runs used
      └ LawFit                 the laws fitted once with one set of run weights (Estimator.compute, per resample;
                               laws.py, with its parts)

A law's parameters are Values (a value with its 95% interval). The sections beyond one fit are beyond.py's,
the lr study's lr.py's, the abilities' emergence.py's. `read_fits(path)` reads a saved fits.json back
(and refuses one of a newer schema_version than this code knows).

SCHEMA_VERSION rises with any change a reader of the old layout would misread (a key renamed, moved, or its meaning
changed); adding a section or key that old readers may ignore keeps it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from ...files import json_safe
from .laws import Holdout, LawFit, TokensFit
from .record import Record, ResultError, absent, memory
from .beyond import HoldoutProtocol, InferenceOptimal, KaplanForms, LawParams, Overtraining, RepeatedData
from .emergence import Emergence
from .leaderboard import Conventions, Leaderboard
from .lr import LrStudy
from .seeds import Seeds

SCHEMA_VERSION = 1


# ----------------------------------------------------------------------------------- what the fits rest on
@dataclass(kw_only=True)
class Bootstrap(Record):
    n: int
    seed: int
    level: float
    method: str
    n_valid_min: int


@dataclass(kw_only=True)
class ExcludedRun(Record):
    run_name: str
    reason: str


@dataclass(kw_only=True)
class RunsUsed(Record):
    used: int
    excluded: list[ExcludedRun]
    names: list[str] | None  # None: aggregated (the runs became bins)


@dataclass(kw_only=True)
class BinSizes(Record):
    min: int
    median: float
    max: int


@dataclass(kw_only=True)
class Aggregation(Record):
    """Whether (and how) a large input was binned (aggregate.py); the rest only when applied."""
    applied: bool
    above: int
    runs: int | None = absent()
    bins: int | None = absent()
    max_bins: int | None = absent()
    key: str | None = absent()
    runs_per_bin: BinSizes | None = absent()
    representative: str | None = absent()
    first_fit: LawParams | None = absent()
    fits: str | None = absent()
    bootstrap: str | None = absent()
    runs_out_of_budgets: int | None = absent()
    eval_curves_dropped: bool | None = absent()


@dataclass(kw_only=True)
class FlopsPerToken(Record):
    """C/D = coefficient·N^exponent fitted to the runs; is_6N when they counted C = 6ND."""
    exponent: float | None
    coefficient: float | None
    is_6N: bool


@dataclass(kw_only=True)
class Cooldown(Record):
    """The compute cooldown branches saved against independent runs of their horizons (cooldown.py)."""
    trunks: int
    branches: int
    flops_independent: float
    flops_spent: float
    saving: float | None
    trunks_missing: list[str] | None = absent()  # trunks without a summary.json: not counted


@dataclass(kw_only=True)
class TrustCheck(Record):
    """One "Can I trust this?" check: ok True (passed), False (a finding) or None (not checkable)."""
    check: str
    ok: bool | None
    detail: str


@dataclass(kw_only=True)
class WandbRecord(Record):
    """The wandb analysis run: mode "off", or its id, project, dir and artifact; `error` if logging failed."""
    mode: str
    id: str | None = absent()
    project: str | None = absent()
    dir: str | None = absent()
    artifact: str | None = absent()
    error: str | None = absent()


# -------------------------------------------------------------------------------------------------- the tree
@dataclass(kw_only=True)
class Laws(LawFit):
    """What `estimate` returns: the laws with their intervals, the checks around them and what they rest on."""
    holdout: Holdout
    loss_vs_tokens: list[TokensFit]
    params: str
    source: str
    sweep: str
    budget_basis: str | None
    bootstrap: Bootstrap
    runs: RunsUsed
    aggregation: Aggregation
    flops_per_token_fit: FlopsPerToken
    warnings: list[str]
    cooldown: Cooldown | None = absent()
    seeds: Seeds | None = absent()  # cells trained with several seeds: their spread (laws/seeds.py)
    bootstrap_samples: dict | None = memory()  # per quantity (by flat path) its resample values: compare's draws


@dataclass(kw_only=True)
class Fits(Laws):
    """Everything `sweep analyze` found: fits.json."""
    repeated_data: RepeatedData | None = absent()
    leaderboard: Leaderboard | None = absent()  # which law predicts held-out runs best (predict/leaderboard.py)
    conventions: Conventions | None = absent()  # the laws with N counted each way (predict/conventions.py)
    holdout_protocol: HoldoutProtocol | None = absent()
    overtraining: Overtraining | None = absent()
    inference_optimal: InferenceOptimal | None = absent()
    kaplan_forms: KaplanForms | None = absent()
    trust: list[TrustCheck]
    lr: LrStudy | None = absent()
    emergence: Emergence | None = absent()
    lr_rule: str | None = absent()  # the rule file written beside fits.json (lr_rule.json)
    plots: dict[str, str] | None = absent()  # plot name → its PNG, in drawing order (a mapping by name)
    report_html: str | None = absent()
    wandb: WandbRecord | None = absent()

    @classmethod
    def assemble(cls, laws: Laws, **sections) -> Fits:
        """The result from estimate's laws and the sections found beside them (main.py)."""
        return cls(**{f.name: getattr(laws, f.name) for f in fields(Laws)}, **sections)

    def to_json(self) -> dict:
        """fits.json's content under the one JSON policy (non-finite numbers as None), schema_version first."""
        return json_safe({"schema_version": SCHEMA_VERSION, **super().to_json()})

    @classmethod
    def from_json(cls, d: dict, where: str | None = None) -> Fits:
        where = where or "fits.json"
        if not isinstance(d, dict):
            raise ResultError(f"{where}: not a fits.json (expected an object, found {type(d).__name__})")
        d = dict(d)
        version = d.pop("schema_version", 1)  # a fits.json from before the key existed has version 1's layout
        if version != SCHEMA_VERSION:
            how = ("upgrade sweep to read it, or re-run `sweep analyze` with this version to rewrite it"
                   if isinstance(version, int) and version > SCHEMA_VERSION else
                   "re-run `sweep analyze` to rewrite it")
            raise ResultError(f"{where}: schema_version {version!r} is not one this sweep reads (it reads "
                              f"{SCHEMA_VERSION}); {how}")
        return super().from_json(d, where)


def read_fits(path) -> Fits:
    """A saved fits.json as the typed result (ResultError, naming the file, if it is not one this code reads)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ResultError(f"{path}: cannot read it as fits.json ({err})") from None
    return Fits.from_json(d, str(path))
