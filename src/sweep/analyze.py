"""`sweep analyze`: read a sweep directory (or a CSV of published runs), fit every law, bootstrap, report.

Loading and validation live here; the numerics are in fit.py, plots/report.md/wandb in report.py.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import fit

CONVENTIONS = ("non_embedding", "total", "matmul")
SKIP_DIRS = {"analysis", "cache", "wandb"}  # and anything starting with "." (.hydra, .submitit)
EXIT_INPUT_ERROR = 2


class AnalysisError(ValueError):
    """Input the analysis cannot use: the message names the file, row or column and the fix."""


@dataclass
class Dataset:
    runs: pd.DataFrame  # run_name, N, D, C, loss, budget (NaN: none), model, seed
    points: pd.DataFrame  # eval points: run (row of runs), D, C, loss
    source: str
    params: str
    budget_basis: str  # where FLOP budgets came from: flops_budget | group column | log-binned flops
    excluded: list[dict] = field(default_factory=list)
    sweep_name: str = "sweep"
    logger: dict = field(default_factory=dict)  # the runs' logger config (wandb mode/project)
    has_curves: bool = False


# --------------------------------------------------------------------------------------------- loading
def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _read_config(path: Path) -> dict:
    import yaml

    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def _read_eval_points(path: Path) -> list[tuple[float, float, float]]:
    points = []
    if not path.exists():
        return points
    for line in path.read_text().splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line of a killed run must not sink the analysis
        if all(_positive(ev.get(k)) for k in ("tokens", "flops", "val_loss")):
            points.append((float(ev["tokens"]), float(ev["flops"]), float(ev["val_loss"])))
    return points


def load_sweep(sweep_dir: Path, params: str) -> Dataset:
    if not sweep_dir.is_dir():
        raise AnalysisError(f"{sweep_dir} is not a directory; pass a sweep directory (<out_dir>/<sweep name>) "
                            f"or --csv FILE")
    rows, points, excluded, logger, sweep_names = [], [], [], {}, set()
    for d in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
        if d.name in SKIP_DIRS or d.name.startswith("."):
            continue
        summary_path, config_path = d / "summary.json", d / "config.yaml"
        if not summary_path.exists():
            if config_path.exists() or (d / "metrics.jsonl").exists():
                excluded.append({"run_name": d.name, "reason": "incomplete: no summary.json (running, or stopped)"})
            continue
        try:
            s = json.loads(summary_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            excluded.append({"run_name": d.name, "reason": f"unreadable summary.json: {err}"})
            continue
        if s.get("status") != "completed":
            why = s.get("error") or ""
            excluded.append({"run_name": d.name, "reason": f"status {s.get('status')!r}" + (f": {why}" if why else "")})
            continue
        n = (s.get("n_params") or {}).get(params)
        bad = [k for k, v in (("n_params." + params, n), ("tokens", s.get("tokens")), ("flops", s.get("flops")),
                              ("val_loss", s.get("val_loss"))) if not _positive(v)]
        if bad:
            excluded.append({"run_name": d.name, "reason": f"summary.json has no positive {', '.join(bad)}"})
            continue
        cfg = _read_config(config_path)
        logger = logger or (cfg.get("logger") or {})
        sweep_names.add((cfg.get("sweep") or {}).get("name") or s.get("sweep") or sweep_dir.name)
        budget = s.get("flops_budget")
        tpp = (cfg.get("train") or {}).get("tokens_per_param")
        rows.append({"run_name": s.get("run_name", d.name), "N": float(n), "D": float(s["tokens"]),
                     "C": float(s["flops"]), "loss": float(s["val_loss"]),
                     "budget": float(budget) if _positive(budget) else np.nan,
                     "tpp_req": float(tpp) if _positive(tpp) else np.nan, "model": s.get("model"),
                     "seed": s.get("seed")})
        points += [(len(rows) - 1, n, *p) for p in _read_eval_points(d / "metrics.jsonl")]
    if not rows:
        raise AnalysisError(f"no completed runs in {sweep_dir} (expected <run>/summary.json with status "
                            f"'completed'; {len(excluded)} incomplete or failed)")
    runs = pd.DataFrame(rows)
    pts = pd.DataFrame(points, columns=["run", "N", "D", "C", "loss"])
    has_curves = len(pts) > 0
    if not has_curves:  # Approach 1 still has each run's final point
        pts = runs.assign(run=np.arange(len(runs)))[["run", "N", "D", "C", "loss"]]
    basis = "flops_budget" if runs["budget"].notna().any() else "log-binned flops"
    if basis != "flops_budget":
        runs["budget"] = _bin_flops(runs["C"].to_numpy(), runs["N"].to_numpy())
    ds = Dataset(runs, pts, str(sweep_dir), params, basis, excluded, sorted(sweep_names)[0] if sweep_names
                 else sweep_dir.name, logger, has_curves)
    _check_sizes(ds)
    return ds


def _bin_flops(C: np.ndarray, N: np.ndarray, gap_decades: float = 0.03) -> np.ndarray:
    """FLOP groups when none were declared: runs within a small gap in log C share a budget (its geometric mean).

    Only groups with 3 or more sizes are kept (NaN otherwise): a stray run is no isoFLOP curve, and needs no warning.
    """
    labels = fit.size_clusters(C, rel_tol=10**gap_decades - 1)
    out = np.full(len(C), np.nan)
    for g in np.unique(labels):
        m = labels == g
        if len(np.unique(fit.size_clusters(N[m]))) >= 3:
            out[m] = np.exp(np.log(C[m]).mean())
    return out


def load_csv(path: Path) -> Dataset:
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as err:  # pandas' parser errors are ValueErrors
        raise AnalysisError(f"cannot read CSV {path}: {err}") from None
    df.columns = [str(c).strip() for c in df.columns]
    if df.empty:
        raise AnalysisError(f"CSV {path} has a header but no rows; add one row per training run")
    for col in ("n_params", "tokens", "loss"):
        if col not in df.columns:
            raise AnalysisError(f"CSV {path} has no column {col!r} (it has {', '.join(df.columns) or 'none'}); "
                                f"expected columns n_params,tokens,loss and optionally flops,group")
    for col in ("n_params", "tokens", "loss", "flops"):
        if col not in df.columns:
            continue
        values = pd.to_numeric(df[col], errors="coerce")
        bad = ~(np.isfinite(values) & (values > 0))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise AnalysisError(f"CSV {path}, row {i + 1} (line {i + 2}), column {col!r}: {df[col].iloc[i]!r} is not "
                                f"a positive number; every {col} must be > 0 (fix or delete the row; "
                                f"{int(bad.sum())} such row(s))")
        df[col] = values.astype(float)
    if "group" in df.columns and df["group"].isna().any():
        i = int(np.flatnonzero(df["group"].isna().to_numpy())[0])
        raise AnalysisError(f"CSV {path}, row {i + 1} (line {i + 2}): empty 'group'; give every row a group "
                            f"(its FLOP budget) or drop the column")
    C = df["flops"].to_numpy() if "flops" in df.columns else 6.0 * df["n_params"].to_numpy() * df["tokens"].to_numpy()
    runs = pd.DataFrame({"run_name": [f"row{i + 1}" for i in range(len(df))], "N": df["n_params"].to_numpy(),
                         "D": df["tokens"].to_numpy(), "C": C, "loss": df["loss"].to_numpy()})
    if "group" in df.columns:  # a group's budget: the geometric mean of its runs' FLOPs
        runs["budget"] = np.exp(pd.Series(np.log(C)).groupby(df["group"].to_numpy()).transform("mean").to_numpy())
        basis = "group column"
    else:
        runs["budget"], basis = _bin_flops(C, runs["N"].to_numpy()), "log-binned flops"
    pts = runs.assign(run=np.arange(len(runs)))[["run", "N", "D", "C", "loss"]]
    # N is whatever the CSV counted: the --params convention only chooses among a sweep's counts
    ds = Dataset(runs, pts, str(path), "the CSV's n_params", basis, sweep_name=Path(path).stem)
    _check_sizes(ds)
    return ds


def _check_sizes(ds: Dataset) -> None:
    n_sizes = len(np.unique(fit.size_clusters(ds.runs["N"].to_numpy())))
    if n_sizes < 2:
        raise AnalysisError(f"{ds.source}: all {len(ds.runs)} runs have one model size "
                            f"({ds.runs['N'].iloc[0]:.4g} parameters); a scaling law needs at least 2 sizes "
                            f"(ideally 4 or more)")
    if len(ds.runs) < 5:
        raise AnalysisError(f"{ds.source}: {len(ds.runs)} runs; L(N, D) has 5 parameters, give at least 5 runs")


# ------------------------------------------------------------------------------------------ estimation
CI_NAMES = {"E", "A", "B", "alpha", "beta", "G", "a", "b", "N_opt", "D_opt", "L_opt", "tpp",
            "N_opt_a2", "D_opt_a2", "tpp_a2", "N_opt_flops", "D_opt_flops", "tpp_flops"}


class Estimator:
    """Which law is fitted to which runs. `compute(w)` does every fit with run weights w (bootstrap counts)."""

    def __init__(self, ds: Dataset):
        r, p = ds.runs, ds.points
        self.N, self.D, self.C, self.L = (r[k].to_numpy(float) for k in ("N", "D", "C", "loss"))
        self.budget = r["budget"].to_numpy(float)
        self.pts = {k: p[k].to_numpy() for k in ("run", "N", "D", "C", "loss")}
        self.curves = ds.has_curves
        self.sizes = fit.size_clusters(self.N)
        self.a3 = fit.LseFitter(np.column_stack([self.N, self.D]), self.L)
        # L(N) at the tokens/param a ladder asked for; else each size's loss interpolated at one common tokens/param.
        tpp = r["tpp_req"].to_numpy(float) if "tpp_req" in r else np.full(len(r), np.nan)
        groups = [(f"tokens/param {g:.3g}", tpp == g) for g in np.unique(tpp[np.isfinite(tpp)])]
        groups = sorted((g for g in groups if len(np.unique(self.sizes[g[1]])) >= 3), key=lambda g: -g[1].sum())
        self.ln_groups = groups[:4]
        if not self.ln_groups and (t := self._common_tpp()) is not None:
            self.ln_groups = [(f"tokens/param {t:.3g}, interpolated per size", t)]
        self.fpt = fit.loglog_fit(self.N, self.C / self.D)  # the data's FLOPs per token against N
        self.own_flops = bool(np.abs(np.log(self.C / (6 * self.N * self.D))).max() > 0.05)
        hi = self.C.max()
        self.recipe_C = sorted({float(f"{c:.1g}") for c in [self.C.min(), hi, 10 * hi, 100 * hi, 1000 * hi]})
        self.warm: dict = {}

    def _size_curves(self, w):
        """Per size, (D, loss) sorted by D: its longest drawn run's eval curve, else its drawn runs' final losses."""
        out = {}
        for s in np.unique(self.sizes[w > 0]):
            runs = np.flatnonzero((self.sizes == s) & (w > 0))
            if self.curves:
                m = self.pts["run"] == runs[np.argmax(self.D[runs])]
                D, L = self.pts["D"][m], self.pts["loss"][m]
            else:
                D, L = self.D[runs], self.L[runs]
            order = np.argsort(D)
            out[s] = (float(self.N[runs].mean()), D[order], L[order])
        return out

    def _common_tpp(self) -> float | None:
        """The tokens/param reached by the most sizes (20, Chinchilla's, when it is among them; else the largest)."""
        spans = [(D[0] / n, D[-1] / n) for n, D, _ in self._size_curves(np.ones(len(self.L))).values()]
        cands = sorted({20.0, *[t for span in spans for t in span]})
        cover = [sum(lo <= t <= hi for lo, hi in spans) for t in cands]
        best = [t for t, c in zip(cands, cover) if c == max(cover)]
        if max(cover) < 3:
            return None
        return 20.0 if 20.0 in best else best[-1]

    def _ln_points(self, spec, w):
        """The (N, loss, weight) points L(N) is fitted to: a ladder's runs, or per size its loss at tokens/param t."""
        if not isinstance(spec, float):
            m = spec & (w > 0)
            return self.N[m], self.L[m], w[m]
        n, loss = [], []
        for size, D, L in self._size_curves(w).values():
            d = spec * size
            if D[0] * (1 - 1e-9) <= d <= D[-1] * (1 + 1e-9):  # interpolate only, in log-log
                n.append(size)
                loss.append(float(np.exp(np.interp(np.log(d), np.log(D), np.log(L)))))
        return np.array(n), np.array(loss), np.ones(len(n))

    def compute(self, w=None, full: bool = False) -> dict:
        w = np.ones(len(self.L)) if w is None else w
        warm = None if full else self.warm
        f3 = self.a3.fit(w, n_refine=8 if full else 0, warm=None if full else warm["a3"])
        p3 = fit.approach3_params(f3.theta)
        out = {"approach3": {**p3, "objective": f3.objective, "n_points": int((w > 0).sum()),
                             "starts": f3.starts, "at_bound": f3.at_bound, "negligible": f3.negligible,
                             "theta": [float(t) for t in f3.theta]}}
        out["allocation"] = {**fit.allocation(p3), "convention": "C = 6ND"}
        a2 = fit.fit_isoflop(self.N, self.D, self.L, self.budget, w) if self._has_budgets() else None
        out["approach2"] = a2 if a2 is not None else {"skipped": "the runs do not form FLOP budgets "
                                                      "(no two budgets with 3 or more model sizes)"}
        for row in out["approach2"].get("budgets", []):
            row["key"], row["tpp"] = f"{row['C']:.4g}", row["D_opt"] / row["N_opt"]
        out["approach1"] = fit.fit_envelope(self.pts["C"], self.pts["N"], self.pts["D"], self.pts["loss"],
                                            self.pts["run"], w=np.asarray(w))
        out["approach1"]["source"] = "eval points of all runs" if self.curves else "final point of each run"
        out["recipe"] = self._recipe(p3, out["approach2"])
        out["kaplan"] = {"form": "L(N) = E + A/N^alpha", "fits": []}
        if not self.ln_groups:
            out["kaplan"]["skipped"] = ("no tokens/param that 3 or more sizes reach (not a ladder, and the sizes' "
                                        "eval curves do not overlap in tokens/param)")
        for key, spec in self.ln_groups:
            n, loss, wb = self._ln_points(spec, w)
            if len(n) < 3 or len(np.unique(fit.size_clusters(n))) < 3:
                continue
            fl = fit.LseFitter(n, loss).fit(wb, n_refine=6 if full else 0, warm=None if full else warm.get(key))
            out["kaplan"]["fits"].append({"key": key, **fit.power_params(fl.theta), "n_sizes": int(len(np.unique(n))),
                                          "at_bound": fl.at_bound, "negligible": fl.negligible,
                                          "theta": [float(t) for t in fl.theta]})
        if full:
            self.warm = {"a3": f3.theta, **{f["key"]: np.array(f["theta"]) for f in out["kaplan"]["fits"]}}
        return out

    def keeps_budgets(self, w) -> bool:
        """A resample is redrawn if a budget of 4+ sizes is left with fewer than 3 (no parabola).

        A budget of exactly 3 sizes is not protected: only the original draw would keep it, and conditioning on
        that would give every resample the same parabola (a zero-width interval); there it may drop out instead.
        """
        for c in np.unique(self.budget[np.isfinite(self.budget)]):
            m = self.budget == c
            if len(np.unique(self.sizes[m])) >= 4 and len(np.unique(self.sizes[m & (w > 0)])) < 3:
                return False
        return True

    def _has_budgets(self) -> bool:
        ok = [c for c in np.unique(self.budget[np.isfinite(self.budget)])
              if len(np.unique(self.sizes[self.budget == c])) >= 3]
        return len(ok) >= 2

    def _recipe(self, p3: dict, a2: dict) -> list[dict]:
        rows = []
        n3, d3 = fit.optimal_nd(p3, self.recipe_C)
        for i, c in enumerate(self.recipe_C):
            row = {"key": f"{c:.3g}", "C": c, "N_opt": float(n3[i]), "D_opt": float(d3[i]), "tpp": float(d3[i] / n3[i])}
            if self.own_flops:  # the same law's optimum under the data's own FLOPs per token (not 6ND)
                n, d = fit.optimal_nd_flops(p3, c, *self.fpt)
                row.update(N_opt_flops=n, D_opt_flops=d, tpp_flops=d / n)
            if "a" in a2:
                n, d = a2["k_N"] * c ** a2["a"], a2["k_D"] * c ** a2["b"]
                row.update(N_opt_a2=n, D_opt_a2=d, tpp_a2=d / n)
            rows.append(row)
        return rows

    def holdout(self) -> dict:
        """Fit without the largest size, predict its runs' final losses (Approach 3, and L(N) on its basis)."""
        out = {}

        def a3(train, test):
            th = self.a3.fit(train.astype(float), n_refine=8).theta
            return self.a3.predict(th, np.column_stack([self.N, self.D])[test]), self.L[test]

        out["approach3"] = fit.holdout_largest(self.N, a3)
        out["kaplan"] = None
        if self.ln_groups:
            key, spec = self.ln_groups[0]
            n, loss, _ = self._ln_points(spec, np.ones(len(self.L)))

            def ln(train, test):
                f = fit.LseFitter(n[train], loss[train])
                return f.predict(f.fit(n_refine=6).theta, n[test]), loss[test]

            out["kaplan"] = fit.holdout_largest(n, ln)
        if out["kaplan"]:
            out["kaplan"]["basis"] = key
        return out


def fit_loss_vs_tokens(ds: Dataset, est: Estimator) -> list[dict]:
    """L(D) = E + B/D^beta per size: from its runs at several horizons, else from its longest run's eval curve."""
    out = []
    for s in np.unique(est.sizes):
        runs = np.flatnonzero(est.sizes == s)
        D, L, basis = est.D[runs], est.L[runs], "final loss of runs at several horizons"
        if len(np.unique(fit.size_clusters(D))) < 4 and est.curves:
            r = runs[np.argmax(est.D[runs])]
            m = (est.pts["run"] == r) & (est.pts["D"] >= 0.1 * est.D[r])  # past the first tenth: warmup noise
            D, L, basis = est.pts["D"][m], est.pts["loss"][m], f"eval curve of {ds.runs['run_name'].iloc[r]}"
        if len(np.unique(fit.size_clusters(D))) < 4:
            continue
        f = fit.LseFitter(D, L).fit(n_refine=4)
        p = fit.power_params(f.theta)
        out.append({"key": f"{est.N[runs].mean():.4g}", "N": float(est.N[runs].mean()), "E": p["E"], "B": p["A"],
                    "beta": p["alpha"], "n_points": int(len(L)), "basis": basis, "at_bound": f.at_bound,
                    "negligible": f.negligible})
    return out


def estimate(ds: Dataset, n_boot: int = 200, seed: int = 0) -> dict:
    """Every fit on the full data, bootstrap intervals over runs, holdout checks and warnings: fits.json's content."""
    from . import report

    est = Estimator(ds)
    with fit.single_threaded_blas():
        res = est.compute(full=True)
        res["holdout"] = est.holdout()
        res["loss_vs_tokens"] = fit_loss_vs_tokens(ds, est)
        strata = ds.runs["budget"].to_numpy() if ds.budget_basis != "log-binned flops" else None
        samples = fit.bootstrap(lambda w: fit.flatten_estimates(est.compute(w), CI_NAMES), len(est.L), n_boot, seed,
                                None if strata is None else np.nan_to_num(strata, nan=-1.0),
                                accept=est.keeps_budgets) if n_boot > 0 else {}
    cis = {k: fit.percentile_ci(v) for k, v in samples.items()}
    fit.attach_intervals(res, {k: c["ci"] for k, c in cis.items()})
    warnings = report.diagnostics(res, len(np.unique(est.sizes)), len(est.L), cis, n_boot)
    res.update(params=ds.params, source=ds.source, sweep=ds.sweep_name, budget_basis=ds.budget_basis,
               bootstrap={"n": n_boot, "seed": seed, "level": 0.95, "method": "percentile; runs resampled with "
                          "replacement" + (" within FLOP budgets" if strata is not None else "") +
                          "; a resample leaving a budget of 4+ sizes with fewer than 3 is redrawn",
                          "n_valid_min": min((c["n_valid"] for c in cis.values()), default=0)},
               runs={"used": len(ds.runs), "excluded": ds.excluded, "names": ds.runs["run_name"].tolist()},
               flops_per_token_fit={"exponent": est.fpt[0], "coefficient": est.fpt[1], "is_6N": not est.own_flops},
               warnings=warnings)
    return res


# ------------------------------------------------------------------------------------------- run, main
def run(sweep_dir: Path | None = None, csv: Path | None = None, out: Path | None = None,
        params: str = "non_embedding", bootstrap: int = 200, wandb_mode: str = "auto", seed: int = 0) -> Path:
    """Analyse a sweep directory or a CSV; write fits.json, report.md and plots; return report.md's path."""
    return _analyze(sweep_dir, csv, out, params, bootstrap, wandb_mode, seed)[0]


def _analyze(sweep_dir, csv, out, params, n_boot, wandb_mode, seed) -> tuple[Path, dict]:
    from . import report

    if params not in CONVENTIONS:
        raise AnalysisError(f"unknown parameter convention {params!r}; use one of {', '.join(CONVENTIONS)}")
    if (sweep_dir is None) == (csv is None):
        raise AnalysisError("give exactly one of a sweep directory or --csv FILE")
    if wandb_mode not in ("auto", "off", "disabled", "offline", "online"):
        raise AnalysisError(f"--wandb {wandb_mode!r}: use auto, off, offline or online")
    ds = load_sweep(Path(sweep_dir), params) if sweep_dir is not None else load_csv(Path(csv))
    out = Path(out) if out is not None else (Path(sweep_dir) / "analysis" if sweep_dir is not None
                                             else Path(csv).with_suffix("").parent / f"{Path(csv).stem}_analysis")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise AnalysisError(f"cannot create the output directory {out} ({err.strerror}); pass --out DIR") from None
    fits = estimate(ds, n_boot=n_boot, seed=seed)
    return report.write(ds, fits, out, wandb_mode=_wandb_mode(ds, wandb_mode)), fits


def _wandb_mode(ds: Dataset, requested: str) -> str:
    if requested != "auto":
        return "off" if requested == "disabled" else requested
    if ds.logger.get("name") == "wandb" and ds.logger.get("mode", "offline") != "disabled":
        return ds.logger.get("mode") or "offline"
    return "off"


def main(argv: list[str]) -> int:
    """`sweep analyze ...`: 0 on success, 2 (one line on stderr) on input the analysis cannot use."""
    from . import report

    parser = argparse.ArgumentParser(prog="sweep analyze", description="fit scaling laws to a sweep or a CSV")
    parser.add_argument("sweep_dir", nargs="?", type=Path, help="a sweep directory: <out_dir>/<sweep name>")
    parser.add_argument("--csv", type=Path, help="columns n_params,tokens,loss[,flops][,group] instead of a sweep")
    parser.add_argument("--out", type=Path, help="output directory (default: SWEEP_DIR/analysis)")
    parser.add_argument("--params", default="non_embedding", choices=CONVENTIONS, help="parameter convention")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples over runs (0: none)")
    parser.add_argument("--wandb", default="auto", choices=("auto", "off", "offline", "online"),
                        help="analysis run in wandb (auto: as the runs' logger config)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        report_path, fits = _analyze(args.sweep_dir, args.csv, args.out, args.params, args.bootstrap,
                                     args.wandb, args.seed)
    except AnalysisError as err:
        print(f"sweep analyze: {err}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    print(report.summary_text(fits, report_path))
    return 0
