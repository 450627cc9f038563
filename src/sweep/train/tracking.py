"""metrics.jsonl is the source of truth; wandb, when enabled, mirrors it (one run per cell)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from ..config import LoggerConfig
from ..files import dumps, json_safe
from ..rundir import METRICS, RunDirError, read_events


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"n_params": {"total": 1}} → {"n_params/total": 1}."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_prefix(path: Path, offset: int) -> None:
    """metrics.jsonl must still hold, whole, the events the checkpoint saw: its first `offset` bytes ending a line.
    A shorter file (truncated, replaced) is refused: resuming would lose those events or pad the gap."""
    size = path.stat().st_size if path.exists() else 0
    ends_a_line = offset == 0
    if size >= offset > 0:
        with open(path, "rb") as f:
            f.seek(offset - 1)
            ends_a_line = f.read(1) == b"\n"
    if size < offset or not ends_a_line:
        raise RunDirError(f"{path} holds {size} bytes but the checkpoint saw {offset} bytes of whole events: it was "
                          f"truncated or replaced since; restore it, or delete {path.parent} to retrain the cell")


class Tracker:
    """Appends events to metrics.jsonl and mirrors them to wandb.

    `resume_offset` truncates metrics.jsonl to what the checkpoint had seen, so a resumed run writes each
    step exactly once.
    """

    def __init__(self, run_dir: Path, cfg: LoggerConfig, run_name: str, group: str, config: dict,
                 wandb_id: str | None = None, resume_offset: int | None = None, tags: tuple = ()):
        self.path = run_dir / METRICS
        if resume_offset is not None:
            check_prefix(self.path, resume_offset)
            with open(self.path, "r+b") as f:
                f.truncate(resume_offset)
        elif self.path.exists():
            self.path.unlink()  # a fresh start: no stale events from a run that never checkpointed
        self._file = open(self.path, "a")
        # The best val_loss so far, metrics.jsonl's kept events included (a resumed run's summary still has it).
        self.best_val_loss = min((e["val_loss"] for e in read_events(run_dir) if e.get("val_loss") is not None),
                                 default=None)
        self.wandb_run = None
        self.wandb_id = wandb_id
        if cfg.name == "wandb" and cfg.mode != "disabled":
            import wandb

            self.wandb_id = wandb_id or uuid.uuid4().hex[:12]
            self.wandb_run = wandb.init(
                project=cfg.project, entity=cfg.entity, group=group, job_type="train", name=run_name,
                id=self.wandb_id, resume="allow", dir=str(run_dir), mode=cfg.mode, config=config,
                reinit="create_new",  # the cells of a pack (train/pack.py) are runs side by side in one process
                tags=[*tags, *cfg.tags], settings=wandb.Settings(console="off", x_disable_stats=not cfg.system_metrics),
            )
            self.wandb_run.define_metric("tokens")
            self.wandb_run.define_metric("*", step_metric="tokens")

    def offset(self) -> int:
        """Bytes of metrics.jsonl written so far (saved in checkpoints): on disk, fsynced, before a checkpoint
        records them, so a crash or power loss cannot leave the file shorter than its checkpoint says."""
        self._file.flush()
        os.fsync(self._file.fileno())
        return self._file.tell()

    def log(self, event: dict) -> None:
        event = json_safe(event)  # a non-finite loss is written as null (sweep.files)
        if event.get("val_loss") is not None:
            self.best_val_loss = min(event["val_loss"], self.best_val_loss or event["val_loss"])
        try:
            self._file.write(dumps(event) + "\n")
            self._file.flush()
        except OSError as err:  # a full disk: name the file; a resume cuts it back to the checkpoint's offset
            raise OSError(err.errno, err.strerror, str(self.path)) from None
        if self.wandb_run is not None:
            self.wandb_run.log(event)

    def finish(self, summary: dict | None = None) -> None:
        self._file.close()
        if self.wandb_run is not None:
            if summary:  # nested values flattened (n_params/total, ...): wandb's summary drops dicts
                self.wandb_run.summary.update({**flatten(summary), "best_val_loss": self.best_val_loss})
            self.wandb_run.finish()
            self.wandb_run = None
