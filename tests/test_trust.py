"""Issue #11, trustworthy laws: runs that repeat their data (listed, left out unless --include-repeated, and
Muennighoff's effective data fitted when in), the "Can I trust this?" checklist (report.md's opening, fits.json's
`trust`), intervals of zero width never shown as intervals, and a grid too small to fit that still gets a report.

Run directories are written directly in the trainer's format (rundir.py): summary.json, config.yaml (with its
`plan`), metrics.jsonl. wandb is off.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from helpers import HEAD, R_STAR, RULE, repeated_loss as true_loss, write_trust_run as write_run
from sweep.analysis.result.record import Value
from sweep.analysis.result.laws import Allocation, Approach2, Approach3
from sweep.analysis.result.fits import TrustCheck
from sweep.analysis.report.fmt import ci_text
from sweep.analysis.inputs.load import Dataset, load_sweep
from sweep.analysis.main import main, run
from sweep.analysis.laws.repeat import effective_data, split_repeated
from sweep.analysis.report.trust import allocation_interval, checklist, exponent_bounds, isoflop_edges

SIZES = {"gpt-50k": 5e4, "gpt-100k": 1e5, "gpt-200k": 2e5, "gpt-500k": 4e5}
BUDGETS = [1e12, 3e12, 1e13]


def write_grid(root: Path, seed: int = 1, **kw) -> Path:
    """4 sizes × 3 budgets whose sizes bracket each budget's optimum: a clean isoFLOP grid."""
    rng = np.random.default_rng(seed)
    for model, N in SIZES.items():
        for C in BUDGETS:
            write_run(root, f"{model}_f{C:.0e}", N, C, rng, model=model, **kw)
    return root


@pytest.fixture
def no_plots(monkeypatch):
    """These tests are about the checks and the report's text: the plots (tests/test_plots.py) are not drawn."""
    import sweep.analysis.report.plots as plots

    monkeypatch.setattr(plots, "make_plots", lambda ds, fits, out, formats=("png",): plots.PlotSet())


def trust_of(fits: dict) -> dict:
    return {t["check"]: t for t in fits["trust"]}


def section(text: str, title: str) -> str:
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


# ---------------------------------------------------------------------------------------------- repeated data
def write_repeated_grid(root: Path) -> Path:
    """The clean grid and two runs on a corpus they exhaust: 2.5 and 6 passes."""
    write_grid(root)
    rng = np.random.default_rng(7)
    write_run(root, "gpt-100k_f3e12_small", 1e5, 3e12, rng, corpus=3e12 / (6 * 1.2e5) / 2.5, model="gpt-100k")
    write_run(root, "gpt-200k_f1e13_small", 2e5, 1e13, rng, corpus=1e13 / (6 * 2.2e5) / 6, model="gpt-200k")
    return root


def test_repeated_runs_are_listed_and_left_out_by_default(tmp_path, no_plots):
    root = write_repeated_grid(tmp_path / "trust")
    assert main([str(root), "--bootstrap", "0", "--wandb", "off"]) == 0
    out = root / "analysis"
    fits = json.loads((out / "fits.json").read_text())
    text = (out / "report.md").read_text()
    assert fits["runs"]["used"] == 12
    reasons = {e["run_name"]: e["reason"] for e in fits["runs"]["excluded"]}
    assert reasons["gpt-200k_f1e13_small"].startswith("repeats its data: 6 epochs")
    assert "2.5 epochs" in reasons["gpt-100k_f3e12_small"]
    rep = trust_of(fits)["repeated_data"]
    assert rep["ok"] is False and "2 runs repeat their data" in rep["detail"]
    assert "the worst gpt-200k_f1e13_small at 6 epochs" in rep["detail"] and "left out" in rep["detail"]
    listed = section(text, "Repeated data")
    assert "| `gpt-200k_f1e13_small` | 6 |" in listed and "| `gpt-100k_f3e12_small` | 2.5 |" in listed
    assert "left out of the laws" in listed and "repeated_data" not in fits
    # the checklist comes right after the title, the findings first
    assert text.startswith("# Scaling-law analysis: trust\n\n## Can I trust this?\n\n- ✗ 2 runs repeat their data")


@pytest.mark.slow
def test_repeated_runs_are_fitted_with_include_repeated(tmp_path, no_plots):
    root = write_repeated_grid(tmp_path / "trust")
    assert main([str(root), "--bootstrap", "0", "--wandb", "off", "--include-repeated", "--out",
                 str(tmp_path / "with")]) == 0
    fits = json.loads((tmp_path / "with" / "fits.json").read_text())
    text = (tmp_path / "with" / "report.md").read_text()
    assert fits["runs"]["used"] == 14 and not fits["runs"]["excluded"]
    assert "included in the laws (--include-repeated)" in trust_of(fits)["repeated_data"]["detail"]
    assert "**included** in the laws (--include-repeated)" in section(text, "Repeated data")
    eff = fits["repeated_data"]
    assert eff["n_repeated"] == 2 and eff["n_fresh"] == 12 and "R_star" in eff
    assert "**Effective data**" in text and "R* = " in text


def test_effective_data_recovers_a_known_r_star():
    """Muennighoff's R*: the law fitted on fresh runs, R* on the repeated ones, recovered from noisy losses."""
    rng = np.random.default_rng(0)
    rows = []
    for N in (3e4, 1e5, 3e5, 1e6):
        for D in (1e6, 3e6, 1e7, 3e7):
            rows.append((N, D, 1.0))
        for epochs in (2, 4, 8, 16, 32, 64):
            rows.append((N, 1e6 * epochs, float(epochs)))  # 1e6 unique tokens, repeated
    N, D, ep = (np.array(c) for c in zip(*rows))
    loss = true_loss(N, D, ep) * np.exp(rng.normal(0, 0.002, len(N)))
    runs = pd.DataFrame({"run_name": [f"r{i}" for i in range(len(N))], "N": N, "D": D, "C": 6 * N * D, "loss": loss,
                         "budget": np.nan, "epochs": ep})
    pts = runs.assign(run=np.arange(len(runs)))[["run", "N", "D", "C", "loss"]]
    ds = split_repeated(Dataset(runs, pts, "synthetic", "non_embedding", "none"), include=True)
    assert len(ds.repeated) == 24 and ds.repeated[0]["epochs"] == 64 and len(ds.runs) == 40
    eff = effective_data(ds, n_boot=30, seed=0)
    assert eff.n_repeated == 24 and not eff.at_bound
    r_star = eff.R_star.value
    assert abs(np.log(r_star / R_STAR)) < np.log(1.25), r_star
    lo, hi = eff.R_star.ci
    assert lo < r_star < hi and lo < R_STAR < hi and hi / lo < 2
    assert abs(eff.mean_rel_error) < 0.005 < abs(eff.mean_rel_error_as_fresh)  # repetition costs loss
    left_out = split_repeated(Dataset(runs, pts, "synthetic", "non_embedding", "none"))
    assert len(left_out.runs) == 16 and len(left_out.excluded) == 24 and (left_out.points["run"] < 16).all()


def test_every_run_repeated_still_reports(tmp_path):
    """Nothing left to fit: exit 0, the runs are shown, and the report says how to fit them anyway."""
    rng = np.random.default_rng(3)
    root = tmp_path / "trust"
    for model, N in list(SIZES.items())[:3]:
        write_run(root, model, N, 1e12, rng, corpus=1e5, model=model)
    assert main([str(root), "--bootstrap", "0", "--wandb", "off"]) == 0
    fits = json.loads((root / "analysis" / "fits.json").read_text())
    assert fits["runs"]["used"] == 0 and len(fits["runs"]["excluded"]) == 3
    assert "--include-repeated" in trust_of(fits)["enough_data"]["detail"]
    assert (root / "analysis" / "loss_curves.png").exists()


# ----------------------------------------------------------------------------------------- the checklist
@pytest.mark.slow  # two full analyses: the full suite
def test_clean_grid_passes_and_lr_and_eval_findings_are_flagged(tmp_path, no_plots):
    clean = write_grid(tmp_path / "clean")
    run(sweep_dir=clean, bootstrap=0, wandb_mode="off")
    fits = json.loads((clean / "analysis" / "fits.json").read_text())
    checks = trust_of(fits)
    for name in ("enough_data", "repeated_data", "lr_rule", "lr_vs_rule", "val_tokens", "isoflop_edges"):
        assert checks[name]["ok"] is True, checks[name]
    assert checks["allocation_interval"]["ok"] is None and "--bootstrap 0" in checks["allocation_interval"]["detail"]
    text = (clean / "analysis" / "report.md").read_text()
    assert "- ✓ no run repeats its data" in section(text, "Can I trust this?")
    assert "- ✓ every run's final eval used the same 32,768 held-out tokens" in text

    rng = np.random.default_rng(5)
    messy = tmp_path / "messy"
    for model, N in SIZES.items():
        for C in BUDGETS:
            untuned = {**RULE, "name": "porian", "tuned": False, "in_range": False} if model == "gpt-50k" else RULE
            out_of_range = {**RULE, "in_range": False} if model == "gpt-500k" else untuned
            write_run(messy, f"{model}_f{C:.0e}", N, C, rng, model=model, rule=out_of_range,
                      lr_factor=3.0 if model == "gpt-200k" else 1.0, val_tokens=2048 if C == 1e13 else 32768)
    run(sweep_dir=messy, bootstrap=0, wandb_mode="off")
    checks = trust_of(json.loads((messy / "analysis" / "fits.json").read_text()))
    assert checks["lr_rule"]["ok"] is False and "gpt-50k" in checks["lr_rule"]["detail"]
    assert "untuned rule (porian" in checks["lr_rule"]["detail"] and "train.lr_rule=" in checks["lr_rule"]["detail"]
    assert "1 size (gpt-500k) lies outside the sizes the lr rule measured" in checks["lr_rule"]["detail"]
    assert checks["lr_vs_rule"]["ok"] is False and "gpt-200k 3×" in checks["lr_vs_rule"]["detail"]
    assert "gpt-100k" not in checks["lr_vs_rule"]["detail"]
    vt = checks["val_tokens"]
    assert vt["ok"] is False and "2,048 (4 runs), 32,768 (8 runs)" in vt["detail"]


def test_runs_far_from_the_horizon_their_lr_rule_was_measured_at_are_flagged(tmp_path):
    """A rule tuned at 20 tokens/param, runs from ~1 to ~500: those beyond 2× of 20 are named with their range."""
    from sweep.analysis.report.trust import lr_rule

    root = write_grid(tmp_path / "grid", rule={**RULE, "tokens_per_param": 20.0})
    ds = load_sweep(root, "non_embedding")
    tpp = ds.runs["tpp"].to_numpy()
    off = (tpp > 40) | (tpp < 10)
    assert 0 < off.sum() < len(tpp)
    item = lr_rule(ds)
    assert item.ok is False
    assert (f"{off.sum()} runs trained at {tpp[off].min():.3g}–{tpp[off].max():.3g} tokens/param, more than 2× from "
            f"the 20 tokens/param their lr rule was measured at") in item.detail
    wide = write_grid(tmp_path / "wide", rule={**RULE, "tokens_per_param": float(np.sqrt(tpp.min() * tpp.max()))})
    assert lr_rule(load_sweep(wide, "non_embedding")).ok is False  # the grid spans ~500×: no horizon holds it all
    # a rule that never said its horizon (older plans): nothing to compare, the clean-grid test passes it


def test_runs_without_the_new_records_are_not_checked(tmp_path, no_plots):
    """Older run directories (no epochs, lr rule or val_tokens): those checks say so, nothing fails."""
    root = tmp_path / "old"
    rng = np.random.default_rng(2)
    for model, N in SIZES.items():
        for C in BUDGETS:
            d = write_run(root, f"{model}_f{C:.0e}", N, C, rng, model=model, rule=None, val_tokens=None)
            s = json.loads((d / "summary.json").read_text())
            del s["epochs"]
            (d / "summary.json").write_text(json.dumps(s))
            cfg = json.loads((d / "config.yaml").read_text())
            del cfg["plan"]
            (d / "config.yaml").write_text(json.dumps(cfg))
    ds = load_sweep(root, "non_embedding")
    assert ds.runs["epochs"].isna().all() and ds.runs["val_tokens"].isna().all()
    assert (ds.runs["N_matmul"] == ds.runs["N"] + HEAD).all() and ds.runs["lr"].notna().all()
    run(sweep_dir=root, bootstrap=0, wandb_mode="off")
    checks = trust_of(json.loads((root / "analysis" / "fits.json").read_text()))
    for name in ("repeated_data", "lr_rule", "lr_vs_rule", "val_tokens"):
        assert checks[name]["ok"] is None and "not" in checks[name]["detail"], checks[name]


def test_edge_minimum_is_flagged(tmp_path, no_plots):
    """A budget whose sizes all lie below its optimum: its minimum is at the largest size tried."""
    rng = np.random.default_rng(4)
    root = write_grid(tmp_path / "trust")
    for model, N in SIZES.items():
        write_run(root, f"{model}_f1e14", N, 1e14, rng, model=model)
    run(sweep_dir=root, bootstrap=0, wandb_mode="off")
    fits = json.loads((root / "analysis" / "fits.json").read_text())
    edge = trust_of(fits)["isoflop_edges"]
    assert edge["ok"] is False and "of the 4 isoFLOP minima" in edge["detail"], edge
    assert "C = 1e+14" in edge["detail"] and "the largest size 4e+05: add a larger model" in edge["detail"]
    assert "C = 1e+12" not in edge["detail"]


def laws_of(**sections) -> SimpleNamespace:
    """What the checks read of the laws: Approaches 2 and 3, the allocation, the bootstrap (unfitted by default)."""
    return SimpleNamespace(**{"approach3": Approach3(error="not fitted"), "approach2": Approach2(skipped="no budgets"),
                              "allocation": Allocation(error="not fitted"), "bootstrap": SimpleNamespace(n=100),
                              **sections})


def test_wide_allocation_interval_and_bounds_are_flagged():
    fits = laws_of(approach2=Approach2(a=Value(0.6, [0.42, 0.81])), allocation=Allocation(a=Value(0.55, [0.5, 0.6])))
    item = allocation_interval(fits)
    assert item.ok is False and "Approach 2's a = 0.600 [0.420, 0.810]" in item.detail
    assert "cannot tell them apart" in item.detail and "allocation" not in item.detail
    fits.approach2.a.ci = [0.55, 0.65]
    assert allocation_interval(fits).ok is True
    fits.approach2.a.ci = [0.6, 0.6]  # zero width: no interval to judge
    fits.allocation.a.ci = None
    assert allocation_interval(fits).ok is None
    degenerate = laws_of(allocation=Allocation(a=Value(0.09, [0.06, 0.14])),
                         approach3=Approach3(at_bound=["e"], negligible=[]))
    item = allocation_interval(degenerate)  # a degenerate law's allocation says nothing, even with an interval
    assert item.ok is None and "Approach 3 degenerate" in item.detail
    item = exponent_bounds(laws_of(approach3=Approach3(at_bound=["alpha1"], negligible=["a0"])))
    assert item.ok is False and "β sits at its bound" in item.detail and "A/N^α is negligible" in item.detail
    assert exponent_bounds(laws_of(approach3=Approach3(error="too few"))).ok is None
    assert isoflop_edges(None, laws_of(approach2=Approach2(skipped="not a grid"))).ok is None
    lines = checklist([TrustCheck(check="x", ok=True, detail="fine"), TrustCheck(check="y", ok=False, detail="bad"),
                       TrustCheck(check="z", ok=None, detail="unknown")])
    assert lines == ["- ✗ bad", "- ✓ fine", "- – unknown"]


@pytest.mark.slow
def test_chinchilla_csv_checklist(tmp_path, no_plots, monkeypatch):
    monkeypatch.chdir(tmp_path)
    csv = Path(__file__).parent / "data" / "chinchilla_epoch_240.csv"
    assert main(["--csv", str(csv), "--bootstrap", "0", "--wandb", "off"]) == 0
    out = tmp_path / "analysis-chinchilla_epoch_240"
    checks = trust_of(json.loads((out / "fits.json").read_text()))
    assert checks["enough_data"]["ok"] is True and checks["exponent_bounds"]["ok"] is True
    assert checks["repeated_data"]["ok"] is None  # a CSV without an epochs column
    lines = section((out / "report.md").read_text(), "Can I trust this?")
    assert "- ✓ 41 model sizes, 240 runs: enough for Approach 3" in lines
    assert "- ✓ no parameter of Approach 3 is at a bound" in lines
    assert len([x for x in lines.splitlines() if x.startswith("- ")]) == len(checks) == 9  # the 9th: seeds
    assert checks["seeds"]["ok"] is None  # one row per run: no seeds, and no isoFLOP a whose interval is judged


# ------------------------------------------------------------------------------------------------ intervals
def test_zero_width_interval_is_never_printed_as_one(tmp_path):
    assert ci_text(0.5, [0.5, 0.5], "{:.3f}") == "0.500 (no interval: every resample gave this value)"
    assert ci_text(0.5, [0.4, 0.6], "{:.3f}") == "0.500 [0.400, 0.600]"
    assert ci_text(0.5, None, "{:.3f}", "--bootstrap 0") == "0.500 (no interval: --bootstrap 0)"
    from sweep.analysis.laws.estimate import estimate
    from sweep.analysis.result.fits import Fits
    from sweep.analysis.report.markdown import write_report

    root = write_grid(tmp_path / "trust")
    ds = load_sweep(root, "non_embedding")
    fits = Fits.assemble(estimate(ds, n_boot=0), trust=[])
    # Approach 1 only from where schedules ended: every envelope point is some run's final point, none mid-curve
    assert ds.has_curves and fits.approach1.envelope
    assert {(r.C, r.N_opt) for r in fits.approach1.envelope} <= set(zip(ds.runs["C"], ds.runs["N"]))
    alpha = fits.approach3.alpha.value
    fits.approach3.alpha.ci, fits.approach3.beta.ci = [alpha, alpha], [0.2, 0.4]
    text = write_report(ds, fits, {}, tmp_path).read_text()
    assert f"{alpha:.4g} (no interval: every resample gave this value)" in text
    assert f"[{alpha:.4g}, {alpha:.4g}]" not in text and "[0.2, 0.4]" in text
    assert f"| {fits.approach3.E.value:.4g} | " in text  # --bootstrap 0: said once, in the opening
    # one FLOP convention per table: these runs count their own FLOPs (not 6ND), so the recipe is in theirs and
    # Approach 3's closed form under 6ND stands in a table of its own
    recipe = section(text, "Compute-optimal recipe (N counted as non_embedding)")
    assert "| C (FLOPs as the runs counted them) | N* (A3) |" in recipe
    assert "| C (FLOPs, = 6·N·D) | N* (A3) | D* (A3) | tokens/param (A3) |" in recipe
    # a degenerate Approach 3: no recipe table, and why
    fits.approach3.at_bound = ["alpha1"]
    text = write_report(ds, fits, {}, tmp_path).read_text()
    recipe = section(text, "Compute-optimal recipe (N counted as non_embedding)")
    assert "Not given: Approach 3 is degenerate (alpha1 at its bound" in recipe and "| C (FLOPs" not in recipe
    assert "Compute-optimal allocation: not given, as Approach 3 is degenerate (alpha1 at its bound)" in text
    assert "a = β/(α+β) =" not in text


# ------------------------------------------------------------------------------------------ too small a grid
@pytest.mark.slow  # a full analysis with plots: the full suite
def test_too_small_grid_reports_what_is_missing(tmp_path, capsys):
    rng = np.random.default_rng(6)
    root = tmp_path / "tiny"
    write_run(root, "gpt-25k_f1e12", 2.5e4, 1e12, rng, model="gpt-25k")
    write_run(root, "gpt-50k_f1e12", 5e4, 1e12, rng, model="gpt-50k")
    write_run(root, "gpt-50k_f3e12", 5e4, 3e12, rng, model="gpt-50k")
    assert main([str(root), "--bootstrap", "0", "--wandb", "off"]) == 0
    printed = capsys.readouterr().out
    assert "Approach 3  not fitted: Approach 3 needs ≥ 3 model sizes and ≥ 6 runs" in printed
    out = root / "analysis"
    assert (out / "loss_curves.png").stat().st_size > 10_000
    fits = json.loads((out / "fits.json").read_text())
    assert fits["approach3"] == {"error": "Approach 3 needs ≥ 3 model sizes and ≥ 6 runs: this sweep has 2 sizes, "
                                          "3 runs"}
    assert fits["approach1"]["envelope"] is not None and "skipped" in fits["approach2"]
    text = (out / "report.md").read_text()
    missing = section(text, "What is missing")
    assert "this sweep has 2 sizes, 3 runs; add 1 or more model sizes (e.g. model=gpt-25k,gpt-50k,gpt-70k" in missing
    assert "train 3 or more further runs" in missing and "Approach 2 (isoFLOP curves) needs" in missing
    runs = section(text, "Runs")
    assert all(f"`{n}`" in runs for n in ("gpt-25k_f1e12", "gpt-50k_f1e12", "gpt-50k_f3e12"))
    assert "](loss_curves.png)" in text and "## The laws" not in text
