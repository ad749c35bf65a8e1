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

from pathlib import Path
from typing import NamedTuple

import polars as pl

from attribution.channels import unify_spellings
from attribution.errors import ColumnNotFoundError, FileFormatError
from attribution.journeys import Journeys
from attribution.reading import read_file
from attribution.schema import REJECT_SCHEMA

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
    "conversion_value": ("total_conversion_value", "value", "revenue", "conversion_values"),
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
) -> PathTable:
    """Read a path table into :class:`~attribution.journeys.Journeys` (status ``path``).

    One journey per valid row (``journey_id`` ``"path-<row>"``, row 1-based), its touches the
    path's channels with null timestamps (``has_timestamps=False, has_milestones=False``);
    ``conversions``, ``nulls``, ``revenue`` (the conversion value in minor units) and
    ``amount`` (= revenue) from the row.

    Parameters
    ----------
    path
        A ``.csv``/``.txt``/``.tsv``, ``.parquet`` or ``.ndjson``/``.jsonl`` file.
    columns
        Canonical name -> the file's column name, e.g. ``{"conversions": "orders"}``.
    separator
        What joins the channels of a path.

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
    return parse_paths(raw, names, source=source, separator=separator)


def parse_paths(
    raw: pl.DataFrame, names: dict[str, str], *, source: str = "<paths>", separator: str = ">"
) -> PathTable:
    """Validate an already-read path table whose canonical columns are located by ``names``."""
    if not separator:
        raise FileFormatError(f"{source}: the path separator must not be empty")
    frame = raw.select(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("row"),
        *[pl.col(file_name).cast(pl.String).alias(name) for name, file_name in names.items()],
    )
    for name in PATH_COLUMNS:
        if name not in names:
            frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias(name))

    steps = (
        pl.col("path").str.split(separator).list.eval(pl.element().str.strip_chars())
    )
    frame = frame.with_columns(
        steps.alias("channels"),
        _whole_number("conversions").alias("_conversions"),
        _whole_number("nulls").alias("_nulls"),
        _minor_units("conversion_value").alias("_value"),
    )
    blank = lambda name: pl.col(name).is_null() | (pl.col(name).str.strip_chars() == "")  # noqa: E731
    problems = [
        ("path", blank("path"), "empty path"),
        (
            "path",
            ~blank("path") & pl.col("channels").list.eval(pl.element() == "").list.any(),
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
    good = frame.filter(~pl.col("row").is_in(rejects["row"].implode()))

    journeys = good.select(
        pl.format("path-{}", pl.col("row")).alias("journey_id"),
        pl.lit("path").alias("status"),
        pl.col("_value").fill_null(0).alias("amount"),
        pl.col("channels").list.len().cast(pl.UInt32).alias("n_touches"),
        pl.col("_conversions").alias("conversions"),
        pl.col("_nulls").fill_null(0).alias("nulls"),
        pl.col("_value").fill_null(0).alias("revenue"),
    )
    touches = (
        good.select(pl.format("path-{}", pl.col("row")).alias("journey_id"), "channels")
        .explode("channels")
        .select(
            "journey_id",
            pl.int_range(pl.len(), dtype=pl.UInt32).over("journey_id").alias("touch_index"),
            pl.col("channels").alias("channel"),
            pl.col("channels").alias("channel_group"),
        )
        .with_columns((pl.col("touch_index") == 0).alias("is_first"))
    )
    # channels compare case-insensitively (as in touch files): "Direct" and "direct" are one
    # channel, labelled by the file's usual spelling
    unified = unify_spellings(touches.get_column("channel"))
    touches = touches.with_columns(unified.alias("channel"), unified.alias("channel_group"))
    return PathTable(
        Journeys.from_frames(touches, journeys, has_timestamps=False, has_milestones=False),
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


def _minor_units(name: str) -> pl.Expr:
    """Decimal text -> exact Int64 cents, rounding digits beyond the cents half to even."""
    text = pl.col(name).str.strip_chars()
    parts = text.str.extract_groups(r"^\+?(\d*)(?:\.(\d*))?$")
    whole = parts.struct.field("1")
    fraction = parts.struct.field("2").fill_null("")
    valid = text.str.contains(r"^\+?(\d+\.?\d*|\.\d+)$")
    padded = fraction + pl.lit("00")
    cents = (
        pl.when(whole == "").then(pl.lit("0")).otherwise(whole).cast(pl.Int64, strict=False) * 100
        + padded.str.slice(0, 2).cast(pl.Int64)
    )
    rest = fraction.str.slice(2)
    first = rest.str.slice(0, 1)
    tail_nonzero = rest.str.slice(1).str.contains(r"[1-9]")
    round_up = (first > "5") | ((first == "5") & (tail_nonzero | (cents % 2 == 1)))
    return pl.when(valid).then(cents + round_up.cast(pl.Int64)).otherwise(None)


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
