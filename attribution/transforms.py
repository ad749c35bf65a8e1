"""Path transforms: rewrite every journey's sequence of touches before a path model reads it.

Each transform is optional and they combine; every model that reads paths (Markov, Shapley)
applies them through :func:`apply_transforms`, so the same flags mean the same paths
everywhere. The vocabulary follows Google's Fractribution path transforms
(``exposure``, ``first``, ``frequency``, lookback steps, channel removal):

* ``drop_channels`` — remove every touch of the named channels (``("direct",)``, say);
* ``collapse_repeats`` — consecutive touches of one channel become one
  (``a > a > b > a`` → ``a > b > a``);
* ``first_touch_per_channel`` — keep only the first touch of each channel
  (``a > b > a > c`` → ``a > b > c``);
* ``frequency`` — keep the first touch of each channel and label it with the channel's number
  of touches in the journey (``d > a > b > b > c > d > c > c`` → ``d(2) > a(1) > b(2) > c(3)``);
  the labels then *are* the channels a model credits;
* ``last_n`` — keep only the last N touches.

They apply in that order (drop, then collapse, then first/frequency, then last N), so
``last_n`` counts the steps of the rewritten path. A surviving touch keeps its own columns
(touchpoint id, timestamp, milestone flags); ``touch_index`` is renumbered 0..n-1 and
``journeys.n_touches`` updated. A journey whose touches are all removed stays, with
``n_touches == 0``.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from attribution.errors import ConfigError
from attribution.journeys import Journeys, conform
from attribution.schema import JOURNEY_SCHEMA, TOUCH_SCHEMA

#: column kept by :func:`transform_touches`: the touch's ``touch_index`` before the transforms
SOURCE_INDEX = "source_index"


def apply_transforms(
    journeys: Journeys,
    *,
    collapse_repeats: bool = False,
    first_touch_per_channel: bool = False,
    frequency: bool = False,
    last_n: int | None = None,
    drop_channels: Iterable[str] = (),
) -> Journeys:
    """Return the journeys with their paths rewritten (see the module docstring).

    Parameters
    ----------
    journeys
        The journeys to rewrite; left unchanged when no transform is asked for.
    collapse_repeats, first_touch_per_channel, frequency, last_n, drop_channels
        The transforms; ``last_n`` must be >= 1.

    Examples
    --------
    >>> touches = pl.DataFrame({"journey_id": ["j"] * 4, "touch_index": [0, 1, 2, 3],
    ...                         "channel": ["email", "email", "direct", "search"]})
    >>> rows = pl.DataFrame({"journey_id": ["j"], "status": ["won"]})
    >>> out = apply_transforms(Journeys.from_frames(touches, rows), collapse_repeats=True,
    ...                        drop_channels=["direct"])
    >>> out.touches.collect()["channel"].to_list()
    ['email', 'search']
    """
    drop = tuple(drop_channels)
    if not (collapse_repeats or first_touch_per_channel or frequency or last_n or drop):
        check_last_n(last_n)
        return journeys
    touches = transform_touches(
        journeys.touches,
        collapse_repeats=collapse_repeats,
        first_touch_per_channel=first_touch_per_channel,
        frequency=frequency,
        last_n=last_n,
        drop_channels=drop,
    )
    counts = touches.group_by("journey_id").agg(pl.len().cast(pl.UInt32).alias("_n"))
    rows = (
        journeys.journeys.join(counts, on="journey_id", how="left", maintain_order="left")
        .with_columns(pl.col("_n").fill_null(0).alias("n_touches"))
        .drop("_n")
    )
    return Journeys(
        touches=conform(touches, TOUCH_SCHEMA),
        journeys=conform(rows, JOURNEY_SCHEMA),
        has_timestamps=journeys.has_timestamps,
        has_milestones=journeys.has_milestones,
        as_of=journeys.as_of,
        stated=journeys.stated,
    )


def transform_touches(
    touches: pl.LazyFrame,
    *,
    collapse_repeats: bool = False,
    first_touch_per_channel: bool = False,
    frequency: bool = False,
    last_n: int | None = None,
    drop_channels: Iterable[str] = (),
) -> pl.LazyFrame:
    """Rewrite a touches frame; the result keeps :data:`SOURCE_INDEX` (the old ``touch_index``).

    Models use this form to map weights of rewritten touches back onto the original ones.
    Rows come out sorted by ``journey_id`` then the new ``touch_index``.
    """
    check_last_n(last_n)
    drop = list(drop_channels)
    frame = touches.sort("journey_id", "touch_index").with_columns(
        pl.col("touch_index").alias(SOURCE_INDEX)
    )
    if drop:
        frame = frame.filter(~pl.col("channel").is_in(drop).fill_null(False))
    if collapse_repeats:
        frame = frame.filter(_new_run())
    if frequency:
        frame = frame.with_columns(
            pl.len().over("journey_id", "channel").alias("_count")
        ).filter(pl.struct("journey_id", "channel").is_first_distinct())
        frame = frame.with_columns(
            pl.format("{}({})", pl.col("channel"), pl.col("_count")).alias("channel")
        ).drop("_count")
    elif first_touch_per_channel:
        frame = frame.filter(pl.struct("journey_id", "channel").is_first_distinct())
    position = pl.int_range(pl.len(), dtype=pl.UInt32).over("journey_id")
    if last_n is not None:
        frame = frame.filter(pl.len().over("journey_id") - position <= last_n)
    return frame.with_columns(position.alias("touch_index"))


def _new_run() -> pl.Expr:
    """True on the first touch of each run of consecutive touches of one channel (rows sorted)."""
    same_journey = pl.col("journey_id").eq_missing(pl.col("journey_id").shift(1))
    same_channel = pl.col("channel").eq_missing(pl.col("channel").shift(1))
    return ~(same_journey & same_channel)


def check_last_n(last_n: int | None) -> None:
    """Raise a ConfigError unless ``last_n`` is unset or a whole number >= 1."""
    if last_n is not None and (isinstance(last_n, bool) or int(last_n) != last_n or last_n < 1):
        raise ConfigError(f"last_n must be a whole number >= 1 (or unset), not {last_n!r}")


__all__ = ["SOURCE_INDEX", "apply_transforms", "check_last_n", "transform_touches"]
