"""`sweep COMMAND ...`: a thin dispatcher to the stages; input errors become one line on stderr and exit code 2."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from .exits import EXIT_FAILED, EXIT_INPUT_ERROR, EXIT_INTERRUPTED

USAGE = """usage: sweep COMMAND [ARGS]

commands:
  train [-m] [OVERRIDES]    one training run, or a grid with -m (sweep=cpu|isoflop|ladder|lr|isoflop_cooldown|
                            emergence|emergence_add|emergence_gpu selects a preset)
  submit [OVERRIDES]        a grid sent to SLURM as a job array, and back at once with the job ids (fire and
                            forget; hydra.launcher.* sets partition, time, GPUs); then `sweep status`
  status SWEEP_DIR [--json] each cell planned / queued / running / done / failed, and the next command
  demo [law|emergence] [OVERRIDES]
                            the embedded default end to end on CPU: the `cpu` isoFLOP grid, then analyze;
                            `demo law`: sizes √2 apart and two seeds per cell, for a law with a narrow interval
                            (sweep=cpu_law, ~27 min); `demo emergence`: the size ladder with the task suite mixed
                            in (sweep=emergence)
  evaluate RUN_DIR|SWEEP_DIR [--items N] [--device auto|cpu|cuda]
                            re-score saved weights on the task suite (tasks.json), without training
  analyze SWEEP_DIR | --csv FILE [--out DIR] [--params non_embedding|total|matmul]
                            scaling-law fits, intervals, plots and report.md
  compare A B [...] [--out DIR] [--params ...] [--bootstrap N] [--seed S]
                            sweep directories or CSVs fitted alike: side by side, exponents' differences with
                            95% intervals (compare.md, compare.json, plots)
  sizes [OVERRIDES] [--json] [--vocab N]
                            the model ladder as runs with these overrides would have it (e.g. sweep=cpu)
  prepare [OVERRIDES]       tokenize a corpus into shards (train does this on demand)
  bench [OVERRIDES] [bench.variants=default|all|fp32-eager,...] [bench.steps=N] [bench.warmup=N] [bench.profile=N]
                            training throughput, FLOP/s, matmul peak and MFU; last line one JSON object

Run `sweep train --help` for Hydra's help on config groups and overrides, `sweep --version` for the version.
Tab completion of commands and overrides (bash): eval "$(sweep -sc install=bash)"
"""
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's job logging format: one format everywhere


COMPLETION_FLAGS = ("-sc", "--shell-completion")
COMPLETES_OVERRIDES = ("train", "submit", "demo", "prepare", "bench")  # commands that take config overrides


def complete(argv: list[str]) -> int:
    """Shell completion as Hydra documents it: `eval "$(sweep -sc install=bash)"` installs it; the shell then asks
    `sweep -sc query=bash` with the line typed so far in COMP_LINE. The first word completes to a command; after a
    command that takes overrides, Hydra completes config groups and keys."""
    from .launch import hydra_run

    if any(a.startswith("query") for a in argv):
        line = os.environ.get("COMP_LINE", "sweep train ")
        words = line.split()[1:]  # after the program's name
        if not words or (len(words) == 1 and not line.endswith(" ")):
            print(" ".join(c for c in COMMANDS if c.startswith(words[0] if words else "")))
            return 0
        if words[0] not in COMPLETES_OVERRIDES:
            return 0
        os.environ["COMP_LINE"] = " ".join(["sweep", *words[1:]]) + (" " if line.endswith(" ") else "")
    return hydra_run([a for a in argv if a != "train"])


def cmd_train(argv: list[str]) -> int:
    """One run (launch.py), or with -m a grid (grid.py, which launches its cells through launch.py's task)."""
    if any(a in COMPLETION_FLAGS for a in argv):
        return complete(argv)
    if "-m" in argv or "--multirun" in argv:
        from .grid import launch_grid

        return launch_grid(argv)[0]
    from .launch import launch

    return launch(argv)


def cmd_submit(argv: list[str]) -> int:
    from .grid import submit_grid

    return submit_grid(argv)


def cmd_status(argv: list[str]) -> int:
    import argparse

    from .status import as_json, report

    parser = argparse.ArgumentParser(prog="sweep status", description="each cell of a sweep directory's grid as "
                                     "planned, queued, running, done or failed, and the next command")
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--json", action="store_true", help="one JSON list of the cells instead of a table")
    args = parser.parse_args(argv)
    print(json.dumps(as_json(args.sweep_dir), indent=2) if args.json else report(args.sweep_dir))
    return 0


DEMOS = {"law": "cpu_law", "emergence": "emergence"}  # `sweep demo NAME` → its preset (plain `sweep demo`: cpu)


def cmd_demo(argv: list[str]) -> int:
    """The `cpu` isoFLOP grid (with `law`: its √2-spaced, two-seed version; with `emergence`: the task-suite ladder)
    on the embedded corpus, cells in parallel, then the analysis."""
    from .analysis.main import run as analyze
    from .grid import launch_grid

    preset = "cpu"
    if argv and argv[0] in DEMOS:
        preset, argv = DEMOS[argv[0]], argv[1:]
    code, sweep_dir = launch_grid(["-m", f"sweep={preset}", "hydra/launcher=joblib", *argv])
    if code != 0:
        return code
    # data.allow_repeat=true says repeated data is accepted: fit those runs too rather than leave them out.
    report = analyze(sweep_dir=sweep_dir, include_repeated=any(a.startswith("data.allow_repeat=true") for a in argv))
    print(f"\nsweep demo: {sweep_dir} analysed; report: {report}")
    return 0


def cmd_sizes(argv: list[str]) -> int:
    import argparse

    from .train import ladder

    parser = argparse.ArgumentParser(prog="sweep sizes", description="the model ladder, as runs with these "
                                     "overrides would have it (e.g. sweep sizes sweep=cpu)")
    parser.add_argument("overrides", nargs="*", help="config overrides or a preset, as for sweep train")
    parser.add_argument("--json", action="store_true", help="one JSON list instead of a table")
    parser.add_argument("--vocab", type=int, help="vocabulary size (default: the config's data.vocab_size)")
    args = parser.parse_args(argv)
    rows = ladder.rows(args.overrides, args.vocab)
    print(json.dumps(rows, indent=2) if args.json else ladder.table(rows))
    return 0


def cmd_prepare(argv: list[str]) -> int:
    from .config import compose
    from .data import describe, prepare

    run = compose(argv)
    print(describe(prepare(run.data, run.cache_root)))
    return 0


def cmd_bench(argv: list[str]) -> int:
    from .train.bench import bench

    bench(argv)
    return 0


def cmd_analyze(argv: list[str]) -> int:
    from .analysis.main import main as analyze_main

    return analyze_main(argv)


def cmd_compare(argv: list[str]) -> int:
    from .analysis.compare import main as compare_main

    return compare_main(argv)


def cmd_evaluate(argv: list[str]) -> int:
    """Re-score the saved weights of a run directory, or of every run of a sweep directory, on the task suite."""
    import argparse

    from .evaluate import main as evaluate

    parser = argparse.ArgumentParser(prog="sweep evaluate", description=cmd_evaluate.__doc__)
    parser.add_argument("path", type=Path, help="a run directory, or a sweep directory of them")
    parser.add_argument("--items", type=int, default=None, help="eval items per task variant (default: the run's)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    args = parser.parse_args(argv)
    done, failed = evaluate(args.path, args.device, args.items)
    for run_dir, result in done:
        print(f"{run_dir}: step {result['step']}, {len(result['variants'])} task variants, ICL score "
              f"{result['icl'].get('icl_score', float('nan')):.3f} → {run_dir / 'tasks.json'}")
    for run_dir, why in failed.items():
        print(f"error: {run_dir} not scored: {why}", file=sys.stderr)
    return EXIT_FAILED if failed else 0


COMMANDS = {"train": cmd_train, "submit": cmd_submit, "status": cmd_status, "demo": cmd_demo,
            "sizes": cmd_sizes, "prepare": cmd_prepare, "analyze": cmd_analyze,
            "compare": cmd_compare, "bench": cmd_bench, "evaluate": cmd_evaluate}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"sweep {__version__}")
        return 0
    if argv[0] in COMPLETION_FLAGS:
        return complete(argv)
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"sweep: unknown command {argv[0]!r}\n\n{USAGE}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    from .config import ConfigError
    from .data import DataError

    try:
        return command(argv[1:])
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except BrokenPipeError:  # `sweep sizes | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:  # a second Ctrl-C during training, or one outside it (a prepare cleans up after itself)
        print("sweep: interrupted; relaunch the same command to go on from the last checkpoint", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
