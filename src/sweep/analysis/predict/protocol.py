"""Which runs each law is fitted on and which it must predict: `rolling_splits` (the default: hold out the largest
size, fit the rest; then the two largest; then three, while four sizes are left to fit) or `expression_split`
(`--holdout EXPR`, one split). Sizes are the model sizes runs share (sizes.size_clusters); a continuum of sizes
(published data: nearly every run its own size) is cut into SIZE_BINS equal bins of log N instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..inputs.sizes import size_clusters
from ..laws.holdout import select_holdout

MAX_FOLDS, MIN_FIT_SIZES, SIZE_BINS = 3, 4, 10


@dataclass(frozen=True)
class Split:
    index: int
    held_out: str  # which runs, in words
    fit: np.ndarray  # boolean masks over runs
    test: np.ndarray


def size_groups(N) -> np.ndarray:
    """Each run's size group, 0 = smallest: its model size, or its bin of log N for a continuum of sizes."""
    labels = size_clusters(N)
    if labels.max() + 1 <= 2 * SIZE_BINS:
        return labels
    logn = np.log(np.asarray(N, float))
    edges = np.linspace(logn.min(), logn.max(), SIZE_BINS + 1)[1:-1]
    bins = np.digitize(logn, edges)
    return np.unique(bins, return_inverse=True)[1]


def rolling_splits(N) -> list[Split] | str:
    """The rolling protocol's splits, or why there are none (fewer than MIN_FIT_SIZES + 1 sizes)."""
    groups = size_groups(N)
    n = int(groups.max()) + 1
    if n < MIN_FIT_SIZES + 1:
        return (f"the rolling protocol needs ≥ {MIN_FIT_SIZES + 1} model sizes ({MIN_FIT_SIZES} to fit, 1 to "
                f"predict) and these runs have {n}; `--holdout EXPR` names a split by hand")
    N = np.asarray(N, float)
    out = []
    for k in range(1, min(MAX_FOLDS, n - MIN_FIT_SIZES) + 1):
        test = groups >= n - k
        which = "the largest size" if k == 1 else f"the {k} largest sizes"
        out.append(Split(k, f"{which} (N ≥ {N[test].min():.3g}, {int(test.sum())} runs)", ~test, test))
    return out


def expression_split(expr: str, runs: pd.DataFrame) -> list[Split]:
    test = select_holdout(expr, runs)
    return [Split(1, f"`{expr}` ({int(test.sum())} runs)", ~test, test)]
