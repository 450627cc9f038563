"""The inference-aware optimum (Sardana et al. 2023, "Beyond Chinchilla-Optimal"): for an expected inference demand
of D_inf tokens, the model size N and training tokens D that reach a target loss at the least lifetime compute
6·N·D + 2·N·D_inf, on Approach 3's law L(N, D) = E + A/N^α + B/D^β. The target is the loss of the compute-optimal
model at a training budget C (so demand 0 gives back Chinchilla's allocation). `inference_optimal` is fits.json's
section, with intervals from Approach 3's bootstrap draws. Pure numerics: no I/O.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar

from .approaches import optimal_nd
from .lse import law_loss
from ..result.record import Value
from ..result.beyond import InferenceAllocation, InferenceOptimal

GRID = 240  # points in log N for the coarse search that brackets the minimum
INTERVALS = ("N_opt", "D_opt", "tpp", "saving")  # the quantities given an interval from the draws


def tokens_for_loss(p: dict, N, target: float) -> np.ndarray:
    """The training tokens D at which L(N, D) = target (inf where the size cannot reach it: E + A/N^α ≥ target)."""
    gap = target - p["E"] - p["A"] / np.asarray(N, float) ** p["alpha"]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(gap > 0, (p["B"] / np.where(gap > 0, gap, 1.0)) ** (1.0 / p["beta"]), np.inf)


def lifetime_flops(N, D, demand: float):
    """Training plus inference compute: 6·N·D + 2·N·D_inf."""
    return 6.0 * np.asarray(N, float) * D + 2.0 * np.asarray(N, float) * demand


def optimal_for_demand(p: dict, target: float, demand: float, n_hint: float) -> tuple[float, float]:
    """(N, D) minimising 6ND + 2N·D_inf subject to L(N, D) = target; (nan, nan) if the target is below E.

    The smallest size that can reach the target is N_min = (A / (target − E))^(1/α); past it the cost falls, then
    rises (more parameters, more FLOPs per token). A grid in log N from N_min to well past n_hint (the demand-0
    optimum, which inference demand only lowers) brackets the minimum; a bounded 1-D search refines it.
    """
    if not target > p["E"]:
        return math.nan, math.nan
    log_n_min = (math.log(p["A"]) - math.log(target - p["E"])) / p["alpha"]
    hi = max(math.log(n_hint), log_n_min) + 3.0
    xs = log_n_min + (hi - log_n_min) * np.linspace(0, 1, GRID + 1)[1:] ** 2  # dense near N_min, where D blows up

    def log_cost(x):
        n = np.exp(x)
        with np.errstate(over="ignore"):
            return np.log(lifetime_flops(n, tokens_for_loss(p, n, target), demand))

    costs = log_cost(xs)
    i = int(np.argmin(costs))
    lo_x, hi_x = xs[max(i - 1, 0)] if i > 0 else log_n_min, xs[min(i + 1, GRID - 1)]
    res = minimize_scalar(lambda x: float(log_cost(np.array([x]))[0]), bounds=(lo_x, hi_x), method="bounded",
                          options={"xatol": 1e-11})
    x = res.x if res.fun <= costs[i] else xs[i]
    n = float(math.exp(x))
    return n, float(tokens_for_loss(p, n, target))


def allocation_for_demand(p: dict, C: float, demand: float) -> dict:
    """At budget C: the target (the compute-optimal model's loss), the inference-aware N, D, and what they save
    against training the compute-optimal model and serving it the same demand."""
    n0, d0 = (float(v) for v in optimal_nd(p, C))
    target = float(law_loss(p, n0, d0))
    n, d = optimal_for_demand(p, target, demand, n0)
    total, total0 = float(lifetime_flops(n, d, demand)), float(lifetime_flops(n0, d0, demand))
    return {"key": f"{C:.3g}|{demand:.3g}", "C": float(C), "inference_tokens": float(demand), "target_loss": target,
            "N_opt": n, "D_opt": d, "tpp": d / n, "train_flops": 6 * n * d, "lifetime_flops": total,
            "N_chinchilla": n0, "D_chinchilla": d0, "lifetime_flops_chinchilla": total0,
            "saving": 1 - total / total0}


def inference_optimal(p: dict, budgets, demands, draws: list[dict] | None = None) -> InferenceOptimal:
    """fits.json's `inference_optimal`: per budget and demand, the inference-aware allocation; with Approach 3's
    bootstrap draws, 95% intervals of N*, D*, tokens/param and the saving (each draw its own target and optimum)."""
    rows = []
    for c in budgets:
        for q in demands:
            row = allocation_for_demand(p, c, q)
            ci = {}
            if draws:
                vals = np.array([[r[k] for k in INTERVALS] for r in
                                 (allocation_for_demand(d, row["C"], row["inference_tokens"]) for d in draws)])
                ok = np.isfinite(vals).all(axis=1)
                if ok.sum() >= 10:
                    lo, hi = np.percentile(vals[ok], [2.5, 97.5], axis=0)
                    ci = {k: [float(a), float(b)] for k, a, b in zip(INTERVALS, lo, hi)}
            rows.append(InferenceAllocation(**{k: Value(v, ci.get(k)) if k in INTERVALS else v
                                               for k, v in row.items()}))
    return InferenceOptimal(objective="minimise 6·N·D + 2·N·D_inf subject to L(N, D) = the compute-optimal loss at C "
                                      "(Approach 3's law)", demands=[float(q) for q in demands], rows=rows)
