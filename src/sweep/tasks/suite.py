"""The task suite of a seed: its families and variants, the split of every possible item into an eval partition and
a train partition by canonical form, the eval list (`build_eval`), random training items (`Suite.train_text`) drawn
by tasks.weights, and the check of a suite config before any work (`check_suite`).

Held out by canonical form: an item's canonical form is what a model could recall it by, so every twin of an item
has the same one: a sum is its operand multiset, whatever the order (`b+a` is `a+b`), and its digit-reversed twin
(`21+43` beside `12+34`: the scratchpad reads digits from the right); a muladd is the multiset of its products'
operand multisets, likewise reversed; an ICL item is its question (the query symbol and its label), whatever shots
stand before it; a copy item its string. Whether a form is held out is a pure function of the suite seed, the
pool and the form (a hash under tasks.eval_share), so eval draws keep an item only when its form is held out and
training draws refuse an item when any form it shows is (an ICL text's every shot too, so an eval question is never
even a trained shot). Related formats share a pool, so `123+456` is held out for add and add_cot alike (a scratchpad
item would teach the direct answer). The memorisation controls (`_seen` variants of add d1, d2 and muladd d1) are
the opposite: items of the train partition, each of which the mix trains on many times at these item spaces, so the
report shows recall and generalisation apart. Fact recall is recall by definition: its eval facts are the trained
facts. Eval-only families (icl_random, redefine) are never drawn for training.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import itertools
import re
import zlib

import numpy as np

from . import formats
from .formats import Draws
from ..config.schema import TasksConfig
from .items import Item, TaskError

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
SEEN = "_seen"  # a memorisation control's variant suffix: add/d2_seen are add d2 items of the train partition
SEEN_CONTROLS = {"add": ("d1", "d2"), "muladd": ("d1",)}  # item spaces the mix covers many times over
EVAL_VARIANTS = {task: variants + tuple(v + SEEN for v in SEEN_CONTROLS.get(task, ())) for task, variants in
                 VARIANTS.items()}
MIN_HELD_OUT = 10  # eval items a listed variant needs at least, and seen items its control needs
N_FACTS = 256
ENUMERATE_UP_TO = 100_000  # item spaces this small are listed whole for eval rather than sampled
DRAWS_PER_ITEM = 50  # sampling gives up on a variant after this many draws per item asked (its space is exhausted)
_EVAL_TAG, _FACT_TAG = 0xE7A1, 0xFAC7  # keep the eval draws and the fact table apart from other seeded streams
_TRAINED_POOLS = {POOL[task] for task in TRAINABLE}
_ICL_PAIR = re.compile(r"([a-z])>([A-Z]),")


def _multiset(parts) -> str:
    return "+".join(sorted(parts))


def add_form(a: str, b: str) -> str:
    """A sum's canonical form: its operand multiset, or its digit-reversed twin's when that sorts first."""
    return min(_multiset((a, b)), _multiset((a[::-1], b[::-1])))


def muladd_form(a: str, b: str, c: str, e: str) -> str:
    """a*b+c*e's canonical form: the multiset of its products' operand multisets, or its digit-reversed twin's."""
    def products(x: tuple[str, ...]) -> str:
        return _multiset("*".join(sorted(pair)) for pair in (x[:2], x[2:]))
    return min(products((a, b, c, e)), products(tuple(x[::-1] for x in (a, b, c, e))))


def forms(item: Item) -> tuple[str, ...]:
    """The canonical forms an item shows, its question's first: what an eval item is held out by, and (all of them)
    what a training item must not show."""
    pool = POOL[item.task]
    expression = item.prompt[:-1]
    if pool == "add":
        return (add_form(*expression.split("+")),)
    if pool == "muladd":
        return (muladd_form(*re.split(r"[*+]", expression)),)
    if pool == "icl":
        question = f"{item.prompt[-2]}>{item.answer[0]}"
        shots = {f"{symbol}>{label}" for symbol, label in _ICL_PAIR.findall(item.prompt)}
        return (question, *sorted(shots - {question}))
    if pool == "copy":
        return (item.answer[:-1],)
    if pool == "fact":
        return (expression,)
    return (item.prompt + item.answer,)


def core(item: Item) -> str:
    """An item's canonical form (its question's): twins share it."""
    return forms(item)[0]


def _number(variant: str) -> int:
    return int(variant[1:])


class Suite:
    """The items of one suite seed: the fact table, the eval partition, eval and training draws."""

    def __init__(self, seed: int, eval_share: float = 0.2, weights: dict[str, float] | None = None):
        self.seed, self.eval_share = seed, eval_share
        self._salt = f"{seed}|".encode()
        self._cut = int(eval_share * 2 ** 64)
        weights = {task: 1.0 for task in TRAINABLE} if weights is None else weights
        self.trained = [task for task in TRAINABLE if weights.get(task, 0) > 0]
        self._cumulative = list(itertools.accumulate(float(weights[task]) for task in self.trained))
        rng = np.random.default_rng([_FACT_TAG, seed % 2 ** 64])
        letters = formats.LOWER
        codes = rng.choice(len(letters) ** 3, N_FACTS, replace=False)
        values = rng.integers(0, 10, N_FACTS)
        self.facts = [(letters[c // 676] + letters[c // 26 % 26] + letters[c % 26], int(v))
                      for c, v in zip(codes.tolist(), values.tolist())]

    def held_out(self, item: Item) -> bool:
        """Whether item is in the eval partition (its question's form is held out): none of the facts (see above);
        all of redefine, whose pool is never trained; icl_random's items by the icl pool's forms, so no control
        question is a trained icl question."""
        if item.task == "fact":
            return False
        if POOL[item.task] not in _TRAINED_POOLS:
            return True
        return self._held_out_form(POOL[item.task], core(item))

    def trainable(self, item: Item) -> bool:
        """Whether a training draw may keep item: no form it shows is held out (facts: always)."""
        pool = POOL[item.task]
        return item.task == "fact" or not any(self._held_out_form(pool, f) for f in forms(item))

    def _held_out_form(self, pool: str, form: str) -> bool:
        digest = hashlib.blake2b(self._salt + f"{pool}|{form}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") < self._cut

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
        if task is None:  # by tasks.weights (uniform weights: one draw below len(TRAINABLE), as before weights)
            task = self.trained[min(bisect.bisect_right(self._cumulative, draws.below(2 ** 52) / 2 ** 52
                                                        * self._cumulative[-1]), len(self.trained) - 1)]
        elif task not in TRAINABLE:
            raise ValueError(f"{task!r} is not a trainable task family")
        variants = VARIANTS[task]
        variant = variants[draws.below(len(variants))]
        for _ in range(1000):  # check_suite keeps every train partition large: this never runs out
            item = self.draw(task, variant, draws)
            if self.trainable(item):
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
        if variant.endswith(SEEN):  # a memorisation control: the train partition's items, under its own name
            return [dataclasses.replace(item, variant=variant)
                    for item in draws.shuffled(self._listed(task, variant.removesuffix(SEEN), held=False))[:count]]
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

    def _listed(self, task: str, variant: str, held: bool = True) -> list[Item] | None:
        """Every item of an arithmetic variant whose space is small enough to list (add d1, d2, muladd d1) in the
        eval partition (held) or the train partition, in a fixed order."""
        if task not in ("add", "add_cot", "muladd", "muladd_cot"):
            return None
        d, arity = _number(variant), 2 if task in ("add", "add_cot") else 4
        span = formats.operands(d)
        if len(span) ** arity > ENUMERATE_UP_TO:
            return None
        cot = task.endswith("_cot")
        # the form is checked before the item is made: most of the space is in the other partition
        if arity == 2:
            return [formats.add(a, b, d, cot) for a, b in itertools.product(span, repeat=2)
                    if self._held_out_form("add", add_form(str(a), str(b))) == held]
        return [formats.muladd(a, b, c, e, d, cot) for a, b, c, e in itertools.product(span, repeat=4)
                if self._held_out_form("muladd", muladd_form(str(a), str(b), str(c), str(e))) == held]

    def eval_items(self, items_per_variant: int = 500) -> list[Item]:
        return [item for task, variants in EVAL_VARIANTS.items() for variant in variants
                for item in self.eval_variant(task, variant, items_per_variant)]


def suite_of(cfg: TasksConfig) -> Suite:
    """The suite a run's tasks config describes."""
    return Suite(cfg.seed, cfg.eval_share, dict(cfg.weights))


def build_eval(seed: int, items_per_variant: int = 500, eval_share: float = 0.2) -> list[Item]:
    """The suite's eval items, variant after variant: the same list for the same arguments."""
    return Suite(seed, eval_share).eval_items(items_per_variant)


def check_suite(cfg: TasksConfig) -> None:
    """A suite config's checks before any work: tasks.weights names trainable families with non-negative weights,
    some positive when tasks are mixed in; every listed variant keeps at least MIN_HELD_OUT items in its eval
    partition and (its memorisation control) in its train partition. TaskError with the numbers otherwise."""
    weights = dict(cfg.weights)
    unknown = sorted(set(weights) - set(TRAINABLE))
    if unknown:
        raise TaskError(f"tasks.weights names {', '.join(map(repr, unknown))}, not a trainable task family; "
                        f"trainable: {', '.join(TRAINABLE)}")
    bad = [f"{k}={v!r}" for k, v in weights.items()
           if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or v == float("inf")]
    if bad:
        raise TaskError(f"tasks.weights: {', '.join(bad)}; a weight is a finite number ≥ 0 (0: not trained)")
    if cfg.mix > 0 and not any(v > 0 for v in weights.values()):
        raise TaskError(f"tasks.mix={cfg.mix} mixes tasks in, but every tasks.weights entry is 0; give a family a "
                        f"positive weight or set tasks.mix=0")
    if isinstance(cfg.eval_share, bool) or not isinstance(cfg.eval_share, (int, float)) \
            or not 0 < cfg.eval_share < 1:
        raise TaskError(f"tasks.eval_share={cfg.eval_share!r} must be a fraction in (0, 1): the share of canonical "
                        f"forms held out for eval")
    suite = Suite(cfg.seed, cfg.eval_share)
    for task in ("add", "muladd"):
        for variant in VARIANTS[task]:
            held, seen = suite._listed(task, variant), suite._listed(task, variant, held=False)
            if held is None:
                continue  # a space too large to list: sampling finds held-out items at any share
            if len(held) < MIN_HELD_OUT or len(seen) < MIN_HELD_OUT:
                short = "eval" if len(held) < MIN_HELD_OUT else "train"
                raise TaskError(
                    f"{task}/{variant} has {len(held) + len(seen)} items; tasks.eval_share={cfg.eval_share} holds "
                    f"{len(held)} out for eval and leaves {len(seen)} to train: its {short} partition has fewer "
                    f"than the {MIN_HELD_OUT} a variant needs (twins share a canonical form, so a small space has "
                    f"few forms); {'raise' if short == 'eval' else 'lower'} tasks.eval_share")


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
