"""attribution: multi-touch attribution for B2B revenue teams.

The public API mirrors the CLI::

    import attribution as at
    result = at.run(at.Config(touchpoints="touchpoints.csv", deals="deals.csv",
                              contacts="contacts.csv"))
    result.summary           # channel credit per model (polars; money *_cents: minor units)
    result.comparison()      # last-touch next to every other model
"""

from __future__ import annotations

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
