"""Local corpus files (data=local data.path=FILE_OR_DIR) as a Source: which files (.txt, .jsonl/.json, .parquet;
hidden ones left out; in a stable order), their fingerprint (files up to 1 MiB by content, larger ones by size and
mtime) and their documents. Files are read directly (the json module, pyarrow), with no `datasets` call per file
or per kind, so a directory of 10,000 small files costs its bytes, not its file count, and files whose other
columns differ mix freely. A .txt is cut into documents by documents.split_text; a .jsonl line, an element of a
.json array, or a .parquet row is one document (its data.text_field). Bad input is a DataError naming the file (and
the line or row) and the fix."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from .documents import Source, split_text
from .errors import DataError

if TYPE_CHECKING:
    from ..config import DataConfig

KINDS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
_HASH_CONTENT_MAX = 1 << 20  # files up to 1 MiB are fingerprinted by content, larger ones by size+mtime
_SNIFF = 1 << 16


def local_files(cfg: DataConfig) -> list[Path]:
    """data.path's corpus files: the file itself, or a directory's .txt/.jsonl/.json/.parquet files (hidden ones
    left out), in a stable order."""
    if not cfg.path:
        raise DataError("data=local needs data.path=FILE_OR_DIR (.txt, .jsonl/.json or .parquet)")
    root = Path(cfg.path).expanduser().resolve()
    if not root.exists():
        raise DataError(f"data.path={cfg.path} does not exist ({root}); point it at a file or a directory of "
                        f".txt, .jsonl/.json or .parquet files")
    if root.is_file():
        if root.suffix.lower() not in KINDS:
            raise DataError(f"{root} is not .txt, .jsonl/.json or .parquet; convert or rename it")
        return [root]
    files = sorted((p for p in root.rglob("*") if p.suffix.lower() in KINDS and p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(root).parts)),
                   key=lambda p: p.relative_to(root).as_posix())
    if not files:
        raise DataError(f"no .txt, .jsonl/.json or .parquet files under data.path={root}")
    return files


def _sniff(path: Path, kind: str, head: bytes) -> None:
    """Rejects empty, binary and non-UTF-8 files before any work; names the file."""
    if not head:
        raise DataError(f"{path} is empty; remove it or point data.path at a non-empty file")
    if kind == "parquet":
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


def local_source(cfg: DataConfig) -> Source:
    files = local_files(cfg)
    root = Path(cfg.path).expanduser().resolve()
    base = root.parent if root.is_file() else root
    digest, sizes = hashlib.sha256(), []
    for p in files:
        size, mtime = (st := p.stat()).st_size, st.st_mtime_ns
        with open(p, "rb") as f:  # one read of a small file serves both the sniff and the fingerprint
            data = f.read() if size <= _HASH_CONTENT_MAX else f.read(_SNIFF)
        _sniff(p, KINDS[p.suffix.lower()], data[:_SNIFF])
        # Small files by content (copies and touches keep the cache); big ones by size and mtime (fast).
        ident = data if size <= _HASH_CONTENT_MAX else f"{size}:{mtime}".encode()
        rel = p.relative_to(base).as_posix().encode()
        digest.update(struct.pack("<QQ", len(rel), len(ident)) + rel + ident)
        sizes.append(size)
    fp = {"source": "local", "path": str(root), "files": len(files), "bytes": sum(sizes),
          "text_field": cfg.text_field, "sha256": digest.hexdigest()}
    done = [0]  # input bytes consumed by the running pass: exact at file ends, approximate inside a file

    def documents() -> Iterator[str]:
        done[0] = start = 0
        for p, size in zip(files, sizes):
            yield from _READERS[KINDS[p.suffix.lower()]](p, cfg.text_field, done)
            done[0] = start = start + size

    return Source(f"data.path={root}", fp, documents, sum(sizes), position=lambda: done[0])


def _txt(path: Path, field: str, done: list) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8-sig") as f:  # universal newlines: \r\n and \r are read as \n
            for doc in split_text(f):
                done[0] += len(doc)
                yield doc
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err.reason} past its first 64 KiB); convert it to UTF-8") \
            from None


def _json(path: Path, field: str, done: list) -> Iterator[str]:
    """JSON Lines (.jsonl, or .json), or a .json holding one array of objects."""
    with open(path, "rb") as f:
        if path.suffix.lower() == ".json" and f.read(_SNIFF).lstrip()[:1] == b"[":
            f.seek(0)
            try:
                rows = json.load(f)
            except ValueError as err:
                raise DataError(f"{path} is not valid JSON ({err}); fix it") from None
            for n, row in enumerate(rows):
                yield text_of(row, field, f"element {n} of {path}")
            return
        f.seek(0)
        for n, line in enumerate(f, 1):
            done[0] += len(line)
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
                shape = " (a .json must be JSON Lines or one array of objects)" if path.suffix == ".json" else ""
                raise DataError(f"line {n} of {path} is not valid JSON{shape}: {err}; fix or remove it") from None
            yield text_of(row, field, f"line {n} of {path}")


def _parquet(path: Path, field: str, done: list) -> Iterator[str]:
    import pyarrow.parquet as pq  # only when a parquet file is actually read

    try:
        pf = pq.ParquetFile(path)
        if field not in pf.schema_arrow.names:
            raise DataError(f"{path} has no {field!r} column (columns: {', '.join(pf.schema_arrow.names)}); "
                            f"set data.text_field to the column holding the text")
        batches = pf.iter_batches(batch_size=1024, columns=[field])
        n = 0
        for batch in batches:
            for text in batch.column(0).to_pylist():
                if not isinstance(text, str):
                    what = "a null" if text is None else f"a {type(text).__name__}, not a string,"
                    raise DataError(f"row {n} of {path} has {what} in its {field!r} column; set data.text_field "
                                    f"to the column holding the text")
                yield text
                n += 1
    except DataError:
        raise
    except Exception as err:  # pyarrow's errors for a damaged file: keep the message, name the file
        raise DataError(f"could not read {path} as parquet: {type(err).__name__}: {err}") from None


def text_of(row, field: str, where: str) -> str:
    if not isinstance(row, dict):
        raise DataError(f"{where} is a JSON {type(row).__name__}, not an object with a {field!r} field")
    text = row.get(field)
    if not isinstance(text, str):
        what = "has no" if text is None else f"has a {type(text).__name__}, not a string, in its"
        raise DataError(f"{where} {what} {field!r} field (fields: {', '.join(row)}); set data.text_field to the "
                        f"field holding the text")
    return text


_READERS: dict[str, Callable[[Path, str, list], Iterator[str]]] = {"text": _txt, "json": _json, "parquet": _parquet}
