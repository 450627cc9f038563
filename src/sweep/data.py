"""Corpus sources → byte-level BPE tokenizer → token shards (memmap) → batches; bits-per-byte bookkeeping.

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
import struct
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import numpy as np
import torch
from filelock import FileLock, Timeout
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm import tqdm

from sweep.config import DataConfig

log = logging.getLogger(__name__)

EOT = "<|endoftext|>"
FORMAT = 1  # bump when the shard layout, the split scheme or the tokenizer recipe changes
VAL_EVERY = 16  # one document in 16 (by a hash of its index) may be held out for validation
VAL_MIN_DOCS = 16  # no held-out document gives more than val_tokens/16 tokens: the val set spans many documents
MIN_TRAIN_OVER_VAL = 2  # the train split must hold at least this many times val_tokens
MANIFEST = "manifest.json"
_MAGIC = b"SWEEPTOK"
_HEADER = struct.Struct("<8sIIQ8x")  # magic, version, bytes per token, token count, reserved → 32 bytes
_SHARD_VERSION = 1
_DTYPES = {2: np.dtype("<u2"), 4: np.dtype("<u4")}
_BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
_HASH_CONTENT_MAX = 1 << 20  # local files up to 1 MiB are fingerprinted by content, larger by size+mtime
_BATCH_CHARS = 1 << 21  # text per encode_batch call: bounds memory, keeps the Rust threads busy


class DataError(ValueError):
    """An input error a user can fix; the message names the file or dataset and the fix."""


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
        return _token_bytes(load_tokenizer(self.tokenizer_path))


# ---------------------------------------------------------------- shards

class _ShardWriter:
    """Streams tokens to `<path>.tmp<pid>`; on a clean exit patches the count into the header and renames the
    file into place, on an error deletes it: a shard under its final name is always complete."""

    def __init__(self, path: Path, dtype):
        self.path, self.dtype, self.count = Path(path), np.dtype(dtype).newbyteorder("<"), 0
        if self.dtype.itemsize not in _DTYPES or self.dtype.kind != "u":
            raise ValueError(f"shard dtype must be uint16 or uint32, got {dtype}")
        self.tmp = self.path.with_name(f"{self.path.name}.tmp{os.getpid()}")
        self.file = open(self.tmp, "wb")
        self.file.write(_HEADER.pack(_MAGIC, _SHARD_VERSION, self.dtype.itemsize, 0))

    def write(self, tokens: np.ndarray) -> None:
        tokens = np.asarray(tokens)
        if tokens.size and (tokens.min() < 0 or tokens.max() > np.iinfo(self.dtype).max):
            raise ValueError(f"token ids out of range for {self.dtype} in {self.path}")
        self.file.write(tokens.astype(self.dtype, copy=False).tobytes())
        self.count += tokens.size

    def __enter__(self) -> "_ShardWriter":
        return self

    def __exit__(self, error, *_) -> None:
        if error is None:
            self.file.seek(0)
            self.file.write(_HEADER.pack(_MAGIC, _SHARD_VERSION, self.dtype.itemsize, self.count))
            self.file.flush()
            os.fsync(self.file.fileno())
        self.file.close()
        if error is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)


def write_tokens(path: Path, chunks: Iterable[np.ndarray], dtype) -> int:
    """Writes a shard atomically from an iterable of token arrays; returns the token count."""
    with _ShardWriter(path, dtype) as writer:
        for chunk in chunks:
            writer.write(chunk)
    return writer.count


def open_tokens(path: Path) -> np.ndarray:
    """A read-only memmap of a shard's tokens, after checking the header against the file."""
    path = Path(path)
    fix = f"delete its cache entry {path.parent} to re-prepare"
    size = path.stat().st_size  # a missing file raises FileNotFoundError, which names it
    with open(path, "rb") as f:
        head = f.read(_HEADER.size)
    if len(head) < _HEADER.size or head[:8] != _MAGIC:
        raise DataError(f"{path} is not a token shard (bad magic or too short); {fix}")
    magic, version, width, count = _HEADER.unpack(head)
    if version != _SHARD_VERSION:
        raise DataError(f"{path} is shard format v{version}, this code reads v{_SHARD_VERSION}; {fix}")
    if width not in _DTYPES:
        raise DataError(f"{path} has an unknown token width {width} in its header (mislabelled); {fix}")
    if size != _HEADER.size + count * width:
        raise DataError(f"{path} is truncated or mislabelled: the header says {count} tokens of {width} bytes "
                        f"({_HEADER.size + count * width} bytes) but the file has {size} bytes; {fix}")
    if count == 0:
        return np.zeros(0, _DTYPES[width])
    return np.memmap(path, dtype=_DTYPES[width], mode="r", offset=_HEADER.size, shape=(count,))


# ---------------------------------------------------------------- tokenizer

def load_tokenizer(path) -> Tokenizer:
    tok = Tokenizer.from_file(str(path))
    # Literal "<|endoftext|>" in a document is text, not a separator; the flag is not saved in the JSON.
    tok.encode_special_tokens = True
    return tok


def _train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # no prefix space: exact round-trip
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def _token_bytes(tok: Tokenizer) -> np.ndarray:
    special = set(tok.get_added_tokens_decoder())
    out = np.zeros(tok.get_vocab_size(), np.int64)
    for piece, i in tok.get_vocab().items():
        if i not in special:
            out[i] = len(piece)  # each byte-level character stands for exactly one byte
    return out


# ---------------------------------------------------------------- sources

@dataclass
class _Source:
    describe: str  # for messages: what the user pointed us at
    fingerprint: dict
    documents: Callable[[], Iterator[str]]
    total_bytes: Optional[int] = None  # for the progress bar, when known
    check: Callable[[], dict] = dict  # fails fast before any work; returns facts for the manifest


def _pystdlib_source(cfg: Optional[DataConfig] = None) -> _Source:
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

    return _Source(f"the standard library at {root}", fp, documents, total)


def _sniff(path: Path, builder: str) -> None:
    """Rejects empty, binary and non-UTF-8 files before streaming them; names the file."""
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; remove it or point data.path at a non-empty file")
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if builder == "parquet":
        if head[:4] != b"PAR1":
            raise DataError(f"{path} is not a parquet file (no PAR1 magic); fix or rename it")
        return
    if b"\0" in head:
        raise DataError(f"{path} contains NUL bytes: binary, or UTF-16? Convert it to UTF-8 text")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:  # not merely a character cut at the end of the sniffed block
            raise DataError(f"{path} is not UTF-8 text (byte {err.start}); convert it to UTF-8") from None


def _local_source(cfg: DataConfig) -> _Source:
    if not cfg.path:
        raise DataError("data=local needs data.path=FILE_OR_DIR (.txt, .jsonl/.json or .parquet)")
    root = Path(cfg.path).expanduser().resolve()
    if not root.exists():
        raise DataError(f"data.path={cfg.path} does not exist ({root}); point it at a file or a directory")
    if root.is_file():
        files = [root]
        if root.suffix.lower() not in _BUILDERS:
            raise DataError(f"{root} is not .txt, .jsonl/.json or .parquet; convert or rename it")
    else:
        files = sorted((p for p in root.rglob("*") if p.suffix.lower() in _BUILDERS and p.is_file()
                        and not any(part.startswith(".") for part in p.relative_to(root).parts)),
                       key=lambda p: p.relative_to(root).as_posix())
        if not files:
            raise DataError(f"no .txt, .jsonl/.json or .parquet files under data.path={root}")
    digest, total = hashlib.sha256(), 0
    for p in files:
        _sniff(p, _BUILDERS[p.suffix.lower()])
        st = p.stat()
        total += st.st_size
        # Small files by content (copies and touches keep the cache); big ones by size and mtime (fast).
        ident = p.read_bytes() if st.st_size <= _HASH_CONTENT_MAX else f"{st.st_size}:{st.st_mtime_ns}".encode()
        rel = p.relative_to(root.parent if root.is_file() else root).as_posix().encode()
        digest.update(struct.pack("<QQ", len(rel), len(ident)) + rel + ident)
    fp = {"source": "local", "path": str(root), "files": len(files), "bytes": total,
          "text_field": cfg.text_field, "sha256": digest.hexdigest()}

    def documents() -> Iterator[str]:
        import datasets  # heavy; only when a local corpus is actually read
        for p in files:
            builder = _BUILDERS[p.suffix.lower()]
            # A .txt document is a blank-line separated paragraph, so one big file still splits train/val.
            extra = {"sample_by": "paragraph"} if builder == "text" else {}
            try:
                rows = datasets.load_dataset(builder, data_files=[str(p)], split="train", streaming=True, **extra)
                yield from _texts(rows, cfg.text_field, str(p))
            except DataError:
                raise
            except Exception as err:  # datasets/pyarrow/json errors: keep the message, name the file
                raise DataError(f"could not read {p} as {builder}: {type(err).__name__}: {err}") from None

    return _Source(f"data.path={root}", fp, documents)  # file bytes ≠ text bytes (JSON, parquet): no bar total


def _texts(rows, text_field: str, where: str) -> Iterator[str]:
    for n, row in enumerate(rows):
        text = row.get(text_field)
        if not isinstance(text, str):
            what = "has no" if text is None else f"has a {type(text).__name__}, not a string, in its"
            raise DataError(f"row {n} of {where} {what} {text_field!r} field (fields: {', '.join(row)}); "
                            f"set data.text_field to the column holding the text")
        yield text


def _hub_source(cfg: DataConfig) -> _Source:
    if not cfg.hub_path:
        raise DataError(f"data={cfg.name} needs data.hub_path (a datasets repo id)")
    name = cfg.hub_path + (f" (config {cfg.hub_name})" if cfg.hub_name else "")
    fp = {"source": "hub", "hub_path": cfg.hub_path, "hub_name": cfg.hub_name, "split": cfg.hub_split,
          "text_field": cfg.text_field}
    fix = (f"Pre-download it on a machine with internet (`hf download --repo-type dataset {cfg.hub_path} "
           f"--local-dir DIR`, `--include` to pick one config's files) and use data=local data.path=DIR, "
           f"or use data=pystdlib (offline)")

    def check() -> dict:
        # datasets retries an unreachable hub for ~20 s; one short request tells us at once.
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

    return _Source(f"hub dataset {name}", fp, documents, check=check)


# ---------------------------------------------------------------- prepare

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
    sources = {"pystdlib": _pystdlib_source, "local": _local_source, "hub": _hub_source}
    if cfg.source not in sources:
        raise DataError(f"data.source={cfg.source!r} is not one of {', '.join(sources)}")
    src = sources[cfg.source](cfg)
    settings = {"tokenizer": {"kind": "byte-level BPE", "vocab_size": cfg.vocab_size, "min_frequency": 2,
                              "train_bytes": cfg.tokenizer_train_bytes, "special": [EOT]},
                "split": {"val_tokens": cfg.val_tokens, "val_every": VAL_EVERY, "val_min_docs": VAL_MIN_DOCS,
                          "by": "blake2b(doc index)"},
                "max_tokens": cfg.max_tokens}
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
            with open(tmp / MANIFEST, "w") as f:  # last: an entry with a manifest is complete
                json.dump(manifest, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, entry)
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


def _tokenizer_texts(src: _Source, budget: int) -> Iterator[str]:
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


def _build(cfg: DataConfig, src: _Source, out: Path) -> dict:
    t0, facts = time.time(), src.check()
    log.info("training a %d-token BPE on up to %d bytes of %s", cfg.vocab_size, cfg.tokenizer_train_bytes,
             src.describe)
    tok = _train_tokenizer(_tokenizer_texts(src, cfg.tokenizer_train_bytes), cfg.vocab_size)
    tok.save(str(out / "tokenizer.json"))
    tok, t_tok = load_tokenizer(out / "tokenizer.json"), time.time() - t0
    vocab, eot, tb = tok.get_vocab_size(), tok.token_to_id(EOT), _token_bytes(tok)
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

    with _ShardWriter(out / "val.bin", dtype) as val, _ShardWriter(out / "train.bin", dtype) as train, \
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
    log.info("prepared %s: %d train / %d val tokens in %.0f s", out.name, n["train_tokens"], n["val_tokens"],
             time.time() - t0)
    return {"vocab_size": vocab, "eot_id": eot, "dtype": np.dtype(dtype).name, **n,
            "tokenizer_seconds": round(t_tok, 2), "seconds": round(time.time() - t0, 2), **facts}


# ---------------------------------------------------------------- batches

class TokenBatches:
    """Deterministic random windows: batch (step, micro) is a pure function of (seed, step, micro), so resume
    needs no data state. Each window depends on (seed, step, its row in the step's batch) only, so splitting a
    step into more, smaller micro batches (or across ranks) changes nothing in what the step trains on."""

    def __init__(self, tokens: np.ndarray, seq_len: int, micro_batch: int, seed: int):
        if len(tokens) < seq_len + 1:
            raise DataError(f"the train shard has {len(tokens)} tokens, fewer than seq_len+1={seq_len + 1}; "
                            f"lower model.seq_len or use a larger corpus")
        self.tokens, self.seq_len, self.micro_batch, self.seed = tokens, seq_len, micro_batch, seed
        self._span = np.arange(seq_len + 1)

    def get(self, step: int, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.arange(micro * self.micro_batch, (micro + 1) * self.micro_batch, dtype=np.uint64)
        key = _mix64(_mix64(np.full_like(rows, self.seed % 2**64) ^ np.uint64(0x5EED)) + np.uint64(step))
        starts = (_mix64(key + rows) % np.uint64(len(self.tokens) - self.seq_len)).astype(np.int64)
        windows = torch.from_numpy(self.tokens[starts[:, None] + self._span].astype(np.int64))
        return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: maps counters to well-spread 64-bit values (uint64 arrays wrap, never warn)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def val_windows(tokens: np.ndarray, seq_len: int) -> torch.Tensor:
    """The fixed validation set: non-overlapping windows of seq_len+1 tokens over the whole val shard."""
    n = len(tokens) // (seq_len + 1)
    if n == 0:
        raise DataError(f"the validation shard has {len(tokens)} tokens, fewer than seq_len+1={seq_len + 1}; "
                        f"raise data.val_tokens")
    return torch.from_numpy(np.asarray(tokens[: n * (seq_len + 1)], dtype=np.int64).reshape(n, seq_len + 1))
