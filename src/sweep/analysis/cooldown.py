"""Cooldown branches in the analysis (sweep/train/branches.py): a trunk is no run for the laws (it never decayed; it
is listed in `excluded`), its branches are runs like any other (each equals the independent schedule=wsd run of its
horizon, and its endpoint is an end-of-schedule loss); the bootstrap resamples a trunk together with its branches,
which share its noise; and fits.json's `cooldown` states the compute the branches saved against independent runs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .bootstrap import bootstrap
from .finite import is_positive

TRUNK_REASON = "a cooldown trunk: its end never decayed (its branches, which did, are the runs)"


def is_trunk(summary: dict) -> bool:
    return isinstance(summary.get("branches"), list)


def branch_facts(summary: dict) -> dict:
    """A run's columns as a branch: its trunk's name (None: not a branch) and the FLOPs it would have cost alone and
    those it added (NaN when not a branch)."""
    return {"trunk": summary.get("trunk"),
            **{k: float(summary[k]) if is_positive(summary.get(k)) else np.nan for k in ("flops_alone", "flops_added")}}


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


def compute_saved(runs: pd.DataFrame, trunk_flops: dict) -> dict | None:
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
    out = {"trunks": len(trunks), "branches": int(len(branches)), "flops_independent": independent,
           "flops_spent": spent, "saving": 1 - spent / independent if independent > 0 else None}
    if unknown:  # a trunk whose summary is missing: its FLOPs are not counted, so the saving is overstated
        out["trunks_missing"] = unknown
    return out


def report_lines(cooldown: dict | None) -> list[str]:
    """report.md's statement of the compute saved (nothing without branches)."""
    if not cooldown:
        return []
    missing = cooldown.get("trunks_missing")
    saving = cooldown["saving"]
    return [f"Cooldown branches: {cooldown['branches']} branches from {cooldown['trunks']} trunk(s) cost "
            f"{cooldown['flops_spent']:.3g} FLOPs, against {cooldown['flops_independent']:.3g} for independent runs "
            f"of the same horizons" + (f": {100 * saving:.0f}% saved" if saving is not None else "")
            + (f" (without the trunks {', '.join(missing)}, whose summary.json is missing)" if missing else "")
            + ". Each branch is fitted as the independent run it equals; the bootstrap resamples a trunk with its "
              "branches.", ""]
