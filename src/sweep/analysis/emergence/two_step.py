"""The two-step prediction of a variant's accuracy at the largest size (Bhagia et al. 2024's model ladder, after
Gadre et al. 2024): task NLL as a power law with offset in training compute, then accuracy as a sigmoid of that NLL,
both fitted without the largest size; its interval from both steps refitted on the hierarchical bootstrap's
replicates. Pure numerics on trends.py's size table and bootstrap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import least_squares
from scipy.special import expit

from . import resample
from .load import TaskData
from .resample import Boot
from .verdict import THRESHOLDS

TWO_STEP_REPLICATES = 100  # refits of both steps per variant: the prediction's interval


def fit_power_law(C, nll, start: dict | None = None) -> dict:
    """Task NLL against training compute: nll = E + A·(C/C_ref)^−α, least squares in log space (E = 0, a pure
    power law, with fewer than 4 points: three parameters need more). start: a fit to begin from (a bootstrap
    replicate's refit starts at the point fit)."""
    C, nll = np.asarray(C, float), np.asarray(nll, float)
    c_ref = float(np.exp(np.log(C).mean()))
    x = np.log(C / c_ref)
    slope, intercept = np.polyfit(x, np.log(nll), 1)
    law = {"E": 0.0, "A": float(np.exp(intercept)), "alpha": float(-slope), "C_ref": c_ref}
    if len(C) >= 4:
        top = nll.min() * (1 - 1e-6)
        x0 = [0.5 * top, np.log(max(nll.mean() - 0.5 * top, 1e-9)), max(law["alpha"], 0.05)] if start is None \
            else [min(start["E"], 0.999 * top), np.log(start["A"]), min(max(start["alpha"], 0.0), 5.0)]
        def jacobian(p):
            u = np.exp(p[1] - p[2] * x)
            return np.stack([1.0 / (p[0] + u), u / (p[0] + u), -x * u / (p[0] + u)], axis=1)

        res = least_squares(lambda p: np.log(p[0] + np.exp(p[1] - p[2] * x)) - np.log(nll), x0, jac=jacobian,
                            bounds=([0, -np.inf, 0], [top, np.inf, 5]))
        law.update(E=float(res.x[0]), A=float(np.exp(res.x[1])), alpha=float(res.x[2]))
    return law


def power_law_nll(law: dict, C):
    return law["E"] + law["A"] * (np.asarray(C, float) / law["C_ref"]) ** -law["alpha"]


def sigmoid_acc(nll, k: float, nll0: float, chance: float):
    """acc = chance + (1 − chance)·σ(−k·(nll − nll0)): the model ladder's a/(1 + e^(−k(L − L0))) + b with its floor b
    at chance and its ceiling at 1, two parameters instead of four (a ladder has few points)."""
    return chance + (1 - chance) * expit(-k * (np.asarray(nll, float) - nll0))


def fit_sigmoid(nll, acc, chance: float, start: dict | None = None) -> dict:
    nll, acc = np.asarray(nll, float), np.asarray(acc, float)
    best = None
    # a few starts (the midpoint may lie anywhere in the range), or the one given
    starts = [[4 / max(np.ptp(nll), 1e-3), m] for m in np.quantile(nll, [0.25, 0.5, 0.75])] if start is None \
        else [[max(start["k"], 1e-6), start["nll0"]]]
    def jacobian(p):
        sig = expit(-p[0] * (nll - p[1]))
        slope = (1 - chance) * sig * (1 - sig)
        return np.stack([-slope * (nll - p[1]), slope * p[0]], axis=1)

    for x0 in starts:
        res = least_squares(lambda p: sigmoid_acc(nll, p[0], p[1], chance) - acc, x0, jac=jacobian,
                            bounds=([1e-6, -np.inf], [np.inf, np.inf]))
        best = res if best is None or res.cost < best.cost else best
    return {"k": float(best.x[0]), "nll0": float(best.x[1]), "chance": chance}


def _predict(C_fit, nll_fit, acc_fit, ev_nll, ev_acc, C_test, chance: float,
             start: tuple[dict, dict] | None = None) -> tuple[dict, dict, float, float]:
    """Both steps fitted (from start's fits, if given), then the held-out size's NLL and accuracy predicted from its
    compute alone."""
    law = fit_power_law(C_fit, nll_fit, start and start[0])
    sig = fit_sigmoid(np.r_[nll_fit, ev_nll], np.r_[acc_fit, ev_acc], chance, start and start[1])
    nll_pred = float(power_law_nll(law, C_test))
    return law, sig, nll_pred, float(sigmoid_acc(nll_pred, sig["k"], sig["nll0"], chance))


def two_step(data: TaskData, series: pd.DataFrame, table: pd.DataFrame, variants: dict, boot: Boot,
             replicates: int = TWO_STEP_REPLICATES) -> list[dict]:
    """Per variant: step 1 fits its NLL against C over all sizes but the largest, step 2 its accuracy against NLL
    (those sizes' final scores and their runs' intermediate task events); the largest size's accuracy predicted
    from its C alone, against what it measured. The prediction's interval refits both steps on
    `replicates` of the bootstrap's replicates of the fitted sizes' NLL and accuracy (the intermediate
    events, a curve per run, kept as measured)."""
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
        c_test = test["C"].iloc[0]
        law, sig, nll_pred, predicted = _predict(fit["C"], fit["nll"], fit[m], ev["nll"], ev[m], c_test, chance)
        sizes, reps, _ = boot.of(key)
        at = [sizes.index(s_) for s_ in fit["size"]]
        replicated = [_predict(fit["C"], reps["nll"][at, b], reps[m][at, b], ev["nll"], ev[m], c_test, chance,
                               (law, sig))[3]
                      for b in range(min(replicates, reps[m].shape[1]))]
        held = t[(t["metric"] == m) & (t["size"] == test["size"].iloc[0])].iloc[0]
        out.append({**row, "held_out_N": held["N"], "held_out_C": held["C"], "observed": held["value"],
                    "observed_ci": [held["lo"], held["hi"]], "predicted": predicted,
                    "predicted_ci": list(resample.interval(replicated)),
                    "error": predicted - held["value"], "nll_observed": float(test["nll"].iloc[0]),
                    "nll_predicted": nll_pred, "predicted_from_observed_nll": float(
                        sigmoid_acc(test["nll"].iloc[0], sig["k"], sig["nll0"], chance)),
                    "step1": law, "step2": sig, "fit_sizes": len(fit), "step2_points": len(fit) + len(ev),
                    "points": [{"C": c, "nll": n_, "acc": a} for c, n_, a in zip(fit["C"], fit["nll"], fit[m])],
                    "events": [{"nll": n_, "acc": a} for n_, a in zip(ev["nll"][:400], ev[m][:400])]})
    return out
