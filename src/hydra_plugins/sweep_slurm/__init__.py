"""The grid's SLURM launcher (`hydra/launcher=slurm`): submitit's, with three changes a ladder on a cluster needs.

1. Only cells with work to do get a job: a cell the grid's manifest lists as skipped, or as trained in another
   cell's pack, a cell whose summary.json says completed, and a cell whose job is still queued or running get none
   (a relaunch of a finished grid queues nothing; one of a grid in flight adds only what failed or never ran).
2. The job settings are tried on the scheduler first (`sbatch --test-only` on the very script submitit would submit),
   so a bad partition, account or time limit is the scheduler's one-line message before any cell is queued.
3. `wait: false` submits and returns (fire and forget: Hydra's multirun otherwise waits for every job). Either way
   each job's id is appended to the sweep directory's jobs.jsonl (sweep.scheduler.JOBS), which `sweep status` reads.

Hydra finds launchers only in the `hydra_plugins` package; this one is part of sweep and imports it."""


import logging
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

log = logging.getLogger(__name__)

EXECUTOR_INIT_KEYS = ("submitit_folder", "max_num_timeout")  # submitit takes these when the executor is made


@dataclass
class SweepSlurmConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.sweep_slurm.SweepSlurmLauncher"
    wait: bool = True  # false: submit the cells' jobs and return (`sweep submit`)


ConfigStore.instance().store(group="hydra/launcher", name="sweep_slurm", node=SweepSlurmConf, provider="sweep")


def try_settings(launcher_config) -> None:
    """These launcher settings (the composed hydra.launcher node) tried on the scheduler, before a grid writes
    anything: SchedulerRefused with the scheduler's words."""
    from omegaconf import OmegaConf

    params = OmegaConf.to_container(launcher_config, resolve=True)
    params.pop("_target_", None)
    SweepSlurmLauncher(**params).try_on_scheduler()


def _queued_or_running(sweep_dir: Path) -> set:
    """The cells whose latest job the scheduler still holds (queued, running, requeued): a second job for one of
    them would find its directory locked, fail, and hide the first job from `sweep status`."""
    from sweep import scheduler

    jobs = scheduler.read_jobs(sweep_dir)
    states = scheduler.job_states([job["job_id"] for job in jobs.values()]) or {}
    live = scheduler.QUEUED_STATES | scheduler.RUNNING_STATES
    return {name for name, job in jobs.items() if states.get(job["job_id"]) in live}


def _cell_key(overrides) -> tuple:
    """A cell's overrides without Hydra's own, as the manifest and Hydra's sweeper both spell the rest."""
    return tuple(o for o in overrides if not o.startswith(("hydra.", "hydra/")))


class SchedulerRefused(SystemExit):
    """The scheduler refused the job settings (sbatch's own message), before any job was queued: a SystemExit with
    that line, which sweep's Hydra entry point prints as an input error (exit 2)."""


class SweepSlurmLauncher(SlurmLauncher):
    def __init__(self, wait: bool = True, **params: Any) -> None:
        super().__init__(**params)
        self.wait = wait

    def _executor(self):
        import submitit

        params = self.params
        executor = submitit.AutoExecutor(folder=params["submitit_folder"],
                                         slurm_max_num_timeout=params["max_num_timeout"], cluster="slurm")
        common = set(BaseQueueConf.__dataclass_fields__)  # submitit's cluster-independent names; the rest: slurm_*
        executor.update_parameters(**{k if k in common else f"slurm_{k}": v for k, v in params.items()
                                      if k not in EXECUTOR_INIT_KEYS})
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from sweep import rundir, scheduler

        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        entries = {_cell_key(e["overrides"]): e for e in rundir.read_manifest(sweep_dir) or []}
        in_flight = _queued_or_running(sweep_dir)
        todo, returns = [], []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            entry = entries.get(_cell_key(overrides), {})
            name = entry.get("name")
            done = name is not None and rundir.is_completed(sweep_dir / name)
            if entry.get("status") == rundir.SKIPPED or entry.get("packed_in") or done or name in in_flight:
                returns.append(JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED, _return_value=None))
                continue
            todo.append((idx, list(overrides), name))
            returns.append(None)
        if in_flight:
            log.info("%d cell(s) of %s already queued or running: not submitted again", len(in_flight), sweep_dir)
        if not todo:
            log.info("every cell of %s is done, skipped, in a pack or in flight: no job submitted", sweep_dir)
            return returns
        executor = self._executor()
        self.try_on_scheduler(executor)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("SLURM: submitting %d job(s) for %s", len(todo), sweep_dir)
        state = Singleton.get_state()
        for idx, overrides, _ in todo:
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
        jobs = executor.map_array(self, *zip(*[(o, "hydra.sweep.dir", i, f"job_id_for_{i}", state)
                                               for i, o, _ in todo]))
        now, relaunch = time.time(), self._relaunch_command()
        scheduler.append_jobs(sweep_dir, [{"name": name, "job_id": job.job_id, "submitted": now,
                                           "relaunch": relaunch} for (_, _, name), job in zip(todo, jobs)])
        slots = [i for i, r in enumerate(returns) if r is None]
        for slot, job, (_, overrides, _) in zip(slots, jobs, todo):
            returns[slot] = (job.results()[0] if self.wait else
                             JobReturn(overrides=overrides, status=JobStatus.COMPLETED, _return_value=job.job_id))
        return returns

    def _relaunch_command(self) -> str:
        """`sweep submit` with this grid's own overrides (those sweep's grid adds left out)."""
        import shlex

        overrides = self.config.hydra.overrides
        ours = ("sweep.grid=", "hydra/launcher=", "hydra.launcher.wait=", "hydra.mode=")
        args = [a for a in [*overrides.task, *overrides.hydra] if not a.startswith(ours)]
        return " ".join(["sweep", "submit", *map(shlex.quote, args)])

    def try_on_scheduler(self, executor=None) -> None:
        """sbatch --test-only on the script submitit would submit: the scheduler checks partition, account, QOS,
        time limit and resources, and queues nothing."""
        executor = executor or self._executor()
        script = executor._executor._make_submission_file_text("true", "test-only")  # submitit's own script text
        with tempfile.NamedTemporaryFile("w", suffix=".sh") as f:
            f.write(script)
            f.flush()
            result = subprocess.run(["sbatch", "--test-only", f.name], capture_output=True, text=True)
        if result.returncode != 0:
            lines = [ln.removeprefix("sbatch: error: ").strip() for ln in result.stderr.splitlines() if ln.strip()]
            why = "; ".join(lines[-2:]) or f"sbatch --test-only exited {result.returncode}"
            raise SchedulerRefused(f"error: the scheduler refused the job settings (hydra.launcher.*), nothing was "
                                   f"queued: {why}")
