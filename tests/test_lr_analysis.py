"""The analysis of an lr sweep (analysis/lr.py, lr_fit.py, lr_outputs.py) on synthetic runs: pure numpy/pandas."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from sweep.analysis.result.lr import LrStudy
from sweep.analysis.lr.study import analyze_lr, best_lr_runs, find_lr_study
from sweep.analysis.report.lr import plot_lr, report_lines, rule_from_study, write_rule
from sweep.config import lr_rule

SIZES = [2.5e4, 1e5, 4e5, 1.6e6, 6.4e6]
GRID = 2.0 ** np.arange(-3, 4)  # 7 lrs, factors of 2 around the truth
CURV = 0.05  # loss rise per (ln lr)²


def true_lr(n):
    return 0.02 * (n / 1e5) ** -0.4


def lr_runs(sizes=SIZES, grid=GRID, noise=0.003, seed=0, shift=None, seeds=1, **extra) -> pd.DataFrame:
    """Final losses L0(N) + CURV·(ln lr − ln lr*(N))² + noise, one row per run, with ds.runs' columns.

    shift[i] moves size i's grid by that factor (away from its optimum: an edge); the truth lr*(N) sits off-grid.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for i, n in enumerate(sizes):
        star = true_lr(n)
        centre = star * 1.23 ** ((i % 3) - 1) * (shift or {}).get(i, 1.0)
        for lr in centre * grid:
            for s in range(seeds):
                loss = 5 - 0.3 * math.log10(n) + CURV * math.log(lr / star) ** 2 + rng.normal(0, noise)
                rows.append({"run_name": f"m{i}-lr{lr:.3g}-s{s}", "model": f"gpt-{n / 1e3:g}k", "N": 1.2 * n,
                             "N_matmul": n, "D": 20 * n, "C": 120 * n * n, "loss": loss, "lr": lr, "tpp_req": 20.0,
                             "epochs": 0.5, "seed": s, **extra})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def study():
    return analyze_lr(lr_runs(), {"data": "synthetic", "sweep": "lr"})


def test_recovers_a_known_optimum(study):
    assert study.law is not None and study.no_rule is None and study.params == "matmul"
    for r in study.per_size:
        assert r.in_law and r.edge is None and r.ci[0] < r.best_lr < r.ci[1]
        assert r.ci[0] <= true_lr(r.n_params) <= r.ci[1], r
    law = study.law
    lo, hi = law.exponent.ci
    assert lo < -0.4 < hi and hi - lo < 0.1
    assert law.n_ref == pytest.approx(math.exp(np.mean(np.log(SIZES))))
    assert law.lr_ref.value == pytest.approx(true_lr(law.n_ref), rel=0.05)
    assert law.weighted and law.sizes == [r.model for r in study.per_size]
    json.dumps(study.to_json(), allow_nan=False)  # fits.json["lr"] as it is


def test_an_edge_minimum_is_a_bound_left_out_of_the_law():
    res = analyze_lr(lr_runs(shift={4: 8.0}), {})  # the largest size's lrs all above its optimum
    edge = res.per_size[-1]
    assert edge.edge == "low" and not edge.in_law and edge.ci is None
    assert edge.best_lr == pytest.approx(min(edge.lrs))
    assert edge.model not in res.law.sizes and len(res.law.sizes) == 4
    assert any(edge.model in w and "edge" in w for w in res.warnings)
    lo, hi = res.law.exponent.ci
    assert lo < -0.4 < hi
    assert any("≤" in line and edge.model in line for line in report_lines(res))


def test_fewer_than_three_interior_sizes_make_no_rule():
    res = analyze_lr(lr_runs(shift={2: 1 / 8, 3: 8.0, 4: 8.0}), {})
    assert res.law is None
    assert "only 2 size(s) with an interior best lr" in res.no_rule and "a rule needs 3" in res.no_rule
    assert all(r.model in res.no_rule for r in res.per_size[2:])
    with pytest.raises(ValueError, match="no lr rule: only 2"):
        rule_from_study(res, {})
    assert any(line.startswith("**No rule:**") for line in report_lines(res))
    assert plot_lr(res) is not None


def test_a_sweep_with_one_lr_per_size_is_no_lr_study():
    runs = lr_runs(grid=np.array([1.0]))
    assert not find_lr_study(runs) and analyze_lr(runs, {}) is None
    assert analyze_lr(runs.drop(columns="lr"), {}) is None
    assert list(best_lr_runs(runs)) == list(runs.index)
    two_sizes_one_lr = pd.concat([lr_runs(sizes=SIZES[:1]), lr_runs(sizes=SIZES[1:], grid=np.array([1.0]))])
    assert not find_lr_study(two_sizes_one_lr.reset_index(drop=True))


def test_an_lr_study_needs_one_horizon():
    runs = lr_runs()
    assert find_lr_study(runs)
    runs["tpp_req"] = runs["N_matmul"] / 1e3  # each size at its own tokens/param
    assert not find_lr_study(runs)
    runs["tpp_req"] = np.where(runs["N_matmul"] < 1e6, 20.0, 80.0)
    assert analyze_lr(runs, {}).horizon == "tokens/param 20"  # the horizon with the most sizes
    assert analyze_lr(runs, {}).others[0].horizon == "tokens/param 80"
    runs["tpp_req"] = np.nan
    runs["D"] = 1e7  # no tokens/param asked for: the same tokens is one horizon
    res = analyze_lr(runs, {})
    assert res.horizon.startswith("tokens 1e+07") and res.law is not None


def test_the_rule_file_round_trips(study, tmp_path):
    path = tmp_path / "lr_rule.json"
    written = write_rule(path, study, {"data": "synthetic"})
    doc = json.loads(path.read_text())
    assert "about" in doc and "lr*(N)" in doc["about"]
    rule = lr_rule.load(str(path))
    law = study.law
    for n in (3e4, 4e5, 5e6):
        assert rule.lr(n) == pytest.approx(law.lr_ref.value * (n / law.n_ref) ** law.exponent.value, rel=1e-9)
        assert rule.lr(n) == pytest.approx(written.lr(n))
    assert rule.tuned and rule.in_range(1e6) and not rule.in_range(1e9)
    assert (rule.min_params, rule.max_params) == pytest.approx((min(SIZES), max(SIZES)))
    m = rule.measured
    assert m["data"] == "synthetic" and m["tokens_per_param"] == 20.0 and m["exponent_ci"] == law.exponent.ci
    assert {"model", "n_params", "lrs", "losses", "best_lr", "ci", "edge", "best_loss"} <= set(m["per_size"][0])


def test_the_figure_has_two_panels_with_legends(study):
    fig = plot_lr(study)
    assert len(fig.axes) == 2 and all(ax.get_legend() is not None for ax in fig.axes)
    assert fig.axes[0].get_xscale() == "log" and fig.axes[1].get_yscale() == "log"
    edge = plot_lr(analyze_lr(lr_runs(shift={4: 8.0}), {}))
    assert any("bound" in t.get_text() for t in edge.axes[1].get_legend().get_texts())


def test_best_lr_runs_keep_one_lr_per_size():
    runs = pd.concat([lr_runs(), lr_runs(grid=np.array([1.0]), sizes=[2.56e7]).assign(tpp_req=20.0)],
                     ignore_index=True)
    res = analyze_lr(runs, {})
    keep = runs.loc[best_lr_runs(runs)]
    assert len(keep) == len(SIZES) + 1  # one per swept size, and the lone run kept as it is
    for r in res.per_size:
        mine = keep[keep["model"] == r.model]
        if len(r.lrs) >= 3:
            closest = min(r.lrs, key=lambda lr: abs(math.log(lr / r.best_lr)))
            assert len(mine) == 1 and mine["lr"].iloc[0] == pytest.approx(closest)


def test_three_lrs_and_one_run_give_no_interval_but_a_law():
    res = analyze_lr(lr_runs(grid=2.0 ** np.arange(-1, 2), noise=0.0), {})
    assert res.noise.dof == 0
    for r in res.per_size:
        assert r.in_law and r.ci is None and any("no interval" in f for f in r.flags)
    assert res.law is not None and not res.law.weighted
    assert res.law.exponent.value == pytest.approx(-0.4, abs=1e-6)
    table = [line for line in report_lines(res) if line.startswith("| gpt-")]
    assert table and not any("[" in line for line in table)


def test_seeds_give_residual_dof_and_a_parabola_opening_downward_is_left_out():
    runs = lr_runs(seeds=2)
    res = analyze_lr(runs, {})
    assert res.noise.dof == len(SIZES) * (10 - 3)
    assert len(best_lr_runs(runs)) == 2 * len(SIZES)  # both seeds of the best lr
    bumpy = runs[runs["model"] == "gpt-25k"].drop_duplicates("lr").head(5).copy()
    bumpy["loss"] = [2.9, 3.0, 2.89, 3.0, 2.9]
    bumpy["model"], bumpy["N_matmul"] = "gpt-bumpy", 2.56e7
    res = analyze_lr(pd.concat([runs, bumpy], ignore_index=True), {})
    row = next(r for r in res.per_size if r.model == "gpt-bumpy")
    assert row.opens_down and not row.in_law and "downward" in row.left_out
    assert "gpt-bumpy" not in res.law.sizes


def test_zero_width_intervals_are_not_printed(study):
    res = LrStudy.from_json(study.to_json())  # a copy to change
    r = res.per_size[0]
    r.ci = [r.best_lr, r.best_lr]
    res.law.exponent.ci = [res.law.exponent.value] * 2
    text = "\n".join(report_lines(res))
    assert f"{r.best_lr:.3g} [" not in text and "exponent 95% interval" not in text


def test_batch_slices_give_the_best_slice_and_batch_law():
    frames = []
    for batch in (2**14, 2**16, 2**18):
        f = lr_runs(seed=batch, batch_tokens=float(batch), beta2=0.95)
        best_batch = 2**16 * (f["N_matmul"] / 4e5) ** 0.5
        f["loss"] += 0.02 * np.log(batch / best_batch) ** 2
        frames.append(f)
    runs = pd.concat(frames, ignore_index=True)
    res = analyze_lr(runs, {})
    assert res.slice == "batch_tokens=65536" and len(res.slices) == 3
    assert res.law is not None
    batch = res.batch
    assert [r.in_law for r in batch.per_size] == [False, True, True, True, False]  # 2^14, 2^18: edges
    assert batch.law.exponent.value > 0 and batch.law.batch_ref is not None and batch.law.lr_ref is None
    assert LrStudy.from_json(res.to_json()) == res  # the slices and the batch law read back as they were
    assert len(runs.loc[best_lr_runs(runs)]) == len(SIZES)
    assert any("Batch law" in line for line in report_lines(res))
    hidden = analyze_lr(runs.drop(columns=["batch_tokens", "beta2"]), {})  # the slices mixed up, as repeats
    assert any("treated as repeats" in w for w in hidden.warnings)


@pytest.mark.slow
def test_sweep_analyze_of_an_lr_sweep_writes_the_rule_and_fits_the_best_lr_runs(tmp_path):
    """The wiring in `sweep analyze`: an lr study is found in run directories, its rule written and loadable, its
    plot and report section made, and the laws see each size's best-lr run only."""
    import json as _json

    from helpers import write_trust_run as write_run

    from sweep.analysis.main import main
    from sweep.config.lr_rule import load

    rng = np.random.default_rng(0)
    factors = [0.25, 0.5, 1.0, 2.0, 4.0]
    sweep = tmp_path / "lr"
    for model, n in {"gpt-50k": 5e4, "gpt-100k": 1e5, "gpt-200k": 2e5, "gpt-500k": 4e5}.items():
        for f in factors:
            d = write_run(sweep, f"{model}_tpp20_lr{f}", n, 20 * n * 6 * (n + 2e4), rng, lr_factor=f, model=model)
            summary = _json.loads((d / "summary.json").read_text())
            summary["val_loss"] += 0.05 * (np.log(f) - np.log(1.3)) ** 2  # every size's best lr: 1.3× the rule's
            (d / "summary.json").write_text(_json.dumps(summary))
            cfg = _json.loads((d / "config.yaml").read_text())
            cfg["train"] = {"flops": None, "tokens_per_param": 20}  # one horizon: 20 tokens/param at every size
            (d / "config.yaml").write_text(_json.dumps(cfg))
    out = tmp_path / "analysis"
    assert main([str(sweep), "--out", str(out), "--bootstrap", "0", "--wandb", "off"]) == 0
    fits = _json.loads((out / "fits.json").read_text())
    assert fits["lr"]["law"] and fits["runs"]["used"] == 4  # one run per size: its best lr
    left_out = [e for e in fits["runs"]["excluded"] if "best lr" in e["reason"]]
    assert len(left_out) == 16
    rule = load(str(out / "lr_rule.json"))
    for r in fits["lr"]["per_size"]:
        assert rule.lr(r["n_params"]) == pytest.approx(1.3 * 3e-3 * (r["n_params"] / 1e5) ** (-1 / 3), rel=0.15)
    assert (out / "lr.png").stat().st_size > 10_000
    assert "## Learning rate per size" in (out / "report.md").read_text()
