"""How sweep writes files: atomically, and with one JSON policy.

Atomic: the bytes go to a temporary name beside the target, are fsynced, and are renamed over it, and the rename is
made durable by an fsync of the directory, so a reader (or a relaunch after a crash or a power loss) sees the old
file or the new one, never half of one; on an error the temporary file is removed, and a temporary file that a
killed process left behind is removed by the next write of the same file.

JSON: a non-finite number (NaN, ±inf) is written as null, never as a huge stand-in (1e308 would pass a positivity
check downstream) nor as the non-standard `Infinity`; readers treat null as "no value".
"""

from __future__ import annotations

import json
import math
import os
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def atomic_write(path: Path, mode: str = "w", keep_previous: Path | None = None) -> Iterator[IO]:
    """Open a temporary file for `path`; on a clean exit fsync it and rename it into place (first moving the
    current file to `keep_previous`, when given); on an error delete it and leave `path` as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    _remove_orphans(path)
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as err:
        if err.filename is None:  # a failed write names no file: name the one being written
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def fsync_dir(directory: Path) -> None:
    """Make the renames and creations in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; the rename itself is done
        pass
    finally:
        os.close(fd)


def _remove_orphans(path: Path) -> None:
    """Delete the temporary files of `path` whose writer is no longer alive (killed mid-write)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:-len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def json_safe(obj):
    """`obj` with non-finite floats as None, numpy scalars and arrays as Python numbers and lists, keys as str."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy scalars and arrays, torch scalars
        return json_safe(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps(obj, **kwargs) -> str:
    """JSON under the policy above; allow_nan=False makes any non-finite number that slipped through an error."""
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


def write_json_atomic(path: Path, obj) -> None:
    write_text_atomic(path, dumps(obj, indent=2) + "\n")


def lock_entry(cache_root: Path, name: str, log, what: str):
    """The held lock of cache entry `name` under cache_root (created if need be): at once, or after saying that
    another process is preparing `what` and waiting for it. An OSError means the cache is not writable."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(Path(cache_root) / f"{name}.lock"))
    Path(cache_root).mkdir(parents=True, exist_ok=True)
    try:
        lock.acquire(timeout=1)
    except Timeout:
        log.info("another process is preparing %s; waiting for it", what)
        lock.acquire()
    return lock

