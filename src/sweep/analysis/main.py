"""`sweep analyze`: the command line, and the order of the stages — load (a sweep directory or a CSV), runs above 1
epoch set apart (repeat.py; kept in with --include-repeated), aggregate (only past aggregate.AGGREGATE_ABOVE runs),
estimate, the effective-data fit (with repeated runs in), the leaderboard of laws scored on held-out runs
(predict/) and the trust checks (trust.py), then the outputs: plots, the wandb analysis run, fits.json (under
sweep.files' JSON policy) and report.md. An aggregated (large) input has its phases named on stderr. Runs too few
for a law still give a report that says what is missing (exit 0).

`run(...)` is the entry `sweep demo` uses; `main(argv)` the console command (0 on success, 2 with one line on
stderr on input the analysis cannot use).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from ..exits import EXIT_INPUT_ERROR
from ..files import write_json_atomic
from .laws.aggregate import aggregate
from .laws.beyond import check_options, laws_beyond
from .laws.estimate import estimate
from .result.fits import Fits, WandbRecord
from .inputs.load import CONVENTIONS, AnalysisError, Dataset, drop_runs, load_csv, load_sweep
from .inputs.replicates import seed_means
from .lr.study import analyze_lr, best_lr_runs
from .predict.conventions import compare_conventions
from .predict.leaderboard import leaderboard
from .laws.repeat import effective_data, split_repeated
from .report.trust import trust_checks

WANDB_MODES = ("auto", "off", "offline", "online")
PLOT_FORMATS = ("png", "svg", "pdf")


def run(sweep_dir: Path | None = None, csv: Path | None = None, out: Path | None = None,
        params: str = "non_embedding", bootstrap: int = 200, wandb_mode: str = "auto", seed: int = 0,
        formats: str = "png", include_repeated: bool = False, holdout: str | None = None,
        inference_tokens: str | None = None) -> Path:
    """Analyse a sweep directory or a CSV; write fits.json, report.md and plots; return report.md's path.
    include_repeated: fit runs above 1 epoch too (else they are listed, and left out of the laws). holdout: the
    runs to predict from a fit on the rest (beyond.py); inference_tokens: demands for the inference-aware optimum."""
    return _analyze(sweep_dir, csv, out, params, bootstrap, wandb_mode, seed, formats, include_repeated,
                    holdout=holdout, inference_tokens=inference_tokens)[0]


def default_out(sweep_dir: Path | None, csv: Path | None) -> Path:
    """SWEEP_DIR/analysis; for a CSV ./analysis-<name>/ in the working directory, never beside the input (which may
    be a checkout or read-only)."""
    return Path(sweep_dir) / "analysis" if sweep_dir is not None else Path.cwd() / f"analysis-{Path(csv).stem}"


def runs_to_fit(sweep_dir: Path | None, csv: Path | None, params: str, include_repeated: bool = False):
    """A sweep directory or a CSV loaded, and the runs the laws see chosen (also by `sweep compare`):
    (loaded, fitted: runs above 1 epoch set apart and an lr study's non-best lrs dropped, lr study or None,
    the Dataset to fit: fitted, aggregated when large)."""
    loaded = load_sweep(Path(sweep_dir), params) if sweep_dir is not None else load_csv(Path(csv))
    fitted = split_repeated(loaded, include_repeated)
    lr_study = analyze_lr(fitted.runs, {"data": loaded.data, "sweep": loaded.sweep_name})
    if lr_study is not None:  # an lr sweep: the laws see each size's best lr only
        keep = fitted.runs.index.isin(best_lr_runs(fitted.runs))
        fitted = drop_runs(fitted, ~keep, "not its size's best lr (an lr study: see \"Learning rate\")")
    return loaded, fitted, lr_study, aggregate(seed_means(fitted))  # seeds of a cell: its mean (replicates.py)


def _analyze(sweep_dir, csv, out, params, n_boot, wandb_mode, seed, formats="png",
             include_repeated=False, holdout=None, inference_tokens=None) -> tuple[Path, Fits]:
    from .report.wandb_run import resolve_mode

    formats = tuple(f.strip().lower() for f in formats.split(",") if f.strip())
    if not formats or set(formats) - set(PLOT_FORMATS):
        raise AnalysisError(f"--format {','.join(formats)!r}: use a comma list of {', '.join(PLOT_FORMATS)}")
    if params not in CONVENTIONS:
        raise AnalysisError(f"unknown parameter convention {params!r}; use one of {', '.join(CONVENTIONS)}")
    if (sweep_dir is None) == (csv is None):
        raise AnalysisError("give exactly one of a sweep directory or --csv FILE")
    if wandb_mode not in (*WANDB_MODES, "disabled"):
        raise AnalysisError(f"--wandb {wandb_mode!r}: use auto, off, offline or online")
    loaded, fitted, lr_study, ds = runs_to_fit(sweep_dir, csv, params, include_repeated)
    demands = check_options(ds, holdout, inference_tokens)  # a bad --holdout is refused before any fit
    out = Path(out) if out is not None else default_out(sweep_dir, csv)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise AnalysisError(f"cannot create the output directory {out} ({err.strerror}); pass --out DIR") from None
    progress = _stderr if ds.aggregation else None
    laws = estimate(ds, n_boot=n_boot, seed=seed, progress=progress)
    repeated = effective_data(fitted, n_boot=n_boot, seed=seed) if include_repeated and fitted.repeated else None
    beyond = laws_beyond(ds, laws, holdout, demands, n_boot, seed)
    if not ds.runs.empty:  # every law scored on runs it did not see (predict/): the rolling protocol or --holdout
        if progress:
            progress("leaderboard: every law fitted small and scored on the largest sizes")
        beyond["leaderboard"] = leaderboard(ds.runs, holdout, n_boot, seed, budgets=[r.C for r in laws.recipe])
        beyond["conventions"] = _conventions(sweep_dir, ds, params, include_repeated, n_boot, seed,
                                             beyond["leaderboard"], progress)
    # abilities: a task suite's results, whatever the laws could fit (emergence.py)
    abilities = _emergence(Path(sweep_dir), params, out) if sweep_dir is not None else None
    fits = Fits.assemble(laws, repeated_data=repeated, **beyond, trust=trust_checks(loaded, fitted, laws),
                         lr=lr_study, emergence=abilities)
    if ds.runs.empty:  # every run left out for repeating its data: the outputs still show them (nothing is fitted)
        ds = replace(loaded, excluded=fitted.excluded, repeated=fitted.repeated)
    if progress:
        progress("plots and report")
    return write_outputs(ds, fits, out, wandb_mode=resolve_mode(ds, wandb_mode), formats=formats), fits


def _conventions(sweep_dir, ds: Dataset, params, include_repeated, n_boot, seed, board, progress):
    """The laws with N counted each way (predict/conventions.py): ds (the runs the laws see, N as --params counts it)
    beside the sweep loaded once more per other convention, its runs chosen alike; a CSV has one count per run."""
    if sweep_dir is None:
        return compare_conventions({params: ds}, params)
    if progress:
        progress("the parameter conventions compared")
    by_params, unavailable = {}, {}
    for p in CONVENTIONS:
        try:
            by_params[p] = ds if p == params else runs_to_fit(sweep_dir, None, p, include_repeated)[3]
        except AnalysisError as err:  # runs that never recorded this count (older or hand-made summaries)
            unavailable[p] = str(err)
    noise = (board.margin[1] - board.margin[0]) / 2 if board.margin else None  # half the ranking's margin interval
    return compare_conventions(by_params, params, n_boot, seed, noise, unavailable, board)


def _emergence(sweep_dir: Path, params: str, out: Path):
    """The abilities section, with the per-run table tasks.csv written, if any run has task results (else None)."""
    from .emergence.trends import analyze_emergence
    from .emergence.load import load_tasks, write_table

    tasks = load_tasks(sweep_dir, params)
    if tasks is None:
        return None
    section = analyze_emergence(tasks)
    section.table = write_table(tasks, out).name
    return section


def _stderr(message: str) -> None:
    print(f"sweep analyze: {message}", file=sys.stderr, flush=True)


def write_outputs(ds: Dataset, fits: Fits, out: Path, wandb_mode: str = "off",
                  formats: tuple[str, ...] = ("png",)) -> Path:
    """The outputs, in this order: the plots; the wandb run opened (so fits.json can name it: one run per sweep,
    resumed on re-analysis); fits.json; report.md; report.html (rendered from report.md); then those three files
    attached to the wandb run as a new version of its artifact, and the run finished (a failure there is recorded
    in fits.json, rewritten). Returns report.md's path."""
    from .report.html import write_html
    from .report.plots import CAPTIONS, make_plots
    from .report.markdown import write_report
    from .report.wandb_run import finish_run, start_run

    if fits.lr is not None and fits.lr.law:
        from .report.lr import write_rule

        write_rule(out / "lr_rule.json", fits.lr)
        fits.lr_rule = "lr_rule.json"
    plots = make_plots(ds, fits, out, formats)
    fits.plots = {k: p.name for k, p in plots.items()}
    fits.report_html = "report.html"
    run, fits.wandb = start_run(ds, fits, plots, out, wandb_mode) if wandb_mode in ("offline", "online") \
        else (None, WandbRecord(mode="off"))
    write_json_atomic(out / "fits.json", fits.to_json())  # non-finite values as null
    report = write_report(ds, fits, plots, out)
    html = write_html(report, plots, CAPTIONS, out)
    if run is not None:
        info = finish_run(run, fits.wandb, [out / "fits.json", report, html])
        if info.error is not None:
            fits.wandb = info
            write_json_atomic(out / "fits.json", fits.to_json())
    return report


def main(argv: list[str]) -> int:
    """`sweep analyze ...`: 0 on success, 2 (one line on stderr) on input the analysis cannot use."""
    from .report.markdown import summary_text

    parser = argparse.ArgumentParser(prog="sweep analyze", description="fit scaling laws to a sweep or a CSV")
    parser.add_argument("sweep_dir", nargs="?", type=Path, help="a sweep directory: <out_dir>/<sweep name>")
    parser.add_argument("--csv", type=Path, help="columns n_params,tokens,loss[,flops][,group][,epochs] instead "
                        "of a sweep")
    parser.add_argument("--out", type=Path, help="output directory (default: SWEEP_DIR/analysis, or for --csv FILE "
                        "./analysis-<FILE's name>/)")
    parser.add_argument("--format", default="png", help="plot formats, a comma list of png, svg, pdf (PNG always)")
    parser.add_argument("--params", default="non_embedding", choices=CONVENTIONS, help="parameter convention")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples over runs (0: none)")
    parser.add_argument("--wandb", default="auto", choices=WANDB_MODES,
                        help="analysis run in wandb (auto: as the runs' logger config)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--include-repeated", action="store_true", help="fit runs above 1 epoch (that repeat their "
                        "data) too; by default they are listed in the report and left out of the laws")
    parser.add_argument("--holdout", metavar="EXPR", help="fit small, predict big: the runs to hold out, a "
                        "comparison ('n_params>=1e8', 'tokens>1e9 and N>=1e7'; columns n_params/N, tokens/D, "
                        "flops/C) or a comma list of run names")
    parser.add_argument("--inference-tokens", metavar="X", help="expected inference demand in tokens (a comma list "
                        "allowed): the inference-aware optimal N, D per budget")
    args = parser.parse_args(argv)
    try:
        report_path, fits = _analyze(args.sweep_dir, args.csv, args.out, args.params, args.bootstrap,
                                     args.wandb, args.seed, args.format, args.include_repeated,
                                     holdout=args.holdout, inference_tokens=args.inference_tokens)
    except AnalysisError as err:
        print(f"sweep analyze: {err}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    print(summary_text(fits, report_path))
    return 0
