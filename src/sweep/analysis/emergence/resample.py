"""The abilities' intervals: a hierarchical bootstrap, seeds first, then items within a seed. Pure numerics on
tasks.json's per-item outcomes (emergence/load.py's TaskData.items); no I/O. `Boot` holds a sweep's replicates, made
once per variant and reused by every quantity derived from them.

A size's value of a metric is the mean over its seeds (runs of one cell) of each seed's value over the variant's
items. One replicate draws, per size, as many seeds as it has, with replacement, and for each drawn seed its items
with replacement (multinomial counts); the metric is recomputed from the reweighted sums (a ratio of sums where the
metric pools tokens or positions: nll, digit_acc, the induction ratio). Replicates of different sizes are drawn
independently, so the replicates of a difference between sizes carry both sizes' seed and item noise: a jump is
significant only beyond the seed-to-seed spread. With one seed per size the seed level is absent (the replicates
carry item noise only) and the verdicts say so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .load import TaskData

REPLICATES = 1000
LEVEL = 0.95
# metric → (numerator, denominator) of tasks.json's per-item lists; no denominator: a mean over items
PARTS = {"exact": ("exact", None), "exact_final": ("exact_final", None), "mc_acc": ("mc_acc", None),
         "p_seq": ("p_seq", None), "edit_distance": ("edit_distance", None), "brier": ("brier", None),
         "nll": ("nll_sum", "tokens"), "digit_acc": ("digit_hits", "digit_n"),
         "induction_ratio": ("copy_second", "copy_first"), "icl_score": ("per_window_score", None)}


def metrics_of(items: dict[str, np.ndarray]) -> list[str]:
    """The metrics a variant's per-item lists define."""
    return [m for m, (num, den) in PARTS.items() if num in items and (den is None or den in items)]


def value(items: dict[str, np.ndarray], metric: str, weights: np.ndarray | None = None):
    """The metric over items (weights: items' counts, one row per replicate; None: each item once)."""
    num, den = PARTS[metric]
    x = np.asarray(items[num], float)
    if weights is None:
        return float(x.sum() / (np.asarray(items[den], float).sum() if den else len(x)))
    top = weights @ x
    bottom = weights @ np.asarray(items[den], float) if den else weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return top / bottom


def replicates(seeds: list[dict[str, np.ndarray]], metrics: list[str], rng: np.random.Generator,
               n: int = REPLICATES) -> dict[str, np.ndarray]:
    """Per metric, n replicates of the seed mean at one size: seeds drawn with replacement, then each drawn seed's
    items with replacement. seeds: each seed's per-item lists (the same items, in the same order)."""
    k = len(seeds)
    n_items = len(next(iter(seeds[0].values())))
    drawn = rng.integers(0, k, size=(n, k))
    total = {m: np.zeros(n) for m in metrics}
    for slot in range(k):
        drawn_items = rng.integers(0, n_items, size=(n, n_items)) + n_items * np.arange(n)[:, None]
        counts = np.bincount(drawn_items.ravel(), minlength=n * n_items).reshape(n, n_items).astype(float)
        per_seed = {m: np.stack([value(s, m, counts) for s in seeds]) for m in metrics}  # [seed, replicate]
        for m in metrics:
            total[m] += per_seed[m][drawn[:, slot], np.arange(n)]
    return {m: t / k for m, t in total.items()}


def interval(samples, level: float = LEVEL) -> tuple[float | None, float | None]:
    """The percentile interval of replicates (None where they are not finite)."""
    s = np.asarray(samples, float)
    s = s[np.isfinite(s)]
    if not len(s):
        return None, None
    lo, hi = np.quantile(s, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def seed_stats(seeds: list[dict[str, np.ndarray]], metric: str) -> dict:
    """A size's seed values of a metric: their mean, min and max, and how many seeds."""
    values = np.array([value(s, metric) for s in seeds])
    return {"value": float(values.mean()), "seed_min": float(values.min()), "seed_max": float(values.max()),
            "n_seeds": len(values)}


class Boot:
    """The bootstrap's replicates, [size, replicate] per (what, metric), what a variant key or "icl"/"copy"; sizes
    in the order of `sizes` (those where what was scored)."""

    def __init__(self, data: TaskData, series: pd.DataFrame, replicates: int = REPLICATES, seed: int = 0):
        self.rng, self.n = np.random.default_rng(seed), replicates
        self.runs = {size: list(g["run_name"]) for size, g in series.groupby("size")}
        self.data = data
        self._cache: dict[str, tuple[list[int], dict[str, np.ndarray], dict[str, list[dict]]]] = {}

    def of(self, what: str):
        """(sizes, {metric: replicates [size, B]}, {metric: per-size seed stats}) for a variant key or icl/copy."""
        if what not in self._cache:
            sizes, reps, stats = [], {}, {}
            for size, runs in sorted(self.runs.items()):
                seeds = [self.data.items[(r, what)] for r in runs if (r, what) in self.data.items]
                if not seeds:
                    continue
                metrics = metrics_of(seeds[0])
                sizes.append(size)
                for m, r in replicates(seeds, metrics, self.rng, self.n).items():
                    reps.setdefault(m, []).append(r)
                for m in metrics:
                    stats.setdefault(m, []).append(seed_stats(seeds, m))
            self._cache[what] = (sizes, {m: np.stack(r) for m, r in reps.items()}, stats)
        return self._cache[what]
