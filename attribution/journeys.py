"""Buying-group journeys: every touch of every contact at a deal's account, in time order.

(The builder from loaded inputs is added below the container.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from attribution.schema import JOURNEY_SCHEMA, TOUCH_SCHEMA


@dataclass(frozen=True)
class Journeys:
    """The journeys every model reads.

    Attributes
    ----------
    touches
        Lazy frame with :data:`attribution.schema.TOUCH_SCHEMA`: one row per touch, ``touch_index``
        0..n-1 in time order inside each ``journey_id``.
    journeys
        Lazy frame with :data:`attribution.schema.JOURNEY_SCHEMA`: one row per journey (deal,
        deal-less account, or path-table row). Journeys with no touch have ``n_touches == 0``
        and no rows in ``touches``.
    has_timestamps
        False when built from an aggregated path table (no time-decay model then).
    has_milestones
        False when built from a path table (no W-shaped / full-path then).
    as_of
        The as-of instant used to close open journeys, if any.
    """

    touches: pl.LazyFrame
    journeys: pl.LazyFrame
    has_timestamps: bool = True
    has_milestones: bool = True
    as_of: datetime | None = None

    @classmethod
    def from_frames(
        cls,
        touches: pl.DataFrame | pl.LazyFrame,
        journeys: pl.DataFrame | pl.LazyFrame,
        *,
        has_timestamps: bool = True,
        has_milestones: bool = True,
        as_of: datetime | None = None,
    ) -> Journeys:
        """Wrap frames, adding any missing contract column as null and casting to the schema."""
        return cls(
            touches=conform(touches.lazy(), TOUCH_SCHEMA),
            journeys=conform(journeys.lazy(), JOURNEY_SCHEMA),
            has_timestamps=has_timestamps,
            has_milestones=has_milestones,
            as_of=as_of,
        )


def conform(frame: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    """Select exactly ``schema``'s columns, in order, with its dtypes (missing ones as null)."""
    present = set(frame.collect_schema().names())
    return frame.select(
        [
            (pl.col(name) if name in present else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in schema.items()
        ]
    )
