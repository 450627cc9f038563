"""`sweep analyze --holdout EXPR` (analysis/holdout.py): fit on the small runs, predict the big ones; the
expression's parse errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sweep.analysis.laws.holdout import HoldoutError, holdout_protocol, select_holdout

TRUE = {"E": 1.8, "A": 400.0, "alpha": 0.34, "B": 2000.0, "beta": 0.37}


def true_loss(N, D):
    return TRUE["E"] + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / D ** TRUE["beta"]


def synthetic_runs(noise=0.004, seed=0, sizes=(1e6, 3e6, 1e7, 3e7, 1e8, 3e8), tpps=(5, 10, 20, 40, 80)):
    rng = np.random.default_rng(seed)
    rows = []
    for N in sizes:
        for t in tpps:
            D = t * N
            rows.append({"run_name": f"n{N:.0e}_t{t}", "N": N, "D": D, "C": 6 * N * D, "tpp_req": float(t),
                         "loss": true_loss(N, D) * np.exp(rng.normal(0, noise))})
    return pd.DataFrame(rows)


def test_fit_small_predict_big_recovers_the_truth():
    runs = synthetic_runs()
    out = holdout_protocol(runs, "n_params>=1e8", n_boot=60, seed=0).to_json()
    rows = out["runs"]
    assert out["fitted_runs"] == 20 and len(rows) == 10 and all(r["N"] >= 1e8 for r in rows)
    truth = true_loss(np.array([r["N"] for r in rows]), np.array([r["D"] for r in rows]))
    pred = np.array([r["predicted"] for r in rows])
    assert np.abs(pred / truth - 1).max() < 0.02  # noise is 0.4% per run; two sizes (and 3× in D) beyond the fit
    law_lo, law_hi = np.array([r["interval_law"] for r in rows]).T
    assert ((law_lo <= truth) & (truth <= law_hi)).sum() >= 8  # the law's interval holds the true law
    assert out["summary"]["share_inside"] >= 0.7
    assert out["summary"]["median_abs_rel_error"] < 0.01
    for r in rows:
        lo, hi = r["interval"]
        assert lo < r["predicted"] < hi
        assert r["inside"] == (lo <= r["observed"] <= hi)
        assert r["rel_error"] == pytest.approx(r["predicted"] / r["observed"] - 1)
    ln = out["kaplan"]  # a ladder: L(N) at one tokens/param predicts that tokens/param's held-out runs
    assert ln["basis"].startswith("tokens/param") and len(ln["runs"]) == 2


def test_a_biased_law_falls_outside_its_intervals():
    """Runs whose largest sizes follow another law than the small ones: the prediction misses, and says so."""
    runs = synthetic_runs(noise=0.002)
    big = runs["N"] >= 1e8
    runs.loc[big, "loss"] *= 1.05
    out = holdout_protocol(runs, "N>=1e8", n_boot=40).to_json()
    assert out["summary"]["share_inside"] <= 0.2
    assert out["summary"]["median_abs_rel_error"] > 0.03


def test_selection_forms():
    runs = synthetic_runs(sizes=(1e6, 1e7, 1e8), tpps=(10, 20))
    assert select_holdout("n_params >= 1e8", runs).sum() == 2
    assert select_holdout("N>=1e7 and tokens<1.5e8", runs).sum() == 1  # N=1e7 at 10 tokens/param
    assert select_holdout("flops>1e18", runs).sum() == (runs["C"] > 1e18).sum()
    assert list(runs["run_name"][select_holdout("n1e+08_t10, n1e+06_t20", runs)]) == ["n1e+06_t20", "n1e+08_t10"]


@pytest.mark.parametrize("expr, needle", [
    ("width>=3", "unknown column 'width'"),
    ("n_params>=1e12", "no run matches"),
    ("n_params>0", "every run matches"),
    ("n1e+06_t10,gpt-nope", "'gpt-nope' is no run"),
    ("n_params>=abc", "is not a comparison"),
    ("", "empty expression"),
    ("__import__('os')>1", "is not a comparison"),
])
def test_parse_errors_name_the_problem(expr, needle):
    with pytest.raises(HoldoutError) as err:
        select_holdout(expr, synthetic_runs(sizes=(1e6, 1e7, 1e8), tpps=(10, 20)))
    assert needle in str(err.value)


def test_too_few_runs_left_is_reported_not_fitted():
    runs = synthetic_runs(sizes=(1e6, 1e7, 1e8), tpps=(10, 20))
    out = holdout_protocol(runs, "N>=1e7", n_boot=0).to_json()
    assert "error" in out and "runs" not in out


def write_csv(path, runs):
    runs.rename(columns={"N": "n_params", "D": "tokens", "C": "flops"})[["n_params", "tokens", "loss", "flops"]] \
        .to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_analyze_with_holdout_writes_section_plot_and_fits(tmp_path, capsys):
    import json

    from sweep.analysis.main import main

    csv = write_csv(tmp_path / "runs.csv", synthetic_runs())
    out = tmp_path / "out"
    assert main([f"--csv={csv}", f"--out={out}", "--bootstrap=20", "--wandb=off", "--holdout=n_params>=1e8"]) == 0
    fits = json.loads((out / "fits.json").read_text())
    h = fits["holdout_protocol"]
    assert h["expr"] == "n_params>=1e8" and h["fitted_runs"] == 20 and len(h["runs"]) == 10
    assert set(h["runs"][0]) >= {"run_name", "N", "D", "predicted", "interval", "observed", "rel_error", "inside"}
    assert set(h["summary"]) >= {"median_abs_rel_error", "share_inside"}
    assert fits["plots"]["extrapolation"] == "extrapolation.png" and (out / "extrapolation.png").exists()
    report = (out / "report.md").read_text()
    assert "## Fit small, predict big" in report and "`row21`" in report
    assert fits["holdout"]["approach3"] is not None  # the leave-largest-out check stays


def test_analyze_refuses_a_bad_holdout_before_fitting(tmp_path, capsys):
    from sweep.analysis.main import main

    csv = write_csv(tmp_path / "runs.csv", synthetic_runs(sizes=(1e6, 1e7, 1e8), tpps=(10, 20)))
    assert main([f"--csv={csv}", f"--out={tmp_path / 'out'}", "--wandb=off", "--holdout=depth>3"]) == 2
    assert "unknown column 'depth'" in capsys.readouterr().err
    assert not (tmp_path / "out" / "fits.json").exists()
