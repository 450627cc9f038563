"""metrics.jsonl is the source of truth; wandb, when enabled, mirrors it (one run per cell)."""

from __future__ import annotations

import uuid
from pathlib import Path

from ..config import LoggerConfig
from ..files import dumps, json_safe
from ..rundir import METRICS


class Tracker:
    """Appends events to metrics.jsonl and mirrors them to wandb.

    `resume_offset` truncates metrics.jsonl to what the checkpoint had seen, so a resumed run writes each
    step exactly once.
    """

    def __init__(self, run_dir: Path, cfg: LoggerConfig, run_name: str, group: str, config: dict,
                 wandb_id: str | None = None, resume_offset: int | None = None):
        self.path = run_dir / METRICS
        if resume_offset is not None and self.path.exists():
            with open(self.path, "r+b") as f:
                f.truncate(resume_offset)
        elif resume_offset is None and self.path.exists():
            self.path.unlink()  # a fresh start: no stale events from a run that never checkpointed
        self._file = open(self.path, "a")
        self.wandb_run = None
        self.wandb_id = wandb_id
        if cfg.name == "wandb" and cfg.mode != "disabled":
            import wandb

            self.wandb_id = wandb_id or uuid.uuid4().hex[:12]
            self.wandb_run = wandb.init(
                project=cfg.project, entity=cfg.entity, group=group, job_type="train", name=run_name,
                id=self.wandb_id, resume="allow", dir=str(run_dir), mode=cfg.mode, config=config,
                settings=wandb.Settings(console="off", x_disable_stats=True),
            )
            self.wandb_run.define_metric("tokens")
            self.wandb_run.define_metric("*", step_metric="tokens")

    def offset(self) -> int:
        """Bytes of metrics.jsonl written so far (saved in checkpoints)."""
        self._file.flush()
        return self._file.tell()

    def log(self, event: dict) -> None:
        event = json_safe(event)  # a non-finite loss is written as null (sweep.files)
        self._file.write(dumps(event) + "\n")
        self._file.flush()
        if self.wandb_run is not None:
            self.wandb_run.log(event)

    def finish(self, summary: dict | None = None) -> None:
        self._file.close()
        if self.wandb_run is not None:
            if summary:
                self.wandb_run.summary.update({k: v for k, v in summary.items() if not isinstance(v, dict)})
            self.wandb_run.finish()
            self.wandb_run = None
