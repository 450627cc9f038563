"""Hydra composition of the `train` config outside a Hydra app: for validation before launching, for `sweep bench`,
`sweep prepare`, the grid launcher and tests. The Hydra app itself (sweep.launch) registers the same resolvers."""

from __future__ import annotations

import dataclasses
import difflib
import re
from pathlib import Path

from .naming import horizon_tag, run_suffix
from .schema import ConfigError, RunConfig, load

CONFIG_MODULE = "sweep.configs"
PRIMARY = "train"


def register() -> None:
    """Resolvers train.yaml uses, and the typed schema it starts from (so every key exists and is typed)."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("sweep_horizon_tag", horizon_tag, replace=True)
    OmegaConf.register_new_resolver("sweep_suffix", run_suffix, replace=True)
    ConfigStore.instance().store(name="run_schema", node=RunConfig)
    _expose_launcher_plugin()


def _expose_launcher_plugin() -> None:
    """Hydra finds launchers by walking the folders of the `hydra_plugins` namespace; an editable install (pip
    install -e, setuptools' default mode) serves sweep's SLURM launcher through an import hook that this walk does
    not see, so the launcher's folder is added to the namespace's folders (a no-op for a regular install)."""
    import importlib.util

    import hydra_plugins

    spec = importlib.util.find_spec("hydra_plugins.sweep_slurm")
    if spec is not None and spec.origin:
        folder = str(Path(spec.origin).parent.parent)
        if folder not in list(hydra_plugins.__path__):
            hydra_plugins.__path__.append(folder)


def compose_raw(overrides: list[str]):
    """Hydra's composed config (hydra node included), set as the current HydraConfig so `${hydra:...}` and the
    run-name resolver see these overrides; composition errors become ConfigError with Hydra's words."""
    from hydra import compose as hydra_compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException

    register()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            cfg = hydra_compose(PRIMARY, overrides=overrides, return_hydra_config=True)
    except HydraException as err:  # unknown group option, bad override syntax, missing key
        raise ConfigError(explain(err, overrides)) from None
    HydraConfig.instance().set_config(cfg)
    return cfg


def explain(err: Exception, overrides: list[str]) -> str:
    """Hydra's message, plus the fix for the lexer error a user meets most: a value with characters outside the
    override grammar (unicode, spaces, some punctuation) must be quoted."""
    message = str(err).strip()
    unknown = re.search(r"Could not override '([^']+)'", message)
    if unknown and (close := difflib.get_close_matches(unknown.group(1), known_keys(), n=3, cutoff=0.8)):
        message += f"\ndid you mean {' or '.join(close)}?"
    if "LexerNoViableAltException" in message or "token recognition error" in message:
        suspects = [o for o in overrides if not o.isascii() or " " in o.partition("=")[2]]
        example = suspects[0].partition("=") if suspects else ("key", "=", "value")
        message += (f"\nquote the value, e.g. {example[0]}='{example[2]}' (in a shell: "
                    f"\"{example[0]}='{example[2]}'\")")
    return message


def known_keys(node=RunConfig, prefix: str = "") -> list[str]:
    """Every dotted key of the schema (model.n_layer, train.lr, ...)."""
    out = []
    for f in dataclasses.fields(node):
        if dataclasses.is_dataclass(f.type if isinstance(f.type, type) else None):
            out += known_keys(f.type, f"{prefix}{f.name}.")
        elif isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory):
            out += known_keys(f.default_factory, f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


def compose(overrides: list[str]) -> RunConfig:
    """The composed, validated RunConfig for these overrides, without launching anything or creating a directory."""
    return load(compose_raw(overrides))
