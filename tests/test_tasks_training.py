"""The task suite in training: tasks.* config, task rows in batches, resume with mixing on, task events and
tasks.json, `sweep evaluate`, and the emergence preset end to end (real runs, real files)."""

import json
import signal
import subprocess

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from helpers import SWEEP, local_overrides, read_metrics, run_dir_of
from sweep import rundir
from sweep.config import ConfigError, compose
from sweep.config.naming import is_non_defining
from sweep.tasks.suite import Suite


def test_tasks_config_is_validated_before_any_work(tmp_path, corpus):
    base = local_overrides(tmp_path, corpus, "model=gpt-12k")
    for bad, says in (("tasks.mix=1.5", "tasks.mix"), ("tasks.mix=-0.1", "tasks.mix"),
                      ("tasks.eval=maybe", "tasks.eval"), ("tasks.items=0", "tasks.items"),
                      ("tasks.items_during=900", "tasks.items_during")):
        with pytest.raises(ConfigError, match=says):
            compose([*base, bad])
    assert not any(tmp_path.iterdir())  # nothing written


def test_what_is_scored_does_not_define_a_cell_but_the_mixture_does(tmp_path, corpus):
    assert all(is_non_defining("tasks", k) for k in ("eval", "items", "items_during", "icl_windows"))
    assert not is_non_defining("tasks", "mix") and not is_non_defining("tasks", "seed")
    base = local_overrides(tmp_path, corpus, "model=gpt-12k")
    run = compose([*base, "tasks.mix=0.2"])
    saved = OmegaConf.to_container(OmegaConf.structured(compose(base)))
    saved["tasks"]["items"] = 50  # scored differently: still the same cell
    rundir.check_same_cell(compose(base), tmp_path, saved)
    with pytest.raises(rundir.OtherSettings, match="tasks.mix"):
        rundir.check_same_cell(run, tmp_path, saved)
    # A run directory from before the task suite (no tasks section) is the same cell as one without tasks.
    del saved["tasks"]
    rundir.check_same_cell(compose(base), tmp_path, saved)
    with pytest.raises(rundir.OtherSettings, match="tasks.mix"):
        rundir.check_same_cell(run, tmp_path, saved)


def mixed_overrides(out, corpus, cache, *extra):
    # 80 steps of 512 tokens, evals every 20 steps; a small suite (40 items per variant, 10 during training).
    return local_overrides(out, corpus, f"data.cache_dir={cache}", "model=gpt-12k", "train.tokens=40960",
                           "train.eval_every=20", "train.checkpoint_every=10", "train.log_every=10", "tasks.mix=0.3",
                           "tasks.items=40", "tasks.items_during=10", "tasks.icl_windows=8", *extra, seq_len=128)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, corpus, cache):
    """A straight run with tasks mixed in: (overrides, run directory)."""
    args = mixed_overrides(tmp_path_factory.mktemp("mixed"), corpus, cache)
    proc = subprocess.run([*SWEEP, "train", *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return args, run_dir_of(args)


def test_task_rows_replace_a_share_of_the_batch_and_stay_a_pure_function(tmp_path, corpus):
    from sweep.data import TokenBatches
    from sweep.data.tokenizer import train_tokenizer
    from sweep.tasks.items import ALPHABET, SymbolCodec
    from sweep.tasks.mix import TaskRows

    tok = train_tokenizer([corpus.read_text()[:200_000]], 512)
    codec = SymbolCodec(tok)
    tokens = np.array(tok.encode(corpus.read_text()[:200_000]).ids, dtype=np.uint16)
    plain = TokenBatches(tokens, 64, 16, seed=3)
    mixed = TokenBatches(tokens, 64, 16, seed=3, task_rows=TaskRows(Suite(0), 3, 0.3, codec, 64))
    task_rows = 0
    for step in range(20):
        x, y = mixed.get(step, 0)
        x0, y0 = plain.get(step, 0)
        assert torch.equal(x, mixed.get(step, 0)[0])  # a pure function of (seed, step, row)
        for row in range(16):
            text = codec.decode(torch.cat([x[row], y[row, -1:]]).tolist())
            if torch.equal(x[row], x0[row]):
                continue  # a corpus row, the same window as without tasks
            task_rows += 1
            assert set(text) <= set(ALPHABET)  # task text only (an item may run past a window this short)
            assert torch.equal(x[row, 1:], y[row, :-1])  # inputs and targets are one window shifted
    assert 0.15 < task_rows / 320 < 0.45  # ~30% of the rows
    # split into micro batches of 4, the rows (and so the batch) are the same
    small = TokenBatches(tokens, 64, 4, seed=3, task_rows=TaskRows(Suite(0), 3, 0.3, codec, 64))
    assert torch.equal(torch.cat([small.get(5, m)[0] for m in range(4)]), mixed.get(5, 0)[0])


@pytest.mark.slow
def test_a_mixed_run_logs_task_events_and_writes_tasks_json(mixed, cache):
    from sweep.tasks.items import FORMAT

    _, run_dir = mixed
    events = read_metrics(run_dir)
    task_events = [e for e in events if "tasks" in e]
    eval_steps = [e["step"] for e in events if "val_loss" in e]
    assert [e["step"] for e in task_events] == eval_steps == [20, 40, 60, 80]
    during, last = task_events[0], task_events[-1]
    assert during["tasks"]["add/d3"]["n"] == 10 and last["tasks"]["add/d3"]["n"] == 40
    assert "edit_distance" not in during["tasks"]["add/d3"] and "edit_distance" in last["tasks"]["add/d3"]
    assert set(during["icl"]) == {"icl_score", "induction_ratio"}
    scores = rundir.read_tasks(run_dir)
    assert scores["format"] == FORMAT and scores["step"] == 80 and scores["final"] is True
    manifest = json.loads(next(cache.glob("tasks-*/manifest.json")).read_text())
    v = scores["variants"]["add_cot/d2"]
    assert {"exact", "exact_ci", "nll", "p_seq", "digit_acc", "edit_distance", "exact_final"} <= set(v)
    assert v["exact_ci"][0] <= v["exact"] <= v["exact_ci"][1]
    assert scores["variants"]["icl/k4"]["mc_acc_ci"] and len(scores["icl"]["per_position_loss"]) == 128
    assert manifest["sha256"] == scores["suite"]["hash"] == rundir.read_tasks(run_dir)["suite"]["hash"]
    # the LM's own eval is untouched: every eval event still has val_loss on natural text
    assert all(np.isfinite(e["val_loss"]) for e in events if "val_loss" in e)


@pytest.mark.slow
def test_resume_with_tasks_mixed_in_is_bit_identical(tmp_path, corpus, cache, mixed):
    from sweep.train import checkpoint

    straight_args, straight = mixed
    args = mixed_overrides(tmp_path, corpus, cache)
    run_dir = run_dir_of(args)
    proc = subprocess.Popen([*SWEEP, "train", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while not (run_dir / checkpoint.LATEST).exists():
        assert proc.poll() is None, proc.communicate()[0][-3000:]
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=300)
    stopped = torch.load(run_dir / checkpoint.LATEST, weights_only=False)["step"]
    assert stopped < 80, out[-2000:]
    again = subprocess.run([*SWEEP, "train", *args], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]

    def comparable(d):
        return [{k: v for k, v in e.items() if k != "tok_per_s"} for e in read_metrics(d)]

    assert comparable(run_dir) == comparable(straight)
    a, b = (torch.load(d / checkpoint.LATEST, weights_only=False)["model"] for d in (run_dir, straight))
    assert all(torch.equal(a[k], b[k]) for k in a)
    ta, tb = rundir.read_tasks(run_dir), rundir.read_tasks(straight)
    assert ta["variants"] == tb["variants"] and ta["icl"] == tb["icl"]


def _close(a, b) -> bool:
    """Equal structures whose numbers agree to 1e-5 relative (1e-12 absolute)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return b == pytest.approx(a, rel=1e-5, abs=1e-12)
    return a == b


@pytest.mark.slow
def test_sweep_evaluate_rescores_the_saved_weights_as_training_did(mixed, tmp_path):
    from sweep.cli import main

    _, run_dir = mixed
    trained = rundir.read_tasks(run_dir)
    assert main(["evaluate", str(run_dir.parent)]) == 0  # the sweep directory: every run in it
    again = rundir.read_tasks(run_dir)
    assert again["source"] == "sweep evaluate" and again["step"] == trained["step"] and again["completed"]
    # the same to float32 rounding: summed over another order of batched items (1e-9 relative seen)
    assert _close(again["variants"], trained["variants"]) and _close(again["icl"], trained["icl"])
    assert main(["evaluate", str(tmp_path)]) == 2  # nothing to evaluate there: an input error


def test_a_context_too_short_for_the_suite_is_refused_before_training(tmp_path, corpus):
    from helpers import run_cell

    run = compose(local_overrides(tmp_path, corpus, "model=gpt-12k", "train.tokens=20480", "tasks.mix=0.2",
                                  seq_len=32))
    with pytest.raises(ConfigError, match="model.seq_len"):
        run_cell(run)
    run_dir = tmp_path / run.sweep.name / run.run_name
    assert not (run_dir / "checkpoint.pt").exists() and not (run_dir / "metrics.jsonl").exists()
