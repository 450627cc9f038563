"""The shared test helpers: every test module imports what it shares from here, never from another test module;
conftest.py keeps only fixtures and hooks. `import helpers` works because pyproject.toml puts tests/ on pytest's
`pythonpath`.

Sections: runs of the trainer (compose, train in-process, launch as a subprocess, read back); the synthetic sweep
(run directories in the trainer's format, their losses from a known law); the trust grid's runs (repeated data,
the lr rule); small data corpora; an offline wandb run's records. Heavy imports (torch, wandb, pyarrow, the
package's stages) happen inside the helpers that need them, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# ------------------------------------------------------------------------------------------- trainer runs
SWEEP = [sys.executable, "-m", "sweep"]


def local_overrides(out: Path, corpus: Path, *extra: str, vocab: int = 512, val_tokens: int = 2048,
                    seq_len: int = 64, batch_tokens: int = 512) -> list[str]:
    """A tiny, fast CPU run on a local corpus: the base every trainer test adds its own overrides to. Mechanics
    tests may pass over the small corpus many times (data.allow_repeat)."""
    return ["data=local", f"data.path={corpus}", f"data.vocab_size={vocab}", f"data.val_tokens={val_tokens}",
            f"out_dir={out}", f"model.seq_len={seq_len}", f"train.batch_tokens={batch_tokens}", "device=cpu",
            "train.threads=1", "data.allow_repeat=true", *extra]


def run_dir_of(args: list[str]) -> Path:
    """Where `sweep train ARGS` writes: <out_dir>/<sweep name>/<run_name>."""
    from sweep.config import compose

    run = compose(args)
    return Path(run.out_dir) / run.sweep.name / run.run_name


def run_cell(run) -> tuple[dict, Path]:
    """Train a composed RunConfig in-process into its run directory; (summary, run_dir)."""
    from sweep.train import runtime
    from sweep.train.loop import train

    run_dir = Path(run.out_dir) / run.sweep.name / run.run_name
    return train(run, run_dir, runtime.resolve(run.device, run.train)), run_dir


def launch(args: list[str]) -> subprocess.Popen:
    """`sweep train ARGS` as a subprocess, one output stream: Hydra logs to stdout, tqdm and errors go to stderr."""
    return subprocess.Popen([*SWEEP, "train", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"run ended before {path.name} appeared: {proc.communicate()[0][-2000:]}"
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def summaries(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/summary.json"))}


# ---------------------------------------------------------------------------------------- synthetic sweep
# Ground truth of the synthetic sweep: sizes bracket each budget's optimum (N* ≈ 9e4, 1.4e5, 2.4e5).
TRUE = {"E": 1.8, "A": 60.0, "B": 120.0, "alpha": 0.34, "beta": 0.30}
SIZES = [5e4, 1e5, 2e5, 4e5]
BUDGETS = [1e12, 3e12, 1e13]
EMBED = 2e5  # embedding parameters: only `total` counts them
HEAD = 2e4  # output head: `matmul` counts it, and so do the runs' FLOPs per token (not 6N)


def true_loss(N, D):
    return TRUE["E"] + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / D ** TRUE["beta"]


def true_optimum(C):
    """N* of the true law under the runs' own FLOPs per token, 6·(N + HEAD), by brute force."""
    n = np.logspace(3, 8, 100_001)
    return n[np.argmin(true_loss(n, C / (6 * (n + HEAD))))]


def write_run(root: Path, name: str, N: float, budget: float, rng, status="completed", wandb=False, evals=8, seed=0,
              noise=0.003):
    d = root / name
    d.mkdir(parents=True)
    logger = "name: wandb\n  mode: offline\n  project: sweep-test" if wandb else "name: none\n  mode: disabled"
    (d / "config.yaml").write_text(f"model:\n  name: {name}\nlogger:\n  {logger}\n  entity: null\n"
                                   f"sweep:\n  name: synth\ntrain:\n  flops: {budget}\n  tokens_per_param: null\n")
    fpt = 6 * (N + HEAD)
    tokens = budget / fpt
    with open(d / "metrics.jsonl", "w") as f:
        for i, frac in enumerate(np.linspace(1 / evals, 1, evals)):
            t = frac * tokens
            f.write(json.dumps({"step": i * 10, "tokens": t, "flops": t * fpt, "train_loss": 5.0, "lr": 1e-3,
                                "tok_per_s": 1e4}) + "\n")
            loss = true_loss(N, t) * np.exp(rng.normal(0, noise))
            f.write(json.dumps({"step": i * 10, "tokens": t, "flops": t * fpt, "val_loss": loss,
                                "val_bpb": loss / 2}) + "\n")
    if status is None:
        return d
    summary = {"run_name": name, "status": status, "sweep": "synth", "model": name, "data": "pystdlib", "seed": seed}
    if status == "completed":
        summary.update(n_params={"total": N + EMBED + HEAD, "non_embedding": N, "embedding": EMBED,
                                 "matmul": N + HEAD}, flops_per_token=fpt, flops_budget=budget,
                       tokens_per_param=tokens / N, tokens=tokens, flops=budget, val_loss=loss, val_bpb=loss / 2,
                       lr=1e-3, batch_tokens=1024, steps=evals * 10, wall_s=1.0)
    else:
        summary["error"] = "RuntimeError: loss became NaN"
    (d / "summary.json").write_text(json.dumps(summary))
    return d


def write_sweep(root: Path, wandb=False) -> Path:
    rng = np.random.default_rng(1)
    for N in SIZES:
        for C in BUDGETS:
            write_run(root, f"gpt-{N:.0e}_f{C:.0e}_s0", N, C, rng, wandb=wandb)
    write_run(root, "gpt-8e5_f1e13_s0", 8e5, 1e13, rng, status=None)  # still running: no summary.json
    write_run(root, "gpt-2e4_f1e12_s0", 2e4, 1e12, rng, status="failed")
    (root / ".hydra").mkdir()
    (root / "cache").mkdir()
    (root / "notes").mkdir()  # not a run: ignored silently
    return root


# ------------------------------------------------------------------------------------- the trust grid's runs
# The synthetic law (TRUE, HEAD) with repeated data (Muennighoff's R*) and an lr rule recorded in each run's plan.
R_STAR = 15.0
CORPUS = 1e12  # unique train tokens: more than any run trains on, unless a test says otherwise
RULE = {"name": "measured", "source": "lr_rule.json", "tuned": True, "in_range": True, "min_params": 1e4,
        "max_params": 1e7}


def repeated_loss(N, D, epochs=1.0):
    """The true law on Muennighoff's effective data: D tokens seen `epochs` times."""
    from sweep.analysis.laws.repeat import effective_tokens

    return TRUE["E"] + TRUE["A"] / N ** TRUE["alpha"] + TRUE["B"] / effective_tokens(D, epochs, R_STAR) ** TRUE["beta"]


def rule_lr(N):
    return 3e-3 * (N / 1e5) ** (-1 / 3)


def write_trust_run(root: Path, name: str, N: float, budget: float, rng, corpus: float = CORPUS,
                    lr_factor: float = 1.0, rule: dict | None = RULE, val_tokens: int | None = 32768, evals: int = 6,
                    noise: float = 0.003, model: str | None = None) -> Path:
    """A completed run in the trainer's format, its losses from the true law (with repetition past `corpus`)."""
    d = root / name
    d.mkdir(parents=True)
    fpt = 6 * (N + HEAD)
    tokens = budget / fpt
    epochs = tokens / corpus
    lr = rule_lr(N + HEAD) * lr_factor
    plan = {"epochs": epochs, "lr": lr, "beta2": 0.95, "tokens": tokens, "flops": budget}
    if rule is not None:
        plan["lr_rule"] = {**rule, "rule_lr": rule_lr(N + HEAD)}
    cfg = {"model": {"name": model or name}, "logger": {"name": "none", "mode": "disabled"},
           "sweep": {"name": "trust"}, "train": {"flops": budget, "tokens_per_param": None}, "plan": plan}
    (d / "config.yaml").write_text(json.dumps(cfg))  # JSON is YAML
    with open(d / "metrics.jsonl", "w") as f:
        for i, frac in enumerate(np.linspace(1 / evals, 1, evals)):
            t = frac * tokens
            loss = float(repeated_loss(N, t, max(t / corpus, 1.0)) * np.exp(rng.normal(0, noise)))
            f.write(json.dumps({"step": i + 1, "tokens": t, "flops": t * fpt, "val_loss": loss,
                                "val_bpb": loss / 2}) + "\n")
    summary = {"run_name": name, "status": "completed", "sweep": "trust", "model": model or name, "data": "local",
               "seed": 0, "n_params": {"total": N + 2e5 + HEAD, "non_embedding": N, "embedding": 2e5,
                                       "matmul": N + HEAD, "head": HEAD},
               "flops_per_token": fpt, "flops_budget": budget, "tokens": tokens, "tokens_per_param": tokens / N,
               "flops": budget, "val_loss": loss, "val_bpb": loss / 2, "lr": lr, "epochs": epochs, "wall_s": 1.0}
    if val_tokens is not None:
        summary["val_tokens"] = val_tokens
    (d / "summary.json").write_text(json.dumps(summary))
    return d


# ------------------------------------------------------------------------------------------- data corpora
WORDS = ("the cat sat on a mat def return import class self None True 数据 模型 café naïve 🙂 👩‍💻 "
         "e\u0301 \t tab x=1 {} [] () ; # über Ωmega").split(" ")


def make_docs(n=400, seed=0) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for _ in range(rng.randint(2, 6))]
        docs.append("\n".join(line.strip() or "x" for line in lines))  # no blank line: one .txt paragraph each
    return docs


def small_cfg(path, **kw):
    """A DataConfig of a small local corpus at `path` (300-token vocabulary, 400 validation tokens)."""
    from sweep.config import DataConfig

    base = dict(name="t", source="local", path=str(path), vocab_size=300, val_tokens=400, max_tokens=None,
                tokenizer_train_bytes=1_000_000)
    return DataConfig(**{**base, **kw})


def write_corpus(path: Path, docs: list[str], fmt: str, field="text") -> Path:
    if fmt == "txt":
        path.write_text("\n\n".join(docs), encoding="utf-8")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps({field: d, "id": i}) + "\n" for i, d in enumerate(docs)), encoding="utf-8")
    elif fmt == "json":  # one array of objects
        path.write_text(json.dumps([{"id": i, field: d} for i, d in enumerate(docs)], indent=1), encoding="utf-8")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"id": list(range(len(docs))), field: docs}), path, row_group_size=64)
    return path


# -------------------------------------------------------------------------------- an offline wandb run's records
# The .wandb file is ":W&B" + magic + version, then a LevelDB-style log: 32 KiB blocks of records, each with a
# 7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last) holding a serialized wandb Record protobuf.
_FILE_HEADER, _RECORD_HEADER, _BLOCK = 7, 7, 32768


def read_records(run_dir: Path) -> list:
    """All Record protobufs of the one .wandb file in an offline-run-* directory."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = list(Path(run_dir).glob("*.wandb"))
    raw = path.read_bytes()
    assert raw[:4] == b":W&B", f"{path} is not a wandb transaction log"
    records, pending, offset = [], b"", _FILE_HEADER
    while offset + _RECORD_HEADER <= len(raw):
        left_in_block = _BLOCK - offset % _BLOCK
        if left_in_block < _RECORD_HEADER:
            offset += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", raw[offset:offset + _RECORD_HEADER])
        if length == 0 and kind == 0:  # zero padding to the end of the block
            offset += left_in_block
            continue
        chunk = raw[offset + _RECORD_HEADER:offset + _RECORD_HEADER + length]
        offset += _RECORD_HEADER + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def run_record(run_dir: Path):
    """The (first) run record: id, group, job_type, name, config."""
    return next(r.run for r in read_records(run_dir) if r.WhichOneof("record_type") == "run")


def config_keys(run) -> set[str]:
    return {item.key for item in run.config.update}


def history_keys(run_dir: Path) -> set[str]:
    return {item.key or ".".join(item.nested_key) for r in read_records(run_dir)
            if r.WhichOneof("record_type") == "history" for item in r.history.item}


def summary_keys(run_dir: Path) -> set[str]:
    """The keys a run's summary was given (nested ones joined with '/')."""
    return {item.key or "/".join(item.nested_key) for r in read_records(run_dir)
            if r.WhichOneof("record_type") == "summary" for item in r.summary.update}
