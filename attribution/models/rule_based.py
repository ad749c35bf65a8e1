"""Single-touch and even-split models: first-touch, last-touch, last-non-direct, linear.

The textbook heuristics (see e.g. Google Analytics' attribution model descriptions and
ChannelAttribution's ``heuristic_models``): all of a journey's credit to its first touch, to
its last touch, to its last touch that is not direct traffic, or split evenly over every touch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import polars as pl

from attribution.channels import channel_key
from attribution.journeys import Journeys
from attribution.models.base import AttributionModel, last_touches, run_weights, with_weight

# Each rule chooses one touch per journey by ``touch_index``, the touch's 0-based position in
# its journey, so the weights need no normalising (a journey breaking that is refused by
# ``allocate``). Rules that look across a journey read its run of rows (``Journeys.runs``).


@dataclass(frozen=True)
class FirstTouch(AttributionModel):
    """All credit to the journey's first touch."""

    name: ClassVar[str] = "first_touch"
    label: ClassVar[str] = "First touch"
    summary: ClassVar[str] = "100% to the first touch"
    uses_population: ClassVar[bool] = False

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        return with_weight(journeys.touches, pl.col("touch_index") == 0)


@dataclass(frozen=True)
class LastTouch(AttributionModel):
    """All credit to the journey's last touch (the view most teams judge marketing by)."""

    name: ClassVar[str] = "last_touch"
    label: ClassVar[str] = "Last touch"
    summary: ClassVar[str] = "100% to the last touch"
    uses_population: ClassVar[bool] = False

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        runs = journeys.runs
        return run_weights(runs, last_touches(runs))


@dataclass(frozen=True)
class LastNonDirect(AttributionModel):
    """All credit to the last touch whose channel is not direct; the last touch if all are direct.

    Parameters
    ----------
    direct_channels
        Channels that count as direct traffic, compared by
        :func:`~attribution.channels.channel_key` (case-insensitive, spaces and ``_`` alike):
        ``"direct"`` makes a path table's ``Direct`` direct too. A run passes the channels'
        aliases as well (:meth:`~attribution.channels.ChannelRules.names_of`), so HubSpot's
        ``Direct Traffic`` is direct under the built-in rules.
    """

    name: ClassVar[str] = "last_non_direct"
    label: ClassVar[str] = "Last non-direct"
    summary: ClassVar[str] = "100% to the last touch that is not direct traffic"
    uses_population: ClassVar[bool] = False

    direct_channels: tuple[str, ...] = ("direct",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "direct_channels", tuple(self.direct_channels))

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        runs = journeys.runs
        index = runs.touches.get_column("touch_index").cast(pl.Int64).fill_null(-1).to_numpy()
        channel = runs.touches.get_column("channel")
        wanted = {channel_key(name) for name in self.direct_channels}
        # the keys of the few distinct channels, not of every touch
        direct = [name for name in channel.unique().drop_nulls().to_list()
                  if channel_key(name) in wanted]
        non_direct = (~channel.is_in(direct)).fill_null(False).to_numpy()
        target = runs.max(np.where(non_direct, index, -1))  # -1: no touch is non-direct
        target = np.where(target >= 0, target, runs.max(index))
        return run_weights(runs, index == runs.spread(target))


@dataclass(frozen=True)
class Linear(AttributionModel):
    """Credit split evenly over every touch of the journey."""

    name: ClassVar[str] = "linear"
    label: ClassVar[str] = "Linear"
    summary: ClassVar[str] = "equal credit to every touch"
    uses_population: ClassVar[bool] = False

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        runs = journeys.runs
        return run_weights(runs, runs.spread(1.0 / runs.sizes))
