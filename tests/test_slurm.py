"""The cluster path on a real SLURM (scripts/slurm_cluster.sh start; .ci/run starts one): a grid submitted as a job
array and followed by `sweep status`, a relaunch that queues nothing, `sweep analyze`; a preempted job (USR2, as
SLURM signals before a time limit or a preemption) requeued and resumed bit-identically; a job killed outright
reported failed and retrained by the next submission; a pack trained by one job; a 2-task gloo DDP job.

Without a cluster these tests skip, saying how to start one; under SWEEP_SLURM_REQUIRED=1 (set by .ci/run once its
cluster is up) a missing cluster fails them instead."""

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from helpers import SWEEP, local_overrides, summaries
from sweep import scheduler

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# One CPU and 2 GB per job: the single node's two CPUs run two cells at once. timeout_min leaves room for the
# signal before the limit (signal_delay_s, 120 s by default).
JOB = ["hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
       "hydra.launcher.timeout_min=15"]


def _cluster_up() -> str | None:
    """None when a SLURM controller answers and a node is idle or mixed; else why not."""
    if shutil.which("sbatch") is None:
        return "no sbatch on PATH"
    try:
        sinfo = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer"
    if sinfo.returncode != 0 or not {"idle", "mix", "alloc"} & set(sinfo.stdout.split()):
        return f"no node up (sinfo: {(sinfo.stdout + sinfo.stderr).strip()[:200]})"
    return None


@pytest.fixture(scope="session")
def cluster():
    why = _cluster_up()
    if why is not None:
        message = f"no SLURM cluster here ({why}); start one with `sudo scripts/slurm_cluster.sh start`"
        if os.environ.get("SWEEP_SLURM_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)


def sweep(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*SWEEP, *args], capture_output=True, text=True, timeout=timeout)


def base(out: Path, corpus: Path, *extra: str, job: bool = True) -> list[str]:
    """A tiny cell, and with `job` the SLURM job's resources."""
    return local_overrides(out, corpus, f"data.cache_dir={out / 'cache'}", *(JOB if job else ()), *extra)


def states(sweep_dir: Path) -> dict[str, dict]:
    result = sweep("status", str(sweep_dir), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    return {c["name"]: c for c in json.loads(result.stdout)}


def wait_until(predicate, timeout: float, what: str, poll: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (squeue: {squeue()})")


def squeue() -> str:
    return subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True).stdout.strip()


def all_done(sweep_dir: Path):
    cells = states(sweep_dir)
    return cells if all(c["state"] in ("done", "skipped") for c in cells.values()) else None


def comparable(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock field."""
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in e.items() if k != "tok_per_s"} for e in events]


def test_a_grid_submitted_as_an_array_then_resubmitted_queues_nothing_and_analyzes(tmp_path, corpus, cluster):
    args = [*base(tmp_path, corpus, "train.eval_every=10"), "model=gpt-12k,gpt-25k,gpt-50k",
            "train.flops=2e10,4e10", "sweep.name=array"]
    submitted = sweep("submit", *args)
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    sweep_dir = tmp_path / "array"
    jobs = scheduler.read_jobs(sweep_dir)
    assert len(jobs) == 6 and f"next: sweep status {sweep_dir}" in submitted.stdout
    arrays = {job["job_id"].split("_")[0] for job in jobs.values()}
    assert len(arrays) == 1, jobs  # one job array, one task per cell
    assert all(job["job_id"] in submitted.stdout for job in jobs.values())
    # Submitted again at once, while the array is queued and running: no second job for any cell.
    again = sweep("submit", *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert scheduler.read_jobs(sweep_dir) == jobs and "0 job(s) submitted" in again.stdout

    cells = wait_until(lambda: all_done(sweep_dir), 300, "every cell done")
    assert {c["job_id"] for c in cells.values()} == {job["job_id"] for job in jobs.values()}
    assert len(summaries(sweep_dir)) == 6
    table = sweep("status", str(sweep_dir))
    assert "6 cell(s): 6 done" in table.stdout and f"next: sweep analyze {sweep_dir}" in table.stdout

    # Hydra's own multirun with the SLURM launcher (it waits): every cell done, so no job at all.
    again = sweep("train", "-m", *args, "hydra/launcher=slurm")
    assert again.returncode == 0, again.stderr[-3000:]
    assert scheduler.read_jobs(sweep_dir) == jobs  # nothing submitted
    assert "no job submitted" in again.stdout + again.stderr

    # The small corpus is repeated at these budgets: fit those runs too (as `sweep demo` does on it).
    analyzed = sweep("analyze", str(sweep_dir), "--include-repeated", "--bootstrap", "20")
    assert analyzed.returncode == 0, analyzed.stderr[-3000:]
    fits = json.loads((sweep_dir / "analysis" / "fits.json").read_text())
    assert {"E", "A", "B", "alpha", "beta"} <= set(fits["approach3"]) and fits["runs"]["used"] == 6


def test_a_preempted_job_is_requeued_and_resumes_bit_identically(tmp_path, corpus, cluster):
    # ~390 steps of 512 tokens: long enough to be signalled mid-run, a checkpoint every 20 steps.
    cell = ["model=gpt-50k", "train.tokens=200000", "train.checkpoint_every=20", "train.eval_every=50"]
    straight = tmp_path / "straight"
    trained = sweep("train", *base(straight, corpus, *cell, "sweep.name=pre", job=False))
    assert trained.returncode == 0, trained.stderr[-3000:]
    [straight_dir] = [p.parent for p in (straight / "pre").glob("*/summary.json")]

    out = tmp_path / "cluster"
    submitted = sweep("submit", *base(out, corpus, *cell, "sweep.name=pre"))
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    [(name, job)] = scheduler.read_jobs(out / "pre").items()
    run_dir = out / "pre" / name
    wait_until(lambda: (run_dir / "checkpoint.pt").exists(), 120, "a first checkpoint")
    # As SLURM does signal_delay_s before the time limit, or on preemption: USR2 to the job's processes.
    subprocess.run(["scancel", "--signal=USR2", job["job_id"]], check=True)
    wait_until(lambda: all_done(out / "pre"), 300, "the requeued job done")

    log = (run_dir / "train.log").read_text()
    assert "checkpointed at step" in log and f"resuming {name} at step" in log, log[-3000:]
    requeued = subprocess.run(["sacct", "-n", "-X", "-P", "-D", "-j", job["job_id"], "-o", "State"],
                              capture_output=True, text=True).stdout.split()
    assert "REQUEUED" in requeued or "PREEMPTED" in requeued or len(requeued) >= 2, requeued
    assert comparable(run_dir) == comparable(straight_dir)  # fp32 on CPU: the same numbers, event for event
    a, b = (json.loads((d / "summary.json").read_text()) for d in (run_dir, straight_dir))
    assert a["val_loss"] == b["val_loss"]


def test_a_job_killed_outright_is_failed_then_retrained_by_the_next_submission(tmp_path, corpus, cluster):
    args = [*base(tmp_path, corpus, "model=gpt-50k", "train.tokens=300000", "train.checkpoint_every=20",
                  "train.eval_every=100"), "sweep.name=killed"]
    assert sweep("submit", *args).returncode == 0
    sweep_dir = tmp_path / "killed"
    [(name, job)] = scheduler.read_jobs(sweep_dir).items()
    wait_until(lambda: (sweep_dir / name / "checkpoint.pt").exists(), 120, "a first checkpoint")
    subprocess.run(["scancel", "--signal=KILL", "--full", job["job_id"]], check=True)
    cell = wait_until(lambda: states(sweep_dir)[name]["state"] == "failed" and states(sweep_dir)[name], 120,
                      "status to say failed")
    assert job["job_id"] == cell["job_id"] and not (sweep_dir / name / "summary.json").exists()
    table = sweep("status", str(sweep_dir)).stdout
    assert "1 failed" in table and "next: sweep submit" in table

    resubmitted = sweep("submit", *args)
    assert resubmitted.returncode == 0, resubmitted.stderr[-3000:]
    new = scheduler.read_jobs(sweep_dir)[name]
    assert new["job_id"] != job["job_id"]
    wait_until(lambda: all_done(sweep_dir), 300, "the retrained cell done")
    assert f"resuming {name} at step" in (sweep_dir / name / "train.log").read_text()


def test_one_job_trains_a_pack(tmp_path, corpus, cluster):
    args = [*base(tmp_path, corpus, "model=gpt-25k", "train.tokens=5120", "sweep.seeds=[0,1,2]",
                  "launcher.pack=3"), "sweep.name=packed"]
    submitted = sweep("submit", *args)
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    sweep_dir = tmp_path / "packed"
    jobs = scheduler.read_jobs(sweep_dir)
    assert len(jobs) == 1, jobs  # the pack's first cell; its mates train in that job
    cells = wait_until(lambda: all_done(sweep_dir), 300, "the pack done")
    assert len(cells) == 3 and {c["job_id"] for c in cells.values()} == {next(iter(jobs.values()))["job_id"]}


def test_a_two_task_gloo_ddp_job(tmp_path, corpus, cluster):
    args = [*base(tmp_path, corpus, "model=gpt-25k", "train.tokens=10240", "train.threads=auto"), "sweep.name=ddp",
            "hydra.launcher.tasks_per_node=2"]
    submitted = sweep("submit", *args)
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    sweep_dir = tmp_path / "ddp"
    wait_until(lambda: all_done(sweep_dir), 300, "the DDP cell done")
    [run_dir] = [p.parent for p in sweep_dir.glob("*/summary.json")]
    from omegaconf import OmegaConf

    runtime = OmegaConf.load(run_dir / "config.yaml").runtime
    assert runtime.world_size == 2 and runtime.threads == 1  # cpus_per_task=1: one thread per rank, not the node's
    single = sweep("train", *base(tmp_path / "single", corpus, "model=gpt-25k", "train.tokens=10240", job=False),
                   "sweep.name=ddp")
    assert single.returncode == 0, single.stderr[-3000:]
    [alone] = [json.loads(p.read_text()) for p in (tmp_path / "single" / "ddp").glob("*/summary.json")]
    ddp = json.loads((run_dir / "summary.json").read_text())
    assert ddp["tokens"] == alone["tokens"]
    assert abs(ddp["val_loss"] - alone["val_loss"]) < 1e-3  # two ranks of half the batch: one rank's step


def test_settings_the_scheduler_refuses_are_its_message_before_anything_is_written(tmp_path, corpus, cluster):
    result = sweep("submit", *base(tmp_path, corpus, "model=gpt-25k", "train.tokens=5120"), "sweep.name=refused",
                   "hydra.launcher.partition=no_such_partition")
    assert result.returncode == 2, result.stderr[-3000:]
    assert "scheduler refused" in result.stderr and "partition" in result.stderr.lower()
    assert "Traceback" not in result.stderr and not (tmp_path / "refused").exists()
