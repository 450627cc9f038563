"""Which runs each law is fitted on and which it must predict: `rolling_splits` (the default: hold out the largest
size, fit the rest; then the two largest; then three, while four sizes are left to fit) or `expression_split`
(`--holdout EXPR`, one split). Sizes are sizes.size_groups: the model sizes runs share, or bins of log N for a
continuum of sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..inputs.sizes import size_groups
from ..laws.holdout import select_holdout

MAX_FOLDS, MIN_FIT_SIZES = 3, 4


@dataclass(frozen=True)
class Split:
    index: int
    held_out: str  # which runs, in words
    fit: np.ndarray  # boolean masks over runs
    test: np.ndarray


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
