"""Fixtures and hooks only: the shared builders and readers are in helpers.py (`from helpers import ...`)."""

import os
from pathlib import Path

import pytest

# Tests never reach a hub or wandb's servers.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _small_torch(monkeypatch):
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """A small local corpus of Python source (like the default pystdlib) that tokenizes in about a second."""
    import sysconfig

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    text = "".join((stdlib / name).read_text() for name in ("argparse.py", "json/decoder.py", "textwrap.py",
                                                               "dataclasses.py", "functools.py", "string.py"))
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    path.write_text(text)
    return path
