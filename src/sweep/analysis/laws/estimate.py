"""Every fit on a Dataset: `Estimator` says which law is fitted to which runs (Approaches 1-3, the allocation and
recipe, L(N)), `fit_loss_vs_tokens` fits L(D) per size, and `estimate` runs them on the full data, over bootstrap
resamples of runs and with the largest size held out, into `Laws` (result/fits.py: fits.json's laws, with the report's
warnings). The fit kernels (approaches.py, lse.py) return plain records; their sections are made here.

Too few sizes or runs for Approach 3 (load.shortfall) leave it out, and the allocation and recipe with it: then
`approach3` and `allocation` hold only `error` (what is missing), and every law that can still be fitted is.

A Dataset's runs may be weighted bins (aggregate.py, a `weight` column): then every fit counts a bin as its runs,
and the bootstrap resamples bins. Work grows with the number of runs or bins, never with its square.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from .aggregate import AGGREGATE_ABOVE
from .bootstrap import percentile_ci
from .cooldown import compute_saved, trunk_units, unit_bootstrap
from .approaches import allocation, budget_groups, fit_envelope, fit_isoflop, holdout_largest, loglog_fit, optimal_nd, \
    optimal_nd_flops, safe_div, safe_pow, size_clusters
from ..inputs.load import Dataset, shortfall
from .lse import LseFitter, approach3_params, power_params, single_threaded_blas
from .diagnostics import diagnostics
from .seeds import seed_spread
from ..result.record import Value, numbers, walk_values
from ..result.laws import Allocation, Approach1, Approach2, Approach3, EnvelopePoint, Holdout, HoldoutCheck, \
    IsoflopMinimum, Kaplan, LawFit, ParamDraws, PowerFit, RecipeRow, Starts, TokensFit
from ..result.fits import Aggregation, BinSizes, Bootstrap, ExcludedRun, FlopsPerToken, Laws, RunsUsed
from ..result.beyond import LawParams

LAW3 = ("E", "A", "alpha", "B", "beta")  # Approach 3's parameters
MAX_LD_FITS = 40  # L(D) per size is descriptive: past this many sizes, a spread of 40 of them


def _groups(labels: np.ndarray, idx: np.ndarray) -> list[np.ndarray]:
    """idx split by labels[idx] (ascending labels), each part in index order."""
    idx = idx[np.argsort(labels[idx], kind="stable")]
    return np.split(idx, np.flatnonzero(np.diff(labels[idx])) + 1) if len(idx) else []


class Estimator:
    """Which law is fitted to which runs. `compute(w)` does every fit with run weights w (bootstrap counts)."""

    def __init__(self, ds: Dataset):
        r, p = ds.runs, ds.points
        self.N, self.D, self.C, self.L = (r[k].to_numpy(float) for k in ("N", "D", "C", "loss"))
        self.budget = r["budget"].to_numpy(float)
        self.sizes = size_clusters(self.N)
        self.isoflop = [g for g in budget_groups(self.budget) if len(np.unique(self.sizes[g])) >= 3]  # curves
        self.protected = [g for g in self.isoflop if len(np.unique(self.sizes[g])) >= 4]  # see keeps_budgets
        self.pts = {k: p[k].to_numpy() for k in ("run", "N", "D", "C", "loss")}
        self.curves = ds.has_curves
        self.w0 = r["weight"].to_numpy(float) if "weight" in r else np.ones(len(r))  # runs per bin
        self._run_points = {int(self.pts["run"][g[0]]): g for g in _groups(self.pts["run"], np.arange(len(p)))}
        self.missing = shortfall(ds)  # None: enough for Approach 3
        self.a3 = LseFitter(np.column_stack([self.N, self.D]), self.L) if self.missing is None else None
        # L(N) at the tokens/param a ladder asked for; else each size's loss interpolated at one common tokens/param.
        tpp = r["tpp_req"].to_numpy(float) if "tpp_req" in r else np.full(len(r), np.nan)
        groups = [(f"tokens/param {g:.3g}", tpp == g) for g in np.unique(tpp[np.isfinite(tpp)])]
        groups = sorted((g for g in groups if len(np.unique(self.sizes[g[1]])) >= 3), key=lambda g: -g[1].sum())
        self.ln_groups = groups[:4]
        if not self.ln_groups and (t := self._common_tpp()) is not None:
            self.ln_groups = [(f"tokens/param {t:.3g}, interpolated per size", t)]
        one_size = self.sizes.max() == 0  # no slope against N to fit: FLOPs per token taken ∝ N
        self.fpt = (1.0, float(np.mean(self.C / self.D / self.N))) if one_size else loglog_fit(self.N, self.C / self.D)
        self.own_flops = bool(np.abs(np.log(self.C / (6 * self.N * self.D))).max() > 0.05)
        hi = self.C.max()
        self.recipe_C = sorted({float(f"{c:.1g}") for c in [self.C.min(), hi, 10 * hi, 100 * hi, 1000 * hi]})
        self.warm: dict = {}

    def _size_curves(self, w):
        """Per size, (D, loss) sorted by D: its longest drawn run's eval curve, else its drawn runs' final losses."""
        out = {}
        for runs in _groups(self.sizes, np.flatnonzero(w > 0)):
            s = self.sizes[runs[0]]
            if self.curves:
                m = self.points_of(runs[np.argmax(self.D[runs])])
                D, L = self.pts["D"][m], self.pts["loss"][m]
            else:
                D, L = self.D[runs], self.L[runs]
            order = np.argsort(D)
            out[s] = (float(self.N[runs].mean()), D[order], L[order])
        return out

    def points_of(self, run: int) -> np.ndarray:
        """Indices of a run's eval points, in their order."""
        return self._run_points.get(int(run), np.zeros(0, int))

    def _common_tpp(self) -> float | None:
        """The tokens/param reached by the most sizes (20, Chinchilla's, when it is among them; else the largest),
        if 3 or more and a quarter of the sizes reach it (a continuum of sizes, each a run, has no such curves)."""
        spans = np.array([(D[0] / n, D[-1] / n) for n, D, _ in self._size_curves(np.ones(len(self.L))).values()])
        cands = np.unique(np.concatenate([[20.0], spans.ravel()]))
        # sizes whose span holds t: those starting at or below t, less those ending below it
        cover = np.searchsorted(np.sort(spans[:, 0]), cands, "right") - np.searchsorted(np.sort(spans[:, 1]), cands)
        if cover.max() < max(3, len(spans) / 4):
            return None
        best = cands[cover == cover.max()]
        return 20.0 if 20.0 in best else float(best[-1])

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

    def compute(self, w=None, full: bool = False) -> LawFit:
        w = self.w0 if w is None else self.w0 * w  # a bootstrap's counts of each run (or bin), times its runs
        warm = None if full else self.warm
        if self.a3 is None:
            a3, alloc = Approach3(error=self.missing), Allocation(error=self.missing)
        else:
            f3 = self.a3.fit(w, n_refine=3 if full else 0, warm=None if full else warm["a3"])
            p3 = approach3_params(f3.theta)
            a3 = Approach3(**_values(p3), objective=f3.objective, n_points=int((w > 0).sum()),
                           starts=Starts(**f3.starts), at_bound=f3.at_bound, negligible=f3.negligible,
                           theta=[float(t) for t in f3.theta])
            alloc = Allocation(**_values(allocation(p3)), convention="C = 6ND")
        a2 = _approach2(fit_isoflop(self.N, self.D, self.L, self.budget, w) if self._has_budgets() else None)
        if self.a3 is not None and a2.budgets:  # Approach 3's optimum beside each isoFLOP minimum, same FLOPs
            with np.errstate(all="ignore"):
                for row in a2.budgets:
                    n = optimal_nd_flops(p3, row.C, *self.fpt)[0] if self.own_flops else optimal_nd(p3, row.C)[0]
                    row.N_opt_approach3 = Value(float(np.asarray(n).ravel()[0]))
        # Approach 1 from where each schedule ended only: a point partway through a decaying (cosine) schedule is not
        # the loss a shorter run would reach. A cooldown branch is a run of its own, ending where its cooldown does.
        a1 = _approach1(fit_envelope(self.C, self.N, self.D, self.L, np.arange(len(self.L)), w=np.asarray(w)),
                        "final point of each run, where its schedule ended")
        with np.errstate(all="ignore"):  # an absurd exponent gives inf or NaN (null in fits.json), not a crash
            recipe = self._recipe(p3, a2) if self.a3 is not None else []
        kaplan = Kaplan(form="L(N) = E + A/N^alpha", fits=[])
        if not self.ln_groups:
            kaplan.skipped = ("no tokens/param that 3 or more sizes (and a quarter of them) reach "
                              "(not a ladder, and the sizes' eval curves do not overlap in tokens/param)")
        for key, spec in self.ln_groups:
            n, loss, wb = self._ln_points(spec, w)
            if len(n) < 3 or len(np.unique(size_clusters(n))) < 3:
                continue
            fl = LseFitter(n, loss).fit(wb, n_refine=6 if full else 0, warm=None if full else warm.get(key))
            kaplan.fits.append(PowerFit(key=key, **_values(power_params(fl.theta)), n_sizes=int(len(np.unique(n))),
                                        at_bound=fl.at_bound, negligible=fl.negligible,
                                        theta=[float(t) for t in fl.theta]))
        if full:
            self.warm = {"a3": a3.theta, **{f.key: np.array(f.theta) for f in kaplan.fits}}
        return LawFit(approach3=a3, allocation=alloc, approach2=a2, approach1=a1, recipe=recipe, kaplan=kaplan)

    def keeps_budgets(self, w) -> bool:
        """A resample is redrawn if a budget of 4+ sizes is left with fewer than 3 (no parabola).

        A budget of exactly 3 sizes is not protected: only the original draw would keep it, and conditioning on
        that would give every resample the same parabola (a zero-width interval); there it may drop out instead.
        """
        return all(len(np.unique(self.sizes[runs[w[runs] > 0]])) >= 3 for runs in self.protected)

    def _has_budgets(self) -> bool:
        return len(self.isoflop) >= 2

    def strata(self) -> np.ndarray:
        """The bootstrap's strata: a run's budget if that is an isoFLOP curve (3+ sizes), else one pool (-1)."""
        out = np.full(len(self.L), -1.0)
        for runs in self.isoflop:
            out[runs] = self.budget[runs]
        return out

    def _recipe(self, p3: dict, a2: Approach2) -> list[RecipeRow]:
        rows = []
        n3, d3 = optimal_nd(p3, self.recipe_C)
        for i, c in enumerate(self.recipe_C):
            row = RecipeRow(key=f"{c:.3g}", C=c, N_opt=Value(float(n3[i])), D_opt=Value(float(d3[i])),
                            tpp=Value(float(d3[i] / n3[i])))
            if self.own_flops:  # the same law's optimum under the data's own FLOPs per token (not 6ND)
                n, d = optimal_nd_flops(p3, c, *self.fpt)
                row.N_opt_flops, row.D_opt_flops, row.tpp_flops = Value(n), Value(d), Value(safe_div(d, n))
            if a2.a is not None:
                n, d = a2.k_N * safe_pow(c, a2.a.value), a2.k_D * safe_pow(c, a2.b.value)
                row.N_opt_a2, row.D_opt_a2, row.tpp_a2 = Value(n), Value(d), Value(safe_div(d, n))
            rows.append(row)
        return rows

    def holdout(self) -> Holdout:
        """Fit without the largest size, predict its runs' final losses (Approach 3, and L(N) on its basis)."""

        def a3(train, test):
            th = self.a3.fit(train * self.w0, n_refine=3).theta
            return self.a3.predict(th, np.column_stack([self.N, self.D])[test]), self.L[test]

        continuum = self.sizes.max() + 1 > len(self.N) / 2  # (nearly) one run per size: their top tenth
        h3 = holdout_largest(self.N, a3, continuum) if self.a3 is not None else None
        out = Holdout(approach3=HoldoutCheck(**h3) if h3 else None, kaplan=None)
        if self.ln_groups:
            key, spec = self.ln_groups[0]
            n, loss, _ = self._ln_points(spec, np.ones(len(self.L)))

            def ln(train, test):
                f = LseFitter(n[train], loss[train])
                return f.predict(f.fit(n_refine=6).theta, n[test]), loss[test]

            hk = holdout_largest(n, ln)
            out.kaplan = HoldoutCheck(**hk, basis=key) if hk else None
        return out


def fit_loss_vs_tokens(ds: Dataset, est: Estimator) -> tuple[list[TokensFit], str | None]:
    """L(D) = E + B/D^beta per size: from its runs at several horizons, else from its longest run's eval curve.

    Descriptive: past MAX_LD_FITS such sizes, a spread of them is fitted, and the second value says so (else None).
    """
    todo = []
    for runs in _groups(est.sizes, np.arange(len(est.L))):
        D, L, w, basis = est.D[runs], est.L[runs], est.w0[runs], "final loss of runs at several horizons"
        if size_clusters(D).max() + 1 < 4 and est.curves:
            r = runs[np.argmax(est.D[runs])]
            m = est.points_of(r)
            m = m[est.pts["D"][m] >= 0.1 * est.D[r]]  # past the first tenth: warmup noise
            D, L, basis = est.pts["D"][m], est.pts["loss"][m], f"eval curve of {ds.runs['run_name'].iloc[r]}"
            w = np.ones(len(L))
        if len(D) >= 4 and size_clusters(D).max() + 1 >= 4:
            todo.append((runs, D, L, w, basis))
    note = None
    if len(todo) > MAX_LD_FITS:
        note = f"L(D) fitted for {MAX_LD_FITS} of the {len(todo)} sizes that allow it, spread evenly over N"
        todo = [todo[i] for i in np.unique(np.linspace(0, len(todo) - 1, MAX_LD_FITS).round().astype(int))]
    out = []
    for runs, D, L, w, basis in todo:
        f = LseFitter(D, L).fit(w, n_refine=4)
        p = power_params(f.theta)
        out.append(TokensFit(key=f"{est.N[runs].mean():.4g}", N=float(est.N[runs].mean()), E=p["E"], B=p["A"],
                             beta=p["alpha"], n_points=int(len(L)), basis=basis, at_bound=f.at_bound,
                             negligible=f.negligible))
    return out, note


def estimate(ds: Dataset, n_boot: int = 200, seed: int = 0, progress=None, keep_samples: bool = False) -> Laws:
    """Every fit on the full data, bootstrap intervals over runs (or bins), holdout checks and warnings: the laws of
    fits.json. progress(message), if given, hears of each phase and of the bootstrap's progress. keep_samples: also
    every quantity's per-resample values, {flat path: array} in `bootstrap_samples` (sweep compare's draws)."""
    say = progress or (lambda message: None)
    agg = ds.aggregation
    unit = "bins" if agg else "runs"
    say(f"fitting {len(ds.runs)} {unit}" + (f" (aggregated from {agg['runs']} runs)" if agg else ""))
    if ds.runs.empty:
        return _nothing_fitted(ds, n_boot, seed)
    est = Estimator(ds)
    with single_threaded_blas():
        res = est.compute(full=True)
        say("holdout and L(D) fits")
        holdout = est.holdout()
        loss_vs_tokens, ld_note = fit_loss_vs_tokens(ds, est)
        units = trunk_units(ds.runs)  # cooldown branches: a trunk and its branches are one unit (cooldown.py)
        strata = est.strata() if ds.budget_basis != "log-binned flops" and units is None else None
        done = [0]

        def statistic(w):
            done[0] += 1
            if done[0] % max(n_boot // 4, 1) == 0:
                say(f"bootstrap: {done[0]}/{n_boot} resamples")
            return numbers(est.compute(w))

        say(f"bootstrap: {n_boot} resamples of {len(est.L)} {unit}")
        samples = unit_bootstrap(statistic, len(est.L), n_boot, seed, strata, est.keeps_budgets, units) \
            if n_boot > 0 else {}
    cis = {k: percentile_ci(v) for k, v in samples.items()}
    for path, value in walk_values(res):  # each interval next to its value
        if (ci := cis.get(path, {}).get("ci")) is not None:
            value.ci = ci
    draws = {k: samples.get(f"approach3/{k}") for k in LawParams.NAMES}
    if res.approach3.fitted and all(v is not None for v in draws.values()):
        # per-resample parameters, aligned (NaN where a resample failed): the plots' bands around L(N, D) and L(C)
        res.approach3.samples = ParamDraws(**{k: [float(x) for x in v] for k, v in draws.items()})
    warnings = diagnostics(res, loss_vs_tokens, len(np.unique(est.sizes)), len(est.L), cis, n_boot)
    warnings += [f"input: {n}" for n in ds.notes] + ([f"loss_vs_tokens: {ld_note}"] if ld_note else [])
    method = (f"percentile; {unit} resampled with replacement" + (" within FLOP budgets" if strata is not None else "")
              + (", each with its runs (a cluster bootstrap)" if agg else "")
              + (", cooldown trunks each with its branches (a cluster bootstrap)" if units is not None else "")
              + "; a resample leaving a budget of 4+ sizes with fewer than 3 is redrawn")
    if ds.replicates is not None:  # the top level only: the seeds' noise is in each cell's mean already
        method += "; a cell is its seeds' mean, resampled with all its seeds (a cluster bootstrap)"
    return Laws(**{f.name: getattr(res, f.name) for f in fields(LawFit)}, holdout=holdout,
                loss_vs_tokens=loss_vs_tokens, params=ds.params, source=ds.source, sweep=ds.sweep_name,
                budget_basis=ds.budget_basis,
                bootstrap=Bootstrap(n=n_boot, seed=seed, level=0.95, method=method,
                                    n_valid_min=min((c["n_valid"] for c in cis.values()), default=0)),
                runs=RunsUsed(used=agg["runs"] if agg else len(ds.runs), excluded=_excluded(ds),
                              names=None if agg else ds.runs["run_name"].tolist()),
                aggregation=_aggregation(agg),
                flops_per_token_fit=FlopsPerToken(exponent=est.fpt[0], coefficient=est.fpt[1],
                                                  is_6N=not est.own_flops),
                warnings=warnings, cooldown=compute_saved(ds.runs, ds.trunks),
                seeds=seed_spread(ds, {k: getattr(res.approach3, k).value for k in LAW3} if res.approach3.fitted
                                  else None),
                bootstrap_samples=samples if keep_samples else None)


# ------------------------------------------------------------------------- the fit kernels' records, as sections
def _values(params: dict) -> dict[str, Value]:
    """A law's parameters as Values (their intervals come from the bootstrap)."""
    return {k: Value(v) for k, v in params.items()}


def _value(x) -> Value | None:
    return None if x is None else Value(x)


def _approach2(a2: dict | None) -> Approach2:
    """approaches.fit_isoflop's record, each budget keyed by its C, with its tokens/param (None: no budgets)."""
    if a2 is None:
        return Approach2(skipped="the runs do not form FLOP budgets (no two budgets with 3 or more model sizes)")
    rows = [IsoflopMinimum(C=r["C"], N_opt=Value(r["N_opt"]), D_opt=Value(r["D_opt"]), L_opt=Value(r["L_opt"]),
                           coef_log10N=r["coef_log10N"], n_runs=r["n_runs"], edge=r["edge"], key=f"{r['C']:.4g}",
                           tpp=Value(safe_div(r["D_opt"], r["N_opt"]))) for r in a2["budgets"]]
    return Approach2(budgets=rows, warnings=a2["warnings"], a=_value(a2.get("a")), k_N=a2.get("k_N"),
                     b=_value(a2.get("b")), k_D=a2.get("k_D"))


def _approach1(a1: dict, source: str | None) -> Approach1:
    """approaches.fit_envelope's record, with which points it was drawn from."""
    return Approach1(envelope=[EnvelopePoint(**r) for r in a1["envelope"]], warnings=a1["warnings"],
                     a=_value(a1.get("a")), k_N=a1.get("k_N"), b=_value(a1.get("b")), k_D=a1.get("k_D"), source=source)


def _excluded(ds: Dataset) -> list[ExcludedRun]:
    return [ExcludedRun(run_name=e["run_name"], reason=e["reason"]) for e in ds.excluded]


def _aggregation(agg: dict | None) -> Aggregation:
    """aggregate.py's account of the binning (the Dataset's), or that none was applied."""
    if not agg:
        return Aggregation(applied=False, above=AGGREGATE_ABOVE)
    return Aggregation(**{**agg, "runs_per_bin": BinSizes(**agg["runs_per_bin"]),
                          "first_fit": LawParams(**agg["first_fit"])})


def _nothing_fitted(ds: Dataset, n_boot: int, seed: int) -> Laws:
    """The laws when no run is left to fit (all left out: see `excluded`), in the usual shape."""
    why = "no runs left to fit (every completed run is excluded: see runs.excluded)"
    return Laws(approach3=Approach3(error=why), allocation=Allocation(error=why), approach2=Approach2(skipped=why),
                approach1=Approach1(envelope=[], warnings=[why]), recipe=[],
                kaplan=Kaplan(form="L(N) = E + A/N^alpha", fits=[], skipped=why),
                holdout=Holdout(approach3=None, kaplan=None), loss_vs_tokens=[], params=ds.params, source=ds.source,
                sweep=ds.sweep_name, budget_basis=ds.budget_basis,
                bootstrap=Bootstrap(n=n_boot, seed=seed, level=0.95, method="none: no runs", n_valid_min=0),
                runs=RunsUsed(used=0, excluded=_excluded(ds), names=[]),
                aggregation=Aggregation(applied=False, above=AGGREGATE_ABOVE),
                flops_per_token_fit=FlopsPerToken(exponent=None, coefficient=None, is_6N=True), warnings=[])
