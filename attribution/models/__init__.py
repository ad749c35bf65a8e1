"""The model registry: one explicit list of classes, looked up by name.

A new model is one new file in this folder and one line in ``_CLASSES``.
"""

from __future__ import annotations

import difflib
from typing import Any

from attribution.errors import ConfigError, UnknownModelError
from attribution.models.base import AttributionModel
from attribution.models.incremental import IncrementalModel
from attribution.models.markov import MarkovModel
from attribution.models.position import FullPath, UShaped, WShaped
from attribution.models.rule_based import FirstTouch, LastNonDirect, LastTouch, Linear
from attribution.models.self_reported import Blended, SelfReported
from attribution.models.shapley import ShapleyModel
from attribution.models.time_decay import TimeDecay

_CLASSES: list[type[AttributionModel]] = [
    FirstTouch,
    LastTouch,
    LastNonDirect,
    Linear,
    TimeDecay,
    UShaped,
    WShaped,
    FullPath,
    ShapleyModel,
    MarkovModel,
    IncrementalModel,
    SelfReported,
    Blended,
]

MODELS: dict[str, type[AttributionModel]] = {cls.name: cls for cls in _CLASSES}


def model_names() -> list[str]:
    """Registered model names, in registry order."""
    return list(MODELS)


def get_model(model: str | AttributionModel, **params: Any) -> AttributionModel:
    """Return a model instance from a registered name (with hyperparameters) or an instance.

    >>> get_model("time_decay", half_life_days=14).params()["half_life_days"]
    14.0
    """
    if isinstance(model, AttributionModel):
        return model
    try:
        cls = MODELS[model]
    except KeyError:
        raise UnknownModelError.from_name(model, MODELS) from None
    valid = list(cls().params())
    unknown = [key for key in params if key not in valid]
    if unknown:
        close = difflib.get_close_matches(unknown[0], valid, n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"model {model!r} has no parameter {unknown[0]!r}{guess}; its parameters are: "
            f"{', '.join(valid) or 'none'}"
        )
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"model {model!r}: {exc}") from None


__all__ = ["MODELS", "AttributionModel", "get_model", "model_names"]
