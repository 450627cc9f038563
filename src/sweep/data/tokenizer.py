"""The byte-level BPE tokenizer: its recipe (training), loading it for use, and how many UTF-8 bytes each token
stands for (the bits-per-byte bookkeeping). EOT closes every document and is never produced from text."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from .errors import DataError

EOT = "<|endoftext|>"


def load_tokenizer(path: Path | str) -> Tokenizer:
    path = Path(path)
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as err:  # missing, or not a tokenizer: the Rust error says which
        raise DataError(f"{path} cannot be loaded as a tokenizer ({err}); delete its cache entry {path.parent} to "
                        f"re-prepare it") from None
    # Literal "<|endoftext|>" in a document is text, not a separator; the flag is not saved in the JSON.
    tok.encode_special_tokens = True
    return tok


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # no prefix space: exact round-trip
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def token_bytes(tok: Tokenizer) -> np.ndarray:
    """UTF-8 bytes each token id stands for (0 for special tokens), so bytes of a span = sum over ids."""
    special = set(tok.get_added_tokens_decoder())
    out = np.zeros(tok.get_vocab_size(), np.int64)
    for piece, i in tok.get_vocab().items():
        if i not in special:
            out[i] = len(piece)  # each byte-level character stands for exactly one byte
    return out
