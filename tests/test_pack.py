"""Packed training: same-shape cells in one process give each cell the run it would have had alone, fail alone,
and resume bit-identically."""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from helpers import local_overrides, read_metrics, run_cell

FP32 = ("model=gpt-25k", "train.dtype=float32", "train.tokens=12288", "train.eval_every=4", "train.checkpoint_every=4",
        "train.log_every=2")


def _runs(out: Path, corpus: Path, cells: list[tuple[str, ...]]):
    from sweep.config import compose

    return [compose(local_overrides(out, corpus, *FP32, *extra)) for extra in cells]


def _dir(run) -> Path:
    return Path(run.out_dir) / run.sweep.name / run.run_name


def _train_pack(runs):
    from sweep.train import runtime
    from sweep.train.pack import train_pack

    return train_pack(runs, [_dir(r) for r in runs], runtime.resolve("cpu", runs[0].train))


def _evals(run_dir: Path) -> list[float]:
    return [e["val_loss"] for e in read_metrics(run_dir) if "val_loss" in e]


CELLS = [("seed=0",), ("seed=1",), ("seed=2", "train.lr=0.003")]


def test_the_packed_model_is_each_gpt():
    """Losses and gradients of a pack of three GPTs equal each GPT's own."""
    from sweep.config import ModelConfig
    from sweep.train.model import GPT
    from sweep.train.packed import PackedGPT

    cfg = ModelConfig(name="t", n_layer=2, d_model=16, n_head=2, seq_len=32, vocab_size=64)
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(GPT(cfg))
    reference = [GPT(cfg) for _ in models]
    for ref, m in zip(reference, models):
        ref.load_state_dict(m.state_dict())
    packed = PackedGPT(models)
    idx, tgt = torch.randint(0, 64, (3, 4, 32)), torch.randint(0, 64, (3, 4, 32))
    losses = packed(idx, tgt)
    losses.sum().backward()
    packed.hand_grads()
    for k, ref in enumerate(reference):
        _, loss = ref(idx[k], tgt[k])
        loss.backward()
        assert losses[k].item() == pytest.approx(loss.item(), abs=1e-6)
        for (name, p), q in zip(ref.named_parameters(), models[k].parameters()):
            torch.testing.assert_close(q.grad, p.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_cells_of_different_shapes_cannot_be_packed():
    from sweep.config import ModelConfig
    from sweep.train.model import GPT
    from sweep.train.packed import PackedGPT

    small = ModelConfig(name="a", n_layer=1, d_model=16, n_head=2, seq_len=32, vocab_size=64)
    with pytest.raises(ValueError, match="different shapes"):
        PackedGPT([GPT(small), GPT(replace(small, d_model=32))])


@pytest.mark.slow
def test_a_packed_cell_trains_as_it_would_alone(tmp_path, corpus):
    """fp32: each cell's eval curve in a pack of three (other seeds, another lr) within 1e-4 nats of the same cell
    trained alone; its checkpoint is a plain GPT checkpoint of the same size."""
    alone = _runs(tmp_path / "alone", corpus, CELLS)
    for run in alone:
        run_cell(run)
    packed = _runs(tmp_path / "pack", corpus, CELLS)
    results = _train_pack(packed)
    assert all(s["status"] == "completed" for s in results)
    for a, p in zip(alone, packed):
        ea, ep = _evals(_dir(a)), _evals(_dir(p))
        assert len(ea) == len(ep) >= 3
        assert max(abs(x - y) for x, y in zip(ea, ep)) < 1e-4, (a.run_name, ea, ep)
        size_alone, size_packed = (os.path.getsize(_dir(r) / "checkpoint.pt") for r in (a, p))
        assert abs(size_packed - size_alone) < 4096  # its own weights only, not the pack's
    assert _evals(_dir(packed[0])) != _evals(_dir(packed[1]))  # the seeds are cells of their own


BF16_TOLERANCE = 1e-3  # nats per eval: measured up to 3.2e-4 (2 cells, gpt-25k, 6 evals), bf16's rounding of other
# matmul shapes; fp32 agrees to ~1e-6


@pytest.mark.slow
def test_a_packed_cell_in_bf16_is_within_its_tolerance(tmp_path, corpus):
    bf16 = [tuple(a for a in FP32 if not a.startswith("train.dtype")) + ("train.dtype=bfloat16", *c)
            for c in CELLS[:2]]
    from sweep.config import compose

    alone = [compose(local_overrides(tmp_path / "alone", corpus, *c)) for c in bf16]
    for run in alone:
        run_cell(run)
    packed = [compose(local_overrides(tmp_path / "pack", corpus, *c)) for c in bf16]
    _train_pack(packed)
    for a, p in zip(alone, packed):
        assert max(abs(x - y) for x, y in zip(_evals(_dir(a)), _evals(_dir(p)))) < BF16_TOLERANCE


@pytest.mark.slow
def test_a_cell_that_goes_non_finite_fails_alone(tmp_path, corpus, monkeypatch):
    """One cell's weights poisoned after set-up: it fails, recorded in its directory; its packmates complete with
    the curves they would have had alone."""
    from sweep import rundir
    from sweep.train import loop
    from sweep.train.step import NonFiniteLoss

    set_up = loop._set_up

    def poisoned(run, *args, **kwargs):
        r = set_up(run, *args, **kwargs)
        if run.seed == 1:
            with torch.no_grad():
                r.model.lm_head.weight.fill_(float("nan"))
        return r

    monkeypatch.setattr(loop, "_set_up", poisoned)
    packed = _runs(tmp_path / "pack", corpus, CELLS)
    results = _train_pack(packed)
    assert isinstance(results[1], NonFiniteLoss)
    assert rundir.read_summary(_dir(packed[1]))["status"] == "failed"
    monkeypatch.setattr(loop, "_set_up", set_up)
    alone = _runs(tmp_path / "alone", corpus, [CELLS[0]])
    run_cell(alone[0])
    assert results[0]["status"] == results[2]["status"] == "completed"
    assert max(abs(x - y) for x, y in zip(_evals(_dir(alone[0])), _evals(_dir(packed[0])))) < 1e-4


@pytest.mark.slow
def test_a_stopped_pack_resumes_bit_identically(tmp_path, corpus, monkeypatch):
    """A stop signal mid-pack checkpoints every cell; relaunching resumes them all to the same bits as a pack that
    never stopped. A pack whose first cell completed before trains only the others."""
    from sweep.train import checkpoint, loop

    whole = _runs(tmp_path / "whole", corpus, CELLS)
    _train_pack(whole)

    stopped = _runs(tmp_path / "stopped", corpus, CELLS)
    after_step = loop.after_step

    def signal_at_step_5(r, stopping):
        if r.state.step == 5 and r.run.seed == 0:
            os.kill(os.getpid(), signal.SIGTERM)
        return after_step(r, stopping)

    monkeypatch.setattr(loop, "after_step", signal_at_step_5)
    with pytest.raises(SystemExit):
        _train_pack(stopped)
    monkeypatch.setattr(loop, "after_step", after_step)
    assert all(not (_dir(r) / "summary.json").exists() for r in stopped)
    _train_pack(stopped)
    for a, b in zip(whole, stopped):
        assert _evals(_dir(a)) == _evals(_dir(b))
        wa = checkpoint.read(_dir(a) / "checkpoint.pt")["model"]
        wb = checkpoint.read(_dir(b) / "checkpoint.pt")["model"]
        assert all(torch.equal(wa[k], wb[k]) for k in wa)

    partly = _runs(tmp_path / "partly", corpus, CELLS)
    run_cell(partly[0])
    first = (_dir(partly[0]) / "summary.json").read_text()
    results = _train_pack(partly)
    assert (_dir(partly[0]) / "summary.json").read_text() == first  # read, not retrained
    assert [s["val_loss"] for s in results[1:]] == [s["val_loss"] for s in _train_pack(whole)[1:]]


@pytest.mark.slow
def test_a_grid_packs_its_same_shape_cells_and_trains_each(tmp_path, corpus):
    """launcher.pack=2 on a real Hydra launch: the grid's plan pairs the seeds of each shape, the manifest says so,
    one process per pack trains both cells, each into its own directory, with the curves it has alone."""
    import subprocess
    import sys

    from sweep import rundir

    args = local_overrides(tmp_path, corpus, *FP32, "model=gpt-3k,gpt-6k", "sweep.seeds=[0,1,2]", "launcher.pack=2",
                           "sweep.name=p")
    done = subprocess.run([sys.executable, "-m", "sweep", "train", "-m", *args], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = {c["name"]: c for c in rundir.read_manifest(tmp_path / "p")}
    for model in ("gpt-3k", "gpt-6k"):
        assert manifest[f"{model}_t1.23e4_s0"]["pack"] == [f"{model}_t1.23e4_s1"]
        assert manifest[f"{model}_t1.23e4_s1"]["packed_in"] == f"{model}_t1.23e4_s0"
        assert "pack" not in manifest[f"{model}_t1.23e4_s2"]  # the third seed: a pack of one is a cell alone
    assert all(rundir.read_summary(tmp_path / "p" / name)["status"] == "completed" for name in manifest)
    from sweep.config import compose

    alone = compose(local_overrides(tmp_path / "alone", corpus, *FP32, "model=gpt-6k", "seed=1"))
    run_cell(alone)
    ea, ep = _evals(_dir(alone)), _evals(tmp_path / "p" / "gpt-6k_t1.23e4_s1")
    assert max(abs(x - y) for x, y in zip(ea, ep)) < 1e-4


def test_a_pack_too_big_for_memory_is_refused_before_any_work(tmp_path, corpus, monkeypatch):
    from sweep.config import ConfigError
    from sweep.grid_plan import plan_grid
    from sweep.train import pack

    monkeypatch.setattr(pack, "memory_for_packs", lambda device: 1e6)  # 1 MB free
    with pytest.raises(ConfigError, match=r"a pack of 3 gpt-3k cells needs .* lower launcher.pack"):
        plan_grid(["-m", *local_overrides(tmp_path, corpus, *FP32, "model=gpt-3k", "sweep.seeds=[0,1,2]",
                                          "launcher.pack=3")])
    assert not (tmp_path / "single").exists()  # nothing written
