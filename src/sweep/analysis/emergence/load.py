"""The abilities analysis' input: from a sweep directory (read only through sweep.rundir), each completed run that
has a tasks.json — its size N (the analysis' parameter convention, summary.json's n_params), training FLOPs,
tokens, val_loss, lr and seed — its task variants' final scores as a tidy table (one row per run × variant ×
metric) with their per-item outcomes (what the bootstrap resamples), its ICL record with its per-window scores,
and the `task` events over training. A run whose tasks.json has no per-item outcomes (an earlier format) is left
out, named, with the command that re-scores it. `load_tasks` returns None when no run has a
tasks.json: the report then has no abilities section. `write_table` saves the tidy table as tasks.csv.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ... import rundir
from ...files import write_text_atomic
from ..inputs.finite import is_finite, is_positive

# Scored as proportions of items (Wilson intervals); the rest are means over items.
PROPORTIONS = ("exact", "exact_final", "mc_acc", "digit_acc")
METRICS = ("exact", "exact_final", "mc_acc", "nll", "p_seq", "digit_acc", "edit_distance", "brier")
TABLE = "tasks.csv"
log = logging.getLogger(__name__)


@dataclass
class TaskData:
    runs: pd.DataFrame  # run_name, N, C, D, val_loss, lr, seed (NaN: not recorded)
    scores: pd.DataFrame  # run_name, key, task, variant, metric, value, n, chance (NaN: none)
    variants: dict[str, dict] = field(default_factory=dict)  # key → task, variant, axis, chance, answer_tokens
    icl: pd.DataFrame = field(default_factory=pd.DataFrame)  # run_name, icl_score, induction_ratio, early, late
    icl_curves: dict[str, list[float]] = field(default_factory=dict)  # run_name → per-position loss
    events: pd.DataFrame = field(default_factory=pd.DataFrame)  # run_name, step, tokens, flops, key, metric, value
    skipped: list[dict] = field(default_factory=list)  # completed runs left out: run_name, reason
    # (run_name, key) → the variant's per-item lists as arrays; (run_name, "icl") → per_window_score; (run_name,
    # "copy") → the copy variants' items pooled (copy_first, copy_second: the induction ratio's)
    items: dict[tuple[str, str], dict[str, np.ndarray]] = field(default_factory=dict)


def _float(value) -> float:
    return float(value) if is_finite(value) else np.nan


def _answer_tokens(v: dict) -> float:
    """Answer length in tokens, END included, for the p̄^L overlay: the variant's `answer_tokens` when it records it,
    else its axis L (the answer's digits) + 1 for END; NaN when neither is known, and for a scratchpad format
    without answer_tokens (its NLL covers the whole scratchpad, which L does not count)."""
    if is_positive(v.get("answer_tokens")):
        return float(v["answer_tokens"])
    length = None if str(v.get("task", "")).endswith("_cot") else (v.get("axis") or {}).get("L")
    return float(length) + 1.0 if is_positive(length) else np.nan


def _run_row(d: Path, summary: dict, params: str) -> dict | str:
    """The run's numbers, or why it cannot be used."""
    n = (summary.get("n_params") or {}).get(params)
    values = {"N": n, "C": summary.get("flops"), "D": summary.get("tokens"), "val_loss": summary.get("val_loss")}
    bad = [k for k, v in values.items() if not is_positive(v)]
    if bad:
        return f"summary.json has no positive finite {', '.join(bad)}"
    return {"run_name": summary.get("run_name", d.name), **{k: float(v) for k, v in values.items()},
            "lr": _float(summary.get("lr")), "seed": summary.get("seed")}


def _scores(name: str, variants: dict, meta: dict) -> list[dict]:
    rows = []
    for key, v in variants.items():
        if not isinstance(v, dict):
            continue
        task, _, variant = key.partition("/")
        task, variant = v.get("task", task), v.get("variant", variant)
        chance = v.get("chance") if isinstance(v.get("chance"), dict) else {}
        meta.setdefault(key, {"task": task, "variant": variant, "axis": v.get("axis") or {},
                              "chance": {k: float(c) for k, c in chance.items() if is_finite(c)},
                              "answer_tokens": _answer_tokens(v)})
        n = _float(v.get("n"))
        for metric in METRICS:
            if is_finite(v.get(metric)):
                rows.append({"run_name": name, "key": key, "task": task, "variant": variant, "metric": metric,
                             "value": float(v[metric]), "n": n, "chance": _float(chance.get(metric))})
    return rows


def _events(d: Path, name: str) -> list[dict]:
    """The task events' scalars over training (intermediate scorings of the eval items' first few per variant)."""
    rows = []
    for ev in rundir.read_events(d):
        tasks = ev.get("tasks")
        if not isinstance(tasks, dict) or not all(is_finite(ev.get(k)) for k in ("step", "tokens", "flops")):
            continue
        for key, metrics in tasks.items():
            if not isinstance(metrics, dict):
                continue
            n = _float(metrics.get("n"))
            rows += [{"run_name": name, "step": float(ev["step"]), "tokens": float(ev["tokens"]),
                      "flops": float(ev["flops"]), "key": key, "metric": m, "value": float(metrics[m]), "n": n}
                     for m in METRICS if is_finite(metrics.get(m))]
    return rows


def _per_item(tasks: dict) -> dict[str, dict[str, np.ndarray]] | str:
    """Each variant's per-item lists as arrays (the lists of one variant all as long as its n), the ICL per-window
    scores under "icl" and the copy variants' items pooled under "copy"; or why the run cannot be resampled."""
    out, copies = {}, []
    for key, v in tasks["variants"].items():
        lists = v.get("items") if isinstance(v, dict) else None
        if not isinstance(lists, dict) or not lists:
            return ("tasks.json has no per-item outcomes (written before format sweep-tasks/2); re-score it with "
                    "`sweep evaluate RUN_DIR`")
        try:
            arrays = {m: np.asarray(x, float) for m, x in lists.items()}
        except (TypeError, ValueError):
            return f"tasks.json's per-item outcomes of {key} are not lists of numbers"
        if {len(a) for a in arrays.values()} != {v.get("n")} or not all(np.isfinite(a).all() for a in arrays.values()):
            return f"tasks.json's per-item outcomes of {key} are not {v.get('n')} finite values each"
        out[key] = arrays
        if "copy_first" in arrays:
            copies.append(arrays)
    scores = (tasks.get("icl") or {}).get("per_window_score")
    if isinstance(scores, list) and scores and all(is_finite(x) for x in scores):
        out["icl"] = {"per_window_score": np.asarray(scores, float)}
    if copies:
        out["copy"] = {m: np.concatenate([c[m] for c in copies]) for m in ("copy_first", "copy_second")}
    return out


def load_tasks(sweep_dir: Path, params: str) -> TaskData | None:
    """Every completed run's task results in sweep_dir; None if no run has a tasks.json with variants."""
    runs, scores, icl, curves, events, skipped, meta, items = [], [], [], {}, [], [], {}, {}
    for d in rundir.run_dirs(Path(sweep_dir)):
        summary = rundir.read_summary(d)
        if not summary or summary.get("status") != "completed":
            continue
        tasks = rundir.read_tasks(d)
        if tasks is None or not isinstance(tasks.get("variants"), dict) or not tasks["variants"]:
            continue  # trained without the suite: nothing to say about its abilities
        row = _run_row(d, summary, params)
        per_item = _per_item(tasks)
        if isinstance(row, str) or isinstance(per_item, str):
            row = row if isinstance(row, str) else per_item
            skipped.append({"run_name": d.name, "reason": row})
            continue
        name = row["run_name"]
        runs.append(row)
        items.update({(name, key): arrays for key, arrays in per_item.items()})
        scores += _scores(name, tasks["variants"], meta)
        rec = tasks.get("icl") if isinstance(tasks.get("icl"), dict) else {}
        icl.append({"run_name": name, "icl_score": _float(rec.get("icl_score")),
                    "induction_ratio": _float(rec.get("induction_ratio")),
                    "early": rec.get("early"), "late": rec.get("late")})
        curve = rec.get("per_position_loss")
        if isinstance(curve, list) and curve:
            curves[name] = [_float(x) for x in curve]
        events += _events(d, name)
    for s in skipped:
        log.warning("abilities: %s left out: %s", s["run_name"], s["reason"])
    if not runs or not scores:
        return None
    event_cols = ["run_name", "step", "tokens", "flops", "key", "metric", "value", "n"]
    return TaskData(pd.DataFrame(runs), pd.DataFrame(scores), meta, pd.DataFrame(icl), curves,
                    pd.DataFrame(events, columns=event_cols), skipped, items)


def write_table(data: TaskData, out: Path) -> Path:
    """tasks.csv: one row per run × variant × metric, with the run's N, C, D, val_loss and seed."""
    table = data.scores.merge(data.runs[["run_name", "N", "C", "D", "val_loss", "seed"]], on="run_name")
    path = Path(out) / TABLE
    write_text_atomic(path, table.to_csv(index=False))
    return path
