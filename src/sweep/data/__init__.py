"""Corpus → byte-level BPE → token shards → batches.

Modules, one job each: `documents` (the Source a corpus is to the rest of the stage; plain text cut into
documents), `sources` (the pystdlib, local files or a hub dataset as a Source), `local` (reading local files),
`tokenizer` (byte-level BPE: training, loading, bytes per token), `shards` (the headered token file format),
`split` (tokenizer, train and val shards: the document split, else the tail split), `cache` (`prepare`: the cache
entry of a corpus — key, lock, manifest; `check`: a data config's checks before any work; `describe`: what an
entry holds), `batches` (training windows and the
validation set), `errors` (DataError).

Importing this package is cheap: DataError is imported eagerly, everything else (numpy, torch, tokenizers) on
first use of its name.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .errors import DataError

if TYPE_CHECKING:
    from .batches import TokenBatches, spread, val_windows
    from .cache import PreparedData, check, describe, prepare
    from .shards import open_tokens, write_tokens

_LAZY = {"PreparedData": "cache", "prepare": "cache", "describe": "cache", "TokenBatches": "batches",
         "val_windows": "batches", "spread": "batches", "open_tokens": "shards", "write_tokens": "shards",
         "check": "cache"}

__all__ = ["DataError", "PreparedData", "TokenBatches", "check", "describe", "open_tokens", "prepare",
           "spread", "val_windows", "write_tokens"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
