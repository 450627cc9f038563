"""`sweep compare`: synthetic CSV sweeps drawn from known Chinchilla laws (a known difference in α resolved, none
where the laws are the same), the Chinchilla CSV against itself, and the command's outputs and input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sweep.analysis.compare import compare, fit_input, labels_of, load_inputs, report_text
from sweep.cli import main as cli_main
from helpers import write_sweep

CHINCHILLA = Path(__file__).parent / "data" / "chinchilla_epoch_240.csv"
LAW = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
SIZES = np.logspace(7, 9, 7)
BUDGETS = np.logspace(17, 20, 4)


def write_csv(path: Path, alpha: float, seed: int, noise: float = 0.002, sizes=SIZES, budgets=BUDGETS) -> Path:
    """An isoFLOP grid (every size at every budget, tokens = C / 6N) with loss from the law with this α, times
    log-normal noise."""
    rng = np.random.default_rng(seed)
    rows = ["n_params,tokens,loss,flops,group"]
    for C in budgets:
        for N in sizes:
            D = C / (6 * N)
            loss = LAW["E"] + LAW["A"] / N**alpha + LAW["B"] / D ** LAW["beta"]
            rows.append(f"{N},{D},{loss * np.exp(rng.normal(0, noise))},{C},{C:.0e}")
    path.write_text("\n".join(rows) + "\n")
    return path


def compared(paths: list[Path], n_boot: int) -> dict:
    """compare.json's laws for these inputs (the fits and differences, without plots or files)."""
    return compare([fit_input(*each, n_boot, seed) for seed, each in enumerate(load_inputs(paths, "non_embedding"))])


@pytest.mark.slow
def test_a_known_difference_in_alpha_is_resolved(tmp_path):
    low, high = write_csv(tmp_path / "low.csv", 0.34, seed=1), write_csv(tmp_path / "high.csv", 0.45, seed=2)
    laws = compared([low, high], n_boot=30)
    d = laws["approach3"]["differences"]["high"]["alpha"]
    lo, hi = d["ci"]
    assert lo <= 0.11 <= hi and lo > 0 and d["excludes_zero"]
    assert abs(d["value"] - 0.11) < 0.03
    beta = laws["approach3"]["differences"]["high"]["beta"]
    assert beta["ci"][0] <= 0 <= beta["ci"][1]  # same β in both laws
    text = report_text({"inputs": [{"label": "low", "path": str(low), "runs": 28},
                                   {"label": "high", "path": str(high), "runs": 28}],
                        "params": "non_embedding", "bootstrap": {"n": 30, "seed": 0}, "laws": laws}, {})
    assert "- α differs: +0.1" in text and "higher in high than in low" in text
    assert "- β: no clear difference" in text


@pytest.mark.slow
def test_the_same_law_twice_gives_an_interval_around_zero(tmp_path):
    one, two = write_csv(tmp_path / "one.csv", 0.34, seed=3), write_csv(tmp_path / "two.csv", 0.34, seed=4)
    diffs = compared([one, two], n_boot=30)["approach3"]["differences"]["two"]
    for name in ("alpha", "beta"):
        lo, hi = diffs[name]["ci"]
        assert lo <= 0 <= hi and not diffs[name]["excludes_zero"], (name, diffs[name])


@pytest.mark.slow
def test_chinchilla_against_itself():
    laws = compared([CHINCHILLA, CHINCHILLA], n_boot=20)
    assert len({label for entry in laws.values() for label in entry["inputs"]}) == 2  # one name, disambiguated
    compared_quantities = 0
    for entry in laws.values():
        for diffs in entry["differences"].values():
            for d in diffs.values():
                assert d["value"] == 0.0  # the full-data fits are the same fit
                assert d["ci"] is None or d["ci"][0] <= 0 <= d["ci"][1]
                compared_quantities += 1
    assert compared_quantities >= 4  # Approach 3's α, β and its allocation's a, b at least


@pytest.mark.slow
def test_cli_writes_report_json_and_plots(tmp_path, capsys):
    small = {"sizes": SIZES[::2], "budgets": BUDGETS[1:]}  # 12 runs each: enough for every law, and quick
    a, b = write_csv(tmp_path / "a.csv", 0.34, seed=5, **small), write_csv(tmp_path / "b.csv", 0.40, seed=6, **small)
    out = tmp_path / "cmp"
    assert cli_main(["compare", str(a), str(b), "--out", str(out), "--bootstrap", "20", "--seed", "3"]) == 0
    result = json.loads((out / "compare.json").read_text())
    assert [i["label"] for i in result["inputs"]] == ["a", "b"] and result["bootstrap"]["seed"] == 3
    assert {"approach3", "allocation", "approach2", "approach1", "kaplan"} <= set(result["laws"])
    assert "a" in result["laws"]["approach2"]["differences"]["b"]  # the isoFLOP budgets give Approach 2
    text = (out / "compare.md").read_text()
    for name in ("compare_fit_nd", "compare_optimal", "compare_exponents"):
        from matplotlib.image import imread

        png = out / f"{name}.png"
        assert f"]({name}.png)" in text
        assert imread(png).std() > 0.05  # not a blank canvas
    assert str(out / "compare.md") in capsys.readouterr().out


@pytest.mark.slow
def test_a_sweep_directory_against_a_csv(tmp_path):
    sweep = write_sweep(tmp_path / "synth")
    laws = compared([sweep, write_csv(tmp_path / "grid.csv", 0.34, seed=8)], n_boot=20)
    assert set(laws["approach3"]["inputs"]) == {"synth", "grid"}
    assert laws["approach3"]["inputs"]["synth"]["alpha"]["value"] > 0
    assert set(laws["approach3"]["differences"]["grid"]) == {"alpha", "beta"}
    assert "a" in laws["approach2"]["differences"]["grid"]  # both have FLOP budgets


@pytest.mark.parametrize("case", ["missing", "one", "bad_csv", "not_a_sweep"])
def test_cli_refuses_bad_input_and_writes_nothing(tmp_path, capsys, case):
    good = write_csv(tmp_path / "good.csv", 0.34, seed=7)
    bad = tmp_path / "bad.csv"
    bad.write_text("size,tokens,loss\n1e7,1e9,3.0\n")
    argv = {"missing": [str(good), str(tmp_path / "nowhere")], "one": [str(good)],
            "bad_csv": [str(good), str(bad)], "not_a_sweep": [str(good), str(tmp_path)]}[case]
    out = tmp_path / "out"
    assert cli_main(["compare", *argv, "--out", str(out), "--bootstrap", "20"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sweep compare:") and "\n" not in err
    assert not out.exists()


def test_labels_are_unique(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a, b = write_csv(tmp_path / "x" / "s.csv", 0.34, 0), write_csv(tmp_path / "y" / "s.csv", 0.34, 0)
    assert labels_of([a, b]) == ["x/s", "y/s"]
    assert labels_of([a, a]) == ["x/s#1", "x/s#2"]


def test_a_zero_width_interval_is_never_printed_as_one():
    from sweep.analysis.compare import value_text

    text = value_text({"value": 3.06e-07, "ci": [3.06e-07, 3.06e-07]})
    assert text == "3.06e-07 (no interval: every resample gave this value)"
    assert value_text({"value": 0.5, "ci": [0.4, 0.6]}) == "0.5 [0.4, 0.6]"
