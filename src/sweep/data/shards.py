"""The token shard file format: a 32-byte header (magic, version, bytes per token, token count), then the tokens
as little-endian uint16 or uint32. Written atomically (a shard under its final name is always complete), read as
a memmap after checking the header against the file."""

from __future__ import annotations

import struct
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterable, Iterator

import numpy as np

from ..files import atomic_write
from .errors import DataError

_MAGIC = b"SWEEPTOK"
_HEADER = struct.Struct("<8sIIQ8x")  # magic, version, bytes per token, token count, reserved → 32 bytes
_SHARD_VERSION = 1
_DTYPES = {2: np.dtype("<u2"), 4: np.dtype("<u4")}


class ShardWriter:
    """Appends token arrays to an open shard file, checking each id fits the shard's dtype; counts them."""

    def __init__(self, path: Path, file: IO[bytes], dtype: np.dtype):
        self.path, self.file, self.dtype, self.count = path, file, dtype, 0

    def write(self, tokens: np.ndarray) -> None:
        tokens = np.asarray(tokens)
        if tokens.size and (tokens.min() < 0 or tokens.max() > np.iinfo(self.dtype).max):
            raise ValueError(f"token ids out of range for {self.dtype} in {self.path}")
        self.file.write(tokens.astype(self.dtype, copy=False).tobytes())
        self.count += tokens.size


@contextmanager
def shard_writer(path: Path, dtype) -> Iterator[ShardWriter]:
    """A ShardWriter streaming to a temporary file; on a clean exit the count is patched into the header and the
    file renamed into place, on an error it is deleted (sweep.files.atomic_write)."""
    path, dtype = Path(path), np.dtype(dtype).newbyteorder("<")
    if dtype.itemsize not in _DTYPES or dtype.kind != "u":
        raise ValueError(f"shard dtype must be uint16 or uint32, got {dtype}")
    with atomic_write(path, "wb") as f:
        f.write(_HEADER.pack(_MAGIC, _SHARD_VERSION, dtype.itemsize, 0))
        writer = ShardWriter(path, f, dtype)
        yield writer
        f.seek(0)
        f.write(_HEADER.pack(_MAGIC, _SHARD_VERSION, dtype.itemsize, writer.count))


def write_tokens(path: Path, chunks: Iterable[np.ndarray], dtype) -> int:
    """Writes a shard atomically from an iterable of token arrays; returns the token count."""
    with shard_writer(path, dtype) as writer:
        for chunk in chunks:
            writer.write(chunk)
    return writer.count


def open_tokens(path: Path) -> np.ndarray:
    """A read-only memmap of a shard's tokens, after checking the header against the file."""
    path = Path(path)
    fix = f"delete its cache entry {path.parent} to re-prepare"
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DataError(f"{path} is missing; {fix}") from None
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
