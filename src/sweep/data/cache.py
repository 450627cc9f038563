"""The cache entry of a prepared corpus: `prepare` tokenizes a Source into an entry keyed by everything that
determines its contents (format, source fingerprint, tokenizer and split settings), or finds the finished entry.

A cache entry `<cache_root>/<name>-v<vocab>-<key>/` holds tokenizer.json, train.bin, val.bin and manifest.json.
It is built in a hidden tmp directory under a file lock and renamed into place when complete, so readers
only ever see finished entries and the manifest's presence means "done".

Split: a document whose index hashes into 1 of VAL_EVERY buckets is a held-out candidate. Candidates fill the
val shard in stream order (each gives at most val_tokens/VAL_MIN_DOCS tokens; the shard is trimmed to exactly
val_tokens); everything else, surplus candidates included, is train (capped by max_tokens). The tokenizer is
trained on non-candidates only, so it never sees validation text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
from filelock import FileLock, Timeout
from tqdm import tqdm

from ..files import write_json_atomic
from .errors import DataError
from .shards import shard_writer
from .sources import Source, open_source
from .tokenizer import EOT, load_tokenizer, token_bytes, train_tokenizer

if TYPE_CHECKING:
    from ..config import DataConfig

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the shard layout, the split scheme or the tokenizer recipe changes
VAL_EVERY = 16  # one document in 16 (by a hash of its index) may be held out for validation
VAL_MIN_DOCS = 16  # no held-out document gives more than val_tokens/16 tokens: the val set spans many documents
MIN_TRAIN_OVER_VAL = 2  # the train split must hold at least this many times val_tokens
MANIFEST = "manifest.json"
_BATCH_CHARS = 1 << 21  # text per encode_batch call: bounds memory, keeps the Rust threads busy


@dataclass(frozen=True)
class PreparedData:
    dir: Path
    tokenizer_path: Path
    train_path: Path
    val_path: Path
    vocab_size: int
    fingerprint: dict = field(hash=False)

    def token_bytes(self) -> np.ndarray:
        """UTF-8 bytes each token id stands for (0 for special tokens), so bytes of a span = sum over ids."""
        return token_bytes(load_tokenizer(self.tokenizer_path))


def _is_val(index: int) -> bool:
    h = hashlib.blake2b(index.to_bytes(8, "little"), digest_size=8, person=b"sweepval").digest()
    return int.from_bytes(h, "little") % VAL_EVERY == 0


def prepare(cfg: DataConfig, cache_root: Path) -> PreparedData:
    """Tokenizes the corpus into a cache entry, or finds the finished entry; safe across processes."""
    if cfg.vocab_size < 257:
        raise DataError(f"data.vocab_size={cfg.vocab_size} is below 257 (256 bytes + {EOT}); raise it")
    if cfg.max_tokens is not None and cfg.max_tokens < MIN_TRAIN_OVER_VAL * cfg.val_tokens:
        raise DataError(f"data.max_tokens={cfg.max_tokens} leaves too little to train on next to "
                        f"data.val_tokens={cfg.val_tokens} (needs ≥ {MIN_TRAIN_OVER_VAL}×); raise one or lower "
                        f"the other")
    src = open_source(cfg)
    settings = {"tokenizer": {"kind": "byte-level BPE", "vocab_size": cfg.vocab_size, "min_frequency": 2,
                              "train_bytes": cfg.tokenizer_train_bytes, "special": [EOT]},
                "split": {"val_tokens": cfg.val_tokens, "val_every": VAL_EVERY, "val_min_docs": VAL_MIN_DOCS,
                          "by": "blake2b(doc index)"},
                "max_tokens": cfg.max_tokens}
    # The key hashes these exact bytes: changing how they are serialized would orphan every existing entry.
    blob = json.dumps({"format": FORMAT, "fingerprint": src.fingerprint, **settings}, sort_keys=True)
    key = hashlib.sha256(blob.encode()).hexdigest()
    name = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', cfg.name)}-v{cfg.vocab_size}-{key[:12]}"
    cache_root = Path(cache_root)
    entry = cache_root / name
    if (entry / MANIFEST).exists():
        return _load_entry(entry)
    cache_root.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(cache_root / f"{name}.lock"))
    try:
        lock.acquire(timeout=1)
    except Timeout:
        log.info("another process is preparing %s; waiting for it", entry)
        lock.acquire()
    try:
        if (entry / MANIFEST).exists():  # the process we waited for built it
            return _load_entry(entry)
        for stale in [*cache_root.glob(f".tmp-{name}-*"), *([entry] if entry.exists() else [])]:
            shutil.rmtree(stale, ignore_errors=True)  # leftovers of a crashed prepare: we hold the lock
        tmp = cache_root / f".tmp-{name}-{os.getpid()}"
        tmp.mkdir()
        try:
            manifest = {"format": FORMAT, "key": key, "name": cfg.name, "fingerprint": src.fingerprint,
                        "settings": settings, **_build(cfg, src, tmp)}
            write_json_atomic(tmp / MANIFEST, manifest)  # last: an entry with a manifest is complete
            os.replace(tmp, entry)
            log.info("prepared %s: %d train / %d val tokens in %.0f s", entry, manifest["train_tokens"],
                     manifest["val_tokens"], manifest["seconds"])
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        lock.release()
    return _load_entry(entry)


def _load_entry(entry: Path) -> PreparedData:
    m = json.loads((entry / MANIFEST).read_text())
    return PreparedData(entry, entry / "tokenizer.json", entry / "train.bin", entry / "val.bin",
                        m["vocab_size"], m["fingerprint"])


def _tokenizer_texts(src: Source, budget: int) -> Iterator[str]:
    """Training documents only (never a validation candidate), up to `budget` UTF-8 bytes."""
    seen = False
    for i, doc in enumerate(src.documents()):
        seen = seen or bool(doc)
        if budget <= 0:
            return
        if doc and not _is_val(i):
            doc = doc[:budget]  # chars ≥ bytes, so this never cuts more than the budget allows
            budget -= len(doc.encode("utf-8"))
            yield doc
    if not seen:
        raise DataError(f"no text in {src.describe}: the corpus is empty")


def _build(cfg: DataConfig, src: Source, out: Path) -> dict:
    t0, facts = time.time(), src.check()
    log.info("training a %d-token BPE on up to %d bytes of %s", cfg.vocab_size, cfg.tokenizer_train_bytes,
             src.describe)
    tok = train_tokenizer(_tokenizer_texts(src, cfg.tokenizer_train_bytes), cfg.vocab_size)
    tok.save(str(out / "tokenizer.json"))
    tok, t_tok = load_tokenizer(out / "tokenizer.json"), time.time() - t0
    vocab, eot, tb = tok.get_vocab_size(), tok.token_to_id(EOT), token_bytes(tok)
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)  # no offsets: faster, same ids
    train_cap, per_doc = cfg.max_tokens or float("inf"), -(-cfg.val_tokens // VAL_MIN_DOCS)
    n = {"train_tokens": 0, "val_tokens": 0, "train_docs": 0, "val_docs": 0, "val_bytes": 0, "docs_read": 0}
    dtype = np.uint16 if vocab <= 1 << 16 else np.uint32

    def flush(batch: list[tuple[int, str]]) -> None:
        for (i, doc), enc in zip(batch, encode([d for _, d in batch])):
            ids = np.append(np.asarray(enc.ids, np.int64), eot)
            if _is_val(i) and n["val_tokens"] < cfg.val_tokens:
                # A long document gives its beginning, still closed by EOT; the rest is dropped, not trained on.
                limit = min(per_doc, cfg.val_tokens - n["val_tokens"])
                keep = ids if len(ids) <= limit else np.append(ids[: limit - 1], eot)
                nbytes = int(tb[keep].sum())
                if keep is ids and nbytes != len(doc.encode("utf-8")):
                    raise RuntimeError(f"bits-per-byte bookkeeping is off for document {i}")  # a bug, not input
                val.write(keep)
                n["val_tokens"] += len(keep)
                n["val_docs"] += 1
                n["val_bytes"] += nbytes  # a cut document counts exactly the bytes of its kept tokens
            elif n["train_tokens"] < train_cap:  # held-out candidates past the val quota are training text
                keep = ids[: int(min(len(ids), train_cap - n["train_tokens"]))]
                train.write(keep)
                n["train_tokens"] += len(keep)
                n["train_docs"] += 1

    with shard_writer(out / "val.bin", dtype) as val, shard_writer(out / "train.bin", dtype) as train, \
            tqdm(total=src.total_bytes, unit="B", unit_scale=True, desc=f"tokenize {cfg.name}", mininterval=1) as bar:
        batch, chars = [], 0
        for i, doc in enumerate(src.documents()):
            if n["val_tokens"] >= cfg.val_tokens and n["train_tokens"] >= train_cap:
                break
            n["docs_read"] += 1
            bar.update(len(doc.encode("utf-8")))
            if doc:
                batch.append((i, doc))
                chars += len(doc)
            if chars >= _BATCH_CHARS or len(batch) >= 4096:
                flush(batch)
                batch, chars = [], 0
        flush(batch)
        if n["val_tokens"] < cfg.val_tokens:
            raise DataError(f"{src.describe} is too small for data.val_tokens={cfg.val_tokens}: its held-out "
                            f"documents (1 in {VAL_EVERY}) give only {n['val_tokens']} tokens; lower data.val_tokens "
                            f"or use a larger corpus")
        if n["train_tokens"] < MIN_TRAIN_OVER_VAL * cfg.val_tokens:
            raise DataError(f"{src.describe} leaves only {n['train_tokens']} training tokens next to "
                            f"data.val_tokens={cfg.val_tokens} (needs ≥ {MIN_TRAIN_OVER_VAL}×); lower "
                            f"data.val_tokens or use a larger corpus")
    return {"vocab_size": vocab, "eot_id": eot, "dtype": np.dtype(dtype).name, **n,
            "tokenizer_seconds": round(t_tok, 2), "seconds": round(time.time() - t0, 2), **facts}
