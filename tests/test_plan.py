"""The planner's rules: evaluation within its share of the compute, the lr rule, β2 by batch size."""

import json

import pytest

from sweep.config import ConfigError, compose
from sweep.config import lr_rule
from sweep.train import ladder
from sweep.train.plan import EVALS_PER_RUN, MIN_EVAL_WINDOWS, check_plan, eval_plan


@pytest.mark.parametrize("preset", [[], ["sweep=cpu"]])
def test_evals_cost_at_most_their_share_across_the_ladder(preset):
    from dataclasses import replace

    for horizon in ("train.tokens_per_param=20", "train.tokens_per_param=5", "train.tokens=2e6"):
        base = compose([*preset, horizon, "device=cpu"])
        for name in ladder.names():
            if ladder.nominal_params(name) > 2e6:
                continue  # the sizes a CPU trains; the rule is the same above
            n_layer, d_model, n_head = ladder.shape_for(ladder.nominal_params(name))
            run = replace(base, model=replace(base.model, name=name, n_layer=n_layer, d_model=d_model, n_head=n_head))
            plan = check_plan(run)
            windows = run.data.val_tokens // (run.model.seq_len + 1)
            share = plan.eval_flops / plan.flops
            if windows * run.model.seq_len / 3 <= 0.05 * plan.tokens:
                assert plan.final_windows == windows, "a run that can afford it evaluates on the whole held-out set"
            assert share <= 0.1 + 1e-9, f"{name} ({horizon}): evals take {share:.1%} of training"
            evals = (plan.steps - 1) // plan.eval_every + 1
            assert evals <= EVALS_PER_RUN
            assert plan.eval_windows >= min(MIN_EVAL_WINDOWS, plan.final_windows) or evals == 1


def test_the_gpt_100k_reference_run_now_spends_a_tenth_on_evals():
    plan = check_plan(compose(["model=gpt-100k", "train.tokens=2e6", "device=cpu"]))
    assert plan.final_windows == 262_144 // 257  # the whole held-out set, as every run of a sweep
    assert EVALS_PER_RUN - 2 <= (plan.steps - 1) // plan.eval_every + 1 <= EVALS_PER_RUN  # ~20 points, as before
    assert 0.09 <= plan.eval_flops / plan.flops <= 0.1


def test_a_set_eval_every_keeps_its_count_and_shrinks_the_subset():
    every, mid, final = eval_plan(steps=100, tokens=100 * 4096, seq_len=256, val_tokens=262_144, eval_every=5,
                                  share=0.1)
    assert every == 5 and final * 257 <= 262_144
    assert (19 * mid + final) * 256 <= 0.3 * 100 * 4096 + 256


def test_a_short_run_gets_fewer_evals_not_more_than_its_share():
    every, mid, final = eval_plan(steps=10, tokens=10 * 2048, seq_len=128, val_tokens=32_768, eval_every="auto",
                                  share=0.1)
    n_mid = (10 - 1) // every
    assert n_mid < EVALS_PER_RUN - 1 and final < 32_768 // 129  # the held-out set alone would cost 53%
    assert (n_mid * mid + final) * 128 <= 0.3 * 10 * 2048


def test_the_lr_comes_from_the_rule_file(tmp_path):
    rule = lr_rule.LrRule(name="mine", source="", lr_ref=0.01, n_ref=1e5, exponent=-0.5, min_params=2e4,
                          max_params=2e5, measured={"data": "pystdlib"})
    path = tmp_path / "lr_rule.json"
    path.write_text(json.dumps(lr_rule.to_json(rule)))
    plan = check_plan(compose(["model=gpt-100k", "sweep=cpu", f"train.lr_rule={path}", "device=cpu"]))
    n = plan.n_params["matmul"]
    assert plan.lr == pytest.approx(0.01 * (n / 1e5) ** -0.5)
    assert plan.lr_rule["tuned"] and plan.lr_rule["in_range"] and plan.lr_rule["name"] == "lr_rule"
    far = check_plan(compose(["model=gpt-5m", "sweep=cpu", f"train.lr_rule={path}", "device=cpu"]))
    assert not far.lr_rule["in_range"]  # an extrapolation, which the log and the report flag
    fixed = check_plan(compose(["model=gpt-100k", f"train.lr_rule={path}", "train.lr=0.003", "device=cpu"]))
    assert fixed.lr == 0.003 and fixed.lr_rule["rule_lr"] != 0.003  # what the rule would have said is kept


@pytest.mark.parametrize("content, message", [
    ("not json", "cannot read it as JSON"),
    ('{"format": "other"}', "not an lr rule"),
    ('{"format": "sweep-lr-rule/1", "lr": {"lr_ref": -1, "n_ref": 1, "exponent": 0}}', "must be positive"),
])
def test_a_bad_rule_file_is_refused_with_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "rule.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        check_plan(compose([f"train.lr_rule={path}", "device=cpu"]))
    with pytest.raises(ConfigError, match="no such file, and not a packaged rule"):
        check_plan(compose([f"train.lr_rule={tmp_path / 'missing.json'}", "device=cpu"]))


def test_beta2_rises_at_small_batches_unless_set():
    small = check_plan(compose(["model=gpt-100k", "device=cpu"]))
    assert small.batch_tokens < 128 * 2048 and small.beta2 == 0.99
    big = check_plan(compose(["model=gpt-100m", "train.batch_tokens=524288", "device=cpu"]))
    assert big.beta2 == 0.95
    assert check_plan(compose(["model=gpt-100k", "train.beta2=0.9", "device=cpu"])).beta2 == 0.9
    with pytest.raises(ConfigError, match="train.beta2"):
        check_plan(compose(["train.beta2=1.5", "device=cpu"]))


@pytest.mark.slow
def test_a_run_trains_at_its_rule_s_lr_and_records_the_rule_and_eval_plan(tmp_path, corpus):
    from helpers import local_overrides, read_metrics, run_cell

    from sweep.rundir import read_config

    rule = lr_rule.LrRule(name="tuned", source="", lr_ref=0.004, n_ref=1e5, exponent=-0.25, min_params=1e4,
                          max_params=1e6, measured={"data": "local"})
    path = tmp_path / "tuned.json"
    path.write_text(json.dumps(lr_rule.to_json(rule)))
    run = compose(local_overrides(tmp_path / "out", corpus, "model=gpt-12k", "train.tokens=40960",
                                  f"train.lr_rule={path}", "schedule=constant", "train.warmup_tokens=0"))
    summary, run_dir = run_cell(run)
    matmul = summary["n_params"]["matmul"]
    assert summary["lr"] == pytest.approx(rule.lr(matmul))
    logged = [e["lr"] for e in read_metrics(run_dir) if "lr" in e]
    assert logged and logged == pytest.approx([rule.lr(matmul)] * len(logged))
    plan = read_config(run_dir)["plan"]
    assert plan["lr_rule"]["name"] == "tuned" and plan["lr_rule"]["in_range"]
    assert plan["eval_share"] <= 0.1 + 1e-9 and summary["val_tokens"] == plan["final_windows"] * 64


def test_the_default_rule_is_the_measured_one_where_measured_and_porian_beyond():
    small = check_plan(compose(["model=gpt-50k", "sweep=cpu", "device=cpu"]))
    assert small.lr_rule["name"] == "pystdlib" and small.lr_rule["tuned"] and small.lr_rule["in_range"]
    assert small.lr == pytest.approx(lr_rule.load("pystdlib").lr(small.n_params["matmul"]))
    big = check_plan(compose(["model=gpt-100m", "device=cpu"]))
    assert big.lr_rule["name"] == "porian" and not big.lr_rule["tuned"]
    assert big.lr == pytest.approx(lr_rule.load("porian").lr(big.n_params["matmul"]))
