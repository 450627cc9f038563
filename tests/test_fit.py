"""Numerics of the analysis (lse.py, laws.py, bootstrap.py, finite.py): Epoch's Chinchilla replication (golden),
recovery of known laws, allocation, degenerate cases, non-finite input refused.

`python tests/test_fit.py` regenerates tests/data/chinchilla_epoch_240.csv from the raw digitised data.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sweep.analysis.laws import approaches as laws, bootstrap, lse

DATA = Path(__file__).parent / "data"
RAW = DATA / "chinchilla_svg_extracted_data.csv"
CONTRACT = DATA / "chinchilla_epoch_240.csv"
# Besiroglu et al. 2024 (Epoch AI), on the same 240 points: point estimates and 95% intervals of A and B.
EPOCH = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
EPOCH_CI = {"A": (285, 744), "B": (1042, 5810)}


def chinchilla_contract() -> pd.DataFrame:
    """Epoch's preparation: D = FLOP / (6N), drop the 5 highest losses; in the analysis CSV's columns."""
    raw = pd.read_csv(RAW)
    raw = raw.drop(raw["loss"].sort_values(ascending=False).index[:5])
    return pd.DataFrame({"n_params": raw["Model Size"], "tokens": raw["Training FLOP"] / (6 * raw["Model Size"]),
                         "loss": raw["loss"], "flops": raw["Training FLOP"]}).reset_index(drop=True)


@pytest.fixture(scope="module")
def chinchilla():
    df = pd.read_csv(CONTRACT)
    return df["n_params"].to_numpy(), df["tokens"].to_numpy(), df["loss"].to_numpy()


def test_contract_csv_is_the_converted_raw_data():
    committed, fresh = pd.read_csv(CONTRACT), chinchilla_contract()
    assert len(committed) == 240 and list(committed.columns) == ["n_params", "tokens", "loss", "flops"]
    np.testing.assert_allclose(committed.to_numpy(), fresh.to_numpy(), rtol=1e-12)
    assert committed["loss"].max() < 3.41  # the five outliers (up to 5.0) are gone


def test_golden_epoch_approach3(chinchilla):
    N, D, L = chinchilla
    with lse.single_threaded_blas():
        res = lse.LseFitter(np.column_stack([N, D]), L).fit()
    p = lse.approach3_params(res.theta)
    for k in ("E", "alpha", "beta"):
        assert abs(p[k] / EPOCH[k] - 1) < 0.01, (k, p[k])
    for k, (lo, hi) in EPOCH_CI.items():
        assert lo < p[k] < hi, (k, p[k])
    assert res.at_bound == [] and res.starts["reached_best"] >= 2


@pytest.mark.slow
def test_golden_bootstrap_matches_epoch_intervals(chinchilla):
    """200 warm-started refits (their speed is scripts/bench_fit.py's business, not a test's)."""
    N, D, L = chinchilla
    with lse.single_threaded_blas():
        fitter = lse.LseFitter(np.column_stack([N, D]), L)
        full = fitter.fit().theta
        samples = bootstrap.bootstrap(lambda w: lse.approach3_params(fitter.fit(w, n_refine=0, warm=full).theta),
                                      len(L), 200, seed=0)
    for k, (lo, hi) in EPOCH_CI.items():  # Epoch's intervals, reproduced within a resampling's noise
        ci = bootstrap.percentile_ci(samples[k])["ci"]
        assert abs(np.log(ci[0] / lo)) < 0.25 and abs(np.log(ci[1] / hi)) < 0.25, (k, ci)
    for k in ("E", "alpha", "beta"):
        ci = bootstrap.percentile_ci(samples[k])["ci"]
        assert ci[0] < EPOCH[k] < ci[1]


@pytest.mark.slow
def test_cli_prints_epochs_numbers(tmp_path, capsys):
    from sweep.analysis.main import main

    assert main(["--csv", str(CONTRACT), "--out", str(tmp_path), "--bootstrap", "30"]) == 0
    out = capsys.readouterr().out
    got = {k: float(v) for k, v in re.findall(r"\b(E|A|B|alpha|beta)=([0-9.e+-]+)", out)}
    assert abs(got["E"] / EPOCH["E"] - 1) < 0.01 and abs(got["alpha"] / EPOCH["alpha"] - 1) < 0.01
    assert abs(got["beta"] / EPOCH["beta"] - 1) < 0.01
    assert EPOCH_CI["A"][0] < got["A"] < EPOCH_CI["A"][1] and EPOCH_CI["B"][0] < got["B"] < EPOCH_CI["B"][1]
    assert (tmp_path / "fits.json").exists() and (tmp_path / "report.md").exists()


TRUTH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Chinchilla's published law


@pytest.mark.slow
def test_synthetic_law_recovered_within_bootstrap_interval():
    """A 7×7 grid of N × D under a known law with 1% lognormal noise: the truth lies inside the 95% interval.

    The intervals are calibrated (over 20 noise draws each parameter was covered 19 times), so one draw may miss
    by chance: each parameter must be covered in at least 2 of 3 draws.
    """
    N, D = (a.ravel() for a in np.meshgrid(np.logspace(7, 9.5, 7), np.logspace(9, 11.5, 7)))
    covered = {k: 0 for k in TRUTH}
    for seed in (1, 2, 3):
        L = lse.law_loss(TRUTH, N, D) * np.exp(np.random.default_rng(seed).normal(0, 0.01, len(N)))
        with lse.single_threaded_blas():
            fitter = lse.LseFitter(np.column_stack([N, D]), L)
            full = fitter.fit().theta
            samples = bootstrap.bootstrap(lambda w: lse.approach3_params(fitter.fit(w, n_refine=0, warm=full).theta),
                                          len(L), 150, seed=seed)
        for k, v in TRUTH.items():
            lo, hi = bootstrap.percentile_ci(samples[k])["ci"]
            covered[k] += lo <= v <= hi
    assert all(c >= 2 for c in covered.values()), covered


def isoflop_grid(budgets, p=TRUTH, span=8.0, n=7, noise=0.0, seed=0):
    """Sizes log-spaced around each budget's true optimum (C = 6ND), as an isoFLOP sweep would place them."""
    rng = np.random.default_rng(seed)
    rows = []
    for C in budgets:
        n_opt = laws.optimal_nd(p, C)[0]
        for N in n_opt * np.logspace(-np.log10(span), np.log10(span), n):
            D = C / (6 * N)
            rows.append((N, D, float(lse.law_loss(p, N, D)) * np.exp(rng.normal(0, noise)), C))
    return np.array(rows).T


def test_approach2_recovers_exponents():
    N, D, L, C = isoflop_grid([1e18, 1e19, 1e20, 1e21], span=3.0, noise=0.001)
    res = laws.fit_isoflop(N, D, L, C)
    al = laws.allocation(TRUTH)
    assert abs(res["a"] - al["a"]) < 0.02 and abs(res["b"] - al["b"]) < 0.02, res
    assert res["warnings"] == []
    for row in res["budgets"]:
        assert abs(np.log(row["N_opt"] / laws.optimal_nd(TRUTH, row["C"])[0])) < 0.1
        assert row["D_opt"] == pytest.approx(row["C"] / (6 * row["N_opt"]), rel=1e-6)


def test_closed_form_allocation_is_the_argmin_under_6nd():
    for C in (1e18, 1e21, 1e24):
        n_cf, d_cf = laws.optimal_nd(TRUTH, C)
        n = np.logspace(5, 13, 400_001)
        n_num = n[np.argmin(lse.law_loss(TRUTH, n, C / (6 * n)))]
        assert n_cf == pytest.approx(n_num, rel=1e-3) and n_cf * d_cf * 6 == pytest.approx(C)
        assert laws.optimal_nd_flops(TRUTH, C, 1.0, 6.0)[0] == pytest.approx(n_cf, rel=1e-6)
    al = laws.allocation(TRUTH)
    assert al["a"] + al["b"] == pytest.approx(1.0)


def test_degenerate_isoflop_warnings():
    # a budget whose sizes all sit left of the optimum: minimum extrapolated outside the grid
    N, D, L, C = isoflop_grid([1e20], span=2.0)
    far = laws.fit_isoflop(N / 30, D * 30, lse.law_loss(TRUTH, N / 30, D * 30), C)
    assert any("outside the sizes tried" in w or "edge" in w for w in far["warnings"])
    # a concave "curve" (loss peaks mid-grid) and a budget with two sizes
    N2 = np.array([1e8, 2e8, 4e8, 8e8, 1e8, 2e8])
    L2 = np.array([3.0, 3.2, 3.25, 3.0, 3.1, 3.0])
    res = laws.fit_isoflop(N2, 1e19 / (6 * N2), L2, np.array([1e19] * 4 + [1e20] * 2))
    joined = " ".join(res["warnings"])
    assert "opens downward" in joined and "fewer than 3 model sizes" in joined and "no power law" in joined
    assert "a" not in res


def test_degenerate_approach3_warns_at_bound():
    # no data dependence at all: B/D^β has nothing to fit, and an exponent or coefficient runs to a bound
    rng = np.random.default_rng(0)
    N, D = (a.ravel() for a in np.meshgrid(np.logspace(7, 9, 5), np.logspace(9, 11, 5)))
    L = (1.7 + 400 / N**0.34) * np.exp(rng.normal(0, 1e-4, len(N)))
    res = lse.LseFitter(np.column_stack([N, D]), L).fit()
    assert "a1" in res.negligible + res.at_bound, lse.approach3_params(res.theta)
    good = lse.LseFitter(np.column_stack([N, D]), lse.law_loss(TRUTH, N, D)).fit()
    assert good.negligible == [] and good.at_bound == []


def test_envelope_and_holdout():
    # eval curves of three sizes under one law: the envelope's N* grows with C, as Approach 3's does
    rows = []
    for run, N in enumerate((1e7, 1e8, 1e9)):
        for D in np.logspace(8, 11, 40):
            rows.append((6 * N * D, N, D, float(lse.law_loss(TRUTH, N, D)), run))
    C, N, D, L, run = np.array(rows).T
    env = laws.fit_envelope(C, N, D, L, run.astype(int))
    assert env["a"] > 0.2 and len(env["envelope"]) >= 3
    lone = laws.fit_envelope(C[run == 0], N[run == 0], D[run == 0], L[run == 0], run[run == 0].astype(int))
    assert lone["warnings"] and "a" not in lone
    # holding out the largest of 4 sizes: a perfect law predicts it perfectly; 3 sizes: no check
    Ng, Dg = (a.ravel() for a in np.meshgrid(np.logspace(7, 9, 4), np.logspace(9, 11, 4)))
    Lg = lse.law_loss(TRUTH, Ng, Dg)
    fitter = lse.LseFitter(np.column_stack([Ng, Dg]), Lg)

    def fp(train, test):
        th = fitter.fit(train.astype(float)).theta
        return fitter.predict(th, np.column_stack([Ng, Dg])[test]), Lg[test]

    h = laws.holdout_largest(Ng, fp)
    assert h["n_test"] == 4 and h["max_abs_rel_error"] < 1e-3
    assert laws.holdout_largest(Ng[Ng < 5e8], fp) is None
    assert list(laws.size_clusters([1e6, 1.004e6, 2e6, 4e6])) == [0, 0, 1, 2]


def test_size_clusters_jitter_and_continuum():
    """Digitised jitter (neighbours within 1%) is one size; a continuum of sizes is not one chained "size"."""
    for path, col in ((CONTRACT, "n_params"), (RAW, "Model Size")):  # 41 sizes, as Epoch's data has
        assert laws.size_clusters(pd.read_csv(path)[col]).max() + 1 == 41
    assert laws.size_clusters(np.logspace(6, 9, 5000)).max() + 1 == 5000  # neighbours 0.14% apart: 5000 sizes
    assert list(laws.size_clusters([1e6, 1.009e6, 1.018e6, 1.027e6, 1.036e6, 2e6])) == [0, 1, 2, 3, 4, 5]
    assert list(laws.size_clusters([1e6, 1e6, 1.009e6, 1.018e6, 2e6])) == [0, 0, 0, 0, 1]  # within 3%: one size
    from sweep.analysis.inputs.load import load_csv

    budget = load_csv(CONTRACT).runs["budget"].to_numpy()  # log-binned FLOP budgets: as before the span rule
    assert len(np.unique(budget[np.isfinite(budget)])) == 16 and np.isfinite(budget).sum() == 212


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e308])  # 1e308: an old trainer's stand-in for inf
def test_fits_refuse_non_finite_input(bad):
    """Loading leaves non-finite values out; one that slips through anyway must fail loudly, never bend a law."""
    N, D = (a.ravel() for a in np.meshgrid(np.logspace(7, 9, 4), np.logspace(9, 11, 4)))
    L = lse.law_loss(TRUTH, N, D)
    C, run = 6 * N * D, np.arange(len(N))
    L_bad, N_bad = L.copy(), N.copy()
    L_bad[3], N_bad[5] = bad, bad
    with pytest.raises(ValueError, match=r"LseFitter: loss: 1 non-finite value\(s\).*index 3"):
        lse.LseFitter(np.column_stack([N, D]), L_bad)
    with pytest.raises(ValueError, match=r"LseFitter: x: 1 non-finite value\(s\).*index 10"):  # row 5, column N
        lse.LseFitter(np.column_stack([N_bad, D]), L)
    with pytest.raises(ValueError, match="LseFitter.fit: w"):
        lse.LseFitter(N, L).fit(np.where(run == 2, bad, 1.0))
    with pytest.raises(ValueError, match="fit_isoflop: L"):
        laws.fit_isoflop(N, D, L_bad, C)
    with pytest.raises(ValueError, match="fit_isoflop: budget"):
        laws.fit_isoflop(N, D, L, np.where(run == 2, np.inf if np.isnan(bad) else bad, C))
    with pytest.raises(ValueError, match="fit_envelope: L"):
        laws.fit_envelope(C, N, D, L_bad, run)
    with pytest.raises(ValueError, match="size_clusters: N"):
        laws.holdout_largest(N_bad, lambda train, test: (L[test], L[test]))
    assert laws.fit_isoflop(N, D, L, np.full(len(N), np.nan))["budgets"] == []  # a NaN budget means "none"
    with pytest.raises(ValueError, match="<= 0"):  # log space: not positive is refused too
        lse.LseFitter(N, -L)


if __name__ == "__main__":
    chinchilla_contract().to_csv(CONTRACT, index=False)
    print(f"wrote {CONTRACT}")


def test_the_isoflop_edge_check_compares_sizes_not_runs():
    """A budget whose lowest loss is a second seed of its smallest size: its minimum is extrapolated, and the
    warning says so (comparing run indices missed it once a size had several runs)."""
    from sweep.analysis.laws.approaches import fit_isoflop

    N = np.repeat([1e5, 2e5, 4e5, 8e5], 2)
    x = np.log10(N)
    L = 3 + 0.5 * (x - 5.05) ** 2 + np.array([0.001, -0.002, 0, 0, 0, 0, 0, 0])
    out = fit_isoflop(N, 1e12 / (6 * N), L, np.full(len(N), 1e12))
    assert out["budgets"][0]["edge"] == "edge"
    assert any("at the edge of the sizes tried" in w for w in out["warnings"])


def test_an_off_centre_isoflop_grid_is_warned_about():
    """Sizes tried mostly above the minimum: the parabola is biased (Approach 2's known bias), and said so."""
    from sweep.analysis.laws.approaches import fit_isoflop

    N = np.array([1e5, 2e5, 4e5, 8e5, 1.6e6])
    L = 3 + 0.5 * (np.log10(N) - 5.2) ** 2
    out = fit_isoflop(N, 1e12 / (6 * N), L, np.full(len(N), 1e12))
    assert out["budgets"][0]["edge"] is None
    assert any("off-centre around the minimum (N* = 1.58e+05" in w for w in out["warnings"]), out["warnings"]
    centred = 3 + 0.5 * (np.log10(N) - 5.6) ** 2
    assert not any("off-centre" in w for w in fit_isoflop(N, 1e12 / (6 * N), centred, np.full(5, 1e12))["warnings"])


def test_approach3s_optimum_stands_beside_each_isoflop_minimum(tmp_path):
    """At each budget, Approach 3's N* along the runs' own FLOPs per token: the true law's optimum, nearly."""
    from helpers import true_optimum, write_sweep

    from sweep.analysis.inputs.load import load_sweep
    from sweep.analysis.laws.estimate import estimate

    laws = estimate(load_sweep(write_sweep(tmp_path / "synth"), "non_embedding"), n_boot=0)
    assert laws.approach2.budgets
    for row in laws.approach2.budgets:
        assert row.N_opt_approach3.value == pytest.approx(true_optimum(row.C), rel=0.15)


def test_variable_projection_alone_reaches_epochs_optimum(chinchilla):
    """Approach 3 with its exponents searched and E, A, B solved exactly inside (no start grid), polished on the
    Huber objective: the multi-start's optimum on Epoch's data, to the golden test's tolerance and beyond."""
    N, D, L = chinchilla
    with lse.single_threaded_blas():
        fitter = lse.LseFitter(np.column_stack([N, D]), L)
        theta, objective = fitter._refine(fitter.varpro_start(np.ones(len(L))), np.ones(len(L)))
        multi = fitter.fit(n_refine=8)
    assert objective == pytest.approx(multi.objective, rel=1e-9)
    p = lse.approach3_params(theta)
    for k in ("E", "alpha", "beta"):
        assert abs(p[k] / EPOCH[k] - 1) < 0.01, (k, p[k])
    # the profile's inner step is exact: for the fitted exponents, NNLS gives E, A, B with no worse fit than a nudge
    ss, t = fitter.profile([p["alpha"], p["beta"]])
    nudged = t.copy()
    nudged[0] += 0.01
    cols = lambda th: np.exp(lse._log_pred(th[None, :], fitter.X)[0][0]) / L - 1  # noqa: E731
    assert ss == pytest.approx(float(cols(t) @ cols(t)), rel=1e-6) and ss < float(cols(nudged) @ cols(nudged))
