"""Gadre et al.'s over-training law (analysis/overtrain.py): recovery of known parameters, the extrapolation check
in M, the gain per doubling of tokens."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sweep.analysis.laws.overtrain import doubling_gains, fit_overtrain, overtrain_loss, overtraining

TRUE = {"E": 1.8, "a": 540.0, "b": 1360.0, "eta": 0.17}  # Chinchilla-like: α = β = 0.34, A ≈ 400, B ≈ 1000


def grid_runs(noise=0.0, seed=0, sizes=(1e6, 3e6, 1e7, 3e7, 1e8), tpps=(5, 10, 20, 40, 80, 160)):
    rng = np.random.default_rng(seed)
    N, M = (np.array(v, float).ravel() for v in np.meshgrid(sizes, tpps, indexing="ij"))
    D = M * N
    L = overtrain_loss(TRUE, 6 * N * D, M) * np.exp(rng.normal(0, noise, len(N)))
    return pd.DataFrame({"run_name": [f"r{i}" for i in range(len(N))], "N": N, "D": D, "C": 6 * N * D, "loss": L})


def test_fitter_recovers_known_parameters():
    r = grid_runs()
    fit = fit_overtrain(r["C"], r["D"] / r["N"], r["loss"])
    assert fit["eta"] == pytest.approx(TRUE["eta"], rel=1e-3)
    assert fit["E"] == pytest.approx(TRUE["E"], rel=1e-3)
    assert fit["a"] == pytest.approx(TRUE["a"], rel=0.02) and fit["b"] == pytest.approx(TRUE["b"], rel=0.02)


def test_noisy_fit_intervals_hold_the_truth_and_extrapolation_in_m_is_close():
    r = grid_runs(noise=0.003, seed=2)
    out = overtraining(r, n_boot=40).to_json()
    assert out["ci"]["eta"][0] < TRUE["eta"] < out["ci"]["eta"][1]
    assert out["ci"]["E"][0] < TRUE["E"] < out["ci"]["E"][1]
    ex = out["extrapolation"]  # fitted on M ≤ 20 (15 runs), predicting M = 40, 80, 160
    assert ex["fitted_runs"] == 15 and len(ex["runs"]) == 15 and min(row["M"] for row in ex["runs"]) == 40
    assert ex["median_abs_rel_error"] < 0.01 and ex["median_abs_rel_error_approach3"] < 0.01
    assert out["alpha_equivalent"] == pytest.approx(2 * out["eta"])


def test_no_runs_beyond_m20_skips_only_the_extrapolation():
    out = overtraining(grid_runs(tpps=(5, 10, 20)), n_boot=0).to_json()
    assert "eta" in out and out["extrapolation"] is None and "no run beyond" in out["extrapolation_skipped"]
    assert overtraining(grid_runs(tpps=(20,)), n_boot=0).skipped  # one M: no law in M


def test_gain_per_doubling_of_tokens():
    """Runs on an exact law L = 2 + 3/D^0.5 at one size: the observed gain per doubling between 2 runs a doubling
    apart is L(D) − L(2D), and the law's gain at the longer run is the same number."""
    N, D = np.array([1e6, 1e6, 1e6]), np.array([1e7, 2e7, 8e7])
    L = 2 + 3 / D**0.5
    rows = doubling_gains(N, D, L, {"E": 2, "A": 0.0, "alpha": 1.0, "B": 3.0, "beta": 0.5}, None)
    assert [row["M"] for row in rows] == [20, 80]
    assert rows[0]["gain_per_doubling"] == pytest.approx(L[0] - L[1])
    assert rows[0]["gain_approach3"] == pytest.approx(L[0] - L[1])
    assert rows[1]["gain_per_doubling"] == pytest.approx((L[1] - L[2]) / 2)  # two doublings
