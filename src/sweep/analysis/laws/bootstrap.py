"""Bootstrap intervals over runs, as pure numerics (no I/O): `bootstrap` draws resamples as per-run counts and
collects a statistic's values, and `percentile_ci` turns them into an interval. A statistic's values are keyed by
the flat paths of record.numbers (each interval goes back next to its value through record.walk_values).
"""

from __future__ import annotations

import numpy as np

def bootstrap(statistic, n_units: int, n_boot: int, seed: int = 0, strata=None, accept=None) -> dict[str, np.ndarray]:
    """Resample runs with replacement (within strata, if given) as counts; statistic(counts) → {name: float}.

    accept(counts) → bool redraws a resample that cannot be fitted by design (an isoFLOP curve left with two
    sizes); without it such resamples would drop out, and only the lucky ones would set the interval.
    """
    rng = np.random.default_rng(seed)
    strata = np.zeros(n_units, int) if strata is None else np.asarray(strata)
    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    samples: dict[str, list[float]] = {}
    for i in range(n_boot):
        for _ in range(1000):
            counts = np.zeros(n_units)
            for g in groups:
                np.add.at(counts, rng.choice(g, size=len(g), replace=True), 1.0)
            if accept is None or accept(counts):
                break
        try:
            values = statistic(counts)
        except (ValueError, ArithmeticError, np.linalg.LinAlgError):
            values = {}  # a resample the fits cannot handle counts as missing for every quantity
        for k, v in values.items():
            samples.setdefault(k, [np.nan] * i).append(v)
        for k in samples:  # a quantity that a resample could not fit stays NaN there
            if len(samples[k]) < i + 1:
                samples[k].append(np.nan)
    return {k: np.asarray(v, float) for k, v in samples.items()}


def percentile_ci(samples: np.ndarray, level: float = 0.95) -> dict:
    s = samples[np.isfinite(samples)]
    if len(s) < 10:
        return {"ci": None, "n_valid": int(len(s))}
    q = 100 * (1 - level) / 2
    return {"ci": [float(np.percentile(s, q)), float(np.percentile(s, 100 - q))], "n_valid": int(len(s))}
