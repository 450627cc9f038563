"""What the trainer reads from the shards: deterministic random training windows (TokenBatches) and the fixed
validation set (val_windows)."""

from __future__ import annotations

import numpy as np
import torch

from .errors import DataError


class TokenBatches:
    """Deterministic random windows: batch (step, micro) is a pure function of (seed, step, micro), so resume
    needs no data state. Each window depends on (seed, step, its row in the step's batch) only, so splitting a
    step into more, smaller micro batches (or across ranks) changes nothing in what the step trains on."""

    def __init__(self, tokens: np.ndarray, seq_len: int, micro_batch: int, seed: int, task_rows=None):
        if len(tokens) < seq_len + 1:
            raise DataError(f"the train shard has {len(tokens)} tokens, fewer than seq_len+1={seq_len + 1}; "
                            f"lower model.seq_len or use a larger corpus")
        self.tokens, self.seq_len, self.micro_batch, self.seed = tokens, seq_len, micro_batch, seed
        # tasks.mix: a sweep.tasks.mix.TaskRows that picks rows (by seed, step, row) and packs task text into them
        self.task_rows = task_rows
        self._span = np.arange(seq_len + 1)

    def get(self, step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of micro batch `micro` of `step`; with task rows, the rows they pick hold task text."""
        rows = np.arange(micro * self.micro_batch, (micro + 1) * self.micro_batch, dtype=np.uint64)
        key = _mix64(_mix64(np.full_like(rows, self.seed % 2**64) ^ np.uint64(0x5EED)) + np.uint64(step))
        starts = (_mix64(key + rows) % np.uint64(len(self.tokens) - self.seq_len)).astype(np.int64)
        windows = self.tokens[starts[:, None] + self._span].astype(np.int64)
        if self.task_rows is not None:
            for i in np.flatnonzero(self.task_rows.is_task(step, rows)):
                windows[i] = self.task_rows.window(step, int(rows[i]))
        windows = torch.from_numpy(windows)
        return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: maps counters to well-spread 64-bit values (uint64 arrays wrap, never warn)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def spread(windows: torch.Tensor, count: int) -> torch.Tensor:
    """`count` of the windows, evenly spaced over the held-out set (all of them when count ≥ their number): a
    subset that samples every part of it, and the same subset for every run that asks for `count`."""
    n = windows.shape[0]
    if count >= n:
        return windows
    return windows[torch.arange(count) * n // count]


def val_windows(tokens: np.ndarray, seq_len: int) -> torch.Tensor:
    """The fixed validation set: non-overlapping windows of seq_len+1 tokens over the whole val shard."""
    n = len(tokens) // (seq_len + 1)
    if n == 0:
        raise DataError(f"the validation shard has {len(tokens)} tokens, fewer than seq_len+1={seq_len + 1}; "
                        f"raise data.val_tokens")
    return torch.from_numpy(np.asarray(tokens[: n * (seq_len + 1)], dtype=np.int64).reshape(n, seq_len + 1))
