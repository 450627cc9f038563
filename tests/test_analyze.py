"""`sweep analyze` end to end on a synthetic sweep directory in the trainer's format, bad CSVs, wandb offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers import BUDGETS, HEAD, true_loss, true_optimum, write_run, write_sweep
from sweep.analysis.inputs.load import AnalysisError, load_sweep
from sweep.analysis.main import main, run

@pytest.fixture(scope="module")
def analysed(tmp_path_factory):  # a few seconds: the tests that use it are marked slow
    root = write_sweep(tmp_path_factory.mktemp("sweep") / "synth")
    report = run(sweep_dir=root, bootstrap=60, wandb_mode="auto")
    return root, report


@pytest.mark.slow
def test_end_to_end_outputs(analysed):
    root, report = analysed
    out = root / "analysis"
    assert report == out / "report.md"
    fits = json.loads((out / "fits.json").read_text())
    for key in ("E", "A", "B", "alpha", "beta", "ci"):
        assert key in fits["approach3"]
    assert {"a", "b", "budgets", "ci"} <= set(fits["approach2"])
    assert len(fits["approach2"]["budgets"]) == 3
    assert {"a", "b", "envelope"} <= set(fits["approach1"])
    assert {"G", "a", "b"} <= set(fits["allocation"])
    assert fits["params"] == "non_embedding"
    assert fits["runs"]["used"] == 12
    assert fits["holdout"]["approach3"]["n_test"] == 3
    assert abs(fits["holdout"]["approach3"]["mean_rel_error"]) < 0.02
    assert fits["recipe"] and "warnings" in fits
    assert fits["kaplan"]["skipped"]  # an isoFLOP grid: no tokens/param shared by 3 sizes
    assert fits["wandb"] == {"mode": "off"}  # the runs logged with logger=none
    # Approach 2 recovers each budget's true optimum, and the exponent of N*(C) (under the runs' FLOPs/token)
    for row in fits["approach2"]["budgets"]:
        assert abs(np.log(row["N_opt"] / true_optimum(row["C"]))) < 0.15, row
    true_a = np.polyfit(np.log(BUDGETS), np.log([true_optimum(c) for c in BUDGETS]), 1)[0]
    lo, hi = fits["approach2"]["ci"]["a"]
    assert abs(fits["approach2"]["a"] - true_a) < 0.05 and lo - 0.02 < true_a < hi + 0.02
    reasons = {e["run_name"]: e["reason"] for e in fits["runs"]["excluded"]}
    assert set(reasons) == {"gpt-8e5_f1e13_s0", "gpt-2e4_f1e12_s0"}
    text = report.read_text()
    assert "gpt-8e5_f1e13_s0" in text and "gpt-2e4_f1e12_s0" in text and "loss became NaN" in text
    assert "non_embedding" in text
    for name in ("isoflop", "fit_nd", "compute_optimal", "loss_curves"):
        png = out / f"{name}.png"
        assert png.stat().st_size > 20_000, name
        assert f"]({name}.png)" in text
        from matplotlib.image import imread

        assert imread(png).std() > 0.05  # not a blank canvas


@pytest.mark.slow
def test_params_convention_changes_n(analysed, tmp_path):
    root, _ = analysed
    report = run(sweep_dir=root, out=tmp_path, params="total", bootstrap=0, wandb_mode="off")
    fits = json.loads((tmp_path / "fits.json").read_text())
    assert fits["params"] == "total" and "**total**" in report.read_text()
    assert fits["approach3"].get("ci") is None  # no bootstrap asked for


@pytest.mark.slow
def test_main_prints_summary(analysed, tmp_path, capsys):
    root, _ = analysed
    assert main([str(root), "--out", str(tmp_path), "--bootstrap", "20", "--wandb", "off"]) == 0
    out = capsys.readouterr().out
    assert "Approach 3" in out and "alpha=" in out and "Approach 2" in out and "report:" in out


@pytest.mark.slow
def test_ladder_sweep_fits_l_of_n(tmp_path):
    """A ladder (train.tokens_per_param set, no FLOP budgets): L(N) at that tokens/param, no Approach 2."""
    rng = np.random.default_rng(2)
    root = tmp_path / "ladder"
    for N in (3e4, 1e5, 3e5, 1e6, 3e6):
        d = write_run(root, f"gpt-{N:.0e}_tpp20_s0", N, 20 * N * 6 * (N + HEAD), rng)
        cfg = (d / "config.yaml").read_text().replace("tokens_per_param: null", "tokens_per_param: 20")
        (d / "config.yaml").write_text(cfg)
        summary = json.loads((d / "summary.json").read_text())
        (d / "summary.json").write_text(json.dumps({**summary, "flops_budget": None}))
    run(sweep_dir=root, bootstrap=40, wandb_mode="off")
    fits = json.loads((root / "analysis" / "fits.json").read_text())
    (ln,) = fits["kaplan"]["fits"]
    assert ln["key"] == "tokens/param 20" and ln["n_sizes"] == 5 and "ci" in ln
    n = np.array([3e4, 1e5, 3e5, 1e6, 3e6])  # the fitted L(N) follows the true loss along the ladder
    pred = ln["E"] + ln["A"] / n ** ln["alpha"]
    assert np.allclose(pred, true_loss(n, 20 * n), rtol=0.01)
    assert fits["holdout"]["kaplan"]["n_test"] == 1 and "skipped" in fits["approach2"]


@pytest.mark.slow
def test_non_finite_values_never_reach_a_fit(tmp_path):
    """Summaries with val_loss null or an old trainer's 1e308 (its inf), eval events with val_loss 1e308, null or NaN
    and flops inf: the runs are excluded with their reason, the points left out (and counted), the fits finite."""
    root = write_sweep(tmp_path / "synth")
    rng = np.random.default_rng(3)
    for name, val_loss in (("gpt-3e+05_f3e+12_s0", None), ("gpt-6e+05_f3e+12_s0", 1e308)):
        d = write_run(root, name, float(name[4:9]), 3e12, rng)
        summary = json.loads((d / "summary.json").read_text())
        (d / "summary.json").write_text(json.dumps({**summary, "val_loss": val_loss}))
    tainted = root / "gpt-1e+05_f3e+12_s0"
    last = json.loads((tainted / "metrics.jsonl").read_text().splitlines()[-1])
    with open(tainted / "metrics.jsonl", "a") as f:
        for bad in ({"val_loss": 1e308}, {"val_loss": None}, {"val_loss": float("nan")}, {"flops": float("inf")}):
            f.write(json.dumps({**last, "step": last["step"] + 1, **bad}) + "\n")  # NaN, Infinity: as json writes
    report = run(sweep_dir=root, bootstrap=0, wandb_mode="off")

    text = (root / "analysis" / "fits.json").read_text()
    fits = json.loads(text, parse_constant=lambda c: pytest.fail(f"fits.json holds {c}"))
    reasons = {e["run_name"]: e["reason"] for e in fits["runs"]["excluded"]}
    assert reasons["gpt-3e+05_f3e+12_s0"] == "summary.json has a non-finite val_loss (null)"
    assert reasons["gpt-6e+05_f3e+12_s0"] == "summary.json has a non-finite val_loss (1e+308)"
    assert fits["runs"]["used"] == 12 and "gpt-1e+05_f3e+12_s0" in fits["runs"]["names"]
    assert any("gpt-1e+05_f3e+12_s0: 4 eval point(s) with a non-finite value" in w for w in fits["warnings"])
    assert "a non-finite val_loss (null)" in report.read_text()
    assert all(row["L"] < 10 for row in fits["approach1"]["envelope"])
    # the fitted points: every eval of the tainted run but the four bad ones, all finite
    ds = load_sweep(root, "non_embedding")
    pts = ds.points[ds.points["run"] == ds.runs.index[ds.runs["run_name"] == "gpt-1e+05_f3e+12_s0"][0]]
    assert len(pts) == 8 and pts["loss"].max() < 10
    assert np.isfinite(ds.points[["N", "D", "C", "loss"]].to_numpy()).all() and ds.points["loss"].max() < 10


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


GOOD = "n_params,tokens,loss\n" + "".join(f"{n},{d},{true_loss(n, d):.4f}\n" for n in (1e6, 2e6, 4e6)
                                          for d in (1e8, 3e8))


@pytest.mark.parametrize("text, needle", [
    ("n_params,loss\n1,2\n", "no column 'tokens'"),
    ("n_params,tokens,loss\n", "no rows"),
    (GOOD.replace("\n2000000.0,100000000.0,", "\n2000000.0,-5,", 1), "column 'tokens'"),
    (GOOD + "1e6,1e8,nan\n", "column 'loss'"),
    (GOOD + "0,1e8,3.0\n", "row 7 (line 8), column 'n_params'"),
    ("n_params,tokens,loss\n" + "".join(f"1e6,{d},3.{i}\n" for i, d in enumerate((1e8, 2e8, 4e8, 8e8, 9e8))),
     "one model size"),
])
def test_bad_csv_errors(tmp_path, text, needle):
    path = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(AnalysisError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        run(csv=path, out=tmp_path / "o", bootstrap=0)


def test_unreadable_inputs(tmp_path, capsys):
    with pytest.raises(AnalysisError, match="cannot read CSV"):
        run(csv=tmp_path / "missing.csv", bootstrap=0)
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x01garbage\x00")
    with pytest.raises(AnalysisError):
        run(csv=tmp_path / "bin.csv", bootstrap=0)
    empty = tmp_path / "empty_sweep"
    empty.mkdir()
    with pytest.raises(AnalysisError, match="no completed runs"):
        run(sweep_dir=empty, bootstrap=0)
    # main turns it into one line on stderr and exit code 2
    assert main(["--csv", str(tmp_path / "missing.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sweep analyze: cannot read CSV")


@pytest.mark.slow
def test_csv_with_groups(tmp_path):
    rows = ["n_params,tokens,loss,group"]
    for C in (1e15, 1e16):
        for N in (1e5, 3e5, 1e6, 3e6):
            D = C / (6 * N)
            rows.append(f"{N},{D},{true_loss(N, D):.5f},C{C:.0e}")
    report = run(csv=write_csv(tmp_path / "g.csv", "\n".join(rows) + "\n"), out=tmp_path / "o", bootstrap=0)
    fits = json.loads((tmp_path / "o" / "fits.json").read_text())
    assert fits["budget_basis"] == "group column" and len(fits["approach2"]["budgets"]) == 2
    assert report.exists()


@pytest.mark.slow
def test_wandb_offline_analysis_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    root = write_sweep(tmp_path / "synth", wandb=True)  # runs logged with logger=wandb → auto means offline
    run(sweep_dir=root, bootstrap=0)
    fits = json.loads((root / "analysis" / "fits.json").read_text())
    assert fits["wandb"]["mode"] == "offline" and "error" not in fits["wandb"], fits["wandb"]
    import wandb

    wandb.teardown()  # what process exit does: wandb's service may still be writing the run file after finish()
    runs = list((root / "analysis" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    from helpers import run_record, summary_keys

    from sweep.config.naming import study_group

    analysis = run_record(runs[0])
    data = json.loads(next(root.glob("*/summary.json")).read_text()).get("data") or "data"
    # In its study's group: the one its training runs computed for this sweep directory.
    assert (analysis.run_group, analysis.job_type) == (study_group("synth", data, root), "analysis")
    assert "approach3/alpha" in summary_keys(runs[0])  # the fitted values are in its summary
    assert len(list(runs[0].glob("files/media/images/**/*.png"))) >= 3


@pytest.mark.slow  # 8 plots × 3 formats
def test_csv_output_goes_to_the_working_directory_in_every_format_asked(tmp_path, monkeypatch):
    from sweep.analysis.main import main

    source = tmp_path / "inputs" / "runs.csv"
    source.parent.mkdir()
    source.write_text((Path(__file__).parent / "data" / "chinchilla_epoch_240.csv").read_text())
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["--csv", str(source), "--bootstrap", "0", "--wandb", "off", "--format", "svg,pdf"]) == 0
    out = work / "analysis-runs"
    assert (out / "report.md").exists() and sorted(p.name for p in source.parent.iterdir()) == ["runs.csv"]
    for name in ("isoflop", "fit_nd"):
        assert all((out / f"{name}.{fmt}").stat().st_size > 1000 for fmt in ("png", "svg", "pdf"))
    assert main(["--csv", str(source), "--format", "gif"]) == 2  # refused before any work
