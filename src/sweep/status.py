"""`sweep status SWEEP_DIR`: every cell of a grid as planned, queued, running, done, failed (or skipped), read from
the grid's manifest, the run directories and, when it answers, the scheduler (jobs.jsonl's job ids asked of squeue
and sacct); then one line of counts and the next command. Nothing is written."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from . import rundir, scheduler
from .config import ConfigError

PLANNED, QUEUED, RUNNING, DONE, FAILED, SKIPPED = "planned", "queued", "running", "done", "failed", "skipped"
ORDER = (DONE, RUNNING, QUEUED, FAILED, PLANNED, SKIPPED)


@dataclass(frozen=True)
class CellState:
    name: str
    state: str  # one of ORDER
    detail: str  # a few words: the result, the progress, the error or the scheduler's state
    job_id: str | None = None


def _progress(run_dir: Path, planned_tokens: float | None) -> str:
    events = list(rundir.read_events(run_dir)) if (run_dir / rundir.METRICS).exists() else []
    if not events:
        return "no step logged yet"
    tokens = events[-1].get("tokens") or 0
    share = f"{100 * tokens / planned_tokens:.0f}% of " if planned_tokens else ""
    age = time.time() - (run_dir / rundir.METRICS).stat().st_mtime
    return f"{share}{planned_tokens or tokens:.3g} tokens, last event {age:.0f} s ago"


def _done(summary: dict) -> str:
    loss, tokens, wall = summary.get("val_loss"), summary.get("tokens"), summary.get("wall_s")
    parts = [f"val_loss {loss:.4f}" if isinstance(loss, float) else "val_loss -"]
    if isinstance(tokens, (int, float)):
        parts.append(f"{tokens:.3g} tokens")
    if isinstance(wall, (int, float)):
        parts.append(f"{wall:.0f} s")
    return ", ".join(parts)


def cell_states(sweep_dir: Path) -> tuple[list[CellState], dict[str, dict], bool]:
    """Each manifest cell's state; the jobs by cell; whether the scheduler answered."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ConfigError(f"{sweep_dir}: no such directory; give a sweep directory (<out_dir>/<sweep name>)")
    manifest = rundir.read_manifest(sweep_dir)
    if manifest is None:
        raise ConfigError(f"{sweep_dir} is not a sweep directory: it has no {rundir.MANIFEST}, which `sweep train -m` "
                          f"and `sweep submit` write before any cell starts")
    jobs = scheduler.read_jobs(sweep_dir)
    live = scheduler.job_states([job["job_id"] for job in jobs.values()]) if jobs else {}
    cells = []
    for entry in manifest:
        name = entry["name"]
        run_dir = sweep_dir / name
        owner = entry.get("packed_in") or entry.get("trunk") or name  # whose process trains it
        job = jobs.get(owner)
        job_id = job["job_id"] if job else None
        slurm = (live or {}).get(job_id) if job_id else None
        summary = rundir.read_summary(run_dir) or {}
        planned_tokens = (entry.get("plan") or {}).get("tokens")
        if entry["status"] == rundir.SKIPPED:
            cells.append(CellState(name, SKIPPED, entry.get("reason") or ""))
        elif summary.get("status") == "completed":
            cells.append(CellState(name, DONE, _done(summary), job_id))
        elif slurm in scheduler.RUNNING_STATES:
            cells.append(CellState(name, RUNNING, _progress(run_dir, planned_tokens), job_id))
        elif slurm in scheduler.QUEUED_STATES:
            again = " (requeued: resumes from its checkpoint)" if (run_dir / rundir.CHECKPOINT).exists() else ""
            cells.append(CellState(name, QUEUED, f"{slurm}{again}", job_id))
        elif summary.get("status"):
            cells.append(CellState(name, FAILED, str(summary.get("error", summary["status"]))[:120], job_id))
        elif slurm is not None:  # the job ended and left no summary: killed (scancel, OOM, node failure, time)
            cells.append(CellState(name, FAILED, f"job {slurm}, the cell unfinished", job_id))
        elif job_id and live is None:  # submitted, and no scheduler here to ask
            started = (run_dir / rundir.METRICS).exists()
            cells.append(CellState(name, RUNNING if started else QUEUED,
                                   ("scheduler unreachable; " + _progress(run_dir, planned_tokens)) if started
                                   else "scheduler unreachable", job_id))
        elif job_id:
            cells.append(CellState(name, FAILED, "the scheduler no longer knows its job; the cell unfinished", job_id))
        elif (run_dir / rundir.METRICS).exists():
            cells.append(CellState(name, PLANNED, "started, unfinished; a relaunch resumes it"))
        else:
            cells.append(CellState(name, PLANNED, ""))
    return cells, jobs, live is not None


def next_command(sweep_dir: Path, cells: list[CellState], jobs: dict[str, dict]) -> str:
    counts = {state: sum(c.state == state for c in cells) for state in ORDER}
    relaunch = next((job["relaunch"] for job in reversed(list(jobs.values())) if job.get("relaunch")), None)
    if counts[QUEUED] or counts[RUNNING]:
        fit = f"; `sweep analyze {sweep_dir}` fits the {counts[DONE]} done now" if counts[DONE] else ""
        return f"next: `sweep status {sweep_dir}` again later{fit}"
    if counts[FAILED] or counts[PLANNED]:
        again = relaunch or "the same `sweep submit` (or `sweep train -m`) command"
        unfinished = counts[FAILED] + counts[PLANNED]
        return f"next: {again}   (trains the {unfinished} unfinished cell(s); done ones are not resubmitted)"
    return f"next: sweep analyze {sweep_dir}"


def report(sweep_dir: Path) -> str:
    cells, jobs, answered = cell_states(sweep_dir)
    width = max([len(c.name) for c in cells] + [4]) + 2
    lines = [f"{'cell':<{width}}{'state':<9}{'job':<12}detail"]
    lines += [f"{c.name:<{width}}{c.state:<9}{c.job_id or '-':<12}{c.detail}" for c in cells]
    counts = ", ".join(f"{n} {state}" for state in ORDER if (n := sum(c.state == state for c in cells)))
    where = "" if answered or not jobs else " (no scheduler answered: states read from the run directories)"
    lines.append(f"{sweep_dir}: {len(cells)} cell(s): {counts}{where}")
    lines.append(next_command(sweep_dir, cells, jobs))
    return "\n".join(lines)


def as_json(sweep_dir: Path) -> list[dict]:
    return [asdict(c) for c in cell_states(sweep_dir)[0]]
