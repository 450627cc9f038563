"""The task suite's shared vocabulary: an eval `Item`, the symbol alphabet, and the `SymbolCodec` that turns task
text into token ids one symbol per token.

Task text is never run through the BPE's merges: each symbol is encoded on its own, so "123" is always three digit
tokens whatever merges the corpus taught the tokenizer. The codec is built against the run's tokenizer and refuses
one that has no single token for a symbol of the alphabet (TaskError naming the symbol), before any work is done.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np

from ..config.schema import ConfigError

END = ";"  # closes every answer: exact match includes it, so a model must also know when to stop
SEP = "\n"  # between packed items in a training sequence
# Every symbol task text may use; each must be one token of the run's tokenizer.
ALPHABET = string.digits + string.ascii_lowercase + string.ascii_uppercase + "+-*=;:>|,?()[]# \n"

FORMAT = "sweep-tasks/2"  # tasks.json's format tag (2: held out by canonical form, per-item outcomes)


class TaskError(ConfigError):
    """A task input a user can fix (a tokenizer without single-symbol tokens, a context too short for an item)."""


@dataclass(frozen=True)
class Item:
    """One eval item. The model sees `prompt` and must continue with `answer` (which ends with END).

    task: the family ("add", "add_cot", "muladd", "muladd_cot", "icl", "icl_random", "copy", "fact", "redefine").
    variant: the point on the family's axis, e.g. "L3" (operands of 3 digits), "k4" (4 shots); task/variant is the
      key results are reported under.
    choices: for multiple choice, the candidate answers (each ending with END, `answer` among them); empty for
      generative items.
    final: for scratchpad formats, the part of `answer` that states the result (scored as exact_final); else "".
    digits: positions in `answer` that are result digits (per-digit accuracy); empty → every position but END.
    axis: numbers describing the item for the analysis, e.g. {"L": 4} (answer length), {"k": 4} (shots).
    """
    task: str
    variant: str
    prompt: str
    answer: str
    choices: tuple[str, ...] = ()
    final: str = ""
    digits: tuple[int, ...] = ()
    axis: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def key(self) -> str:
        return f"{self.task}/{self.variant}"


class SymbolCodec:
    """Task text ↔ token ids, one token per symbol, checked against a `tokenizers.Tokenizer`."""

    def __init__(self, tokenizer, alphabet: str = ALPHABET):
        ids = {}
        for ch in alphabet:
            got = tokenizer.encode(ch).ids
            if len(got) != 1:
                raise TaskError(f"the tokenizer encodes the task symbol {ch!r} as {len(got)} tokens {got}; tasks need "
                                f"one token per symbol (a byte-level BPE, the data stage's tokenizer, has one)")
            ids[ch] = got[0]
        if len(set(ids.values())) != len(ids):
            raise TaskError("the tokenizer maps two task symbols to the same token; tasks need distinct tokens")
        self.ids = ids
        self.symbols = {i: ch for ch, i in ids.items()}
        self._lut = np.full(0x110000 if max(map(ord, alphabet)) > 0xFFFF else 0x10000, -1, np.int64)
        for ch, i in ids.items():
            self._lut[ord(ch)] = i

    def encode(self, text: str) -> np.ndarray:
        codes = np.frombuffer(text.encode("utf-32-le"), np.uint32).astype(np.int64)
        out = self._lut[np.minimum(codes, len(self._lut) - 1)]
        if (out < 0).any():
            bad = sorted({c for c in text if c not in self.ids})
            raise TaskError(f"task text has symbols outside the task alphabet: {bad!r}")
        return out

    def decode(self, ids) -> str:
        return "".join(self.symbols.get(int(i), "\ufffd") for i in ids)
