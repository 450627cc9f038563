"""Task scoring (sweep.tasks.score, sweep.tasks.metrics): the metrics' definitions on hand-built cases and stub
models whose logits we control, and their relations on a briefly trained tiny GPT (greedy exact match ⟺ every
teacher-forced argmax right; sampled exact match ≈ p_seq)."""

import math
import random

import numpy as np
import pytest
import torch

from sweep.config import ModelConfig
from sweep.data.tokenizer import train_tokenizer
from sweep.tasks import metrics
from sweep.tasks.items import ALPHABET, END, Item, SymbolCodec, TaskError
from sweep.tasks.metrics import cut_at_end
from sweep.tasks.score import GREEDY_MARGIN, _decode, evaluate_items, icl_curve, induction_ratio, sample_exact, \
    score
from sweep.train.model import GPT


@pytest.fixture(scope="module")
def codec():
    return SymbolCodec(train_tokenizer([ALPHABET * 4, "def f(x):\n    return x + 1\n" * 3], vocab_size=300))


def add_item(a: int, b: int) -> Item:
    total = str(a + b)
    d = max(len(str(a)), len(str(b)))
    return Item("add", f"d{d}", f"{a}+{b}=", total + ";", digits=tuple(range(len(total))),
                axis={"d": d, "L": len(total)})


def tiny_gpt(codec, seq_len=16, n_layer=2, d_model=32):
    return GPT(ModelConfig(n_layer=n_layer, d_model=d_model, n_head=2, seq_len=seq_len,
                           vocab_size=max(codec.ids.values()) + 1))


class Bigram(torch.nn.Module):
    """Logits depend only on the current token: a table we set by hand."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = table

    def forward(self, idx, targets=None):
        return self.table[idx], None


class Scripted(torch.nn.Module):
    """Predicts script[t+1] at position t whatever the input: its greedy completion is the script's tail."""

    def __init__(self, script, vocab: int):
        super().__init__()
        self.logits = torch.zeros(len(script), vocab)
        self.logits[torch.arange(len(script) - 1), torch.as_tensor(script[1:])] = 20.0

    def forward(self, idx, targets=None):
        return self.logits[: idx.shape[1]].expand(idx.shape[0], -1, -1), None


class InductionOracle(torch.nn.Module):
    """A perfect induction head: predicts the token that followed the current token's last earlier occurrence
    (uniform when there is none)."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, idx, targets=None):
        b, t = idx.shape
        logits = torch.zeros(b, t, self.vocab)
        same = (idx[:, :, None] == idx[:, None, :]) & torch.ones(t, t, dtype=torch.bool).tril(-1)  # [b, t, j<t]
        last = torch.where(same, torch.arange(t), -1).max(dim=2).values
        rows, cols = torch.nonzero(last >= 0, as_tuple=True)
        logits[rows, cols, idx[rows, last[rows, cols] + 1]] = 10.0
        return logits, None


# ------------------------------------------------------------------------------------------------ pure numerics
def test_wilson_interval_known_values():
    assert metrics.wilson(0, 10) == pytest.approx((0.0, 0.27754), abs=1e-5)
    assert metrics.wilson(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)  # statsmodels proportion_confint
    assert metrics.wilson(10, 10) == pytest.approx((0.72246, 1.0), abs=1e-5)
    assert metrics.wilson(30, 200) == pytest.approx((0.10714, 0.20606), abs=1e-5)
    assert all(math.isnan(x) for x in metrics.wilson(0, 0))


def test_edit_distance_hand_cases():
    assert metrics.edit_distance("kitten", "sitting") == 3
    assert metrics.edit_distance("579;", "579;") == 0
    assert metrics.edit_distance("", "579;") == 4
    assert metrics.edit_distance("5790;", "579;") == 1
    assert metrics.edit_distance([1, 2, 3], [3, 2, 1]) == 2


def test_final_match_digit_positions_and_chance():
    item = Item("muladd_cot", "d1", "3*4+5*6:", "12+30=42;", final="42;")
    assert metrics.final_matches("12+30=42;", item) and metrics.final_matches("11+30=42;", item)
    assert metrics.final_matches("42;", item)  # no scratchpad, right result
    assert not metrics.final_matches("12+30=43;", item) and not metrics.final_matches("12+30=142;", item)
    assert not metrics.final_matches("12+30=42", item)  # never stopped
    assert metrics.final_matches("12+30=42;=5;", item)  # what follows the first END is not the answer
    add = add_item(289, 290)
    assert metrics.position_hits("579;", add) == [True, True, True]
    assert metrics.position_hits("57;", add) == [True, True, False]  # too short: the missing digit is wrong
    assert metrics.position_hits("7", Item("fact", "all", "kqz?", "7x;")) == [True, False]  # no digits: all but END
    assert metrics.exact_chance(add) == pytest.approx(1e-3)
    assert metrics.exact_chance(Item("icl", "k2", "q", "a;", choices=("a;", "b;", "c;"))) == pytest.approx(1 / 3)
    assert metrics.digit_chance(add) == pytest.approx(0.1)
    assert metrics.text_chance("ab;") == pytest.approx(26 ** -2)


def test_icl_bands_scale_olsson_positions():
    assert metrics.icl_bands(512) == ((42, 58), (492, 508))  # around the paper's 50th and 500th token
    assert metrics.icl_bands(256) == ((21, 29), (246, 254))
    (a, b), (c, d) = metrics.icl_bands(16)
    assert 0 <= a <= b < c <= d <= 15


# ---------------------------------------------------------------------------------------- stub models, by hand
def test_multiple_choice_metrics_from_fixed_logits(codec):
    v = max(codec.ids.values()) + 1
    table = torch.full((v, v), -1e4)
    ids = codec.ids
    table[ids["="], [ids["a"], ids["b"], ids["c"]]] = torch.tensor([0.5, 0.3, 0.2]).log()
    table[[ids["a"], ids["b"], ids["c"]], ids[";"]] = 0.0  # END is certain after a label
    choices = ("a;", "b;", "c;")
    items = [Item("icl", "k1", "x=", "b;", choices=choices), Item("icl", "k1", "y=", "a;", choices=choices)]
    block = score(Bigram(table), items, codec)["icl/k1"]
    assert block["mc_acc"] == 0.5 and block["exact"] == 0.5  # argmax is "a" for both prompts
    assert block["brier"] == pytest.approx((0.25 + 0.49 + 0.04 + 0.25 + 0.09 + 0.04) / 2)
    assert block["p_seq"] == pytest.approx((0.3 + 0.5) / 2)
    assert block["nll"] == pytest.approx((-math.log(0.3) - math.log(0.5)) / 4)  # 4 answer tokens, END included
    assert block["chance"]["mc_acc"] == pytest.approx(1 / 3) and block["chance"]["brier"] == pytest.approx(2 / 3)
    assert block["at_chance"]["mc_acc"] is True  # two items: the interval is wide
    assert block["mc_acc_ci"] == pytest.approx(list(metrics.wilson(1, 2)))


def test_scratchpad_final_and_digits_scored_apart_from_exact(codec):
    item = Item("muladd_cot", "d1", "3*4+5*6:", "12+30=42;", final="42;", digits=(6, 7))
    wrong_step = Scripted(codec.encode(item.prompt + "11+30=42;"), max(codec.ids.values()) + 1)
    block = score(wrong_step, [item], codec)["muladd_cot/d1"]
    assert block["exact"] == 0.0 and block["exact_final"] == 1.0
    assert block["digit_acc"] == 1.0 and block["edit_distance"] == 1.0
    assert block["chance"]["exact_final"] == pytest.approx(1e-2)
    assert block["at_chance"] == {"exact": True, "digit_acc": False, "exact_final": False}  # one item: 0/1 is no signal
    wrong_result = Scripted(codec.encode(item.prompt + "12+30=43;"), max(codec.ids.values()) + 1)
    block = score(wrong_result, [item], codec)["muladd_cot/d1"]
    assert block["exact_final"] == 0.0 and block["digit_acc"] == 0.5


def test_copy_induction_ratio(codec):
    v = max(codec.ids.values()) + 1
    items = [Item("copy", f"m{len(s)}", f"|{s}|", f"{s};") for s in ("abcdefgh", "qwertyui", "zxcv", "mnbv")]
    variants = score(InductionOracle(v), items, codec)
    assert set(variants) == {"copy/m8", "copy/m4"}
    assert variants["copy/m8"]["copy_nll_first"] == pytest.approx(math.log(v), rel=1e-3)  # nothing to copy yet
    assert variants["copy/m8"]["induction_ratio"] < 0.01  # the second copy is copied
    outcomes = evaluate_items(InductionOracle(v), items, codec)
    first, second = sum(o.copy_nll[0] for o in outcomes), sum(o.copy_nll[1] for o in outcomes)
    assert induction_ratio(variants) == pytest.approx(second / first)
    assert induction_ratio(score(Bigram(torch.zeros(v, v)), items, codec)) == pytest.approx(1.0)  # no context use
    assert induction_ratio(score(Bigram(torch.zeros(v, v)), [add_item(1, 2)], codec)) is None


def test_icl_curve_positions_and_score():
    v, t = 500, 64  # a large vocabulary: few chance repeats to mislead the oracle
    gen = torch.Generator().manual_seed(0)
    half = torch.randint(0, v, (8, (t + 1 + 1) // 2), generator=gen)
    windows = torch.cat([half, half], dim=1)[:, : t + 1]  # a random sequence, then the same again
    curve = icl_curve(InductionOracle(v), windows, batch=3)
    assert len(curve["per_position_loss"]) == t and curve["n_windows"] == 8
    (a, b), (c, d) = curve["early"], curve["late"]
    assert (a, b, c, d) == (5, 7, 61, 63)
    loss = curve["per_position_loss"]
    assert curve["icl_score"] == pytest.approx(np.mean(loss[c: d + 1]) - np.mean(loss[a: b + 1]))
    assert curve["icl_score"] < -3.0  # early: ~log(500) (little to copy yet); late: the repeat is copied
    flat = icl_curve(Bigram(torch.zeros(v, v)), windows)
    assert flat["icl_score"] == pytest.approx(0.0, abs=1e-6)


def test_items_longer_than_the_context_are_refused(codec):
    model = tiny_gpt(codec, seq_len=8)
    score(model, [add_item(99, 1)], codec)  # "99+1=" then "100;": 5 + 4 - 1 = 8 input tokens, just fits
    with pytest.raises(TaskError, match="exceed the model's context of 8"):
        score(model, [add_item(999, 1)], codec)  # 6 + 5 - 1 = 10
    with pytest.raises(TaskError, match="exceed"):
        score(model, [Item("icl", "k1", "1234567=", "a;", choices=("a;", "bcd;"))], codec)  # a choice too long
    with pytest.raises(TaskError, match="context"):
        icl_curve(model, torch.zeros(2, 10, dtype=torch.long))


# ------------------------------------------------------------------------------------------------ a real GPT
def test_padding_and_batching_do_not_change_results(codec):
    torch.manual_seed(0)
    model = tiny_gpt(codec, seq_len=16)
    rng = random.Random(1)
    items = [add_item(rng.randrange(10 ** rng.randint(0, 3)), rng.randrange(10 ** rng.randint(0, 3)))
             for _ in range(12)] + [Item("icl", "k1", "a=1,b=2,a=", "1;", choices=("1;", "2;"))]
    batched = evaluate_items(model, items, codec, batch=5)
    alone = evaluate_items(model, items, codec, batch=1)  # no padding at all
    for x, y in zip(batched, alone):
        assert x.completion == y.completion
        np.testing.assert_allclose(x.answer_nll, y.answer_nll, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # and the answer's NLL is the model's own loss on the item, unpadded
        item = items[0]
        seq = torch.from_numpy(np.concatenate([codec.encode(item.prompt), codec.encode(item.answer)]))[None]
        _, per_token = model(seq[:, :-1], seq[:, 1:], reduction="none")
    np.testing.assert_allclose(batched[0].answer_nll, per_token[-len(item.answer):].numpy(), rtol=1e-4)
    bf16 = score(model, items, codec, autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    assert bf16["add/d1"]["nll"] == pytest.approx(score(model, items, codec)["add/d1"]["nll"], rel=0.05)


@pytest.fixture(scope="module")
def trained(codec):
    """A 2-layer GPT trained briefly on one-digit addition: right on most items, not all (about 1 s)."""
    torch.manual_seed(0)
    rng = random.Random(0)
    model = tiny_gpt(codec)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(110):
        x, y = torch.zeros(64, 12, dtype=torch.long), torch.full((64, 12), -100)
        for row in range(64):
            item = add_item(rng.randrange(10), rng.randrange(10))
            prompt, answer = codec.encode(item.prompt), codec.encode(item.answer)
            seq = torch.from_numpy(np.concatenate([prompt, answer]))
            x[row, : len(seq) - 1] = seq[:-1]
            y[row, len(prompt) - 1: len(seq) - 1] = seq[len(prompt):]  # loss on the answer only
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, [add_item(a, b) for a in range(10) for b in range(10)]


@pytest.mark.slow
def test_greedy_exact_iff_every_teacher_forced_argmax_is_right(trained, codec):
    model, items = trained
    model.train()
    outcomes = evaluate_items(model, items, codec)
    assert model.training  # restored after scoring in eval mode
    # An independent greedy decode from the bare prompts (evaluate_items starts decoding where teacher forcing
    # already knows the completion, which relies on this very identity).
    end = codec.ids[END]
    with torch.no_grad():
        model.eval()
        decoded = _decode(model, [codec.encode(it.prompt) for it in items],
                          [len(it.answer) + GREEDY_MARGIN for it in items], end, "cpu", 64)
        model.train()
    full = [cut_at_end(codec.decode(d)) for d in decoded]
    exact = [c == it.answer for it, c in zip(items, full)]
    assert 0 < sum(exact) < len(items)  # the identity is tested on both sides
    assert exact == [bool(o.answer_hit.all()) for o in outcomes]
    assert [o.completion for o in outcomes] == full  # the shortcut decode gives the full decode's completions
    assert score(model, items, codec)["add/d1"]["exact"] == pytest.approx(np.mean(exact))


def test_sampled_exact_match_agrees_with_p_seq(trained, codec):
    model, items = trained
    p_seq = np.array([math.exp(-o.answer_nll.sum()) for o in evaluate_items(model, items, codec)])
    assert 0.1 < p_seq.mean() < 0.9
    n_samples = 40
    sampled = sample_exact(model, items, codec, n_samples, torch.Generator().manual_seed(0))
    standard_error = math.sqrt(np.mean(p_seq * (1 - p_seq)) / (len(items) * n_samples))
    assert abs(sampled.mean() - p_seq.mean()) <= 3 * standard_error
    assert np.corrcoef(sampled, p_seq)[0, 1] > 0.8  # item by item too, not only on average


def test_per_item_outcomes_give_back_every_metric_and_the_icl_score_is_the_mean_over_windows(codec):
    """tasks.json's per-item lists are what the analysis resamples: their sums must give the variant's metrics."""
    torch.manual_seed(2)
    model = tiny_gpt(codec, seq_len=24)
    rng = random.Random(3)
    items = [add_item(rng.randrange(100), rng.randrange(100)) for _ in range(30)]
    items += [Item("icl", "k1", "#a>B,a>", "B;", choices=("B;", "C;")), Item("icl", "k1", "#c>C,c>", "C;",
                                                                          choices=("B;", "C;"))]
    items += [Item("copy", "m4", "|abcd|", "abcd;"), Item("copy", "m4", "|dcba|", "dcba;")]
    variants = score(model, items, codec)
    for key, v in variants.items():
        got = v["items"]
        assert len(got["exact"]) == v["n"]
        assert np.mean(got["exact"]) == pytest.approx(v["exact"])
        assert sum(got["nll_sum"]) / sum(got["tokens"]) == pytest.approx(v["nll"], rel=1e-5)
        assert np.mean(got["p_seq"]) == pytest.approx(v["p_seq"], rel=1e-5)
        assert np.mean(got["edit_distance"]) == pytest.approx(v["edit_distance"])
        if "digit_acc" in v:
            assert sum(got["digit_hits"]) / sum(got["digit_n"]) == pytest.approx(v["digit_acc"])
        if "mc_acc" in v:
            assert np.mean(got["mc_acc"]) == pytest.approx(v["mc_acc"])
            assert np.mean(got["brier"]) == pytest.approx(v["brier"], rel=1e-5)
    copy = variants["copy/m4"]["items"]
    assert sum(copy["copy_second"]) / sum(copy["copy_first"]) == pytest.approx(variants["copy/m4"]["induction_ratio"],
                                                                              rel=1e-5)
    windows = torch.randint(0, max(codec.ids.values()) + 1, (10, 25))
    curve = icl_curve(model, windows, batch=3)
    assert len(curve["per_window_score"]) == 10
    assert np.mean(curve["per_window_score"]) == pytest.approx(curve["icl_score"], rel=1e-4, abs=1e-6)
