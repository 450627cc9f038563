"""The trainer end to end on real data: loss falls, the run directory holds the contract, re-launch skips."""

import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from helpers import local_overrides, read_metrics, run_cell
from sweep.config import ConfigError, compose
from sweep.train import accounting, checkpoint, runtime
from sweep.train.records import TrainClock
from sweep.train.plan import CPU_ACTIVATION_BUDGET, lr_at, make_plan

CONTRACT_SUMMARY = {"run_name", "status", "model", "data", "seed", "n_params", "tokens", "flops", "val_loss",
                    "val_bpb", "wall_s"}


def small_run(tmp_path: Path, corpus: Path, *overrides: str):
    return compose(local_overrides(tmp_path, corpus, "model=gpt-50k", *overrides, val_tokens=4096,
                                   batch_tokens=1024))


@pytest.mark.slow
def test_loss_falls_and_run_directory_holds_the_contract(tmp_path, corpus):
    run = small_run(tmp_path, corpus, "train.tokens=307200", "train.eval_every=100", "train.lr=0.01")
    summary, run_dir = run_cell(run)
    assert summary["status"] == "completed" and CONTRACT_SUMMARY <= set(summary)
    assert set(summary["n_params"]) >= {"total", "non_embedding", "embedding", "matmul"}
    events = read_metrics(run_dir)
    assert all({"step", "tokens", "flops"} <= set(e) for e in events)
    evals = [e for e in events if "val_loss" in e]
    trains = [e for e in events if "train_loss" in e]
    assert [e["step"] for e in evals] == [100, 200, 300]
    assert all({"train_loss", "lr", "tok_per_s"} <= set(e) for e in trains)
    # 300 steps take a 512-token BPE model from ln(512) ≈ 6.2 nats far down.
    assert evals[-1]["val_loss"] < math.log(512) - 2.0
    assert trains[-1]["train_loss"] < trains[0]["train_loss"] - 1.5
    assert summary["val_loss"] == pytest.approx(evals[-1]["val_loss"])
    assert summary["tokens"] == 307200 and summary["flops"] == pytest.approx(307200 * summary["flops_per_token"])
    assert 0.2 < summary["val_bpb"] < summary["val_loss"] / math.log(2)  # tokens hold > 1 byte on average
    config = (run_dir / "config.yaml").read_text()
    assert "lr: 0.01" in config and "vocab_size: 512" in config
    resolved = OmegaConf.load(run_dir / "config.yaml").runtime  # what dtype/compile=auto became here
    native_bf16 = runtime.cpu_has_native_bf16()
    assert resolved.device == "cpu" and resolved.dtype == ("bfloat16" if native_bf16 else "float32")
    assert resolved.compile is False  # a short run
    assert (run_dir / checkpoint.LATEST).exists()

    again, _ = run_cell(run)  # completed: skipped, same summary
    assert again == json.loads((run_dir / "summary.json").read_text())
    assert len(read_metrics(run_dir)) == len(events)


def test_conflicting_horizons_raise(tmp_path, corpus):
    from sweep.config import ConfigError

    run = small_run(tmp_path, corpus, "train.tokens=1e6", "train.flops=1e9")
    with pytest.raises(ConfigError, match="conflicting horizons"):
        make_plan(run.model, run.train, 512, runtime.resolve("cpu", run.train), run.data.val_tokens)


def test_batch_not_multiple_of_micro_batch_is_rejected(tmp_path, corpus):
    from sweep.config import ConfigError

    run = small_run(tmp_path, corpus, "train.tokens=1e5", "train.micro_batch=5")
    with pytest.raises(ConfigError, match="not a multiple of train.micro_batch=5"):
        make_plan(run.model, run.train, 512, runtime.resolve("cpu", run.train), run.data.val_tokens)


def test_the_plan_decides_every_auto_of_the_runtime_once(tmp_path, corpus):
    """make_plan settles train.compile=auto by the run's FLOPs and keeps the precision a resumed run started in under
    train.dtype=auto (not under an explicit dtype), so the trainer and the bench only read plan.runtime."""
    def plan_of(*overrides, started=None):
        run = small_run(tmp_path, corpus, *overrides)
        return make_plan(run.model, run.train, 512, runtime.select("cpu", run.train), run.data.val_tokens,
                         started_dtype=started)

    assert runtime.select("cpu", small_run(tmp_path, corpus).train).compile is None  # undecided before the plan
    assert plan_of("train.tokens=1e5").runtime.compile is False
    assert plan_of(f"train.flops={runtime.CPU_COMPILE_MIN_FLOPS}").runtime.compile is True
    assert plan_of("train.tokens=1e5", "train.compile=true").runtime.compile is True
    auto = plan_of("train.tokens=1e5").runtime.dtype
    other = "float32" if auto == torch.bfloat16 else "bfloat16"
    assert plan_of("train.tokens=1e5", started=other).runtime.dtype == getattr(torch, other)
    assert plan_of("train.tokens=1e5", "train.dtype=float32", started="bfloat16").runtime.dtype == torch.float32
    assert "runtime" not in plan_of("train.tokens=1e5").record()  # config.yaml's plan block: unchanged


@pytest.mark.slow
def test_gradient_accumulation_matches_one_big_batch(tmp_path, corpus):
    # fp32: under bf16 autocast (train.dtype=auto on a CPU with native bf16) rounding depends on the batch's shape
    fp32 = ("train.tokens=20480", "train.dtype=float32")
    whole, _ = run_cell(small_run(tmp_path / "a", corpus, *fp32))
    accum, run_dir = run_cell(small_run(tmp_path / "b", corpus, *fp32, "train.micro_batch=4"))
    assert "micro_batch: 4" in (run_dir / "config.yaml").read_text()
    assert accum["val_loss"] == pytest.approx(whole["val_loss"], abs=2e-3)


def test_schedules_warm_up_then_decay():
    from sweep.config import ScheduleConfig
    from sweep.train.plan import Plan

    plan = Plan(n_params={}, flops_per_token=1.0, horizon="", flops_budget=None, steps=100, tokens=100,
                batch_tokens=1, micro_batch=1, accum=1, lr=1.0, lr_rule={}, beta2=0.95, warmup_steps=10, eval_every=5,
                eval_windows=1, final_windows=1, seq_len=1)
    cosine = [lr_at(s, plan, ScheduleConfig("cosine", 0.1)) for s in range(100)]
    assert cosine[0] == pytest.approx(0.1) and cosine[9] == pytest.approx(1.0)
    assert cosine[-1] == pytest.approx(0.1) and all(a >= b for a, b in zip(cosine[9:], cosine[10:]))
    wsd = [lr_at(s, plan, ScheduleConfig("wsd", 0.0, 0.2)) for s in range(100)]
    assert wsd[50] == 1.0 and wsd[79] == 1.0 and wsd[-1] == pytest.approx(0.0)


@pytest.mark.slow
def test_pystdlib_default_corpus_trains(tmp_path):
    """The embedded default: loss falls clearly within a few hundred steps on the standard library."""
    run = compose([f"out_dir={tmp_path}", "data.vocab_size=1024", "data.val_tokens=16384", "data.max_tokens=2000000",
                   "model=gpt-100k", "model.seq_len=128", "train.batch_tokens=2048", "train.tokens=409600",
                   "train.eval_every=50", "device=cpu"])
    summary, run_dir = run_cell(run)
    events = read_metrics(run_dir)
    evals = [e["val_loss"] for e in events if "val_loss" in e]
    trains = [e["train_loss"] for e in events if "train_loss" in e]
    assert all(a > b for a, b in zip(evals, evals[1:])), evals
    assert trains[0] > trains[-1] + 1.5
    assert summary["val_loss"] < math.log(1024) - 2.0  # from ≈6.9 nats at initialisation
    assert torch.isfinite(torch.tensor(summary["val_bpb"]))


def test_throughput_clock_leaves_out_evals():
    ticks = iter([0.0, 2.0, 7.0, 10.0])  # start; an eval from 2 s to 7 s; read at 10 s
    clock = TrainClock(now=lambda: next(ticks))
    with clock.paused():
        pass
    assert clock.elapsed() == 5.0  # 10 s, less the 5 s eval


def test_default_batches_split_into_real_micro_batches():
    """Every ladder size's default batch divides into micro-batches near the CPU memory budget: a batch of a
    prime number of sequences (gpt-10m's was 281) forced micro-batches of one sequence."""
    for name in ("gpt-1m", "gpt-5m", "gpt-10m", "gpt-20m", "gpt-50m", "gpt-100m"):
        run = compose([f"model={name}", "device=cpu", "train.tokens=1e6"])
        rt = runtime.select(run.device, run.train)
        plan = make_plan(run.model, run.train, 4096, rt, run.data.val_tokens)
        sequences = plan.batch_tokens // run.model.seq_len
        m = run.model
        per_token = accounting.activation_bytes_per_token(m.n_layer, m.d_model, m.n_head, m.seq_len, 4096,
                                                          flash_attention=False)
        fit = CPU_ACTIVATION_BUDGET // (per_token * m.seq_len)
        assert plan.micro_batch * 2 > min(fit, sequences), (name, sequences, fit, plan.micro_batch)


def test_resume_refuses_per_size_defaults_that_changed(tmp_path, corpus):
    """A run started when the default batch was another (an older version's rule) is not resumed with the new one."""
    run = small_run(tmp_path, corpus, "train.tokens=4096", "train.batch_tokens=null")
    summary, run_dir = run_cell(run)
    config = OmegaConf.load(run_dir / "config.yaml")
    started_with = config.train.batch_tokens + run.model.seq_len
    config.train.batch_tokens = started_with
    OmegaConf.save(config, run_dir / "config.yaml")
    (run_dir / "summary.json").unlink()  # as if interrupted
    with pytest.raises(ConfigError, match=rf"train.batch_tokens: {started_with} there.*pass train.batch_tokens="
                                          rf"{started_with}") as refused:
        run_cell(run)
    assert not (run_dir / "summary.json").exists() and (run_dir / checkpoint.LATEST).exists()  # nothing touched
    # The overrides the message names are enough to go on with that directory.
    message = str(refused.value)
    suggested = message.split("pass ")[1].split(" (")[0].split() + [message.split("needs ")[1].split(",")[0]]
    resumed = small_run(tmp_path, corpus, "train.tokens=4096", *suggested)
    assert resumed.run_name == run_dir.name
    summary, same_dir = run_cell(resumed)
    assert same_dir == run_dir and summary["status"] == "completed" and summary["batch_tokens"] == started_with


def test_resume_keeps_the_precision_auto_chose_at_the_start(tmp_path, corpus):
    run = small_run(tmp_path, corpus, "train.tokens=4096")
    _, run_dir = run_cell(run)
    config = OmegaConf.load(run_dir / "config.yaml")
    other = "float32" if config.runtime.dtype == "bfloat16" else "bfloat16"
    config.runtime.dtype = other  # as if started on a machine whose auto choice was the other one
    OmegaConf.save(config, run_dir / "config.yaml")
    (run_dir / "summary.json").unlink()
    run_cell(run)  # resumes at the last checkpoint, evaluates, completes
    assert OmegaConf.load(run_dir / "config.yaml").runtime.dtype == other


def test_progress_without_a_terminal_is_periodic_lines_not_carriage_returns(caplog):
    from sweep.train.progress import LINE_EVERY_S, Progress

    clock = iter(float(t) for t in [0, 1, 2, LINE_EVERY_S + 1, LINE_EVERY_S + 2, 2 * LINE_EVERY_S + 5])
    view = Progress("cell", total=100, initial=0, enabled=True, bar=False, now=lambda: next(clock),
                    flops_per_token=100.0, peak=lambda: 1e6)
    assert view.bar is None
    with caplog.at_level("INFO", logger="sweep.train"):
        for step in (10, 20, 30, 40, 50):  # at 1, 2, 31, 32, 65 s
            view.report(step, step * 100, 2.5, 2.7 if step > 20 else None, 1234.0)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["cell: step 30/100 (30%), train_loss 2.500, val_loss 2.700, tok/s 1,234, tokens 3e+03, MFU 12%",
                     "cell: step 50/100 (50%), train_loss 2.500, val_loss 2.700, tok/s 1,234, tokens 5e+03, MFU 12%"]
    assert not any("\r" in line for line in lines)


def test_epochs_are_counted_and_too_many_passes_are_refused(tmp_path, corpus):
    run = small_run(tmp_path, corpus, "train.tokens=20480")
    summary, run_dir = run_cell(run)
    manifest = next((tmp_path / "cache").glob("*/manifest.json"))
    unique = json.loads(manifest.read_text())["train_tokens"]
    assert summary["epochs"] == pytest.approx(summary["tokens"] / unique)
    assert OmegaConf.load(run_dir / "config.yaml").plan.epochs == pytest.approx(summary["epochs"])
    trains = [e for e in read_metrics(run_dir) if "train_loss" in e]
    assert trains[-1]["epochs"] == pytest.approx(summary["epochs"])

    too_many = small_run(tmp_path, corpus, f"train.tokens={5 * unique}", "data.allow_repeat=false")
    with pytest.raises(ConfigError, match=rf"5.0 passes over data=local's {unique:,} unique train tokens.*"
                                          r"data.allow_repeat=true"):
        run_cell(too_many)
    assert not (tmp_path / too_many.sweep.name / too_many.run_name / "summary.json").exists()
