"""fits.json's `seeds` (laws/seeds.py): when cells were trained with several seeds, how far the seeds of one cell
spread, beside the differences between neighbouring sizes that the laws are fitted to and the law's own residuals.
All losses in nats per token."""

from __future__ import annotations

from dataclasses import dataclass

from .record import Record


@dataclass(kw_only=True)
class SeedSize(Record):
    """One model size's cells."""
    N: float
    cells: int
    seeds: int  # the most seeds of any of its cells
    sd: float | None  # the seeds' standard deviation, pooled over its cells with 2+ seeds
    sd_mean: float | None  # of one cell's mean: sd / √seeds
    gap: float | None  # median |mean loss − the next size up's| at the budgets where both ran


@dataclass(kw_only=True)
class Seeds(Record):
    cells: int
    runs: int
    seeds_min: int
    seeds_max: int
    sd: float | None  # pooled over every cell with 2+ seeds
    sd_mean: float | None  # of a cell mean, at the median number of seeds
    gap: float | None  # median |difference| of neighbouring sizes' cell means at a budget
    gap_over_noise: float | None  # gap / the noise of a difference of two cell means (√2 · sd_mean)
    residual_rms: float | None  # Approach 3's RMS residual of the cell means, nats (None: no Approach 3)
    residual_over_noise: float | None  # residual_rms / sd_mean: ≈ 1 is a law fitted down to the seed noise
    sizes: list[SeedSize]
