"""Data module: sources, tokenizer, shards, cache, batches. CPU only, small synthetic corpora."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import re
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from filelock import FileLock
from hypothesis import given, settings, strategies as st

from helpers import make_docs, small_cfg, write_corpus
from sweep.config import DataConfig
from sweep.data import (DataError, TokenBatches, cache, open_tokens, prepare, sources, split, val_windows,
                        write_tokens)
from sweep.data.tokenizer import EOT, load_tokenizer

UNICODE = ["", "hello", "😀🎉 emoji 👩‍👩‍👧", "中文字符 日本語 한국어", "e\u0301 a\u0308 combining \u0301\u0301",
           "nul \x00 byte", "\r\n crlf \r", "   leading and trailing   ", "\t\t\n\n\n", "<|endoftext|> literal",
           "\U0010ffff \ufeff bom \u200b zwsp", "mixed ascii ünïcödé Ω≈ç√∫ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    docs = make_docs(800)
    cfg = small_cfg(write_corpus(root / "c.jsonl", docs, "jsonl"), val_tokens=1600)  # ≤ 100 tokens per val doc
    return prepare(cfg, root / "cache"), docs


@pytest.fixture(scope="module")
def tokenizer(prepared):
    """The prepared entry's tokenizer and bytes per token, loaded once."""
    p, _ = prepared
    return load_tokenizer(p.tokenizer_path), p.token_bytes()


# ---------------------------------------------------------------- tokenizer and bits per byte

def roundtrip(tok, tb, text):
    ids = tok.encode(text).ids
    assert tok.decode(ids) == text
    assert tb[ids].sum() == len(text.encode("utf-8"))


def test_tokenizer_roundtrips_fixed_unicode(prepared, tokenizer):
    p, _ = prepared
    tok, tb = tokenizer
    for text in UNICODE:
        roundtrip(tok, tb, text)
    assert tb[tok.token_to_id(EOT)] == 0 and len(tb) == p.vocab_size


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_tokenizer_roundtrips_any_unicode(tokenizer, text):
    roundtrip(*tokenizer, text)


def test_val_bytes_match_the_text(prepared):
    p, docs = prepared
    manifest = json.loads((p.dir / "manifest.json").read_text())
    val, tb = open_tokens(p.val_path), p.token_bytes()
    assert len(val) == manifest["val_tokens"] == 1600
    assert tb[val].sum() == manifest["val_bytes"]
    # Independently: each held-out segment is a whole corpus document (counted from its text) or, capped at
    # val_tokens/16 tokens, the beginning of one (counted from its tokens).
    tok, eot = load_tokenizer(p.tokenizer_path), manifest["eot_id"]
    segments = np.split(np.asarray(val), np.flatnonzero(val == eot) + 1)
    assert manifest["split"]["scheme"] == "documents"
    assert segments[-1].size == 0 and len(segments) - 1 == manifest["split"]["val_docs"]
    whole = prefix = 0
    for k, seg in enumerate(segments[:-1]):
        assert len(seg) <= 100
        text = tok.decode(seg[:-1].tolist())
        if text in docs:
            whole += len(text.encode())
        else:
            assert len(seg) == 100 or k == len(segments) - 2  # capped, or trimmed to val_tokens at the end
            assert any(d.startswith(text.rstrip("\ufffd")) for d in docs)
            prefix += tb[seg].sum()
    assert whole and prefix and whole + prefix == manifest["val_bytes"]


# ---------------------------------------------------------------- sources

def test_txt_jsonl_parquet_give_the_same_tokens(tmp_path):
    docs = make_docs(300, seed=1)
    out = {}
    for fmt in ("txt", "jsonl", "json", "parquet"):
        p = prepare(small_cfg(write_corpus(tmp_path / f"c.{fmt}", docs, fmt), name=fmt), tmp_path / "cache")
        out[fmt] = (p.tokenizer_path.read_text(), open_tokens(p.train_path), open_tokens(p.val_path))
    for fmt in ("jsonl", "json", "parquet"):
        assert out[fmt][0] == out["txt"][0]
        assert np.array_equal(out[fmt][1], out["txt"][1]) and np.array_equal(out[fmt][2], out["txt"][2])


def test_directory_of_mixed_files(tmp_path):
    docs = make_docs(300, seed=2)
    (tmp_path / "d" / "sub").mkdir(parents=True)
    write_corpus(tmp_path / "d" / "a.jsonl", docs[:100], "jsonl")
    write_corpus(tmp_path / "d" / "sub" / "b.parquet", docs[100:200], "parquet")
    write_corpus(tmp_path / "d" / "c.txt", docs[200:], "txt")
    (tmp_path / "d" / "notes.md").write_text("ignored")
    p = prepare(small_cfg(tmp_path / "d"), tmp_path / "cache")
    assert p.fingerprint["files"] == 3
    m = json.loads((p.dir / "manifest.json").read_text())
    assert m["split"]["train_docs"] + m["split"]["val_docs"] == m["documents"] == 300


def test_text_field_option(tmp_path):
    path = write_corpus(tmp_path / "c.jsonl", make_docs(300), "jsonl", field="content")
    with pytest.raises(DataError, match=r"c\.jsonl.*'text'.*data\.text_field"):
        prepare(small_cfg(path), tmp_path / "cache")
    assert prepare(small_cfg(path, text_field="content"), tmp_path / "cache").vocab_size > 256


# ---------------------------------------------------------------- shards

def test_shard_roundtrip_and_dtypes(tmp_path):
    for dtype, top in ((np.uint16, 65535), (np.uint32, 70000)):
        chunks = [np.arange(10), np.array([top]), np.zeros(0, np.int64)]
        assert write_tokens(tmp_path / "s.bin", chunks, dtype) == 11
        tokens = open_tokens(tmp_path / "s.bin")
        assert tokens.dtype == dtype and tokens.tolist() == list(range(10)) + [top]
    assert write_tokens(tmp_path / "e.bin", [], np.uint16) == 0 and len(open_tokens(tmp_path / "e.bin")) == 0
    before = set(tmp_path.iterdir())
    with pytest.raises(ValueError):
        write_tokens(tmp_path / "o.bin", [np.arange(5), np.array([70000])], np.uint16)
    assert set(tmp_path.iterdir()) == before  # the failed write left nothing behind, not even its temp file
    with pytest.raises(ValueError, match="uint16 or uint32"):
        write_tokens(tmp_path / "i.bin", [np.arange(5)], np.int32)
    assert set(tmp_path.iterdir()) == before


def corrupt(path: Path, offset: int, raw: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(raw)


@pytest.mark.parametrize("damage", ["truncated", "magic", "width", "unknown_width", "count", "version", "text"])
def test_shard_reader_rejects_damage(tmp_path, damage):
    path = tmp_path / "shard.bin"
    write_tokens(path, [np.arange(1000)], np.uint16)
    if damage == "truncated":
        os.truncate(path, path.stat().st_size - 3)
    elif damage == "magic":
        corrupt(path, 0, b"NOTSHARD")
    elif damage == "version":
        corrupt(path, 8, (99).to_bytes(4, "little"))
    elif damage == "width":  # uint16 data labelled uint32
        corrupt(path, 12, (4).to_bytes(4, "little"))
    elif damage == "unknown_width":
        corrupt(path, 12, (3).to_bytes(4, "little"))
    elif damage == "count":
        corrupt(path, 16, (1001).to_bytes(8, "little"))
    else:
        path.write_text("just some text, not a shard")
    with pytest.raises(DataError, match="shard.bin"):
        open_tokens(path)


# ---------------------------------------------------------------- cache

def test_second_prepare_reuses_the_entry(tmp_path, monkeypatch):
    cfg = small_cfg(write_corpus(tmp_path / "c.jsonl", make_docs(), "jsonl"))
    first = prepare(cfg, tmp_path / "cache")
    stamps = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in first.dir.iterdir()}

    def no_work(*a, **k):
        raise AssertionError("re-tokenized a cached corpus")
    monkeypatch.setattr(cache, "build", no_work)
    monkeypatch.setattr(split, "train_tokenizer", no_work)
    assert prepare(cfg, tmp_path / "cache") == first
    # Found, not rebuilt: the same files, untouched.
    assert {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in first.dir.iterdir()} == stamps
    monkeypatch.undo()
    other = prepare(small_cfg(cfg.path, vocab_size=320), tmp_path / "cache")
    assert other.dir != first.dir and first.dir.exists()
    capped = prepare(small_cfg(cfg.path, max_tokens=1000), tmp_path / "cache")
    assert capped.dir not in (first.dir, other.dir) and len(open_tokens(capped.train_path)) == 1000


def test_crashed_prepare_leaves_no_entry(tmp_path, monkeypatch):
    cfg = small_cfg(write_corpus(tmp_path / "c.jsonl", make_docs(), "jsonl"))
    root = tmp_path / "cache"

    def crash(texts, vocab_size):
        raise KeyboardInterrupt  # as if killed mid-prepare
    monkeypatch.setattr(split, "train_tokenizer", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare(cfg, root)
    assert [p.name for p in root.iterdir() if not p.name.endswith(".lock")] == []
    monkeypatch.undo()
    good = prepare(cfg, root)
    # A hard crash leaves a tmp directory; the next prepare of that entry clears it.
    (root / f".tmp-{good.dir.name}-1").mkdir()
    for f in good.dir.iterdir():
        f.unlink()
    good.dir.rmdir()
    assert prepare(cfg, root) == good and not list(root.glob(".tmp-*"))


def _prepare_in_child(args):
    path, cache = args
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("sweep.data").addHandler(handler)
    logging.getLogger("sweep.data").setLevel(logging.INFO)
    p = prepare(small_cfg(path), Path(cache))
    built = any(r.getMessage().startswith("prepared") for r in records)
    return str(p.dir), built, (p.dir / "manifest.json").read_text()


@pytest.mark.slow  # two spawned interpreters, and a 3 s hold of the lock
def test_concurrent_prepares_share_one_entry(tmp_path):
    path = write_corpus(tmp_path / "c.jsonl", make_docs(2000), "jsonl")
    cache = tmp_path / "cache"
    # Hold the entry's lock while the children start, so both meet it and race when it is released.
    name = prepare(small_cfg(path), tmp_path / "elsewhere").dir.name
    cache.mkdir()
    lock = FileLock(str(cache / f"{name}.lock"))
    with lock, mp.get_context("spawn").Pool(2) as pool:
        pending = pool.map_async(_prepare_in_child, [(str(path), str(cache))] * 2)
        time.sleep(3)
        lock.release()
        results = pending.get(timeout=120)
    assert results[0][0] == results[1][0] and results[0][2] == results[1][2]
    assert sorted(r[1] for r in results) == [False, True]  # exactly one process did the work
    entries = [p for p in cache.iterdir() if not p.name.endswith(".lock")]
    assert [str(p) for p in entries] == [results[0][0]]


# ---------------------------------------------------------------- errors

def test_error_missing_path(tmp_path):
    with pytest.raises(DataError, match="nope.*does not exist"):
        prepare(small_cfg(tmp_path / "nope"), tmp_path / "cache")


def test_error_empty_file(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match="empty.txt is empty"):
        prepare(small_cfg(tmp_path / "empty.txt"), tmp_path / "cache")


def test_error_empty_corpus(tmp_path):
    (tmp_path / "blank.txt").write_text("\n\n\n\n")
    with pytest.raises(DataError, match="no text in data.path=.*blank.txt"):
        prepare(small_cfg(tmp_path / "blank.txt"), tmp_path / "cache")


@pytest.mark.parametrize("raw", [bytes(range(256)) * 4, "café".encode("latin-1") * 100])
def test_error_binary_or_undecodable_file(tmp_path, raw):
    (tmp_path / "bin.txt").write_bytes(raw)
    with pytest.raises(DataError, match="bin.txt.*(NUL|UTF-8)"):
        prepare(small_cfg(tmp_path / "bin.txt"), tmp_path / "cache")


def test_error_undecodable_past_the_sniffed_head(tmp_path):
    (tmp_path / "late.txt").write_bytes(b"fine text\n\n" * 20000 + b"\xff\xfe bad")
    with pytest.raises(DataError, match="late.txt"):
        prepare(small_cfg(tmp_path / "late.txt"), tmp_path / "cache")


def test_error_not_parquet_and_unsupported(tmp_path):
    (tmp_path / "fake.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="fake.parquet is not a parquet file"):
        prepare(small_cfg(tmp_path / "fake.parquet"), tmp_path / "cache")
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(DataError, match="x.csv"):
        prepare(small_cfg(tmp_path / "x.csv"), tmp_path / "cache")


def test_error_jsonl_rows_without_field(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "a"}\n{"body": "b"}\n')
    with pytest.raises(DataError, match=r"line 2 of .*rows.jsonl has no 'text' field"):
        prepare(small_cfg(path), tmp_path / "cache")


def test_error_corpus_too_small_says_its_size_and_a_val_tokens_that_fits(tmp_path):
    path = write_corpus(tmp_path / "c.jsonl", make_docs(100), "jsonl")
    with pytest.raises(DataError, match=r"c.jsonl is too small for data.val_tokens=100000: it has [\d,]+ tokens "
                                        r"at data.vocab_size=300") as err:
        prepare(small_cfg(path, val_tokens=100_000), tmp_path / "cache")
    tokens = int(re.search(r"it has ([\d,]+) tokens", str(err.value)).group(1).replace(",", ""))
    fit = int(re.search(r"set data.val_tokens=(\d+) \(it fits\)", str(err.value)).group(1))
    assert 0 < fit <= tokens // 3
    assert len(open_tokens(prepare(small_cfg(path, val_tokens=fit), tmp_path / "cache").val_path)) == fit
    with pytest.raises(DataError, match="data.max_tokens=500"):
        prepare(small_cfg(path, max_tokens=500), tmp_path / "cache")


class Streamed(BaseException):
    """Raised by a stubbed datasets.load_dataset; a BaseException, so the source cannot wrap it in a DataError."""


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:9", None])
def test_error_hub_offline_is_fast_and_clear(tmp_path, monkeypatch, endpoint):
    import datasets

    if endpoint:  # a refused connection, whatever this machine's network
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    # Fast: the error comes from one short request (bounded timeout), before datasets streams (and retries) anything.
    timeouts, urlopen = [], urllib.request.urlopen

    def one_request(url, *args, timeout=None, **kwargs):
        timeouts.append(timeout)
        return urlopen(url, *args, timeout=timeout, **kwargs)

    def streamed(*args, **kwargs):
        raise Streamed
    monkeypatch.setattr(urllib.request, "urlopen", one_request)
    monkeypatch.setattr(datasets, "load_dataset", streamed)
    cfg = DataConfig(name="tinystories", source="hub", hub_path="roneneldan/TinyStories", val_tokens=1000)
    try:
        prepare(cfg, tmp_path / "cache")
    except Streamed:
        pytest.skip("the Hub is reachable from here")
    except DataError as err:
        assert "cannot reach the Hugging Face Hub" in str(err)  # the check's error, not datasets'
        assert "roneneldan/TinyStories" in str(err) and "data=local data.path=" in str(err)
    else:
        pytest.fail("prepare of an unreachable hub dataset returned")
    assert len(timeouts) == 1 and timeouts[0] is not None and timeouts[0] <= 5


# ---------------------------------------------------------------- batches

def test_token_batches_are_deterministic_and_shifted():
    tokens = np.arange(5000, dtype=np.uint16)
    a, b = TokenBatches(tokens, 16, 4, seed=0), TokenBatches(tokens, 16, 4, seed=0)
    x, y = a.get(7, 1)
    assert x.shape == y.shape == (4, 16) and x.dtype == y.dtype == torch.int64
    assert torch.equal(x, b.get(7, 1)[0]) and torch.equal(y, b.get(7, 1)[1])
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y, x + 1)  # contiguous windows, shifted by one
    assert not torch.equal(x, a.get(8, 1)[0]) and not torch.equal(x, a.get(7, 0)[0])
    assert not torch.equal(x, TokenBatches(tokens, 16, 4, seed=1).get(7, 1)[0])
    # A step's windows do not depend on how it is split into micro batches.
    whole = TokenBatches(tokens, 16, 8, seed=3).get(5, 0)[0]
    halves = TokenBatches(tokens, 16, 4, seed=3)
    assert torch.equal(whole, torch.cat([halves.get(5, 0)[0], halves.get(5, 1)[0]]))
    ends = torch.cat([a.get(s, 0)[1][:, -1] for s in range(200)])
    assert ends.max() <= 4999 and ends.min() >= 16
    with pytest.raises(DataError, match="seq_len"):
        TokenBatches(tokens[:10], 16, 4, seed=0)


def test_val_windows():
    w = val_windows(np.arange(100, dtype=np.uint16), seq_len=9)
    assert w.shape == (10, 10) and w.dtype == torch.int64 and w.flatten().tolist() == list(range(100))
    assert val_windows(np.arange(105, dtype=np.uint16), 9).shape == (10, 10)
    with pytest.raises(DataError):
        val_windows(np.arange(5, dtype=np.uint16), 9)


# ---------------------------------------------------------------- the embedded corpus

@pytest.mark.slow
def test_pystdlib_small(tmp_path):
    cfg = DataConfig(vocab_size=512, max_tokens=100_000, val_tokens=20_000, tokenizer_train_bytes=2_000_000)
    first = prepare(cfg, tmp_path / "cache")
    second = prepare(cfg, tmp_path / "cache")
    assert first == second and first.fingerprint["files"] > 500 and first.fingerprint["bytes"] > 5_000_000
    assert sources.pystdlib_source().fingerprint == first.fingerprint
    assert len(open_tokens(first.train_path)) == 100_000 and len(open_tokens(first.val_path)) == 20_000
    x, y = TokenBatches(open_tokens(first.train_path), 64, 2, seed=0).get(0, 0)
    assert int(x.max()) < first.vocab_size <= 512


@pytest.mark.slow
def test_pystdlib_full_default_vocab(tmp_path):
    p = prepare(DataConfig(), tmp_path / "cache")
    m = json.loads((p.dir / "manifest.json").read_text())
    assert p.vocab_size == 4096 and m["val_tokens"] == 262_144 and m["train_tokens"] > 5_000_000
    assert p.token_bytes()[open_tokens(p.val_path)].sum() == m["val_bytes"]
