"""The pure numerics of task scoring: Wilson intervals, edit distance, the scratchpad's final-answer match, the
multiple-choice Brier score, chance levels, and the ICL score's position bands. No model here (score.py runs it).

Task text is one symbol per token, so everything here works on text: a character is a token.
"""

from __future__ import annotations

import math

import numpy as np

from ..stats import Z95
from .. import stats
from .items import END, Item, TaskError

# Olsson et al. 2022 ("In-context Learning and Induction Heads"): loss at the 500th token minus at the 50th, in a
# 512-token context. We keep the two positions' fractions of the context and average a band around each.
OLSSON_EARLY, OLSSON_LATE, OLSSON_CONTEXT = 50, 500, 512


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for k successes in n trials. n=0 → (nan, nan): no evidence, no interval (the
    scorer never reports a metric over zero items, so a nan here means a caller bug, and it stays visible)."""
    lo, hi = stats.wilson(k / n if n else np.nan, n, z)
    return float(lo), float(hi)


def contains(interval: tuple[float, float], value: float) -> bool:
    return interval[0] <= value <= interval[1]


def edit_distance(a, b) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1) between two sequences."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def cut_at_end(text: str) -> str:
    """A completion up to and including its first END (the whole text if it never stops)."""
    i = text.find(END)
    return text if i < 0 else text[: i + 1]


def final_matches(completion: str, item: Item) -> bool:
    """exact_final: the completion (cut at its first END) states the item's result. The symbol just before `final`
    in the answer is the scratchpad's separator ('>' in add_cot, '=' in muladd_cot); the completion must end with
    that separator followed by exactly `final`, or be exactly `final` (a model that skips the scratchpad). Whatever
    the scratchpad before the separator says is not judged here (exact judges it)."""
    if not item.answer.endswith(item.final) or not item.final.endswith(END):
        raise TaskError(f"{item.key}: final {item.final!r} must end the answer {item.answer!r} and end with {END!r}")
    completion = cut_at_end(completion)
    tail = item.answer[-len(item.final) - 1:]  # separator + final (just final when final is the whole answer)
    return completion == item.final or completion.endswith(tail)


def scored_positions(item: Item) -> tuple[int, ...]:
    """digit_acc's positions in the answer: the item's result digits, else every position but the closing END."""
    return item.digits or tuple(range(len(item.answer) - 1))


def position_hits(completion: str, item: Item) -> list[bool]:
    """Per scored position, whether the completion has the answer's symbol there (a completion too short misses)."""
    return [i < len(completion) and completion[i] == item.answer[i] for i in scored_positions(item)]


def symbol_chance(symbol: str) -> float:
    """A guesser that knows the format: a digit is 1 in 10, a letter 1 in 26 (per case), and the format's own
    symbols (operators, separators, END) are certain."""
    if symbol.isdigit():
        return 0.1
    if symbol.isalpha():
        return 1 / 26
    return 1.0


def text_chance(text: str) -> float:
    return math.prod(symbol_chance(s) for s in text)


def exact_chance(item: Item) -> float:
    """Chance of an exact match: 1/len(choices) for multiple choice; else guessing every digit and letter of the
    answer (10^-digits for arithmetic answers), with its format symbols and END certain."""
    return 1 / len(item.choices) if item.choices else text_chance(item.answer)


def digit_chance(item: Item) -> float:
    """digit_acc's chance: the mean, over the scored positions, of guessing that position's symbol."""
    positions = scored_positions(item)
    return sum(symbol_chance(item.answer[i]) for i in positions) / max(1, len(positions))


def brier(choice_nll: np.ndarray, correct: int) -> float:
    """The multiclass Brier score: the choices' probabilities renormalised over the choices (softmax of minus their
    total NLLs) against the one-hot correct choice; 0 is perfect, 1 - 1/K is the uniform guess, 2 the worst."""
    logp = -np.asarray(choice_nll, np.float64)
    prob = np.exp(logp - logp.max())
    prob /= prob.sum()
    onehot = np.zeros_like(prob)
    onehot[correct] = 1.0
    return float(((prob - onehot) ** 2).sum())


def icl_bands(t: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The ICL score's early and late bands for a context of t tokens, as inclusive 0-based positions of the
    per-position loss (position i predicts the window's token i+1, having seen i+1 tokens): Olsson et al.'s 50th and
    500th token of 512 scaled to t, each averaged over ±max(1, t//64) positions (t=256: [21, 29] and [246, 254]): at
    the demo's 128-token context and 256 held-out windows a band then averages ~1,300 token losses."""
    half = max(1, t // 64)

    def band(numerator: int) -> tuple[int, int]:
        center = round(t * numerator / OLSSON_CONTEXT)
        lo, hi = max(0, center - half), min(t - 1, center + half)
        return lo, max(lo, hi)

    return band(OLSSON_EARLY), band(OLSSON_LATE)
