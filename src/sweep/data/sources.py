"""Where a corpus comes from: the running interpreter's standard library (pystdlib), local files (.txt,
.jsonl/.json, .parquet; read by `local`) or a Hugging Face Hub dataset. Each is a Source (`documents`): documents
as a stream of strings, a fingerprint that keys the cache, and a fast check that fails before any work. Bad input
is refused early, with a DataError naming the file or dataset and the fix."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sysconfig
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .documents import Source
from .errors import DataError
from .local import local_files, local_source, text_of

if TYPE_CHECKING:
    from ..config import DataConfig

__all__ = ["Source", "check_location", "hub_source", "local_source", "open_source", "pystdlib_source"]


def open_source(cfg: DataConfig) -> Source:
    """The Source data.source names."""
    openers = {"pystdlib": lambda cfg: pystdlib_source(), "local": local_source, "hub": hub_source}
    if cfg.source not in openers:
        raise DataError(f"data.source={cfg.source!r} is not one of {', '.join(openers)}")
    return openers[cfg.source](cfg)


def pystdlib_source() -> Source:
    # The test suite is included: it is ordinary Python and more than doubles the corpus. Its few deliberately
    # mis-encoded files fail UTF-8 and are skipped (and counted), like any other undecodable file.
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for top, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in ("site-packages", "dist-packages", "__pycache__"))
        files += [Path(top, n) for n in names if n.endswith(".py")]
    files.sort(key=lambda p: p.relative_to(root).as_posix())
    digest, total, skipped = hashlib.sha256(), 0, 0
    for p in files:
        data = p.read_bytes()
        rel = p.relative_to(root).as_posix().encode()
        digest.update(struct.pack("<QQ", len(rel), len(data)) + rel + data)
        total += len(data)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            skipped += 1
    fp = {"source": "pystdlib", "python": sysconfig.get_python_version(), "files": len(files), "bytes": total,
          "undecodable_skipped": skipped, "sha256": digest.hexdigest()}

    def documents() -> Iterator[str]:
        for p in files:
            try:
                yield p.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                continue

    return Source(f"the standard library at {root}", fp, documents, total)


def check_location(cfg: DataConfig) -> None:
    """The cheap checks of where a corpus is (before any work): data.path exists and holds corpus files, a hub
    dataset is named. Deeper ones (file contents, the hub's reply) come when the source is opened."""
    if cfg.source == "local":
        local_files(cfg)
    elif cfg.source == "hub" and not cfg.hub_path:
        raise DataError(f"data={cfg.name} needs data.hub_path (a datasets repo id)")


def _texts(rows, text_field: str, where: str) -> Iterator[str]:
    """The text field of each row, or a DataError naming the row (the same check local files get)."""
    for n, row in enumerate(rows):
        yield text_of(row, text_field, f"row {n} of {where}")


def hub_source(cfg: DataConfig) -> Source:
    check_location(cfg)
    name = cfg.hub_path + (f" (config {cfg.hub_name})" if cfg.hub_name else "")
    fp = {"source": "hub", "hub_path": cfg.hub_path, "hub_name": cfg.hub_name, "split": cfg.hub_split,
          "text_field": cfg.text_field}
    fix = (f"Pre-download it on a machine with internet (`hf download --repo-type dataset {cfg.hub_path} "
           f"--local-dir DIR`, `--include` to pick one config's files) and use data=local data.path=DIR, "
           f"or use data=pystdlib (offline)")

    def check() -> dict:
        # datasets retries an unreachable hub for a long while; one short request tells us at once.
        if any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE",
                                                                                "HF_DATASETS_OFFLINE")):
            return {}  # offline mode: datasets answers from its local cache or fails fast itself
        url = f"{os.environ.get('HF_ENDPOINT', 'https://huggingface.co').rstrip('/')}/api/datasets/{cfg.hub_path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return {"hub_revision": json.load(resp).get("sha")}
        except urllib.error.HTTPError as err:
            if err.code == 404:
                raise DataError(f"hub dataset {name} does not exist (404 from {url}); check data.hub_path") from None
            return {}  # reachable (e.g. gated: datasets will use the user's token)
        except (OSError, ValueError) as err:
            raise DataError(f"cannot reach the Hugging Face Hub for dataset {name}: {err}. {fix}") from None

    def documents() -> Iterator[str]:
        import datasets
        try:
            rows = datasets.load_dataset(cfg.hub_path, cfg.hub_name, split=cfg.hub_split, streaming=True)
            yield from _texts(rows, cfg.text_field, f"hub dataset {name}")
        except DataError:
            raise
        except Exception as err:
            raise DataError(f"could not load hub dataset {name} split {cfg.hub_split}: "
                            f"{type(err).__name__}: {err}. {fix}") from None

    return Source(f"hub dataset {name}", fp, documents, check=check)
