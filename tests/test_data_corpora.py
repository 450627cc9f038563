"""Corpora of any shape: plain text in any layout becomes bounded documents, a held-out split always exists (the
document split, else the tail split), a corpus that is truly too small says so, and many small files read at the
speed of their bytes. Real files, CPU only."""

from __future__ import annotations

import io
import json
import os
import random
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings, strategies as st
from helpers import make_docs, small_cfg, write_corpus

from sweep.data import DataError, describe, local, open_tokens, prepare, sources, split
from sweep.data.documents import MAX_DOC_CHARS, split_text
from sweep.data.tokenizer import load_tokenizer

WORDS = ("the a of to and in that is was he for it with as his on be at by had not are but from or have an they "
         "which one you were her all she there would their we him been has when who will more no if out so said "
         "what up its about into than them can only other new some could time these two may then do first any my "
         "now such like our over man me even most made after also did many before must through back years where "
         "much your way well down should because each just those people naïve café").split()


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18))).capitalize() + "." for _ in range(n)]


def stream_text(p) -> str:
    """The prepared stream (train then val) decoded, EOTs dropped: the corpus text when the split is the tail."""
    tokens = np.concatenate([open_tokens(p.train_path), open_tokens(p.val_path)]).tolist()
    return load_tokenizer(p.tokenizer_path).decode(tokens, skip_special_tokens=True)


# ---------------------------------------------------------------- plain text → documents

def docs_of(text: str, limit: int = MAX_DOC_CHARS) -> list[str]:
    return list(split_text(io.StringIO(text, newline=None), limit))


def test_split_text_paragraphs_lines_and_huge_lines():
    assert docs_of("a\nb\n\n\nc\n  \t \nd\n") == ["a\nb", "c", "d"]  # blank lines, whitespace-only ones too
    assert docs_of("a\r\nb\r\n\r\nc\rd") == ["a\nb", "c\nd"]  # CRLF and CR read as LF
    assert docs_of("\n\n\n") == [] and docs_of("") == []
    lines = "".join(f"line {i}\n" for i in range(30))  # one paragraph of short lines: cut after line ends
    pieces = docs_of(lines, limit=40)
    assert all(len(d) <= 40 and d.endswith("\n") for d in pieces[:-1]) and "".join(pieces) == lines[:-1]
    line = " ".join(f"w{i}" for i in range(100))  # one huge line: cut before a space
    pieces = docs_of(line, limit=40)
    assert all(len(d) <= 40 for d in pieces) and all(d.startswith(" ") for d in pieces[1:])
    assert "".join(pieces) == line
    assert docs_of("x" * 100, limit=40) == ["x" * 40, "x" * 40, "x" * 20]  # no whitespace at all: at the bound


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.sampled_from("ab \t\n\r\u00e9\u2028"), max_size=300), limit=st.integers(2, 50))
def test_split_text_bounds_pieces_and_drops_only_whitespace(text, limit):
    docs = docs_of(text, limit)
    assert all(0 < len(d) <= limit for d in docs)
    normal = text.replace("\r\n", "\n").replace("\r", "\n")
    assert re.sub(r"\s", "", "".join(docs)) == re.sub(r"\s", "", normal)


def test_one_sentence_per_line_book_gets_a_held_out_split(tmp_path):
    # The layout that once made one document (no blank lines), so the held-out split got 0 tokens.
    text = "\n".join(sentences(4500)) + "\n"  # ~370 kB
    (tmp_path / "book.txt").write_text(text)
    p = prepare(small_cfg(tmp_path / "book.txt", vocab_size=512, val_tokens=4096), tmp_path / "cache")
    m = p.manifest
    assert m["documents"] >= len(text) // MAX_DOC_CHARS and m["text_bytes"] == len(text.encode()) - 1
    assert m["val_tokens"] == len(open_tokens(p.val_path)) == 4096 and m["train_tokens"] >= 2 * 4096
    assert m["split"]["scheme"] == "tail" and m["split"]["tokenizer_saw_val_tokens"] == 0
    assert stream_text(p) == text[:-1]  # every token accounted for, in order: train is all before val
    assert "val    the corpus's last 4,096 tokens (held-out documents gave only" in describe(p)


def test_a_single_huge_line(tmp_path):
    text = " ".join(sentences(3000, seed=1))  # ~250 kB, no line end at all
    (tmp_path / "line.txt").write_text(text)
    p = prepare(small_cfg(tmp_path / "line.txt", vocab_size=512, val_tokens=2048), tmp_path / "cache")
    assert p.manifest["documents"] >= len(text) // MAX_DOC_CHARS and p.manifest["val_tokens"] == 2048
    assert stream_text(p) == text


def test_one_huge_document_is_split_inside_it(tmp_path):
    doc = "\n\n".join(sentences(1500, seed=2))  # ~100 kB in one jsonl row: the tail begins inside it
    p = prepare(small_cfg(write_corpus(tmp_path / "one.jsonl", [doc], "jsonl"), val_tokens=2048), tmp_path / "c")
    assert p.manifest["documents"] == 1 and p.manifest["split"]["scheme"] == "tail"
    assert p.manifest["split"]["tokenizer_saw_val_tokens"] == 0 and p.manifest["val_tokens"] == 2048
    assert stream_text(p) == doc


def test_tail_split_when_held_out_documents_fall_short(tmp_path):
    # The first 16 held-out documents are long, all others short: the document split fills val but leaves
    # train under 2× val_tokens, so the corpus's last val_tokens tokens are held out instead.
    held_out = [i for i in range(400) if split.is_val(i)][:16]
    docs = [" ".join(make_docs(30, seed=i)) if i in held_out else f"short {i}" for i in range(400)]
    path = write_corpus(tmp_path / "lop.jsonl", docs, "jsonl")
    p = prepare(small_cfg(path, val_tokens=1000), tmp_path / "cache")
    m = p.manifest
    assert m["split"]["scheme"] == "tail" and m["split"]["document_split"]["val_tokens"] == 1000
    assert m["val_tokens"] == 1000 and m["train_tokens"] == m["corpus_tokens"] - 1000
    assert m["split"]["tokenizer_saw_val_tokens"] == 0
    tok, eot = load_tokenizer(p.tokenizer_path), m["eot_id"]
    stream = np.concatenate([open_tokens(p.train_path), open_tokens(p.val_path)])
    segments = np.split(stream, np.flatnonzero(stream == eot) + 1)
    assert segments[-1].size == 0 and all(s[-1] == eot for s in segments[:-1])
    assert [tok.decode(s.tolist()) for s in segments[:-1]] == docs  # the documents in order, each closed by EOT
    assert open_tokens(p.val_path)[-1] == eot and p.token_bytes()[open_tokens(p.val_path)].sum() == m["val_bytes"]
    again = prepare(small_cfg(path, val_tokens=1000), tmp_path / "other_cache")  # the same for every run
    assert again.val_path.read_bytes() == p.val_path.read_bytes()
    assert again.train_path.read_bytes() == p.train_path.read_bytes()
    capped = prepare(small_cfg(path, val_tokens=1000, max_tokens=2500), tmp_path / "cache")
    assert capped.val_path.read_bytes() == p.val_path.read_bytes()  # max_tokens does not move the held-out set
    assert np.array_equal(open_tokens(capped.train_path), open_tokens(p.train_path)[:2500])


# ---------------------------------------------------------------- many small files

def test_two_thousand_small_files_read_like_one(tmp_path):
    paragraphs = make_docs(2000, seed=3)
    (tmp_path / "many").mkdir()
    for i, para in enumerate(paragraphs):
        (tmp_path / "many" / f"doc{i:05d}.txt").write_text(para + "\n")
    write_corpus(tmp_path / "one.txt", paragraphs, "txt")
    cfg = small_cfg(tmp_path / "many", val_tokens=2000)
    src = sources.open_source(cfg)
    assert src.fingerprint["files"] == 2000
    assert src.total_bytes == sum(f.stat().st_size for f in (tmp_path / "many").iterdir())
    assert list(src.documents()) == paragraphs and src.position() == src.total_bytes  # the bar ends at its total
    many, one = prepare(cfg, tmp_path / "cache"), prepare(small_cfg(tmp_path / "one.txt", val_tokens=2000),
                                                          tmp_path / "cache")
    assert many.manifest["documents"] == 2000 and many.manifest["split"]["scheme"] == "documents"
    assert many.manifest["train_tokens"] == len(open_tokens(many.train_path)) > 0
    assert many.tokenizer_path.read_text() == one.tokenizer_path.read_text()
    assert many.train_path.read_bytes() == one.train_path.read_bytes()
    assert many.val_path.read_bytes() == one.val_path.read_bytes()
    assert "2,000 files" in describe(many) and "2,000 documents" in describe(many)


def test_fingerprint_small_files_by_content_big_ones_by_size_and_mtime(tmp_path, monkeypatch):
    (tmp_path / "d").mkdir()
    a, b = tmp_path / "d" / "a.txt", tmp_path / "d" / "b.txt"
    a.write_text("alpha text\n")
    b.write_text("beta text\n")
    key = lambda: sources.open_source(small_cfg(tmp_path / "d")).fingerprint["sha256"]  # noqa: E731
    first = key()
    os.utime(a, ns=(1, 1))
    assert key() == first  # a touch keeps a small file's cache
    a.write_text("alphb text\n")
    assert key() != first  # its content does not
    monkeypatch.setattr(local, "_HASH_CONTENT_MAX", 4)  # now both are "big"
    big = key()
    st = a.stat()
    a.write_text("alphc text\n")
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert key() == big  # same size and mtime: not re-read (the documented price of speed)
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert key() != big


# ---------------------------------------------------------------- tables

def test_jsonl_files_with_different_columns_and_named_errors(tmp_path):
    (tmp_path / "d").mkdir()
    docs = make_docs(300, seed=4)
    (tmp_path / "d" / "a.jsonl").write_text("".join(json.dumps({"text": t, "id": 1}) + "\n" for t in docs[:150]))
    (tmp_path / "d" / "b.jsonl").write_text("".join(json.dumps({"meta": {}, "text": t}) + "\n" for t in docs[150:]))
    assert list(sources.open_source(small_cfg(tmp_path / "d")).documents()) == docs
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n\n{"text": "cut off\n')
    with pytest.raises(DataError, match=r"line 3 of .*bad.jsonl is not valid JSON"):
        list(sources.open_source(small_cfg(tmp_path / "bad.jsonl")).documents())
    (tmp_path / "obj.json").write_text('{\n "rows": []\n}\n')
    with pytest.raises(DataError, match=r"line 1 of .*obj.json is not valid JSON \(a .json must be JSON Lines"):
        list(sources.open_source(small_cfg(tmp_path / "obj.json")).documents())
    pq.write_table(pa.table({"body": ["x"], "n": [1]}), tmp_path / "t.parquet")
    with pytest.raises(DataError, match=r"t.parquet has no 'text' column \(columns: body, n\)"):
        list(sources.open_source(small_cfg(tmp_path / "t.parquet")).documents())
    pq.write_table(pa.table({"text": ["x", None]}), tmp_path / "n.parquet")
    with pytest.raises(DataError, match=r"row 1 of .*n.parquet has a null in its 'text' column"):
        list(sources.open_source(small_cfg(tmp_path / "n.parquet")).documents())
