"""Path counts: the summary of a set of journeys that mergeable fits learn from.

A model whose :class:`~attribution.models.base.FitInput` merges (Markov, Shapley) sees the
journeys only through their distinct channel paths and each path's outcome counts. Counts of
disjoint sets of accounts add up, so an engine that holds the accounts in partitions (Spark's
executors, a local run in hash partitions) counts each partition, merges the counts
(:func:`merge_path_counts`) and fits once from them
(:meth:`~attribution.models.base.AttributionModel.fit_counts`): the same fit as on the whole.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from attribution.graph import distinct_paths
from attribution.journeys import Journeys

#: joins a path's channels into its key (a channel name cannot hold it: see loading)
PATH_KEY_SEPARATOR = "\x1f"

#: one row per distinct path: outcomes with open deals counted apart from the rest
PATH_COUNTS_SCHEMA = pl.Schema(
    [
        ("path_key", pl.String()),
        ("channels", pl.List(pl.String)),
        ("conversions", pl.Int64()),
        ("nulls", pl.Int64()),  # lost deals and deal-less accounts
        ("revenue_cents", pl.Int64()),  # minor units
        ("opens", pl.Int64()),  # open deals
    ]
)


def path_counts(journeys: Journeys) -> pl.DataFrame:
    """The distinct paths of ``journeys`` with :data:`PATH_COUNTS_SCHEMA`, open deals counted
    apart (a fit then counts them as non-converting or leaves them out, as it says)."""
    key = pl.col("channels").list.join(PATH_KEY_SEPARATOR).alias("path_key")
    everything = distinct_paths(journeys, include_open=True).with_columns(key)
    closed = distinct_paths(journeys, include_open=False).with_columns(key)
    return everything.join(
        closed.select("path_key", pl.col("nulls").alias("_closed_nulls")),
        on="path_key", how="left", maintain_order="left",
    ).select(
        "path_key", "channels", "conversions",
        pl.col("_closed_nulls").fill_null(0).alias("nulls"),
        "revenue_cents",
        (pl.col("nulls") - pl.col("_closed_nulls").fill_null(0)).alias("opens"),
    )


def merge_path_counts(parts: Iterable[pl.DataFrame]) -> pl.DataFrame:
    """Path counts of disjoint sets of accounts added up, one row per path, sorted by key."""
    stacked = pl.concat([p.select(list(PATH_COUNTS_SCHEMA)) for p in parts],
                        how="vertical_relaxed")
    return (
        stacked.group_by("path_key")
        .agg(pl.col("channels").first(), pl.col("conversions", "nulls", "revenue_cents",
                                                "opens").sum())
        .select([pl.col(n).cast(t) for n, t in PATH_COUNTS_SCHEMA.items()])
        .sort("path_key")
    )


def path_journeys(paths: pl.DataFrame, *, include_open: bool = False,
                  keep_unobserved: bool = False) -> Journeys:
    """Journeys of status ``path`` from summed path counts (:data:`PATH_COUNTS_SCHEMA`).

    Every model and statistic that reads journeys only through
    :func:`attribution.graph.distinct_paths` gives the same result on these as on the full
    journeys: Markov (``include_open`` as the model's), the path graph, top paths and path
    lengths. ``keep_unobserved`` keeps paths seen only in open deals (as Shapley's game does).
    """
    rows = paths.with_columns(
        (pl.col("nulls") + (pl.col("opens") if include_open else 0)).alias("nulls")
    )
    if not keep_unobserved:
        rows = rows.filter(pl.col("conversions") + pl.col("nulls") > 0)
    rows = rows.with_row_index("_i").with_columns(
        pl.format("path:{}", pl.col("_i")).alias("journey_id"),
        pl.lit("path").alias("status"),
        pl.col("revenue_cents").alias("amount_cents"),
        pl.col("channels").list.len().cast(pl.UInt32).alias("n_touches"),
    )
    touches = (
        rows.select("journey_id", "channels")
        .explode("channels")
        .rename({"channels": "channel"})
        .with_columns(
            pl.int_range(pl.len(), dtype=pl.UInt32).over("journey_id").alias("touch_index")
        )
        .filter(pl.col("channel").is_not_null())
    )
    return Journeys.from_frames(touches, rows, has_timestamps=False, has_milestones=False)


__all__ = [
    "PATH_COUNTS_SCHEMA",
    "PATH_KEY_SEPARATOR",
    "merge_path_counts",
    "path_counts",
    "path_journeys",
]
