"""One cell on several processes: torchrun DDP (gloo on CPU) matches a single process at the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import SWEEP, local_overrides, read_metrics, run_dir_of
from sweep.train import checkpoint


def overrides(out: Path, corpus: Path, cache: Path) -> list[str]:
    # 4 sequences per step: one process accumulates 2 micro-batches of 2; two processes take one each.
    return local_overrides(out, corpus, f"data.cache_dir={cache}", "model=gpt-25k", "train.micro_batch=2",
                           "train.tokens=7680", "train.eval_every=15", "train.log_every=5", vocab=384,
                           batch_tokens=256)


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path, corpus):
    cache = tmp_path / "cache"
    single = overrides(tmp_path / "one", corpus, cache)
    result = subprocess.run([*SWEEP, "train", *single], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    double = overrides(tmp_path / "two", corpus, cache)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             "-m", "sweep", "train", *double], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]

    one, two = run_dir_of(single), run_dir_of(double)
    events = [read_metrics(d) for d in (one, two)]
    assert [e["step"] for e in events[0]] == [e["step"] for e in events[1]]
    for a, b in zip(*events):
        for key in ("train_loss", "val_loss", "val_bpb"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-4), (key, a["step"])
    wa, wb = (torch.load(d / checkpoint.LATEST, weights_only=False)["model"] for d in (one, two))
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (one, two))
    assert sa["tokens"] == sb["tokens"] and sb["val_loss"] == pytest.approx(sa["val_loss"], rel=1e-4)
