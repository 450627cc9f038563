"""The seed spread of cells trained with several seeds (inputs/replicates.py), set beside what it explains: the
loss differences between neighbouring sizes at a budget (the isoFLOP curves' shape) and Approach 3's residuals.
Pure numerics: a Dataset of cell means and the law in, fits.json's `seeds` out (None: one seed per cell)."""

from __future__ import annotations

import numpy as np

from ..inputs.load import Dataset
from ..inputs.replicates import pooled_sd
from ..inputs.sizes import size_clusters
from ..result.seeds import SeedSize, Seeds
from .approaches import budget_groups
from .lse import law_loss


def _gaps(runs) -> dict[int, list[float]]:
    """Per size, |its cell's mean loss − the next size up's| at each budget where both ran."""
    sizes, out = size_clusters(runs["N"].to_numpy(float)), {}
    loss, budget = runs["loss"].to_numpy(float), runs["budget"].to_numpy(float)
    for g in budget_groups(budget):
        order = g[np.argsort(sizes[g])]
        for a, b in zip(order, order[1:]):
            if sizes[b] > sizes[a]:
                out.setdefault(int(sizes[a]), []).append(abs(loss[b] - loss[a]))
    return out


def seed_spread(ds: Dataset, approach3: dict | None) -> Seeds | None:
    """fits.json's `seeds` for a Dataset of cell means; approach3: its fitted parameters (E, A, alpha, B, beta)."""
    reps = ds.replicates
    if reps is None:
        return None
    runs, counts = ds.runs, reps.counts
    sizes = size_clusters(runs["N"].to_numpy(float))
    sd = pooled_sd(reps.losses)
    k = float(np.median(counts))
    sd_mean = sd / np.sqrt(k) if sd is not None else None
    gaps = _gaps(runs)
    rows = []
    for s in np.unique(sizes):
        m = np.flatnonzero(sizes == s)
        s_sd = pooled_sd([reps.losses[i] for i in m])
        rows.append(SeedSize(N=float(runs["N"].to_numpy(float)[m].mean()), cells=len(m), seeds=int(counts[m].max()),
                             sd=s_sd, sd_mean=s_sd / np.sqrt(np.median(counts[m])) if s_sd is not None else None,
                             gap=float(np.median(gaps[int(s)])) if int(s) in gaps else None))
    every_gap = [x for g in gaps.values() for x in g]
    gap = float(np.median(every_gap)) if every_gap else None
    residual = None
    if approach3 is not None:
        predicted = law_loss(approach3, runs["N"].to_numpy(float), runs["D"].to_numpy(float))
        residual = float(np.sqrt(np.mean((runs["loss"].to_numpy(float) - predicted) ** 2)))
    noisy = sd_mean is not None and sd_mean > 0
    return Seeds(cells=len(runs), runs=int(counts.sum()), seeds_min=int(counts.min()), seeds_max=int(counts.max()),
                 sd=sd, sd_mean=sd_mean, gap=gap,
                 gap_over_noise=gap / (np.sqrt(2) * sd_mean) if noisy and gap is not None else None,
                 residual_rms=residual,
                 residual_over_noise=residual / sd_mean if noisy and residual is not None else None, sizes=rows)
