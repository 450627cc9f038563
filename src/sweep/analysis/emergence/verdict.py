"""The verdict rules of the abilities analysis (emergent, or a metric artefact?): how one metric moves across sizes
(trend: sharp, smooth, uneven or flat) and what a variant's metrics say together (verdict). A change counts only
when it stands out of the noise: its 95% interval from the hierarchical bootstrap (emergence/resample.py: seeds,
then items within a seed) excludes 0, so a jump between sizes must stand beyond the seed-to-seed spread.

The stated test of smoothness: a metric is *smooth* when its net improvement counts, its Spearman ρ with log N is
≥ smooth_rank_correlation and no step between adjacent sizes carries sharp_jump_share of the net or more; *sharp*
when that largest step is significant and carries ≥ sharp_jump_share of a net improvement that counts; neither when
some step between adjacent sizes is a significant worsening (a rise, then a significant fall, is no trend in scale:
at a horizon too short for the larger sizes, say); *uneven* when it improved out of the noise but is neither; *flat*
otherwise. Schaeffer et al. 2023's argument needs a continuous metric that is smooth while exact match jumps, and
exact match that per-token probability explains: its deviation from p̄^L within schaeffer_tolerance at every size
(the interval reaching that band).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from ...stats import wilson
from .load import PROPORTIONS
from .resample import interval

DISCONTINUOUS = ("exact", "exact_final", "mc_acc")
CONTINUOUS = ("nll", "p_seq", "digit_acc", "edit_distance", "brier")
# p_seq is a product over the answer's tokens: it scales like exact match (shown in the overlay), so the verdict's
# continuous side is the per-token metrics only.
PER_TOKEN = ("nll", "digit_acc", "edit_distance", "brier")
LOWER_BETTER = ("nll", "edit_distance", "brier")
THRESHOLDS = {"sharp_jump_share": 0.6, "min_sizes": 4, "smooth_rank_correlation": 0.7, "min_seeds": 2,
              "schaeffer_tolerance": 0.1,
              "min_change": {"exact": 0.02, "exact_final": 0.02, "mc_acc": 0.02, "digit_acc": 0.02, "p_seq": 0.02,
                             "nll": 0.02, "edit_distance": 0.05, "brier": 0.01}}
VERDICTS = {
    "artefact": "smooth under a continuous metric, sharp under {d}, and {d} within the tolerance of p̄^L at every "
                "size → consistent with a metric artefact",
    "beyond_per_token": "smooth under a continuous metric but {d} jumps further than p̄^L (the per-token "
                        "probability) predicts → sharp beyond what the per-token metric explains",
    "emergent": "sharp under both {d} and a continuous metric → a candidate emergent ability under this suite",
    "smooth": "improves smoothly under both",
    "no_signal": "no signal: {d} is at chance at every size and no continuous metric improves",
    "below_threshold": "the continuous metrics improve while {d} stays at chance → below exact match's threshold "
                       "at these sizes (the flat part of a metric artefact)",
    "continuous_only": "the continuous metrics improve; {d} shows no trend",
    "sharp_discontinuous_only": "sharp under {d} while the continuous metrics stay flat → inconclusive",
    "sharp_continuous_only": "sharp under the continuous metrics, smooth under {d}",
    "discontinuous_only": "improves under {d} only",
    "no_trend": "no trend with size",
    "too_few_sizes": "too few sizes to judge (fewer than {min_sizes})",
    "one_seed": "one seed: no significance across seeds (fewer than {min_seeds} seeds at some size; with item "
                "noise alone: {alone})",
}


def _sign(metric: str) -> float:
    return -1.0 if metric in LOWER_BETTER else 1.0


def _significance(lo: float | None, hi: float | None, sign: float) -> int:
    """+1 when a change's interval lies wholly on the better side of 0 (sign: +1 when higher is better), −1 when
    wholly on the worse side, 0 when it holds 0 or has no interval."""
    if lo is None or hi is None:
        return 0
    lo, hi = sorted((sign * lo, sign * hi))
    return 1 if lo > 0 else -1 if hi < 0 else 0


def trend(N, values, metric: str, boot: np.ndarray) -> dict:
    """How a metric moves across sizes: its ends, Spearman ρ with log N (sign-aware: + is better), the jump share
    (largest improvement between adjacent sizes ÷ net improvement, at most 1), the net difference and every
    adjacent jump with their bootstrap intervals (boot: replicates per size, [size, replicate]), and its state."""
    N, v = np.asarray(N, float), np.asarray(values, float)
    sign = _sign(metric)
    k = len(v)
    rho = float(spearmanr(np.log(N), v)[0]) * sign if k >= 3 and np.ptp(v) > 0 else None
    net = float(sign * (v[-1] - v[0])) if k >= 2 else 0.0
    steps = sign * np.diff(v)
    share = float(min(steps.max() / net, 1.0)) if k >= 2 and net > 0 else None
    at = int(np.argmax(steps)) if k >= 2 else None
    out = {"smallest": float(v[0]), "largest": float(v[-1]), "spearman": rho, "jump_share": share, "net": net,
           "difference": None, "jump": None, "significant_jumps": []}
    if k < 2:
        return {**out, "state": "flat", "within_noise": False, "regresses": False}
    jumps = []
    for i in range(k - 1):
        lo, hi = interval(boot[i + 1] - boot[i])
        jumps.append({"from_N": float(N[i]), "to_N": float(N[i + 1]), "change": float(v[i + 1] - v[i]),
                      "lo": lo, "hi": hi})
    lo, hi = interval(boot[-1] - boot[0])
    out["difference"] = [float(v[-1] - v[0]), lo, hi]
    net_stands_out = _significance(lo, hi, sign) > 0
    significant = [_significance(j["lo"], j["hi"], sign) > 0 for j in jumps]
    regresses = any(_significance(j["lo"], j["hi"], sign) < 0 for j in jumps)
    out["jump"] = jumps[at]
    out["significant_jumps"] = [j for j, s in zip(jumps, significant) if s]
    enough = net >= THRESHOLDS["min_change"][metric] and net_stands_out  # the floor: a change too small to matter
    concentrated = share is not None and share >= THRESHOLDS["sharp_jump_share"]
    if enough and concentrated and significant[at] and k >= THRESHOLDS["min_sizes"] and not regresses:
        state = "sharp"
    elif enough and not concentrated and not regresses and rho is not None \
            and rho >= THRESHOLDS["smooth_rank_correlation"]:
        state = "smooth"
    else:
        state = "uneven" if enough else "flat"
    return {**out, "state": state, "within_noise": bool(net > 0 and not net_stands_out), "regresses": regresses}


def _single_jump(j: dict) -> str:
    """The words for an improvement that rests on one significant jump between adjacent sizes."""
    ci = f" [{j['lo']:+.3g}, {j['hi']:+.3g}]" if j.get("lo") is not None else ""
    return f"; it rests on a single significant jump, N={j['from_N']:.3g} → {j['to_N']:.3g} ({j['change']:+.3g}{ci})"


def verdict(trends: dict, all_at_chance: bool, n_sizes: int, largest_at_chance: bool = False,
            min_seeds: int = 2, explained_by_per_token: bool | None = None) -> tuple[str, str]:
    """(key, words) for a variant from its metrics' trends. A discontinuous metric still at chance at the largest
    size shows no ability there, whatever it did below: it counts as flat (so never emergent). Fewer than min_seeds
    seeds at some size: no verdict across seeds (the item-only verdict is named in its words)."""
    d = next((m for m in ("mc_acc", "exact_final", "exact") if m in trends), None)
    words = lambda key, **kw: VERDICTS[key].format(d=d or "exact match", **THRESHOLDS, **kw)  # noqa: E731
    if n_sizes < THRESHOLDS["min_sizes"]:
        return "too_few_sizes", words("too_few_sizes")
    cont = [trends[m]["state"] for m in PER_TOKEN if m in trends]
    c_sharp, c_smooth = "sharp" in cont, "smooth" in cont
    c_moved = any(s != "flat" for s in cont)
    ds = trends[d]["state"] if d and not largest_at_chance else "flat"
    if ds != "sharp" and all_at_chance:
        key = "below_threshold" if c_moved else "no_signal"
    elif ds == "sharp":
        per_token = "artefact" if explained_by_per_token is not False else "beyond_per_token"
        key = "emergent" if c_sharp else per_token if c_smooth else "sharp_discontinuous_only"
    elif ds == "smooth":
        key = "smooth" if c_smooth else "sharp_continuous_only" if c_sharp else "discontinuous_only"
    else:
        key = "continuous_only" if c_moved else "no_trend"
    jumps = trends[d]["significant_jumps"] if ds != "flat" else []
    text = words(key) + (_single_jump(jumps[0]) if len(jumps) == 1 else "")
    if min_seeds < THRESHOLDS["min_seeds"]:
        return "one_seed", words("one_seed", alone=text)
    return key, text


__all__ = ["CONTINUOUS", "DISCONTINUOUS", "LOWER_BETTER", "PER_TOKEN", "PROPORTIONS", "THRESHOLDS", "VERDICTS",
           "trend", "verdict", "wilson"]
