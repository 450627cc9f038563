"""What a corpus is to the rest of the data stage, and what a document of plain text is.

A Source is a corpus as a stream of document strings, with the fingerprint that keys its cache entry, its size in
bytes (for the progress bar) and a fast check. Plain text has no explicit documents, so `split_text` makes them:
a paragraph (lines up to a blank line) is a document, and one longer than MAX_DOC_CHARS is cut into pieces of at
most that many characters — after a line end, else before a space or tab, else at the bound. So a file of
blank-line paragraphs, one of a sentence per line, and one single huge line all give many documents of bounded
size, and the held-out split (a choice among documents) has something to choose from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Optional, TextIO

MAX_DOC_CHARS = 1 << 13  # ~2k tokens of English at vocab 4096: long enough to keep prose whole


@dataclass
class Source:
    describe: str  # for messages: what the user pointed us at
    fingerprint: dict
    documents: Callable[[], Iterator[str]]
    total_bytes: Optional[int] = None  # input bytes, for the progress bar, when known
    check: Callable[[], dict] = dict  # fails fast before any work; returns facts for the manifest
    position: Optional[Callable[[], int]] = None  # input bytes the running documents() pass has consumed


def split_text(f: TextIO, limit: int = MAX_DOC_CHARS) -> Iterator[str]:
    """The documents of a text stream read with universal newlines: its paragraphs (runs of lines between blank
    lines, without the last line's end), each longer than `limit` characters cut greedily into pieces of at most
    `limit` (see `cut_point`); the pieces of a paragraph concatenate back to it. Never holds more than ~2·limit
    characters, whatever the length of a line."""
    cur, line_start = "", True
    while s := f.readline(limit):  # at most `limit` characters: a partial line when the line is longer
        if line_start and s[-1] == "\n" and not s.strip():  # a blank line ends the paragraph
            yield from _last(cur)
            cur = ""
            continue
        line_start = s[-1] == "\n"
        cur += s
        while len(cur) > limit:
            k = cut_point(cur, limit)
            yield cur[:k]
            cur = cur[k:]
    yield from _last(cur)


def _last(piece: str) -> Iterator[str]:
    """A paragraph's last piece, without its line end, unless nothing is left."""
    piece = piece[:-1] if piece.endswith("\n") else piece
    if piece:
        yield piece


def cut_point(text: str, limit: int) -> int:
    """Where to end a piece of `text` (longer than `limit`): after the last line end in the second half of
    text[:limit], else before the last space or tab there (BPE attaches a space to the word after it), else at
    `limit`."""
    lo = limit // 2
    k = text.rfind("\n", lo, limit)
    if k >= 0:
        return k + 1
    k = max(text.rfind(" ", lo, limit), text.rfind("\t", lo, limit))
    return k if k > 0 else limit
