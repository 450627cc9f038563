"""Read the records of an offline wandb run (its .wandb file), so tests can check what a dashboard would show.

The file is ":W&B" + magic + version, then a LevelDB-style log: 32 KiB blocks of records, each with a 7-byte
header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last) holding a serialized wandb Record protobuf.
"""

import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

_FILE_HEADER, _RECORD_HEADER, _BLOCK = 7, 7, 32768


def read_records(run_dir: Path) -> list:
    """All Record protobufs of the one .wandb file in an offline-run-* directory."""
    (path,) = list(Path(run_dir).glob("*.wandb"))
    raw = path.read_bytes()
    assert raw[:4] == b":W&B", f"{path} is not a wandb transaction log"
    records, pending, offset = [], b"", _FILE_HEADER
    while offset + _RECORD_HEADER <= len(raw):
        left_in_block = _BLOCK - offset % _BLOCK
        if left_in_block < _RECORD_HEADER:
            offset += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", raw[offset:offset + _RECORD_HEADER])
        if length == 0 and kind == 0:  # zero padding to the end of the block
            offset += left_in_block
            continue
        chunk = raw[offset + _RECORD_HEADER:offset + _RECORD_HEADER + length]
        offset += _RECORD_HEADER + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def run_record(run_dir: Path):
    """The (first) run record: id, group, job_type, name, config."""
    return next(r.run for r in read_records(run_dir) if r.WhichOneof("record_type") == "run")


def config_keys(run) -> set[str]:
    return {item.key for item in run.config.update}


def history_keys(run_dir: Path) -> set[str]:
    return {item.key or ".".join(item.nested_key) for r in read_records(run_dir)
            if r.WhichOneof("record_type") == "history" for item in r.history.item}


def summary_keys(run_dir: Path) -> set[str]:
    """The keys a run's summary was given (nested ones joined with '/')."""
    return {item.key or "/".join(item.nested_key) for r in read_records(run_dir)
            if r.WhichOneof("record_type") == "summary" for item in r.summary.update}
