"""How a Source becomes tokenizer.json, train.bin and val.bin (a cache entry's contents), and which tokens are held
out. Both splits are a pure function of the corpus and the data settings, so every run of a sweep is evaluated on
the same held-out tokens; the manifest's `split` records which one was used.

The document split, tried first: a document whose index hashes into 1 of VAL_EVERY buckets is a held-out
candidate. Candidates fill the val shard in stream order (each gives at most val_tokens/VAL_MIN_DOCS tokens; the
shard is trimmed to exactly val_tokens); everything else, surplus candidates included, is train (capped by
max_tokens). The tokenizer is trained on non-candidates only.

The tail split, when the document split cannot hold out val_tokens tokens and leave MIN_TRAIN_OVER_VAL times as
many to train on (a corpus of few documents): as nanoGPT splits one file, the last val_tokens tokens of the whole
token stream are held out, everything before them is train. The tokenizer is retrained without the corpus's
end (the text that held the last TAIL_MARGIN × val_tokens tokens at the first tokenizer), so it does not see
validation text either (the manifest counts any held-out token it did see). A corpus too small for either gets a
DataError with its token count and a val_tokens that fits.
"""

from __future__ import annotations

import hashlib
import logging
import math
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from .documents import Source
from .errors import DataError
from .shards import shard_writer
from .tokenizer import EOT, load_tokenizer, token_bytes, train_tokenizer

if TYPE_CHECKING:
    from ..config import DataConfig

log = logging.getLogger(__name__)
LINE_EVERY_S = 30.0  # progress lines without a terminal

VAL_EVERY = 16  # one document in 16 (by a hash of its index) may be held out for validation
VAL_MIN_DOCS = 16  # no held-out document gives more than val_tokens/16 tokens: the val set spans many documents
MIN_TRAIN_OVER_VAL = 2  # the train split must hold at least this many times val_tokens
TAIL_MARGIN = 1.25  # the tail split keeps the tokenizer off the text of the last 1.25 × val_tokens tokens
_BATCH_CHARS, _BATCH_DOCS = 1 << 21, 4096  # text per encode_batch call: bounds memory, keeps the Rust threads busy


def is_val(index: int) -> bool:
    h = hashlib.blake2b(index.to_bytes(8, "little"), digest_size=8, person=b"sweepval").digest()
    return int.from_bytes(h, "little") % VAL_EVERY == 0


def build(cfg: DataConfig, src: Source, out: Path) -> dict:
    """Writes tokenizer.json, train.bin and val.bin into `out`; returns the manifest's facts about them."""
    t0, facts = time.time(), src.check()
    log.info("training a %d-token BPE on up to %d bytes of %s", cfg.vocab_size, cfg.tokenizer_train_bytes,
             src.describe)
    texts = (doc for i, doc in _read(src) if doc and not is_val(i))
    tok = _tokenizer(texts, cfg, src, out)
    n = _document_split(cfg, src, out, tok)
    head_chars = n.pop("head_chars")
    split = {"scheme": "documents", "val_docs": n.pop("val_docs"), "train_docs": n.pop("train_docs")}
    if n["val_tokens"] < cfg.val_tokens or n["train_tokens"] < MIN_TRAIN_OVER_VAL * cfg.val_tokens:
        first = {k: n[k] for k in ("val_tokens", "train_tokens")} | {"val_docs": split["val_docs"]}
        log.info("%s: the document split gives %d of data.val_tokens=%d held-out tokens (%d documents) and %d "
                 "train tokens; holding out the corpus's last %d tokens instead", src.describe,
                 n["val_tokens"], cfg.val_tokens, split["val_docs"], n["train_tokens"], cfg.val_tokens)
        if n["corpus_tokens"] < (MIN_TRAIN_OVER_VAL + 1) * cfg.val_tokens:
            raise too_small(cfg, src, n["corpus_tokens"])
        tok = _tokenizer((text for _, text, held, _ in _head_tail(_read(src), head_chars) if not held), cfg, src,
                         out)
        n = _tail_split(cfg, src, out, tok, head_chars)
        split = {"scheme": "tail", "tokenizer_text_chars": head_chars,
                 "tokenizer_saw_val_tokens": n.pop("tokenizer_saw_val_tokens"), "document_split": first}
        if split["tokenizer_saw_val_tokens"]:
            log.warning("%s: %d held-out tokens lie in the text the tokenizer was trained on", src.describe,
                        split["tokenizer_saw_val_tokens"])
    return {"vocab_size": tok.get_vocab_size(), "eot_id": tok.token_to_id(EOT), **n, "split": split,
            "seconds": round(time.time() - t0, 2), **facts}


def too_small(cfg: DataConfig, src: Source, tokens: int) -> DataError:
    need, fit = (MIN_TRAIN_OVER_VAL + 1) * cfg.val_tokens, int(tokens / (MIN_TRAIN_OVER_VAL + 1) / 1.1)
    fit = fit // 10 ** max(0, len(str(fit)) - 2) * 10 ** max(0, len(str(fit)) - 2)  # 2 significant digits, down
    fix = f"set data.val_tokens={fit} (it fits) or use a larger corpus" if fit else "use a larger corpus"
    return DataError(f"{src.describe} is too small for data.val_tokens={cfg.val_tokens}: it has {tokens:,} tokens at "
                     f"data.vocab_size={cfg.vocab_size}, and holding out {cfg.val_tokens:,} needs {need:,} "
                     f"({MIN_TRAIN_OVER_VAL}× as many to train on); {fix}")


def _read(src: Source, bar: str | None = None) -> Iterator[tuple[int, str]]:
    """The Source's documents with their index, showing progress in input bytes when `bar` names it: a bar on a
    terminal, elsewhere (a SLURM log, `> file`) a log line every LINE_EVERY_S seconds, never carriage returns."""
    tty = sys.stderr.isatty()
    last_line = time.monotonic()
    with tqdm(total=src.total_bytes, unit="B", unit_scale=True, desc=bar, mininterval=1,
              disable=bar is None or not tty) as b:
        done = 0
        for i, doc in enumerate(src.documents()):
            if bar is not None:
                step = (src.position() - done) if src.position else len(doc.encode("utf-8"))
                done += step
                b.update(step)
                if not tty and time.monotonic() - last_line >= LINE_EVERY_S:
                    last_line = time.monotonic()
                    total = f" of {src.total_bytes / 1e6:,.1f} MB" if src.total_bytes else ""
                    log.info("%s: %.1f MB%s read", bar, done / 1e6, total)
            yield i, doc
        if bar is not None and src.position:
            b.update(src.position() - done)  # the last file's end


def _tokenizer(texts: Iterable[str], cfg: DataConfig, src: Source, out: Path):
    """Trains the BPE on up to data.tokenizer_train_bytes of `texts`, saves it to out/tokenizer.json, loads it."""
    def budgeted() -> Iterator[str]:
        budget, seen = cfg.tokenizer_train_bytes, False
        for doc in texts:
            seen = True
            if budget <= 0:
                return
            doc = doc[:budget]  # chars ≥ bytes, so this never cuts more than the budget allows
            budget -= len(doc.encode("utf-8"))
            yield doc
        if not seen and not any(doc for _, doc in _read(src)):
            raise DataError(f"no text in {src.describe}: the corpus is empty")
    train_tokenizer(budgeted(), cfg.vocab_size).save(str(out / "tokenizer.json"))
    return load_tokenizer(out / "tokenizer.json")


def _encoded(items: Iterable[tuple], tok) -> Iterator[tuple]:
    """Each item (key, text, *rest) as (key, text, *rest, ids closed by EOT, or None for empty text), in order;
    encoded in batches."""
    encode, eot = getattr(tok, "encode_batch_fast", tok.encode_batch), tok.token_to_id(EOT)  # no offsets: faster
    batch, chars = [], 0

    def flush():
        encs = iter(encode([item[1] for item in batch if item[1]]))
        return [(*item, np.append(np.asarray(next(encs).ids, np.int64), eot) if item[1] else None) for item in batch]
    for item in items:
        batch.append(item)
        chars += len(item[1])
        if chars >= _BATCH_CHARS or len(batch) >= _BATCH_DOCS:
            yield from flush()
            batch, chars = [], 0
    yield from flush()


def _writers(out: Path, tok):
    dtype = np.uint16 if tok.get_vocab_size() <= 1 << 16 else np.uint32
    return shard_writer(out / "val.bin", dtype), shard_writer(out / "train.bin", dtype)


def _document_split(cfg: DataConfig, src: Source, out: Path, tok) -> dict:
    tb, eot = token_bytes(tok), tok.token_to_id(EOT)
    cap, per_doc = cfg.max_tokens or math.inf, -(-cfg.val_tokens // VAL_MIN_DOCS)
    n = dict.fromkeys(("train_tokens", "val_tokens", "train_docs", "val_docs", "val_bytes", "documents",
                       "text_bytes", "text_chars", "corpus_tokens"), 0) | {"complete": True}
    # (chars, tokens) before each of the last documents, back to the one where the final `tail` tokens begin
    tail, recent = math.ceil(TAIL_MARGIN * cfg.val_tokens), deque()
    val_w, train_w = _writers(out, tok)
    with val_w as val, train_w as train:
        for i, doc, ids in _encoded(_read(src, f"tokenize {cfg.name}"), tok):
            if n["val_tokens"] >= cfg.val_tokens and n["train_tokens"] >= cap:
                n["complete"] = False  # both shards are full: the rest of the corpus is not needed
                break
            n["documents"] += 1
            recent.append((n["text_chars"], n["corpus_tokens"]))
            n["text_chars"] += len(doc)
            n["text_bytes"] += (nbytes := len(doc.encode("utf-8")))
            if ids is None:
                continue
            n["corpus_tokens"] += len(ids)
            while len(recent) > 1 and n["corpus_tokens"] - recent[1][1] >= tail:
                recent.popleft()
            if is_val(i) and n["val_tokens"] < cfg.val_tokens:
                # A long document gives its beginning, still closed by EOT; the rest is dropped, not trained on.
                limit = min(per_doc, cfg.val_tokens - n["val_tokens"])
                keep = ids if len(ids) <= limit else np.append(ids[: limit - 1], eot)
                kept_bytes = int(tb[keep].sum())
                if keep is ids and kept_bytes != nbytes:
                    raise RuntimeError(f"bits-per-byte bookkeeping is off for document {i}")  # a bug, not input
                val.write(keep)
                n["val_tokens"] += len(keep)
                n["val_docs"] += 1
                n["val_bytes"] += kept_bytes  # a cut document counts exactly the bytes of its kept tokens
            elif n["train_tokens"] < cap:  # held-out candidates past the val quota are training text
                keep = ids[: int(min(len(ids), cap - n["train_tokens"]))]
                train.write(keep)
                n["train_tokens"] += len(keep)
                n["train_docs"] += 1
    # Where the tail split would start: `tail` tokens (at this tokenizer) before the end, within its document
    # assuming tokens spread evenly over its characters.
    c0, t0 = recent[0] if recent else (0, 0)
    c1, t1 = recent[1] if len(recent) > 1 else (n["text_chars"], n["corpus_tokens"])
    need = tail - (n["corpus_tokens"] - t1)
    n["head_chars"] = max(c0, c1 - math.ceil(need / (t1 - t0) * (c1 - c0))) if t1 > t0 and need > 0 else c0
    return n


def _head_tail(docs: Iterable[tuple[int, str]], head_chars: int) -> Iterator[tuple[int, str, bool, bool]]:
    """(index, text, held out?, closes its document?) with the stream's first `head_chars` characters not held
    out; the document straddling the cut is split at a line end or space shortly before it, if there is one."""
    seen = 0
    for i, doc in docs:
        if seen >= head_chars or seen + len(doc) <= head_chars:
            yield i, doc, seen >= head_chars, True
        else:
            k = head_chars - seen
            k = max(doc.rfind("\n", max(0, k - 1024), k) + 1, doc.rfind(" ", max(0, k - 1024), k), 0) or k
            yield i, doc[:k], False, False
            yield i, doc[k:], True, True
        seen += len(doc)


def _tail_split(cfg: DataConfig, src: Source, out: Path, tok, head_chars: int) -> dict:
    """The last val_tokens tokens of the stream to val.bin, the ones before them to train.bin (capped)."""
    cap, val_tokens = cfg.max_tokens or math.inf, cfg.val_tokens
    n = dict.fromkeys(("train_tokens", "documents", "text_bytes", "text_chars", "corpus_tokens"), 0)
    held, pending, tail_tokens = 0, [], 0  # the most recent tokens, not yet known to be before the last val_tokens

    def spill(keep: int) -> None:  # all but the last `keep` pending tokens are train
        nonlocal held
        tokens = np.concatenate(pending) if pending else np.zeros(0, np.int64)
        head, pending[:] = tokens[: max(0, len(tokens) - keep)], [tokens[max(0, len(tokens) - keep):]]
        head = head[: int(min(len(head), cap - n["train_tokens"]))]
        train.write(head)
        n["train_tokens"] += len(head)
        held = len(pending[0])

    val_w, train_w = _writers(out, tok)
    with val_w as val, train_w as train:
        for i, text, is_tail, closes, ids in _encoded(_head_tail(_read(src, f"tokenize {cfg.name}"), head_chars),
                                                      tok):
            n["documents"] += closes
            n["text_chars"] += len(text)
            n["text_bytes"] += len(text.encode("utf-8"))
            if ids is None:
                continue
            ids = ids if closes else ids[:-1]  # the head of a cut document continues in the tail: no EOT between
            n["corpus_tokens"] += len(ids)
            tail_tokens += len(ids) if is_tail else 0
            pending.append(ids)
            held += len(ids)
            if held >= 2 * val_tokens + (1 << 16):
                spill(val_tokens)
        spill(val_tokens)
        if held < val_tokens or n["train_tokens"] < MIN_TRAIN_OVER_VAL * val_tokens:
            raise too_small(cfg, src, n["corpus_tokens"])
        val.write(pending[0])
    last = pending[0]
    return {**n, "val_tokens": len(last), "val_bytes": int(token_bytes(tok)[last].sum()), "complete": True,
            "tokenizer_saw_val_tokens": max(0, val_tokens - tail_tokens)}
