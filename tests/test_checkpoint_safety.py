"""A received run directory cannot run code: checkpoints are read as data only, so a pickle crafted to execute
something on load is refused before any of it runs, by a resume, `sweep evaluate` and a cooldown branch's seeding,
while every checkpoint sweep writes still loads and resumes."""

import os
import shutil

import pytest
import torch

from helpers import local_overrides, run_cell
from sweep import rundir
from sweep.cli import main
from sweep.config import compose
from sweep.train import checkpoint


class Payload:
    """What an attacker pickles: unpickling calls os.system, which leaves a marker file behind."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def plant(path, marker, state=None):
    """A checkpoint-looking file (real tensors beside the payload) at path."""
    torch.save({**(state or {"model": {"w": torch.zeros(2)}, "step": 3}), "extra": Payload(marker)}, path)


def test_the_payload_would_run_under_a_plain_torch_load(tmp_path):
    """The planted file is a real attack: loaded the old way, it runs (so the refusals below are not vacuous)."""
    marker = tmp_path / "ran"
    plant(tmp_path / "evil.pt", marker)
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


def test_a_planted_pickle_is_refused_unrun_and_the_previous_checkpoint_is_used(tmp_path):
    run_dir, marker = tmp_path / "run", tmp_path / "ran"
    run_dir.mkdir()
    plant(run_dir / checkpoint.LATEST, marker)
    with pytest.raises(checkpoint.CheckpointError, match="not a checkpoint sweep wrote.*refused before any of it ran"):
        checkpoint.load(run_dir, warn=lambda message: None)
    with pytest.raises(checkpoint.UnsafeCheckpoint, match="posix.system|os.system"):  # names what it asked for
        checkpoint.read(run_dir / checkpoint.LATEST)
    assert not marker.exists()

    good = {"model": {"w": torch.ones(2)}, "rng": checkpoint.rng_state(), "step": 2, "loss_interval": (0.5, 3)}
    checkpoint.save_as(run_dir / checkpoint.PREVIOUS, good)
    warnings = []
    state = checkpoint.load(run_dir, warn=warnings.append)
    assert torch.equal(state["model"]["w"], torch.ones(2)) and state["step"] == 2
    assert len(warnings) == 1 and "not a checkpoint sweep wrote" in warnings[0]
    checkpoint.set_rng_state(state["rng"])  # numpy's and python's RNG states come back as they were saved
    assert not marker.exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus):
    """A real run directory (a tiny run with its checkpoint), trained once for the tests below."""
    out = tmp_path_factory.mktemp("runs")
    run = compose(local_overrides(out, corpus, "model=gpt-6k", "train.tokens=4096", "tasks.eval=true",
                                  "tasks.items=4", "tasks.items_during=4", "tasks.icl_windows=2", seq_len=128))
    _, run_dir = run_cell(run)
    return run, run_dir


def test_sweep_evaluate_refuses_a_received_run_with_a_planted_checkpoint(trained, tmp_path, capsys):
    _, run_dir = trained
    received = tmp_path / "received" / run_dir.parent.name / run_dir.name
    shutil.copytree(run_dir.parent.parent, tmp_path / "received", dirs_exist_ok=True)  # with its cache beside
    marker = tmp_path / "ran"
    real = checkpoint.read(received / checkpoint.LATEST)
    for name in (checkpoint.LATEST, checkpoint.PREVIOUS):
        plant(received / name, marker, state=real)
    assert main(["evaluate", str(received)]) == 1
    err = capsys.readouterr().err
    assert f"error: {received} not scored" in err and "not a checkpoint sweep wrote" in err, err
    assert not marker.exists()


def test_a_resume_refuses_a_planted_checkpoint_and_an_honest_one_still_resumes(trained, tmp_path):
    run, run_dir = trained
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / rundir.SUMMARY).unlink()  # not completed: the trainer would resume from the checkpoint
    assert checkpoint.read(copy / checkpoint.LATEST)["step"] > 0  # an honest checkpoint reads as data
    marker = tmp_path / "ran"
    real = checkpoint.read(copy / checkpoint.LATEST)
    for name in (checkpoint.LATEST, checkpoint.PREVIOUS):
        if (copy / name).exists():
            plant(copy / name, marker, state=real)
    from sweep.train import runtime
    from sweep.train.loop import train

    with pytest.raises(checkpoint.CheckpointError, match="not a checkpoint sweep wrote"):
        train(run, copy, runtime.resolve(run.device, run.train), progress=False)
    assert not marker.exists()


@pytest.mark.slow
def test_sweep_evaluate_revalidates_a_received_config_scores_the_rest_and_respects_the_lock(trained, tmp_path,
                                                                                           capsys):
    _, run_dir = trained
    shutil.copytree(run_dir.parent.parent, tmp_path / "received", dirs_exist_ok=True)
    sweep_dir = tmp_path / "received" / run_dir.parent.name
    good, bad, busy = (sweep_dir / run_dir.name, sweep_dir / "bad", sweep_dir / "busy")
    for other in (bad, busy):
        shutil.copytree(good, other)
    config = (bad / rundir.CONFIG).read_text()
    assert "vocab_size: 512" in config
    (bad / rundir.CONFIG).write_text(config.replace("vocab_size: 512", "vocab_size: 100"))  # below 257
    with rundir.claim(busy):  # as if a launch were training it
        assert main(["evaluate", str(sweep_dir)]) == 1
    err = capsys.readouterr().err
    assert f"error: {bad} not scored: {bad / rundir.CONFIG}: data.vocab_size=100" in err, err
    assert f"error: {busy} not scored" in err and "being trained by another process" in err, err
    assert rundir.read_tasks(good)["source"] == "sweep evaluate"  # the good run was scored all the same
    assert rundir.read_tasks(bad).get("source") != "sweep evaluate"
