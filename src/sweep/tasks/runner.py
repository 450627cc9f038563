"""The task suite as one training run (or `sweep evaluate`) uses it: the suite's eval items prepared once per sweep
cache and checked against the run's tokenizer and context before any work, the rows that tasks.mix puts into
training, and one scoring of a model (every task variant, the ICL score and the induction ratio) as tasks.json's
content and as a `task` event for metrics.jsonl."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import torch

from ..config.schema import TasksConfig, tasks_enabled
from ..data.batches import spread
from ..data.tokenizer import load_tokenizer
from .build import load_items, prepare
from .items import FORMAT, SymbolCodec, TaskError
from .mix import TaskRows
from .score import icl_curve, induction_ratio, score
from .suite import suite_of

EVENT_METRICS = ("n", "exact", "exact_final", "nll", "p_seq", "digit_acc", "edit_distance", "mc_acc", "brier",
                 "induction_ratio")


class RunTasks:
    """One run's view of the suite. Raises TaskError (naming the fix) for a tokenizer without one token per task
    symbol or a context too short for the longest item."""

    def __init__(self, cfg: TasksConfig, tokenizer, cache_root: Path, seq_len: int, run_seed: int):
        self.codec = SymbolCodec(tokenizer)
        files = prepare(Path(cache_root), cfg.seed, cfg.items, cfg.eval_share)
        self.items = load_items(files)
        longest = max(self.items, key=lambda it: len(it.prompt) + len(it.answer))
        if len(longest.prompt) + len(longest.answer) > seq_len:
            raise TaskError(f"the task item {longest.key!r} needs {len(longest.prompt) + len(longest.answer)} tokens "
                            f"of context, more than model.seq_len={seq_len}; raise model.seq_len")
        self.during = first_per_variant(self.items, cfg.items_during)
        self.suite = {**files.record, "weights": dict(cfg.weights)}
        self.scoring = tasks_enabled(cfg)
        self.icl_windows = cfg.icl_windows
        self.rows = TaskRows(suite_of(cfg), run_seed, cfg.mix, self.codec, seq_len) if cfg.mix > 0 else None

    def score(self, model: torch.nn.Module, held_out: torch.Tensor, runtime, final: bool, at: dict,
              source: str = "training") -> dict:
        """tasks.json's content for `model` now: every variant (all items when final, else the first
        tasks.items_during of each, without decoding), the per-position loss and ICL score on held-out text, the
        induction ratio."""
        began = time.perf_counter()
        items = self.items if final else self.during
        # Intermediate evals score what one teacher-forced pass gives (exact match by the greedy identity, NLL, p_seq,
        # multiple choice); the final one also decodes, for the metrics of the greedy text.
        variants = score(model, items, self.codec, device=runtime.device, autocast=runtime.autocast, decode=final)
        icl = icl_curve(model, spread(held_out, self.icl_windows), device=runtime.device, autocast=runtime.autocast)
        icl["induction_ratio"] = induction_ratio(variants)  # pooled over the copy variants
        return {"format": FORMAT, "suite": self.suite, **at, "source": source, "final": final,
                "variants": variants, "icl": icl, "score_s": time.perf_counter() - began}


def tasks_of(run, data) -> RunTasks | None:
    """The suite for a run (a RunConfig on its PreparedData) when tasks are mixed in or scored, else None."""
    if run.tasks.mix == 0 and not tasks_enabled(run.tasks):
        return None
    return RunTasks(run.tasks, load_tokenizer(data.tokenizer_path), run.cache_root,
                    run.model.seq_len, run.order_seed)


def first_per_variant(items: list, count: int) -> list:
    """The first `count` items of each variant, in order: the intermediate evals' fixed subset of the final set."""
    seen: Counter = Counter()
    out = []
    for item in items:
        seen[item.key] += 1
        if seen[item.key] <= count:
            out.append(item)
    return out


def task_event(result: dict) -> dict:
    """The scalars of a scoring, for a `task` event in metrics.jsonl (lists stay in tasks.json)."""
    tasks = {key: {m: v[m] for m in EVENT_METRICS if isinstance(v.get(m), (int, float))}
             for key, v in result["variants"].items()}
    icl = {k: result["icl"].get(k) for k in ("icl_score", "induction_ratio")}
    return {"tasks": tasks, "icl": icl}
