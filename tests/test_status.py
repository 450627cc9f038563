"""`sweep status` and `sweep submit`'s refusals, without a cluster (the real one: test_slurm.py): states read from the
manifest and run directories, the scheduler's states mapped (a stand-in squeue and sacct on PATH), bad input."""

import json
import os
import stat
from pathlib import Path

import pytest

from sweep import scheduler
from sweep.cli import main
from sweep.exits import EXIT_INPUT_ERROR

CELLS = ["gpt-6k_done", "gpt-6k_failed", "gpt-6k_started", "gpt-6k_planned", "gpt-6k_skipped", "gpt-6k_queued",
         "gpt-6k_killed"]


def write_sweep(sweep_dir: Path) -> None:
    sweep_dir.mkdir(parents=True)
    rows = [{"name": n, "status": "skipped" if n.endswith("skipped") else "planned",
             "reason": "outside sweep.tokens_per_param_range" if n.endswith("skipped") else None,
             "overrides": [f"sweep.name={n}"], "plan": {"tokens": 1000.0}} for n in CELLS]
    (sweep_dir / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name in ("gpt-6k_done", "gpt-6k_failed", "gpt-6k_started", "gpt-6k_killed"):
        (sweep_dir / name).mkdir()
        (sweep_dir / name / "metrics.jsonl").write_text(json.dumps({"step": 1, "tokens": 250, "flops": 1.0}) + "\n")
    (sweep_dir / "gpt-6k_done" / "summary.json").write_text(json.dumps(
        {"status": "completed", "val_loss": 3.25, "tokens": 1000, "wall_s": 12.0}))
    (sweep_dir / "gpt-6k_failed" / "summary.json").write_text(json.dumps(
        {"status": "failed", "error": "NonFiniteLoss: loss is nan at step 3"}))
    scheduler.append_jobs(sweep_dir, [{"name": f"gpt-6k_{n}", "job_id": f"7_{i}", "submitted": 1.0,
                                       "relaunch": "sweep submit model=gpt-6k"}
                                      for i, n in enumerate(("done", "failed", "started", "queued", "killed"))])


def fake_scheduler(bin_dir: Path, squeue: str, sacct: str) -> None:
    bin_dir.mkdir()
    for name, out in (("squeue", squeue), ("sacct", sacct)):
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\nprintf '{out}'\n")
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


def status(capsys, *args) -> tuple[int, str, str]:
    code = main(["status", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_states_from_the_run_directories_when_no_scheduler_answers(tmp_path, capsys, monkeypatch):
    write_sweep(tmp_path / "s")
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    code, out, _ = status(capsys, str(tmp_path / "s"), "--json")
    cells = {c["name"]: c for c in json.loads(out)}
    assert code == 0
    assert {n: c["state"] for n, c in cells.items()} == {
        "gpt-6k_done": "done", "gpt-6k_failed": "failed", "gpt-6k_started": "running", "gpt-6k_planned": "planned",
        "gpt-6k_skipped": "skipped", "gpt-6k_queued": "queued", "gpt-6k_killed": "running"}
    assert "scheduler unreachable" in cells["gpt-6k_started"]["detail"]
    assert "25% of 1e+03 tokens" in cells["gpt-6k_started"]["detail"]
    assert "NonFiniteLoss" in cells["gpt-6k_failed"]["detail"] and cells["gpt-6k_done"]["job_id"] == "7_0"
    code, out, _ = status(capsys, str(tmp_path / "s"))
    assert "7 cell(s): 1 done, 2 running, 1 queued, 1 failed, 1 planned, 1 skipped" in out
    assert "no scheduler answered" in out and f"next: `sweep status {tmp_path / 's'}` again later" in out


def test_the_schedulers_states_decide_live_and_killed_cells(tmp_path, capsys, monkeypatch):
    write_sweep(tmp_path / "s")
    # squeue: the started cell runs, the queued one waits; sacct: the killed one was cancelled (the others done).
    fake_scheduler(tmp_path / "bin", squeue="7_2|RUNNING\\n7_3|PENDING\\n99_0|RUNNING\\n",
                   sacct="7_0|COMPLETED\\n7_1|FAILED\\n7_2|RUNNING\\n7_3|PENDING\\n7_4|CANCELLED by 0\\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    code, out, _ = status(capsys, str(tmp_path / "s"), "--json")
    cells = {c["name"]: c for c in json.loads(out)}
    assert {n: c["state"] for n, c in cells.items()} == {
        "gpt-6k_done": "done", "gpt-6k_failed": "failed", "gpt-6k_started": "running", "gpt-6k_planned": "planned",
        "gpt-6k_skipped": "skipped", "gpt-6k_queued": "queued", "gpt-6k_killed": "failed"}
    assert cells["gpt-6k_killed"]["detail"] == "job CANCELLED, the cell unfinished"
    assert cells["gpt-6k_queued"]["detail"] == "PENDING"


def test_when_nothing_is_live_the_next_command_resubmits(tmp_path, capsys, monkeypatch):
    write_sweep(tmp_path / "s")
    fake_scheduler(tmp_path / "bin", squeue="", sacct="7_0|COMPLETED\\n7_1|FAILED\\n7_2|TIMEOUT\\n7_3|CANCELLED\\n"
                                                      "7_4|OUT_OF_MEMORY\\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    _, out, _ = status(capsys, str(tmp_path / "s"))
    assert "1 done, 4 failed, 1 planned, 1 skipped" in out
    assert "next: sweep submit model=gpt-6k   (trains the 5 unfinished cell(s)" in out


def test_status_of_what_is_not_a_sweep_is_a_clear_error(tmp_path, capsys):
    code, _, err = status(capsys, str(tmp_path))
    assert code == EXIT_INPUT_ERROR and "is not a sweep directory: it has no manifest.jsonl" in err
    code, _, err = status(capsys, str(tmp_path / "nowhere"))
    assert code == EXIT_INPUT_ERROR and "no such directory" in err


def test_submit_without_a_scheduler_is_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    code = main(["submit", f"out_dir={tmp_path / 'out'}", "model=gpt-6k,gpt-12k", "sweep.name=s"])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT_ERROR and "`sbatch` is not on PATH" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_submit_with_a_controller_down_names_it(tmp_path, capsys, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("sbatch", "exit 0"), ("scontrol", "echo 'Slurmctld(primary) at head is DOWN'; exit 1")):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    code = main(["submit", f"out_dir={tmp_path / 'out'}", "sweep.name=s"])
    err = capsys.readouterr().err
    assert code == EXIT_INPUT_ERROR and "controller does not answer" in err and "at head is DOWN" in err
    assert not (tmp_path / "out").exists()


def test_submit_refuses_another_launcher(tmp_path, capsys):
    code = main(["submit", f"out_dir={tmp_path}", "hydra/launcher=joblib"])
    assert code == EXIT_INPUT_ERROR and "not hydra/launcher=joblib" in capsys.readouterr().err


@pytest.mark.slow
def test_analyze_on_a_partly_finished_sweep_fits_the_done_and_counts_the_rest(tmp_path, capsys):
    from helpers import write_sweep as write_synthetic_sweep

    sweep_dir = write_synthetic_sweep(tmp_path)  # 12 completed runs, one running (no summary), one failed
    done = [p.name for p in sweep_dir.iterdir() if
            (p / "summary.json").exists() and json.loads((p / "summary.json").read_text())["status"] == "completed"]
    waiting = ["gpt-big_queued_s0", "gpt-big_never_s0"]
    (sweep_dir / "gpt-big_running_s0").mkdir()
    (sweep_dir / "gpt-big_running_s0" / "metrics.jsonl").write_text('{"step": 1, "tokens": 8, "flops": 1.0}\n')
    rows = [{"name": n, "status": "planned", "reason": None, "overrides": [], "plan": {}}
            for n in [*done, "gpt-big_running_s0", *waiting]]
    (sweep_dir / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["analyze", str(sweep_dir), "--bootstrap", "0", "--wandb", "off"]) == 0
    out = capsys.readouterr().out
    assert f"runs used: {len(done)}," in out
    # two running (no summary), two never started; the failed run is failed, not unfinished
    assert "4 cell(s) of the grid not done yet" in out and f"these fits are of the {len(done)} done" in out
    report = (sweep_dir / "analysis" / "report.md").read_text()
    assert all(f"`{name}`: not started" in report for name in waiting)
