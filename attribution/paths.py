"""Aggregated path tables as input: one row per distinct path with its outcome counts.

A path table is what ChannelAttribution and most Markov tools read::

    path;total_conversions;total_conversion_value;total_null
    eta > iota > alpha > eta;1;0.244;3

Canonical columns (a ``columns`` dict maps them onto the file's own names):

* ``path`` (required): channels joined by ``separator`` (default ``>``), spaces trimmed;
* ``conversions`` (required): converting journeys, a whole number >= 0;
* ``conversion_value`` (optional): their total value, a decimal; read exactly from the text
  into minor units (cents, ``Int64``), digits beyond the cents rounded half to even;
* ``nulls`` (optional): non-converting journeys (0 when the column is absent).

Without a mapping, ``total_conversions``, ``total_conversion_value`` / ``value`` /
``revenue`` and ``total_null`` / ``total_nulls`` / ``null`` are recognised.

CSV (``,``, ``;`` or tab, sniffed from the header), Parquet and NDJSON are read. Bad rows never
raise: each problem becomes a row of :data:`attribution.schema.REJECT_SCHEMA` and the row is
left out. A missing column raises :class:`~attribution.errors.ColumnNotFoundError`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import polars as pl

from attribution.channels import channel_key, usual_spellings
from attribution.errors import ColumnNotFoundError, FileFormatError
from attribution.journeys import JourneyIndex, Journeys, conform
from attribution.reading import read_file
from attribution.schema import JOURNEY_SCHEMA, REJECT_SCHEMA, TOUCH_SCHEMA

#: canonical path-table columns: name -> required?
PATH_COLUMNS: dict[str, bool] = {
    "path": True,
    "conversions": True,
    "conversion_value": False,
    "nulls": False,
}
#: names recognised without a mapping, after the canonical one
PATH_ALIASES: dict[str, tuple[str, ...]] = {
    "path": ("paths",),
    "conversions": ("total_conversions", "conversion"),
    # money: keep names from here (a file's column)
    "conversion_value": ("total_conversion_value", "value", "revenue", "conversion_values"),
    # money: keep names to here
    "nulls": ("total_null", "total_nulls", "null"),
}


class PathTable(NamedTuple):
    """What :func:`read_paths` returns: the journeys and the rejected rows."""

    journeys: Journeys
    rejects: pl.DataFrame


def read_paths(
    path: str | Path,
    *,
    columns: dict[str, str] | None = None,
    separator: str = ">",
    encoding: str | None = None,
    decimals: int = 2,
    channel_groups: Callable[[pl.Series], pl.Series] | None = None,
) -> PathTable:
    """Read a path table into :class:`~attribution.journeys.Journeys` (status ``path``).

    One journey per valid row (``journey_id`` ``"path-<row>"``, row 1-based), its touches the
    path's channels with null timestamps (``has_timestamps=False, has_milestones=False``);
    ``conversions``, ``nulls``, ``revenue_cents`` (the conversion value in minor units) and
    ``amount_cents`` (= revenue_cents) from the row.

    Parameters
    ----------
    path
        A ``.csv``/``.txt``/``.tsv``, ``.parquet`` or ``.ndjson``/``.jsonl`` file.
    columns
        Canonical name -> the file's column name, e.g. ``{"conversions": "orders"}``.
    separator
        What joins the channels of a path.
    decimals
        The run's currency's ISO 4217 minor unit: conversion values are read into that many
        minor units (2: cents; 3 for KWD).
    channel_groups
        Maps the distinct channel names (a Series) to their groups, in order (default: each
        channel its own group).

    Examples
    --------
    >>> table = read_paths("fixtures/paths/sample.csv")  # doctest: +SKIP
    >>> table.journeys.journeys.collect()["conversions"].sum()  # doctest: +SKIP
    """
    source = str(path)
    # the exports' own reader: strict UTF-8 (or ``encoding``), byte-order marks, duplicate
    # columns refused, so a path table is never read lossily either
    raw = read_file(Path(path), "paths", encoding=encoding)
    names = _resolve_columns(source, raw.columns, columns or {})
    return parse_paths(raw, names, source=source, separator=separator, decimals=decimals,
                       channel_groups=channel_groups)


def parse_paths(
    raw: pl.DataFrame,
    names: dict[str, str],
    *,
    source: str = "<paths>",
    separator: str = ">",
    decimals: int = 2,
    channel_groups: Callable[[pl.Series], pl.Series] | None = None,
) -> PathTable:
    """Validate an already-read path table whose canonical columns are located by ``names``.

    ``channel_groups`` maps the distinct channel names (a Series) to their groups, in order;
    without it a channel is its own group.

    How: each path is split on the separator once and its steps are coded by their distinct
    spellings (a path table has few of them), so stripping spaces, finding empty steps and
    unifying spellings is work per distinct step, and the touches are gathered from those
    codes run by run. The touches come out as :func:`~attribution.journeys.build_journeys`
    lays them out (each journey one run, in touch order, journeys in row order) and say so in
    ``Journeys.index``. ``tests/reference.py`` keeps the row-by-row reading
    (``reference_parse_paths``) that a property test compares with this one.
    """
    if not separator:
        raise FileFormatError(f"{source}: the path separator must not be empty")
    frame = raw.select(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("row"),
        *[pl.col(file_name).cast(pl.String).alias(name) for name, file_name in names.items()],
    )
    for name in PATH_COLUMNS:
        if name not in names:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(name))

    # every row's steps back to back (a missing path is one empty step: it is rejected below)
    steps = frame.get_column("path").fill_null("").str.split(separator)
    lengths = steps.list.len().to_numpy().astype(np.int64)
    flat = steps.explode()
    spellings = flat.unique().sort()
    step_code = flat.cast(pl.Enum(spellings.to_list())).to_physical().to_numpy()
    stripped = spellings.str.strip_chars()
    empty = (stripped == "").to_numpy()
    starts = np.cumsum(lengths) - lengths
    empty_step = np.logical_or.reduceat(empty[step_code], starts) if starts.size else empty[:0]

    frame = frame.with_columns(
        pl.Series("_empty_step", empty_step, dtype=pl.Boolean),
        _whole_number("conversions").alias("_conversions"),
        _whole_number("nulls").alias("_nulls"),
        _minor_units(frame.get_column("conversion_value"), decimals).alias("_value"),
    )
    blank = lambda name: pl.col(name).is_null() | (pl.col(name).str.strip_chars() == "")  # noqa: E731
    problems = [
        ("path", blank("path"), "empty path"),
        (
            "path",
            ~blank("path") & pl.col("_empty_step"),
            f"empty step in path (separator {separator!r})",
        ),
        ("conversions", blank("conversions"), "missing conversions"),
        (
            "conversions",
            ~blank("conversions") & pl.col("_conversions").is_null(),
            "conversions is not a whole number >= 0",
        ),
        ("nulls", ~blank("nulls") & pl.col("_nulls").is_null(), "nulls is not a whole number >= 0"),
        (
            "conversion_value",
            ~blank("conversion_value") & pl.col("_value").is_null(),
            "conversion value is not a decimal number >= 0",
        ),
    ]
    rejects = pl.concat(
        [
            frame.filter(condition).select(
                pl.lit(source).alias("file"),
                pl.lit("paths").alias("input"),
                "row",
                pl.lit(names.get(column, column)).alias("column"),
                pl.lit(reason).alias("reason"),
                pl.col(column).alias("value"),
                pl.lit(None, pl.String).alias("key"),
            )
            for column, condition, reason in problems
        ]
    ).sort("row", maintain_order=True).cast(REJECT_SCHEMA)
    keep = ~frame.get_column("row").is_in(rejects.get_column("row").implode()).to_numpy()
    good = frame.filter(keep)
    journey_id = pl.format("path-{}", pl.col("row")).alias("journey_id")
    journeys = good.select(
        journey_id,
        pl.lit("path").alias("status"),
        pl.col("_value").fill_null(0).alias("amount_cents"),
        pl.Series("n_touches", lengths[keep], dtype=pl.UInt32),
        pl.col("_conversions").alias("conversions"),
        pl.col("_nulls").fill_null(0).alias("nulls"),
        pl.col("_value").fill_null(0).alias("revenue_cents"),
    )

    # the kept rows' steps: each a channel name (a stripped spelling), coded
    sizes = lengths[keep]
    step_code = step_code[np.repeat(keep, lengths)]
    channel_names = stripped.unique().sort()
    name_of_spelling = stripped.cast(pl.Enum(channel_names.to_list())).to_physical().to_numpy()
    name_code = name_of_spelling[step_code]
    # channels compare case-insensitively (as in touch files): "Direct" and "direct" are one
    # channel, labelled by the file's usual spelling
    label = channel_names
    if len({channel_key(name) for name in channel_names.to_list()}) != channel_names.len():
        counts = pl.DataFrame({"name": channel_names,
                               "n": np.bincount(name_code, minlength=channel_names.len())})
        chosen = usual_spellings(counts.filter(pl.col("n") > 0))
        label = channel_names.replace_strict(chosen.get_column("name"),
                                             chosen.get_column("label"), default=None)
    group = label if channel_groups is None else channel_groups(label)
    index = JourneyIndex.of_sizes(sizes, touch_ordered=True, positional=True)
    touch_index = (np.arange(index.rows, dtype=np.int64)
                   - index.spread(index.starts)).astype(np.uint32)
    touches = pl.DataFrame([
        journeys.get_column("journey_id").gather(index.run_of_rows()),
        pl.Series("touch_index", touch_index, dtype=pl.UInt32),
        label.gather(name_code).alias("channel"),
        group.gather(name_code).alias("channel_group"),
        pl.Series("is_first", touch_index == 0),
    ])
    return PathTable(
        Journeys(
            touches=conform(touches.lazy(), TOUCH_SCHEMA).collect().lazy(),
            journeys=conform(journeys.lazy(), JOURNEY_SCHEMA).collect().lazy(),
            has_timestamps=False,
            has_milestones=False,
            index=index,
        ),
        rejects,
    )


def _whole_number(name: str) -> pl.Expr:
    """Text like ``12`` or ``12.0`` -> Int64; anything else (or negative) -> null."""
    text = pl.col(name).str.strip_chars()
    return (
        pl.when(text.str.contains(r"^\+?\d+(\.0*)?$"))
        .then(text.str.extract(r"^\+?(\d+)", 1).cast(pl.Int64, strict=False))
        .otherwise(None)
    )


def _minor_units(text: pl.Series, decimals: int = 2) -> pl.Series:
    """Decimal text -> exact Int64 minor units (``decimals`` of them: cents for 2), rounding
    digits beyond the minor unit half to even; null where the text is not a decimal number
    >= 0. (Staged over materialised columns: as one expression, polars evaluated the shared
    parts once per use.)"""
    text = text.str.strip_chars()
    parts = text.str.strip_prefix("+").str.split_exact(".", 1).struct.unnest()
    digits = pl.DataFrame({
        "valid": text.str.contains(r"^\+?(\d+\.?\d*|\.\d+)$"),
        "whole": parts.get_column("field_0"),
        "fraction": parts.get_column("field_1").fill_null(""),
    })
    whole, fraction = pl.col("whole"), pl.col("fraction")
    kept = ((fraction + pl.lit("0" * decimals)).str.slice(0, decimals)
            .cast(pl.Int64, strict=False) if decimals else pl.lit(0, pl.Int64))
    minor = (
        pl.when(whole == "").then(pl.lit("0")).otherwise(whole).cast(pl.Int64, strict=False)
        * 10 ** decimals
        + kept
    )
    rest = fraction.str.slice(decimals)
    first = rest.str.slice(0, 1)
    tail_nonzero = rest.str.slice(1).str.contains(r"[1-9]")
    round_up = (first > "5") | ((first == "5") & (tail_nonzero | (pl.col("_minor") % 2 == 1)))
    return (
        digits.with_columns(minor.alias("_minor"))
        .select(pl.when(pl.col("valid")).then(pl.col("_minor") + round_up.cast(pl.Int64)))
        .to_series()
    )


def sniff_delimiter(path: Path) -> str:
    """The CSV delimiter: whichever of ``;``, ``,`` or tab the header line holds most of."""
    with path.open("r", encoding="utf-8-sig", errors="replace") as handle:
        header = handle.readline()
    counts = {delimiter: header.count(delimiter) for delimiter in (",", ";", "\t")}
    best = max(counts, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def _resolve_columns(source: str, available: list[str], mapping: dict[str, str]) -> dict[str, str]:
    unknown = sorted(set(mapping) - set(PATH_COLUMNS))
    if unknown:
        raise ColumnNotFoundError(
            f"{source}: unknown path-table column {', '.join(map(repr, unknown))} in the mapping; "
            f"valid: {', '.join(PATH_COLUMNS)}"
        )
    stripped = {name.strip().lstrip("\ufeff"): name for name in available}
    names: dict[str, str] = {}
    missing: list[str] = []
    for name, required in PATH_COLUMNS.items():
        candidates = (mapping[name],) if name in mapping else (name, *PATH_ALIASES.get(name, ()))
        found = next((stripped[c] for c in candidates if c in stripped), None)
        if found is not None:
            names[name] = found
        elif required or name in mapping:
            missing.append(mapping.get(name, name))
    if missing:
        raise ColumnNotFoundError.from_missing(
            source,
            missing,
            available,
            hint="map path-table columns with columns={'path': ..., 'conversions': ...}",
        )
    return names


__all__ = ["PATH_COLUMNS", "PathTable", "parse_paths", "read_paths", "sniff_delimiter"]
