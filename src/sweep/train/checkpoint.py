"""Atomic checkpoints with one previous generation kept, and every RNG state for a bit-identical resume.

A checkpoint is read as data only (torch.load's weights_only unpickler): tensors, containers, numbers, strings and
the one numpy array numpy's RNG state is (uint32). A file that asks for anything else, such as a pickle crafted to
run code in a run directory someone sent, is refused before any of it runs.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write
from ..rundir import CHECKPOINT as LATEST, CHECKPOINT_PREVIOUS as PREVIOUS, RunDirError


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


class _Writes:
    """A file's writes, keeping the first OSError: torch.save turns a failed write (a full disk) into a RuntimeError
    without its cause, which save() restores."""

    def __init__(self, f):
        self.f, self.error = f, None

    def write(self, data) -> int:
        try:
            return self.f.write(data)
        except OSError as err:
            self.error = self.error or err
            raise

    def flush(self) -> None:
        self.f.flush()


def own_storage(tensors: dict) -> dict:
    """A state dict whose tensors view a larger storage (a packed cell's weights, views of its pack's stacks) copied
    to storage of their own: torch.save writes a view's whole storage, so the file would hold every cell's weights."""
    return {k: v.clone() if isinstance(v, torch.Tensor) and v.untyped_storage().nbytes() > v.nbytes else v
            for k, v in tensors.items()}


def save(run_dir: Path, state: dict) -> Path:
    """tmp → fsync → latest becomes previous → tmp becomes latest. A crash at any point leaves a loadable file; a
    failed write (full disk) raises OSError naming the file and leaves the earlier generations as they were."""
    return save_as(run_dir / LATEST, state, keep_previous=run_dir / PREVIOUS)


def save_as(path: Path, state: dict, keep_previous: Path | None = None) -> Path:
    """One checkpoint file written atomically (a cooldown trunk's branch point, or save()'s latest)."""
    with atomic_write(path, "wb", keep_previous=keep_previous) as f:
        writes = _Writes(f)
        try:
            torch.save(state, writes)
        except RuntimeError:
            if writes.error is None:
                raise
            raise OSError(writes.error.errno, writes.error.strerror, str(path)) from None
    return path


def exists(run_dir: Path) -> bool:
    """Whether run_dir holds a checkpoint file for load() to try (usable or not)."""
    return (run_dir / LATEST).exists() or (run_dir / PREVIOUS).exists()


def _numpy_rng_globals() -> list:
    """What numpy's legacy RNG state (a uint32 ndarray) pickles as: the only non-torch objects a checkpoint holds."""
    multiarray = getattr(np, "_core", None) or np.core  # numpy 2 moved numpy.core to numpy._core
    return [multiarray.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


class UnsafeCheckpoint(pickle.UnpicklingError):
    pass


def read(path: Path) -> dict:
    """One checkpoint file as data, on the CPU. UnsafeCheckpoint if it holds anything but what a checkpoint holds
    (nothing in it has run); other errors for a truncated or garbled file."""
    with torch.serialization.safe_globals(_numpy_rng_globals()):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            # torch's message: a paragraph of advice, then what the file asked for
            paragraphs = [p.strip() for p in str(err).split("\n\n") if p.strip()]
            detail = paragraphs[min(1, len(paragraphs) - 1)].removeprefix("WeightsUnpickler error:").strip()
            raise UnsafeCheckpoint(f"{path} is not a checkpoint sweep wrote: it holds objects a checkpoint never "
                                   f"does ({detail}), refused before any of it ran; a file crafted to run code looks "
                                   f"like this, so do not open it with torch.load(weights_only=False)") from None


def load(run_dir: Path, warn=print, model: torch.nn.Module | None = None, fits=None) -> dict | None:
    """The newest checkpoint that loads (and, given `model`, whose weights fit it; given `fits`, a check of the
    state that raises what does not fit, e.g. metrics.jsonl shorter than the state says); a corrupt or mismatched
    latest falls back to the previous one with a message."""
    problems = []
    for path in (run_dir / LATEST, run_dir / PREVIOUS):
        if not path.exists():
            continue
        try:
            state = read(path)
        except UnsafeCheckpoint as err:  # never tried again any other way
            problems.append(str(err))
            warn(f"{err}; trying the previous one")
            continue
        except Exception as err:  # truncated or garbled file: say so and try the older generation
            problems.append(f"{path.name}: {type(err).__name__}: {err}")
            warn(f"checkpoint {path} is unreadable ({type(err).__name__}: {err}); trying the previous one")
            continue
        try:
            if model is not None:
                _check_fits(state["model"], model)
            if fits is not None:
                fits(state)
            return state
        except (KeyError, TypeError, ValueError, RunDirError) as err:  # another model's, or metrics behind it
            problems.append(f"{path.name}: {err}")
            warn(f"checkpoint {path} does not fit this run ({err}); trying the previous one")
    if problems:
        raise CheckpointError(f"no usable checkpoint in {run_dir} ({'; '.join(problems)}); delete {LATEST} and "
                              f"{PREVIOUS} there to restart the run from scratch")
    return None


def _check_fits(weights: dict, model: torch.nn.Module) -> None:
    """Raise ValueError naming the first tensor whose name or shape differs from the model's."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in weights.items()}
    for key in sorted(expected.keys() | found.keys()):
        if expected.get(key) != found.get(key):
            raise ValueError(f"its {key} is {found.get(key)}, the model's is {expected.get(key)}: another model's")
