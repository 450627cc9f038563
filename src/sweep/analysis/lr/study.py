"""The analysis of a learning-rate sweep (`sweep=lr`, issue #11): per model size the best peak lr from a parabola of
final loss in ln lr; across sizes the power law lr*(N) = lr_ref·(N/n_ref)^exponent over matmul parameter counts;
the study (result/lr.py's LrStudy); which runs the ordinary laws should see. Pure numerics on ds.runs, no
I/O; the rule file lr_rule.json (that `train.lr_rule=FILE` reads), the figure and the report section are
report/lr.py.

Intended call sequence in `sweep analyze` (wired by main.py / estimate.py):

    lr = analyze_lr(ds.runs, meta)            # meta: {"data": ..., "sweep": ...}; None: not an lr study
    if lr is not None:
        fits.lr = lr                          # an LrStudy
        keep = best_lr_runs(ds.runs)          # the ordinary laws get one lr per size/horizon cell; the others are
                                              # listed as left out ("not the best lr of its size")
        if lr.law: report.lr.write_rule(out / "lr_rule.json", lr, meta)
        fig = report.lr.plot_lr(lr); fig.savefig(out / "lr.png"); plt.close(fig)
        lines += report.lr.report_lines(lr, rule_path=out / "lr_rule.json")

An lr study: ≥ 2 sizes with ≥ 3 distinct lrs each at one horizon (the same requested tokens/param, else the same
tokens within 1%) and the same other hyperparameters. beta2 / batch_tokens, when a size was run at several values,
cut the runs into slices analysed apart (only when ds.runs carries them as columns: runs that differ in a setting
it lacks look like repeats, which a warning names); the slice with the lowest mean best loss (over the sizes all
slices share) gives the rule, and with batch_tokens swept each size's best batch gives batch*(N) alike (not in the
rule file).

Per size the best lr and its interval, across sizes the law and its interval: lr/fit.py says how (parametric
bootstrap of each size's parabola; random-effects weighted least squares with Knapp–Hartung intervals). A size
whose lowest loss is at an edge of the lrs tried is a bound and is left out of the law.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ...files import json_safe
from ..inputs.sizes import size_clusters
from ..result.lr import LrStudy
from .fit import SIGMA_FLOOR, fit_curve, levels, power_law, vertex_interval

N_SIM = 2000  # parametric-bootstrap resamples per size
SLICE_COLUMNS = ("beta2", "batch_tokens")


# ---------------------------------------------------------------------------------------------- the runs
def _frame(runs: pd.DataFrame) -> tuple[pd.DataFrame, str] | None:
    """The runs with a positive finite lr, size and loss: size label, n, x = ln lr, loss, horizon, slice."""
    if "lr" not in runs or "loss" not in runs or len(runs) == 0:
        return None
    params = "matmul" if "N_matmul" in runs and runs["N_matmul"].notna().any() else "N"
    num = {k: pd.to_numeric(runs[c], errors="coerce").to_numpy(float)
           for k, c in (("n", "N_matmul" if params == "matmul" else "N"), ("lr", "lr"), ("loss", "loss"))}
    ok = np.all([np.isfinite(v) & (v > 0) for v in num.values()], axis=0)
    if ok.sum() < 6:
        return None
    r = runs[ok]
    f = pd.DataFrame({"n": num["n"][ok], "x": np.log(num["lr"][ok]), "loss": num["loss"][ok]}, index=r.index)
    named = r["model"].notna().to_numpy() if "model" in r else np.zeros(len(r), bool)
    f["model"] = np.where(named, r["model"].astype(str) if "model" in r else "", [f"N={n:.3g}" for n in f["n"]])
    f["size"] = size_clusters(f["n"].to_numpy())
    tpp = pd.to_numeric(r["tpp_req"], errors="coerce").to_numpy(float) if "tpp_req" in r else np.full(len(r), np.nan)
    D = pd.to_numeric(r["D"], errors="coerce").to_numpy(float) if "D" in r else np.full(len(r), np.nan)
    horizon = np.array([f"tokens/param {t:.4g}" for t in tpp], dtype=object)
    no_tpp = ~np.isfinite(tpp) & np.isfinite(D) & (D > 0)
    if no_tpp.any():  # no tokens/param asked for: the same tokens within 1% is one horizon
        lab = size_clusters(D[no_tpp], rel_tol=0.01)
        geo = pd.Series(np.log(D[no_tpp])).groupby(lab).transform("mean").to_numpy()
        horizon[no_tpp] = [f"tokens {math.exp(g):.4g}" for g in geo]
    f["horizon"], f["tpp"] = horizon, tpp
    for c in ("epochs", "seed"):
        f[c] = pd.to_numeric(r[c], errors="coerce").to_numpy(float) if c in r else np.nan
    keys = []
    for c in SLICE_COLUMNS:
        if c in r:
            f[c] = pd.to_numeric(r[c], errors="coerce").to_numpy(float)
            if f.groupby(["size", "horizon"])[c].nunique(dropna=False).max() > 1:
                keys.append(c)
    f["slice"] = [", ".join(f"{c}={v:.6g}" for c, v in zip(keys, vals)) for vals in
                  (f[keys].to_numpy() if keys else [()] * len(f))]
    f.attrs["slice_keys"] = keys
    return f, params


def _n_levels(g: pd.DataFrame) -> int:
    return int(levels(g["x"].to_numpy()).max()) + 1


def _study_groups(f: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(horizon, slice, runs) of each group with ≥ 2 sizes at ≥ 3 lrs."""
    out = []
    for (h, s), g in f.groupby(["horizon", "slice"], sort=True):
        if sum(_n_levels(gs) >= 3 for _, gs in g.groupby("size")) >= 2:
            out.append((h, s, g))
    return out


def find_lr_study(runs: pd.DataFrame) -> bool:
    """Whether the runs hold an lr study: ≥ 2 sizes with ≥ 3 lrs each at one horizon and slice."""
    fr = _frame(runs)
    return fr is not None and bool(_study_groups(fr[0]))


def _no_law_reason(rows: list[dict], what: str = "lr") -> str:
    used = [r["model"] for r in rows if r["in_law"]]
    out = [f"{r['model']} ({r['left_out']})" for r in rows if r["left_out"]]
    return (f"only {len(used)} size(s) with an interior best {what}" + (f" ({', '.join(used)})" if used else "")
            + "; a rule needs 3" + (f". Left out: {'; '.join(out)}" if out else "")
            + f". Extend the {what} grid past the edge (or add sizes) and rerun")


# ---------------------------------------------------------------------------------------- one study
def _left_out(ft: dict, what: str = "lr") -> str | None:
    """Why a size's optimum stays out of the law (None: it is in)."""
    k = len(ft["xl"])
    if k < 3:
        return f"only {k} {what}(s) tried"
    if ft["edge"]:
        low = ft["edge"] == "low"
        return (f"edge: lowest loss at the {'smallest' if low else 'largest'} {what} tried, the optimum is at or "
                f"{'below' if low else 'above'} it")
    if ft["down"]:
        return "the parabola opens downward (too noisy or flat to place the optimum)"
    return f"the parabola's vertex lies outside the {what}s tried" if ft["outside"] else None


def _study(g: pd.DataFrame, rng, n_sim: int) -> dict:
    """The per-size table and the law of one (horizon, slice) group of runs."""
    fits = [(gs, fit_curve(gs["x"].to_numpy(), gs["loss"].to_numpy())) for _, gs in g.groupby("size")]
    dof = sum(ft["dof"] for _, ft in fits if ft["coef"] is not None)
    rss = sum(ft["rss"] for _, ft in fits if ft["coef"] is not None)
    fitted = math.sqrt(rss / dof) if dof else None
    sigma = None if fitted is None else max(SIGMA_FLOOR, fitted)
    rows = []
    for gs, ft in fits:
        ci, se, left_out = None, None, _left_out(ft)
        flags = [left_out] if left_out else []
        if left_out is None and sigma is None:
            flags.append("no interval: every window is 3 lrs × 1 run, the residual scale is unknown")
        elif left_out is None:
            ln_ci, se, reaches = vertex_interval(ft, sigma, dof, rng, n_sim)
            ci = [math.exp(ln_ci[0]), math.exp(ln_ci[1])]
            if reaches:
                flags.append("the interval reaches the edge of the fitted window (a bound there)")
        models = sorted(set(gs["model"]))
        para = None if ft["coef"] is None else {"coef": [float(c) for c in ft["coef"]], "center_lr": math.exp(ft["x0"]),
                                                "window_lr": [math.exp(ft["x0"] + w) for w in ft["window"]]}
        n = float(gs["n"].median())
        rows.append({"key": "/".join(models), "model": "/".join(models), "n_params": n,
                     "lrs": np.exp(ft["xl"]).tolist(), "losses": ft["yl"].tolist(), "n_runs": len(gs),
                     "best_lr": math.exp(ft["x_best"]), "ci": ci, "se_ln": se, "best_loss": float(ft["y_best"]),
                     "edge": ft["edge"], "opens_down": ft["down"], "in_law": left_out is None, "left_out": left_out,
                     "flags": flags, "parabola": para})
    rows.sort(key=lambda r: r["n_params"])
    out = {"per_size": rows, "law": None, "no_rule": None, "warnings": [],
           "noise": {"sigma": sigma, "sigma_fitted": fitted, "dof": dof, "floor": SIGMA_FLOOR}}
    for r in rows:
        if r["edge"]:
            out["warnings"].append(f"{r['model']}: best lr at the {r['edge']} edge of the lrs tried "
                                   f"({r['best_lr']:.3g}): a bound, left out of the law; extend the grid "
                                   f"{'below' if r['edge'] == 'low' else 'above'} it")
    use = [r for r in rows if r["in_law"]]
    if len(use) < 3:
        out["no_rule"] = _no_law_reason(rows)
        return out
    n = np.array([r["n_params"] for r in use])
    se = None if any(r["se_ln"] is None for r in use) else np.array([max(r["se_ln"], 1e-9) for r in use])
    out["law"] = {**power_law(n, np.array([r["best_lr"] for r in use]), se), "sizes": [r["model"] for r in use]}
    if n.max() < 4 * n.min():
        out["warnings"].append(f"the fitted sizes span only a factor {n.max() / n.min():.3g}: the exponent is not "
                               f"pinned down")
    return out


def _rank_slices(studies: list[dict]) -> list[float]:
    """Each slice's mean best loss over the sizes (≥ 3 lrs) every slice has (its own when they share none): lower is
    better."""
    have = [{r["model"] for r in s["per_size"] if len(r["lrs"]) >= 3} for s in studies]
    common = set.intersection(*have)
    return [float(np.mean([r["best_loss"] for r in s["per_size"] if r["model"] in (common or h)]))
            for s, h in zip(studies, have)]


def _batch_law(studies: list[dict], best: dict) -> dict | None:
    """batch*(N): per size, the best batch from a parabola in ln batch of the best losses of the slices that differ
    from the best slice in batch_tokens only (no per-size interval); the law over ≥ 3 interior sizes is unweighted,
    with the ordinary t interval."""
    same = [s for s in studies if {k: v for k, v in s["slice_values"].items() if k != "batch_tokens"}
            == {k: v for k, v in best["slice_values"].items() if k != "batch_tokens"}]
    points: dict[str, list] = {}
    for s in same:
        for r in s["per_size"]:
            if len(r["lrs"]) >= 3:
                points.setdefault(r["model"], [r["n_params"], [], []])
                points[r["model"]][1].append(math.log(s["slice_values"]["batch_tokens"]))
                points[r["model"]][2].append(r["best_loss"])
    rows = []
    for model, (n, x, y) in points.items():
        ft = fit_curve(np.array(x), np.array(y))
        left_out = _left_out(ft, "batch")
        rows.append({"model": model, "n_params": n, "batches": np.exp(ft["xl"]).tolist(),
                     "best_losses": ft["yl"].tolist(),
                     "best_batch": math.exp(ft["x_best"]), "edge": ft["edge"], "in_law": left_out is None,
                     "left_out": left_out, "flags": [left_out] if left_out else []})
    rows.sort(key=lambda r: r["n_params"])
    use = [r for r in rows if r["in_law"]]
    law = power_law([r["n_params"] for r in use], [r["best_batch"] for r in use], None) if len(use) >= 3 else None
    if law:
        law["batch_ref"], law["ci"]["batch_ref"] = law.pop("lr_ref"), law["ci"].pop("lr_ref")
    return {"per_size": rows, "law": law, "no_rule": None if law else _no_law_reason(rows, "batch")}


# ------------------------------------------------------------------------------------------ entry points
def analyze_lr(runs: pd.DataFrame, meta: dict | None = None, n_sim: int = N_SIM, seed: int = 0) -> LrStudy | None:
    """The lr study in ds.runs (fits.json's `lr`), None when the runs hold none. Its numerics build it as the JSON-safe
    record fits.json holds; it is returned read into LrStudy by fits.json's own reader, so the two cannot differ.

    Keys: params, horizon, tokens_per_param, slice, per_size, law (None: no rule, `no_rule` says why), noise,
    slices (each slice's mean best loss, when beta2/batch_tokens were swept), batch (batch*(N), when batch_tokens
    was swept), others (the other horizons' laws), warnings, meta.
    """
    fr = _frame(runs)
    groups = _study_groups(fr[0]) if fr is not None else []
    if not groups:
        return None
    f, params = fr
    keys = f.attrs["slice_keys"]
    studies = []
    for i, (h, sl, g) in enumerate(groups):
        s = _study(g, np.random.default_rng([seed, i]), n_sim)
        tpp = g["tpp"].iloc[0]
        ep = g["epochs"].max()
        if np.isfinite(ep) and ep > 1:
            s["warnings"].append(f"the runs saw their data up to {ep:.3g} times: these optima are for repeated data")
        if g.groupby(["size", g["x"].round(3), "seed"]).size().max() > 1:
            s["warnings"].append("some runs share size, lr and seed: they differ in a setting the runs table does not "
                                 "carry (beta2? batch_tokens?) and are treated as repeats")
        studies.append({"horizon": h, "tokens_per_param": float(tpp) if np.isfinite(tpp) else None, "slice": sl,
                        "slice_values": {c: json_safe(float(g[c].iloc[0])) for c in keys}, "n_runs": len(g), **s})
    depth = {h: max(sum(len(r["lrs"]) >= 3 for r in s["per_size"]) for s in studies if s["horizon"] == h)
             for h in {s["horizon"] for s in studies}}
    main_h = max(depth, key=lambda h: (depth[h], sum(s["n_runs"] for s in studies if s["horizon"] == h), h))
    at_h = [s for s in studies if s["horizon"] == main_h]
    scores = _rank_slices(at_h)
    best = at_h[int(np.argmin(scores))]
    others = [{k: s[k] for k in ("horizon", "slice", "law", "no_rule")} for s in studies if s["horizon"] != main_h]
    out = {"params": params, **best, "slices": None, "batch": None, "meta": dict(meta or {}), "others": others}
    out["warnings"] = list(best["warnings"])
    if params != "matmul":
        out["warnings"].append("no matmul parameter counts (N_matmul): the law is over N, and makes no rule file")
    if len(at_h) > 1:
        out["slices"] = [{"slice": s["slice"], "mean_best_loss": sc, "law": s["law"], "no_rule": s["no_rule"]}
                         for s, sc in zip(at_h, scores)]
        out["warnings"].append(f"{len(at_h)} slices ({', '.join(keys)}): the rule is from the best, {best['slice']}")
        if "batch_tokens" in keys:
            out["batch"] = _batch_law(at_h, best)
    return LrStudy.from_json(json_safe(out), "lr")


def best_lr_runs(runs: pd.DataFrame) -> pd.Index:
    """The runs the ordinary laws should see: in each (size, horizon) cell run at several lrs (or beta2/batch
    slices), the runs at the lr closest (in ln lr) to the best of its best slice (lowest best loss); every other
    run (one setting per cell, no lr) as it is."""
    fr = _frame(runs)
    if fr is None:
        return runs.index
    f, _ = fr
    drop: list = []
    for _, cell in f.groupby(["size", "horizon"]):
        if _n_levels(cell) < 2 and cell["slice"].nunique() < 2:
            continue
        best = None
        for _, g in cell.groupby("slice"):
            ft = fit_curve(g["x"].to_numpy(), g["loss"].to_numpy())
            if best is None or ft["y_best"] < best[0]:
                best = (ft["y_best"], ft, g)
        _, ft, g = best
        lev = levels(g["x"].to_numpy())
        keep = set(g.index[lev == int(np.argmin(np.abs(ft["xl"] - ft["x_best"])))])
        drop += [i for i in cell.index if i not in keep]
    return runs.index[~runs.index.isin(drop)]
