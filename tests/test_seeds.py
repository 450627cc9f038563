"""Seeds: train.seed (initialisation) and data.seed (order) apart, sweep.seeds as a grid's replicates, and the
analysis fitting cell means with a bootstrap that resamples each cell's seeds."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import helpers
from helpers import BUDGETS, HEAD, SIZES, TRUE, local_overrides, run_cell, true_loss


# ------------------------------------------------------------------------------------------------- config
def test_train_and_data_seeds_follow_seed_unless_set():
    from sweep.config import compose

    run = compose(["seed=3"])
    assert (run.init_seed, run.order_seed) == (3, 3)
    run = compose(["seed=3", "train.seed=5", "data.seed=7"])
    assert (run.init_seed, run.order_seed) == (5, 7)


@pytest.mark.parametrize("override, match", [
    ("train.seed=-1", "train.seed=-1 must be a non-negative integer"),
    ("data.seed=1.5", "data.seed"),
    ("sweep.seeds=[0,1,0]", "lists seed 0 more than once"),
    ("sweep.seeds=[a]", "sweep.seeds"),
])
def test_bad_seeds_are_refused_at_composition(override, match):
    from sweep.config import ConfigError, compose

    with pytest.raises(ConfigError, match=match):
        compose([override])


@pytest.mark.slow
def test_sweep_seeds_add_the_seed_axis_to_a_grid(tmp_path):
    from sweep.grid_plan import plan_grid

    grid = plan_grid(["-m", "sweep=cpu", f"out_dir={tmp_path}", "model=gpt-3k,gpt-6k", "train.flops=1e11",
                      "sweep.seeds=[0,1,2]"])
    trained = [c.name for c in grid.planned if not c.skipped]
    assert sorted(trained) == sorted(f"gpt-{m}_f1e11_s{s}" for m in ("3k", "6k") for s in (0, 1, 2))
    assert "seed=0,1,2" in grid.argv and "seed" in grid.keys  # Hydra launches the same cells
    assert not tmp_path.joinpath("cpu").exists()  # planning writes nothing


def test_sweep_seeds_and_a_seed_sweep_together_are_refused(tmp_path):
    from sweep.config import ConfigError
    from sweep.grid_plan import plan_grid

    with pytest.raises(ConfigError, match="both set the seeds"):
        plan_grid(["-m", "sweep=cpu", f"out_dir={tmp_path}", "model=gpt-3k", "train.flops=1e11", "seed=0,1",
                   "sweep.seeds=[0,1]"])


def test_the_seed_list_is_checked_before_any_cell(tmp_path):
    from sweep.config import ConfigError
    from sweep.grid_plan import plan_grid

    with pytest.raises(ConfigError, match="more than once"):
        plan_grid(["-m", "sweep=cpu", f"out_dir={tmp_path}", "model=gpt-3k", "sweep.seeds=[1,1]"])


# ----------------------------------------------------------------------------------------------- training
def _evals(run_dir):
    return [e["val_loss"] for e in helpers.read_metrics(run_dir) if "val_loss" in e]


@pytest.mark.slow
def test_data_seed_changes_the_order_not_the_initialisation(tmp_path, corpus):
    """At an lr too small to move the weights, the evals show the initialisation: the same under another data.seed,
    another under another train.seed. At the usual lr, another data.seed is another run."""
    from sweep.config import compose

    def evals(name, *extra):
        base = ["train.tokens=8192", "train.eval_every=4", "train.dtype=float32"]
        return run_cell(compose(local_overrides(tmp_path / name, corpus, *base, *extra)))

    frozen = "train.lr=1e-12"
    a = _evals(evals("a", frozen)[1])
    b = _evals(evals("b", frozen, "data.seed=1")[1])
    c = _evals(evals("c", frozen, "train.seed=1")[1])
    assert a == pytest.approx(b, abs=1e-6) and abs(a[-1] - c[-1]) > 1e-3
    moving_a, moving_b = evals("d")[0], evals("e", "data.seed=1")[0]
    assert abs(moving_a["val_loss"] - moving_b["val_loss"]) > 1e-4
    assert (moving_b["init_seed"], moving_b["order_seed"]) == (0, 1)


def test_relaunch_compares_the_seeds_a_run_resolved(tmp_path, corpus):
    """A run trained with train.seed=auto (= seed 0) is the same cell as train.seed=0; train.seed=1 is another."""
    from sweep import rundir
    from sweep.config import compose

    args = local_overrides(tmp_path, corpus, "train.tokens=4096", "run_name=r")
    _, run_dir = run_cell(compose(args))
    saved = rundir.read_config(run_dir)
    rundir.check_same_cell(compose([*args, "train.seed=0"]), run_dir, saved)
    with pytest.raises(rundir.OtherSettings, match="train.seed: 0 there, 1 now"):
        rundir.check_same_cell(compose([*args, "train.seed=1"]), run_dir, saved)


# ----------------------------------------------------------------------------------------------- analysis
def _seeded_csv(path, delta: float, seeds: int = 2):
    """Chinchilla-law cells (helpers.TRUE, FLOPs 6(N + HEAD)D), each trained `seeds` times with losses spread
    ±delta (in log) symmetrically about the law: the cell means sit on the law, the seeds do not."""
    rows = []
    for N in SIZES + [8e5]:
        for C in BUDGETS:
            D = C / (6 * (N + HEAD))
            offsets = np.linspace(-delta, delta, seeds) if seeds > 1 else [0.0]
            rows += [{"n_params": N, "tokens": D, "flops": C, "group": C, "seed": s,
                      "loss": true_loss(N, D) * np.exp(o)} for s, o in enumerate(offsets)]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_seed_means_make_one_row_per_cell(tmp_path):
    from sweep.analysis.inputs.load import load_csv
    from sweep.analysis.inputs.replicates import seed_means

    ds = seed_means(load_csv(_seeded_csv(tmp_path / "s.csv", 0.02, seeds=3)))
    assert len(ds.runs) == 15 and (ds.runs["n_seeds"] == 3).all()
    expected = [true_loss(N, C / (6 * (N + HEAD))) for N in SIZES + [8e5] for C in BUDGETS]
    np.testing.assert_allclose(ds.runs["loss"], np.array(expected) * np.mean(np.exp([-0.02, 0, 0.02])), rtol=1e-12)
    assert ds.replicates.counts.tolist() == [3] * 15


def test_a_sweep_s_seeds_are_cells_by_name(tmp_path):
    from sweep.analysis.inputs.load import load_sweep
    from sweep.analysis.inputs.replicates import seed_means

    rng = np.random.default_rng(0)
    for N in SIZES:
        for seed in (0, 1):
            helpers.write_run(tmp_path, f"gpt-{N:.0e}_f1e12_s{seed}", N, 1e12, rng, seed=seed, noise=0.01)
    loaded = load_sweep(tmp_path, "non_embedding")
    ds = seed_means(loaded)
    assert sorted(ds.runs["run_name"]) == sorted(f"gpt-{N:.0e}_f1e12" for N in SIZES)
    for name, mean in zip(ds.runs["run_name"], ds.runs["loss"]):
        seeds = loaded.runs[loaded.runs["run_name"].str.startswith(name + "_s")]["loss"]
        assert mean == pytest.approx(seeds.mean()) and len(seeds) == 2
    # eval curves of one cell share their points: averaged
    assert ds.points.groupby("run").size().tolist() == [8] * len(SIZES)


def test_one_seed_per_cell_leaves_the_dataset_as_it_was(tmp_path):
    from sweep.analysis.inputs.load import load_csv
    from sweep.analysis.inputs.replicates import seed_means

    ds = load_csv(_seeded_csv(tmp_path / "s.csv", 0.0, seeds=1))
    assert seed_means(ds) is ds


def test_the_laws_fit_cell_means_one_cell_counting_once(tmp_path):
    """Cell means exactly on the law: Approach 3 recovers it. More seeds in one cell, with the same mean, leave every
    fit as it was (a cell counts once), and the bootstrap resamples cells, each with its seeds."""
    from sweep.analysis.inputs.load import load_csv
    from sweep.analysis.inputs.replicates import seed_means
    from sweep.analysis.laws.estimate import estimate

    path = _seeded_csv(tmp_path / "s.csv", 0.03)
    two = estimate(seed_means(load_csv(path)), n_boot=30)
    for k in ("alpha", "beta"):
        assert getattr(two.approach3, k).value == pytest.approx(TRUE[k], rel=0.02)
    rows = pd.read_csv(path)
    first = rows[(rows["n_params"] == SIZES[0]) & (rows["group"] == BUDGETS[0])]
    more = pd.concat([rows, first.assign(seed=first["seed"] + 10), first.assign(seed=first["seed"] + 20)])
    more.to_csv(tmp_path / "more.csv", index=False)
    six = estimate(seed_means(load_csv(tmp_path / "more.csv")), n_boot=30)
    assert six.approach3.alpha.value == pytest.approx(two.approach3.alpha.value, rel=1e-6)
    assert six.approach2.a.value == pytest.approx(two.approach2.a.value, rel=1e-9)
    assert six.approach2.a.ci == pytest.approx(two.approach2.a.ci, rel=1e-9)
    assert "resampled with all its seeds (a cluster bootstrap)" in two.bootstrap.method
    s = two.seeds
    assert (s.cells, s.runs, s.seeds_min, s.seeds_max) == (15, 30, 2, 2)
    assert six.seeds.seeds_max == 6
    # antithetic seeds ±3% about the law: sd of two values a·e^±δ is a·sinh(δ)·√2
    losses = [true_loss(N, C / (6 * (N + HEAD))) for N in SIZES + [8e5] for C in BUDGETS]
    assert s.sd == pytest.approx(np.sqrt(np.mean((np.array(losses) * np.sinh(0.03) * np.sqrt(2)) ** 2)), rel=1e-6)
    assert s.residual_over_noise < 0.1  # the means are on the law: its residuals are far below the seed noise


@pytest.mark.slow
def test_the_report_shows_the_seed_spread_beside_the_gaps(tmp_path):
    from sweep.analysis.main import run as analyze
    from sweep.analysis.result.fits import read_fits

    report = analyze(csv=_seeded_csv(tmp_path / "s.csv", 0.003), out=tmp_path / "out", bootstrap=20,
                     wandb_mode="off")
    text = report.read_text()
    assert "## Seeds" in text and "30 runs are 15 cells of 2–2 seeds" in text
    fits = read_fits(tmp_path / "out" / "fits.json")
    assert fits.seeds.gap_over_noise > 2
    check = next(t for t in fits.trust if t.check == "seeds")
    assert check.ok is True and "fitted as cell means" in check.detail
    assert json.loads((tmp_path / "out" / "fits.json").read_text())["seeds"]["sizes"][0]["cells"] == 3


def test_one_seed_and_a_wide_interval_say_why_in_the_report(tmp_path):
    from sweep.analysis.laws.estimate import estimate
    from sweep.analysis.inputs.load import load_csv
    from sweep.analysis.report.trust import A_WIDE, seeds

    laws = estimate(load_csv(_seeded_csv(tmp_path / "s.csv", 0.0, seeds=1)), n_boot=0)
    laws.approach2.a.ci = [0.4, 0.4 + A_WIDE + 0.1]
    check = seeds(laws)
    assert check.ok is False and "one seed per cell" in check.detail and "sweep demo law" in check.detail
    laws.approach2.a.ci = [0.45, 0.55]
    assert seeds(laws).ok is None
