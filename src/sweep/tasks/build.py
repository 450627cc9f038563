"""The task suite's files: `prepare` writes the eval items of (seed, items_per_variant) into a cache entry, or finds
the finished entry; `load_items` reads them back, checked against the manifest's hash; `check_tokenizer` refuses a
tokenizer that cannot encode task text one symbol per token.

An entry `<cache_root>/tasks-<key>/` holds eval.jsonl (one item per line, keys sorted: the bytes depend only on the
inputs) and manifest.json (the inputs, the sha256 of eval.jsonl, per-variant counts and chance levels). As in the
data cache, it is built in a hidden tmp directory under a file lock and renamed into place, so readers only see
finished entries. An entry whose eval.jsonl no longer matches its manifest is rebuilt (under the lock), not
refused: its contents are a pure function of the inputs and take about a second to make, so the rebuilt entry is
the one that was damaged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..files import atomic_write, lock_entry, write_json_atomic
from .items import FORMAT, Item, SymbolCodec, TaskError
from .suite import Suite, chance

log = logging.getLogger(__name__)

EVAL_FILE, MANIFEST = "eval.jsonl", "manifest.json"


@dataclass(frozen=True)
class SuiteFiles:
    dir: Path
    manifest: dict = field(hash=False, compare=False, repr=False)
    built_now: bool = field(default=False, compare=False)  # this prepare() call wrote it (not found in cache)

    @property
    def eval_path(self) -> Path:
        return self.dir / EVAL_FILE

    @property
    def hash(self) -> str:
        """sha256 of eval.jsonl: what tasks.json records as the suite's hash."""
        return self.manifest["sha256"]

    @property
    def record(self) -> dict:
        """tasks.json's "suite" entry."""
        m = self.manifest
        return {"seed": m["seed"], "hash": m["sha256"], "items_per_variant": m["items_per_variant"],
                "eval_share": m["eval_share"]}


def entry_name(seed: int, items_per_variant: int, eval_share: float = 0.2) -> str:
    # The name hashes these exact bytes: changing how they are serialized orphans every existing entry.
    inputs = {"format": FORMAT, "seed": seed, "items_per_variant": items_per_variant}
    if eval_share != 0.2:  # the default's entries keep their name
        inputs["eval_share"] = eval_share
    blob = json.dumps(inputs, sort_keys=True)
    return f"tasks-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def prepare(cache_root: Path, seed: int, items_per_variant: int, eval_share: float = 0.2) -> SuiteFiles:
    """Writes the suite's eval items into a cache entry, or finds the finished entry; safe across processes."""
    if not isinstance(items_per_variant, int) or items_per_variant < 1:
        raise TaskError(f"tasks.items_per_variant={items_per_variant!r} must be a positive integer")
    cache_root = Path(cache_root)
    name = entry_name(seed, items_per_variant, eval_share)
    entry = cache_root / name
    found = _verified(entry, seed, items_per_variant, eval_share)
    if found is not None:
        return found
    try:
        lock = lock_entry(cache_root, name, log, f"the task suite {entry}")
    except OSError as err:
        raise _unwritable(cache_root, err) from None
    try:
        found = _verified(entry, seed, items_per_variant, eval_share)  # the process we waited for built it
        if found is not None:
            return found
        if entry.exists():
            log.warning("the task suite %s does not match its manifest; rebuilding it", entry)
        for stale in [*cache_root.glob(f".tmp-{name}-*"), *([entry] if entry.exists() else [])]:
            shutil.rmtree(stale, ignore_errors=True)  # leftovers of a crashed prepare, or the damaged entry
        tmp = cache_root / f".tmp-{name}-{os.getpid()}"
        try:
            tmp.mkdir()
            manifest = _write(tmp, seed, items_per_variant, eval_share)
            os.replace(tmp, entry)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise _unwritable(cache_root, err) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        lock.release()
    log.info("prepared the task suite %s: %d items", entry, sum(v["n"] for v in manifest["variants"].values()))
    return SuiteFiles(entry, manifest, built_now=True)


def _write(directory: Path, seed: int, items_per_variant: int, eval_share: float) -> dict:
    items = Suite(seed, eval_share).eval_items(items_per_variant)
    lines = "".join(json.dumps(_as_record(item), sort_keys=True) + "\n" for item in items).encode()
    with atomic_write(directory / EVAL_FILE, "wb") as f:
        f.write(lines)
    by_key: dict[str, list[Item]] = {}
    for item in items:
        by_key.setdefault(item.key, []).append(item)
    manifest = {"format": FORMAT, "seed": seed, "items_per_variant": items_per_variant, "eval_share": eval_share,
                "sha256": hashlib.sha256(lines).hexdigest(),
                # n < items_per_variant: the variant's partition holds fewer items (add d1; the 256 facts)
                "variants": {key: {"n": len(group), "chance": chance(group)} for key, group in by_key.items()}}
    write_json_atomic(directory / MANIFEST, manifest)  # last: an entry with a manifest is complete
    return manifest


def _verified(entry: Path, seed: int, items_per_variant: int, eval_share: float) -> SuiteFiles | None:
    """The finished entry, or None when it is missing or does not match its manifest or its inputs."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
        data = (entry / EVAL_FILE).read_bytes()
    except (OSError, ValueError):  # missing (not built yet), unreadable, or not JSON
        return None
    expected = {"format": FORMAT, "seed": seed, "items_per_variant": items_per_variant, "eval_share": eval_share}
    if not isinstance(manifest, dict) or any(manifest.get(k) != v for k, v in expected.items()):
        return None
    if manifest.get("sha256") != hashlib.sha256(data).hexdigest() or not isinstance(manifest.get("variants"), dict):
        return None
    return SuiteFiles(entry, manifest)


def _as_record(item: Item) -> dict:
    return {"task": item.task, "variant": item.variant, "prompt": item.prompt, "answer": item.answer,
            "choices": list(item.choices), "final": item.final, "digits": list(item.digits), "axis": item.axis}


def load_items(files: SuiteFiles) -> list[Item]:
    """The eval items of a prepared suite, after checking eval.jsonl still has the manifest's hash."""
    try:
        data = files.eval_path.read_bytes()
    except OSError as err:
        raise TaskError(f"cannot read the task suite {files.eval_path} ({err.strerror or err}); delete "
                        f"{files.dir} to re-prepare it") from None
    if hashlib.sha256(data).hexdigest() != files.hash:
        raise TaskError(f"{files.eval_path} does not match the hash in its manifest; delete {files.dir} to "
                        f"re-prepare it")
    items = []
    for line in data.decode().splitlines():
        r = json.loads(line)
        items.append(Item(r["task"], r["variant"], r["prompt"], r["answer"], tuple(r["choices"]), r["final"],
                          tuple(r["digits"]), r["axis"]))
    return items


def check_tokenizer(tokenizer) -> SymbolCodec:
    """The codec for task text, or TaskError naming a task symbol the tokenizer has no single token for."""
    return SymbolCodec(tokenizer)


def _unwritable(cache_root: Path, err: OSError) -> TaskError:
    what = f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")
    return TaskError(f"cannot write the task suite cache {cache_root} ({what}); point the cache at a writable "
                     f"directory")
