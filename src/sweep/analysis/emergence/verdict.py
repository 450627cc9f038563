"""The verdict rules of the abilities analysis (emergent, or a metric artefact?): how one metric moves across sizes
(trend: sharp, smooth or flat) and what a variant's metrics say together (verdict). A change counts only when it
stands out of the noise: for a proportion, Newcombe's 95% interval of the difference excludes 0; for a mean without
per-size intervals, it exceeds NOISE_MULTIPLE × the metric's noise, estimated as the residual standard deviation of
a straight line in log N through the sizes' values (conservative: genuine curvature counts as noise too).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import spearmanr

from ...stats import wilson
from .load import PROPORTIONS

DISCONTINUOUS = ("exact", "exact_final", "mc_acc")
CONTINUOUS = ("nll", "p_seq", "digit_acc", "edit_distance", "brier")
# p_seq is a product over the answer's tokens: it scales like exact match (shown in the overlay), so the verdict's
# continuous side is the per-token metrics only.
PER_TOKEN = ("nll", "digit_acc", "edit_distance", "brier")
LOWER_BETTER = ("nll", "edit_distance", "brier")
THRESHOLDS = {"sharp_jump_share": 0.6, "min_sizes": 4, "smooth_rank_correlation": 0.7, "noise_multiple": 2.0,
              "min_change": {"exact": 0.02, "exact_final": 0.02, "mc_acc": 0.02, "digit_acc": 0.02, "p_seq": 0.02,
                             "nll": 0.02, "edit_distance": 0.05, "brier": 0.01}}
VERDICTS = {
    "artefact": "smooth under continuous metrics and sharp under {d} → consistent with a metric artefact",
    "emergent": "sharp under both {d} and the continuous metrics → emergent under this suite",
    "smooth": "improves smoothly under both",
    "no_signal": "no signal: {d} is within the Wilson interval of chance at every size and no continuous metric "
                 "improves",
    "below_threshold": "the continuous metrics improve while {d} stays at chance → below exact match's threshold "
                       "at these sizes (the flat part of a metric artefact)",
    "continuous_only": "the continuous metrics improve; {d} shows no trend",
    "sharp_discontinuous_only": "sharp under {d} while the continuous metrics stay flat → inconclusive",
    "sharp_continuous_only": "sharp under the continuous metrics, smooth under {d}",
    "discontinuous_only": "improves under {d} only",
    "no_trend": "no trend with size",
    "too_few_sizes": "too few sizes to judge (fewer than {min_sizes})",
}


def newcombe(p1, n1, p2, n2) -> tuple[float, float, float]:
    """p2 − p1 with Newcombe's 95% interval for a difference of independent proportions (hybrid Wilson score)."""
    (l1, u1), (l2, u2) = wilson(p1, n1), wilson(p2, n2)
    d = p2 - p1
    return float(d), float(d - math.hypot(p2 - l2, u1 - p1)), float(d + math.hypot(u2 - p2, p1 - l1))


def residual_noise(N, values) -> float:
    """A size's noise for a metric without per-size intervals: the residual standard deviation (k − 2 degrees of
    freedom) of a least-squares line in log N through the k sizes' values; NaN with fewer than 3 sizes."""
    x, v = np.log(np.asarray(N, float)), np.asarray(values, float)
    if len(v) < 3:
        return math.nan
    residuals = v - np.polyval(np.polyfit(x, v, 1), x)
    return float(math.sqrt(residuals @ residuals / (len(v) - 2)))


def trend(N, values, metric: str, n=None) -> dict:
    """How a metric moves across sizes: its ends, Spearman ρ with log N (sign-aware: + is better), the jump share
    (largest improvement between adjacent sizes ÷ net improvement, at most 1), whether the net improvement and the
    largest jump stand out of the noise (Newcombe intervals for a proportion with its items n per size, else the
    residual noise), and its state: sharp, smooth or flat (`within_noise` when it moved, but not out of the noise)."""
    N, v = np.asarray(N, float), np.asarray(values, float)
    sign = -1.0 if metric in LOWER_BETTER else 1.0
    k = len(v)
    rho = float(spearmanr(np.log(N), v)[0]) * sign if k >= 3 and np.ptp(v) > 0 else None
    net = float(sign * (v[-1] - v[0])) if k >= 2 else 0.0
    steps = sign * np.diff(v)
    share = float(min(steps.max() / net, 1.0)) if k >= 2 and net > 0 else None
    at = int(np.argmax(steps)) if k >= 2 else None
    out = {"smallest": float(v[0]), "largest": float(v[-1]), "spearman": rho, "jump_share": share, "net": net,
           "noise": None, "difference": None, "jump": None, "significant_jumps": []}
    if k < 2:
        return {**out, "state": "flat", "within_noise": False}
    jumps = [{"from_N": float(N[i]), "to_N": float(N[i + 1]), "change": float(v[i + 1] - v[i])} for i in range(k - 1)]
    if metric in PROPORTIONS and n is not None:  # proportions are all higher-better: no sign to undo
        n = np.asarray(n, float)
        for i, j in enumerate(jumps):
            j["lo"], j["hi"] = newcombe(v[i], n[i], v[i + 1], n[i + 1])[1:]
        out["difference"] = list(newcombe(v[0], n[0], v[-1], n[-1]))
        net_stands_out = out["difference"][1] > 0
        significant = [j["lo"] > 0 for j in jumps]
    else:
        noise = residual_noise(N, v)
        bar = THRESHOLDS["noise_multiple"] * noise  # NaN (never passed) with too few sizes to estimate the noise
        out["noise"] = noise
        net_stands_out = bool(net > bar)
        significant = [bool(s > bar) for s in steps]
    jump_stands_out = significant[at]
    out["jump"] = jumps[at]
    out["significant_jumps"] = [j for j, s in zip(jumps, significant) if s]
    moved = net >= THRESHOLDS["min_change"][metric]  # the floor: a change too small to matter, however clean
    enough = moved and net_stands_out
    sharp = enough and jump_stands_out and k >= THRESHOLDS["min_sizes"] and share >= THRESHOLDS["sharp_jump_share"]
    smooth = enough and rho is not None and rho >= THRESHOLDS["smooth_rank_correlation"]
    return {**out, "state": "sharp" if sharp else "smooth" if smooth else "flat",
            "within_noise": bool(net > 0 and not net_stands_out)}


def _single_jump(j: dict) -> str:
    """The words for an improvement that rests on one significant jump between adjacent sizes."""
    ci = f" [{j['lo']:+.3g}, {j['hi']:+.3g}]" if "lo" in j else ""
    return f"; it rests on a single significant jump, N={j['from_N']:.3g} → {j['to_N']:.3g} ({j['change']:+.3g}{ci})"


def verdict(trends: dict, all_at_chance: bool, n_sizes: int, largest_at_chance: bool = False) -> tuple[str, str]:
    """(key, words) for a variant from its metrics' trends. A discontinuous metric still at chance at the largest
    size shows no ability there, whatever it did below: it counts as flat (so never emergent)."""
    d = next((m for m in ("mc_acc", "exact_final", "exact") if m in trends), None)
    words = lambda key: VERDICTS[key].format(d=d or "exact match", **THRESHOLDS)  # noqa: E731
    if n_sizes < THRESHOLDS["min_sizes"]:
        return "too_few_sizes", words("too_few_sizes")
    cont = [trends[m]["state"] for m in PER_TOKEN if m in trends]
    c = "flat" if not cont or all(s == "flat" for s in cont) else \
        "sharp" if sum(s == "sharp" for s in cont) * 2 >= len(cont) else "smooth"
    ds = trends[d]["state"] if d and not largest_at_chance else "flat"
    if ds != "sharp" and all_at_chance:
        key = "no_signal" if c == "flat" else "below_threshold"
    elif ds == "sharp":
        key = {"smooth": "artefact", "sharp": "emergent", "flat": "sharp_discontinuous_only"}[c]
    elif ds == "smooth":
        key = {"smooth": "smooth", "sharp": "sharp_continuous_only", "flat": "discontinuous_only"}[c]
    else:
        key = "no_trend" if c == "flat" else "continuous_only"
    jumps = trends[d]["significant_jumps"] if ds != "flat" else []
    return key, words(key) + (_single_jump(jumps[0]) if len(jumps) == 1 else "")
