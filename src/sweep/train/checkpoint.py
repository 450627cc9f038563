"""Atomic checkpoints with one previous generation kept, and every RNG state for a bit-identical resume."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write
from ..rundir import CHECKPOINT as LATEST, CHECKPOINT_PREVIOUS as PREVIOUS


class CheckpointError(RuntimeError):
    pass


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(run_dir: Path, state: dict) -> Path:
    """tmp → fsync → latest becomes previous → tmp becomes latest. A crash at any point leaves a loadable file."""
    with atomic_write(run_dir / LATEST, "wb", keep_previous=run_dir / PREVIOUS) as f:
        torch.save(state, f)
    return run_dir / LATEST


def load(run_dir: Path, warn=print) -> dict | None:
    """The newest checkpoint that loads; a corrupt latest falls back to the previous one with a message."""
    for path in (run_dir / LATEST, run_dir / PREVIOUS):
        if not path.exists():
            continue
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # truncated or garbled file: say so and try the older generation
            warn(f"checkpoint {path} is unreadable ({type(err).__name__}: {err}); trying the previous one")
    if (run_dir / LATEST).exists() or (run_dir / PREVIOUS).exists():
        raise CheckpointError(f"no readable checkpoint in {run_dir}; delete {LATEST} and {PREVIOUS} "
                              f"there to restart the run from scratch")
    return None
