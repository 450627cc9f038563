"""The training mixture's task rows: which rows of a step's batch train on task text instead of corpus text (a
fraction `mix` of them), and the window of packed training items each such row gets.

Both are pure functions of their arguments, as TokenBatches' windows are, so resume needs no state and splitting a
step into micro batches or ranks changes nothing. Whether a row is a task row uses its own salt, independent of
which corpus window TokenBatches would give the row.
"""

from __future__ import annotations

import numpy as np

from ..data.batches import _mix64
from .formats import Draws
from .items import SEP, SymbolCodec
from .suite import Suite

_ROW_SALT = np.uint64(0x7A5C)  # TokenBatches uses 0x5EED
_WINDOW_TAG = 0x7A5C0001  # first word of every task window's seed, apart from the suite's own streams
_BITS = 53  # a row is a task row when the top 53 bits of its hash fall below mix·2**53 (exact for mix 0 and 1)


class TaskRows:
    """mix: the fraction of rows, exact for any value in [0, 1]; a run's tasks.mix is validated by the config
    (config/schema.py), which is the one owner of its bound."""

    def __init__(self, suite: Suite, run_seed: int, mix: float, codec: SymbolCodec, seq_len: int):
        self.suite, self.run_seed, self.mix, self.codec, self.seq_len = suite, run_seed, mix, codec, seq_len
        self.suite_seed = suite.seed
        self._threshold = np.uint64(round(mix * 2 ** _BITS))
        # kept as 1-element arrays: numpy scalar arithmetic warns on the wraparound the hash relies on
        self._key = _mix64(np.array([run_seed % 2 ** 64], np.uint64) ^ _ROW_SALT)

    def is_task(self, step: int, rows: np.ndarray) -> np.ndarray:
        """Which of these batch rows (uint64 row indices within the step) are task rows at `step`."""
        rows = np.asarray(rows, dtype=np.uint64)
        key = _mix64(self._key + np.uint64(step))
        return (_mix64(key + rows) >> np.uint64(64 - _BITS)) < self._threshold

    def window(self, step: int, row: int) -> np.ndarray:
        """seq_len+1 token ids: training items (prompt+answer) joined by SEP from the start, the last one cut at
        the window's end."""
        seed = [_WINDOW_TAG, self.suite_seed % 2 ** 64, self.run_seed % 2 ** 64, step, row]
        draws = Draws(np.random.default_rng(seed), block=max(64, self.seq_len // 2))
        need, parts, length = self.seq_len + 1, [], -len(SEP)  # n parts are joined by n-1 separators
        while length < need:
            text = self.suite.train_text(draws)
            parts.append(text)
            length += len(text) + len(SEP)
        return self.codec.encode(SEP.join(parts)[:need])
