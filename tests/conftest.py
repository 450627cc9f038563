import json
import os
import sys
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


# ------------------------------------------------------------------------------------ shared test builders
# Tests import these (`from conftest import ...`; tests/ is on pythonpath).
SWEEP = [sys.executable, "-m", "sweep"]


def local_overrides(out: Path, corpus: Path, *extra: str, vocab: int = 512, val_tokens: int = 2048,
                    seq_len: int = 64, batch_tokens: int = 512) -> list[str]:
    """A tiny, fast CPU run on a local corpus: the base every trainer test adds its own overrides to. Mechanics
    tests may pass over the small corpus many times (data.allow_repeat)."""
    return ["data=local", f"data.path={corpus}", f"data.vocab_size={vocab}", f"data.val_tokens={val_tokens}",
            f"out_dir={out}", f"model.seq_len={seq_len}", f"train.batch_tokens={batch_tokens}", "device=cpu",
            "train.threads=1", "data.allow_repeat=true", *extra]


def run_dir_of(args: list[str]) -> Path:
    """Where `sweep train ARGS` writes: <out_dir>/<sweep name>/<run_name>."""
    from sweep.config import compose

    run = compose(args)
    return Path(run.out_dir) / run.sweep.name / run.run_name


def run_cell(run) -> tuple[dict, Path]:
    """Train a composed RunConfig in-process into its run directory; (summary, run_dir)."""
    from sweep.train import runtime
    from sweep.train.loop import train

    run_dir = Path(run.out_dir) / run.sweep.name / run.run_name
    return train(run, run_dir, runtime.resolve(run.device, run.train)), run_dir


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def summaries(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/summary.json"))}
