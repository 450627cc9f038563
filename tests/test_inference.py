"""The inference-aware optimum (analysis/inference.py): demand 0 is Chinchilla's allocation, more demand never a
larger model, and the optimum costs no more than serving the compute-optimal model."""

from __future__ import annotations

import numpy as np
import pytest

from sweep.analysis.laws.inference import allocation_for_demand, inference_optimal, lifetime_flops, tokens_for_loss
from sweep.analysis.laws.approaches import optimal_nd
from sweep.analysis.laws.lse import law_loss

LAWS = [{"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},  # Chinchilla's Approach 3
        {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}]  # Epoch's refit


@pytest.mark.parametrize("p", LAWS)
@pytest.mark.parametrize("C", [1e18, 5.76e23, 1e26])
def test_demand_zero_is_the_compute_optimal_allocation(p, C):
    row = allocation_for_demand(p, C, 0.0)
    n0, d0 = optimal_nd(p, C)
    assert row["N_opt"] == pytest.approx(float(n0), rel=1e-5)
    assert row["D_opt"] == pytest.approx(float(d0), rel=1e-5)
    assert row["saving"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("p", LAWS)
def test_more_demand_never_a_larger_model(p):
    C = 1e22
    demands = [0, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15]
    rows = [allocation_for_demand(p, C, q) for q in demands]
    n = np.array([r["N_opt"] for r in rows])
    d = np.array([r["D_opt"] for r in rows])
    assert np.all(np.diff(n) <= 1e-9 * n[:-1]) and n[-1] < 0.5 * n[0]  # it falls, and by a lot at large demand
    assert np.all(np.diff(d) >= -1e-9 * d[:-1])
    for r in rows:  # on the target, and never dearer than serving the compute-optimal model
        assert law_loss(p, r["N_opt"], r["D_opt"]) == pytest.approx(r["target_loss"], rel=1e-9)
        assert r["lifetime_flops"] <= r["lifetime_flops_chinchilla"] * (1 + 1e-9)


def test_the_optimum_beats_its_neighbours_on_the_target():
    p, q = LAWS[0], 1e13
    r = allocation_for_demand(p, 1e22, q)
    for f in (0.9, 0.97, 1.03, 1.1):
        n = r["N_opt"] * f
        assert lifetime_flops(n, tokens_for_loss(p, n, r["target_loss"]), q) > r["lifetime_flops"]


def test_unreachable_target_and_intervals_from_draws():
    p = LAWS[0]
    assert np.isinf(tokens_for_loss(p, 1e3, 2.0))  # a tiny model cannot reach loss 2
    rng = np.random.default_rng(0)
    draws = [{k: v * np.exp(rng.normal(0, 0.01)) for k, v in p.items()} for _ in range(30)]
    out = inference_optimal(p, [1e21, 1e22], [0.0, 1e12], draws).to_json()
    assert len(out["rows"]) == 4
    for row in out["rows"]:
        lo, hi = row["ci"]["N_opt"]
        assert lo <= row["N_opt"] * 1.05 and row["N_opt"] <= hi * 1.05
