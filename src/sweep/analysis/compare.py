"""`sweep compare A B [...]`: two or more sweeps (directories or CSVs) fitted alike and set side by side. Each input
goes through `sweep analyze`'s pipeline (main.runs_to_fit, estimate with its bootstrap draws kept); then, per law,
each input's values with 95% intervals and, for the first input against each other one, the difference of every
exponent with a 95% interval from the two independent bootstraps. Outputs: compare.md, compare.json (non-finite as
null) and one plot per law (plots/compare.py).

Inputs are all loaded before anything is fitted or written: a path that is neither a sweep directory nor a CSV, or
a CSV without its columns, is an AnalysisError (`main` turns it into one line on stderr, exit 2).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..exits import EXIT_INPUT_ERROR
from ..files import write_json_atomic, write_text_atomic
from .laws.bootstrap import percentile_ci
from .laws.estimate import estimate
from .result.record import numbers
from .result.fits import Laws
from .report.fmt import zero_width
from .inputs.load import CONVENTIONS, AnalysisError, Dataset
from .main import runs_to_fit

LEVEL = 0.95
# (law, title, quantities: (name, shown as, an exponent?)); the flat paths are estimate's ("approach3/alpha")
LAWS = (
    ("approach3", "Approach 3: L(N, D) = E + A/N^α + B/D^β",
     (("E", "E", False), ("A", "A", False), ("B", "B", False), ("alpha", "α", True), ("beta", "β", True))),
    ("allocation", "Approach 3's allocation: N* ∝ C^a, D* ∝ C^b", (("a", "a", True), ("b", "b", True))),
    ("approach2", "Approach 2 (isoFLOP minima): N* ∝ C^a, D* ∝ C^b", (("a", "a", True), ("b", "b", True))),
    ("approach1", "Approach 1 (lower envelope): N* ∝ C^a, D* ∝ C^b", (("a", "a", True), ("b", "b", True))),
    ("kaplan", "L(N) = E + A/N^α at a fixed tokens/param", (("E", "E", False), ("A", "A", False),
                                                             ("alpha", "α", True))),
)


@dataclass
class Fitted:
    """One input: its label, path, the Dataset fitted, estimate's laws (in memory, as `sweep analyze` fits them: no
    fits.json is read), and per quantity (by flat path) its full-data value and its resample draws."""
    label: str
    path: Path
    ds: Dataset
    fits: Laws
    values: dict[str, float]
    draws: dict[str, np.ndarray]


def labels_of(paths: list[Path]) -> list[str]:
    """Each input's name (a directory's, a CSV's stem); equal names get their parent's name, then a number."""
    names = [p.stem if p.is_file() else p.resolve().name for p in paths]
    if len(set(names)) < len(names):
        names = [f"{p.resolve().parent.name}/{n}" for p, n in zip(paths, names)]
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 and names.count(n) == 1 else f"{n}#{seen[n]}")
    return out


def load_inputs(paths: list[Path], params: str) -> list[tuple[str, Path, Dataset]]:
    """(label, path, Dataset to fit) of each input, every one checked before any is fitted."""
    if len(paths) < 2:
        raise AnalysisError(f"sweep compare needs 2 or more inputs (sweep directories or CSVs); got {len(paths)}")
    loaded = []
    for path, label in zip(paths, labels_of(paths)):
        if path.is_dir():
            ds = runs_to_fit(path, None, params)[3]
        elif path.is_file():
            ds = runs_to_fit(None, path, params)[3]
        else:
            raise AnalysisError(f"{path} is neither a sweep directory nor a CSV file")
        if ds.runs.empty:
            raise AnalysisError(f"{path}: no runs left to fit (every run is excluded or repeats its data)")
        loaded.append((label, path, ds))
    return loaded


def fit_input(label: str, path: Path, ds: Dataset, n_boot: int, seed: int) -> Fitted:
    """Every fit `sweep analyze` makes, with the bootstrap's draws kept."""
    fits = estimate(ds, n_boot=n_boot, seed=seed, keep_samples=True)
    draws = fits.bootstrap_samples or {}  # none when no run is left to fit
    return Fitted(label, path, ds, fits, numbers(fits), draws)


def law_paths(fits: Laws, law: str) -> tuple[str | None, str | None]:
    """(flat path prefix of a law in fits, or None; why it is missing, or the basis it was fitted on)."""
    sec = getattr(fits, law)  # one of LAWS' sections
    if law == "kaplan":
        if not sec.fits:
            return None, sec.skipped or "no L(N) fit"
        first = sec.fits[0]  # the basis with most runs (estimate orders them so)
        return f"kaplan/fits/{first.key}/", first.key
    why = getattr(sec, "error", None) or getattr(sec, "skipped", None)
    quantities = next(q for name, _, q in LAWS if name == law)
    fitted = [getattr(sec, name) for name, _, _ in quantities]
    if why or not any(v is not None and isinstance(v.value, (int, float)) for v in fitted):
        return None, why or "; ".join(getattr(sec, "warnings", None) or []) or "not fitted"
    return f"{law}/", None


def _ci(draws) -> list[float] | None:
    return None if draws is None else percentile_ci(np.asarray(draws, float), LEVEL)["ci"]


def difference(first: Fitted, other: Fitted, path_first: str, path_other: str) -> dict:
    """other − first: the full-data difference, and the percentile interval of the two independent bootstraps'
    draws differenced pair by pair (each with its NaNs, resamples that failed, dropped first)."""
    value = other.values.get(path_other, np.nan) - first.values.get(path_first, np.nan)
    a, b = (np.asarray(f.draws.get(p, []), float) for f, p in ((first, path_first), (other, path_other)))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    n = min(len(a), len(b))
    ci = percentile_ci(b[:n] - a[:n], LEVEL)["ci"]
    return {"value": value, "ci": ci, "n_draws": n,
            "excludes_zero": bool(ci is not None and (ci[0] > 0 or ci[1] < 0))}


def compare(inputs: list[Fitted]) -> dict:
    """compare.json's laws: per law, each input's values with intervals (or why it is missing), and per pair (first
    vs each other) the differences of the exponents."""
    laws = {}
    for law, title, quantities in LAWS:
        entry = {"title": title, "quantities": [q[0] for q in quantities], "inputs": {}, "differences": {}}
        prefixes = {}
        for f in inputs:
            prefix, why = law_paths(f.fits, law)
            if prefix is None:
                entry["inputs"][f.label] = {"missing": why}
                continue
            prefixes[f.label] = prefix
            entry["inputs"][f.label] = {name: {"value": f.values.get(prefix + name),
                                               "ci": _ci(f.draws.get(prefix + name))} for name, _, _ in quantities}
            if law == "kaplan":
                entry["inputs"][f.label]["basis"] = why
        first = inputs[0]
        for other in inputs[1:]:
            if first.label in prefixes and other.label in prefixes:
                entry["differences"][other.label] = {
                    name: difference(first, other, prefixes[first.label] + name, prefixes[other.label] + name)
                    for name, _, exponent in quantities if exponent}
        laws[law] = entry
    return laws


# ------------------------------------------------------------------------------------------------- report
def _num(x, sign: bool = False) -> str:
    if x is None or not np.isfinite(x):
        return "—"
    return f"{x:+.3g}" if sign else f"{x:.4g}"


def value_text(v: dict | None, sign: bool = False) -> str:
    if not v or v.get("value") is None:
        return "—"
    ci = v.get("ci")
    if ci and zero_width(ci):  # never printed as an interval (e.g. E at its bound in every resample)
        return _num(v["value"], sign) + " (no interval: every resample gave this value)"
    return _num(v["value"], sign) + (f" [{_num(ci[0], sign)}, {_num(ci[1], sign)}]" if ci else " (no interval)")


def verdict(shown: str, first: str, other: str, d: dict) -> str:
    """The plain-words line of a difference."""
    if d["ci"] is None:
        return f"{shown}: no interval (fewer than 10 resamples of both fitted)"
    text = value_text(d, sign=True)
    if d["excludes_zero"]:
        return f"{shown} differs: {text}, {'higher' if d['ci'][0] > 0 else 'lower'} in {other} than in {first}"
    if d["ci"] == [0.0, 0.0]:
        return f"{shown}: the same in both ({text}: every resample pair gave the same value)"
    return f"{shown}: no clear difference: {text} (the interval contains 0)"


def report_text(result: dict, plots: dict[str, str]) -> str:
    labels = [i["label"] for i in result["inputs"]]
    first = labels[0]
    b = result["bootstrap"]
    lines = [f"# Comparison: {' vs '.join(labels)}", "",
             "| input | path | runs fitted | parameter convention |", "|---|---|---|---|"]
    lines += [f"| {i['label']} | `{i['path']}` | {i['runs']} | {result['params']} |" for i in result["inputs"]]
    warned = [f"- {i['label']}: {w}" for i in result["inputs"] for w in i.get("warnings") or []]
    lines += ["", "Warnings of the fits (as `sweep analyze` would report them):", *warned] if warned else []
    lines += ["", f"Each input fitted as `sweep analyze` fits it, with {b['n']} bootstrap resamples of its runs "
              f"(seed {b['seed']} + the input's position: independent draws). A difference is the other input's value "
              f"minus {first}'s; its 95% interval is the percentile interval of the two inputs' resample draws "
              f"differenced pair by pair (failed resamples dropped first). An interval that excludes 0 is a "
              f"difference the runs resolve.", ""]
    for law, entry in result["laws"].items():
        names = {q[0]: q[1] for name, _, qs in LAWS if name == law for q in qs}
        lines += [f"## {entry['title']}", ""]
        others = list(entry["differences"])
        head = "| quantity | " + " | ".join(labels) + "".join(f" | {o} − {first}" for o in others) + " |"
        lines += [head, "|" + "---|" * (1 + len(labels) + len(others))]
        for q in entry["quantities"]:
            cells = [value_text(entry["inputs"][lab].get(q)) for lab in labels]
            cells += [value_text(entry["differences"][o].get(q), sign=True) for o in others]
            lines.append(f"| {names[q]} | " + " | ".join(cells) + " |")
        lines.append("")
        for lab in labels:
            got = entry["inputs"][lab]
            if "missing" in got:
                lines.append(f"- {lab}: not fitted ({got['missing']})")
            elif "basis" in got:
                lines.append(f"- {lab}: fitted at {got['basis']}")
        for o in others:
            lines += [f"- {verdict(names[q], first, o, d)}" for q, d in entry["differences"][o].items()]
        if law in plots:
            lines += ["", f"![{entry['title']}]({plots[law]})"]
        lines.append("")
    if "exponents" in plots:
        lines += ["## Exponents side by side", "", f"![exponents with 95% intervals]({plots['exponents']})", ""]
    return "\n".join(lines)


def default_out(labels: list[str]) -> Path:
    """./compare-<names>/ in the working directory (never beside the inputs, which may be read-only)."""
    return Path.cwd() / ("compare-" + "-".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", lab) for lab in labels))


def run(paths: list[Path], out: Path | None = None, params: str = "non_embedding", n_boot: int = 200,
        seed: int = 0) -> Path:
    """Fit each input, compare them, write compare.md, compare.json and the plots into out; return compare.md."""
    from .report.plots.compare import make_compare_plots

    if params not in CONVENTIONS:
        raise AnalysisError(f"unknown parameter convention {params!r}; use one of {', '.join(CONVENTIONS)}")
    loaded = load_inputs([Path(p) for p in paths], params)
    inputs = [fit_input(label, path, ds, n_boot, seed + i) for i, (label, path, ds) in enumerate(loaded)]
    out = Path(out) if out is not None else default_out([f.label for f in inputs])
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise AnalysisError(f"cannot create the output directory {out} ({err.strerror}); pass --out DIR") from None
    result = {"inputs": [{"label": f.label, "path": str(f.path), "runs": f.fits.runs.used,
                          "seed": seed + i, "warnings": f.fits.warnings} for i, f in enumerate(inputs)],
              "params": params, "bootstrap": {"n": n_boot, "seed": seed, "level": LEVEL,
                                              "difference": "percentile interval of paired resample differences"},
              "laws": compare(inputs)}
    plots = {k: p.name for k, p in make_compare_plots(inputs, result, out).items()}
    result["plots"] = plots
    write_json_atomic(out / "compare.json", result)
    report = out / "compare.md"
    write_text_atomic(report, report_text(result, plots))
    return report


def main(argv: list[str]) -> int:
    """`sweep compare A B [...]`: 0 on success, 2 (one line on stderr, nothing written) on input it cannot use."""
    parser = argparse.ArgumentParser(prog="sweep compare", description="fit two or more sweeps alike and compare "
                                     "their scaling laws")
    parser.add_argument("inputs", nargs="*", type=Path, help="sweep directories or CSVs (as sweep analyze takes "
                        "them); the first is the reference of every difference")
    parser.add_argument("--out", type=Path, help="output directory (default: ./compare-<names>/)")
    parser.add_argument("--params", default="non_embedding", choices=CONVENTIONS, help="parameter convention")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples per input")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        report = run(args.inputs, args.out, args.params, args.bootstrap, args.seed)
    except AnalysisError as err:
        print(f"sweep compare: {err}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    print(f"sweep compare: {report}")
    return 0
