"""`sweep evaluate RUN_DIR|SWEEP_DIR`: re-score saved weights on the task suite without training. Each run directory's
latest checkpoint (a completed run keeps its final weights there) is loaded into the model its config.yaml
describes, on the corpus cache it trained with, and scored like the trainer's final eval; tasks.json is rewritten
(`source: sweep evaluate`, with the checkpoint's step). The metrics.jsonl a run trained with is never touched.

A received run directory is treated as untrusted input: its config.yaml is validated as a launch would, its
checkpoint is read as data only (train/checkpoint.py), and the run's lock is held, so a run still training is
refused rather than read half-written. Every run that can be scored is; the others are named at the end."""

from __future__ import annotations

import logging
from dataclasses import fields
from pathlib import Path

from . import rundir
from .config import ConfigError
from .config.schema import DataConfig, ModelConfig, RunConfig, TasksConfig, TrainConfig, cache_root, validate
from .data import DataError, open_tokens, prepare, val_windows
from .data import check as check_data
from .train import checkpoint
from .train.model import GPT
from .train.runtime import select

log = logging.getLogger("sweep.evaluate")


def _slice(kind, saved: dict | None, **overrides):
    """A config dataclass from a config.yaml section: its known keys (the record adds derived ones) and overrides."""
    names = {f.name for f in fields(kind)}
    return kind(**{**{k: v for k, v in (saved or {}).items() if k in names}, **overrides})


def run_dirs_of(path: Path) -> list[Path]:
    """PATH itself when it is a run directory (has config.yaml), else its run directories that have a checkpoint."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"{path} is not a directory; give a run directory or a sweep directory")
    if (path / rundir.CONFIG).exists():
        return [path]
    runs = [d for d in rundir.run_dirs(path) if (d / checkpoint.LATEST).exists() or (d / checkpoint.PREVIOUS).exists()]
    if not runs:
        raise ConfigError(f"{path} holds no run directory with a checkpoint (config.yaml and {checkpoint.LATEST}); "
                          f"give a run directory or the sweep directory that holds them")
    return runs


def evaluate_run(run_dir: Path, device: str = "auto", items: int | None = None) -> dict:
    """Score one run directory's latest weights, holding its lock (a run being trained is left alone); write and
    return tasks.json's content."""
    with rundir.claim(run_dir):
        return _evaluate_claimed(run_dir, device, items)


def _evaluate_claimed(run_dir: Path, device: str, items: int | None) -> dict:
    from .tasks.runner import RunTasks
    from .data.tokenizer import load_tokenizer

    saved = rundir.read_config(run_dir)
    if not saved or "model" not in saved or "data" not in saved:
        raise ConfigError(f"{run_dir / rundir.CONFIG} is missing or unreadable: not a run directory of sweep")
    model_cfg = _slice(ModelConfig, saved["model"])
    data_cfg = _slice(DataConfig, saved["data"])
    tasks_cfg = _slice(TasksConfig, saved.get("tasks"), eval=True, **({"items": items} if items else {}))
    tasks_cfg.items_during = min(tasks_cfg.items_during, tasks_cfg.items)
    try:  # a received config.yaml is checked as a launch checks the same settings
        validate(RunConfig(model=model_cfg, data=data_cfg, tasks=tasks_cfg))
        check_data(data_cfg)
    except (ConfigError, DataError) as err:
        raise ConfigError(f"{run_dir / rundir.CONFIG}: {err}") from None
    runtime = select(device, _slice(TrainConfig, {}, dtype=(saved.get("train") or {}).get("dtype", "auto")))
    # The layout is <out_dir>/<sweep>/<run>: out_dir is where the run directory is now, not where it was trained.
    cache = cache_root(run_dir.parent.parent, data_cfg)
    data = prepare(data_cfg, cache)
    model = GPT(model_cfg).to(runtime.device)
    state = checkpoint.load(run_dir, warn=log.warning, model=model)
    if state is None:
        raise ConfigError(f"{run_dir} has no checkpoint to evaluate")
    model.load_state_dict(state["model"])
    tasks = RunTasks(tasks_cfg, load_tokenizer(data.tokenizer_path), cache, model_cfg.seq_len, int(saved["seed"]))
    held_out = val_windows(open_tokens(data.val_path), model_cfg.seq_len)
    plan = saved.get("plan") or {}
    step = int(state["step"])
    tokens = step * plan.get("batch_tokens", 0)
    at = {"step": step, "tokens": tokens, "flops": tokens * plan.get("flops_per_token", 0),
          "completed": rundir.is_completed(run_dir)}
    result = tasks.score(model, held_out, runtime, final=True, at=at, source="sweep evaluate")  # eval mode, no grad
    rundir.write_tasks(run_dir, result)
    return result


def main(path: Path, device: str = "auto", items: int | None = None) -> tuple[list[tuple[Path, dict]], dict]:
    """Every run under PATH scored: ([(run_dir, tasks.json's content)], {run_dir: why it could not be scored}); a
    run that cannot be scored (its config or checkpoint unusable, or refused as unsafe) is named and the others go
    on."""
    done, failed = [], {}
    for run_dir in run_dirs_of(path):
        log.info("scoring %s", run_dir)
        try:
            done.append((run_dir, evaluate_run(run_dir, device, items)))
        except (ConfigError, DataError, checkpoint.CheckpointError, rundir.RunDirError) as err:
            log.error("%s: %s", run_dir, err)
            failed[run_dir] = str(err)
    return done, failed
