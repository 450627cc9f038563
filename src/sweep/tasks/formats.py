"""The text of each task family: given what was drawn (operands, a symbol→label map, a string, a fact), the Item
that states it. Also `Draws`, the cheap source of random integers every generator draws from.

Formats (prompt → answer; ":" at the end of an arithmetic prompt asks for the written steps, "=" for the result):
  add         `123+456=` → `579;`
  add_cot     `123+456:` → `3+6+0=9,0 2+5+0=7,0 1+4+0=5,0>579;`  one column per step from the least significant:
              digit + digit + carry in = digit out, carry out
  muladd      `3*4+5*6=` → `42;`              muladd_cot  `3*4+5*6:` → `12+30=42;`
  icl         `#q>X,w>Y,q>X,w>` → `Y;`        k shots `symbol>label,` of a fresh map, then the query `symbol>`
  icl_random  the same shots with labels drawn at random; the answer is still the map's label
  copy        `|abcdefgh|` → `abcdefgh;`
  fact        `kqz?` → `7;`
  redefine    `(+=-)15+3=` → `12;` with choices `12;` and `18;`
"""

from __future__ import annotations

import string

import numpy as np

from .items import END, Item

LOWER, UPPER = string.ascii_lowercase, string.ascii_uppercase
ICL_SYMBOLS = 4  # symbols in an ICL map, two per label
ICL_START = "#"  # opens an ICL sequence
REDEFINE = "(+=-)"  # "from here on, + means -"


class Draws:
    """Uniform random integers from a numpy Generator, drawn in blocks: one Generator call per `block` draws
    instead of one per draw (a scalar Generator call costs about a microsecond; a long task window makes hundreds)."""

    def __init__(self, rng: np.random.Generator, block: int = 256):
        self.rng, self.block = rng, block
        self._buf: list[float] = []
        self._next = 0

    def below(self, n: int) -> int:
        """An integer in [0, n): exact enough for n far below 2**53, the only sizes task items use."""
        if self._next == len(self._buf):
            self._buf, self._next = self.rng.random(self.block).tolist(), 0
        u = self._buf[self._next]
        self._next += 1
        return int(u * n)

    def pick(self, seq):
        return seq[self.below(len(seq))]

    def distinct(self, seq, k: int) -> list:
        """k different elements of seq in random order (a partial Fisher-Yates shuffle)."""
        pool = list(seq)
        for i in range(k):
            j = i + self.below(len(pool) - i)
            pool[i], pool[j] = pool[j], pool[i]
        return pool[:k]

    def text(self, symbols: str, m: int) -> str:
        return "".join(symbols[self.below(len(symbols))] for _ in range(m))

    def shuffled(self, seq) -> list:
        return self.distinct(seq, len(seq))


def operands(d: int) -> range:
    """The numbers with exactly d digits (d=1 includes 0)."""
    return range(0 if d == 1 else 10 ** (d - 1), 10 ** d)


def operand(draws: Draws, d: int) -> int:
    span = operands(d)
    return span.start + draws.below(len(span))


def _result_positions(start: int, result: str) -> tuple[int, ...]:
    return tuple(range(start, start + len(result)))


def add(a: int, b: int, d: int, cot: bool) -> Item:
    result = str(a + b)
    axis = {"d": d, "L": len(result)}
    if not cot:
        return Item("add", f"d{d}", f"{a}+{b}=", result + END, digits=_result_positions(0, result), axis=axis)
    steps, carry = [], 0
    for x, y in zip(str(a)[::-1], str(b)[::-1]):  # both have d digits
        column = int(x) + int(y) + carry
        steps.append(f"{x}+{y}+{carry}={column % 10},{column // 10}")
        carry = column // 10
    pad = " ".join(steps) + ">"
    return Item("add_cot", f"d{d}", f"{a}+{b}:", pad + result + END, final=result + END,
                digits=_result_positions(len(pad), result), axis=axis)


def muladd(a: int, b: int, c: int, e: int, d: int, cot: bool) -> Item:
    result = str(a * b + c * e)
    axis = {"d": d, "L": len(result)}
    if not cot:
        return Item("muladd", f"d{d}", f"{a}*{b}+{c}*{e}=", result + END, digits=_result_positions(0, result),
                    axis=axis)
    pad = f"{a * b}+{c * e}="
    return Item("muladd_cot", f"d{d}", f"{a}*{b}+{c}*{e}:", pad + result + END, final=result + END,
                digits=_result_positions(len(pad), result), axis=axis)


def icl(draws: Draws, k: int, random_labels: bool) -> Item:
    """A fresh map from ICL_SYMBOLS lowercase symbols to two fresh uppercase labels (two symbols each), k shots of
    it, then a query on a symbol the shots showed (any of the map's symbols when k=0)."""
    symbols = draws.distinct(LOWER, ICL_SYMBOLS)
    labels = draws.distinct(UPPER, 2)
    label_of = {s: labels[i % 2] for i, s in enumerate(symbols)}  # symbols are in random order already
    shots = [draws.pick(symbols) for _ in range(k)]
    shown = [draws.pick(labels) if random_labels else label_of[s] for s in shots]
    query = draws.pick(shots) if k else draws.pick(symbols)
    prompt = ICL_START + "".join(f"{s}>{label}," for s, label in zip(shots, shown)) + f"{query}>"
    return Item("icl_random" if random_labels else "icl", f"k{k}", prompt, label_of[query] + END,
                choices=tuple(sorted(label + END for label in labels)), axis={"k": k})


def copy(draws: Draws, m: int) -> Item:
    s = draws.text(LOWER, m)
    return Item("copy", f"m{m}", f"|{s}|", s + END, axis={"m": m})


def fact(entity: str, value: int) -> Item:
    return Item("fact", "all", f"{entity}?", f"{value}{END}", digits=(0,))


def redefine(a: int, b: int) -> Item:
    """`a+b` after "+ means -": the redefined answer a-b against the usual a+b (a > b ≥ 1, so both differ)."""
    result = str(a - b)
    return Item("redefine", "pm", f"{REDEFINE}{a}+{b}=", result + END,
                choices=tuple(sorted((result + END, f"{a + b}{END}"))), digits=_result_positions(0, result),
                axis={"d": len(str(a)), "L": len(result)})
