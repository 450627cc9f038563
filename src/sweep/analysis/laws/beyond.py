"""The laws beyond one fit, wired for `sweep analyze`: the options checked before any fit (`check_options`), then
the result's sections that each rest on a module of their own (`laws_beyond`): the fit-small-predict-big protocol
(holdout.py), Gadre et al.'s over-training law (overtrain.py), the inference-aware optimum (inference.py) and
Kaplan's forms (kaplan.py).
"""

from __future__ import annotations

from .holdout import holdout_protocol, select_holdout
from ..inputs.load import AnalysisError, Dataset
from .inference import inference_optimal
from .kaplan import kaplan_forms
from .overtrain import overtraining
from ..result.fits import Laws
from ..result.beyond import InferenceOptimal, LawParams


def parse_inference_tokens(text: str | None) -> tuple[float, ...]:
    """--inference-tokens X[,Y...]: expected inference demands in tokens, each ≥ 0."""
    if not text:
        return ()
    values = []
    for part in (p.strip() for p in str(text).split(",")):
        try:
            value = float(part)
        except ValueError:
            raise AnalysisError(f"--inference-tokens: {part!r} is not a number of tokens (e.g. 1e12,1e13)") from None
        if not 0 <= value < float("inf"):
            raise AnalysisError(f"--inference-tokens: {part!r} must be a finite number ≥ 0")
        values.append(value)
    return tuple(values)


def check_options(ds: Dataset, holdout: str | None, inference_tokens: str | None) -> tuple[float, ...]:
    """Refuse a bad --holdout or --inference-tokens before any fit (AnalysisError); the parsed demands."""
    if holdout is not None:
        select_holdout(holdout, ds.runs)
    return parse_inference_tokens(inference_tokens)


def laws_beyond(ds: Dataset, fits: Laws, holdout: str | None = None, inference_tokens: tuple[float, ...] = (),
                n_boot: int = 200, seed: int = 0) -> dict:
    """The sections beyond Approaches 1–3, by their names in the result (result.Fits): holdout_protocol (with
    --holdout), overtraining, inference_optimal (with --inference-tokens), kaplan_forms; none without runs."""
    out = {}
    if ds.runs.empty:
        return out
    if holdout is not None:
        out["holdout_protocol"] = holdout_protocol(ds.runs, holdout, n_boot, seed)
    p3 = approach3_law(fits)
    out["overtraining"] = overtraining(ds.runs, p3, n_boot, seed)
    if inference_tokens:
        out["inference_optimal"] = inference_optimal(p3, [r.C for r in fits.recipe], inference_tokens,
                                                     approach3_draws(fits)) if p3 else \
            InferenceOptimal(error="Approach 3 is not fitted (or degenerate): no law to optimise on")
    out["kaplan_forms"] = kaplan_forms(ds.runs, fits, p3, approach3_draws(fits))
    return out


def approach3_draws(fits: Laws) -> list[dict] | None:
    """Approach 3's per-resample parameters (estimate.py keeps them), the finite ones."""
    s = fits.approach3.samples
    if not s:
        return None
    keys = LawParams.NAMES
    rows = zip(*(getattr(s, k) for k in keys))
    return [dict(zip(keys, r)) for r in rows if all(v is not None and v == v for v in r)] or None


def approach3_law(fits: Laws) -> dict | None:
    """Approach 3's parameters, if it was fitted and is not degenerate (a bound or a negligible term)."""
    a3 = fits.approach3
    return None if not a3.fitted or a3.degenerate else a3.params()
