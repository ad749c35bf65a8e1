"""attribution: multi-touch attribution for B2B revenue teams.

The public API mirrors the CLI::

    import attribution as at
    result = at.run(at.Config(touchpoints="touchpoints.csv", deals="deals.csv",
                              contacts="contacts.csv"))
    result.summary           # channel credit per model (polars; money *_cents: minor units)
    result.comparison()      # last-touch next to every other model
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names below, for type checkers; at run time each is imported when
    # first used, so the command line can watch for Ctrl-C before polars loads
    from attribution.api import read_spend, recommend_budget, scorecard, write_report
    from attribution.compare import compare
    from attribution.config import Config, load_config
    from attribution.credit import allocate, summarise
    from attribution.errors import (
        AttributionError,
        ColumnNotFoundError,
        ConfigError,
        InputError,
        ModelError,
        RejectedRowError,
        UnknownModelError,
    )
    from attribution.journeys import Journeys, build_journeys
    from attribution.loading import load_inputs
    from attribution.models import MODELS, AttributionModel, get_model, model_names
    from attribution.pipeline import RunResult, load, prepare, run, run_models, validate

#: where each public name lives
_EXPORTS = {
    "read_spend": "attribution.api",
    "recommend_budget": "attribution.api",
    "scorecard": "attribution.api",
    "write_report": "attribution.api",
    "compare": "attribution.compare",
    "Config": "attribution.config",
    "load_config": "attribution.config",
    "allocate": "attribution.credit",
    "summarise": "attribution.credit",
    "AttributionError": "attribution.errors",
    "ColumnNotFoundError": "attribution.errors",
    "ConfigError": "attribution.errors",
    "InputError": "attribution.errors",
    "ModelError": "attribution.errors",
    "RejectedRowError": "attribution.errors",
    "UnknownModelError": "attribution.errors",
    "Journeys": "attribution.journeys",
    "build_journeys": "attribution.journeys",
    "load_inputs": "attribution.loading",
    "MODELS": "attribution.models",
    "AttributionModel": "attribution.models",
    "get_model": "attribution.models",
    "model_names": "attribution.models",
    "RunResult": "attribution.pipeline",
    "load": "attribution.pipeline",
    "prepare": "attribution.pipeline",
    "run": "attribution.pipeline",
    "run_models": "attribution.pipeline",
    "validate": "attribution.pipeline",
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'attribution' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


class _Package(types.ModuleType):
    """Keeps a public name when the submodule of the same name loads (``compare`` is both):
    importing ``attribution.compare`` would bind the module over the function."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "MODELS",
    "AttributionError",
    "AttributionModel",
    "ColumnNotFoundError",
    "Config",
    "ConfigError",
    "InputError",
    "Journeys",
    "ModelError",
    "RejectedRowError",
    "RunResult",
    "UnknownModelError",
    "allocate",
    "build_journeys",
    "compare",
    "get_model",
    "load",
    "load_config",
    "load_inputs",
    "model_names",
    "prepare",
    "read_spend",
    "recommend_budget",
    "run",
    "run_models",
    "scorecard",
    "summarise",
    "validate",
    "write_report",
]
