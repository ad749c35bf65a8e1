"""The interface every attribution model implements.

A model is a frozen dataclass whose fields are its keyword hyperparameters (stored unchanged,
as in scikit-learn). It never reads files and never prints. Given :class:`~attribution.journeys.Journeys`
it returns *weights*: a lazy frame with :data:`~attribution.schema.WEIGHT_SCHEMA`
(``journey_id, touch_index, channel, weight``) whose weights are >= 0 and sum to 1 inside
every journey that has at least one touch. It may also carry the touch's ``touchpoint_id``,
``timestamp`` and ``channel_group`` (:data:`DETAIL_COLUMNS`), which saves looking them up. ``touch_index`` may be null when a model credits
channels of a journey rather than individual touches (a global Markov allocation, say).

Turning weights into exact money is not the model's job: :func:`attribution.credit.allocate`
does it once for every model, so conservation to the cent holds by construction.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import polars as pl

from attribution.errors import ModelError
from attribution.journeys import JourneyIndex, Journeys, TouchRuns
from attribution.schema import DETAIL_COLUMNS

#: what a model may need from the journeys
NEEDS_TIMESTAMPS = "timestamps"
NEEDS_MILESTONES = "milestones"


@dataclasses.dataclass(frozen=True)
class AttributionModel:
    """Base class: subclasses set ``name``, ``label``, ``needs`` and implement ``weights``."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    #: one line shown by ``attribution models``
    summary: ClassVar[str] = ""
    needs: ClassVar[frozenset[str]] = frozenset()
    #: whether a journey's weights depend on other journeys (statistics fitted over all of
    #: them, converting or not). A model that says False is given only the journeys that carry
    #: money (deals, path rows), which is much less work on real exports.
    uses_population: ClassVar[bool] = True

    def weights(self, journeys: Journeys) -> pl.LazyFrame:  # pragma: no cover - interface
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """Hyperparameters and their values, in declaration order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def check(self, journeys: Journeys) -> None:
        """Raise :class:`ModelError` if the journeys lack what this model needs."""
        if NEEDS_TIMESTAMPS in self.needs and not journeys.has_timestamps:
            raise ModelError(
                f"model {self.name!r} needs touch timestamps, which a path table does not have; "
                "run it on touchpoint exports instead"
            )
        if NEEDS_MILESTONES in self.needs and not journeys.has_milestones:
            raise ModelError(
                f"model {self.name!r} needs journey milestones (lead and opportunity creation), "
                "which a path table does not have; run it on touchpoint and deal exports instead"
            )


def with_journey_columns(touches: pl.DataFrame, table: pl.LazyFrame | pl.DataFrame,
                         columns: list[str], *, index: JourneyIndex | None = None) -> pl.DataFrame:
    """``touches`` with ``columns`` of ``table`` (a row per ``journey_id``) added: the left
    join of the touches on ``journey_id``, in the touches' order (null where the table lacks
    the journey).

    The table is joined on the first row of each run of the touches (``index``, their
    :class:`~attribution.journeys.JourneyIndex` when the caller has it) and the values
    repeated along the run: one key a journey rather than a row, the same result for any
    layout. A journey the table lists twice gets the row-by-row join itself (its touches once
    per listing).
    """
    journey = touches.get_column("journey_id")
    index = JourneyIndex.of(journey) if index is None else index
    table = table.lazy().select("journey_id", *columns).collect()
    runs = index.keys(journey).to_frame()
    found = runs.join(table, on="journey_id", how="left", maintain_order="left")
    if found.height != runs.height:  # a journey listed twice in the table
        return touches.join(table, on="journey_id", how="left", maintain_order="left")
    return touches.hstack(found.select(columns)[pl.Series(index.run_of_rows())].get_columns())


def normalise(weights: pl.LazyFrame, raw: str = "raw") -> pl.LazyFrame:
    """Turn a column of raw non-negative scores into weights summing to 1 per journey
    (:func:`run_normalised` over the journeys' runs of rows; any layout).

    A journey whose scores are all zero gets an even split. The touch's
    :data:`DETAIL_COLUMNS`, when ``weights`` has them, are kept for :func:`~attribution.credit.allocate`.
    """
    runs = TouchRuns.of(weights.collect())
    scores = runs.touches.get_column(raw).cast(pl.Float64).to_numpy()
    return run_weights(runs, run_normalised(runs, scores))


def with_weight(touches: pl.LazyFrame, weight: pl.Expr) -> pl.LazyFrame:
    """Weight rows (:data:`~attribution.schema.WEIGHT_SCHEMA`, plus the touch's
    :data:`DETAIL_COLUMNS` when ``touches`` has them) with ``weight`` computed on ``touches``."""
    names = touches.collect_schema().names()
    return touches.select("journey_id", "touch_index", "channel",
                          weight.cast(pl.Float64).alias("weight"),
                          *[c for c in DETAIL_COLUMNS if c in names])


def run_weights(runs: TouchRuns, weight: np.ndarray) -> pl.LazyFrame:
    """Weight rows (as :func:`with_weight` makes them) of the runs' touches, in their order,
    with ``weight`` (one value a row)."""
    touches = runs.touches
    return pl.DataFrame([
        *(touches.get_column(c) for c in ("journey_id", "touch_index", "channel")),
        pl.Series("weight", weight, dtype=pl.Float64),
        *(touches.get_column(c) for c in DETAIL_COLUMNS if c in touches.columns),
    ]).lazy()


def run_normalised(runs: TouchRuns, raw: np.ndarray) -> np.ndarray:
    """Raw non-negative scores (one a row of the runs) over their journey's total; an even
    split where the total is 0. A missing score (NaN) makes its journey's weights NaN, which
    :func:`~attribution.credit.allocate` refuses."""
    total = runs.spread(runs.total(raw))
    even = runs.spread(1.0 / runs.sizes)
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = raw / total
    return np.where(total > 0, scaled, np.where(np.isnan(total), np.nan, even))


def last_touches(runs: TouchRuns) -> np.ndarray:
    """Whether each touch of the runs is its journey's last (the largest ``touch_index``)."""
    index = runs.touches.get_column("touch_index").to_numpy()
    return index == runs.spread(runs.max(index))


def flag(runs: TouchRuns, column: str) -> np.ndarray:
    """A boolean touch column of the runs (a missing value is False)."""
    return runs.touches.get_column(column).fill_null(False).to_numpy()


def journey_observations(journeys: Journeys) -> pl.LazyFrame:
    """Per journey, what data-driven models fit on: ``conversions``, ``trials`` (conversions
    plus nulls) and ``revenue`` (minor units). A won deal is one conversion carrying its
    revenue, a lost deal or a deal-less account one null, a path-table row its own counts;
    open deals are neither (zeros)."""
    status = pl.col("status")
    conversions = (
        pl.when(status == "won")
        .then(pl.col("conversions").fill_null(1))
        .when(status == "path")
        .then(pl.col("conversions").fill_null(0))
        .otherwise(0)
    )
    nulls = (
        pl.when(status.is_in(["lost", "none"]))
        .then(pl.col("nulls").fill_null(1))
        .when(status == "path")
        .then(pl.col("nulls").fill_null(0))
        .otherwise(0)
    )
    revenue = (
        pl.when(status == "won")
        .then(pl.coalesce("revenue", "amount", pl.lit(0)))
        .when(status == "path")
        .then(pl.col("revenue").fill_null(0))
        .otherwise(0)
    )
    return journeys.journeys.select(
        "journey_id",
        conversions.cast(pl.Int64).alias("conversions"),
        (conversions + nulls).cast(pl.Int64).alias("trials"),
        revenue.cast(pl.Int64).alias("revenue"),
    )
