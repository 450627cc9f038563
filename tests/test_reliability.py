"""What a user relies on when runs get killed, preempted or fed bad input: real subprocesses, real signals."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch

from helpers import SWEEP, launch, local_overrides, read_metrics, run_dir_of, wait_for
from sweep import exits, rundir
from sweep.config import compose
from sweep.train import checkpoint, runtime
from sweep.train.loop import train
from sweep.train.step import NonFiniteLoss


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")  # one tokenization shared by the straight and the resumed runs


def overrides(out: Path, corpus: Path, cache: Path, *extra: str) -> list[str]:
    # 120 steps of 512 tokens in micro-batches of 2 sequences (accumulation 4), eval every 25 steps.
    return local_overrides(out, corpus, f"data.cache_dir={cache}", "model=gpt-50k", "train.micro_batch=2",
                           "train.tokens=61440", "train.eval_every=25", "train.checkpoint_every=10",
                           "train.log_every=5", *extra)


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
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, exits.EXIT_STOPPED), (signal.SIGUSR1, exits.EXIT_STOPPED),
                                      (signal.SIGUSR2, exits.EXIT_STOPPED),
                                      (signal.SIGINT, exits.EXIT_INTERRUPTED)])
def test_stop_signal_checkpoints_exits_and_resumes_identically(tmp_path, corpus, cache, straight, sig, code):
    """SIGTERM/SIGUSR1/SIGUSR2 (a scheduler's warning) exit 75, Ctrl-C 130: both after a checkpoint."""
    args = overrides(tmp_path, corpus, cache)
    run_dir = run_dir_of(args)
    proc = launch(args)
    wait_for(run_dir / checkpoint.LATEST, proc)
    proc.send_signal(sig)
    err, _ = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err
    stopped_at = torch.load(run_dir / checkpoint.LATEST, weights_only=False)["step"]
    assert f"checkpointed at step {stopped_at}" in err and stopped_at < 120

    relaunch = launch(args)
    err, _ = relaunch.communicate(timeout=300)
    assert relaunch.returncode == 0, err[-3000:]
    assert_identical(straight, run_dir)


@pytest.mark.slow
def test_second_ctrl_c_exits_at_once_and_the_run_still_resumes(tmp_path, corpus, cache, straight):
    args = overrides(tmp_path, corpus, cache)
    run_dir = run_dir_of(args)
    proc = launch(args)
    wait_for(run_dir / checkpoint.LATEST, proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    err, _ = proc.communicate(timeout=120)
    assert proc.returncode == exits.EXIT_INTERRUPTED, err[-3000:]
    assert "Traceback" not in err
    checkpoint.load(run_dir)  # whichever generation the interrupt left is whole

    relaunch = launch(args)
    err, _ = relaunch.communicate(timeout=300)
    assert relaunch.returncode == 0, err[-3000:]
    assert_identical(straight, run_dir)


@pytest.mark.slow
def test_a_second_launch_of_a_running_cell_is_refused_and_touches_nothing(tmp_path, corpus, cache):
    # 1,600 steps: still running when the second launch starts.
    args = overrides(tmp_path, corpus, cache, "train.tokens=819200")
    run_dir = run_dir_of(args)
    first = launch(args)
    wait_for(run_dir / checkpoint.LATEST, first)
    second = subprocess.run([*SWEEP, "train", *args], capture_output=True, text=True, timeout=120)
    assert first.poll() is None, "the first run ended before the second launch could race it"
    assert second.returncode == 1 and "being trained by another process" in second.stderr, second.stderr[-2000:]
    assert "Traceback" not in second.stderr
    err, _ = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    steps = [e["step"] for e in read_metrics(run_dir) if "train_loss" in e]
    assert steps == sorted(set(steps)) and steps[-1] == 1600  # every event once, in order
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_metrics_shorter_than_the_checkpoint_says_is_refused_never_padded(tmp_path, corpus, cache, straight):
    args = overrides(tmp_path, corpus, cache)
    run_dir = run_dir_of(args)
    proc = launch(args)
    wait_for(run_dir / checkpoint.PREVIOUS, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    metrics = run_dir / "metrics.jsonl"
    metrics.write_bytes(metrics.read_bytes()[: metrics.stat().st_size // 3])  # lost events
    size = metrics.stat().st_size
    relaunch = subprocess.run([*SWEEP, "train", *args], capture_output=True, text=True, timeout=120)
    assert relaunch.returncode == 1, relaunch.stderr[-3000:]
    assert "truncated or replaced" in relaunch.stderr and "Traceback" not in relaunch.stderr
    assert metrics.stat().st_size == size and b"\0" not in metrics.read_bytes()


def _mount_tmpfs(path: Path, size: int) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.mark.slow
def test_full_disk_at_a_checkpoint_is_reported_and_the_run_resumes_once_space_is_back(tmp_path, corpus, cache,
                                                                                       straight):
    """A run directory on a tmpfs with room for two checkpoints and not a third write: the run stops with one line,
    its previous checkpoint loads, and with space back the same command finishes it identically."""
    room = int(2.5 * (straight / checkpoint.LATEST).stat().st_size) + (64 << 10)
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, room):
        pytest.skip("cannot mount a tmpfs here (needs root in a namespace that allows mounts)")
    try:
        args = overrides(disk, corpus, cache)
        run_dir = run_dir_of(args)
        full = subprocess.run([*SWEEP, "train", *args], capture_output=True, text=True, timeout=300)
        assert full.returncode == 1, full.stderr[-3000:]
        assert "No space left on device writing" in full.stderr and "Traceback" not in full.stderr
        assert not list(run_dir.glob(".*.tmp"))  # the failed write's temporary file is gone
        assert not rundir.is_completed(run_dir)
        assert checkpoint.load(run_dir)["step"] > 0
        subprocess.run(["mount", "-o", f"remount,size={64 << 20}", str(disk)], check=True)
        again = subprocess.run([*SWEEP, "train", *args], capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-3000:]
        assert_identical(straight, run_dir)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_checkpoint_of_another_model_falls_back_to_the_previous_one(tmp_path):
    from sweep.config import ModelConfig
    from sweep.train.model import GPT

    ours = GPT(ModelConfig(n_layer=1, d_model=16, n_head=2, seq_len=8, vocab_size=300))
    other = GPT(ModelConfig(n_layer=1, d_model=32, n_head=2, seq_len=8, vocab_size=300))
    checkpoint.save(tmp_path, {"model": ours.state_dict(), "step": 1})
    checkpoint.save(tmp_path, {"model": other.state_dict(), "step": 2})
    warnings = []
    assert checkpoint.load(tmp_path, warn=warnings.append, model=ours)["step"] == 1
    assert "does not fit this run" in warnings[0] and "another model's" in warnings[0]
    checkpoint.save(tmp_path, {"model": other.state_dict(), "step": 3})  # now both generations are the other's
    with pytest.raises(checkpoint.CheckpointError, match="no usable checkpoint"):
        checkpoint.load(tmp_path, warn=warnings.append, model=ours)


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
    with pytest.raises(checkpoint.CheckpointError, match="no usable checkpoint"):
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


@pytest.mark.slow
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
    (["model.n_head=3"], "model.d_model=38 is not divisible by model.n_head=3"),
    (["model=gpt-7b"], "Could not find 'model/gpt-7b'"),
    (["data=nope"], "Could not find 'data/nope'"),
    (["train.flops=1e12"], "conflicting horizons"),
    (["train.micro_batch=3"], "not a multiple of train.micro_batch=3"),
    (["device=cuda"], "device=cuda but no CUDA GPU"),
    (["data.path=/no/such/file.txt"], "data.path=/no/such/file.txt does not exist"),
    (["train.tokens=null", "train.flops=1"], "less than half of one optimizer step"),
    (["data.vocab_size=100"], "data.vocab_size=100 is below 257"),
    (["model.seq_len=100000"], "model.seq_len=100000 needs data.val_tokens"),
])
def test_rejected_config_is_named_and_creates_nothing(tmp_path, corpus, cache, bad, message, capsys):
    """`sweep train` in-process, as the console script runs it: exit 2, one line naming the key, nothing created."""
    from sweep.cli import main

    if bad == ["device=cuda"] and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["train", *overrides(tmp_path, corpus, cache), *bad]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "single").exists() and not list(tmp_path.glob("**/wandb"))


@pytest.mark.slow
def test_rejected_config_from_the_console_script_has_no_traceback(tmp_path, corpus, cache):
    result = subprocess.run([*SWEEP, "train", *overrides(tmp_path, corpus, cache), "model.n_head=3"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "not divisible by model.n_head=3" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "single").exists()


def test_vocab_smaller_than_the_tokenizer_is_rejected(tmp_path, corpus, cache):
    from sweep.config import ConfigError

    run = compose(overrides(tmp_path, corpus, cache, "model.vocab_size=300", "data.vocab_size=300"))
    run.data.vocab_size = 512  # the tokenizer on disk has 512 tokens; the model asks for 300
    with pytest.raises(ConfigError, match="model.vocab_size=300 is smaller than the tokenizer's"):
        train(run, tmp_path / "run", runtime.resolve(run.device, run.train))


@pytest.mark.slow
def test_wandb_continues_the_same_run_after_a_kill(tmp_path, corpus, cache):
    from helpers import run_record

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


@pytest.mark.slow
def test_metrics_behind_the_latest_checkpoint_resume_from_the_previous_one_identically(tmp_path, corpus, cache,
                                                                                      straight):
    """A crash that lost the events after the previous checkpoint (metrics.jsonl ends between the two checkpoints'
    offsets) resumes from the previous checkpoint, with a warning, and ends as the straight run did."""
    args = overrides(tmp_path, corpus, cache)
    run_dir = run_dir_of(args)
    proc = launch(args)
    wait_for(run_dir / checkpoint.PREVIOUS, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    latest, previous = (checkpoint.read(run_dir / name) for name in (checkpoint.LATEST, checkpoint.PREVIOUS))
    assert previous["metrics_offset"] < latest["metrics_offset"]
    metrics = run_dir / "metrics.jsonl"
    metrics.write_bytes(metrics.read_bytes()[: previous["metrics_offset"]])
    relaunch = launch(args)
    err, _ = relaunch.communicate(timeout=300)
    assert relaunch.returncode == 0, err[-3000:]
    assert "trying the previous one" in err and f"resuming {run_dir.name} at step {previous['step']}" in err, err
    assert_identical(straight, run_dir)


def test_a_write_killed_mid_way_leaves_no_temporary_file_after_the_next_write(tmp_path):
    from sweep.files import write_text_atomic

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs (reaped)
    orphan = tmp_path / f".summary.json.{dead.pid}.tmp"
    orphan.write_text("half of a")
    alive = tmp_path / f".summary.json.{os.getppid()}.tmp"  # a live writer's file is left alone
    alive.write_text("being written")
    write_text_atomic(tmp_path / "summary.json", "{}")
    assert not orphan.exists() and alive.exists() and (tmp_path / "summary.json").read_text() == "{}"


def test_a_filesystem_whose_locks_do_nothing_is_refused_before_training(tmp_path, monkeypatch):
    """Where flock is a no-op, a second lock on the held .lock is granted: claim refuses to train there. (No such
    filesystem can be mounted here, so flock is made a no-op for the probe.)"""
    import fcntl

    with rundir.claim(tmp_path / "a"):  # a working filesystem: the probe's second lock is refused, all is well
        pass
    real = fcntl.flock
    held = []

    def no_op_after_the_first(fd, op):
        if held:
            return None  # granted, whatever is held
        held.append(fd)
        return real(fd, op)

    monkeypatch.setattr(fcntl, "flock", no_op_after_the_first)
    with pytest.raises(rundir.RunDirError, match="file locks do nothing"):
        with rundir.claim(tmp_path / "b"):
            pytest.fail("trained on a filesystem whose locks do nothing")


def test_an_nfs_mount_with_local_locks_is_named_and_a_shared_one_is_not():
    mountinfo = "\n".join([
        "22 1 0:21 / / rw,relatime - ext4 /dev/sda1 rw",
        "40 22 0:40 / /shared rw,relatime - nfs4 srv:/export rw,vers=4.2,local_lock=none",
        "41 22 0:41 / /scratch rw,relatime - nfs srv:/scratch rw,vers=3,nolock,local_lock=all",
    ])
    assert rundir.lock_scope("/shared/runs/x/.lock", mountinfo) is None
    assert rundir.lock_scope("/home/me/runs/.lock", mountinfo) is None
    scope = rundir.lock_scope("/scratch/runs/x/.lock", mountinfo)
    assert scope.startswith("/scratch is nfs with local locks (local_lock=all, nolock)") and "other nodes" in scope
    assert rundir.lock_scope("/scratchy/runs/.lock", mountinfo) is None  # a prefix of the name is not the mount
