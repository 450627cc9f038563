"""The task suite of a seed: its families and variants, the split of every possible item into an eval partition and
a train partition, the eval list (`build_eval`) and random training items (`Suite.train_text`).

Train/eval disjointness holds by construction: whether an item is held out for eval is a pure function of the suite
seed, the item's pool and its core (a hash), so training draws reject held-out items and eval draws keep only
them. Related formats share a pool and a core, so `123+456` is held out for add and add_cot alike (a scratchpad
item would teach the direct answer). Fact recall is the exception: its eval facts are the trained facts, since
recall is what it measures. Eval-only families (icl_random, redefine) are never drawn for training.
"""

from __future__ import annotations

import hashlib
import itertools
import zlib

import numpy as np

from . import formats
from .formats import Draws
from .items import Item

VARIANTS: dict[str, tuple[str, ...]] = {
    "add": ("d1", "d2", "d3", "d4", "d5"),
    "add_cot": ("d1", "d2", "d3", "d4", "d5"),
    "muladd": ("d1", "d2"),
    "muladd_cot": ("d1", "d2"),
    "icl": ("k0", "k1", "k2", "k4", "k8"),
    "icl_random": ("k1", "k2", "k4", "k8"),
    "copy": ("m8", "m16"),
    "fact": ("all",),
    "redefine": ("pm",),
}
TRAINABLE = ("add", "add_cot", "muladd", "muladd_cot", "icl", "copy", "fact")
POOL = {"add": "add", "add_cot": "add", "muladd": "muladd", "muladd_cot": "muladd", "icl": "icl",
        "icl_random": "icl", "copy": "copy", "fact": "fact", "redefine": "redefine"}
EVAL_SHARE = 0.2  # of every pool's items; the rest is the train partition
N_FACTS = 256
ENUMERATE_UP_TO = 100_000  # item spaces this small are listed whole for eval rather than sampled
DRAWS_PER_ITEM = 50  # sampling gives up on a variant after this many draws per item asked (its space is exhausted)
_EVAL_TAG, _FACT_TAG = 0xE7A1, 0xFAC7  # keep the eval draws and the fact table apart from other seeded streams
_CUT = int(EVAL_SHARE * 2 ** 64)
_TRAINED_POOLS = {POOL[task] for task in TRAINABLE}


def core(item: Item) -> str:
    """What identifies an item within its pool: the operands of arithmetic (shared by the direct and scratchpad
    formats), the entity of a fact, the whole text otherwise (what a model would see)."""
    if POOL[item.task] in ("add", "muladd", "fact"):
        return item.prompt[:-1]
    return item.prompt + item.answer


def _number(variant: str) -> int:
    return int(variant[1:])


class Suite:
    """The items of one suite seed: the fact table, the eval partition, eval and training draws."""

    def __init__(self, seed: int):
        self.seed = seed
        self._salt = f"{seed}|".encode()
        rng = np.random.default_rng([_FACT_TAG, seed % 2 ** 64])
        letters = formats.LOWER
        codes = rng.choice(len(letters) ** 3, N_FACTS, replace=False)
        values = rng.integers(0, 10, N_FACTS)
        self.facts = [(letters[c // 676] + letters[c // 26 % 26] + letters[c % 26], int(v))
                      for c, v in zip(codes.tolist(), values.tolist())]

    def held_out(self, item: Item) -> bool:
        """Whether item is in the eval partition: none of the facts (see above); all of redefine, whose pool is never
        trained; icl_random's items by the icl pool's hash, so no control prompt is a trained icl text."""
        if item.task == "fact":
            return False
        if POOL[item.task] not in _TRAINED_POOLS:
            return True
        return self._held_out_core(POOL[item.task], core(item))

    def _held_out_core(self, pool: str, item_core: str) -> bool:
        digest = hashlib.blake2b(self._salt + f"{pool}|{item_core}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") < _CUT

    def draw(self, task: str, variant: str, draws: Draws) -> Item:
        """A random item of task/variant from either partition."""
        if task in ("add", "add_cot"):
            d = _number(variant)
            return formats.add(formats.operand(draws, d), formats.operand(draws, d), d, cot=task == "add_cot")
        if task in ("muladd", "muladd_cot"):
            d = _number(variant)
            return formats.muladd(*(formats.operand(draws, d) for _ in range(4)), d, cot=task == "muladd_cot")
        if task in ("icl", "icl_random"):
            return formats.icl(draws, _number(variant), random_labels=task == "icl_random")
        if task == "copy":
            return formats.copy(draws, _number(variant))
        if task == "fact":
            return formats.fact(*draws.pick(self.facts))
        if task == "redefine":
            a = 2 + draws.below(98)
            return formats.redefine(a, 1 + draws.below(a - 1))
        raise ValueError(f"unknown task {task!r}")

    def train_item(self, rng: np.random.Generator | Draws, task: str | None = None) -> Item:
        """One training item from the train partition: a trainable family (unless given), then its variant,
        uniformly."""
        draws = rng if isinstance(rng, Draws) else Draws(rng, block=64)
        if task is None:
            task = TRAINABLE[draws.below(len(TRAINABLE))]
        elif task not in TRAINABLE:
            raise ValueError(f"{task!r} is not a trainable task family")
        variants = VARIANTS[task]
        variant = variants[draws.below(len(variants))]
        for _ in range(1000):  # each pool's train partition is ~80% of it: this never runs out
            item = self.draw(task, variant, draws)
            if not self.held_out(item):
                return item
        raise RuntimeError(f"no training item of {task}/{variant} in 1000 draws")

    def train_text(self, rng: np.random.Generator | Draws) -> str:
        """One training example, prompt and answer."""
        item = self.train_item(rng)
        return item.prompt + item.answer

    def eval_variant(self, task: str, variant: str, count: int) -> list[Item]:
        """Up to `count` distinct held-out items of task/variant, in a seed-determined order; all of them when the
        eval partition has fewer."""
        key = zlib.crc32(f"{task}/{variant}".encode())
        draws = Draws(np.random.default_rng([_EVAL_TAG, self.seed % 2 ** 64, key]))
        if task == "fact":
            return [formats.fact(*f) for f in draws.shuffled(self.facts)[:count]]
        listed = self._listed(task, variant)
        if listed is not None:
            return draws.shuffled(listed)[:count]
        seen, out = set(), []
        for _ in range(DRAWS_PER_ITEM * count):
            item = self.draw(task, variant, draws)
            if (item.prompt, item.answer, item.choices) not in seen and self.held_out(item):
                seen.add((item.prompt, item.answer, item.choices))
                out.append(item)
                if len(out) == count:
                    break
        return out

    def _listed(self, task: str, variant: str) -> list[Item] | None:
        """Every held-out item of an arithmetic variant whose space is small enough to list (add d1, d2, muladd d1),
        in a fixed order."""
        if task not in ("add", "add_cot", "muladd", "muladd_cot"):
            return None
        d, arity = _number(variant), 2 if task in ("add", "add_cot") else 4
        span = formats.operands(d)
        if len(span) ** arity > ENUMERATE_UP_TO:
            return None
        cot = task.endswith("_cot")
        if arity == 2:  # the core is checked before the item is made: most of the space is not held out
            return [formats.add(a, b, d, cot) for a, b in itertools.product(span, repeat=2)
                    if self._held_out_core("add", f"{a}+{b}")]
        return [formats.muladd(a, b, c, e, d, cot) for a, b, c, e in itertools.product(span, repeat=4)
                if self._held_out_core("muladd", f"{a}*{b}+{c}*{e}")]

    def eval_items(self, items_per_variant: int = 500) -> list[Item]:
        return [item for task, variants in VARIANTS.items() for variant in variants
                for item in self.eval_variant(task, variant, items_per_variant)]


def build_eval(seed: int, items_per_variant: int = 500) -> list[Item]:
    """The suite's eval items, variant after variant: the same list for the same arguments."""
    return Suite(seed).eval_items(items_per_variant)


def chance(items: list[Item]) -> dict[str, float]:
    """What guessing scores on these items (one variant's): multiple choice, one choice at random; otherwise each
    result symbol guessed uniformly (a digit 1/10, a letter 1/26) with the answer's length known. `exact` is the
    whole answer's for direct formats; scratchpad formats get `exact_final` (their result's) instead."""
    if not items:
        return {}
    if items[0].choices:
        p = float(np.mean([1 / len(item.choices) for item in items]))
        return {"mc_acc": p, "exact": p}
    exact, per_symbol = [], []
    for item in items:
        positions = item.digits or range(len(item.answer) - 1)
        probs = [0.1 if item.answer[i].isdigit() else 1 / 26 for i in positions]
        exact.append(float(np.prod(probs)))
        per_symbol.append(float(np.mean(probs)))
    name = "exact_final" if items[0].final else "exact"
    return {name: float(np.mean(exact)), "digit_acc": float(np.mean(per_symbol))}
