"""Time-decay: touches closer to the deal's close (or creation) earn exponentially more.

A touch ``age`` days before the reference instant scores ``2 ** (-age / half_life_days)``
(the exponential half-life form used by Google Analytics' time-decay model, default 7 days);
scores are normalised to sum to 1 per journey. Touches after the reference (possible when the
reference is the deal's creation) have age 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from attribution.errors import ConfigError, ModelError
from attribution.journeys import Journeys
from attribution.models.base import (
    NEEDS_TIMESTAMPS,
    AttributionModel,
    run_normalised,
    run_weights,
    with_journey_columns,
)

_DAY_US = 86_400_000_000


@dataclass(frozen=True)
class TimeDecay(AttributionModel):
    """Exponential time decay.

    Parameters
    ----------
    half_life_days
        A touch this many days older than another earns half its credit.
    reference
        ``"close"``: age measured to the deal's close (the as-of instant while open);
        ``"created"``: to the deal's creation.
    """

    name: ClassVar[str] = "time_decay"
    label: ClassVar[str] = "Time decay"
    summary: ClassVar[str] = "credit halves every half_life_days before the reference instant"
    uses_population: ClassVar[bool] = False
    needs: ClassVar[frozenset[str]] = frozenset({NEEDS_TIMESTAMPS})

    half_life_days: float = 7.0
    reference: str = "close"

    def __post_init__(self) -> None:
        object.__setattr__(self, "half_life_days", float(self.half_life_days))
        if not self.half_life_days > 0:
            raise ConfigError(f"time_decay: half_life_days must be > 0, not {self.half_life_days}")
        if self.reference not in ("close", "created"):
            raise ConfigError(
                f"time_decay: reference must be 'close' or 'created', not {self.reference!r}"
            )

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        self.check(journeys)
        moment = "end_at" if self.reference == "close" else "created_at"
        reference = journeys.journeys.select(
            "journey_id", pl.coalesce(moment, "end_at").alias("_reference")
        )
        age_days = (
            (pl.col("_reference") - pl.col("timestamp")).dt.total_microseconds() / _DAY_US
        ).clip(lower_bound=0.0)
        runs = journeys.runs
        dated = with_journey_columns(runs.touches, reference, ["_reference"], index=runs.index)
        if dated.height != runs.touches.height:
            raise ModelError("time_decay: a journey is listed twice in the journeys table")
        raw = dated.select(2.0 ** (-age_days / self.half_life_days)).to_series()
        return run_weights(runs, run_normalised(runs, raw.to_numpy()))
