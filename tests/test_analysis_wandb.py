"""The wandb analysis run, offline, read back from its .wandb records: one run per sweep (the same id on re-analysis),
the runs table and native charts (a table plus a Vega spec each), fits.json / report.md / report.html attached as an
`analysis` artifact; partial fits log what they have."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import history_keys, read_records, run_record, summary_keys

from sweep.analysis.inputs.load import load_sweep
from sweep.analysis.main import run
from sweep.analysis.report.wandb_run import finish_run, run_id, start_run

CHARTS = {"charts/loss_vs_C": "wandb/scatter/v0", "charts/residual_vs_N": "wandb/scatter/v0",
          "charts/residual_vs_D": "wandb/scatter/v0", "charts/residual_vs_C": "wandb/scatter/v0",
          "charts/loss_vs_N_by_budget": "wandb/lineseries/v0", "charts/frontier": "wandb/lineseries/v0",
          "charts/compute_optimal_N": "wandb/lineseries/v0"}
FILES = {"fits.json", "report.md", "report.html"}


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))  # artifacts are staged here, not in ~
    yield
    import wandb

    wandb.teardown()


def charts(run_dir: Path) -> dict[str, dict]:
    """The custom charts a run declared: key → its Vega panel config."""
    return {item.nested_key[2]: json.loads(item.value_json) for r in read_records(run_dir)
            if r.WhichOneof("record_type") == "config" for item in r.config.update
            if list(item.nested_key[:2]) == ["_wandb", "visualize"]}


def records(run_dir: Path, kind: str) -> list:
    return [getattr(r, kind) for r in read_records(run_dir) if r.WhichOneof("record_type") == kind]


@pytest.mark.slow
def test_one_run_per_sweep_with_table_charts_and_files(tmp_path, offline):
    from helpers import write_sweep

    import wandb

    root = write_sweep(tmp_path / "synth", wandb=True)  # runs logged with logger=wandb → auto means offline
    out = root / "analysis"
    ids = []
    for _ in range(2):
        run(sweep_dir=root, bootstrap=0)
        info = json.loads((out / "fits.json").read_text())["wandb"]
        assert "error" not in info, info
        ids.append(info["id"])
    wandb.teardown()  # what process exit does: wandb's service may still be writing the run file after finish()
    assert ids[0] == ids[1] == run_id(load_sweep(root, "non_embedding"))  # re-analysing resumes the same run
    dirs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(dirs) == 2 and all(d.name.endswith(ids[0]) for d in dirs)
    last = dirs[-1]
    assert (run_record(last).run_id, run_record(last).job_type) == (ids[0], "analysis")
    assert "approach3/alpha" in summary_keys(last) and "holdout/mean_rel_error" in summary_keys(last)
    # the runs table, and each chart: its own table plus a Vega spec under _wandb.visualize
    logged = history_keys(last)
    assert {"runs._type", *(f"{k}_table._type" for k in CHARTS)} <= logged
    assert {k: c["panel_config"]["panelDefId"] for k, c in charts(last).items()} == CHARTS
    assert {k for k in logged if k.startswith("plots/") and k.endswith("._type")} == \
        {f"plots/{name}._type" for name in json.loads((out / "fits.json").read_text())["plots"]}
    (table,) = last.glob("files/media/table/runs_*.table.json")
    table = json.loads(table.read_text())
    col = {c: i for i, c in enumerate(table["columns"])}
    assert {"run_name", "N", "D", "C", "loss", "budget", "residual", "held_out", "status"} <= set(col)
    statuses = [row[col["status"]] for row in table["data"]]
    assert statuses.count("included") == 12 and sum(s.startswith("excluded: ") for s in statuses) == 2
    assert sum(row[col["held_out"]] for row in table["data"]) == 3  # the largest size, held out in the check
    # fits.json, report.md and report.html: an `analysis` artifact (a new version per analysis) and the run's files
    (art,) = [a for a in records(last, "artifact") if a.type == "analysis"]
    assert art.name == info["artifact"] and {c.path for c in art.manifest.contents} == FILES
    staged = {c.path: Path(c.local_path) for c in art.manifest.contents}
    assert json.loads(staged["fits.json"].read_text())["wandb"]["id"] == ids[0]  # the attached fits.json names it
    assert FILES <= {f.path for r in records(last, "files") for f in r.files}


@pytest.mark.slow  # a full analysis logged: the full suite
def test_partial_fits_log_what_they_have(tmp_path, offline):
    from helpers import write_sweep

    from sweep.analysis.laws.estimate import estimate
    from sweep.analysis.result.laws import Approach1, Approach2, Approach3, EnvelopePoint
    from sweep.analysis.result.fits import Fits

    ds = load_sweep(write_sweep(tmp_path / "synth"), "non_embedding")
    fits = Fits.assemble(estimate(replace(ds, runs=ds.runs.iloc[:0])), trust=[])  # nothing fitted, then:
    fits.approach3, fits.approach2 = Approach3(error="too few runs"), Approach2(skipped="no budgets")
    fits.approach1 = Approach1(envelope=[EnvelopePoint(C=1e12, N_opt=5e4, D_opt=3e6, L=4.8),
                                         EnvelopePoint(C=1e13, N_opt=2e5, D_opt=8e6, L=3.8)], warnings=[])
    note = tmp_path / "fits.json"
    note.write_text("{}")
    wb, info = start_run(ds, fits, {}, tmp_path, "offline")
    assert wb is not None and info.error is None, info
    assert finish_run(wb, info, [note]).error is None
    import wandb

    wandb.teardown()
    (d,) = (tmp_path / "wandb").glob("offline-run-*")
    assert set(charts(d)) == {"charts/loss_vs_C", "charts/loss_vs_N_by_budget", "charts/frontier"}


def test_wandb_auto_never_goes_online_on_a_received_configs_word():
    from types import SimpleNamespace

    from sweep.analysis.report.wandb_run import resolve_mode

    online = SimpleNamespace(logger={"name": "wandb", "mode": "online"})
    assert resolve_mode(online, "auto", environ={}) == "offline"  # the runs' config alone: not online
    assert resolve_mode(online, "auto", environ={"WANDB_MODE": "online"}) == "online"  # the user's environment
    assert resolve_mode(online, "online", environ={}) == "online"  # the user's flag
    assert resolve_mode(online, "auto", environ={"WANDB_MODE": "disabled"}) == "off"
    assert resolve_mode(SimpleNamespace(logger={"name": "wandb", "mode": "offline"}), "auto", environ={}) == "offline"
    assert resolve_mode(SimpleNamespace(logger={"name": "none"}), "auto", environ={"WANDB_MODE": "online"}) == "off"
