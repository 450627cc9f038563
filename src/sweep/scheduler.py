"""What the SLURM scheduler knows of a sweep's jobs, and the sweep directory's record of them.

- jobs.jsonl (JOBS), in the sweep directory: one JSON object per submitted job, appended by the SLURM launcher
  (hydra_plugins/sweep_slurm) at submission: the cell's `name`, its `job_id`, `submitted` (Unix time), and
  `relaunch`, the command that submits the grid again. A cell submitted twice has two lines; the last one counts.
- `reachable()`: whether sbatch is here and the controller answers, before anything is written.
- `job_states()`: each job's state from squeue (queued and running jobs) and sacct (the accounting, for jobs that
  have ended); None when neither answers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from .config import ConfigError

JOBS = "jobs.jsonl"
QUERY_TIMEOUT_S = 30

# SLURM's job states (squeue/sacct) → what they mean for a cell.
QUEUED_STATES = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "CONFIGURING", "SUSPENDED", "RESIZING",
                 "STOPPED", "SIGNALING"}
RUNNING_STATES = {"RUNNING", "COMPLETING", "STAGE_OUT"}


def append_jobs(sweep_dir: Path, rows: list[dict]) -> None:
    """Append submitted jobs to jobs.jsonl (one write: lines of one submission stay together)."""
    with open(Path(sweep_dir) / JOBS, "a") as f:
        f.write("".join(json.dumps(row) + "\n" for row in rows))


def read_jobs(sweep_dir: Path) -> dict[str, dict]:
    """Cell name → its latest submitted job; a line that does not parse (a write cut short) is left out."""
    path = Path(sweep_dir) / JOBS
    jobs: dict[str, dict] = {}
    if not path.exists():
        return jobs
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("name"), str) and row.get("job_id"):
            jobs[row["name"]] = row
    return jobs


def _run(args: list[str]) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=QUERY_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None


def reachable() -> None:
    """A ConfigError of one line naming what is missing: sbatch on PATH, then a controller that answers."""
    if shutil.which("sbatch") is None:
        raise ConfigError("no SLURM scheduler here: `sbatch` is not on PATH; submit from the cluster's login node "
                          "(or start a single-node cluster on this machine: scripts/slurm_cluster.sh start)")
    ping = _run(["scontrol", "ping"])
    if ping is None or ping.returncode != 0 or "UP" not in ping.stdout:
        said = ((ping.stdout.strip() or ping.stderr.strip()).splitlines() or ["no answer"])[0] if ping else "no answer"
        raise ConfigError(f"the SLURM controller does not answer (scontrol ping: {said}); nothing was submitted")


def job_states(job_ids: list[str]) -> dict[str, str] | None:
    """Job id → SLURM state: squeue for live jobs (array tasks listed one by one), sacct for the rest. None when
    neither command answers (no scheduler here)."""
    if not job_ids:
        return {}
    states: dict[str, str] = {}
    ids = ",".join(sorted(set(job_ids)))
    answered = False
    acct = _run(["sacct", "-n", "-X", "-P", "-j", ids, "-o", "JobID,State"])
    if acct is not None and acct.returncode == 0:
        answered = True
        for line in acct.stdout.splitlines():
            job, _, state = line.partition("|")
            if job and state:
                states[job.strip()] = state.split()[0]  # "CANCELLED by 0" → CANCELLED
    queue = _run(["squeue", "-h", "-r", "-o", "%i|%T"])  # all of them: -j refuses ids that have left the queue
    if queue is not None and queue.returncode == 0:
        answered = True
        wanted = set(job_ids)
        for line in queue.stdout.splitlines():
            job, _, state = line.partition("|")
            if job.strip() in wanted and state:
                states[job.strip()] = state.strip()
    return states if answered else None
