"""A large synthetic CSV for `sweep analyze --csv`, from a known Chinchilla-like law, to measure the analysis on;
and (--compare) the check that aggregating it into bins fits the same law as fitting its rows one by one.

    python scripts/bench_analyze.py OUT.csv [--rows 100000] [--budgets 8] [--sizes 0] [--group label|number|none]
                                            [--noise 0.01] [--seed 0] [--compare [--bootstrap 100]]
    /usr/bin/time -v sweep analyze --csv OUT.csv --out OUT_analysis --wandb off

Rows: FLOP budgets log-spaced over 1e17-1e21; in each, model sizes N log-uniform over 1.5 decades either side of the
budget's compute-optimal N (an isoFLOP sweep), D = C / (6N) and loss = L(N, D) · exp(noise), L = E + A/N^α + B/D^β
with Hoffmann et al.'s published values. --sizes 0 draws every N afresh (a continuum: no two rows share a size);
--sizes K draws from K fixed sizes (repeats, as seeds of a grid would give). --group: a column naming each row's
budget as a string label ("budget-3", the default), as the budget's number, or no column (then flops is given).
--compare (feasible up to ~10k rows): fits.json's content from the rows one by one and from them aggregated
(aggregate.py, forced), each parameter's difference in units of the full fit's 95% interval, and the times.
Prints the generating law (or the comparison) as JSON on its last line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pandas as pd

LAW = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def law_loss(N, D, p=LAW):
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


def optimal_n(C, p=LAW):
    s = p["alpha"] + p["beta"]
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / s)
    return G * (C / 6) ** (p["beta"] / s)


def make_csv(rows: int, budgets: int = 8, sizes: int = 0, group: str = "label", noise: float = 0.01,
             seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    Cs = np.logspace(17, 21, budgets)
    b = rng.integers(0, budgets, rows)
    C = Cs[b]
    if sizes:  # a fixed set of sizes per budget, repeated
        grid = rng.uniform(-1.5, 1.5, (budgets, sizes))
        u = grid[b, rng.integers(0, sizes, rows)]
    else:
        u = rng.uniform(-1.5, 1.5, rows)
    N = optimal_n(C) * 10**u
    D = C / (6 * N)
    df = pd.DataFrame({"n_params": N, "tokens": D, "loss": law_loss(N, D) * np.exp(rng.normal(0, noise, rows))})
    if group == "label":
        df["group"] = [f"budget-{i}" for i in b]
    elif group == "number":
        df["group"] = C
    else:
        df["flops"] = C
    return df


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--budgets", type=int, default=8)
    parser.add_argument("--sizes", type=int, default=0, help="0: continuous N; K: K sizes per budget")
    parser.add_argument("--group", choices=("label", "number", "none"), default="label")
    parser.add_argument("--noise", type=float, default=0.01, help="lognormal noise on the loss")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compare", action="store_true", help="fit all rows and the bins, compare")
    parser.add_argument("--bootstrap", type=int, default=100, help="resamples for --compare's intervals")
    parser.add_argument("--max-bins", type=int, default=None, help="bins for --compare (default: MAX_BINS)")
    args = parser.parse_args()
    df = make_csv(args.rows, args.budgets, args.sizes, args.group, args.noise, args.seed)
    df.to_csv(args.out, index=False)
    print(f"wrote {args.out}: {len(df)} rows, {df['n_params'].nunique()} distinct sizes")
    print(json.dumps(compare(args.out, args.bootstrap, args.max_bins) if args.compare else LAW))


def compare(path: str, n_boot: int, max_bins: int | None) -> dict:
    from sweep.analysis.laws.aggregate import aggregate
    from sweep.analysis.laws.estimate import estimate
    from sweep.analysis.inputs.load import load_csv

    ds = load_csv(path)
    t0 = time.perf_counter()
    full = estimate(ds, n_boot=n_boot)
    t1 = time.perf_counter()
    binned = aggregate(ds, above=0, max_bins=max_bins)
    agg = estimate(binned, n_boot=n_boot)
    t2 = time.perf_counter()
    out = {"rows": len(ds.runs), "bins": len(binned.runs), "key": binned.aggregation["key"],
           "full_s": round(t1 - t0, 2), "aggregated_s": round(t2 - t1, 2)}
    for k in ("E", "A", "B", "alpha", "beta"):
        f, a = full["approach3"][k], agg["approach3"][k]
        (lo, hi), (alo, ahi) = full["approach3"]["ci"][k], agg["approach3"]["ci"][k]
        out[k] = {"true": LAW[k], "full": f, "aggregated": a, "diff_in_ci_widths": (a - f) / (hi - lo),
                  "ci_width_ratio": (ahi - alo) / (hi - lo)}
        print(f"{k:6s} true {LAW[k]:<8.4g} all rows {f:<9.5g} [{lo:.5g}, {hi:.5g}]   bins {a:<9.5g} "
              f"[{alo:.5g}, {ahi:.5g}]   difference {(a - f) / (hi - lo):+.3f} interval widths")
    out["approach2_a"] = {"full": full["approach2"].get("a"), "aggregated": agg["approach2"].get("a")}
    return out


if __name__ == "__main__":
    main()
