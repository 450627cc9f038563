"""What a user relies on when runs get killed, preempted or fed bad input: real subprocesses, real signals."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import SWEEP, local_overrides, read_metrics, run_dir_of
from sweep.config import compose
from sweep.train import checkpoint, runtime
from sweep.train.loop import NonFiniteLoss, train


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")  # one tokenization shared by the straight and the resumed runs


def overrides(out: Path, corpus: Path, cache: Path, *extra: str) -> list[str]:
    # 120 steps of 512 tokens in micro-batches of 2 sequences (accumulation 4), eval every 25 steps.
    return local_overrides(out, corpus, f"data.cache_dir={cache}", "model=gpt-50k", "train.micro_batch=2",
                           "train.tokens=61440", "train.eval_every=25", "train.checkpoint_every=10",
                           "train.log_every=5", *extra)


def launch(args: list[str]) -> subprocess.Popen:
    # One stream: Hydra logs to stdout, tqdm and errors go to stderr.
    return subprocess.Popen([*SWEEP, "train", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"run ended before {path.name} appeared: {proc.communicate()[0][-2000:]}"
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def comparable(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock field."""
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in e.items() if k != "tok_per_s"} for e in events]


def weights(run_dir: Path) -> dict:
    return torch.load(run_dir / checkpoint.LATEST, weights_only=False)["model"]


def assert_identical(a: Path, b: Path) -> None:
    assert comparable(a) == comparable(b)
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert sa["val_loss"] == sb["val_loss"] and sa["status"] == sb["status"] == "completed"


@pytest.fixture(scope="module")
def straight(tmp_path_factory, corpus, cache) -> Path:
    out = tmp_path_factory.mktemp("straight")
    proc = launch(overrides(out, corpus, cache))
    err, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return run_dir_of(overrides(out, corpus, cache))


@pytest.mark.slow
def test_sigkill_then_relaunch_is_bit_identical(tmp_path, corpus, cache, straight):
    args = overrides(tmp_path, corpus, cache)
    run_dir = run_dir_of(args)
    proc = launch(args)
    wait_for(run_dir / checkpoint.LATEST, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    killed_at = torch.load(run_dir / checkpoint.LATEST, weights_only=False)["step"]
    assert killed_at < 120 and not (run_dir / "summary.json").exists()

    relaunch = launch(args)
    err, _ = relaunch.communicate(timeout=300)
    assert relaunch.returncode == 0, err[-3000:]
    assert f"resuming {run_dir.name} at step {killed_at}" in err
    assert_identical(straight, run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2])
def test_stop_signal_checkpoints_exits_75_and_resumes_identically(tmp_path, corpus, cache, straight, sig):
    args = overrides(tmp_path, corpus, cache)
    run_dir = run_dir_of(args)
    proc = launch(args)
    wait_for(run_dir / checkpoint.LATEST, proc)
    proc.send_signal(sig)
    err, _ = proc.communicate(timeout=120)
    assert proc.returncode == runtime.EXIT_STOPPED, err[-3000:]
    stopped_at = torch.load(run_dir / checkpoint.LATEST, weights_only=False)["step"]
    assert f"checkpointed at step {stopped_at}" in err and stopped_at < 120

    relaunch = launch(args)
    err, _ = relaunch.communicate(timeout=300)
    assert relaunch.returncode == 0, err[-3000:]
    assert_identical(straight, run_dir)


@pytest.mark.slow
def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path, corpus, cache, straight):
    args = overrides(tmp_path, corpus, cache)
    run_dir = run_dir_of(args)
    proc = launch(args)
    wait_for(run_dir / checkpoint.PREVIOUS, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    latest = run_dir / checkpoint.LATEST
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2])  # a torn write

    relaunch = launch(args)
    err, _ = relaunch.communicate(timeout=300)
    assert relaunch.returncode == 0, err[-3000:]
    assert "is unreadable" in err and "trying the previous one" in err
    assert_identical(straight, run_dir)


def test_save_is_atomic_and_keeps_the_previous_generation(tmp_path):
    checkpoint.save(tmp_path, {"step": 1})
    checkpoint.save(tmp_path, {"step": 2})
    assert checkpoint.load(tmp_path)["step"] == 2
    assert torch.load(tmp_path / checkpoint.PREVIOUS)["step"] == 1
    assert not list(tmp_path.glob("*.tmp"))
    (tmp_path / checkpoint.LATEST).write_bytes(b"garbage")
    (tmp_path / checkpoint.PREVIOUS).write_bytes(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="no readable checkpoint"):
        checkpoint.load(tmp_path, warn=lambda message: None)


class _PoisonedGPT:
    """Wraps GPT.forward to return a NaN loss on one training call."""

    def __init__(self, at_call: int):
        self.calls, self.at_call = 0, at_call

    def install(self, monkeypatch):
        from sweep.train import model as model_module

        original = model_module.GPT.forward

        def forward(module, idx, targets=None, reduction="mean"):
            logits, loss = original(module, idx, targets, reduction)
            if module.training and targets is not None:
                self.calls += 1
                if self.calls == self.at_call:
                    loss = loss * float("nan")
            return logits, loss

        monkeypatch.setattr(model_module.GPT, "forward", forward)


def test_nonfinite_loss_stops_naming_the_step_and_never_checkpoints_it(tmp_path, corpus, cache, monkeypatch):
    _PoisonedGPT(at_call=4 * 13 + 1).install(monkeypatch)  # first micro-batch of step 14
    run = compose(overrides(tmp_path, corpus, cache))
    run_dir = tmp_path / "single" / run.run_name
    with pytest.raises(NonFiniteLoss, match="at step 14"):
        train(run, run_dir, runtime.resolve(run.device, run.train))
    saved = torch.load(run_dir / checkpoint.LATEST, weights_only=False)
    assert saved["step"] == 10  # the checkpoint of step 20 was refused
    assert all(torch.isfinite(t).all() for t in saved["model"].values())


def test_nonfinite_skip_policy_skips_the_batch_and_finishes(tmp_path, corpus, cache, monkeypatch):
    _PoisonedGPT(at_call=4 * 13 + 1).install(monkeypatch)
    run = compose(overrides(tmp_path, corpus, cache, "train.nonfinite=skip"))
    summary = train(run, tmp_path / "run", runtime.resolve(run.device, run.train))
    assert summary["status"] == "completed" and summary["skipped_steps"] == 1
    assert summary["val_loss"] == summary["val_loss"]  # finite, not NaN
    # The train loss of the interval holding the skipped step (steps 11-15) is the mean of its four good steps:
    # close to its neighbours' (it once divided one step's loss by five).
    losses = {e["step"]: e["train_loss"] for e in read_metrics(tmp_path / "run") if "train_loss" in e}
    assert losses[10] > losses[15] > 0.9 * losses[20] and losses[15] > 0.8 * losses[10], losses


@pytest.mark.parametrize("bad,message", [
    (["model.n_head=3"], "model.d_model=32 is not divisible by model.n_head=3"),
    (["model=gpt-7b"], "Could not find 'model/gpt-7b'"),
    (["data=nope"], "Could not find 'data/nope'"),
    (["train.flops=1e12"], "conflicting horizons"),
    (["train.micro_batch=3"], "not a multiple of train.micro_batch=3"),
    (["device=cuda"], "device=cuda but no CUDA GPU"),
    (["data.path=/no/such/file.txt"], "data.path=/no/such/file.txt does not exist"),
])
def test_rejected_config_is_named_and_creates_nothing(tmp_path, corpus, cache, bad, message):
    if bad == ["device=cuda"] and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = subprocess.run([*SWEEP, "train", *overrides(tmp_path, corpus, cache), *bad], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "single").exists() and not list(tmp_path.glob("**/wandb"))


def test_vocab_smaller_than_the_tokenizer_is_rejected(tmp_path, corpus, cache):
    from sweep.config import ConfigError

    run = compose(overrides(tmp_path, corpus, cache, "model.vocab_size=100", "data.vocab_size=100"))
    run.data.vocab_size = 512  # the tokenizer on disk has 512 tokens; the model asks for 100
    with pytest.raises(ConfigError, match="model.vocab_size=100 is smaller than the tokenizer's"):
        train(run, tmp_path / "run", runtime.resolve(run.device, run.train))


@pytest.mark.slow
def test_wandb_continues_the_same_run_after_a_kill(tmp_path, corpus, cache):
    from wandb_records import run_record

    args = overrides(tmp_path, corpus, cache, "logger=wandb")
    run_dir = run_dir_of(args)
    proc = subprocess.Popen([*SWEEP, "train", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "WANDB_MODE": "offline"})
    wait_for(run_dir / checkpoint.LATEST, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    relaunch = subprocess.run([*SWEEP, "train", *args], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "WANDB_MODE": "offline"})
    assert relaunch.returncode == 0, relaunch.stderr[-3000:]
    runs = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2  # two attempts ...
    ids = {r.name.rsplit("-", 1)[1] for r in runs}  # offline-run-<time>-<run id>
    assert len(ids) == 1  # ... of one wandb run
    assert run_record(runs[-1]).run_id in ids
