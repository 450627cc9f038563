"""The run directory `<out_dir>/<sweep name>/<run_name>/`: its files, how they are read and written, and what a
relaunch may do with it. The trainer, the grid launcher and the analysis all go through this module.

- config.yaml: the fully resolved config (per-size defaults filled in), its `plan` and `runtime` blocks.
- metrics.jsonl: one JSON event per line (the trainer's Tracker appends; a resume cuts it back).
- summary.json: written last and atomically; `status: completed` means the cell is done, `failed` carries the error.
- checkpoint.pt, checkpoint.prev.pt: the latest two checkpoints (train/checkpoint.py).
- branch_point.<step>.pt: a cooldown trunk's state at a branch point, kept until the branches from it complete
  (train/branches.py); a branch is a run directory of its own, whose summary.json names its `trunk`.
Beside the run directories, the sweep directory's manifest.jsonl: every cell its grids planned, skipped ones too.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .config import ConfigError, RunConfig
from .config.schema import is_auto
from .config.naming import is_non_defining
from .files import write_json_atomic, write_text_atomic

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_PREVIOUS = "checkpoint.prev.pt"
TASKS = "tasks.json"  # the task suite's final scores (sweep/tasks); rewritten by `sweep evaluate`
BRANCH_POINT = "branch_point.{step}.pt"  # a cooldown trunk's checkpoint at a branch point
LOCK = ".lock"  # held by the process training the cell (released by the OS if that process dies)
MANIFEST = "manifest.jsonl"  # in the sweep directory: one JSON object per cell as its grid planned it (grid_plan.py)
PLANNED, SKIPPED = "planned", "skipped"  # a manifest entry's status: to be trained, or left out by the grid
NOT_RUNS = frozenset({"analysis", "cache", "wandb"})  # folders of a sweep directory that are not runs (nor .hidden)
DEFINING_SECTIONS = ("model", "data", "train", "schedule", "tasks")


class RunDirError(RuntimeError):
    """A run directory that cannot be used as it is: the message names the file and what to do."""


class RunDirBusy(RunDirError):
    """Another process is training this cell: nothing here may be touched."""


class OtherSettings(ConfigError):
    """The directory holds a cell with other settings than this launch's: a refusal that leaves it as it is."""


@contextmanager
def claim(run_dir: Path) -> Iterator[None]:
    """Hold the cell's lock while training it: a second launch of the same cell is refused, never interleaved."""
    from filelock import FileLock, Timeout

    run_dir = Path(run_dir)
    lock = FileLock(str(run_dir / LOCK))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=0)
    except Timeout:  # before OSError: filelock's Timeout is a TimeoutError
        raise RunDirBusy(f"{run_dir} is being trained by another process (it holds {run_dir / LOCK}); wait for "
                         f"it to finish or stop it, then relaunch: the cell resumes or is skipped") from None
    except OSError as err:
        raise RunDirError(f"cannot write to {run_dir} ({err.strerror}); make it writable or use another out_dir") \
            from None
    try:
        _check_lock_holds(run_dir / LOCK)
        yield
    finally:
        lock.release()


def _check_lock_holds(path: Path) -> None:
    """The cell's lock is flock(2), as filelock takes it. Held, a second lock on the same file must be refused; on
    a filesystem where flock does nothing (some network and FUSE mounts) it is not, and two launches could
    interleave in one directory: refuse to train there. On NFS mounted with local locks, flock holds only
    between processes of one host: said once, as a warning."""
    import errno
    import fcntl
    import logging

    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass  # refused: the lock holds
    except OSError as err:
        if err.errno not in (errno.EAGAIN, errno.EACCES):
            raise RunDirError(f"{path.parent} is on a filesystem without file locks ({err.strerror}); two launches "
                              f"of this cell could not be kept apart: use an out_dir on a local or lock-capable "
                              f"filesystem") from None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        raise RunDirError(f"{path.parent} is on a filesystem where file locks do nothing (a second lock on "
                          f"{path.name} was granted while one was held); two launches of this cell could interleave: "
                          f"use an out_dir on a local or lock-capable filesystem")
    finally:
        os.close(fd)
    scope = lock_scope(path)
    if scope and scope not in _WARNED:
        _WARNED.add(scope)
        logging.getLogger("sweep.rundir").warning(scope)


_WARNED: set = set()


def lock_scope(path: Path, mountinfo: str | None = None) -> str | None:
    """None when the cell lock at `path` holds across machines as far as the mount table tells; else why it holds
    only on this host (an NFS mount with local locks)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text()
        except OSError:
            return None
    path, best = str(Path(path).resolve()), None
    for line in mountinfo.splitlines():
        fields, _, rest = line.partition(" - ")
        parts, tail = fields.split(), rest.split()
        if len(parts) < 6 or len(tail) < 3:
            continue
        mount_point = parts[4]
        inside = path == mount_point or path.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) > len(best[0])):
            best = (mount_point, tail[0], set(parts[5].split(",")) | set(tail[2].split(",")))
    if best is None or not best[1].startswith("nfs"):
        return None
    mount_point, fstype, options = best
    local = sorted(options & {"nolock", "local_lock=all", "local_lock=flock"})
    if local:
        return (f"{mount_point} is {fstype} with local locks ({', '.join(local)}): "
                f"the cell lock keeps launches on this host apart, not launches on other nodes; launch a grid's "
                f"cells from one scheduler (each cell once), or use an out_dir on a filesystem with shared locks")
    return None


# ------------------------------------------------------------------------------------------------ summary
def read_summary(run_dir: Path) -> dict | None:
    """summary.json's content; None when there is none; `status: unreadable` with the error when it cannot be read."""
    path = Path(run_dir) / SUMMARY
    if not path.exists():
        return None
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return {"run_name": Path(run_dir).name, "status": "unreadable", "error": f"unreadable {SUMMARY}: {err}"}
    return summary if isinstance(summary, dict) else {"status": "unreadable", "error": f"{SUMMARY} is not an object"}


def is_completed(run_dir: Path) -> bool:
    return (read_summary(run_dir) or {}).get("status") == "completed"


def write_summary(run_dir: Path, summary: dict) -> None:
    """Last, atomically: its presence with `status: completed` means the cell is done."""
    write_json_atomic(Path(run_dir) / SUMMARY, summary)


def discard_unstarted(run_dir: Path) -> bool:
    """Remove a run directory in which training never started (no config.yaml) and that holds nothing but Hydra's
    own files, so that a run refused for its input leaves nothing behind. True if it was removed."""
    import shutil

    run_dir = Path(run_dir)
    hydra_own = {".hydra", "train.log", LOCK}  # Hydra's saved config and job log, and the cell's lock
    if not run_dir.is_dir() or (run_dir / CONFIG).exists() or {p.name for p in run_dir.iterdir()} - hydra_own:
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    try:
        run_dir.parent.rmdir()  # the sweep directory too, if this run was all it held
    except OSError:
        pass
    return True


def record_failure(run_dir: Path, err: BaseException) -> None:
    """A failed cell says so (and is retried on relaunch); a completed cell's results are never overwritten. Best
    effort: a full or read-only disk may refuse the record too, and the failure is reported all the same."""
    run_dir = Path(run_dir)
    if run_dir.is_dir() and not is_completed(run_dir):
        try:
            write_summary(run_dir, {"run_name": run_dir.name, "status": "failed",
                                    "error": f"{type(err).__name__}: {err}"})
        except OSError:
            pass


# ------------------------------------------------------------------------------------------------- config
def read_config(run_dir: Path) -> dict | None:
    """The config.yaml a run directory was started with (resolved: per-size defaults and runtime filled in)."""
    from omegaconf import OmegaConf

    path = Path(run_dir) / CONFIG
    if not path.exists():
        return None
    try:
        return OmegaConf.to_container(OmegaConf.load(path))
    except Exception as err:  # yaml's and omegaconf's parse errors have no common base
        raise ConfigError(f"{path} is not valid YAML ({type(err).__name__}); restore it, or delete {run_dir} to "
                          f"retrain that cell") from None


def write_config(run_dir: Path, record: dict) -> None:
    from omegaconf import OmegaConf

    write_text_atomic(Path(run_dir) / CONFIG, OmegaConf.to_yaml(record))


_SEEDS = (("train", "seed"), ("data", "seed"))  # compared as the seeds they resolve to: auto is `seed`


def check_same_cell(run: RunConfig, run_dir: Path, saved: dict | None) -> None:
    """A relaunch must mean the same cell: refuse to resume or skip a directory trained with other settings."""
    from omegaconf import OmegaConf

    if saved is None:
        return
    current = OmegaConf.to_container(OmegaConf.structured(run))
    defaults = OmegaConf.to_container(OmegaConf.structured(type(run)))
    differ = []
    for section in DEFINING_SECTIONS:
        there = saved.get(section) or {}
        for key, value in current[section].items():
            if is_auto(value) or is_non_defining(section, key) or (section, key) in _SEEDS:
                continue  # auto: derived (per-size defaults are checked by check_same_defaults); seeds: below
            # a key (or a whole section, as tasks) the directory predates holds its default
            was = there.get(key, defaults[section].get(key))
            if was != value:
                differ.append(f"{section}.{key}: {was!r} there, {value!r} now")
    if saved.get("seed") != run.seed:
        differ.append(f"seed: {saved.get('seed')!r} there, {run.seed!r} now")
    for (section, key), now in zip(_SEEDS, (run.init_seed, run.order_seed)):
        was = (saved.get(section) or {}).get(key)
        was = saved.get("seed") if is_auto(was) else was  # auto (or predating the key): `seed`
        if was != now and saved.get("seed") == run.seed:  # else `seed` above already says it
            differ.append(f"{section}.{key}: {was!r} there, {now!r} now")
    if differ:
        raise OtherSettings(f"{run_dir} holds a run with other settings ({'; '.join(differ)}); use another "
                          f"out_dir or sweep.name, or delete that directory to retrain it")


def check_same_defaults(run_dir: Path, saved: dict | None, now: dict) -> None:
    """The per-size defaults (train.batch_tokens, lr, warmup_tokens) a run directory was started with must still be
    what this version computes (`now`): resuming with others would change the run mid-way."""
    if saved is None:
        return
    there = saved.get("train") or {}
    differ = {k: (there.get(k), v) for k, v in now.items() if there.get(k) is not None and there.get(k) != v}
    if differ:
        raise OtherSettings(f"{run_dir} was started with other per-size defaults ("
                          + "; ".join(f"train.{k}: {a!r} there, {b!r} now" for k, (a, b) in differ.items())
                          + "); to resume it as it was, pass " + " ".join(f"train.{k}={a}" for k, (a, _) in
                          differ.items()) + f" (a single run also needs run_name={Path(run_dir).name}, which those "
                          f"overrides would otherwise rename), or use another out_dir or sweep.name")


def branch_point(trunk_dir: Path, step: int) -> Path:
    """Where a cooldown trunk keeps its state at a branch point until the branches from there complete."""
    return Path(trunk_dir) / BRANCH_POINT.format(step=step)


# ------------------------------------------------------------------------------------------------ tasks
def read_tasks(run_dir: Path) -> dict | None:
    """tasks.json's content (format sweep-tasks/2, sweep/tasks/items.py); None when absent or unreadable."""
    path = Path(run_dir) / TASKS
    try:
        out = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return out if isinstance(out, dict) else None


def write_tasks(run_dir: Path, scores: dict) -> None:
    write_json_atomic(Path(run_dir) / TASKS, scores)


# ------------------------------------------------------------------------------------------------ metrics
def read_events(run_dir: Path) -> Iterator[dict]:
    """metrics.jsonl's events; a torn last line (a killed run) is skipped, not fatal."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict):
            yield event


# ---------------------------------------------------------------------------------------- sweep directory
def run_dirs(sweep_dir: Path) -> list[Path]:
    """The run directories of a sweep directory, by name (analysis, cache, wandb and hidden folders left out)."""
    return sorted(p for p in Path(sweep_dir).iterdir()
                  if p.is_dir() and p.name not in NOT_RUNS and not p.name.startswith("."))


def failed_cells(sweep_dir: Path) -> list[tuple[str, str]]:
    """(run name, error) of every cell whose summary is not `completed`."""
    cells = []
    for run_dir in run_dirs(sweep_dir):
        summary = read_summary(run_dir)
        if summary is not None and summary.get("status") != "completed":
            cells.append((run_dir.name, summary.get("error", summary.get("status", "?"))))
    return cells


def read_manifest(sweep_dir: Path) -> list[dict] | None:
    """manifest.jsonl's cells in launch order (name, status, reason, overrides, plan: grid_plan.py); None when the
    sweep directory has none (single runs, a sweep from before manifests). Written atomically, one that does not
    parse was damaged by hand: a ConfigError naming the file and line, never a guess."""
    path = Path(sweep_dir) / MANIFEST
    if not path.exists():
        return None
    fix = "restore it, or delete it (the next launch of the grid writes it again)"
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {path} ({err}); {fix}") from None
    cells = []
    for number, line in enumerate(lines, 1):
        try:
            cells.append(json.loads(line))
        except ValueError:
            cells.append(None)
        if not isinstance(cells[-1], dict) or not isinstance(cells[-1].get("name"), str) or \
                cells[-1].get("status") not in (PLANNED, SKIPPED):
            raise ConfigError(f"{path}:{number} is not a cell of a grid's manifest (a JSON object with a name and "
                              f"a status {PLANNED} or {SKIPPED}); {fix}")
    return cells
