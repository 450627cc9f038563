"""Emergent, or a metric artefact? Pure numerics (no I/O) on the abilities data (emergence/load.py's TaskData) into
fits.json's `emergence` section: per task variant and metric the seed mean, range and 95% interval per size, the
rank correlation with log N, the jump share and a verdict in words (the rules: emergence/verdict.py); Schaeffer's
relation as a result (exact match's deviation from p̄^L, the per-token probability to the answer's length, per
size); CoT against direct answers per size; accuracy against shots; the ICL score and induction ratio per size; and
the two-step prediction of the largest size's accuracy (task NLL as a power law with offset in training compute,
then accuracy as a sigmoid of that NLL: emergence/two_step.py), fitted without the largest size and checked on it.
Every interval comes from one hierarchical bootstrap (emergence/resample.py:
seeds, then items within a seed), whose replicates every derived quantity (jumps, differences, deviations, the
two-step prediction) is recomputed on.

One point per model size: a size's runs at its largest token count (at the best lr by val_loss, if several), the
mean over their seeds.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import resample
from .resample import Boot
from ...tasks.suite import SEEN
from .load import PROPORTIONS, TaskData
from .two_step import TWO_STEP_REPLICATES, two_step
from .verdict import THRESHOLDS, trend, verdict, wilson  # the rules: sharp, smooth, uneven, flat
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


def size_table(data: TaskData, series: pd.DataFrame, boot: Boot) -> pd.DataFrame:
    """Per variant × metric × size: the mean over seeds, their min and max, seeds and items, the bootstrap's 95%
    interval (for a proportion widened to hold Wilson's over all its items, so a size whose items all miss has
    one), and whether chance lies inside it."""
    rows = []
    for key, meta in data.variants.items():
        sizes, reps, stats = boot.of(key)
        for m in (m for m in reps if m != "induction_ratio"):
            for i, size in enumerate(sizes):
                lo, hi = resample.interval(reps[m][i])
                st = stats[m][i]
                n = len(next(iter(data.items[(boot.runs[size][0], key)].values()))) * st["n_seeds"] \
                    if (boot.runs[size][0], key) in data.items else math.nan
                if m in PROPORTIONS:
                    w_lo, w_hi = wilson(st["value"], n)
                    lo, hi = min(lo, float(w_lo)), max(hi, float(w_hi))
                rows.append({"key": key, "metric": m, "size": size, **st, "n": n, "lo": lo, "hi": hi,
                             "chance": meta["chance"].get(m, math.nan)})
    t = pd.DataFrame(rows)
    sizes = series.groupby("size").agg(N=("N", lambda x: float(np.exp(np.log(x).mean()))), C=("C", "mean"),
                                       D=("D", "mean"), val_loss=("val_loss", "mean")).reset_index()
    t = t.merge(sizes, on="size").sort_values(["key", "metric", "size"]).reset_index(drop=True)
    prop = t["metric"].isin(PROPORTIONS).to_numpy()
    t["at_chance"] = prop & (t["chance"] >= t["lo"]) & (t["chance"] <= t["hi"])
    return t


def _points(t: pd.DataFrame) -> list[dict]:
    return t[["N", "C", "val_loss", "value", "n", "lo", "hi", "at_chance", "seed_min", "seed_max",
              "n_seeds"]].to_dict("records")


def schaeffer(reps: dict[str, np.ndarray], values: pd.DataFrame, answer_tokens: float) -> list[dict] | None:
    """Per size: measured exact match, p̄^L (p̄ = exp(−nll), L the answer's tokens, END included), and the deviation
    exact − p̄^L with its interval from the same replicates."""
    if "exact" not in reps or "nll" not in reps or not np.isfinite(answer_tokens):
        return None
    predicted = np.exp(-reps["nll"] * answer_tokens)
    out = []
    for i, row in enumerate(values.itertuples()):
        p_hat = math.exp(-row.nll * answer_tokens)
        lo, hi = resample.interval(reps["exact"][i] - predicted[i])
        out.append({"N": row.N, "measured": row.exact, "lo": row.lo, "hi": row.hi, "predicted": p_hat,
                    "p_seq": row.p_seq, "deviation": row.exact - p_hat, "deviation_lo": lo, "deviation_hi": hi})
    return out


def explained_by_per_token(overlay: list[dict] | None) -> bool | None:
    """Whether exact match is what p̄^L predicts at every size: each deviation's interval reaches within the
    tolerance of 0 (None: no overlay to judge by)."""
    if not overlay:
        return None
    tol = THRESHOLDS["schaeffer_tolerance"]
    return all(p["deviation_lo"] is not None and p["deviation_lo"] <= tol and p["deviation_hi"] >= -tol
               for p in overlay)


def _variant(key: str, meta: dict, t: pd.DataFrame, boot: Boot) -> dict:
    _, reps, _ = boot.of(key)
    per = {m: g.sort_values("N") for m, g in t.groupby("metric")}
    trends = {m: trend(g["N"].to_numpy(), g["value"].to_numpy(), m, reps[m]) for m, g in per.items()}
    primary = next((m for m in ("mc_acc", "exact_final", "exact") if m in per), None)
    n_sizes = max(len(g) for g in per.values())
    chance = per[primary]["at_chance"].to_numpy(bool) if primary else np.zeros(1, bool)
    min_seeds = int(min(g["n_seeds"].min() for g in per.values()))
    out = {**{k: meta[k] for k in ("task", "variant", "axis", "chance", "answer_tokens")}, "primary": primary,
           "n_sizes": n_sizes, "min_seeds": min_seeds, "per_size": {m: _points(g) for m, g in per.items()},
           "trend": trends}
    if {"exact", "nll", "p_seq"} <= set(per):
        wide = per["exact"][["N", "value", "lo", "hi"]].rename(columns={"value": "exact"}).reset_index(drop=True)
        wide["nll"], wide["p_seq"] = per["nll"]["value"].to_numpy(), per["p_seq"]["value"].to_numpy()
        overlay = schaeffer(reps, wide, meta["answer_tokens"])
        if overlay:
            out["overlay"] = overlay
    explained = explained_by_per_token(out.get("overlay")) if primary == "exact" else None
    out["explained_by_per_token"] = explained
    out["verdict"], out["verdict_text"] = verdict(trends, bool(chance.all()), n_sizes,
                                                  largest_at_chance=bool(chance[-1]), min_seeds=min_seeds,
                                                  explained_by_per_token=explained)
    return out


# ------------------------------------------------------------------------------------ CoT, shots, ICL
def cot_vs_direct(variants: dict, boot: Boot) -> list[dict]:
    """Per scratchpad variant (add_cot/dK, muladd_cot/dK) and size: its result's exact match (exact_final) minus the
    direct format's exact match, with the bootstrap's interval; the smallest size where the scratchpad helps."""
    out = []
    for key, v in variants.items():
        direct = f"{v['task'].removesuffix('_cot')}/{v['variant']}"
        if not v["task"].endswith("_cot") or direct not in variants:
            continue
        m = "exact_final" if "exact_final" in v["per_size"] else "exact"
        (_, c_reps, _), (_, d_reps, _) = boot.of(key), boot.of(direct)
        a = {round(np.log(p["N"]), 2): (i, p) for i, p in enumerate(variants[direct]["per_size"].get("exact", []))}
        rows = []
        for j, p in enumerate(v["per_size"].get(m, [])):
            found = a.get(round(np.log(p["N"]), 2))
            if found is not None:
                i, q = found
                lo, hi = resample.interval(c_reps[m][j] - d_reps["exact"][i])
                rows.append({"N": p["N"], "direct": q["value"], "cot": p["value"], "diff": p["value"] - q["value"],
                             "lo": lo, "hi": hi})
        if rows:
            helps = [r["N"] for r in rows if r["lo"] is not None and r["lo"] > 0]
            out.append({"cot": key, "direct": direct, "metric": m, "per_size": rows,
                        "smallest_helping_N": min(helps) if helps else None,
                        "hurts_at_N": [r["N"] for r in rows if r["hi"] is not None and r["hi"] < 0]})
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


def icl_table(data: TaskData, series: pd.DataFrame, boot: Boot, max_positions: int = 128) -> list[dict]:
    """Per size: the ICL score (over held-out windows) and the induction ratio (over the copy items) as seed means
    with their ranges and bootstrap intervals, the context positions of the score's bands, and the runs' mean
    per-position loss (at most max_positions positions, log-spaced, for the plot)."""
    rows = []
    icl = data.icl.merge(series[["run_name", "size", "N"]], on="run_name")
    found = {what: dict(zip(boot.of(what)[0], range(len(boot.of(what)[0])))) for what in ("icl", "copy")}
    for size, g in icl.groupby("size"):
        curves = [data.icl_curves[n] for n in g["run_name"] if n in data.icl_curves]
        row = {"N": float(np.exp(np.log(g["N"]).mean())), "n_runs": len(g),
               "icl_score": float(g["icl_score"].mean()), "induction_ratio": float(g["induction_ratio"].mean()),
               "early": g["early"].iloc[0], "late": g["late"].iloc[0]}
        for what, metric in (("icl", "icl_score"), ("copy", "induction_ratio")):
            i = found[what].get(size)
            if i is not None:
                _, reps, stats = boot.of(what)
                lo, hi = resample.interval(reps[metric][i])
                st = stats[metric][i]
                row.update({metric: st["value"], f"{metric}_ci": [lo, hi],
                            f"{metric}_seeds": [st["seed_min"], st["seed_max"]]})
        if curves:
            length = min(map(len, curves))
            mean = np.nanmean([c[:length] for c in curves], axis=0)
            pos = np.unique(np.geomspace(1, length, min(length, max_positions)).astype(int)) - 1
            row["positions"], row["per_position_loss"] = pos.tolist(), mean[pos].tolist()
        rows.append(row)
    return rows


def recall(variants: dict) -> list[dict]:
    """Per memorisation control (X/dK_seen) and size: exact match on items the mix trained on beside the held-out
    items of X/dK (generalisation), and the difference with its interval (the two sides' replicates)."""
    out = []
    for key, v in variants.items():
        if not v["variant"].endswith(SEEN) or "exact" not in v["per_size"]:
            continue
        held = variants.get(key.removesuffix(SEEN))
        if held is None or "exact" not in held["per_size"]:
            continue
        rows = []
        for p, q in zip(v["per_size"]["exact"], held["per_size"]["exact"]):
            rows.append({"N": p["N"], "seen": p["value"], "seen_ci": [p["lo"], p["hi"]], "held_out": q["value"],
                         "held_out_ci": [q["lo"], q["hi"]], "difference": p["value"] - q["value"]})
        out.append({"seen": key, "held_out": key.removesuffix(SEEN), "per_size": rows})
    return out


# ----------------------------------------------------------------------------------------------------- all
def analyze_emergence(data: TaskData, replicates: int = resample.REPLICATES,
                      two_step_replicates: int = TWO_STEP_REPLICATES) -> Emergence:
    """fits.json's `emergence` section (JSON-safe: finite numbers or None). Its numerics build it as the record
    fits.json holds; it is returned read into Emergence by fits.json's own reader, so the two cannot differ.
    replicates: the hierarchical bootstrap's; two_step_replicates: of those, the ones both steps are refitted on."""
    series = size_series(data.runs)
    boot = Boot(data, series, replicates)
    table = size_table(data, series, boot)
    variants = {key: _variant(key, data.variants[key], g, boot) for key, g in table.groupby("key", sort=True)}
    sizes = series.groupby("size").agg(N=("N", "mean"), C=("C", "mean"), D=("D", "mean"),
                                       val_loss=("val_loss", "mean"), runs=("run_name", list)).reset_index()
    out = {"thresholds": THRESHOLDS, "replicates": replicates, "runs": len(data.runs),
           "runs_used": len(series), "seeds_per_size": series.groupby("size")["run_name"].nunique().tolist(),
           "sizes": sizes.drop(columns="size").to_dict("records"), "skipped": data.skipped,
           "variants": variants, "cot": cot_vs_direct(variants, boot), "shots": shots(variants),
           "icl": icl_table(data, series, boot),
           "two_step": two_step(data, series, table, variants, boot, two_step_replicates), "recall": recall(variants)}
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
