"""Self-reported attribution: what the buyers said brought them, and a blend with touches.

``self_reported`` credits each deal whole to its buying group's stated channel (the answer to
"How did you hear about us?", :attr:`Journeys.stated <attribution.journeys.Journeys>`), the
way B2B teams read their demo-form field; a deal without a mapped answer is credited by the
*fallback* model (the run's recommended model), so the model covers every deal. ``blended``
gives each answered deal ``self_reported`` (0.5) of its amount on the stated channel and the
rest as the fallback model credits its touches (HockeyStack's and Refine Labs' "self-reported
plus software attribution" reading: neither view alone).

A model that needs another model's credit: the fallback is named by a hyperparameter (a model
name and its parameters, both plain values), instantiated from the registry and asked for its
weights on the same journeys (fitted first when it fits). The weights, not money, are
combined, so :func:`attribution.credit.allocate` still turns them into exact cents per deal
(largest remainder), as for every model. The stated channel is credited at channel level
(``touch_index`` null): it need not be a channel any touch carries (``word_of_mouth``), and a
deal without any touch can be credited to it.

Both models need self-reported answers (``needs``), so a run without them leaves them out of
its default model list and refuses them by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl

from attribution.errors import ConfigError, ModelError
from attribution.journeys import Journeys
from attribution.models.base import NEEDS_SELF_REPORTED, AttributionModel
from attribution.schema import NO_TOUCH_CHANNEL, NO_TOUCH_GROUP

SELF_REPORTED_MODELS = ("self_reported", "blended")
#: the weight columns these models hand to ``allocate`` (the touch's id and time are looked up)
_COLUMNS = {"journey_id": pl.String, "touch_index": pl.UInt32, "channel": pl.String,
            "weight": pl.Float64, "channel_group": pl.String}


def _check_fallback(name: str, fallback: Any) -> None:
    from attribution.models import MODELS

    if not isinstance(fallback, str) or fallback not in MODELS:
        raise ConfigError(f"model {name!r}: fallback {fallback!r} is not a model; valid: "
                          + ", ".join(m for m in MODELS if m not in SELF_REPORTED_MODELS))
    if fallback in SELF_REPORTED_MODELS:
        raise ConfigError(f"model {name!r}: fallback {fallback!r} is itself a self-reported "
                          "model; name a touch-based model (the recommended model is the "
                          "default)")


def _params(value: Any) -> tuple[tuple[str, Any], ...]:
    items = value.items() if isinstance(value, dict) else value
    return tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v) for k, v in items))


def stated_rows(journeys: Journeys, weight: float) -> pl.DataFrame:
    """Channel-level weight rows (``touch_index`` null): ``weight`` on each money journey's
    stated channel, for the journeys that have one."""
    if journeys.stated is None:
        raise ModelError("the journeys carry no self-reported answers")
    money = journeys.money.select("journey_id")
    return (
        money.join(journeys.stated, on="journey_id", how="inner", maintain_order="left")
        .select(
            "journey_id", pl.lit(None, pl.UInt32).alias("touch_index"), "channel",
            pl.lit(weight, pl.Float64).alias("weight"), "channel_group",
        )
    )


def fallback_rows(model: AttributionModel, journeys: Journeys, scale: pl.Expr) -> pl.DataFrame:
    """``model``'s weights of the money journeys' touches, times ``scale`` (an expression of
    ``_answered``: whether the journey has a stated channel), with each touch's channel
    group; rows scaled to 0 are dropped."""
    from attribution.credit import channel_groups

    scope = journeys if model.uses_population else journeys.with_money_only()
    model.check(scope)
    weights = model.fit(scope).weights(scope) if model.fits else model.weights(scope)
    rows = weights.select("journey_id", "touch_index", "channel", "weight").collect()
    answered: pl.Series | list[str] = (journeys.stated.get_column("journey_id")
                                       if journeys.stated is not None else [])
    rows = rows.join(journeys.money.select("journey_id"), on="journey_id", how="semi",
                     maintain_order="left")
    return (
        rows.with_columns(pl.col("journey_id").is_in(pl.Series(answered, dtype=pl.String)
                                                     .implode()).alias("_answered"))
        .with_columns((pl.col("weight") * scale).alias("weight"))
        .filter(pl.col("weight") > 0)
        .join(channel_groups(journeys).collect(), on="channel", how="left",
              maintain_order="left")
        .select(list(_COLUMNS))
    )


def _combined(parts: list[pl.DataFrame]) -> pl.LazyFrame:
    return pl.concat([p.select([pl.col(c).cast(t) for c, t in _COLUMNS.items()])
                      for p in parts]).lazy()


@dataclass(frozen=True)
class _SelfReportedBase(AttributionModel):
    needs: ClassVar[frozenset[str]] = frozenset({NEEDS_SELF_REPORTED})
    # the fallback model may learn from the population (the recommended model does)
    uses_population: ClassVar[bool] = True

    fallback: str = "incremental"
    fallback_params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        _check_fallback(self.name, self.fallback)
        object.__setattr__(self, "fallback_params", _params(self.fallback_params))

    def tracked_model(self) -> AttributionModel:
        """The fallback model, with its parameters."""
        from attribution.models import get_model

        return get_model(self.fallback, **dict(self.fallback_params))


@dataclass(frozen=True)
class SelfReported(_SelfReportedBase):
    """All credit to the buying group's stated channel (self-reported attribution); the
    fallback (recommended) model's credit for a deal without a mapped answer.

    Parameters
    ----------
    fallback
        The model that credits deals without an answer (a run passes its recommended model).
    fallback_params
        That model's parameters.
    """

    name: ClassVar[str] = "self_reported"
    label: ClassVar[str] = "Self-reported"
    summary: ClassVar[str] = ("100% to the stated channel (\"How did you hear about us?\"); "
                              "the recommended model where there is no answer")

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        stated = stated_rows(journeys, 1.0)
        tracked = fallback_rows(self.tracked_model(), journeys,
                                pl.when(pl.col("_answered")).then(0.0).otherwise(1.0))
        return _combined([tracked, stated])


@dataclass(frozen=True)
class Blended(_SelfReportedBase):
    """Each answered deal split between its stated channel (``self_reported`` of it) and the
    fallback (recommended) model's touch credit (the rest); a deal without an answer as the
    fallback model credits it. An answered deal without any touch keeps the rest on
    ``(no touch)``, as the tracked view has it.

    Parameters
    ----------
    self_reported
        The stated channel's share of an answered deal, 0 to 1 (``--param
        blended.self_reported=0.3``, or ``blend.self_reported``).
    """

    name: ClassVar[str] = "blended"
    label: ClassVar[str] = "Blended"
    summary: ClassVar[str] = ("answered deals split between the stated channel and the "
                              "recommended model's touches (blend.self_reported = 0.5)")

    self_reported: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        value = self.self_reported
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ConfigError(f"model 'blended': self_reported must be a weight from 0 to 1, "
                              f"not {value!r}")
        object.__setattr__(self, "self_reported", float(value))

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        share = self.self_reported
        stated = stated_rows(journeys, share).filter(pl.col("weight") > 0)
        tracked = fallback_rows(self.tracked_model(), journeys,
                                pl.when(pl.col("_answered")).then(1.0 - share).otherwise(1.0))
        # an answered deal no touch reached: the tracked part stays (no touch)'s
        bare = (
            journeys.money.filter(pl.col("n_touches") == 0).select("journey_id")
            .join(journeys.stated if journeys.stated is not None else
                  pl.DataFrame(schema={"journey_id": pl.String}), on="journey_id", how="semi")
            .select(
                "journey_id", pl.lit(None, pl.UInt32).alias("touch_index"),
                pl.lit(NO_TOUCH_CHANNEL).alias("channel"),
                pl.lit(1.0 - share, pl.Float64).alias("weight"),
                pl.lit(NO_TOUCH_GROUP).alias("channel_group"),
            )
            .filter(pl.col("weight") > 0)
        )
        return _combined([tracked, stated, bare])


__all__ = ["SELF_REPORTED_MODELS", "Blended", "SelfReported"]
