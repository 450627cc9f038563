"""Which runs are one model size: the grouping every law, check and plot shares (digitised published data jitters
a size by a fraction of a percent; a sweep's own runs do not)."""

from __future__ import annotations

import numpy as np

from .finite import require_finite


def size_clusters(N, rel_tol: float = 0.01, max_span: float | None = None) -> np.ndarray:
    """Label runs by model size (0 = the smallest): sizes within rel_tol of their neighbour are one size, the jitter
    of digitised data, unless such a chain spans more than max_span (default 3·rel_tol) from end to end. Then it is
    a continuum of sizes, not one size jittered, and each distinct value in it is a size of its own.
    """
    logn = np.log(require_finite("size_clusters: N", N, positive=True)).ravel()
    if len(logn) == 0:
        return np.zeros(0, int)
    order = np.argsort(logn, kind="stable")
    s = logn[order]
    gaps = np.diff(s)
    breaks = gaps > np.log1p(rel_tol)
    chain = np.concatenate([[0], np.cumsum(breaks)])
    first = np.flatnonzero(np.concatenate([[True], breaks]))
    last = np.concatenate([first[1:] - 1, [len(s) - 1]])
    wide = (s[last] - s[first]) > np.log1p(3 * rel_tol if max_span is None else max_span)
    breaks |= (gaps > 0) & wide[chain[1:]]  # inside a continuum every distinct value starts a size
    labels = np.empty(len(logn), int)
    labels[order] = np.concatenate([[0], np.cumsum(breaks)])
    return labels


SIZE_BINS = 10  # a continuum of sizes is cut into this many equal bins of log N


def size_groups(N) -> np.ndarray:
    """Each run's size group, 0 = smallest: its model size, or, for a continuum of sizes (published data: nearly
    every run its own size), its bin of log N among SIZE_BINS equal ones."""
    labels = size_clusters(N)
    if labels.max() + 1 <= 2 * SIZE_BINS:
        return labels
    logn = np.log(np.asarray(N, float))
    edges = np.linspace(logn.min(), logn.max(), SIZE_BINS + 1)[1:-1]
    return np.unique(np.digitize(logn, edges), return_inverse=True)[1]
