"""Failures of the data stage that must lose nothing and say what to do: a damaged cache entry names its file and
the fix, an unwritable cache directory names itself and the keys that move it, and an interrupted prepare (a real
signal to a real process) leaves no entry behind and is redone by the next prepare."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import make_docs, small_cfg, write_corpus

from sweep.data import DataError, open_tokens, prepare
from sweep.data.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A corpus and a finished cache entry of it, prepared once; tests damage copies of the entry."""
    root = tmp_path_factory.mktemp("built")
    cfg = small_cfg(write_corpus(root / "c.jsonl", make_docs(400), "jsonl"))
    return cfg, prepare(cfg, root / "cache")


@pytest.fixture
def entry(built, tmp_path):
    """(cfg, cache root, entry dir): a private copy of the built entry in a fresh cache root."""
    cfg, p = built
    shutil.copytree(p.dir, tmp_path / "cache" / p.dir.name)
    return cfg, tmp_path / "cache", tmp_path / "cache" / p.dir.name


# ---------------------------------------------------------------- a damaged cache entry

@pytest.mark.parametrize("damage", ["not_json", "not_an_object", "missing_keys", "not_utf8"])
def test_damaged_manifest_names_the_file_and_the_fix(entry, damage):
    cfg, root, d = entry
    manifest = d / "manifest.json"
    if damage == "not_json":
        manifest.write_text('{"vocab_size": 300, "fingerp')
    elif damage == "not_an_object":
        manifest.write_text("[1, 2]")
    elif damage == "missing_keys":
        m = json.loads(manifest.read_text())
        del m["vocab_size"], m["split"]
        manifest.write_text(json.dumps(m))
    else:
        manifest.write_bytes(b"\xff\xfe{}")
    with pytest.raises(DataError, match=rf"{manifest}.*delete the cache entry {d} to re-prepare it") as err:
        prepare(cfg, root)
    if damage == "missing_keys":
        assert "vocab_size, split" in str(err.value)


@pytest.mark.parametrize("missing", ["tokenizer.json", "train.bin", "val.bin"])
def test_missing_entry_file_names_it_and_the_fix(entry, missing):
    cfg, root, d = entry
    (d / missing).unlink()
    with pytest.raises(DataError, match=rf"{d / missing} is missing from its cache entry; delete the cache entry"):
        prepare(cfg, root)
    with pytest.raises(DataError, match=rf"{d / missing} .*delete its cache entry {d}"):  # and when read directly
        open_tokens(d / missing) if missing.endswith(".bin") else load_tokenizer(d / missing)


def test_unloadable_tokenizer_names_it_and_the_fix(entry):
    cfg, root, d = entry
    (d / "tokenizer.json").write_text('{"not": "a tokenizer"}')
    p = prepare(cfg, root)  # found: only its manifest and files' presence are checked here
    with pytest.raises(DataError, match=rf"{d / 'tokenizer.json'} cannot be loaded as a tokenizer .*delete its "
                                        rf"cache entry {d} to re-prepare it"):
        p.token_bytes()


# ---------------------------------------------------------------- an unwritable cache directory

def test_cache_under_a_regular_file_names_the_directory_and_the_keys(built, tmp_path):
    # Works as root too (chmod does not stop root): no directory can be made under a regular file.
    cfg, _ = built
    (tmp_path / "file").write_text("not a directory")
    root = tmp_path / "file" / "cache"
    with pytest.raises(DataError, match=rf"cannot write the data cache {root} .*data.cache_dir=DIR .*out_dir=DIR"):
        prepare(cfg, root)


def test_blocked_lock_file_names_the_directory(built, tmp_path):
    cfg, p = built
    (tmp_path / "cache" / f"{p.dir.name}.lock").mkdir(parents=True)  # root or not, the lock cannot be created
    with pytest.raises(DataError, match=rf"cannot write the data cache {tmp_path / 'cache'} .*data.cache_dir="):
        prepare(cfg, tmp_path / "cache")


def as_unprivileged(fn) -> str:
    """fn()'s outcome ("returned: …" or "ExceptionName: message"). Under root, run in a forked child that drops to
    uid/gid 65534 first, so that file permissions apply (root writes into a 0o555 directory regardless)."""
    def outcome() -> str:
        try:
            return f"returned: {fn()}"
        except BaseException as err:  # reported to the test as text
            return f"{type(err).__name__}: {err}"
    if os.geteuid() != 0:
        return outcome()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(r)
            os.setgid(65534)
            os.setuid(65534)
            os.write(w, outcome().encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    os.waitpid(pid, 0)
    return out


def test_read_only_cache_directory():
    shared = Path(tempfile.mkdtemp(prefix="sweep-ro-"))  # outside pytest's 0o700 tree: the dropped user can read it
    try:
        shared.chmod(0o755)
        cfg = small_cfg(write_corpus(shared / "c.jsonl", make_docs(400), "jsonl"))
        (shared / "ro").mkdir(mode=0o555)
        for root in (shared / "ro", shared / "ro" / "cache"):  # cannot create the lock; cannot create the directory
            out = as_unprivileged(lambda: prepare(cfg, root))
            assert out.startswith(f"DataError: cannot write the data cache {root} (Permission denied"), out
            assert "data.cache_dir=DIR" in out and "out_dir=DIR" in out
        (shared / "ro").chmod(0o755)
        entry = prepare(cfg, shared / "ro").dir
        (shared / "ro").chmod(0o555)  # a finished entry in a read-only cache is still used
        assert as_unprivileged(lambda: prepare(cfg, shared / "ro").dir) == f"returned: {entry}"
    finally:
        (shared / "ro").chmod(0o755)
        shutil.rmtree(shared)


# ---------------------------------------------------------------- an interrupted prepare

# SIGINT raises KeyboardInterrupt as at a terminal, even if this test runs where SIGINT is ignored (a background job).
CHILD = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); from pathlib import Path; "
         "from sweep.config import DataConfig; from sweep.data import prepare; prepare(DataConfig(name='big', "
         "source='local', path=sys.argv[1], vocab_size=300, val_tokens=4096, tokenizer_train_bytes=200_000), "
         "Path(sys.argv[2]))")


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory) -> Path:
    """~12 MB of paragraphs: a few seconds of tokenizing on two cores."""
    rng = random.Random(0)
    words = [f"w{i}" for i in range(3000)] + "the of and to in is it that was for on are".split()
    paras = ("\n".join(" ".join(rng.choices(words, k=12)) for _ in range(6)) for _ in range(25_000))
    path = tmp_path_factory.mktemp("big") / "big.txt"
    path.write_text("\n\n".join(paras))
    return path


@pytest.mark.slow  # two full prepares of a corpus that takes seconds, one of them interrupted
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupted_prepare_leaves_no_entry_and_is_redone(big_corpus, tmp_path, sig):
    cache = tmp_path / "cache"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(big_corpus), str(cache)], stderr=subprocess.PIPE,
                             text=True)
    try:
        deadline = time.monotonic() + 120
        while not list(cache.glob(".tmp-big-*/tokenizer.json")):  # the BPE is trained: tokenizing has begun
            assert child.poll() is None, child.stderr.read()
            assert time.monotonic() < deadline, "the child never started tokenizing"
            time.sleep(0.02)
        time.sleep(0.3)
        assert child.poll() is None, "prepare finished before it could be interrupted: use a larger corpus"
        child.send_signal(sig)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0
    if sig == signal.SIGINT:
        assert "KeyboardInterrupt" in err
    left = sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))
    # Ctrl-C cleans up after itself; SIGKILL cannot, but leaves only a hidden temporary directory.
    assert left == [] if sig == signal.SIGINT else all(name.startswith(".tmp-big-") for name in left)
    p = prepare(small_cfg(big_corpus, name="big", vocab_size=300, val_tokens=4096, tokenizer_train_bytes=200_000),
                cache)
    assert p.built_now and len(open_tokens(p.val_path)) == 4096
    assert sorted(x.name for x in cache.iterdir() if not x.name.endswith(".lock")) == [p.dir.name]
