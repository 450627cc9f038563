"""Run names, and which config keys define a cell: the one owner of both facts.

A cell is defined by its model, data, train and schedule settings and its seed. Its name carries the model, the
horizon and the seed, then the other defining overrides (in a grid only the swept ones: what every cell shares is
the sweep's, not the cell's). The same-cell check (rundir.check_same_cell) compares every defining key; the name
leaves out keys already in it or in the directory's path and keys about where and how a run executes; a single
run's name also leaves out keys whose values are paths (the same-cell check still compares them), which a grid
that sweeps them names, since they tell its cells apart.
"""

from __future__ import annotations

import re

# May change between launches of one cell without changing what it computes (how often it logs, evaluates and
# checkpoints, how it runs, what it does about a bad step).
NON_DEFINING = frozenset({
    "train.eval_every", "train.eval_share", "train.checkpoint_every", "train.log_every", "train.compile",
    "train.threads", "train.micro_batch", "train.nonfinite", "train.max_skipped_steps", "data.cache_dir",
    "tasks.eval", "tasks.items", "tasks.items_during", "tasks.icl_windows",  # what is scored, not what is trained
})
# Define the cell, but are already part of its name or of its directory's path.
IN_NAME_OR_PATH = frozenset({
    "model", "seed", "train.tokens", "train.flops", "train.tokens_per_param", "sweep", "sweep.name", "sweep.grid",
    "out_dir", "run_name", "train.cooldowns", "train.cooldowns_in",  # a trunk is named `wsd`, its branches `_cd<tag>`
})
# Where and how a run executes or is mirrored: never part of a cell's identity.
EXECUTION = frozenset({
    "device", "logger", "logger.name", "logger.mode", "logger.project", "logger.entity", "hydra/launcher",
    "launcher.pack",
})
# Define the cell (the same-cell check compares them) but their values are paths or hub ids, not names: left out of
# a single run's name; a grid that sweeps one names it.
LOCATIONS = frozenset({"data.path", "data.hub_path", "data.hub_name", "data.hub_split", "data.text_field"})

NEVER_IN_NAMES = NON_DEFINING | IN_NAME_OR_PATH | EXECUTION


def format_number(value: float) -> str:
    """3 significant digits, exponent without '+' and leading zeros: 1e13, 2.5e6, 1e-3."""
    return f"{value:.3g}".replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def horizon_tag(tokens, flops, tokens_per_param, cooldowns=None) -> str:
    """The horizon part of a run name: f1e13 (FLOPs), t2e6 (tokens), tpp20 (tokens per parameter); a cooldown trunk,
    which has one horizon per branch, `wsd`."""
    if cooldowns:
        return "wsd"
    if flops is not None:
        return "f" + format_number(float(flops))
    if tokens is not None:
        return "t" + format_number(float(tokens))
    return "tpp" + format_number(float(tokens_per_param if tokens_per_param is not None else 20))


def branch_name(trunk_name: str, tag: str) -> str:
    """A cooldown branch's run name: its trunk's, then `_cd` and its own horizon tag (gpt-25k_wsd_s0_cdf1e12)."""
    return f"{trunk_name}_cd{tag}"


def override_suffix(overrides: list[str], grid) -> str:
    """The other defining overrides of a cell, path-safe (`_train.lr-0.01`): in a grid only the swept keys."""
    items = []
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key in NEVER_IN_NAMES or key.startswith("hydra.") or (key not in grid if grid else key in LOCATIONS):
            continue  # a grid names the keys it sweeps, locations included: they tell its cells apart
        items.append(f"{key}-{value.rstrip('/').rsplit('/', 1)[-1]}")  # a path (train.lr_rule=FILE): its name
    safe = "".join(c if c.isalnum() or c in "-_.=+" else "-" for c in "_".join(sorted(items)))
    return "_" + safe if safe else ""


def run_suffix(grid) -> str:
    """train.yaml's `${sweep_suffix:...}` resolver: override_suffix of the overrides Hydra is running."""
    from hydra.core.hydra_config import HydraConfig

    return override_suffix(list(HydraConfig.get().overrides.task), grid)


def cell_name(run_name: str, seed) -> str:
    """The cell a run replicates: its name without its seed (`_s<seed>`, and a train.seed or data.seed part), so that
    the seeds of one cell share it (gpt-3k_f1e11_s1 → gpt-3k_f1e11)."""
    name = re.sub(rf"_s{int(seed)}(?=_|$)", "", run_name, count=1) if seed is not None else run_name
    return re.sub(r"_(?:train|data)\.seed-\d+(?=_|$)", "", name)


def is_non_defining(section: str, key: str) -> bool:
    return f"{section}.{key}" in NON_DEFINING


def study_group(sweep_name: str, data_name: str, sweep_dir) -> str:
    """The wandb group of a study: readable (sweep and data) and unique per sweep directory (a short hash of its
    absolute path), so two studies with one preset never share a group and a relaunch keeps its own."""
    import hashlib
    from pathlib import Path

    digest = hashlib.sha1(str(Path(sweep_dir).expanduser().resolve()).encode()).hexdigest()[:6]
    return f"{sweep_name}-{data_name}-{digest}"
