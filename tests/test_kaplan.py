"""Kaplan's forms (analysis/kaplan.py): recovery of a known joint law, the per-10× arithmetic, pure power laws,
the counterfactual against the compute-optimal model."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from sweep.analysis.laws.kaplan import allocation_per_10x, counterfactual, fit_kaplan_joint, gain_per_10x, \
    kaplan_joint_loss, per_10x, pure_power
from sweep.analysis.laws.approaches import allocation, optimal_nd
from sweep.analysis.laws.lse import law_loss
from sweep.analysis.result.record import Value
from sweep.analysis.result.laws import Allocation, Approach1, Approach2

KAPLAN = {"N_c": 8.8e13, "D_c": 5.4e13, "alpha_N": 0.076, "alpha_D": 0.095}  # Kaplan et al. 2020, Table 2
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def test_recovers_a_known_joint_law():
    N, D = (v.ravel() for v in np.meshgrid(np.logspace(5, 9, 9), np.logspace(7, 11, 9), indexing="ij"))
    rng = np.random.default_rng(0)
    L = kaplan_joint_loss(KAPLAN, N, D) * np.exp(rng.normal(0, 0.001, len(N)))
    fit = fit_kaplan_joint(N, D, L)
    assert fit["alpha_N"] == pytest.approx(KAPLAN["alpha_N"], rel=0.03)
    assert fit["alpha_D"] == pytest.approx(KAPLAN["alpha_D"], rel=0.03)
    assert np.log(fit["N_c"]) == pytest.approx(np.log(KAPLAN["N_c"]), rel=0.03)
    assert np.log(fit["D_c"]) == pytest.approx(np.log(KAPLAN["D_c"]), rel=0.03)
    assert fit["at_bound"] == [] and fit["median_abs_residual"] < 0.002


def test_per_10x_arithmetic():
    assert per_10x(0.5)["factor"] == pytest.approx(3.1623, rel=1e-4)  # Chinchilla's ≈ 3.2×
    assert per_10x(0.73)["factor"] == pytest.approx(5.370, rel=1e-3)  # Kaplan's N ∝ C^0.73
    assert per_10x(0.27, [0.2, 0.3])["ci"] == pytest.approx([10**0.2, 10**0.3])
    assert per_10x(None) is None
    al = allocation(CHINCHILLA)  # a = β/(α+β) = 0.28/0.62
    fits = SimpleNamespace(allocation=Allocation(G=Value(al["G"]), a=Value(al["a"], [0.4, 0.5]), b=Value(al["b"])),
                           approach2=Approach2(skipped="x"), approach1=Approach1(envelope=[], warnings=[]),
                           approach3=SimpleNamespace(degenerate=False))
    rows = [r.to_json() for r in allocation_per_10x(fits)]  # as fits.json holds them
    assert rows[0]["source"] == "Approach 3" and len(rows) == 1
    assert rows[0]["N"]["factor"] == pytest.approx(10 ** (0.28 / 0.62))
    assert rows[0]["N"]["ci"][1] == pytest.approx(10**0.5)
    assert rows[0]["N"]["factor"] * rows[0]["D"]["factor"] == pytest.approx(10.0)  # N·D ∝ C
    fits.approach3.degenerate = True  # a bound or a negligible term: its allocation is no result
    assert allocation_per_10x(fits) == []


def test_pure_power_and_frontier_gain():
    x = np.logspace(15, 20, 6)
    fit = pure_power(x, (3e8 / x) ** 0.05)
    assert fit["alpha"] == pytest.approx(0.05) and fit["x_c"] == pytest.approx(3e8, rel=1e-6)
    assert pure_power(x, x**0.1) is None  # a rising loss is no such law
    row = gain_per_10x(CHINCHILLA, [1e21])[0]
    n, d = optimal_nd(CHINCHILLA, [1e21, 1e22])
    assert row["gain"] == pytest.approx(law_loss(CHINCHILLA, n[0], d[0]) - law_loss(CHINCHILLA, n[1], d[1]))
    assert row["gain"] > 0


def test_counterfactual_gopher_to_chinchilla():
    """Gopher (280B params, 300B tokens) against the compute-optimal model at its compute under Chinchilla's law:
    a much smaller model (Chinchilla itself was 4× smaller; this law's optimum, ≈ 30B, is 9× smaller) with a lower
    predicted loss."""
    runs = pd.DataFrame({"run_name": ["gopher"], "N": [2.8e11], "D": [3e11], "loss": [2.0]})
    row = counterfactual(runs, CHINCHILLA)[0]
    assert 4 < row["N_over_opt"] < 15
    assert row["loss_left"] > 0 and row["predicted_opt"] < row["predicted"]
    assert row["N_opt"] * row["D_opt"] == pytest.approx(2.8e11 * 3e11, rel=1e-9)
