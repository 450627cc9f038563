"""The `sweep` command's small subcommands and its error handling."""

import json
import subprocess
import sys

from sweep.cli import main


def test_sizes_json_lists_the_ladder_with_every_convention(capsys):
    assert main(["sizes", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in rows]
    assert names[0] == "gpt-6k" and names[-1] == "gpt-100m" and "gpt-25k" in names
    assert all({"n_layer", "d_model", "n_head", "total", "non_embedding", "embedding", "matmul",
                "flops_per_token"} <= set(r) for r in rows)
    assert [r["non_embedding"] for r in rows] == sorted(r["non_embedding"] for r in rows)


def test_sizes_table(capsys):
    assert main(["sizes", "--vocab", "512"]) == 0
    out = capsys.readouterr().out
    assert "gpt-100m" in out and "FLOPs/token" in out and "vocab 512" in out


def test_prepare_tokenizes_once(tmp_path, capsys):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n\n".join(f"def f{i}(x):\n    return x * {i} + {i * i}" for i in range(3000)))
    args = ["prepare", "data=local", f"data.path={corpus}", "data.vocab_size=300", "data.val_tokens=1024",
            f"out_dir={tmp_path}"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "prepared local" in first
    entries = list((tmp_path / "cache").iterdir())
    assert main(args) == 0 and list((tmp_path / "cache").iterdir()) == entries


def test_unknown_command_and_help():
    assert main(["frobnicate"]) == 2
    assert main(["--help"]) == 0
    result = subprocess.run([sys.executable, "-m", "sweep", "analyze", "--csv", "/no/such.csv"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "/no/such.csv" in result.stderr
