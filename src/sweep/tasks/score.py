"""Scoring a model on task items: exact match and continuous metrics side by side, per task/variant, in the shape
of tasks.json's `variants` block (notes/tasks_contract.md), plus the ICL curve on natural text and the induction
ratio on copy items for its `icl` block. The numerics without a model are in metrics.py.

Two kinds of forward passes, both batched and right-padded (causal attention: padding after a position never
changes it, and every row starts at position 0 as in training):
- teacher forced, one pass over prompt+answer (and over prompt+choice per multiple-choice choice): the answer's
  token NLLs and whether each argmax is the right token;
- greedy decoding, the answer's length + GREEDY_MARGIN tokens, each row reading its own last position and stopping
  at END; the full forward is recomputed each step (no KV cache at these sizes).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from . import metrics
from .items import END, Item, SymbolCodec, TaskError

GREEDY_MARGIN = 4  # tokens decoded past the answer's length, so a too-long answer is seen as one (edit distance)
LOGIT_BUDGET = 2**25  # logits (rows × positions × vocab) held per forward: ~128 MB in fp32
COPY_TASK = "copy"


@dataclass
class ItemOutcome:
    """What the forward passes measured on one item."""
    answer_nll: np.ndarray  # per answer token (END included), teacher forced, nats
    answer_hit: np.ndarray  # per answer token: the teacher-forced argmax is that token
    completion: str | None  # the greedy answer, cut after its first END (None: not decoded)
    choice_nll: np.ndarray | None = None  # multiple choice: each choice's total NLL given the prompt
    copy_nll: tuple[float, float, int] | None = None  # copy: (sum NLL of 1st copy, of 2nd copy, tokens per copy)


def score(model, items: list[Item], codec: SymbolCodec, device="cpu", batch: int = 256,
          autocast: Callable | None = None, decode: bool = True) -> dict[str, dict]:
    """The tasks.json `variants` block for these items, keyed "task/variant" (metric definitions in summarize).
    decode=False leaves out the metrics of the greedy text (digit_acc, edit_distance, exact_final): one forward
    pass per item, what the intermediate evals afford."""
    return summarize(items, evaluate_items(model, items, codec, device, batch, autocast, decode))


def evaluate_items(model, items: list[Item], codec: SymbolCodec, device="cpu", batch: int = 256,
                   autocast: Callable | None = None, decode: bool = True) -> list[ItemOutcome]:
    """Per item: teacher-forced answer NLLs and argmax hits, the greedy completion (decode=False: none, for the
    cheap intermediate evals), choice NLLs, copy NLLs.

    Greedy decoding starts where teacher forcing already knows the answer: up to the first wrong argmax the greedy
    completion is the answer itself, and that argmax is its next token (the greedy identity), so only the items that
    went wrong and did not stop there are decoded, from that point on."""
    limit = _context_limit(model)
    end = codec.ids[END]
    prompts = [codec.encode(it.prompt) for it in items]
    answers = [codec.encode(it.answer) for it in items]
    # Teacher-forced sequences: the answer's, then each choice's (the answer among them is scored twice; cheap).
    sequences = []
    for item, prompt, answer in zip(items, prompts, answers):
        for target in (answer, *(codec.encode(c) for c in item.choices)):
            sequences.append(np.concatenate([prompt, target]))
            _check_fits(item, len(prompt), len(target), limit)
    with _scoring(model, autocast):
        forced = _teacher_forced(model, sequences, device, batch)
        known, pending = [], []
        cursor = 0
        for i, (item, prompt, answer) in enumerate(zip(items, prompts, answers)):
            p = len(prompt)
            hits, best = forced[cursor][1][p - 1:], forced[cursor][2][p - 1:]
            wrong = np.flatnonzero(~hits)
            # greedy so far: the answer up to its first miss, then the argmax there
            known.append(answer if not len(wrong) else np.append(answer[:wrong[0]], best[wrong[0]]))
            if decode and len(wrong) and best[wrong[0]] != end:
                pending.append(i)
            cursor += 1 + len(item.choices)
        if decode and pending:
            starts = [np.concatenate([prompts[i], known[i]]) for i in pending]
            budget = [len(items[i].answer) + GREEDY_MARGIN - len(known[i]) for i in pending]
            if limit is not None:
                budget = [min(b, limit - len(s) + 1) for b, s in zip(budget, starts)]
            for i, more in zip(pending, _decode(model, starts, budget, end, device, batch)):
                known[i] = np.concatenate([known[i], more])
    outcomes, cursor = [], 0
    for item, prompt, greedy in zip(items, prompts, known):
        nll, hit = forced[cursor][:2]
        p = len(prompt)
        # Output position j predicts token j+1: the answer's tokens p.. are predicted at p-1..
        completion = metrics.cut_at_end(codec.decode(greedy)) if decode else None
        outcome = ItemOutcome(nll[p - 1:].astype(np.float64), hit[p - 1:], completion)
        if item.choices:
            outcome.choice_nll = np.array([forced[cursor + 1 + k][0][p - 1:].sum() for k in range(len(item.choices))])
        if item.task == COPY_TASK:
            outcome.copy_nll = _copy_nll(item, nll)
        outcomes.append(outcome)
        cursor += 1 + len(item.choices)
    return outcomes


def summarize(items: list[Item], outcomes: list[ItemOutcome]) -> dict[str, dict]:
    """Per task/variant, every metric defined for its items (the contract: notes/tasks_contract.md):
    exact (+ci): the greedy completion is the answer, END included; nll: answer NLL per token, pooled over the
    variant's answer tokens; p_seq: mean over items of the answer's probability; digit_acc (+ci): pooled over the
    scored positions (metrics.scored_positions) of the greedy completion; edit_distance: mean token Levenshtein
    distance between completion and answer; exact_final (+ci): metrics.final_matches; mc_acc (+ci): the choice with
    the lowest total NLL is the answer; brier: metrics.brier; induction_ratio: copy items' 2nd-copy NLL over their
    1st-copy NLL, pooled. chance/at_chance for each metric with an interval (at_chance: the interval holds chance)."""
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(item.key, []).append(i)
    return {key: _variant(items, outcomes, index) for key, index in groups.items()}


def _variant(items: list[Item], outcomes: list[ItemOutcome], index: list[int]) -> dict:
    its, outs = [items[i] for i in index], [outcomes[i] for i in index]  # this variant's items and outcomes
    axis_keys = sorted({k for it in its for k in it.axis})
    block = {"task": its[0].task, "variant": its[0].variant,
             "axis": {k: float(np.mean([it.axis[k] for it in its if k in it.axis])) for k in axis_keys}, "n": len(its),
             "answer_tokens": float(np.mean([len(it.answer) for it in its]))}  # END included: L of p̄^L
    chance, rates = {}, {}

    def rate(name: str, hits: list[bool], chance_level: float) -> None:
        k = int(sum(hits))
        block[name], block[f"{name}_ci"] = k / len(hits), list(metrics.wilson(k, len(hits)))
        chance[name], rates[name] = chance_level, block[f"{name}_ci"]

    # the greedy completion is the answer exactly when every teacher-forced argmax is right (the greedy identity)
    rate("exact", [bool(o.answer_hit.all()) for o in outs], float(np.mean([metrics.exact_chance(it) for it in its])))
    block["nll"] = float(sum(o.answer_nll.sum() for o in outs) / sum(len(o.answer_nll) for o in outs))
    block["p_seq"] = float(np.mean([np.exp(-o.answer_nll.sum()) for o in outs]))
    decoded = all(o.completion is not None for o in outs)  # else the metrics of the greedy text are left out
    positions = [metrics.position_hits(o.completion, it) for it, o in zip(its, outs)] if decoded else []
    if any(positions):
        rate("digit_acc", [h for hits in positions for h in hits],
             float(np.average([metrics.digit_chance(it) for it in its], weights=[len(h) for h in positions])))
    if decoded:
        block["edit_distance"] = float(np.mean([metrics.edit_distance(o.completion, it.answer)
                                                for it, o in zip(its, outs)]))
    scratch = [(it, o) for it, o in zip(its, outs) if it.final] if decoded else []
    if scratch:
        rate("exact_final", [metrics.final_matches(o.completion, it) for it, o in scratch],
             float(np.mean([metrics.text_chance(it.final) for it, _ in scratch])))
    multiple = [(it, o) for it, o in zip(its, outs) if it.choices]
    if multiple:
        rate("mc_acc", [int(np.argmin(o.choice_nll)) == it.choices.index(it.answer) for it, o in multiple],
             float(np.mean([1 / len(it.choices) for it, _ in multiple])))
        briers = [metrics.brier(o.choice_nll, it.choices.index(it.answer)) for it, o in multiple]
        block["brier"] = float(np.mean(briers))
        chance["brier"] = float(np.mean([1 - 1 / len(it.choices) for it, _ in multiple]))  # the uniform guess
    block["items"] = _per_item(its, outs, positions, decoded, multiple)
    copies = [o.copy_nll for o in outs if o.copy_nll is not None]
    if copies:
        first, second, tokens = (sum(c[j] for c in copies) for j in range(3))
        block.update(induction_ratio=second / first, copy_nll_first=first / tokens, copy_nll_second=second / tokens,
                     copy_tokens=tokens)
    block["chance"] = chance
    block["at_chance"] = {name: metrics.contains(ci, chance[name]) for name, ci in rates.items()}
    return block


def _round(values) -> list:
    return [float(f"{v:.6g}") for v in values]


def _per_item(its: list[Item], outs: list[ItemOutcome], positions: list[list[bool]], decoded: bool,
              multiple: list) -> dict[str, list]:
    """The variant's outcomes item by item, in item order, from which every metric above is a (ratio of) sum(s):
    what the analysis resamples (items within a seed) for its intervals. Answer NLL summed per item with its
    tokens, p_seq, exact; with decoding, digit hits of the scored positions and their count, edit distance and
    (scratchpad) exact_final; multiple choice's hit and Brier; copy's 1st- and 2nd-copy NLL sums."""
    out = {"exact": [int(o.answer_hit.all()) for o in outs], "nll_sum": _round(o.answer_nll.sum() for o in outs),
           "tokens": [len(o.answer_nll) for o in outs], "p_seq": _round(np.exp(-o.answer_nll.sum()) for o in outs)}
    if decoded:
        out["digit_hits"], out["digit_n"] = [sum(h) for h in positions], [len(h) for h in positions]
        out["edit_distance"] = [metrics.edit_distance(o.completion, it.answer) for it, o in zip(its, outs)]
        if its[0].final:
            out["exact_final"] = [int(metrics.final_matches(o.completion, it)) for it, o in zip(its, outs)]
    if multiple and len(multiple) == len(its):
        out["mc_acc"] = [int(int(np.argmin(o.choice_nll)) == it.choices.index(it.answer)) for it, o in multiple]
        out["brier"] = _round(metrics.brier(o.choice_nll, it.choices.index(it.answer)) for it, o in multiple)
    if all(o.copy_nll is not None for o in outs):
        out["copy_first"], out["copy_second"] = (_round(o.copy_nll[j] for o in outs) for j in (0, 1))
    return out


def induction_ratio(variants: dict[str, dict]) -> float | None:
    """The icl block's induction ratio: score()'s copy variants pooled over all their items (2nd-copy NLL summed over
    1st-copy NLL summed); None without copy items."""
    copies = [v for v in variants.values() if "copy_tokens" in v]
    if not copies:
        return None
    first = sum(v["copy_nll_first"] * v["copy_tokens"] for v in copies)
    return sum(v["copy_nll_second"] * v["copy_tokens"] for v in copies) / first


def sample_exact(model, items: list[Item], codec: SymbolCodec, n_samples: int, generator: torch.Generator,
                 device="cpu", batch: int = 256, autocast: Callable | None = None) -> np.ndarray:
    """Per item, the share of n_samples temperature-1 samples that are exactly the answer: an unbiased estimate of
    the answer's probability (p_seq), which is what makes p_seq the smooth version of exact match."""
    limit = _context_limit(model)
    prompts = [codec.encode(it.prompt) for it in items for _ in range(n_samples)]
    for it, p in zip(items, prompts[::n_samples]):
        _check_fits(it, len(p), len(it.answer), limit)
    lengths = [len(it.answer) for it in items for _ in range(n_samples)]
    with _scoring(model, autocast):
        out = _decode(model, prompts, lengths, codec.ids[END], device, batch, generator)
    answers = [it.answer for it in items for _ in range(n_samples)]
    hits = np.array([codec.decode(o) == a for o, a in zip(out, answers)])
    return hits.reshape(len(items), n_samples).mean(axis=1)


def icl_curve(model, windows: torch.Tensor, device="cpu", batch: int = 64, autocast: Callable | None = None) -> dict:
    """Per-position loss on held-out windows of T+1 tokens (data.batches.val_windows) and the ICL score: mean loss
    over the late band minus over the early band (metrics.icl_bands; negative = the model uses its context)."""
    t = windows.shape[1] - 1
    limit = _context_limit(model)
    if limit is not None and t > limit:
        raise TaskError(f"ICL windows of {t} + 1 tokens exceed the model's context of {limit}")
    early, late = metrics.icl_bands(t)
    total = torch.zeros(t, dtype=torch.float64)
    per_window = []
    with _scoring(model, autocast):
        for start in range(0, len(windows), batch):
            chunk = windows[start: start + batch].to(device)
            logits = model(chunk[:, :-1])[0].float()
            nll = F.cross_entropy(logits.transpose(1, 2), chunk[:, 1:], reduction="none").double().cpu()
            total += nll.sum(0)
            per_window += (nll[:, late[0]: late[1] + 1].mean(1) - nll[:, early[0]: early[1] + 1].mean(1)).tolist()
    loss = (total / len(windows)).tolist()
    band_loss = [float(np.mean(loss[lo: hi + 1])) for lo, hi in (early, late)]
    # per window: its late band's mean loss minus its early band's; their mean is the ICL score (bands of equal
    # width in every window), what the analysis resamples for its interval
    return {"icl_score": band_loss[1] - band_loss[0], "early": list(early), "late": list(late),
            "per_position_loss": loss, "n_windows": len(windows), "per_window_score": _round(per_window)}


# ------------------------------------------------------------------------------------------------ forward passes
@contextlib.contextmanager
def _scoring(model, autocast: Callable | None):
    """Eval mode and no gradients (under the run's autocast if given), the model's training mode restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), (autocast() if autocast is not None else contextlib.nullcontext()):
            yield
    finally:
        model.train(was_training)


def _context_limit(model) -> int | None:
    """The model's context (its learned positional embeddings); None for a model without them (test stubs)."""
    wpe = getattr(model, "wpe", None)
    return getattr(wpe, "num_embeddings", None)


def _check_fits(item: Item, prompt_len: int, answer_len: int, limit: int | None) -> None:
    if prompt_len == 0:
        raise TaskError(f"{item.key}: an item needs a non-empty prompt (nothing predicts its answer's first token)")
    # Teacher forcing feeds prompt + answer without its last token; greedy decoding reaches the same length.
    if limit is not None and prompt_len + answer_len - 1 > limit:
        raise TaskError(f"{item.key}: prompt ({prompt_len}) + answer ({answer_len}) tokens exceed the model's "
                        f"context of {limit} (+1): item {item.prompt + item.answer!r}; use shorter items or a longer "
                        f"model.seq_len")


def _vocab(model) -> int:
    head = getattr(model, "lm_head", None)
    return getattr(head, "out_features", 1)


def _chunks(lengths: list[int], batch: int, vocab: int) -> list[list[int]]:
    """Indices grouped by similar length (less padding), each group within batch rows and the logit budget."""
    out, current = [], []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if current and (len(current) >= batch or (len(current) + 1) * lengths[i] * vocab > LOGIT_BUDGET):
            out.append(current)
            current = []
        current.append(i)
    return out + [current] if current else out


def _teacher_forced(model, sequences: list[np.ndarray], device, batch: int) -> list[tuple]:
    """Per sequence of L tokens: the L-1 next-token NLLs, argmax hits and argmax tokens (position j predicts
    token j+1)."""
    results: list = [None] * len(sequences)
    for index in _chunks([len(s) for s in sequences], batch, _vocab(model)):
        width = max(len(sequences[i]) for i in index)
        tokens = torch.zeros(len(index), width, dtype=torch.long)
        for row, i in enumerate(index):
            tokens[row, : len(sequences[i])] = torch.from_numpy(sequences[i])
        tokens = tokens.to(device)
        logits = model(tokens[:, :-1])[0].float()
        nll = F.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], reduction="none").cpu().numpy()
        best = logits.argmax(-1)
        hit = (best == tokens[:, 1:]).cpu().numpy()
        best = best.cpu().numpy()
        for row, i in enumerate(index):
            n = len(sequences[i]) - 1
            results[i] = (nll[row, :n], hit[row, :n], best[row, :n])
    return results


def _decode(model, prompts: list[np.ndarray], max_new: list[int], end: int, device, batch: int,
            generator: torch.Generator | None = None) -> list[np.ndarray]:
    """Per prompt, up to max_new tokens, stopping after END: greedy, or sampled at temperature 1 with a generator.
    Each row reads the logits at its own last position, so prompts of any lengths share a batch."""
    results: list = [None] * len(prompts)
    totals = [len(p) + m for p, m in zip(prompts, max_new)]
    for index in _chunks(totals, batch, _vocab(model)):
        rows = len(index)
        tokens = torch.zeros(rows, max(totals[i] for i in index), dtype=torch.long)
        for row, i in enumerate(index):
            tokens[row, : len(prompts[i])] = torch.from_numpy(prompts[i])
        tokens = tokens.to(device)
        start = torch.tensor([len(prompts[i]) for i in index], device=device)
        budget = torch.tensor([max_new[i] for i in index], device=device)
        length, done = start.clone(), budget <= 0
        arange = torch.arange(rows, device=device)
        while not done.all():
            live = arange[~done]  # finished rows leave the batch: no forward over them
            logits = model(tokens[live, : int(length[live].max())])[0]
            logits = logits[torch.arange(len(live), device=device), length[live] - 1].float()
            if generator is None:
                nxt = logits.argmax(-1)
            else:
                probs = logits.softmax(-1).cpu()
                nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(device)
            tokens[live, length[live]] = nxt
            length[live] += 1
            done[live] = (nxt == end) | (length[live] - start[live] >= budget[live])
        for row, i in enumerate(index):
            results[i] = tokens[row, start[row]: length[row]].cpu().numpy()
    return results


def _copy_nll(item: Item, nll: np.ndarray) -> tuple[float, float, int]:
    """(sum NLL over the prompt's copy of the string, over the answer's copy, its length): the string is the answer
    without END, found at its last place in the prompt; the first copy is unpredictable, the second is induction."""
    s = item.answer[:-1]
    at = item.prompt.rfind(s)
    if not s or at < 1:
        raise TaskError(f"{item.key}: a copy item's prompt must contain its answer {s!r} after at least one symbol")
    p = len(item.prompt)
    return float(nll[at - 1: at - 1 + len(s)].sum()), float(nll[p - 1: p - 1 + len(s)].sum()), len(s)
