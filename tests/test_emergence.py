"""The abilities analysis (emergent, or a metric artefact?) on synthetic run directories whose truth is known: a
ladder of 6 sizes at 20 tokens/param, each run with a tasks.json and task events, no training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit

from sweep.analysis.emergence.trends import analyze_emergence, newcombe, trend, wilson
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


def variant(key: str, axis: dict, chance: dict, **metrics) -> dict:
    """One tasks.json variant in the contract's shape (intervals and at-chance flags from its proportions)."""
    task, name = key.split("/")
    v = {"task": task, "variant": name, "axis": axis, "n": ITEMS, **metrics, "chance": chance, "at_chance": {}}
    for m, c in chance.items():
        lo, hi = wilson(metrics[m], ITEMS)
        v[f"{m}_ci"], v["at_chance"][m] = [float(lo), float(hi)], bool(lo <= c <= hi)
    return v


def task_variants(i: int, C: float) -> dict:
    p = 0.75 + 0.048 * i  # per-token accuracy smooth in log N; exact match of 25 tokens is p^25 (an artefact)
    q = (0.30, 0.31, 0.32, 0.33, 0.93, 0.95)[i]  # jumps at one size under every metric (emergent)
    nll = truth_nll(C)
    acc = truth_acc(nll)
    cot = min(acc + 0.2, 1.0) if i >= 2 else acc  # the scratchpad helps from the third size on
    out = {
        "copy/m24": variant("copy/m24", {"m": 24, "L": 24}, {"exact": 1e-6, "digit_acc": 1 / 36}, exact=p**25,
                            nll=-math.log(p), p_seq=p**25, digit_acc=p, edit_distance=25 * (1 - p)),
        "muladd/d1": variant("muladd/d1", {"d": 1, "L": 2}, {"exact": 0.01, "digit_acc": 0.1}, exact=q**3,
                             nll=-math.log(q), p_seq=q**3, digit_acc=q, edit_distance=3 * (1 - q)),
        "redefine/pm": variant("redefine/pm", {}, {"mc_acc": 0.5}, mc_acc=(0.49, 0.51, 0.50, 0.52, 0.48, 0.50)[i],
                               nll=0.693 + (0, 0.004, -0.003, 0.002, -0.002, 0.001)[i], brier=0.25 + 0.001 * (i % 2)),
        "add/d3": variant("add/d3", {"d": 3, "L": 3.5}, {"exact": EXACT_CHANCE}, exact=acc, nll=nll,
                          p_seq=math.exp(-4.5 * nll), digit_acc=math.exp(-nll),
                          edit_distance=4.5 * (1 - math.exp(-nll))),
        "add_cot/d3": variant("add_cot/d3", {"d": 3, "L": 3.5}, {"exact": EXACT_CHANCE, "exact_final": EXACT_CHANCE},
                              exact=0.9 * cot, exact_final=cot, nll=0.8 * nll),
    }
    for name, probe in (("noise", PURE_NOISE), ("jump", ONE_JUMP)):
        values = {m: float(v[i]) for m, v in probe.items()}
        out[f"probe/{name}"] = variant(f"probe/{name}", {}, {"mc_acc": 0.5}, **values)
    for k in (0, 2, 8):
        out[f"icl/k{k}"] = variant(f"icl/k{k}", {"k": k}, {"mc_acc": 0.25}, mc_acc=0.25 + 0.012 * k * i, brier=0.7)
    for k in (2, 8):
        out[f"icl_random/k{k}"] = variant(f"icl_random/k{k}", {"k": k}, {"mc_acc": 0.25}, mc_acc=0.25 + 0.01 * (k == 2))
    return out


def write_task_sweep(root: Path, tasks: bool = True, sizes: int = len(SIZES)) -> Path:
    rng = np.random.default_rng(3)
    for i, N in enumerate(SIZES[:sizes]):
        d = write_run(root, f"gpt-{N:.0e}_tpp20_s0", N, flops(N), rng)
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
        tasks_json = {"format": "sweep-tasks/1", "suite": {"seed": 0, "hash": "x", "items_per_variant": ITEMS},
                      "step": 80, "tokens": summary["tokens"], "flops": C, "source": "training",
                      "variants": task_variants(i, C),
                      "icl": {"icl_score": curve[-1] - curve[4], "early": [0, 8], "late": [48, 64],
                              "per_position_loss": curve, "n_windows": 8, "induction_ratio": 1 - 0.1 * i}}
        (d / "tasks.json").write_text(json.dumps(tasks_json))
    return root


@pytest.fixture(scope="module")
def emergence(tmp_path_factory):
    """The abilities section as fits.json holds it."""
    root = write_task_sweep(tmp_path_factory.mktemp("tasks") / "ladder")
    return analyze_emergence(load_tasks(root, "non_embedding")).to_json()


def test_smooth_per_token_metrics_under_a_sharp_exact_match_read_as_an_artefact(emergence):
    v = emergence["variants"]["copy/m24"]
    assert v["trend"]["exact"]["state"] == "sharp" and v["trend"]["nll"]["state"] == "smooth"
    assert v["verdict"] == "artefact" and "metric artefact" in v["verdict_text"]
    # exact = p^L exactly, so the overlay's p̄^L (p̄ = exp(−nll), L = 24 digits + END) reproduces it
    assert [p["predicted"] for p in v["overlay"]] == pytest.approx([p["measured"] for p in v["overlay"]], rel=1e-6)


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
    assert v["trend"]["mc_acc"]["within_noise"]  # it rose, but Newcombe's interval of the rise spans 0
    d, lo, hi = v["trend"]["mc_acc"]["difference"]
    assert d > 0 and lo < 0 < hi and not v["trend"]["mc_acc"]["significant_jumps"]


def test_one_significant_jump_in_noise_is_emergent_and_named(emergence):
    v = emergence["variants"]["probe/jump"]
    assert v["verdict"] == "emergent" and {t["state"] for t in v["trend"].values()} == {"sharp"}
    (jump,) = v["trend"]["mc_acc"]["significant_jumps"]
    assert (jump["from_N"], jump["to_N"]) == pytest.approx(SIZES[3:5]) and jump["lo"] > 0
    assert "it rests on a single significant jump, N=1e+06 → 3e+06 (+0." in v["verdict_text"]


def test_a_rise_within_the_noise_is_not_a_trend():
    """The real run's icl k2: mc_acc 0.594 → 0.628 over 500 items a size, steadily (ρ = 1), yet within the noise."""
    N, n = np.array([1.17e4, 3e4, 6e4, 1.2e5, 1.97e5]), np.full(5, ITEMS)
    t = trend(N, [0.594, 0.6, 0.61, 0.62, 0.628], "mc_acc", n)
    assert t["spearman"] == pytest.approx(1.0) and t["state"] == "flat" and t["within_noise"]
    assert t["difference"][1] < 0 < t["difference"][2]
    # a mean without intervals: the same rise in a line is clean (no residual noise); with wiggles of its own size,
    # it is noise
    assert trend(N, [2.47, 2.38, 2.30, 2.21, 2.12], "nll")["state"] == "smooth"
    wiggly = trend(N, [2.47, 2.30, 2.52, 2.21, 2.40], "nll")
    assert wiggly["state"] == "flat" and wiggly["within_noise"] and wiggly["noise"] > 0.03


def test_pure_noise_rarely_moves_out_of_the_noise():
    from sweep.analysis.emergence.verdict import verdict

    N, n, moved, emergent = np.array(SIZES), np.full(6, ITEMS), {"mc_acc": 0, "nll": 0, "brier": 0}, 0
    draws = 300
    for seed in range(draws):
        probe = noisy_probe(100 + seed, np.full(6, 0.6), np.zeros(6))
        trends = {m: trend(N, v, m, n) for m, v in probe.items()}
        for m, t in trends.items():
            moved[m] += t["state"] != "flat"
        emergent += verdict(trends, False, len(N))[0] == "emergent"
    assert max(moved.values()) < 0.1 * draws and emergent <= 0.01 * draws


def test_two_step_prediction_recovers_the_held_out_accuracy(emergence):
    (r,) = [r for r in emergence["two_step"] if r["key"] == "add/d3"]
    N_max = SIZES[-1]
    assert r["held_out_N"] == pytest.approx(N_max)
    assert r["observed"] == pytest.approx(truth_acc(truth_nll(flops(N_max))))
    assert abs(r["error"]) < 0.02  # noiseless data: both steps' forms are the truth's
    assert r["step2_points"] == 5 + 2 * 5  # the fitted sizes' finals and their intermediate scorings
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


def test_trend_is_sign_aware_and_intervals_are_sound():
    N = np.array(SIZES[:5])
    falling = trend(N, [2.0, 1.5, 1.0, 0.5, 0.2], "nll")  # lower is better: an improvement
    assert falling["spearman"] == pytest.approx(1.0) and falling["net"] == pytest.approx(1.8)
    assert falling["state"] == "smooth" and falling["jump_share"] == pytest.approx(0.5 / 1.8)
    assert trend(N, [0.2, 0.5, 1.0, 1.5, 2.0], "nll")["state"] == "flat"  # worse with size
    lo, hi = wilson(0.0, 100)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0.03 < hi < 0.04  # Wilson's upper bound at 0 of 100 (3.7%)
    d, lo, hi = newcombe(0.5, 100, 0.5, 100)
    assert d == 0.0 and lo < 0 < hi


def test_a_sweep_without_task_results_has_none(tmp_path):
    assert load_tasks(write_task_sweep(tmp_path / "plain", tasks=False), "non_embedding") is None


def test_the_section_says_per_task_what_it_found(emergence):
    text = "\n".join(section_lines(Emergence.from_json(emergence), {}))
    words = text[text.index("### Emergent, or a metric artefact?"):text.index("### Per task and variant")]
    lines = {line.split("**")[1]: line for line in words.splitlines() if line.startswith("- **")}
    assert "consistent with a metric artefact" in lines["copy"] and "emergent under this suite" in lines["muladd"]
    assert lines["redefine"].count("(at chance)") == 2 and "no signal" in lines["redefine"]
    assert ("exact 0.000753 [6.21e-05, 0.00906] at N=3e+04 → 0.778 [0.739, 0.812] at N=1e+07 (difference +0.777 "
            "[+0.738, +0.811])") in lines["copy"]
    assert "no trend with size" in lines["probe"] and "(difference +" in lines["probe"]
    assert "| flat (within noise) |" in text and "Newcombe's 95% interval of the difference excludes 0" in text
    assert "the scratchpad helps significantly from N=3e+05 on" in text
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
    assert "emergent under this suite" in section and "no signal" in section
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
