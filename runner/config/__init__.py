"""The run configuration: a TOML file validated by a typed model.

A config describes one *run*: a strategy, a search space, an objective, and the
symbols to optimise. Each symbol gets its own Optuna study, named
``{study.name}-{symbol}``. Every field is documented in the README's config
reference; this module is its source of truth.

Errors are raised as :class:`ConfigError`, whose message names the file, the
field and what is wrong, so the CLI can print one line and exit 2.

The package: :mod:`.fields` (bounds, one-line errors, value checks),
:mod:`.model` (the typed models), :mod:`.loading` (reading a file; checks that
need the file system, the backtest library or the search space).
"""

from .fields import ConfigError, parse_time
from .loading import DEMO_CONFIG, load_config
from .model import (
    CategoricalParam,
    ConstraintSettings,
    DataSettings,
    FloatParam,
    IntParam,
    NotifySettings,
    PrunerSettings,
    RunConfig,
    SamplerSettings,
    StrategySettings,
    StudySettings,
    SyntheticData,
    ValidationSettings,
    WalkForward,
)

__all__ = [
    "DEMO_CONFIG", "CategoricalParam", "ConfigError", "ConstraintSettings", "DataSettings", "FloatParam", "IntParam",
    "NotifySettings", "PrunerSettings", "RunConfig", "SamplerSettings", "StrategySettings", "StudySettings", "SyntheticData",
    "ValidationSettings", "WalkForward", "load_config", "parse_time",
]
