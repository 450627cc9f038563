"""`sweep bench` and the speed settings it measures: JSON contract, bf16 and compile agree with fp32 eager."""

import io
import json
import math
import re

import numpy as np
import pytest
import torch

from sweep.cli import main
from sweep.config import compose
from sweep.train import bench, runtime
from sweep.train.bench import Stepper
from sweep.train.plan import make_plan
from sweep.train.runtime import CPU_COMPILE_MIN_FLOPS, settle

TINY = ["device=cpu", "model.n_layer=2", "model.d_model=32", "model.n_head=2", "model.seq_len=32",
        "model.vocab_size=256", "data.vocab_size=256", "train.batch_tokens=256", "train.threads=1"]
KEYS = {"tok_per_s", "flops_per_s", "peak_flops_per_s", "mfu", "device", "dtype", "compile", "peak_mem_bytes"}


def test_bench_last_line_is_json_with_sane_values(capsys, tmp_path):
    assert main(["bench", *TINY, f"out_dir={tmp_path}", "train.dtype=float32", "train.compile=false",
                 "bench.steps=3", "bench.warmup=1", "bench.peak_seconds=0.2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    record = json.loads(lines[-1])
    assert KEYS <= set(record)
    assert record["device"] == "cpu" and record["dtype"] == "float32" and record["compile"] is False
    assert record["tok_per_s"] > 0 and record["peak_flops_per_s"] > 1e8
    assert record["flops_per_s"] == pytest.approx(record["tok_per_s"] * record["flops_per_token"])
    assert 0 < record["mfu"] < 1 and record["mfu"] == pytest.approx(record["flops_per_s"] / record["peak_flops_per_s"])
    assert 1e7 < record["peak_mem_bytes"] < 64e9
    assert any(line.startswith("fp32-eager") for line in lines[:-1])  # the table precedes it
    assert not any(tmp_path.iterdir())  # no run directory, no cache


def test_bench_profile_says_where_the_step_time_went(capsys, tmp_path):
    assert main(["bench", *TINY, f"out_dir={tmp_path}", "bench.variants=bf16-eager", "train.compile=false",
                 "bench.steps=2", "bench.warmup=1", "bench.peak_seconds=0.2", "bench.profile=2"]) == 0
    out = capsys.readouterr().out
    assert "aten::mm" in out  # the profiler table
    line = next(x for x in out.splitlines() if x.startswith("bf16-eager: weight matmuls"))
    dense, _, attention, other = (int(s) for s in re.findall(r"(\d+)%", line))  # _: the matmuls' share of peak
    assert dense > 0 and attention > 0 and other > 0  # bf16 attention on CPU is two bmm: counted as attention
    record = json.loads(out.strip().splitlines()[-1])
    # The micro-batch is far below the bf16 cutoff of dtype=auto, yet an explicit bf16 variant must run in bf16.
    assert record["dtype"] == "bfloat16" and record["variant"] == "bf16-eager"


def test_bench_rejects_unknown_options(capsys):
    assert main(["bench", *TINY, "bench.stepz=3"]) == 2
    assert "unknown bench option" in capsys.readouterr().err
    assert main(["bench", *TINY, "bench.variants=fp64-eager"]) == 2


def test_compile_auto_on_cpu_follows_the_run_length_and_an_explicit_setting_wins():
    auto = runtime.select("cpu", compose(TINY).train)
    assert auto.compile is None  # CPU auto: decided per run by settle, from the run's FLOPs
    assert settle(auto, CPU_COMPILE_MIN_FLOPS).compile is True
    assert settle(auto, 0.99 * CPU_COMPILE_MIN_FLOPS).compile is False
    for flag, flops in (("false", 10 * CPU_COMPILE_MIN_FLOPS), ("true", 1.0)):  # each against what auto would pick
        explicit = runtime.select("cpu", compose([*TINY, f"train.compile={flag}"]).train)
        assert settle(explicit, flops).compile is (flag == "true"), flag
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        explicit = runtime.select("cpu", compose([*TINY, f"train.dtype={name}"]).train)
        assert explicit.dtype == dtype and settle(explicit, 10 * CPU_COMPILE_MIN_FLOPS).dtype == dtype
    # dtype=auto: bf16 only on a CPU that multiplies it natively (elsewhere emulated, slower than fp32).
    assert auto.dtype == (torch.bfloat16 if runtime.cpu_has_native_bf16() else torch.float32)


def test_bench_measures_the_trainers_setting_first_and_reports_it(monkeypatch):
    """What `sweep bench` runs, without timing anything (measure and the matmul peak faked): its default variant is
    what the trainer would run for this config (a long CPU run compiles, a short one does not), it is measured
    first (peak memory on CPU is clean only for the first), each dtype's matmul peak is measured once, and the JSON
    record is the default variant's row, its MFU against its own dtype's peak."""
    measured, peaks = [], []
    peak_of = {torch.float32: 4e9, torch.bfloat16: 8e9}

    def fake_measure(run, vocab_size, rt, plan, steps, warmup, profile_steps=0):
        measured.append(bench.variant_name(rt.dtype, rt.compile))
        return {"tok_per_s": 1e3, "flops_per_s": 1e9 * len(measured), "step_s": 0.1, "warmup_s": 1.0, "loss": 5.0,
                "peak_mem_bytes": 2**20, "dtype": rt.dtype_name, "compile": rt.compile}

    def fake_peak(device, dtype, seconds):
        peaks.append(dtype)
        return peak_of[dtype]

    monkeypatch.setattr(bench, "measure", fake_measure)
    monkeypatch.setattr(bench, "matmul_peak", fake_peak)
    precision = "bf16" if runtime.cpu_has_native_bf16() else "fp32"  # dtype=auto on this CPU
    long_run = [*TINY, f"train.flops={2 * CPU_COMPILE_MIN_FLOPS}"]
    out = io.StringIO()
    record = bench.bench([*long_run, "bench.variants=all"], out=out)
    assert measured[0] == f"{precision}-compile" and sorted(measured) == sorted(bench.VARIANTS)
    assert sorted(map(str, peaks)) == ["torch.bfloat16", "torch.float32"]  # once per dtype, not per variant
    assert record["variant"] == f"{precision}-compile" and record["compile"] is True
    assert record["mfu"] == pytest.approx(1e9 / peak_of[torch.bfloat16 if precision == "bf16" else torch.float32])
    assert json.loads(out.getvalue().strip().splitlines()[-1]) == record
    measured.clear()
    assert bench.bench(long_run, out=io.StringIO())["variant"] == f"{precision}-compile"
    assert measured == [f"{precision}-compile"]  # bench.variants=default: that one only
    measured.clear()
    assert bench.bench(TINY, out=io.StringIO())["variant"] == f"{precision}-eager" == measured[0]  # a short run


def _train_losses(corpus, dtype: str, compile_flag: str, steps: int, seed: int = 0) -> list[float]:
    """Per-step losses of the trainer's step on byte-level tokens of the test corpus (no tokenizer needed)."""
    run = compose([*TINY, "model.seq_len=64", "train.batch_tokens=512", "train.micro_batch=4", "train.lr=0.01",
                   f"train.dtype={dtype}", f"train.compile={compile_flag}", f"seed={seed}"])
    plan = make_plan(run.model, run.train, 256, runtime.resolve(run.device, run.train), run.data.val_tokens)
    stepper = Stepper(run.model, run.train, run.seed, 256, plan)  # the plan's runtime: dtype and compile as set
    tokens = np.frombuffer(corpus.read_bytes(), dtype=np.uint8)
    rng = np.random.default_rng(seed)
    losses = []
    for _ in range(steps):
        starts = rng.integers(0, len(tokens) - 65, size=8)
        w = torch.from_numpy(np.stack([tokens[s:s + 65] for s in starts]).astype(np.int64))
        stepper.step(w[:, :-1].contiguous(), w[:, 1:].contiguous())
        losses.append(stepper.pop_loss())
    return losses


@pytest.mark.slow
def test_bf16_loss_matches_fp32_over_a_few_hundred_steps(corpus):
    steps = 300
    fp32 = _train_losses(corpus, "float32", "false", steps)
    bf16 = _train_losses(corpus, "bfloat16", "false", steps)
    other_seed = _train_losses(corpus, "float32", "false", steps, seed=1)
    tail = slice(steps - 50, steps)
    mean = {k: float(np.mean(v[tail])) for k, v in (("fp32", fp32), ("bf16", bf16), ("seed1", other_seed))}
    assert mean["fp32"] < math.log(256) - 2.5  # it learned: bytes of Python source, far below uniform
    # bf16 lands within the spread a different seed gives, with a floor for two lucky seeds.
    assert abs(mean["bf16"] - mean["fp32"]) < max(0.03, 2 * abs(mean["seed1"] - mean["fp32"])), mean


@pytest.mark.slow
def test_compiled_step_matches_eager(corpus):
    eager = _train_losses(corpus, "float32", "false", 8)
    compiled = _train_losses(corpus, "float32", "true", 8)
    assert compiled == pytest.approx(eager, rel=1e-4, abs=1e-4)
