"""The `sweep` command's small subcommands and its error handling."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sweep.cli import main


@pytest.mark.slow
def test_sizes_json_lists_the_ladder_with_every_convention(capsys):
    assert main(["sizes", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in rows]
    assert names[0] == "gpt-1.8k" and names[-1] == "gpt-100m" and "gpt-25k" in names
    assert all({"n_layer", "d_model", "n_head", "total", "non_embedding", "embedding", "matmul",
                "flops_per_token"} <= set(r) for r in rows)
    assert [r["non_embedding"] for r in rows] == sorted(r["non_embedding"] for r in rows)


@pytest.mark.slow
def test_sizes_table(capsys):
    assert main(["sizes", "--vocab", "512"]) == 0
    out = capsys.readouterr().out
    assert "gpt-100m" in out and "FLOPs/token" in out
    assert all(line.split()[5] == "512" for line in out.splitlines()[1:-1])  # the vocab column


@pytest.mark.slow
def test_sizes_under_a_preset_are_the_counts_its_runs_have(capsys):
    assert main(["sizes", "sweep=cpu", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    # gpt-6k is 1 layer of width 22: 12·22² in the block + 512·22 in the head under the preset's vocabulary
    assert (rows["gpt-6k"]["seq_len"], rows["gpt-6k"]["vocab_size"], rows["gpt-6k"]["matmul"]) == (128, 512, 17_072)


def test_version_and_python_dash_m():
    from sweep import __version__

    result = subprocess.run([sys.executable, "-m", "sweep", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"sweep {__version__}"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_tab_completion_as_hydra_documents_it(tmp_path):
    """eval "$(sweep -sc install=bash)", then what bash asks on <TAB>: commands first, then config groups/keys."""
    script = """eval "$(sweep -sc install=bash)"
    for line in "sweep tr" "sweep train model=gpt-1" "sweep train train.l"; do
        COMP_LINE="$line"; COMP_POINT=${#line}; words=($line); COMP_CWORD=$(( ${#words[@]} - 1 ))
        hydra_bash_completion; echo "${COMPREPLY[*]}"
    done"""
    bin_dir = Path(sys.executable).parent
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    commands, models, keys = result.stdout.splitlines()
    assert commands == "train"
    assert "model=gpt-1m" in models.split() and "model=gpt-100m" in models.split()
    assert {"train.lr=", "train.log_every="} <= set(keys.split())


def test_prepare_tokenizes_once(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n".join(f"def f{i}(x):\n    return x * {i} + {i * i}" for i in range(3000)))
    args = ["prepare", "data=local", f"data.path={corpus}", "data.vocab_size=300", "data.val_tokens=1024",
            f"out_dir={tmp_path}"]
    assert main(args) == 0
    first = capsys.readouterr().out
    # What it found: files, documents, bytes, train/val tokens and how the split was made.
    assert "(prepared now)" in first and "1 file," in first and "3,000 documents" in first
    assert "val " in first and "train " in first and "held-out documents" in first
    entries = list((tmp_path / "cache").iterdir())
    assert main(args) == 0 and list((tmp_path / "cache").iterdir()) == entries
    assert "(found in the cache)" in capsys.readouterr().out


@pytest.mark.slow
def test_unknown_command_and_help():
    assert main(["frobnicate"]) == 2
    assert main(["--help"]) == 0
    result = subprocess.run([sys.executable, "-m", "sweep", "analyze", "--csv", "/no/such.csv"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "/no/such.csv" in result.stderr
