"""fits.json is the typed result's serialisation: what `sweep analyze` writes reads back into the same tree and
writes out byte for byte the same JSON; the reader refuses what it does not know, naming where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import write_sweep
from sweep.analysis.main import main
from sweep.analysis.result.fits import Fits, SCHEMA_VERSION, read_fits
from sweep.analysis.result.record import ResultError, Value

DATA = Path(__file__).parent / "data"


def analyze(out: Path, *args: str) -> dict:
    assert main([f"--out={out}", "--wandb=off", *args]) == 0
    return json.loads((out / "fits.json").read_text())


def assert_round_trips(path: Path, saved: dict) -> Fits:
    fits = read_fits(path)
    assert fits.to_json() == saved  # nothing lost, nothing added, null stays null
    assert list(fits.to_json()) == list(saved)  # and in the order it was written
    assert Fits.from_json(fits.to_json()) == fits
    return fits


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, dict]:
    """A quick fits.json (40 of Hoffmann et al.'s runs, no bootstrap) for the reader's refusals."""
    out = tmp_path_factory.mktemp("small")
    rows = (DATA / "chinchilla_epoch_240.csv").read_text().splitlines()
    (out / "runs.csv").write_text("\n".join(rows[:1] + rows[1::6]) + "\n")
    return out / "fits.json", analyze(out, f"--csv={out / 'runs.csv'}", "--bootstrap=0")


@pytest.mark.slow
def test_published_fits_json_round_trips_and_keeps_the_contract_keys(tmp_path):
    """Hoffmann et al.'s runs with every section a CSV can have: holdout, inference demands, intervals."""
    saved = analyze(tmp_path, f"--csv={DATA / 'chinchilla_epoch_240.csv'}", "--bootstrap=12",
                    "--holdout=n_params>=5e9", "--inference-tokens=1e12")
    path = tmp_path / "fits.json"
    assert saved["schema_version"] == SCHEMA_VERSION and list(saved)[0] == "schema_version"
    fits = assert_round_trips(path, saved)
    # the keys ../shared/DESIGN.md names, read as attributes and as JSON alike
    a3 = fits.approach3
    assert a3.fitted and set(saved["approach3"]) >= {"E", "A", "B", "alpha", "beta", "ci"}
    assert isinstance(a3.alpha, Value) and a3.alpha.value == saved["approach3"]["alpha"]
    assert a3.alpha.ci == saved["approach3"]["ci"]["alpha"] and a3.alpha.ci[0] < a3.alpha.value < a3.alpha.ci[1]
    assert fits.approach2.a.value == saved["approach2"]["a"] and fits.approach2.b.value == saved["approach2"]["b"]
    held = saved["holdout_protocol"]["runs"]
    assert held and {"predicted", "observed", "interval"} <= set(held[0])
    assert [r.predicted for r in fits.holdout_protocol.runs] == [r["predicted"] for r in held]
    assert fits.inference_optimal is not None and fits.plots and fits.report_html == "report.html"


@pytest.mark.slow
def test_a_sweeps_fits_json_round_trips(tmp_path):
    sweep = write_sweep(tmp_path / "sweep")
    saved = analyze(tmp_path / "out", str(sweep), "--bootstrap=8", "--inference-tokens=1e10")
    fits = assert_round_trips(tmp_path / "out" / "fits.json", saved)
    assert fits.source == saved["source"] and fits.runs.used == saved["runs"]["used"] > 0


def test_small_fits_json_round_trips(small):
    fits = assert_round_trips(*small)
    assert fits.leaderboard.skipped is None and fits.leaderboard.laws[0].predictions  # its records round-trip too


def test_reader_refuses_an_unknown_key_naming_where(small):
    path, saved = small
    bad = json.loads(json.dumps(saved))
    bad["approach3"]["gamma"] = 1.0
    with pytest.raises(ResultError, match=r"approach3: unknown key\(s\) 'gamma'"):
        Fits.from_json(bad)
    bad = json.loads(json.dumps(saved))
    del bad["approach2"]["budgets"][0]["C"]
    with pytest.raises(ResultError, match=r"approach2\.budgets\[0\]: no 'C'"):
        Fits.from_json(bad)
    bad = json.loads(json.dumps(saved))
    bad["approach3"]["ci"] = {"alpha": [0.3, 0.4], "delta": [0, 1]}
    with pytest.raises(ResultError, match=r"approach3\.ci: intervals of \['delta'\]"):
        Fits.from_json(bad)


def test_reader_refuses_a_newer_schema_and_reads_one_from_before_the_key(small, tmp_path):
    path, saved = small
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({**saved, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ResultError, match=rf"newer.json: schema_version {SCHEMA_VERSION + 1} .*upgrade sweep"):
        read_fits(newer)
    older = {k: v for k, v in saved.items() if k != "schema_version"}  # fits.json as version 1 wrote it before
    assert Fits.from_json(older).to_json() == saved
    broken = tmp_path / "broken.json"
    broken.write_text('{"approach3": ')
    with pytest.raises(ResultError, match="broken.json: cannot read it as fits.json"):
        read_fits(broken)
