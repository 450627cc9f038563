"""Benchmark the Approach-3 fitter on Epoch's 240 Chinchilla points.

    python scripts/bench_fit.py [--bootstrap 300] [--plain-every 1]

1. plain: Epoch's method as published — L-BFGS-B (finite-difference gradient, default tolerances) from every point
   of the start grid e ∈ {-1,…,1}, a, b ∈ {0,5,…,25}, α, β ∈ {0,.5,…,2}; the lowest objective wins;
2. fast: sweep.analysis.laws.lse.LseFitter — the same grid plus variable-projection starts scored in one vectorised
   pass, the best 8 refined with an analytic gradient and tight tolerances;
3. a bootstrap of refits over resampled points, warm-started from the full-data optimum.
Both fits are run on one BLAS thread (as the analysis does). Prints the numbers; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from sweep.analysis.laws import bootstrap, lse

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "chinchilla_epoch_240.csv"
EPOCH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def plain_fit(X, y, starts):
    """One scipy L-BFGS-B per start on the scalar objective, as in Epoch's notebook: no gradient given."""
    w = np.ones(len(y))
    best = None
    for s in starts:
        res = minimize(lambda t: float(lse.objective(t, X, y, w)[0]), s, method="L-BFGS-B")
        if best is None or res.fun < best.fun:
            best = res
    return best.x, float(best.fun)


def describe(theta) -> str:
    p = lse.approach3_params(theta)
    return ", ".join(f"{k}={v:.5g}" for k, v in p.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", type=int, default=300)
    parser.add_argument("--plain-every", type=int, default=1, help="use every k-th grid start (1: all)")
    args = parser.parse_args()
    df = pd.read_csv(DATA)
    N, D, L = (df[k].to_numpy() for k in ("n_params", "tokens", "loss"))
    with lse.single_threaded_blas():
        t0 = time.perf_counter()
        fitter = lse.LseFitter(np.column_stack([N, D]), L)
        res = fitter.fit()
        t_fast = time.perf_counter() - t0
        print(f"fast : {t_fast:6.2f} s  objective {res.objective:.10g}  {describe(res.theta)}")
        print(f"       {res.starts['candidates']} starts scored, {res.starts['refined']} refined, "
              f"{res.starts['reached_best']} reached the best optimum")

        starts = lse.LseFitter.epoch_grid(2)[:: args.plain_every]
        t0 = time.perf_counter()
        theta_plain, obj_plain = plain_fit(fitter.X, fitter.y, starts)
        t_plain = time.perf_counter() - t0
        print(f"plain: {t_plain:6.2f} s  objective {obj_plain:.10g}  {describe(theta_plain)}  ({len(starts)} starts)")

        p_fast, p_plain = lse.approach3_params(res.theta), lse.approach3_params(theta_plain)
        rel = {k: p_fast[k] / p_plain[k] - 1 for k in p_fast}
        print(f"same optimum? objective fast − plain = {res.objective - obj_plain:+.3g}; relative parameter "
              f"differences " + ", ".join(f"{k} {v:+.2%}" for k, v in rel.items()))
        print("vs Epoch's published fit: " + ", ".join(f"{k} {p_fast[k] / EPOCH[k] - 1:+.2%}" for k in EPOCH))

        full = res.theta
        t0 = time.perf_counter()
        samples = bootstrap.bootstrap(lambda w: lse.approach3_params(fitter.fit(w, n_refine=0, warm=full).theta),
                                      len(L), args.bootstrap, seed=0)
        t_boot = time.perf_counter() - t0
    cis = {k: bootstrap.percentile_ci(v)["ci"] for k, v in samples.items()}
    print(f"bootstrap: {args.bootstrap} refits in {t_boot:.2f} s; 95% intervals " +
          ", ".join(f"{k} [{lo:.4g}, {hi:.4g}]" for k, (lo, hi) in cis.items()))
    print(json.dumps({"fast_s": round(t_fast, 3), "plain_s": round(t_plain, 2), "plain_starts": len(starts),
                      "speedup": round(t_plain / t_fast, 1), "objective_fast": res.objective,
                      "objective_plain": obj_plain, "max_rel_param_diff": max(abs(v) for v in rel.values()),
                      "bootstrap_n": args.bootstrap, "bootstrap_s": round(t_boot, 2), "ci": cis}))


if __name__ == "__main__":
    main()
