"""`sweep analyze --csv` on inputs a user may have: many rows (aggregated into weighted bins, faithfully), sizes that
vary continuously (no two runs share one), and FLOP budgets labelled by strings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sweep.analysis.laws import aggregate as agg_mod
from sweep.analysis.laws.aggregate import aggregate
from sweep.analysis.laws.estimate import estimate
from sweep.analysis.laws.approaches import allocation
from sweep.analysis.inputs.sizes import size_clusters
from sweep.analysis.inputs.load import load_csv
from sweep.analysis.main import main, run

LAW = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}  # Hoffmann et al.'s published law
PARAMS = ("E", "A", "B", "alpha", "beta")


def law_loss(N, D):
    return LAW["E"] + LAW["A"] / N ** LAW["alpha"] + LAW["B"] / D ** LAW["beta"]


def synthetic_csv(path: Path, rows: int, seed: int = 0, sizes: int = 0, budgets: int = 6, noise: float = 0.01,
                  labels: bool = True) -> Path:
    """An isoFLOP-style CSV under LAW: per budget (1e17-1e21), N log-uniform within 1.5 decades of its optimum,
    D = C/(6N), 1% lognormal noise. sizes=0: every N drawn afresh (a continuum); K: K sizes per budget, repeated.
    labels: the group column names budgets by strings ("budget-2"), else it is absent and flops is given."""
    rng = np.random.default_rng(seed)
    Cs = np.logspace(17, 21, budgets)
    b = rng.integers(0, budgets, rows)
    al = allocation(LAW)
    n_opt = al["G"] * (Cs[b] / 6) ** al["a"]
    u = rng.uniform(-1.5, 1.5, (budgets, sizes))[b, rng.integers(0, sizes, rows)] if sizes else \
        rng.uniform(-1.5, 1.5, rows)
    N = n_opt * 10**u
    D = Cs[b] / (6 * N)
    df = pd.DataFrame({"n_params": N, "tokens": D, "loss": law_loss(N, D) * np.exp(rng.normal(0, noise, rows))})
    if labels:
        df["group"] = [f"budget-{i}" for i in b]
    else:
        df["flops"] = Cs[b]
    df.to_csv(path, index=False)
    return path


# --------------------------------------------------------------------------------------- continuous sizes
def test_continuous_sizes_are_sizes_and_fitted(tmp_path):
    """No two runs share a size: each is its own (not one chained "size"), and Approaches 2 and 3 are fitted."""
    ds = load_csv(synthetic_csv(tmp_path / "c.csv", 600, seed=1))
    N = ds.runs["N"].to_numpy()
    sizes = size_clusters(N)  # only neighbours within 1% (and 3% end to end) are one size
    assert sizes.max() + 1 > len(N) / 2
    assert max(N[sizes == s].max() / N[sizes == s].min() for s in np.unique(sizes)) < 1.03
    fits = estimate(ds, n_boot=0).to_json()
    assert not fits["aggregation"]["applied"]
    assert len(fits["approach2"]["budgets"]) == 6 and abs(fits["approach2"]["a"] - allocation(LAW)["a"]) < 0.01
    for k in PARAMS:
        assert fits["approach3"][k] == pytest.approx(LAW[k], rel=0.05), k
    assert fits["kaplan"]["skipped"]  # a continuum has no per-size curves to read L(N) from
    h = fits["holdout"]["approach3"]  # the largest "size" of a continuum: the top tenth of its log N range
    assert h["n_test"] > 10 and "held_out_N_min" in h and abs(h["mean_rel_error"]) < 0.01


@pytest.mark.slow
def test_log_binned_budgets_of_a_continuum(tmp_path):
    """Without a group column, FLOPs at a few budgets still form budgets; FLOPs that vary continuously (densely:
    neighbours within 7%, over more than a factor 2) form none, where chaining neighbours made them one budget."""
    ds = load_csv(synthetic_csv(tmp_path / "f.csv", 300, seed=2, labels=False))
    assert ds.budget_basis == "log-binned flops" and len(np.unique(ds.runs["budget"])) == 6
    rng = np.random.default_rng(3)
    N, D = 10 ** rng.uniform(7, 9, 2000), 10 ** rng.uniform(9, 11, 2000)
    pd.DataFrame({"n_params": N, "tokens": D, "loss": law_loss(N, D)}).to_csv(tmp_path / "g.csv", index=False)
    ds = load_csv(tmp_path / "g.csv")
    assert ds.runs["budget"].isna().all() and any("FLOPs vary continuously" in n for n in ds.notes)
    assert estimate(ds, n_boot=0).approach2.skipped


# ------------------------------------------------------------------------------------------ group labels
@pytest.mark.slow
def test_string_group_labels(tmp_path):
    """A group is a budget's label of any type; its budget is the geometric mean of its runs' FLOPs."""
    rows = ["n_params,tokens,loss,group"]
    for label, C in (("small-budget", 1e18), ("mid", 1e19), ("large-budget", 1e20)):
        n_opt = allocation(LAW)["G"] * (C / 6) ** allocation(LAW)["a"]
        for N in n_opt * np.logspace(-0.6, 0.6, 5):
            rows.append(f"{N},{C / (6 * N)},{law_loss(N, C / (6 * N))},{label}")
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    run(csv=path, out=tmp_path / "o", bootstrap=20, wandb_mode="off")
    fits = json.loads((tmp_path / "o" / "fits.json").read_text())
    assert fits["budget_basis"] == "group column"
    assert [b["C"] for b in fits["approach2"]["budgets"]] == pytest.approx([1e18, 1e19, 1e20], rel=1e-9)
    assert abs(fits["approach2"]["a"] - allocation(LAW)["a"]) < 0.02 and "ci" in fits["approach2"]


CLOSE_BUDGETS = """n_params,tokens,loss,group
1.00534e+09,1.42848e+12,2.23111,budget-small
1.83484e+09,7.82148e+11,2.29146,budget-small
3.34876e+09,4.2884e+11,2.15178,budget-small
6.1118e+09,2.34959e+11,2.14275,budget-small
1.11546e+10,1.28745e+11,2.16221,budget-small
2.12511e+08,7.28619e+12,2.39505,budget-1
6.11197e+08,2.53155e+12,2.27322,budget-1
1.75785e+09,8.80468e+11,2.12562,budget-1
5.0557e+09,3.06355e+11,2.14863,budget-1
1.45406e+10,1.06512e+11,2.15298,budget-1
"""  # found by fuzzing small labelled CSVs


@pytest.mark.slow
def test_labels_of_nearly_equal_budgets_do_not_crash(tmp_path):
    """Two labels at nearly the same FLOPs: Approach 2's exponent is absurd (|a| ≈ 30). The recipe used to raise
    OverflowError extrapolating it 1000x; now it is null, with a warning that says why."""
    path = tmp_path / "close.csv"
    path.write_text(CLOSE_BUDGETS)
    assert main(["--csv", str(path), "--out", str(tmp_path / "o"), "--bootstrap", "20", "--wandb", "off"]) == 0
    fits = json.loads((tmp_path / "o" / "fits.json").read_text())
    a2 = fits["approach2"]
    assert len(a2["budgets"]) == 2 and abs(a2["a"]) > 10  # the exponent through two budgets 8% apart
    assert any("span only a factor 1.08" in w for w in fits["warnings"])
    assert fits["recipe"][-1]["N_opt_a2"] is None  # 1000x beyond the data: overflowed, null in fits.json


# ------------------------------------------------------------------------------------------ aggregation
def test_small_inputs_are_not_aggregated(tmp_path):
    ds = load_csv(Path(__file__).parent / "data" / "chinchilla_epoch_240.csv")
    assert aggregate(ds) is ds and ds.aggregation is None


@pytest.mark.slow
def test_aggregated_fit_agrees_with_the_full_fit(tmp_path):
    """2,000 rows fitted one by one and as a few hundred weighted bins (0.16-decade bands): the same law, well within
    its statistical error (at 5,000 rows, with bands of 0.02-0.32 decades, the differences stayed under a quarter of
    the full fit's 95% interval: scripts/bench_analyze.py --compare)."""
    ds = load_csv(synthetic_csv(tmp_path / "m.csv", 2000, seed=4))
    binned = aggregate(ds, above=0, max_bins=400)
    assert 100 < len(binned.runs) <= 400 and binned.runs["weight"].sum() == 2000
    full, agg = estimate(ds, n_boot=0).to_json(), estimate(binned, n_boot=0).to_json()
    for k, tol in (("E", 0.005), ("alpha", 0.005), ("beta", 0.005), ("A", 0.02), ("B", 0.02)):
        assert agg["approach3"][k] == pytest.approx(full["approach3"][k], rel=tol), k
    assert abs(agg["approach2"]["a"] - full["approach2"]["a"]) < 0.003
    for b_full, b_agg in zip(full["approach2"]["budgets"], agg["approach2"]["budgets"], strict=True):
        assert b_agg["N_opt"] == pytest.approx(b_full["N_opt"], rel=0.03)


def test_repeated_sizes_stay_sizes_in_bins(tmp_path):
    """Repeated sizes are binned by size (not by bands of N): each bin holds one size of one budget."""
    ds = load_csv(synthetic_csv(tmp_path / "r.csv", 3000, seed=5, sizes=7))
    binned = aggregate(ds, above=0)
    assert binned.aggregation["key"].startswith("FLOP budget (if any) × model size")
    assert len(binned.runs) == 42 and binned.runs["weight"].sum() == 3000
    sizes = np.unique(ds.runs["N"])
    assert np.allclose(sizes[np.searchsorted(sizes, binned.runs["N"] * (1 - 1e-9))], binned.runs["N"], rtol=1e-12)


@pytest.mark.slow
def test_large_csv_aggregated_and_law_recovered(tmp_path, capsys, monkeypatch):
    """A CSV past the aggregation threshold (lowered here, so that the test stays a few seconds long) is binned,
    says so in fits.json, report.md and on stderr, and recovers the generating law within its interval."""
    monkeypatch.setattr(agg_mod, "AGGREGATE_ABOVE", 4000)
    monkeypatch.setattr(agg_mod, "MAX_BINS", 800)
    path = synthetic_csv(tmp_path / "big.csv", 20_000, seed=6)
    assert main(["--csv", str(path), "--out", str(tmp_path / "o"), "--bootstrap", "60", "--wandb", "off"]) == 0
    fits = json.loads((tmp_path / "o" / "fits.json").read_text())
    a = fits["aggregation"]
    assert a["applied"] and a["runs"] == 20_000 and a["bins"] <= 800 and fits["runs"]["used"] == 20_000
    assert "cluster bootstrap" in fits["bootstrap"]["method"]
    for k in PARAMS:
        lo, hi = fits["approach3"]["ci"][k]
        slack = 0.5 * (hi - lo)  # a 95% interval may miss by chance: allow half its width
        assert lo - slack <= LAW[k] <= hi + slack, (k, lo, hi)
        assert fits["approach3"][k] == pytest.approx(LAW[k], rel=0.03), k
    assert abs(fits["approach2"]["a"] - allocation(LAW)["a"]) < 0.01
    assert "Aggregated input" in (tmp_path / "o" / "report.md").read_text()
    captured = capsys.readouterr()
    assert "aggregated into" in captured.out and "bootstrap: 60/60 resamples" in captured.err
