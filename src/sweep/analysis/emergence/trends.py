"""Emergent, or a metric artefact? Pure numerics (no I/O) on the abilities data (emergence/load.py's TaskData) into
fits.json's `emergence` section: per task variant and metric the values at the smallest and largest size, the rank
correlation with log N, the jump share and a verdict in words (the rules: emergence/verdict.py); the Schaeffer overlay
(exact match predicted from the per-token probability, p̄^L); CoT against direct answers per size (Newcombe
intervals); accuracy against shots; the ICL score and induction ratio per size; and the two-step prediction of the
largest size's accuracy (task NLL as a power law with offset in training compute, then accuracy as a sigmoid of that
NLL: Bhagia et al. 2024's model ladder, after Gadre et al. 2024), fitted without the largest size and checked on it.

One point per model size: a size's runs at its largest token count (at the best lr by val_loss, if several), the
mean over their seeds; proportions get a Wilson interval over all their items.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.special import expit

from .load import PROPORTIONS, TaskData
from .verdict import THRESHOLDS, newcombe, trend, verdict, wilson  # the rules: sharp, smooth, flat
from ..inputs.sizes import size_clusters
from ..result.emergence import Emergence


# --------------------------------------------------------------------------------------------- one point per size
def size_series(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs that stand for each size (column `size`, 0 = smallest): those at the size's largest token count and,
    when they span several lrs, at the lr with the lowest mean val_loss; several seeds remain and are averaged."""
    r = runs.assign(size=size_clusters(runs["N"].to_numpy(float)), dgroup=size_clusters(runs["D"].to_numpy(float)))
    r = r[r["dgroup"] == r.groupby("size")["dgroup"].transform("max")]
    lr = r["lr"].fillna(-1.0)
    best = r.assign(lr_key=lr).groupby(["size", "lr_key"])["val_loss"].mean().reset_index()
    best = best.loc[best.groupby("size")["val_loss"].idxmin(), ["size", "lr_key"]]
    return r.assign(lr_key=lr).merge(best, on=["size", "lr_key"]).drop(columns=["dgroup", "lr_key"])


def size_table(data: TaskData, series: pd.DataFrame) -> pd.DataFrame:
    """Per variant × metric × size: the mean over seeds, items n summed, Wilson interval (proportions) and whether
    chance lies inside it."""
    s = data.scores.merge(series[["run_name", "size"]], on="run_name")
    g = s.groupby(["key", "metric", "size"])
    t = g.agg(value=("value", "mean"), n=("n", "sum"), chance=("chance", "first"), n_runs=("run_name", "nunique"))
    t = t.reset_index()
    sizes = series.groupby("size").agg(N=("N", lambda x: float(np.exp(np.log(x).mean()))), C=("C", "mean"),
                                       D=("D", "mean"), val_loss=("val_loss", "mean")).reset_index()
    t = t.merge(sizes, on="size").sort_values(["key", "metric", "size"]).reset_index(drop=True)
    prop = t["metric"].isin(PROPORTIONS).to_numpy()
    lo, hi = wilson(t["value"], t["n"])
    t["lo"], t["hi"] = np.where(prop, lo, np.nan), np.where(prop, hi, np.nan)
    t["at_chance"] = prop & (t["chance"] >= t["lo"]) & (t["chance"] <= t["hi"])
    return t


def _points(t: pd.DataFrame) -> list[dict]:
    return t[["N", "C", "val_loss", "value", "n", "lo", "hi", "at_chance"]].to_dict("records")


def _variant(key: str, meta: dict, t: pd.DataFrame) -> dict:
    per = {m: g.sort_values("N") for m, g in t.groupby("metric")}
    trends = {m: trend(g["N"].to_numpy(), g["value"].to_numpy(), m, g["n"].to_numpy()) for m, g in per.items()}
    primary = next((m for m in ("mc_acc", "exact_final", "exact") if m in per), None)
    n_sizes = max(len(g) for g in per.values())
    chance = per[primary]["at_chance"].to_numpy(bool) if primary else np.zeros(1, bool)
    v_key, v_text = verdict(trends, bool(chance.all()), n_sizes, largest_at_chance=bool(chance[-1]))
    out = {**{k: meta[k] for k in ("task", "variant", "axis", "chance", "answer_tokens")}, "primary": primary,
           "n_sizes": n_sizes, "per_size": {m: _points(g) for m, g in per.items()}, "trend": trends,
           "verdict": v_key, "verdict_text": v_text}
    if "exact" in per and "nll" in per and np.isfinite(meta["answer_tokens"]):
        both = per["exact"].merge(per["nll"][["size", "value"]], on="size", suffixes=("", "_nll"))
        if "p_seq" in per:
            both = both.merge(per["p_seq"][["size", "value"]].rename(columns={"value": "p_seq"}), on="size",
                              how="left")
        both["predicted"] = np.exp(-both["value_nll"] * meta["answer_tokens"])  # p̄^L with p̄ = exp(−nll)
        cols = ["N", "value", "lo", "hi", "predicted"] + (["p_seq"] if "p_seq" in both else [])
        out["overlay"] = both[cols].rename(columns={"value": "measured"}).to_dict("records")
    return out


# ------------------------------------------------------------------------------------ CoT, shots, ICL
def cot_vs_direct(variants: dict) -> list[dict]:
    """Per scratchpad variant (add_cot/dK, muladd_cot/dK) and size: its result's exact match (exact_final) minus the
    direct format's exact match, with Newcombe's interval; the smallest size where the scratchpad helps."""
    out = []
    for key, v in variants.items():
        direct = f"{v['task'].removesuffix('_cot')}/{v['variant']}"
        if not v["task"].endswith("_cot") or direct not in variants:
            continue
        m = "exact_final" if "exact_final" in v["per_size"] else "exact"
        a = {round(np.log(p["N"]), 2): p for p in variants[direct]["per_size"].get("exact", [])}
        rows = []
        for p in v["per_size"].get(m, []):
            q = a.get(round(np.log(p["N"]), 2))
            if q is not None:
                d, lo, hi = newcombe(q["value"], q["n"], p["value"], p["n"])
                rows.append({"N": p["N"], "direct": q["value"], "cot": p["value"], "diff": d, "lo": lo, "hi": hi})
        if rows:
            helps = [r["N"] for r in rows if r["lo"] > 0]
            out.append({"cot": key, "direct": direct, "metric": m, "per_size": rows,
                        "smallest_helping_N": min(helps) if helps else None,
                        "hurts_at_N": [r["N"] for r in rows if r["hi"] < 0]})
    return out


def _shots_of(v: dict) -> float:
    k = (v.get("axis") or {}).get("k")
    return float(k) if isinstance(k, (int, float)) else float(v["variant"].lstrip("k") or "nan")


def shots(variants: dict) -> dict | None:
    """Accuracy against shots per size, icl beside its random-label control (icl_random)."""
    found = {t: sorted(((_shots_of(v), v) for v in variants.values() if v["task"] == t), key=lambda x: x[0])
             for t in ("icl", "icl_random")}
    if not found["icl"]:
        return None
    metric = "mc_acc" if "mc_acc" in found["icl"][0][1]["per_size"] else "exact"
    per = {}
    for task, items in found.items():
        for k, v in items:
            for p in v["per_size"].get(metric, []):
                row = per.setdefault(round(p["N"], 1), {"N": p["N"], "icl": [], "icl_random": []})
                row[task].append({"k": k, **{f: p[f] for f in ("value", "lo", "hi", "at_chance")}})
    chance = found["icl"][0][1]["chance"].get(metric)
    return {"metric": metric, "chance": chance, "per_size": [per[n] for n in sorted(per)]}


def icl_table(data: TaskData, series: pd.DataFrame, max_positions: int = 128) -> list[dict]:
    """Per size: the mean ICL score and induction ratio over its runs, and their mean per-position loss (at most
    max_positions positions, log-spaced, for the plot)."""
    rows = []
    icl = data.icl.merge(series[["run_name", "size", "N"]], on="run_name")
    for size, g in icl.groupby("size"):
        curves = [data.icl_curves[n] for n in g["run_name"] if n in data.icl_curves]
        row = {"N": float(np.exp(np.log(g["N"]).mean())), "n_runs": len(g),
               "icl_score": float(g["icl_score"].mean()), "induction_ratio": float(g["induction_ratio"].mean()),
               "early": g["early"].iloc[0], "late": g["late"].iloc[0]}
        if curves:
            length = min(map(len, curves))
            mean = np.nanmean([c[:length] for c in curves], axis=0)
            pos = np.unique(np.geomspace(1, length, min(length, max_positions)).astype(int)) - 1
            row["positions"], row["per_position_loss"] = pos.tolist(), mean[pos].tolist()
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------- two-step
def fit_power_law(C, nll) -> dict:
    """Task NLL against training compute: nll = E + A·(C/C_ref)^−α, least squares in log space (E = 0, a pure
    power law, with fewer than 4 points: three parameters need more)."""
    C, nll = np.asarray(C, float), np.asarray(nll, float)
    c_ref = float(np.exp(np.log(C).mean()))
    x = np.log(C / c_ref)
    slope, intercept = np.polyfit(x, np.log(nll), 1)
    law = {"E": 0.0, "A": float(np.exp(intercept)), "alpha": float(-slope), "C_ref": c_ref}
    if len(C) >= 4:
        top = nll.min() * (1 - 1e-6)
        res = least_squares(lambda p: np.log(p[0] + np.exp(p[1] - p[2] * x)) - np.log(nll),
                            [0.5 * top, np.log(max(nll.mean() - 0.5 * top, 1e-9)), max(law["alpha"], 0.05)],
                            bounds=([0, -np.inf, 0], [top, np.inf, 5]))
        law.update(E=float(res.x[0]), A=float(np.exp(res.x[1])), alpha=float(res.x[2]))
    return law


def power_law_nll(law: dict, C):
    return law["E"] + law["A"] * (np.asarray(C, float) / law["C_ref"]) ** -law["alpha"]


def sigmoid_acc(nll, k: float, nll0: float, chance: float):
    """acc = chance + (1 − chance)·σ(−k·(nll − nll0)): the model ladder's a/(1 + e^(−k(L − L0))) + b with its floor b
    at chance and its ceiling at 1, two parameters instead of four (a ladder has few points)."""
    return chance + (1 - chance) * expit(-k * (np.asarray(nll, float) - nll0))


def fit_sigmoid(nll, acc, chance: float) -> dict:
    nll, acc = np.asarray(nll, float), np.asarray(acc, float)
    best = None
    for start in np.quantile(nll, [0.25, 0.5, 0.75]):  # a few starts: the midpoint may lie anywhere in the range
        res = least_squares(lambda p: sigmoid_acc(nll, p[0], p[1], chance) - acc,
                            [4 / max(np.ptp(nll), 1e-3), start], bounds=([1e-6, -np.inf], [np.inf, np.inf]))
        best = res if best is None or res.cost < best.cost else best
    return {"k": float(best.x[0]), "nll0": float(best.x[1]), "chance": chance}


def two_step(data: TaskData, series: pd.DataFrame, table: pd.DataFrame, variants: dict) -> list[dict]:
    """Per variant: step 1 fits its NLL against C over all sizes but the largest, step 2 its accuracy against NLL
    (those sizes' final scores and their runs' intermediate task events); the largest size's accuracy predicted
    from its C alone, against what it measured."""
    out = []
    for key, v in variants.items():
        m = v["primary"]
        if m is None or "nll" not in v["per_size"]:
            continue
        t = table[table["key"] == key]
        pv = t.pivot_table(index=["size", "C"], columns="metric", values="value").reset_index()
        pv = pv.dropna(subset=[m, "nll"])
        row = {"key": key, "metric": m}
        fit, test = pv.iloc[:-1], pv.iloc[-1:]
        if len(pv) < THRESHOLDS["min_sizes"]:
            out.append({**row, "skipped": f"{len(pv)} sizes: it needs {THRESHOLDS['min_sizes']} (one held out)"})
            continue
        chance_flags = t[(t["metric"] == m) & t["size"].isin(fit["size"])]["at_chance"]
        if chance_flags.all():
            out.append({**row, "skipped": "at chance at every fitted size: no sigmoid to fit"})
            continue
        fit_runs = series.loc[series["size"].isin(fit["size"]), "run_name"]
        ev = data.events[(data.events["key"] == key) & data.events["run_name"].isin(fit_runs)]
        ev = ev.pivot_table(index=["run_name", "step"], columns="metric", values="value")
        ev = ev.dropna(subset=[m, "nll"]) if {m, "nll"} <= set(ev.columns) else pd.DataFrame(columns=[m, "nll"])
        chance = v["chance"].get(m, 0.0)
        law = fit_power_law(fit["C"], fit["nll"])
        sig = fit_sigmoid(np.r_[fit["nll"], ev["nll"]], np.r_[fit[m], ev[m]], chance)
        held = t[(t["metric"] == m) & (t["size"] == test["size"].iloc[0])].iloc[0]
        nll_pred = float(power_law_nll(law, test["C"].iloc[0]))
        predicted = float(sigmoid_acc(nll_pred, sig["k"], sig["nll0"], chance))
        out.append({**row, "held_out_N": held["N"], "held_out_C": held["C"], "observed": held["value"],
                    "observed_ci": [held["lo"], held["hi"]], "predicted": predicted,
                    "error": predicted - held["value"], "nll_observed": float(test["nll"].iloc[0]),
                    "nll_predicted": nll_pred, "predicted_from_observed_nll": float(
                        sigmoid_acc(test["nll"].iloc[0], sig["k"], sig["nll0"], chance)),
                    "step1": law, "step2": sig, "fit_sizes": len(fit), "step2_points": len(fit) + len(ev),
                    "points": [{"C": c, "nll": n_, "acc": a} for c, n_, a in zip(fit["C"], fit["nll"], fit[m])],
                    "events": [{"nll": n_, "acc": a} for n_, a in zip(ev["nll"][:400], ev[m][:400])]})
    return out


# ----------------------------------------------------------------------------------------------------- all
def analyze_emergence(data: TaskData) -> Emergence:
    """fits.json's `emergence` section (JSON-safe: finite numbers or None). Its numerics build it as the record
    fits.json holds; it is returned read into Emergence by fits.json's own reader, so the two cannot differ."""
    series = size_series(data.runs)
    table = size_table(data, series)
    variants = {key: _variant(key, data.variants[key], g) for key, g in table.groupby("key", sort=True)}
    sizes = series.groupby("size").agg(N=("N", "mean"), C=("C", "mean"), D=("D", "mean"),
                                       val_loss=("val_loss", "mean"), runs=("run_name", list)).reset_index()
    out = {"thresholds": THRESHOLDS, "runs": len(data.runs), "runs_used": len(series),
           "sizes": sizes.drop(columns="size").to_dict("records"), "skipped": data.skipped,
           "variants": variants, "cot": cot_vs_direct(variants), "shots": shots(variants),
           "icl": icl_table(data, series), "two_step": two_step(data, series, table, variants)}
    return Emergence.from_json(json_safe(out), "emergence")


def json_safe(x):
    """Plain Python values, every non-finite number as None."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x
