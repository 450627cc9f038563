"""What counts as a number the analysis may fit: finite, and below 1e300 in magnitude.

Older trainers wrote inf as 1e308 into metrics.jsonl; such a stand-in passes a positivity check, so any
|value| >= HUGE is non-finite here too. load.py leaves such values out (a run, with its reason in `excluded`; an eval
point, counted in a warning); the fit functions refuse them with `require_finite`, so one that slips through fails
loudly instead of bending a law. Pure: no I/O.
"""

from __future__ import annotations

import math

import numpy as np

HUGE = 1e300


def is_finite(value) -> bool:
    """A real number (not a bool) that is finite and below HUGE in magnitude."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            and abs(value) < HUGE)


def is_non_finite(value) -> bool:
    """null, NaN, ±inf or a huge stand-in for inf (a missing key or a non-number is neither finite nor this)."""
    if value is None:
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not is_finite(value)


def is_positive(value) -> bool:
    return is_finite(value) and value > 0


def require_finite(name: str, values, positive: bool = False, allow_nan: bool = False) -> np.ndarray:
    """`values` as a float array; ValueError naming `name`, the first bad index and its value if any is non-finite
    (or, with positive=True, not > 0). allow_nan: NaN means "none" there (a run without a FLOP budget)."""
    try:
        arr = np.asarray(values, float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: not an array of numbers ({err})") from None
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(arr) | (np.abs(arr) >= HUGE)
        if allow_nan:
            bad &= ~np.isnan(arr)
        if bad.any():
            i = int(np.flatnonzero(bad.ravel())[0])
            raise ValueError(f"{name}: {int(bad.sum())} non-finite value(s) (NaN, ±inf or |value| >= {HUGE:.0e}), "
                             f"the first at index {i}: {arr.ravel()[i]!r}; non-finite values must be left out "
                             f"before a fit")
        if positive and (arr <= 0).any():
            i = int(np.flatnonzero((arr <= 0).ravel())[0])
            raise ValueError(f"{name}: {int((arr <= 0).sum())} value(s) <= 0, the first at index {i}: "
                             f"{arr.ravel()[i]!r}; a fit in log space needs positive values")
    return arr
