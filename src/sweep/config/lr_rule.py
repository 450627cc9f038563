"""Learning-rate rules: the peak lr as a power law of the matmul parameter count, lr*(N) = lr_ref·(N/n_ref)^exponent,
read from a JSON file. `sweep analyze` of an lr sweep (`sweep=lr`) writes one (lr_rule.json); `train.lr_rule=FILE`
makes the trainer use it; `auto` is the packaged rule measured on the default corpus (configs/lr_rule/, README) over
the sizes it was measured at, and the literature rule (Porian et al. 2024) beyond them.

A rule knows the sizes it was measured over: outside them it is an extrapolation, which the plan records and the
report flags. A rule without a measurement (`measured: null`) is a literature default and is always "untuned".
"""

from __future__ import annotations

import importlib.resources
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .compose import CONFIG_MODULE
from .schema import ConfigError, is_auto

FORMAT = "sweep-lr-rule/1"
# train.lr_rule=auto: the rule measured on the default corpus where it was measured, the literature rule elsewhere
# (a GPU-sized model should not inherit an lr extrapolated from 10k-200k-parameter models).
DEFAULT_RULE = "pystdlib"  # configs/lr_rule/<name>.json
FALLBACK_RULE = "porian"
RANGE_SLACK = 1.25  # a size within this factor of the measured range still counts as measured (grid rounding)


@dataclass(frozen=True)
class LrRule:
    name: str
    source: str  # the file it was read from
    lr_ref: float
    n_ref: float
    exponent: float
    min_params: float | None  # the measured range of matmul parameter counts (None: never measured)
    max_params: float | None
    max_lr: float | None = None  # a clamp, for literature rules extrapolated to tiny models
    measured: dict | None = None  # how it was measured: data, tokens_per_param, the per-size table
    fallback: "LrRule | None" = None  # what sizes outside the measured range get instead (train.lr_rule=auto)

    def _for(self, n_params: float) -> "LrRule":
        return self.fallback if self.fallback is not None and not self.in_range(n_params) else self

    def lr(self, n_params: float) -> float:
        rule = self._for(n_params)
        value = rule.lr_ref * (n_params / rule.n_ref) ** rule.exponent
        return min(value, rule.max_lr) if rule.max_lr is not None else value

    @property
    def tuned(self) -> bool:
        return self.measured is not None and self.min_params is not None

    def in_range(self, n_params: float) -> bool:
        return self.tuned and self.min_params / RANGE_SLACK <= n_params <= self.max_params * RANGE_SLACK

    def record(self, n_params: float) -> dict:
        """config.yaml's plan.lr_rule: what the rule says for this size, which rule said it, whether that rule
        was measured at this size, and the tokens/param it was measured at (None: never measured)."""
        rule = self._for(n_params)
        tpp = (rule.measured or {}).get("tokens_per_param")
        return {"name": rule.name, "source": rule.source, "rule_lr": self.lr(n_params), "tuned": rule.tuned,
                "in_range": rule.in_range(n_params), "min_params": rule.min_params, "max_params": rule.max_params,
                "tokens_per_param": float(tpp) if isinstance(tpp, (int, float)) else None}


def to_json(rule: LrRule) -> dict:
    return {"format": FORMAT, "params": "matmul", "lr": {"lr_ref": rule.lr_ref, "n_ref": rule.n_ref,
                                                         "exponent": rule.exponent, "max_lr": rule.max_lr},
            "range": {"min_params": rule.min_params, "max_params": rule.max_params}, "measured": rule.measured}


def from_json(doc: dict, name: str, source: str) -> LrRule:
    """The rule in `doc`; a ConfigError naming what is wrong when it is not one."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ConfigError(f"train.lr_rule={source}: not an lr rule (expected \"format\": \"{FORMAT}\", as "
                          f"`sweep analyze` of a sweep=lr sweep writes in lr_rule.json)")
    if doc.get("params", "matmul") != "matmul":
        raise ConfigError(f"train.lr_rule={source}: rules are over matmul parameter counts, not {doc['params']!r}")
    law, span = doc.get("lr") or {}, doc.get("range") or {}
    try:
        lr_ref, n_ref, exponent = float(law["lr_ref"]), float(law["n_ref"]), float(law["exponent"])
        max_lr = None if law.get("max_lr") is None else float(law["max_lr"])
        lo = None if span.get("min_params") is None else float(span["min_params"])
        hi = None if span.get("max_params") is None else float(span["max_params"])
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"train.lr_rule={source}: the \"lr\" law needs numbers lr_ref, n_ref, exponent "
                          f"({type(err).__name__}: {err})") from None
    if not (lr_ref > 0 and n_ref > 0 and math.isfinite(exponent)) or (max_lr is not None and max_lr <= 0):
        raise ConfigError(f"train.lr_rule={source}: lr_ref and n_ref must be positive, exponent finite "
                          f"(got lr_ref={lr_ref}, n_ref={n_ref}, exponent={exponent}, max_lr={max_lr})")
    if (lo is None) != (hi is None) or (lo is not None and not 0 < lo <= hi):
        raise ConfigError(f"train.lr_rule={source}: range needs 0 < min_params ≤ max_params (got {lo}, {hi})")
    return LrRule(name=name, source=source, lr_ref=lr_ref, n_ref=n_ref, exponent=exponent, min_params=lo,
                  max_params=hi, max_lr=max_lr, measured=doc.get("measured"))


def packaged() -> list[str]:
    return sorted(p.name[:-5] for p in importlib.resources.files(CONFIG_MODULE).joinpath("lr_rule").iterdir()
                  if p.name.endswith(".json"))


def load(spec) -> LrRule:
    """train.lr_rule: auto (the packaged default), the name of a packaged rule, or a path to a rule file."""
    if is_auto(spec):
        from dataclasses import replace

        return replace(load(DEFAULT_RULE), fallback=load(FALLBACK_RULE))
    name = str(spec)
    if name in packaged():
        resource = importlib.resources.files(CONFIG_MODULE).joinpath("lr_rule", f"{name}.json")
        return from_json(json.loads(resource.read_text()), name, f"{name} (packaged)")
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigError(f"train.lr_rule={spec}: no such file, and not a packaged rule ({', '.join(packaged())}); "
                          f"give the lr_rule.json that `sweep analyze` wrote for a sweep=lr sweep")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"train.lr_rule={spec}: cannot read it as JSON ({err})") from None
    return from_json(doc, path.stem, str(path.resolve()))
