"""The abilities analysis (emergent, or a metric artefact?) on synthetic run directories whose truth is known: a
ladder of 6 sizes at 20 tokens/param, each run with a tasks.json and task events, no training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from sweep.analysis.emergence.trends import analyze_emergence, trend, wilson
from sweep.analysis.emergence.verdict import verdict
from sweep.analysis.emergence.load import load_tasks
from sweep.analysis.main import main
from sweep.analysis.result.emergence import Emergence
from sweep.analysis.report.emergence import section_lines
from helpers import HEAD, write_run

SIZES = (3e4, 1e5, 3e5, 1e6, 3e6, 1e7)
ITEMS = 500
# The two-step truth: task NLL = 0.3 + 2·(C/1e12)^−0.25, accuracy = chance + (1 − chance)·σ(−4·(NLL − 0.8)).
EXACT_CHANCE = 0.001


def noisy_probe(seed: int, p_mc, step) -> dict:
    """A 2-way multiple-choice probe per size: mc_acc drawn Binomial(ITEMS, p)/ITEMS, nll and brier a constant
    minus `step` times a drop, plus small Gaussian noise."""
    rng = np.random.default_rng(seed)
    step = np.asarray(step, float)
    return {"mc_acc": rng.binomial(ITEMS, p_mc) / ITEMS, "nll": 0.68 - 0.23 * step + rng.normal(0, 0.01, 6),
            "brier": 0.24 - 0.09 * step + rng.normal(0, 0.005, 6)}


# Pure noise around a constant; and the same noise with one large jump between the 4th and 5th size (emergent).
PURE_NOISE = noisy_probe(1, np.full(6, 0.6), np.zeros(6))
ONE_JUMP = noisy_probe(0, np.array([0.55, 0.55, 0.55, 0.55, 0.8, 0.82]), [0, 0, 0, 0, 1, 1])


def flops(N: float) -> float:
    return 20 * N * 6 * (N + HEAD)  # as write_run's runs count them, at 20 tokens/param


def truth_nll(C: float) -> float:
    return 0.3 + 2.0 * (C / 1e12) ** -0.25


def truth_acc(nll: float) -> float:
    return EXACT_CHANCE + (1 - EXACT_CHANCE) * float(expit(-4.0 * (nll - 0.8)))


def _spread(rng, n: int) -> np.ndarray:
    """n item multipliers of mean exactly 1 (±30%): items differ, the metric's value stays what was asked."""
    z = rng.normal(0, 1, n)
    return 1 + 0.3 * (z - z.mean()) / z.std()


def _hits(rng, p: float, n: int, exact_count: bool) -> list[int]:
    """n item outcomes at rate p: exactly round(p·n) hits in random places, or Binomial draws (exact_count=False)."""
    if not exact_count:
        return [int(x) for x in rng.random(n) < p]
    hits = np.zeros(n, int)
    hits[rng.permutation(n)[: round(p * n)]] = 1
    return hits.tolist()


def per_item(rng, n: int, tokens: float, exact_count: bool = True, **metrics) -> dict:
    """tasks.json's per-item lists giving these metric values (proportions drawn per item, Binomial when not
    exact_count; means spread over items about their value)."""
    out, L = {}, max(1, round(tokens))
    for m in ("exact", "exact_final", "mc_acc"):
        if m in metrics:
            out[m] = _hits(rng, metrics[m], n, exact_count)
    if "nll" in metrics:
        out["nll_sum"], out["tokens"] = (metrics["nll"] * L * _spread(rng, n)).tolist(), [L] * n
    if "digit_acc" in metrics:
        flat = _hits(rng, metrics["digit_acc"], n * L, exact_count)
        out["digit_hits"], out["digit_n"] = [sum(flat[i * L:(i + 1) * L]) for i in range(n)], [L] * n
    for m in ("p_seq", "edit_distance", "brier"):
        if m in metrics:
            out[m] = (metrics[m] * _spread(rng, n)).tolist()
    return out


def variant(key: str, axis: dict, chance: dict, rng, exact_count: bool = True, **metrics) -> dict:
    """One tasks.json variant in the contract's shape, its metrics computed from its per-item lists."""
    task, name = key.split("/")
    tokens = axis.get("L", 1) + 1
    items = per_item(rng, ITEMS, tokens, exact_count, **metrics)
    got = {m: float(np.mean(items[m])) for m in ("exact", "exact_final", "mc_acc", "p_seq", "edit_distance",
                                                   "brier") if m in items}
    if "nll_sum" in items:
        got["nll"] = sum(items["nll_sum"]) / sum(items["tokens"])
    if "digit_hits" in items:
        got["digit_acc"] = sum(items["digit_hits"]) / sum(items["digit_n"])
    v = {"task": task, "variant": name, "axis": axis, "n": ITEMS, "answer_tokens": tokens, **got, "chance": chance,
         "at_chance": {}, "items": items}
    for m, c in chance.items():
        lo, hi = wilson(got[m], ITEMS)
        v[f"{m}_ci"], v["at_chance"][m] = [float(lo), float(hi)], bool(lo <= c <= hi)
    return v


def task_variants(i: int, C: float, rng, seed: int) -> dict:
    p = 0.75 + 0.048 * i  # per-token accuracy smooth in log N; exact match of 25 tokens is p^25 (an artefact)
    q = (0.30, 0.31, 0.32, 0.33, 0.93, 0.95)[i]  # jumps at one size under every metric (emergent)
    nll = truth_nll(C)
    acc = truth_acc(nll)
    cot = min(acc + 0.2, 1.0) if i >= 2 else acc  # the scratchpad helps from the third size on
    out = {
        "copy/m24": variant("copy/m24", {"m": 24, "L": 24}, {"exact": 1e-6, "digit_acc": 1 / 36}, rng, exact=p**25,
                            nll=-math.log(p), p_seq=p**25, digit_acc=p, edit_distance=25 * (1 - p)),
        "muladd/d1": variant("muladd/d1", {"d": 1, "L": 2}, {"exact": 0.01, "digit_acc": 0.1}, rng, exact=q**3,
                             nll=-math.log(q), p_seq=q**3, digit_acc=q, edit_distance=3 * (1 - q)),
        "redefine/pm": variant("redefine/pm", {}, {"mc_acc": 0.5}, rng, exact_count=False, mc_acc=0.5,
                               nll=0.693, brier=0.25),
        "add/d3": variant("add/d3", {"d": 3, "L": 3.5}, {"exact": EXACT_CHANCE}, rng, exact=acc, nll=nll,
                          p_seq=math.exp(-4.5 * nll), digit_acc=math.exp(-nll),
                          edit_distance=4.5 * (1 - math.exp(-nll))),
        "add_cot/d3": variant("add_cot/d3", {"d": 3, "L": 3.5}, {"exact": EXACT_CHANCE, "exact_final": EXACT_CHANCE},
                              rng, exact=0.9 * cot, exact_final=cot, nll=0.8 * nll),
        "add/d2": variant("add/d2", {"d": 2, "L": 2.5}, {"exact": 0.01}, rng, exact=0.2 + 0.05 * i, nll=1.0 - 0.1 * i),
        "add/d2_seen": variant("add/d2_seen", {"d": 2, "L": 2.5}, {"exact": 0.01}, rng, exact=0.5 + 0.05 * i,
                               nll=0.8 - 0.1 * i),
    }
    # probes, drawn item by item (Binomial): pure noise; one jump at the 5th size in every seed (real); one seed of
    # the 5th size far above the others (seed noise: the mean jumps, the seeds do not agree)
    real = (0.55, 0.55, 0.55, 0.55, 0.8, 0.82)[i]
    lucky = 0.95 if (i == 4 and seed == 0) else 0.55
    for name, p_mc in (("noise", 0.6), ("jump", real), ("lucky", lucky)):
        step = 0.0 if name == "noise" else (real - 0.55) / 0.25 if name == "jump" else (lucky - 0.55) / 0.4
        out[f"probe/{name}"] = variant(f"probe/{name}", {}, {"mc_acc": 0.5}, rng, exact_count=False, mc_acc=p_mc,
                                       nll=0.68 - 0.23 * step, brier=0.24 - 0.09 * step)
    for k in (0, 2, 8):
        out[f"icl/k{k}"] = variant(f"icl/k{k}", {"k": k}, {"mc_acc": 0.25}, rng, mc_acc=0.25 + 0.012 * k * i,
                                   brier=0.7)
    for k in (2, 8):
        out[f"icl_random/k{k}"] = variant(f"icl_random/k{k}", {"k": k}, {"mc_acc": 0.25}, rng,
                                          mc_acc=0.25 + 0.01 * (k == 2))
    copy_items = {"copy_first": [10.0] * ITEMS, "copy_second": list(10.0 * (1 - 0.1 * i) * _spread(rng, ITEMS))}
    out["copy/m24"]["items"].update(copy_items)
    return out


def write_task_sweep(root: Path, tasks: bool = True, sizes: int = len(SIZES), seeds: int = 3) -> Path:
    rng = np.random.default_rng(3)
    for i, N in enumerate(SIZES[:sizes]):
        for seed in range(seeds):
            d = write_run(root, f"gpt-{N:.0e}_tpp20_s{seed}", N, flops(N), rng, seed=seed)
            summary = json.loads((d / "summary.json").read_text())
            (d / "summary.json").write_text(json.dumps({**summary, "flops_budget": None}))
            if not tasks:
                continue
            C = summary["flops"]
            with open(d / "metrics.jsonl", "a") as f:  # intermediate scorings: off the final curve, on the same map
                for frac, extra in ((0.25, 0.5), (0.5, 0.25)):
                    nll = truth_nll(C) + extra
                    f.write(json.dumps({"step": 10 * frac, "tokens": frac * summary["tokens"], "flops": frac * C,
                                        "tasks": {"add/d3": {"n": 64, "exact": truth_acc(nll), "nll": nll}},
                                        "icl": {"icl_score": None, "induction_ratio": None}}) + "\n")
            curve = [4.0 - 0.1 * (i + 1) * math.log1p(t) for t in range(64)]
            score = curve[-1] - curve[4]
            tasks_json = {"format": "sweep-tasks/2", "suite": {"seed": 0, "hash": "x", "items_per_variant": ITEMS},
                          "step": 80, "tokens": summary["tokens"], "flops": C, "source": "training",
                          "variants": task_variants(i, C, rng, seed),
                          "icl": {"icl_score": score, "early": [0, 8], "late": [48, 64],
                                  "per_position_loss": curve, "n_windows": 8, "induction_ratio": 1 - 0.1 * i,
                                  "per_window_score": list(score + 0.05 * (_spread(rng, 8) - 1))}}
            (d / "tasks.json").write_text(json.dumps(tasks_json))
    return root


@pytest.fixture(scope="module")
def emergence(tmp_path_factory):
    """The abilities section as fits.json holds it."""
    root = write_task_sweep(tmp_path_factory.mktemp("tasks") / "ladder")
    return analyze_emergence(load_tasks(root, "non_embedding"), replicates=400, two_step_replicates=20).to_json()


def test_smooth_per_token_metrics_under_a_sharp_exact_match_read_as_an_artefact(emergence):
    v = emergence["variants"]["copy/m24"]
    assert v["trend"]["exact"]["state"] == "sharp" and v["trend"]["nll"]["state"] == "smooth"
    assert v["verdict"] == "artefact" and "metric artefact" in v["verdict_text"]
    # exact = p^L exactly, so the overlay's p̄^L (p̄ = exp(−nll), L = 24 digits + END) reproduces it
    assert [p["predicted"] for p in v["overlay"]] == pytest.approx([p["measured"] for p in v["overlay"]], abs=2e-3)
    # Schaeffer's relation as a result: the deviation exact − p̄^L, with an interval that holds 0, at every size
    assert all(p["deviation_lo"] <= 0.01 and p["deviation_hi"] >= -0.01 for p in v["overlay"])
    assert v["explained_by_per_token"]
    assert v["min_seeds"] == 3 and {p["n_seeds"] for p in v["per_size"]["exact"]} == {3}


def test_a_jump_under_every_metric_is_emergent(emergence):
    v = emergence["variants"]["muladd/d1"]
    assert v["verdict"] == "emergent"
    assert v["trend"]["nll"]["jump_share"] > 0.8 and v["trend"]["exact"]["jump_share"] > 0.8


def test_chance_everywhere_is_no_signal(emergence):
    v = emergence["variants"]["redefine/pm"]
    assert v["verdict"] == "no_signal"
    assert all(p["at_chance"] for p in v["per_size"]["mc_acc"])


def test_pure_noise_around_a_constant_is_no_trend(emergence):
    v = emergence["variants"]["probe/noise"]
    assert v["verdict"] == "no_trend" and {t["state"] for t in v["trend"].values()} == {"flat"}
    d, lo, hi = v["trend"]["mc_acc"]["difference"]
    assert lo < d < hi and lo < 0 < hi and not v["trend"]["mc_acc"]["significant_jumps"]


def test_one_significant_jump_in_every_seed_is_emergent_and_named(emergence):
    v = emergence["variants"]["probe/jump"]
    assert v["verdict"] == "emergent" and {t["state"] for t in v["trend"].values()} == {"sharp"}
    (jump,) = v["trend"]["mc_acc"]["significant_jumps"]
    assert (jump["from_N"], jump["to_N"]) == pytest.approx(SIZES[3:5]) and jump["lo"] > 0
    assert "it rests on a single significant jump, N=1e+06 → 3e+06 (+0." in v["verdict_text"]


def test_a_jump_made_by_one_lucky_seed_is_not_significant(emergence):
    """One seed of the 5th size far above its other seeds: the seed mean jumps by 0.13 over 1,500 items, which
    items alone would call significant (Wilson intervals of 0.55 and 0.68 over 1,500 items are far apart), but the
    seeds disagree, so the hierarchical bootstrap does not."""
    v = emergence["variants"]["probe/lucky"]
    pts = v["per_size"]["mc_acc"]
    assert pts[4]["value"] - pts[3]["value"] > 0.1 and pts[4]["seed_max"] - pts[4]["seed_min"] > 0.3
    lo3, hi3 = wilson(pts[3]["value"], pts[3]["n"])
    lo4, hi4 = wilson(pts[4]["value"], pts[4]["n"])
    assert hi3 < lo4  # what pooling the items would say
    assert not any(j["from_N"] == pytest.approx(SIZES[3]) for j in v["trend"]["mc_acc"]["significant_jumps"])
    assert v["verdict"] != "emergent" and v["trend"]["mc_acc"]["state"] != "sharp"


def _boot(values, sd, rng, n=1000):
    return np.asarray(values, float)[:, None] + rng.normal(0, 1, (len(values), n)) * np.asarray(sd, float)[:, None] \
        if np.ndim(sd) else np.asarray(values, float)[:, None] + rng.normal(0, sd, (len(values), n))


def test_a_rise_within_the_noise_is_not_a_trend():
    """The real run's icl k2: mc_acc 0.594 → 0.628 over 500 items a size, steadily (ρ = 1), yet within the noise."""
    N, rng = np.array([1.17e4, 3e4, 6e4, 1.2e5, 1.97e5]), np.random.default_rng(0)
    values = [0.594, 0.6, 0.61, 0.62, 0.628]
    t = trend(N, values, "mc_acc", _boot(values, [math.sqrt(p * (1 - p) / ITEMS) for p in values], rng))
    assert t["spearman"] == pytest.approx(1.0) and t["state"] == "flat" and t["within_noise"]
    assert t["difference"][1] < 0 < t["difference"][2]
    # the same rise with small noise is smooth; with wiggles of its own size in its replicates, it is noise
    line = [2.47, 2.38, 2.30, 2.21, 2.12]
    assert trend(N, line, "nll", _boot(line, 0.01, rng))["state"] == "smooth"
    assert trend(N, line, "nll", _boot(line, 0.2, rng))["state"] == "flat"


def test_a_jump_then_a_significant_fall_is_neither_sharp_nor_smooth():
    """The 1.5M-token demo's add d1 nll: 1.94 → 1.42 at the first step, then back up to 1.56 (the larger sizes
    undertrained at that horizon). Its largest step carries all of the net, but the curve is no trend in scale."""
    N, rng = np.array([5.9e3, 1.2e4, 2.5e4, 5e4, 9.8e4]), np.random.default_rng(0)
    values = [1.94, 1.416, 1.441, 1.566, 1.559]
    t = trend(N, values, "nll", _boot(values, 0.02, rng))
    assert t["jump_share"] == 1.0 and t["regresses"] and t["state"] == "uneven"
    # the same first step with the rest flat within the noise is sharp
    flat_after = [1.94, 1.416, 1.43, 1.42, 1.41]
    t = trend(N, flat_after, "nll", _boot(flat_after, 0.02, rng))
    assert not t["regresses"] and t["state"] == "sharp"


def test_the_verdict_needs_a_smooth_continuous_metric_for_an_artefact():
    """The bug this replaced: exact sharp and the only continuous metric that moved sharp too read as an artefact."""
    sharp, flat, smooth = ({"state": s, "significant_jumps": []} for s in ("sharp", "flat", "smooth"))
    assert verdict({"exact": sharp, "nll": sharp, "digit_acc": flat, "edit_distance": flat}, False, 5)[0] == "emergent"
    assert verdict({"exact": sharp, "nll": smooth, "digit_acc": flat}, False, 5,
                   explained_by_per_token=True)[0] == "artefact"
    assert verdict({"exact": sharp, "nll": smooth}, False, 5, explained_by_per_token=False)[0] == "beyond_per_token"
    assert verdict({"exact": sharp, "nll": {"state": "uneven", "significant_jumps": []}}, False, 5)[0] == \
        "sharp_discontinuous_only"
    key, text = verdict({"exact": sharp, "nll": smooth}, False, 5, min_seeds=1, explained_by_per_token=True)
    assert key == "one_seed" and text.startswith("one seed: no significance across seeds") and "artefact" in text


def test_pure_noise_rarely_moves_out_of_the_noise():
    N, moved, emergent = np.array(SIZES), {"mc_acc": 0, "nll": 0, "brier": 0}, 0
    draws, rng = 200, np.random.default_rng(9)
    for seed in range(draws):
        probe = noisy_probe(100 + seed, np.full(6, 0.6), np.zeros(6))
        sd = {"mc_acc": math.sqrt(0.24 / ITEMS), "nll": 0.01, "brier": 0.005}
        trends = {m: trend(N, v, m, _boot(v, sd[m], rng, 400)) for m, v in probe.items()}
        for m, t in trends.items():
            moved[m] += t["state"] != "flat"
        emergent += verdict(trends, False, len(N))[0] == "emergent"
    assert max(moved.values()) < 0.1 * draws and emergent <= 0.01 * draws


def test_two_step_prediction_recovers_the_held_out_accuracy(emergence):
    (r,) = [r for r in emergence["two_step"] if r["key"] == "add/d3"]
    N_max = SIZES[-1]
    assert r["held_out_N"] == pytest.approx(N_max)
    assert r["observed"] == pytest.approx(truth_acc(truth_nll(flops(N_max))), abs=1 / ITEMS)
    assert r["predicted_ci"][0] <= r["predicted"] <= r["predicted_ci"][1]
    assert abs(r["error"]) < 0.02  # noiseless data: both steps' forms are the truth's
    assert r["step2_points"] == 5 + 3 * 2 * 5  # the fitted sizes' finals and their 3 seeds' intermediate scorings
    assert r["step2"]["k"] == pytest.approx(4.0, rel=0.05) and r["step2"]["nll0"] == pytest.approx(0.8, abs=0.01)
    # a variant at chance at every size is not predicted, and says why
    assert "skipped" in next(r for r in emergence["two_step"] if r["key"] == "redefine/pm")


def test_cot_shots_and_icl(emergence):
    (cot,) = emergence["cot"]
    assert cot["cot"] == "add_cot/d3" and cot["metric"] == "exact_final"
    assert cot["smallest_helping_N"] == pytest.approx(SIZES[2]) and not cot["hurts_at_N"]
    shots = emergence["shots"]
    top = shots["per_size"][-1]
    assert [p["k"] for p in top["icl"]] == [0, 2, 8] and top["icl"][-1]["value"] > top["icl"][0]["value"]
    assert all(p["at_chance"] for row in shots["per_size"] for p in row["icl_random"])
    assert [r["induction_ratio"] for r in emergence["icl"]] == pytest.approx([1 - 0.1 * i for i in range(6)])
    assert all(r["induction_ratio_ci"][0] < r["induction_ratio"] < r["induction_ratio_ci"][1] for r in emergence["icl"])
    assert all(r["icl_score_ci"][0] < r["icl_score"] < r["icl_score_ci"][1] for r in emergence["icl"])
    assert all(r["lo"] < r["diff"] < r["hi"] for r in cot["per_size"])
    (recall,) = emergence["recall"]
    assert recall["seen"] == "add/d2_seen" and recall["held_out"] == "add/d2"
    assert [r["difference"] for r in recall["per_size"]] == pytest.approx([0.3] * 6, abs=1e-9)


def test_trend_is_sign_aware_and_intervals_are_sound():
    N, rng = np.array(SIZES[:5]), np.random.default_rng(1)
    values = [2.0, 1.5, 1.0, 0.5, 0.2]
    falling = trend(N, values, "nll", _boot(values, 0.01, rng))  # lower is better: an improvement
    assert falling["spearman"] == pytest.approx(1.0) and falling["net"] == pytest.approx(1.8)
    assert falling["state"] == "smooth" and falling["jump_share"] == pytest.approx(0.5 / 1.8)
    assert trend(N, values[::-1], "nll", _boot(values[::-1], 0.01, rng))["state"] == "flat"  # worse with size
    lo, hi = wilson(0.0, 100)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0.03 < hi < 0.04  # Wilson's upper bound at 0 of 100 (3.7%)


def test_a_sweep_without_task_results_has_none(tmp_path):
    assert load_tasks(write_task_sweep(tmp_path / "plain", tasks=False), "non_embedding") is None


def test_the_section_says_per_task_what_it_found(emergence):
    text = "\n".join(section_lines(Emergence.from_json(emergence), {}))
    words = text[text.index("### Emergent, or a metric artefact?"):text.index("### Per task and variant")]
    lines = {line.split("**")[1]: line for line in words.splitlines() if line.startswith("- **")}
    assert "consistent with a metric artefact" in lines["copy"]
    assert "a candidate emergent ability under this suite" in lines["muladd"]
    assert lines["redefine"].count("(at chance)") == 2 and "no signal" in lines["redefine"]
    assert "exact 0 [0, 0.00255] (at chance) at N=3e+04 → 0.778 [" in lines["copy"]
    assert "(difference +0.778 [+0." in lines["copy"]
    assert "no trend with size" in lines["probe"]
    assert "hierarchical bootstrap (400 replicates)" in text and "3 seed(s) each" in text
    assert "the scratchpad helps significantly from N=3e+05 on" in text
    assert "| copy/m24 (25) | 1e+07 |" in text and "| yes |" in text  # Schaeffer's relation, judged
    assert "| add/d2_seen vs add/d2 | 3e+04 | 0.5 [" in text  # recall beside generalisation
    seeds = text[text.index("**Seeds per size**"):]
    assert "| copy/m24 | 1e+07 | 3 | 0.778 (0.778–0.778) |" in seeds
    assert "context positions [48, 64] minus over the early band [0, 8]" in text
    assert "add_cot/d3 (L =" not in text  # a scratchpad's NLL covers more tokens than its axis L: no overlay


def test_the_wandb_run_gets_the_per_run_task_table(tmp_path):
    from types import SimpleNamespace

    from sweep.analysis.emergence.load import write_table
    from sweep.analysis.report.wandb_run import _task_table

    data = load_tasks(write_task_sweep(tmp_path / "ladder", sizes=2), "non_embedding")
    name = write_table(data, tmp_path).name
    fake_wandb = SimpleNamespace(Table=lambda dataframe: dataframe)
    table = _task_table(fake_wandb, SimpleNamespace(emergence=SimpleNamespace(table=name)), tmp_path)["tasks"]
    assert len(table) == len(data.scores) and {"run_name", "key", "metric", "value", "N", "C"} <= set(table.columns)
    assert _task_table(fake_wandb, SimpleNamespace(emergence=None), tmp_path) == {}  # no task results: no table


def test_too_few_sizes_are_shown_not_judged(tmp_path):
    em = analyze_emergence(load_tasks(write_task_sweep(tmp_path / "two", sizes=2), "non_embedding")).to_json()
    assert {v["verdict"] for v in em["variants"].values()} == {"too_few_sizes"}
    assert all("skipped" in r for r in em["two_step"])
    assert "too few sizes to judge (fewer than 4)" in "\n".join(section_lines(Emergence.from_json(em), {}))


@pytest.mark.slow  # the whole `sweep analyze` with every plot: several seconds on a shared CPU
def test_sweep_analyze_writes_the_abilities_section(tmp_path):
    """`sweep analyze` on a ladder with task results (every size once: a grid too small for most laws)."""
    root = write_task_sweep(tmp_path / "ladder")
    assert main([str(root), "--wandb", "off", "--bootstrap", "0"]) == 0
    out = root / "analysis"
    report = (out / "report.md").read_text()
    section = report[report.index("## Abilities and emergence"):report.index("## Plots")]
    assert "### Emergent, or a metric artefact?" in section and "consistent with a metric artefact" in section
    assert "a candidate emergent ability under this suite" in section and "no signal" in section
    assert "jump share" in section and "≥ 0.6" in section  # the thresholds are printed
    fits = json.loads((out / "fits.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in fits.json"))
    em = fits["emergence"]
    assert em["variants"]["copy/m24"]["verdict"] == "artefact" and em["table"] == "tasks.csv"
    figures = sorted(p.name for p in out.glob("emergence_*.png"))
    assert figures == sorted(["emergence_task_add.png", "emergence_task_add_cot.png", "emergence_task_copy.png",
                              "emergence_task_icl.png", "emergence_task_icl_random.png",
                              "emergence_task_muladd.png", "emergence_task_redefine.png", "emergence_task_probe.png",
                              "emergence_overlay.png",
                              "emergence_cot.png", "emergence_shots.png", "emergence_icl.png",
                              "emergence_two_step.png"])
    assert all(f"]({name})" in section for name in figures)  # shown in the section, not again under Plots
    assert "emergence_" not in report[report.index("## Plots"):]
    assert "emergence_overlay" in (out / "report.html").read_text()


def test_one_seed_per_size_gives_no_verdict_across_seeds(tmp_path):
    em = analyze_emergence(load_tasks(write_task_sweep(tmp_path / "one", seeds=1), "non_embedding"), 200, 5)
    assert em.seeds_per_size == [1] * len(SIZES)
    v = em.variants["probe/jump"]
    assert v.verdict == "one_seed" and v.verdict_text.startswith("one seed: no significance across seeds")
    assert "with item noise alone: sharp under both" in v.verdict_text  # what items alone would say
    assert {x.verdict for x in em.variants.values()} == {"one_seed"}
    assert "it says *one seed*" in "\n".join(section_lines(em, {}))


def test_a_tasks_json_without_per_item_outcomes_is_left_out_and_named(tmp_path):
    root = write_task_sweep(tmp_path / "old", sizes=4, seeds=1)
    old = next(root.iterdir()) / "tasks.json"
    doc = json.loads(old.read_text())
    for v in doc["variants"].values():
        v.pop("items")
    old.write_text(json.dumps(doc))
    data = load_tasks(root, "non_embedding")
    (skipped,) = data.skipped
    assert skipped["run_name"] == old.parent.name and "sweep evaluate RUN_DIR" in skipped["reason"]
    assert old.parent.name not in set(data.runs["run_name"])
