"""Cooldown branches as inputs (sweep/train/branches.py): a trunk is no run for the laws (it never decayed; it is
listed in `excluded`), its branches are runs like any other (each equals the independent schedule=wsd run of its
horizon, and its endpoint is an end-of-schedule loss)."""

from __future__ import annotations

import numpy as np

from .finite import is_positive

TRUNK_REASON = "a cooldown trunk: its end never decayed (its branches, which did, are the runs)"


def is_trunk(summary: dict) -> bool:
    return isinstance(summary.get("branches"), list)


def branch_facts(summary: dict) -> dict:
    """A run's columns as a branch: its trunk's name (None: not a branch) and the FLOPs it would have cost alone and
    those it added (NaN when not a branch)."""
    return {"trunk": summary.get("trunk"),
            **{k: float(summary[k]) if is_positive(summary.get(k)) else np.nan for k in ("flops_alone", "flops_added")}}
