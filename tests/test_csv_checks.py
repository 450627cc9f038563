"""`sweep analyze --csv` on CSVs that pandas reads without complaint but that are wrong: each is refused with one
line on stderr naming the row or column and the fix (exit 2, nothing written), or, for exact duplicate rows, read
with them dropped and counted. Messages show numbers as written, never as numpy reprs."""

from __future__ import annotations

import pytest

from helpers import true_loss
from sweep.analysis.inputs.load import load_csv
from sweep.analysis.main import main

HEADER = "n_params,tokens,loss\n"
ROWS = [f"{n:g},{d:g},{true_loss(n, d):.4f}\n" for n in (1e6, 2e6, 4e6) for d in (1e8, 3e8)]
GOOD = HEADER + "".join(ROWS)


@pytest.mark.parametrize("name, text, needle", [
    ("overflow", GOOD + "1e200,1e200,2.5\n", "row 7 (line 8): 6·n_params·tokens = 6 × 1e+200 × 1e+200 is too large"),
    ("underflow", GOOD + "1e-200,1e-200,2.5\n", "6 × 1e-200 × 1e-200 is too small"),
    ("absurd loss", GOOD + "1e6,1e8,1e299\n", "row 7 (line 8): loss 1e+299 is above 30 nats/token"),
    ("loss in bits", GOOD + "1e6,1e8,45\n", "not bits or perplexity"),
    ("column twice", "n_params,tokens,loss,loss\n" + "".join(r.strip() + ",3\n" for r in ROWS),
     "column 'loss' appears 2 times"),
    ("stray quotes", HEADER + "".join(ROWS[:3]) + '1e6,"1e8,3.1\n2e6,1e8",3.0\n' + "".join(ROWS[3:]),
     "8 data lines but 7 rows (row 4 holds a line break): an unbalanced quote"),  # two lines read as one row
    ("unclosed quote", HEADER + "".join(ROWS[:3]) + '1e6,"1e8,3.1\n' + "".join(ROWS[3:]), "EOF inside string"),
    ("negative, typed", GOOD + "1e6,-5,2.5\n", "column 'tokens': -5 is not a finite positive number"),
])
def test_a_wrong_csv_is_refused_in_one_line_and_nothing_is_written(tmp_path, capsys, name, text, needle):
    path = tmp_path / f"{name.replace(' ', '_')}.csv"
    path.write_text(text)
    out = tmp_path / "out"
    assert main(["--csv", str(path), "--out", str(out), "--bootstrap", "0", "--wandb", "off"]) == 2, name
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and str(path) in err, err
    assert "np.float64" not in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_the_good_csv_is_accepted_so_each_refusal_above_is_the_planted_fault(tmp_path):
    path = tmp_path / "good.csv"
    path.write_text(GOOD)
    assert len(load_csv(path).runs) == len(ROWS)


@pytest.mark.slow  # a full analysis of a CSV: the full suite
def test_exact_duplicate_rows_are_dropped_counted_and_reported(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text(GOOD + ROWS[1] + ROWS[1] + ROWS[4])
    ds = load_csv(path)
    assert len(ds.runs) == len(ROWS)  # each run once
    assert any("3 row(s) of the CSV repeat an earlier row exactly (the first: line 8)" in n for n in ds.notes), ds.notes
    out = tmp_path / "out"
    assert main(["--csv", str(path), "--out", str(out), "--bootstrap", "0", "--wandb", "off"]) == 0
    assert "repeat an earlier row exactly" in (out / "report.md").read_text()
