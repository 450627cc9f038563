"""The task suite: deterministic eval items that are correct and disjoint from training, their cache files, the
training-mixture rows, and the tokenizer check."""

import collections
import dataclasses
import concurrent.futures
import json
import re

import numpy as np
import pytest
from tokenizers import Tokenizer, models

from sweep.config import ConfigError, compose
from sweep.data.tokenizer import train_tokenizer
from sweep.tasks.build import check_tokenizer, entry_name, load_items, prepare
from sweep.tasks.formats import Draws, add
from sweep.tasks.items import ALPHABET, END, SEP, Item, TaskError
from sweep.tasks.mix import TaskRows
from sweep.launch import preflight
from sweep.tasks.formats import muladd
from sweep.tasks.suite import (EVAL_VARIANTS, MIN_HELD_OUT, POOL, SEEN, TRAINABLE, Suite, build_eval, core, forms)


@pytest.fixture(scope="module")
def items():
    return build_eval(0, 40)


@pytest.fixture(scope="module")
def items500():
    return build_eval(0, 500)


@pytest.fixture(scope="module")
def codec():
    return check_tokenizer(train_tokenizer(["12345 + 678 = 90; |abc| XYZ?"] * 20, 300))


def test_build_eval_is_deterministic_and_depends_on_the_seed(items):
    assert build_eval(0, 40) == items
    other = build_eval(1, 40)
    assert other != items
    assert [i.key for i in other if i.key != "add/d1" and i.key != "add_cot/d1"] == \
        [i.key for i in items if i.key != "add/d1" and i.key != "add_cot/d1"]


def test_every_variant_has_distinct_items_and_small_spaces_give_all_they_have(items):
    counts = collections.Counter(i.key for i in items)
    assert set(counts) == {f"{t}/{v}" for t, vs in EVAL_VARIANTS.items() for v in vs}
    for key, n in counts.items():
        group = [(i.prompt, i.answer, i.choices) for i in items if i.key == key]
        assert len(set(group)) == n, key
    # add d1 has 100 operand pairs in 55 canonical forms, ~20% held out: every one of them, however many were asked
    held_out = [f"{a}+{b}" for a in range(10) for b in range(10) if Suite(0).held_out(add(a, b, 1, cot=False))]
    assert len(held_out) == counts["add/d1"] == counts["add_cot/d1"] < 40
    assert sorted(i.prompt[:-1] for i in items if i.key == "add/d1") == sorted(held_out)
    assert all(f"{b}+{a}" in held_out for a, b in (s.split("+") for s in held_out))  # twins held out together


def test_items_per_variant_caps_every_variant_and_all_facts_are_evaluated(items500):
    counts = collections.Counter(i.key for i in items500)
    assert counts["fact/all"] == 256 and counts["add/d1"] < 40 and counts["add/d1_seen"] == 100 - counts["add/d1"]
    assert all(n == 500 for key, n in counts.items()
               if key not in ("fact/all", "add/d1", "add_cot/d1", "add/d1_seen"))


def test_items_are_in_the_alphabet_and_answers_end_with_end(items500):
    for i in items500:
        assert set(i.prompt + i.answer) <= set(ALPHABET) and SEP not in i.prompt + i.answer
        assert i.answer.endswith(END) and END not in i.answer[:-1], i
        assert all(c.endswith(END) for c in i.choices) and (not i.choices or i.answer in i.choices)
        assert all(i.answer[p].isdigit() for p in i.digits)


def test_arithmetic_answers_are_correct(items500):
    checked = collections.Counter()
    for i in items500:
        if i.task in ("add", "add_cot", "muladd", "muladd_cot", "redefine"):
            expr = i.prompt.removeprefix("(+=-)")[:-1]
            operands = [int(x) for x in re.split(r"[+*]", expr)]
            d = i.axis["d"] if i.task != "redefine" else None
            if d is not None:
                assert all(len(str(x)) == d for x in operands), i
            expected = {"add": lambda a, b: a + b, "add_cot": lambda a, b: a + b, "redefine": lambda a, b: a - b,
                        "muladd": lambda a, b, c, e: a * b + c * e,
                        "muladd_cot": lambda a, b, c, e: a * b + c * e}[i.task](*operands)
            result = "".join(i.answer[p] for p in i.digits)
            assert int(result) == expected and i.axis["L"] == len(result), i
            assert i.answer.endswith(f"{expected}{END}") and (i.task.endswith("_cot") or
                                                              i.answer == f"{expected}{END}"), i
            checked[i.task] += 1
            if i.task == "redefine":
                assert set(i.choices) == {f"{expected};", f"{sum(operands)};"}
    assert set(checked) == {"add", "add_cot", "muladd", "muladd_cot", "redefine"}, checked


def test_scratchpads_are_right_and_end_with_the_direct_answer():
    suite, draws = Suite(3), Draws(np.random.default_rng(0))
    for d in range(1, 6):
        for _ in range(200):
            direct = suite.draw("add", f"d{d}", draws)
            a, b = map(int, direct.prompt[:-1].split("+"))
            cot = add(a, b, d, cot=True)
            assert cot.final == direct.answer and cot.answer.endswith(">" + direct.answer)
            carry = 0
            for column, x, y in zip(cot.answer.split(">")[0].split(" "), str(a)[::-1], str(b)[::-1]):
                s = int(x) + int(y) + carry
                assert column == f"{x}+{y}+{carry}={s % 10},{s // 10}"
                carry = s // 10
    for variant in ("d1", "d2"):
        cot = suite.draw("muladd_cot", variant, draws)
        a, b, c, e = map(int, re.split(r"[+*]", cot.prompt[:-1]))
        assert cot.answer == f"{a * b}+{c * e}={a * b + c * e};" and cot.final == f"{a * b + c * e};"


def test_icl_shots_follow_the_map_and_the_query_was_shown(items500):
    checked = collections.Counter()
    for i in items500:
        if i.task not in ("icl", "icl_random"):
            continue
        shots = re.findall(r"([a-z])>([A-Z]),", i.prompt)
        query = i.prompt[-2]
        assert i.prompt.startswith("#") and i.prompt.endswith(">") and len(shots) == i.axis["k"], i
        assert len(i.choices) == 2 and i.answer in i.choices and {s[1] + END for s in shots} <= set(i.choices), i
        if not i.axis["k"]:
            checked[i.task, "k0"] += 1
            continue
        assert query in {s for s, _ in shots}, i  # the query is always a symbol the shots showed
        checked[i.task, "shots"] += 1
        if i.task == "icl":
            label_of = {}
            for s, label in shots:
                assert label_of.setdefault(s, label) == label, i  # one map: a symbol keeps its label
            assert i.answer == label_of[query] + END, i
    # every kind of item was seen (a suite that stopped making one would otherwise pass unchecked)
    assert set(checked) == {("icl", "k0"), ("icl", "shots"), ("icl_random", "shots")}, checked  # random k0 = k0


def test_icl_random_labels_are_at_chance():
    suite, draws = Suite(0), Draws(np.random.default_rng(1))
    agree = [i.answer[0] == re.findall(rf"{i.prompt[-2]}>([A-Z]),", i.prompt)[0]
             for i in (suite.draw("icl_random", "k1", draws) for _ in range(2000))]
    assert abs(np.mean(agree) - 0.5) < 0.05


@pytest.mark.parametrize("task", TRAINABLE)
def test_training_items_never_meet_eval_items(task, items500):
    """By core within each pool (the operands for arithmetic, so add_cot's training never shows an add eval sum)
    and by text. Facts are the exception: recall is measured on the trained facts."""
    suite, draws = Suite(0), Draws(np.random.default_rng(7))
    trained = [suite.train_item(draws, task) for _ in range(20_000)]
    evals = [i for i in items500 if POOL[i.task] == POOL[task] and not i.variant.endswith(SEEN)]
    shared = {core(i) for i in evals} & {core(i) for i in trained}
    if task == "fact":
        assert len(shared) == 256  # every fact is trained and evaluated
    else:
        assert shared == set() and len({core(i) for i in trained}) > 50
        assert not {i.prompt + i.answer for i in evals} & {i.prompt + i.answer for i in trained}


def test_train_items_come_from_the_train_partition_of_trainable_families():
    suite, draws = Suite(0), Draws(np.random.default_rng(3))
    drawn = [suite.train_item(draws) for _ in range(7000)]
    assert all(suite.trainable(i) for i in drawn)
    counts = collections.Counter(i.task for i in drawn)
    assert set(counts) == set(TRAINABLE)  # never icl_random or redefine
    assert all(abs(c / len(drawn) - 1 / len(TRAINABLE)) < 0.03 for c in counts.values())
    text = suite.train_text(np.random.default_rng(0))
    assert text == suite.train_text(np.random.default_rng(0)) and text.endswith(END)


def _twins(item):
    """Every item a model could recall `item` by: the commuted and digit-reversed sums and products, in the direct
    and the scratchpad format; for ICL, the same question behind other shots and as a shot of another text."""
    expr = item.prompt[:-1]
    d = item.axis.get("d")
    if POOL[item.task] == "add":
        a, b = expr.split("+")
        pairs = [(a, b), (b, a), (a[::-1], b[::-1]), (b[::-1], a[::-1])]
        return [add(int(x), int(y), d, cot) for x, y in pairs if x[0] != "0" or x == "0"
                if y[0] != "0" or y == "0" for cot in (False, True)]
    if POOL[item.task] == "muladd":
        a, b, c, e = re.split(r"[*+]", expr)
        out = []
        for ops in ((a, b, c, e), (b, a, e, c), (c, e, a, b), (e, c, b, a), tuple(x[::-1] for x in (c, e, b, a))):
            if all(x[0] != "0" or x == "0" for x in ops):
                out += [muladd(*map(int, ops), d, cot) for cot in (False, True)]
        return out
    if item.task == "icl":
        q, label = item.prompt[-2], item.answer[0]
        other = "x" if q != "x" else "y"
        return [dataclasses.replace(item, prompt=f"#{other}>Z,{q}>{label},{q}>"),
                dataclasses.replace(item, prompt=f"#{q}>{label},{other}>Z,{other}>", answer="Z;")]
    return [item]


@pytest.mark.slow
def test_no_eval_item_shares_a_canonical_form_with_any_training_item(items500):
    """The leakage proof over the whole generated suite (every held-out variant, 500 items each): every twin a
    model could recall an eval item by is refused by training draws, and 20,000 real training windows' items show
    no eval item's form. The `_seen` controls are the opposite: in the train partition."""
    suite = Suite(0)
    held = [i for i in items500 if POOL[i.task] in {POOL[t] for t in TRAINABLE} and i.task != "fact"
            and not i.variant.endswith(SEEN)]
    assert len(held) > 10_000
    twins_checked = collections.Counter()
    for item in held:
        assert suite.held_out(item), item
        for twin in _twins(item):
            assert core(item) in forms(twin) and not suite.trainable(twin), (item, twin)
            twins_checked[item.task] += 1
    assert {t for t, n in twins_checked.items() if n > len(held) // 100} >= {"add", "add_cot", "muladd", "icl"}
    # commuting and reversing really are twins of the form (a form that ignored them would pass the loop above)
    assert core(add(12, 34, 2, False)) == core(add(34, 12, 2, True)) == core(add(21, 43, 2, False))
    assert core(muladd(1, 2, 3, 4, 1, False)) == core(muladd(4, 3, 2, 1, 1, True))
    assert core(add(12, 34, 2, False)) != core(add(13, 24, 2, False))
    eval_forms = {core(i) for i in held}
    codec = check_tokenizer(train_tokenizer([ALPHABET * 4] * 20, 300))
    rows = TaskRows(suite, 0, 0.5, codec, 128)
    trained = [t for step in range(400) for row in range(50)
               for t in codec.decode(rows.window(step, row)).split(SEP)[:-1]]
    assert len(trained) > 100_000
    shown = set()
    for text in trained:
        item = _parse(text)
        if item is not None:
            shown.update(forms(item))
    assert len(shown) > 10_000 and not shown & eval_forms
    seen = [i for i in items500 if i.variant.endswith(SEEN)]
    assert len(seen) > 1000 and all(suite.trainable(i) and not suite.held_out(i) for i in seen)
    assert len({core(i) for i in seen if i.key == "add/d2_seen"} & shown) > 0.9 * len(
        {core(i) for i in seen if i.key == "add/d2_seen"})  # the control's items are what the mix trains


def _parse(text: str):
    """A training text back into the Item whose forms it shows (None for a fact: recall by definition)."""
    if text.startswith("#"):
        prompt, answer = text[:-2], text[-2:]
        return Item("icl", "k", prompt, answer)
    if text.startswith("|"):
        return Item("copy", "m", text[: text.index("|", 1) + 1], text[text.index("|", 1) + 1:])
    if "?" in text:
        return None
    sep = "=" if "=" in text and ":" not in text else ":"
    prompt, answer = text.split(sep, 1)
    return Item("muladd" if "*" in prompt else "add", "d", prompt + sep, answer)


def test_tasks_weights_share_the_task_rows_and_a_bad_suite_config_is_refused_before_any_work(tmp_path):
    draws = Draws(np.random.default_rng(5))
    weighted = Suite(0, weights={"add": 3, "copy": 1})
    got = collections.Counter(weighted.train_item(draws).task for _ in range(4000))
    assert set(got) == {"add", "copy"} and abs(got["add"] / 4000 - 0.75) < 0.03
    base = ["model=gpt-25k", "train.tokens=1e5", "tasks.mix=0.5", f"out_dir={tmp_path}"]
    with pytest.raises(TaskError, match=r"add/d1 has 100 items; tasks.eval_share=0.02 holds 2 out .* fewer than the "
                                        rf"{MIN_HELD_OUT} .* raise tasks.eval_share"):
        preflight(compose(base + ["tasks.eval_share=0.02"]))
    with pytest.raises(TaskError, match="lower tasks.eval_share"):
        preflight(compose(base + ["tasks.eval_share=0.97"]))
    with pytest.raises(TaskError, match="'sub', not a trainable task family"):
        preflight(compose(base + ["+tasks.weights.sub=1"]))
    with pytest.raises(TaskError, match="every tasks.weights entry is 0"):
        preflight(compose(base + [f"tasks.weights.{t}=0" for t in TRAINABLE]))
    with pytest.raises(TaskError, match="a weight is a finite number"):
        preflight(compose(base + ["tasks.weights.add=-1"]))
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def test_prepare_writes_the_same_bytes_twice_and_reuses_its_entry(tmp_path):
    first = prepare(tmp_path / "a", 5, 20)
    second = prepare(tmp_path / "b", 5, 20)
    assert first.built_now and first.dir.name == second.dir.name == entry_name(5, 20)
    assert first.eval_path.read_bytes() == second.eval_path.read_bytes()
    assert (first.dir / "manifest.json").read_bytes() == (second.dir / "manifest.json").read_bytes()
    assert first.hash == second.hash == json.loads((first.dir / "manifest.json").read_text())["sha256"]
    again = prepare(tmp_path / "a", 5, 20)
    assert not again.built_now and again.hash == first.hash
    assert load_items(again) == build_eval(5, 20)
    m = first.manifest
    add3 = [i for i in build_eval(5, 20) if i.key == "add/d3"]  # results of 3 or 4 digits, guessed at 1/10 each
    assert m["variants"]["add/d3"] == {"n": 20, "chance": {"exact": pytest.approx(np.mean([0.1 ** i.axis["L"]
                                                                                            for i in add3])),
                                                          "digit_acc": pytest.approx(0.1)}}
    assert set(m["variants"]["add_cot/d3"]["chance"]) == {"exact_final", "digit_acc"}
    assert m["variants"]["icl/k4"]["chance"]["mc_acc"] == 0.5
    assert prepare(tmp_path / "a", 6, 20).dir != first.dir


def test_two_concurrent_prepares_build_one_entry(tmp_path):
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda _: prepare(tmp_path, 2, 10), range(2)))
    assert [g.built_now for g in got].count(True) == 1 and got[0].hash == got[1].hash
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([entry_name(2, 10), entry_name(2, 10) + ".lock"])


def test_a_damaged_entry_is_rebuilt_and_loading_it_is_refused(tmp_path):
    files = prepare(tmp_path, 1, 10)
    original = files.eval_path.read_bytes()
    files.eval_path.write_bytes(original.replace(b'"add"', b'"sub"', 1))
    with pytest.raises(TaskError, match="does not match the hash"):
        load_items(files)
    rebuilt = prepare(tmp_path, 1, 10)
    assert rebuilt.built_now and rebuilt.eval_path.read_bytes() == original
    with pytest.raises(TaskError, match="positive"):
        prepare(tmp_path, 1, 0)


def test_task_windows_are_pure_packed_and_in_the_alphabet(codec):
    rows = TaskRows(Suite(0), 1, 0.25, codec, 128)
    w = rows.window(10, 3)
    assert w.dtype == np.int64 and w.shape == (129,)
    assert np.array_equal(w, TaskRows(Suite(0), 1, 0.25, codec, 128).window(10, 3))
    assert not np.array_equal(w, rows.window(10, 4)) and not np.array_equal(w, rows.window(11, 3))
    assert not np.array_equal(w, TaskRows(Suite(0), 2, 0.25, codec, 128).window(10, 3))
    text = codec.decode(w)
    suite, complete = Suite(0), text.split(SEP)[:-1]  # the last item is cut at the window's end
    assert len(complete) >= 3 and all(t.endswith(END) and t[0] != SEP for t in complete)
    assert TaskRows(Suite(0), 1, 0.25, codec, 1024).window(10, 3).shape == (1025,)
    # every window is whole, including those whose last item ends exactly at the window's end
    assert {rows.window(s, r).shape for s in range(30) for r in range(30)} == {(129,)}
    assert {core(i) for i in suite.eval_items(40) if i.task == "copy"}.isdisjoint(complete)


def test_the_fraction_of_task_rows_is_mix_and_a_pure_function(codec):
    rows = TaskRows(Suite(0), 9, 0.1, codec, 64)
    picked = np.concatenate([rows.is_task(step, np.arange(1000, dtype=np.uint64)) for step in range(100)])
    n = picked.size
    assert abs(picked.mean() - 0.1) < 4 * np.sqrt(0.1 * 0.9 / n)
    assert np.array_equal(rows.is_task(5, np.arange(64, dtype=np.uint64)),
                          TaskRows(Suite(3), 9, 0.1, codec, 64).is_task(5, np.arange(64, dtype=np.uint64)))
    assert not np.array_equal(rows.is_task(5, np.arange(1000, dtype=np.uint64)),
                              TaskRows(Suite(0), 10, 0.1, codec, 64).is_task(5, np.arange(1000, dtype=np.uint64)))
    assert TaskRows(Suite(0), 9, 1.0, codec, 64).is_task(0, np.arange(1000, dtype=np.uint64)).all()
    assert not TaskRows(Suite(0), 9, 0.0, codec, 64).is_task(0, np.arange(1000, dtype=np.uint64)).any()
    for bad in ("1.0", "1.5", "-0.1"):  # the config owns the bound: some natural text in every run
        with pytest.raises(ConfigError, match=r"tasks.mix=.*\[0, 1\)"):
            compose([f"tasks.mix={bad}"])


def test_a_tokenizer_without_single_digit_tokens_is_refused_and_a_byte_level_bpe_passes():
    merged = Tokenizer(models.BPE(vocab={"0": 0, "12": 1, "2": 2}, merges=[]))
    with pytest.raises(TaskError, match="'1'"):
        check_tokenizer(merged)
    numbers = [" ".join(str(n * 7919 % 100_000) for n in range(k, k + 200)) for k in range(0, 4000, 200)]
    tok = train_tokenizer(numbers, 400)
    assert len(tok.encode("12345").ids) < 5  # it did learn to merge digits
    codec = check_tokenizer(tok)
    assert codec.decode(codec.encode("12345+678=13023;")) == "12345+678=13023;"
