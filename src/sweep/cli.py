"""`sweep COMMAND ...`: dispatch to the stages. Hydra composes the config of `train`, `demo` and `prepare`."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

USAGE = """usage: sweep COMMAND [ARGS]

commands:
  train [-m] [OVERRIDES]    one training run, or a grid with -m (sweep=isoflop|ladder|cpu selects a preset)
  demo [OVERRIDES]          the embedded default end to end on CPU: the `cpu` isoFLOP grid, then analyze
  analyze SWEEP_DIR | --csv FILE [--out DIR] [--params non_embedding|total|matmul]
                            scaling-law fits, intervals, plots and report.md
  sizes [--json] [--vocab N]
                            the model ladder: shapes, parameters by convention, FLOPs/token
  prepare [OVERRIDES]       tokenize a corpus into shards (train does this on demand)
  bench [OVERRIDES] [bench.variants=default|all|fp32-eager,...] [bench.steps=N] [bench.warmup=N] [bench.profile=N]
                            training throughput, FLOP/s, matmul peak and MFU; last line one JSON object

Run `sweep train --help` for Hydra's help on config groups and overrides.
"""
CONFIG_MODULE = "sweep.configs"
EXIT_INPUT_ERROR = 2


def _format_number(value: float) -> str:
    return f"{value:.3g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def horizon_tag(tokens, flops, tokens_per_param) -> str:
    """The horizon part of a run name: f1e13 (FLOPs), t2e6 (tokens), tpp20 (tokens per parameter)."""
    if flops is not None:
        return "f" + _format_number(float(flops))
    if tokens is not None:
        return "t" + _format_number(float(tokens))
    return "tpp" + _format_number(float(tokens_per_param if tokens_per_param is not None else 20))


def run_suffix(grid) -> str:
    """Other defining overrides of this cell, path-safe: in a grid only the swept keys (`sweep.grid`), since
    what all cells share is the sweep's, not the cell's; keys in hydra's override_dirname exclude list never."""
    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    excluded = set(hydra_cfg.job.config.override_dirname.exclude_keys)
    items = []
    for override in hydra_cfg.overrides.task:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key in excluded or (grid and key not in grid):
            continue
        items.append(f"{key}-{value}")
    safe = "".join(c if c.isalnum() or c in "-_.=+" else "-" for c in "_".join(sorted(items)))
    return "_" + safe if safe else ""


def _register_resolvers() -> None:
    """Resolvers used by train.yaml, and the typed schema it starts from (so every key exists and is typed)."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    from .config import RunConfig

    OmegaConf.register_new_resolver("sweep_horizon_tag", horizon_tag, replace=True)
    OmegaConf.register_new_resolver("sweep_suffix", run_suffix, replace=True)
    ConfigStore.instance().store(name="run_schema", node=RunConfig)


def _compose_raw(overrides: list[str]):
    """Hydra's composed config (hydra node included); composition errors become ConfigError with Hydra's words."""
    from hydra import compose as hydra_compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    from .config import ConfigError

    _register_resolvers()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            return hydra_compose("train", overrides=overrides, return_hydra_config=True)
    except HydraException as err:  # unknown group option, bad override syntax, missing key
        raise ConfigError(str(err).strip()) from None


def compose(overrides: list[str]):
    """The composed, validated RunConfig for these overrides, without launching anything or creating a directory."""
    from hydra.core.hydra_config import HydraConfig

    from . import config

    cfg = _compose_raw(overrides)
    HydraConfig.instance().set_config(cfg)
    return config.load(cfg)


def _parallel_jobs() -> int:
    """How many cells of this multirun share the machine (for dividing torch threads)."""
    from hydra.core.hydra_config import HydraConfig

    launcher = HydraConfig.get().launcher
    if "joblib" not in str(launcher.get("_target_", "")):
        return 1
    from joblib import effective_n_jobs  # n_jobs=-1 → the usable CPUs (affinity and cgroup quota), as joblib runs

    return max(1, effective_n_jobs(int(launcher.get("n_jobs") or 1)))


def _train_task(cfg) -> float | None:
    """The Hydra task of one cell."""
    from hydra.core.hydra_config import HydraConfig

    from . import config, runtime
    from .data import DataError
    from .train import train

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        run = config.load(cfg)
        jobs = _parallel_jobs()
        summary = train(run, run_dir, runtime.resolve(run.device, run.train, jobs), progress=jobs == 1)
    except (config.ConfigError, DataError) as err:
        _record_failure(run_dir, err)
        raise SystemExit(f"error: {err}") if _is_single_run() else err
    except Exception as err:
        _record_failure(run_dir, err)
        raise
    return summary.get("val_loss")


def _is_single_run() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.get().mode == RunMode.RUN


def _record_failure(run_dir: Path, err: BaseException) -> None:
    from .tracking import write_json_atomic

    if run_dir.exists():
        write_json_atomic(run_dir / "summary.json", {"run_name": run_dir.name, "status": "failed",
                                                     "error": f"{type(err).__name__}: {err}"})


def _hydra_run(task, argv: list[str]) -> None:
    import hydra

    _register_resolvers()
    app = hydra.main(config_path=f"pkg://{CONFIG_MODULE}", config_name="train", version_base="1.3")(task)
    saved = sys.argv
    sys.argv = ["sweep", *argv]
    try:
        app()
    finally:
        sys.argv = saved


def failed_cells(sweep_dir: Path) -> list[tuple[str, str]]:
    cells = []
    for path in sorted(sweep_dir.glob("*/summary.json")):
        summary = json.loads(path.read_text())
        if summary.get("status") != "completed":
            cells.append((path.parent.name, summary.get("error", summary.get("status", "?"))))
    return cells


def cmd_train(argv: list[str]) -> int:
    from .config import ConfigError
    from .data import DataError

    multirun = "-m" in argv or "--multirun" in argv
    if not multirun and not any(a.startswith("-") for a in argv):
        try:  # validate before Hydra creates the run directory: a rejected config leaves nothing behind
            from .train import check_plan

            check_plan(compose(argv))
        except (ConfigError, DataError) as err:
            print(f"error: {err}", file=sys.stderr)
            return EXIT_INPUT_ERROR
    return _launch(argv, multirun)


def grid_keys(argv: list[str]) -> list[str]:
    """The keys a multirun sweeps: comma lists / range() / choice() on the command line, and the preset's params."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = [a for a in argv if not a.startswith("-")]
    parsed = OverridesParser.create().parse_overrides(overrides)
    keys = {o.get_key_element().lstrip("+~") for o in parsed if o.is_sweep_override()}
    preset = [o for o in overrides if o.startswith("sweep=")]
    if preset:
        keys |= set(_compose_raw(preset).hydra.sweeper.params or {})
    return sorted(keys)


def _launch(argv: list[str], multirun: bool) -> int:
    if multirun:
        argv = [*argv, f"sweep.grid=[{','.join(grid_keys(argv))}]"]
        try:  # parallel cells share one corpus: tokenize it once, up front, with a progress bar
            run = compose(_base_overrides(argv))
        except Exception:  # a grid over a group (e.g. data=a,b) does not compose without its values: cells prepare
            run = None
        if run is not None:
            from .data import prepare

            prepare(run.data, Path(run.out_dir) / run.data.cache_dir)
    try:
        _hydra_run(_train_task, argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (EXIT_INPUT_ERROR if exc.code else 0)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
        if not multirun or code == 0:
            return code
    else:
        code = 0
    if multirun:
        sweep_dir = _sweep_dir(argv)
        failed = failed_cells(sweep_dir) if sweep_dir and sweep_dir.exists() else []
        if failed:
            print(f"{len(failed)} cell(s) of {sweep_dir} failed:", file=sys.stderr)
            for name, error in failed:
                print(f"  {name}: {error}", file=sys.stderr)
            return 1
    return code


def _base_overrides(argv: list[str]) -> list[str]:
    """The overrides shared by every cell: flags, swept keys and hydra's own settings left out."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = [o for o in argv if not o.startswith("-")]
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [text for text, o in zip(overrides, parsed)
            if not o.is_sweep_override() and not o.get_key_element().lstrip("+~").startswith("hydra")]


def _sweep_dir(argv: list[str]) -> Path | None:
    """<out_dir>/<sweep name> for these arguments (grid values do not change it)."""
    try:
        run = compose(_base_overrides(argv))
    except Exception:
        return None
    return Path(run.out_dir) / run.sweep.name


def cmd_demo(argv: list[str]) -> int:
    """The `cpu` isoFLOP grid on the embedded corpus, cells in parallel, then the analysis."""
    overrides = ["sweep=cpu", "hydra/launcher=joblib", *argv]
    sweep_dir = _sweep_dir(overrides)
    code = _launch(["-m", *overrides], multirun=True)
    if code != 0:
        return code
    from .analyze import run as analyze

    report = analyze(sweep_dir=sweep_dir)
    print(f"\nsweep demo: {sweep_dir} analysed; report: {report}")
    return 0


def cmd_sizes(argv: list[str]) -> int:
    import argparse
    import importlib.resources

    from omegaconf import OmegaConf

    from .accounting import flops_per_token, param_counts

    parser = argparse.ArgumentParser(prog="sweep sizes", description="the model ladder")
    parser.add_argument("--json", action="store_true", help="one JSON list instead of a table")
    parser.add_argument("--vocab", type=int, default=4096, help="vocabulary size (default: data.vocab_size's 4096)")
    args = parser.parse_args(argv)
    rows = []
    for path in importlib.resources.files(CONFIG_MODULE).joinpath("model").iterdir():
        if not path.name.endswith(".yaml"):
            continue
        m = OmegaConf.create(path.read_text())
        vocab = m.vocab_size or args.vocab
        counts = param_counts(m.n_layer, m.d_model, vocab, m.seq_len, m.tie_embeddings)
        rows.append({"name": m.name, "n_layer": m.n_layer, "d_model": m.d_model, "n_head": m.n_head,
                     "seq_len": m.seq_len, "vocab_size": vocab, **{k: counts[k] for k in
                     ("total", "non_embedding", "embedding", "matmul")},
                     "flops_per_token": flops_per_token(m.n_layer, m.d_model, vocab, m.seq_len)})
    rows.sort(key=lambda r: r["non_embedding"])
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'name':<10}{'n_layer':>8}{'d_model':>8}{'n_head':>7}{'non_embedding':>15}{'embedding':>12}"
          f"{'matmul':>13}{'total':>13}{'FLOPs/token':>13}")
    for r in rows:
        print(f"{r['name']:<10}{r['n_layer']:>8}{r['d_model']:>8}{r['n_head']:>7}{r['non_embedding']:>15,}"
              f"{r['embedding']:>12,}{r['matmul']:>13,}{r['total']:>13,}{r['flops_per_token']:>13.3g}")
    print(f"(vocab {args.vocab}; non_embedding excludes token and position embeddings; matmul counts the "
          f"output head; FLOPs/token = 6·matmul + 6·n_layer·seq_len·d_model)")
    return 0


def cmd_prepare(argv: list[str]) -> int:
    from .data import prepare

    run = compose(argv)
    prepared = prepare(run.data, Path(run.out_dir) / run.data.cache_dir)
    print(f"prepared {run.data.name}: {prepared.dir} (vocab {prepared.vocab_size})")
    return 0


def cmd_bench(argv: list[str]) -> int:
    from .bench import bench

    bench(argv)
    return 0


def cmd_analyze(argv: list[str]) -> int:
    from .analyze import main as analyze_main

    return analyze_main(argv)


COMMANDS = {"train": cmd_train, "demo": cmd_demo, "sizes": cmd_sizes, "prepare": cmd_prepare, "analyze": cmd_analyze,
            "bench": cmd_bench}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"sweep: unknown command {argv[0]!r}\n\n{USAGE}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from .config import ConfigError
    from .data import DataError

    try:
        return command(argv[1:])
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT_ERROR


if __name__ == "__main__":
    sys.exit(main())
