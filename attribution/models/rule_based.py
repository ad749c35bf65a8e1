"""Single-touch and even-split models: first-touch, last-touch, last-non-direct, linear.

The textbook heuristics (see e.g. Google Analytics' attribution model descriptions and
ChannelAttribution's ``heuristic_models``): all of a journey's credit to its first touch, to
its last touch, to its last touch that is not direct traffic, or split evenly over every touch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import polars as pl

from attribution.journeys import Journeys
from attribution.models.base import JOURNEY, AttributionModel, numbered, with_weight


def _one_hot(journeys: Journeys, chosen: pl.Expr) -> pl.LazyFrame:
    """Weight 1 to the chosen touch, 0 to the others. ``touch_index`` is the touch's 0-based
    position in its journey, so each rule below chooses exactly one touch per journey and the
    weights need no normalising (a journey breaking that is refused by ``allocate``). Rules
    that look across the journey (``over(JOURNEY)``) get :func:`numbered` touches."""
    uses_windows = JOURNEY in chosen.meta.root_names()
    touches = numbered(journeys.touches) if uses_windows else journeys.touches
    return with_weight(touches, chosen)


@dataclass(frozen=True)
class FirstTouch(AttributionModel):
    """All credit to the journey's first touch."""

    name: ClassVar[str] = "first_touch"
    label: ClassVar[str] = "First touch"
    summary: ClassVar[str] = "100% to the first touch"
    uses_population: ClassVar[bool] = False

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        return _one_hot(journeys, pl.col("touch_index") == 0)


@dataclass(frozen=True)
class LastTouch(AttributionModel):
    """All credit to the journey's last touch (the view most teams judge marketing by)."""

    name: ClassVar[str] = "last_touch"
    label: ClassVar[str] = "Last touch"
    summary: ClassVar[str] = "100% to the last touch"
    uses_population: ClassVar[bool] = False

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        return _one_hot(journeys, pl.col("touch_index") == pl.col("touch_index").max().over(JOURNEY))


@dataclass(frozen=True)
class LastNonDirect(AttributionModel):
    """All credit to the last touch whose channel is not direct; the last touch if all are direct.

    Parameters
    ----------
    direct_channels
        Channels that count as direct traffic.
    """

    name: ClassVar[str] = "last_non_direct"
    label: ClassVar[str] = "Last non-direct"
    summary: ClassVar[str] = "100% to the last touch that is not direct traffic"
    uses_population: ClassVar[bool] = False

    direct_channels: tuple[str, ...] = ("direct",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "direct_channels", tuple(self.direct_channels))

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        index = pl.col("touch_index")
        non_direct = ~pl.col("channel").is_in(list(self.direct_channels))
        target = index.filter(non_direct).max().over(JOURNEY).fill_null(
            index.max().over(JOURNEY)
        )
        return _one_hot(journeys, index == target)


@dataclass(frozen=True)
class Linear(AttributionModel):
    """Credit split evenly over every touch of the journey."""

    name: ClassVar[str] = "linear"
    label: ClassVar[str] = "Linear"
    summary: ClassVar[str] = "equal credit to every touch"
    uses_population: ClassVar[bool] = False

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        return with_weight(numbered(journeys.touches), 1.0 / pl.len().over(JOURNEY))
