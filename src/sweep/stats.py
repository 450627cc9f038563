"""Small statistics shared by the task scorer and the analysis: the one Wilson score interval."""

from __future__ import annotations

import numpy as np

Z95 = 1.959963984540054  # the two-sided 95% normal quantile


def wilson(p, n, z: float = Z95):
    """The Wilson score interval (lo, hi) of a proportion p observed over n items, elementwise over arrays; NaN
    where n is not positive (no items, no interval)."""
    p, n = np.asarray(p, float), np.asarray(n, float)
    with np.errstate(all="ignore"):
        den = 1 + z * z / n
        mid = (p + z * z / (2 * n)) / den
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
        return np.where(n > 0, np.clip(mid - half, 0, 1), np.nan), np.where(n > 0, np.clip(mid + half, 0, 1), np.nan)
