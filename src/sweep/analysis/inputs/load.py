"""The analysis' input: a sweep directory's runs (read only through sweep.rundir) or a CSV of published runs, as a
`Dataset` of per-run rows and eval points, with FLOP budgets and checks that there is enough to fit. A budget is
a sweep's flops_budget, a CSV group's geometric-mean FLOPs (its label, string or number, only names it), or a
chain of nearby FLOPs (log-binned; FLOPs that vary continuously form none).

Only finite values (finite.py) get in: a run whose summary lacks a positive finite size, tokens, FLOPs or loss is
listed in `excluded` with the reason, and an eval point with a non-finite value is left out and counted in `notes`.
Besides what the laws fit, each run carries what the trust checks read (NaN or None where older runs or a CSV lack
it): epochs, lr, N_matmul, val_tokens and its lr rule (rule_lr, lr_rule_tuned, lr_rule_in_range, lr_rule_name).
A cooldown trunk is no run (cooldown.py: it is excluded, its FLOPs kept in `trunks`); its branches are runs, with
their trunk's name in `trunk`. Too few sizes or runs for a law is no error here (`shortfall` says what is missing);
only input with nothing usable is (AnalysisError).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ... import rundir
from ...config.naming import study_group
from ...config import ConfigError
from .cooldown import TRUNK_REASON, branch_facts, is_trunk
from .finite import HUGE, is_non_finite, is_positive
from .sizes import size_clusters

CONVENTIONS = ("non_embedding", "total", "matmul")


class AnalysisError(ValueError):
    """Input the analysis cannot use: the message names the file, row or column and the fix."""


@dataclass
class Dataset:
    # run_name, N, D, C, loss, budget (NaN: none), model, seed, tpp_req, epochs, lr, N_matmul, val_tokens, rule_lr,
    # lr_rule_tuned, lr_rule_in_range, lr_rule_name, lr_rule_tpp (the tokens/param the rule was measured at), tpp
    # (the run's tokens per non-embedding parameter) (NaN/None: not recorded)[, weight: runs in a bin]
    runs: pd.DataFrame
    points: pd.DataFrame  # eval points: run (row of runs), D, C, loss
    source: str
    params: str
    budget_basis: str  # where FLOP budgets came from: flops_budget | group column | log-binned flops
    excluded: list[dict] = field(default_factory=list)
    sweep_name: str = "sweep"
    logger: dict = field(default_factory=dict)  # the runs' logger config (wandb mode/project)
    has_curves: bool = False
    notes: list[str] = field(default_factory=list)  # input left out short of a whole run (report warnings)
    aggregation: dict | None = None  # set by aggregate.py when runs were binned (runs then has a `weight` column)
    repeated: list[dict] = field(default_factory=list)  # runs above 1 epoch: run_name, epochs, included (repeat.py)
    data: str | None = None  # the corpus the runs trained on (data.name), when known
    trunks: dict = field(default_factory=dict)  # cooldown trunks (excluded): run name → FLOPs (cooldown.py)
    replicates: object | None = None  # runs are cell means over seeds: the seeds behind them (replicates.py)


def drop_runs(ds: Dataset, drop: np.ndarray, reason: str) -> Dataset:
    """ds without the runs where `drop` is true: listed in `excluded` with the reason, their eval points dropped
    and the others renumbered."""
    if not drop.any():
        return ds
    r = ds.runs
    keep = np.flatnonzero(~drop)
    new_index = np.full(len(r), -1)
    new_index[keep] = np.arange(len(keep))
    pts = ds.points[np.isin(ds.points["run"].to_numpy(), keep)].copy()
    pts["run"] = new_index[pts["run"].to_numpy()]
    excluded = ds.excluded + [{"run_name": str(name), "reason": reason} for name in r["run_name"].to_numpy()[drop]]
    return replace(ds, runs=r.iloc[keep].reset_index(drop=True), points=pts.reset_index(drop=True),
                   excluded=excluded)


# ------------------------------------------------------------------------------------------ sweep directory
def _describe(value) -> str:
    return "null" if value is None else repr(value)


def _summary_problem(summary: dict, params: str) -> str | None:
    """Why a completed run's summary cannot enter the fits (None: it can)."""
    fields = (("n_params." + params, (summary.get("n_params") or {}).get(params)), ("tokens", summary.get("tokens")),
              ("flops", summary.get("flops")), ("val_loss", summary.get("val_loss")))
    non_finite = [f"{k} ({_describe(v)})" for k, v in fields if is_non_finite(v)]
    not_positive = [k for k, v in fields if not is_non_finite(v) and not is_positive(v)]
    parts = ([f"a non-finite {', '.join(non_finite)}"] if non_finite else []) + \
        ([f"no positive {', '.join(not_positive)}"] if not_positive else [])
    return f"summary.json has {' and '.join(parts)}" if parts else None


def _eval_points(run_dir: Path) -> tuple[list[tuple[float, float, float]], int]:
    """(tokens, flops, val_loss) of each eval event, and how many were left out for a non-finite value.

    An eval with a non-positive value (step 0 has tokens 0) is left out as before, without counting.
    """
    points, non_finite = [], 0
    for ev in rundir.read_events(run_dir):
        if "val_loss" not in ev:
            continue  # a train or task event
        values = [ev.get(k) for k in ("tokens", "flops", "val_loss")]
        if all(is_positive(v) for v in values):
            points.append(tuple(float(v) for v in values))
        elif any(is_non_finite(v) for v in values):
            non_finite += 1
    return points, non_finite


def _read_config(run_dir: Path) -> dict:
    """config.yaml, for the logger, sweep name, tokens/param and the plan's epochs and lr rule only: a missing or
    corrupt one reads as empty."""
    try:
        return rundir.read_config(run_dir) or {}
    except ConfigError:
        return {}


def _number(value) -> float:
    return float(value) if is_positive(value) else np.nan


def _run_facts(summary: dict, plan: dict) -> dict:
    """What the trust checks read of a run, NaN or None where it was not recorded (older runs)."""
    rule = plan.get("lr_rule") if isinstance(plan.get("lr_rule"), dict) else {}
    flag = {k: rule[k] if isinstance(rule.get(k), bool) else None for k in ("tuned", "in_range")}
    return {"epochs": _number(summary.get("epochs", plan.get("epochs"))),
            "lr": _number(summary.get("lr", plan.get("lr"))),
            "N_matmul": _number((summary.get("n_params") or {}).get("matmul")),
            "val_tokens": _number(summary.get("val_tokens")), "rule_lr": _number(rule.get("rule_lr")),
            "lr_rule_tuned": flag["tuned"], "lr_rule_in_range": flag["in_range"], "lr_rule_name": rule.get("name"),
            "lr_rule_tpp": _number(rule.get("tokens_per_param")), "tpp": _number(summary.get("tokens_per_param")),
            "beta2": _number(plan.get("beta2")), "batch_tokens": _number(summary.get("batch_tokens"))}


NO_FACTS = _run_facts({}, {})  # a CSV row's (only its epochs, from an optional column)


INCOMPLETE = "incomplete: no summary.json (running, or stopped)"
NOT_STARTED = "not started: a cell of the grid's manifest with no run directory yet (queued, or never submitted)"
UNFINISHED = (INCOMPLETE, NOT_STARTED)  # a cell of the grid not done yet: `sweep status` says where it is


def load_sweep(sweep_dir: Path, params: str) -> Dataset:
    if not sweep_dir.is_dir():
        raise AnalysisError(f"{sweep_dir} is not a directory; pass a sweep directory (<out_dir>/<sweep name>) "
                            f"or --csv FILE")
    rows, points, excluded, notes, logger, sweep_names, data_name, trunks = [], [], [], [], {}, set(), None, {}
    for d in rundir.run_dirs(sweep_dir):
        s = rundir.read_summary(d)
        if s is None:
            if (d / rundir.CONFIG).exists() or (d / rundir.METRICS).exists():
                excluded.append({"run_name": d.name, "reason": INCOMPLETE})
            continue
        if s.get("status") == "unreadable":
            excluded.append({"run_name": d.name, "reason": s.get("error") or "unreadable summary.json"})
            continue
        if s.get("status") != "completed":
            why = s.get("error") or ""
            excluded.append({"run_name": d.name, "reason": f"status {s.get('status')!r}" + (f": {why}" if why else "")})
            continue
        if is_trunk(s):
            trunks[s.get("run_name", d.name)] = s.get("flops")
            excluded.append({"run_name": d.name, "reason": TRUNK_REASON})
            continue
        problem = _summary_problem(s, params)
        if problem:
            excluded.append({"run_name": d.name, "reason": problem})
            continue
        cfg = _read_config(d)
        logger = logger or (cfg.get("logger") or {})
        data_name = data_name or s.get("data")
        sweep_names.add((cfg.get("sweep") or {}).get("name") or s.get("sweep") or sweep_dir.name)
        budget = s.get("flops_budget")
        tpp = (cfg.get("train") or {}).get("tokens_per_param")
        n = s["n_params"][params]
        rows.append({"run_name": s.get("run_name", d.name), "N": float(n), "D": float(s["tokens"]),
                     "C": float(s["flops"]), "loss": float(s["val_loss"]),
                     "budget": float(budget) if is_positive(budget) else np.nan,
                     "tpp_req": float(tpp) if is_positive(tpp) else np.nan, "model": s.get("model"),
                     "seed": s.get("seed"), **_run_facts(s, cfg.get("plan") or {}), **branch_facts(s)})
        run_points, n_bad = _eval_points(d)
        points += [(len(rows) - 1, n, *p) for p in run_points]
        if n_bad:
            notes.append(f"{rows[-1]['run_name']}: {n_bad} eval point(s) with a non-finite value (null, NaN, inf or "
                         f"|value| >= {HUGE:.0e}) left out of the fits")
    started = {d.name for d in rundir.run_dirs(sweep_dir)}
    excluded += [{"run_name": cell["name"], "reason": NOT_STARTED} for cell in rundir.read_manifest(sweep_dir) or []
                 if cell["status"] == rundir.PLANNED and cell["name"] not in started]
    if not rows:
        raise AnalysisError(f"no completed runs in {sweep_dir} (expected <run>/summary.json with status "
                            f"'completed'; {len(excluded)} incomplete or failed)")
    runs = pd.DataFrame(rows)
    pts = pd.DataFrame(points, columns=["run", "N", "D", "C", "loss"])
    has_curves = len(pts) > 0
    if not has_curves:  # Approach 1 still has each run's final point
        pts = runs.assign(run=np.arange(len(runs)))[["run", "N", "D", "C", "loss"]]
    basis = "flops_budget" if runs["budget"].notna().any() else "log-binned flops"
    if basis != "flops_budget":
        runs["budget"] = _bin_flops(runs["C"].to_numpy(), runs["N"].to_numpy())
    name = sorted(sweep_names)[0] if sweep_names else sweep_dir.name
    if logger.get("group") in (None, "auto"):  # the study's wandb group, as its runs computed it
        logger = {**logger, "group": study_group(name, data_name or "data", sweep_dir)}
    return Dataset(runs, pts, str(sweep_dir), params, basis, excluded, name, logger, has_curves, notes,
                   data=data_name, trunks=trunks)


def _bin_flops(C: np.ndarray, N: np.ndarray, gap_decades: float = 0.03) -> np.ndarray:
    """FLOP groups when none were declared: runs within a small gap in log C share a budget (its geometric mean).
    FLOPs that vary continuously (a chain of such gaps spanning more than a factor 2) form no budgets at all: its
    sparse ends would otherwise be cut into budgets of a few runs each.

    Only groups with 3 or more sizes are kept (NaN otherwise): a stray run is no isoFLOP curve, and needs no warning.
    """
    if _flops_continuous(C, gap_decades):
        return np.full(len(C), np.nan)
    return _budgets_of_groups(size_clusters(C, rel_tol=10**gap_decades - 1, max_span=np.inf), C, N, min_sizes=3)


def _flops_continuous(C: np.ndarray, gap_decades: float = 0.03) -> bool:
    logc = pd.Series(np.log(C)).groupby(size_clusters(C, rel_tol=10**gap_decades - 1, max_span=np.inf))
    return bool((logc.max() - logc.min()).max() > np.log(2.0))


def _budgets_of_groups(labels, C: np.ndarray, N: np.ndarray, min_sizes: int = 0) -> np.ndarray:
    """Each group's budget, the geometric mean of its runs' FLOPs, whatever the labels' type (numbers or strings);
    NaN for a group with fewer than min_sizes model sizes. One pass over the runs sorted by group."""
    codes = pd.factorize(pd.Series(labels), sort=True)[0]
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    out = np.full(len(C), np.nan)
    logc = np.log(C)
    for idx in np.split(order, bounds):
        if len(idx) >= min_sizes and (min_sizes <= 1 or size_clusters(N[idx]).max() + 1 >= min_sizes):
            out[idx] = np.exp(logc[idx].mean())
    return out


# ---------------------------------------------------------------------------------------------------- CSV
# A loss in nats per token above this is no language model's: uniform over a 10^13-token vocabulary is ~30 nats.
# (Losses in bits, or a perplexity, would be caught here too.)
MAX_LOSS = 30.0


def _plain(value) -> str:
    """A CSV cell as the user wrote it, numbers as plain numbers (never np.float64(...))."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return f"{float(value):.6g}"
    return repr(str(value))


def _check_layout(path: Path, text: str, df: pd.DataFrame) -> None:
    """What pandas would accept silently: a column named twice (read as 'loss.1'), and lines merged into one row
    by an unbalanced quote."""
    import csv
    import io

    header = next(csv.reader(io.StringIO(text)), [])
    names = [h.strip() for h in header]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise AnalysisError(f"CSV {path}: column {twice[0]!r} appears {names.count(twice[0])} times in the header; "
                            f"keep one")
    lines = sum(1 for line in text.splitlines()[1:] if line.strip())
    if lines != len(df):
        merged = [i for i in range(len(df)) if df.iloc[i].astype(str).str.contains("\n").any()]
        where = f" (row {merged[0] + 1} holds a line break)" if merged else ""
        raise AnalysisError(f"CSV {path}: {lines} data lines but {len(df)} rows{where}: an unbalanced quote (\") "
                            f"merged lines into one row; close or remove the quote")


def load_csv(path: Path) -> Dataset:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
        df = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as err:  # pandas' parser errors are ValueErrors
        raise AnalysisError(f"cannot read CSV {path}: {err}") from None
    _check_layout(path, text, df)
    df.columns = [str(c).strip() for c in df.columns]
    if df.empty:
        raise AnalysisError(f"CSV {path} has a header but no rows; add one row per training run")
    for col in ("n_params", "tokens", "loss"):
        if col not in df.columns:
            raise AnalysisError(f"CSV {path} has no column {col!r} (it has {', '.join(df.columns) or 'none'}); "
                                f"expected columns n_params,tokens,loss and optionally flops,group,epochs,seed")
    for col in ("n_params", "tokens", "loss", "flops", "epochs"):
        if col not in df.columns:
            continue
        values = pd.to_numeric(df[col], errors="coerce")
        bad = ~(np.isfinite(values) & (values > 0) & (values.abs() < HUGE))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise AnalysisError(f"CSV {path}, row {i + 1} (line {i + 2}), column {col!r}: {_plain(df[col].iloc[i])} is "
                                f"not a finite positive number; every {col} must be > 0 and < {HUGE:.0e} (fix or "
                                f"delete the row; {int(bad.sum())} such row(s))")
        df[col] = values.astype(float)
    absurd = df["loss"] > MAX_LOSS
    if absurd.any():
        i = int(np.flatnonzero(absurd.to_numpy())[0])
        raise AnalysisError(f"CSV {path}, row {i + 1} (line {i + 2}): loss {_plain(df['loss'].iloc[i])} is above "
                            f"{MAX_LOSS:g} nats/token, more than any language model's (uniform over 10^13 tokens); "
                            f"give the loss in nats per token (bits × ln 2), not bits or perplexity")
    with np.errstate(over="ignore", under="ignore"):
        six_nd = 6.0 * df["n_params"].to_numpy() * df["tokens"].to_numpy()
    wrong = ~(np.isfinite(six_nd) & (six_nd > 0) & (six_nd < HUGE))
    if "flops" not in df.columns and wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        size = "too small" if six_nd[i] < HUGE else "too large"  # underflows to 0, or overflows
        raise AnalysisError(f"CSV {path}, row {i + 1} (line {i + 2}): 6·n_params·tokens = 6 × "
                            f"{_plain(df['n_params'].iloc[i])} × {_plain(df['tokens'].iloc[i])} is {size} "
                            f"to compute (FLOPs must be > 0 and < {HUGE:.0e}); fix the row, or give a flops column")
    key = [c for c in ("n_params", "tokens", "loss", "flops", "group", "epochs", "seed") if c in df.columns]
    repeated = df.duplicated(subset=key)
    if repeated.any():
        first = int(np.flatnonzero(repeated.to_numpy())[0])
        df = df[~repeated].reset_index(drop=True)
        duplicate_note = (f"{int(repeated.sum())} row(s) of the CSV repeat an earlier row exactly (the first: line "
                          f"{first + 2}) and were dropped: a repeated run would count twice in the fits")
    else:
        duplicate_note = None
    if "group" in df.columns and df["group"].isna().any():
        i = int(np.flatnonzero(df["group"].isna().to_numpy())[0])
        raise AnalysisError(f"CSV {path}, row {i + 1} (line {i + 2}): empty 'group'; give every row a group "
                            f"(its FLOP budget) or drop the column")
    C = df["flops"].to_numpy() if "flops" in df.columns else 6.0 * df["n_params"].to_numpy() * df["tokens"].to_numpy()
    runs = pd.DataFrame({"run_name": [f"row{i + 1}" for i in range(len(df))], "N": df["n_params"].to_numpy(),
                         "D": df["tokens"].to_numpy(), "C": C, "loss": df["loss"].to_numpy()})
    for k, v in NO_FACTS.items():
        runs[k] = df["epochs"].to_numpy() if k == "epochs" and "epochs" in df.columns else v
    if "seed" in df.columns:  # rows of one run's settings and several seeds: replicates (replicates.py)
        runs["seed"] = pd.to_numeric(df["seed"], errors="coerce").to_numpy()
    if "group" in df.columns:  # a group is a budget's label, of any type: the budget is its runs' FLOPs' mean
        runs["budget"] = _budgets_of_groups(df["group"].astype(str).to_numpy(), C, runs["N"].to_numpy())
        basis = "group column"
    else:
        runs["budget"], basis = _bin_flops(C, runs["N"].to_numpy()), "log-binned flops"
    notes = ["the FLOPs vary continuously, so they form no FLOP budgets (no isoFLOP curves for Approach 2); a "
             "'group' column would name them"] if basis == "log-binned flops" and _flops_continuous(C) else []
    notes += [duplicate_note] if duplicate_note else []
    pts = runs.assign(run=np.arange(len(runs)))[["run", "N", "D", "C", "loss"]]
    # N is whatever the CSV counted: the --params convention only chooses among a sweep's counts
    if len(np.unique(size_clusters(runs["N"].to_numpy()))) < 2:  # a CSV is for laws across sizes; it has no curves
        raise AnalysisError(f"{path}: all {len(runs)} runs have one model size ({runs['N'].iloc[0]:.4g} "
                            f"parameters); a scaling law needs at least {A3_MIN_SIZES} sizes (ideally 4 or more)")
    return Dataset(runs, pts, str(path), "the CSV's n_params", basis, sweep_name=Path(path).stem, notes=notes)


# ------------------------------------------------------------------------------------------ enough to fit?
A3_MIN_SIZES, A3_MIN_RUNS = 3, 6  # L(N, D) has 5 parameters: one more run than that, 3 sizes for A/N^alpha
HOLDOUT_MIN_SIZES = 4


def n_sizes(runs: pd.DataFrame) -> int:
    return int(size_clusters(runs["N"].to_numpy(float)).max() + 1) if len(runs) else 0


def shortfall(ds: Dataset) -> str | None:
    """What the runs lack for Approach 3 (None: enough), with the numbers a user needs to fix it."""
    k, n = n_sizes(ds.runs), len(ds.runs)
    if k >= A3_MIN_SIZES and n >= A3_MIN_RUNS:
        return None
    what = "CSV" if ds.source.lower().endswith(".csv") else "sweep"
    return (f"Approach 3 needs ≥ {A3_MIN_SIZES} model sizes and ≥ {A3_MIN_RUNS} runs: this {what} has {k} "
            f"size{'s' * (k != 1)}, {n} run{'s' * (n != 1)}")
