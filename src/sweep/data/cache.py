"""The cache entry of a prepared corpus: `prepare` tokenizes a Source into an entry keyed by everything that
determines its contents (format, source fingerprint, document, tokenizer and split settings), or finds the
finished entry; `describe` says in a few lines what an entry holds.

A cache entry `<cache_root>/<name>-v<vocab>-<key>/` holds tokenizer.json, train.bin, val.bin and manifest.json
(what was read, how it was split, the token counts: see split.py). It is built in a hidden tmp directory under a
file lock and renamed into place when complete, so readers only ever see finished entries and the manifest's
presence means "done"; an interrupted prepare (an exception, Ctrl-C, SIGKILL) leaves nothing under the final name
and the next prepare redoes it. A damaged entry or an unwritable cache directory is a DataError naming the path
and the fix.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..files import lock_entry, write_json_atomic
from .documents import MAX_DOC_CHARS
from .errors import DataError
from .sources import check_location, open_source
from .split import MIN_TRAIN_OVER_VAL, TAIL_MARGIN, VAL_EVERY, VAL_MIN_DOCS, build
from .tokenizer import EOT, load_tokenizer, token_bytes

if TYPE_CHECKING:
    from ..config import DataConfig

log = logging.getLogger(__name__)

# Bump when the shard layout, the document splitting, the split scheme or the tokenizer recipe changes.
# 2: .txt read directly, paragraphs cut to ≤ MAX_DOC_CHARS, CRLF read as LF; jsonl/parquet read directly;
#    the tail split when the document split falls short.
FORMAT = 2
MANIFEST = "manifest.json"
_ENTRY_FILES = ("tokenizer.json", "train.bin", "val.bin")
_MANIFEST_KEYS = ("name", "vocab_size", "fingerprint", "documents", "text_bytes", "train_tokens", "val_tokens",
                  "val_bytes", "split", "seconds")


@dataclass(frozen=True)
class PreparedData:
    dir: Path
    tokenizer_path: Path
    train_path: Path
    val_path: Path
    vocab_size: int
    fingerprint: dict = field(hash=False)
    manifest: dict = field(default_factory=dict, hash=False, compare=False, repr=False)
    built_now: bool = field(default=False, compare=False)  # this prepare() call tokenized it (not found in cache)

    @property
    def train_tokens(self) -> int:
        """Unique tokens in the train shard: what one epoch is."""
        return int(self.manifest["train_tokens"])

    def token_bytes(self) -> np.ndarray:
        """UTF-8 bytes each token id stands for (0 for special tokens), so bytes of a span = sum over ids."""
        return token_bytes(load_tokenizer(self.tokenizer_path))


def check(cfg: DataConfig) -> None:
    """Every check of a data config that needs no work (the vocabulary, the token cap, where the corpus is): run by
    the launcher before anything is created."""
    check_settings(cfg)
    check_location(cfg)


def check_settings(cfg: DataConfig) -> None:
    """The checks of the numbers alone (vocabulary, token cap)."""
    if cfg.vocab_size < 257:
        raise DataError(f"data.vocab_size={cfg.vocab_size} is below 257 (256 bytes + {EOT}); raise it")
    if cfg.max_tokens is not None and cfg.max_tokens < MIN_TRAIN_OVER_VAL * cfg.val_tokens:
        raise DataError(f"data.max_tokens={cfg.max_tokens} leaves too little to train on next to "
                        f"data.val_tokens={cfg.val_tokens} (needs ≥ {MIN_TRAIN_OVER_VAL}×); raise one or lower "
                        f"the other")


def prepare(cfg: DataConfig, cache_root: Path) -> PreparedData:
    """Tokenizes the corpus into a cache entry, or finds the finished entry; safe across processes."""
    check_settings(cfg)
    src = open_source(cfg)  # checks the location as it opens it: a data.path directory is walked once here
    settings = {"tokenizer": {"kind": "byte-level BPE", "vocab_size": cfg.vocab_size, "min_frequency": 2,
                              "train_bytes": cfg.tokenizer_train_bytes, "special": [EOT]},
                "documents": {"txt": "blank-line paragraphs", "max_chars": MAX_DOC_CHARS},
                "split": {"val_tokens": cfg.val_tokens, "val_every": VAL_EVERY, "val_min_docs": VAL_MIN_DOCS,
                          "by": "blake2b(doc index)", "else": "tail", "tail_margin": TAIL_MARGIN},
                "max_tokens": cfg.max_tokens}
    # The key hashes these exact bytes: changing how they are serialized would orphan every existing entry.
    blob = json.dumps({"format": FORMAT, "fingerprint": src.fingerprint, **settings}, sort_keys=True)
    key = hashlib.sha256(blob.encode()).hexdigest()
    name = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', cfg.name)}-v{cfg.vocab_size}-{key[:12]}"
    cache_root = Path(cache_root)
    entry = cache_root / name
    if (entry / MANIFEST).exists():
        return _load_entry(entry)
    try:
        lock = lock_entry(cache_root, name, log, str(entry))
    except OSError as err:
        raise _unwritable(cache_root, err) from None
    try:
        if (entry / MANIFEST).exists():  # the process we waited for built it
            return _load_entry(entry)
        for stale in [*cache_root.glob(f".tmp-{name}-*"), *([entry] if entry.exists() else [])]:
            shutil.rmtree(stale, ignore_errors=True)  # leftovers of a crashed prepare: we hold the lock
        tmp = cache_root / f".tmp-{name}-{os.getpid()}"
        try:
            tmp.mkdir()
        except OSError as err:
            raise _unwritable(cache_root, err) from None
        try:
            manifest = {"format": FORMAT, "key": key, "name": cfg.name, "fingerprint": src.fingerprint,
                        "settings": settings, **build(cfg, src, tmp)}
            write_json_atomic(tmp / MANIFEST, manifest)  # last: an entry with a manifest is complete
            os.replace(tmp, entry)
            log.info("prepared %s: %d train / %d val tokens (%s split) in %.0f s", entry, manifest["train_tokens"],
                     manifest["val_tokens"], manifest["split"]["scheme"], manifest["seconds"])
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        lock.release()
    return _load_entry(entry, built_now=True)


def _unwritable(cache_root: Path, err: OSError) -> DataError:
    what = f"{err.strerror or err}" + (f": {err.filename}" if err.filename else "")
    return DataError(f"cannot write the data cache {cache_root} ({what}); set data.cache_dir=DIR to a writable "
                     f"directory (absolute, or relative to out_dir), or out_dir=DIR")


def _load_entry(entry: Path, built_now: bool = False) -> PreparedData:
    path, fix = entry / MANIFEST, f"delete the cache entry {entry} to re-prepare it"
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError: not JSON, or not UTF-8
        raise DataError(f"{path} is unreadable or not JSON ({err}); {fix}") from None
    missing = [k for k in _MANIFEST_KEYS if k not in m] if isinstance(m, dict) else ["everything (not an object)"]
    if missing:
        raise DataError(f"{path} is damaged: it lacks {', '.join(missing)}; {fix}")
    for name in _ENTRY_FILES:
        if not (entry / name).is_file():
            raise DataError(f"{entry / name} is missing from its cache entry; {fix}")
    return PreparedData(entry, entry / "tokenizer.json", entry / "train.bin", entry / "val.bin", m["vocab_size"],
                        m["fingerprint"], m, built_now)


def describe(prepared: PreparedData) -> str:
    """What a prepared entry holds, in a few lines: what was read, how it was split, the token counts."""
    m, fp = prepared.manifest, prepared.fingerprint
    split, mb = m["split"], lambda b: f"{b / 1e6:,.1f} MB"
    what = (f"{fp['files']:,} file{'s' * (fp['files'] != 1)}, {mb(fp['bytes'])}" if "files" in fp
            else f"hub dataset {fp.get('hub_path')}")
    done = "" if m.get("complete", True) else " (the rest was not needed: both splits were full)"
    when = "prepared now" if prepared.built_now else "found in the cache"
    lines = [f"{m['name']} → {prepared.dir} ({when})",
             f"  read   {what} → {m['documents']:,} documents, {mb(m['text_bytes'])} of text{done}"]
    if split["scheme"] == "documents":
        lines += [f"  val    {m['val_tokens']:,} tokens from {split['val_docs']:,} held-out documents (1 in "
                  f"{VAL_EVERY}, by a hash of their index)",
                  f"  train  {m['train_tokens']:,} tokens from {split['train_docs']:,} documents"]
    else:
        first = split["document_split"]
        why = (f"held-out documents gave only {first['val_tokens']:,} tokens, from {first['val_docs']:,} documents"
               if first["val_tokens"] < m["val_tokens"] else
               f"held-out documents left only {first['train_tokens']:,} tokens to train on")
        lines += [f"  val    the corpus's last {m['val_tokens']:,} tokens ({why})",
                  f"  train  {m['train_tokens']:,} tokens: everything before them"]
    bpt = m["val_bytes"] / m["val_tokens"] if m["val_tokens"] else float("nan")
    lines.append(f"  vocab  {prepared.vocab_size:,} tokens, {bpt:.2f} bytes/token on val; tokenized in "
                 f"{m['seconds']:,.1f} s")
    return "\n".join(lines)
