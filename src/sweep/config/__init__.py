"""Configuration: the typed schema and its validation (schema), Hydra composition (compose), run names and the keys
that define a cell (naming). Other stages import the schema's dataclasses from here and receive only their slice."""

from .compose import compose, compose_raw
from .schema import (ConfigError, DataConfig, LoggerConfig, ModelConfig, RunConfig, ScheduleConfig, SweepConfig,
                     TrainConfig, load)

__all__ = ["ConfigError", "DataConfig", "LoggerConfig", "ModelConfig", "RunConfig", "ScheduleConfig", "SweepConfig",
           "TrainConfig", "compose", "compose_raw", "load"]
