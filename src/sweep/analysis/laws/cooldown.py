"""Cooldown branches in the fits (sweep/train/branches.py; which runs are trunks or branches: inputs/cooldown.py):
the bootstrap resamples a trunk together with its branches, which share its noise; and fits.json's `cooldown` states
the compute the branches saved against independent runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..inputs.finite import is_positive
from .bootstrap import bootstrap
from ..result.fits import Cooldown

def trunk_units(runs: pd.DataFrame) -> np.ndarray | None:
    """The bootstrap's unit of each run when some are branches (a branch counts as its trunk, any other run as
    itself), numbered from 0; None when no run is a branch."""
    if "trunk" not in runs or runs["trunk"].isna().all():
        return None
    return pd.factorize(runs["trunk"].where(runs["trunk"].notna(), runs["run_name"]))[0]


def unit_bootstrap(statistic, n_runs: int, n_boot: int, seed: int, strata, accept, units) -> dict:
    """bootstrap() over runs, or with units: over units (trunks, each with its branches), in one pool, since a
    trunk's branches span the FLOP budgets that would otherwise be the strata."""
    if units is None:
        return bootstrap(statistic, n_runs, n_boot, seed, strata, accept=accept)
    return bootstrap(lambda counts: statistic(counts[units]), int(units.max()) + 1, n_boot, seed,
                     accept=lambda counts: accept(counts[units]))


def compute_saved(runs: pd.DataFrame, trunk_flops: dict) -> Cooldown | None:
    """fits.json's `cooldown`: the branches' Σ flops_alone (independent runs of their horizons) against what the
    trunks and branches spent, Σ (trunk FLOPs + its branches' flops_added); None when no run is a branch."""
    if "trunk" not in runs:
        return None
    branches = runs[runs["trunk"].notna()]
    if branches.empty:
        return None
    trunks = sorted(set(branches["trunk"]))
    unknown = [t for t in trunks if not is_positive(trunk_flops.get(t))]
    independent = float(branches["flops_alone"].sum())
    spent = float(sum(trunk_flops[t] for t in trunks if t not in unknown) + branches["flops_added"].sum())
    # a trunk whose summary is missing: its FLOPs are not counted, so the saving is overstated
    return Cooldown(trunks=len(trunks), branches=int(len(branches)), flops_independent=independent, flops_spent=spent,
                    saving=1 - spent / independent if independent > 0 else None, trunks_missing=unknown or None)
