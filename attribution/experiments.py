"""Experiments as ground truth: read a file of holdout or lift results, reject bad rows.

An experiments file has one row per experiment: a channel switched off (or on) for a test
group over a period, and the incremental revenue the test measured, with its interval::

    channel,start,end,metric,lift,lower,upper,segment
    paid_search,2025-04-01,2025-06-30,revenue,182000.00,150000.00,214000.00,
    podcast,2025-01-01,2025-06-30,pipeline,40000,-5000,85000,enterprise

Canonical columns (``[columns.experiments]`` in the config renames a file's own names onto
them):

* ``channel`` (required): a channel of the run, spelled as its touches are (case and
  separators may differ: ``Paid Search`` is ``paid_search`` when the touches say so);
* ``start``, ``end`` (required): the experiment's first and last day, **inclusive** (ISO dates;
  a timestamp is turned into its UTC date);
* ``metric`` (optional, default ``revenue``): what ``lift`` measures. ``revenue``: the won
  revenue of deals *closed* in [start, end] that the channel caused; ``pipeline``: the amount of
  deals *created* in [start, end] (won, lost or open) that it caused;
* ``lift`` (required): the measured incremental revenue or pipeline, in major units of the
  run's currency (a decimal, may be negative: a channel can lose money);
* ``lower``, ``upper`` (required): the bounds of the measurement's interval (the test's
  confidence or credible interval), major units, ``lower <= lift <= upper``;
* ``segment`` (optional): the experiment covers only deals whose ``segment`` (a column of the
  deals export, ``[columns.deals] segment`` maps it) has this value; empty = every deal.

Bad rows are rejected with their reason, never guessed: a missing or unparseable date, an end
before its start, an unknown metric, a channel that is not a channel of the run, an amount that
is not a number (or has more decimals than the currency), ``lower`` above ``upper``, a lift
outside its own interval, a segment that no deal has. They become rows of
:data:`~attribution.schema.REJECT_SCHEMA` (input ``experiments``) and count towards the maximum
reject rate like any input's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from attribution.channels import channel_key
from attribution.errors import RejectedRowError
from attribution.reading import ROW, InputFile, file_digest, read_table
from attribution.schema import REJECT_SCHEMA, currency_decimals
from attribution.validation import (
    Accounting,
    amount_checks,
    amount_text,
    check_reject_rate,
    first_failure,
    instant,
    minor_units,
    reason_counts,
    split_rejects,
    text,
)

INPUT = "experiments"

#: canonical experiment columns: name -> required?
EXPERIMENT_COLUMNS: dict[str, bool] = {
    "channel": True,
    "start": True,
    "end": True,
    "metric": False,
    "lift": True,
    "lower": True,
    "upper": True,
    "segment": False,
}

#: what an experiment's lift measures (see the module docstring)
METRICS = ("revenue", "pipeline")

DATE_HINT = "expected an ISO date like 2025-03-01"
NUMBER_HINT = "expected a decimal like 12500.00"

#: one row per valid experiment; money in minor units
EXPERIMENT_SCHEMA = pl.Schema(
    {
        "experiment": pl.Int64,  # the 1-based data row of the file: the experiment's name
        "channel": pl.String,  # spelled as the run's touches spell it
        "start": pl.Date,
        "end": pl.Date,  # inclusive
        "metric": pl.String,  # revenue | pipeline
        "lift": pl.Int64,
        "lower": pl.Int64,
        "upper": pl.Int64,
        "segment": pl.String,  # null: every deal
    }
)


@dataclass(frozen=True)
class Experiments:
    """A validated experiments file.

    Attributes
    ----------
    rows
        :data:`EXPERIMENT_SCHEMA`, in file order.
    rejects
        :data:`~attribution.schema.REJECT_SCHEMA` rows with input ``experiments``.
    accounting
        ``read = used + rejected`` for the file.
    file
        Path, row count and digest, for the run's record.
    """

    rows: pl.DataFrame
    rejects: pl.DataFrame
    accounting: Accounting
    file: InputFile


def load_experiments(
    path: str | Path,
    channels: Iterable[str] | None,
    *,
    currency: str = "USD",
    segments: Iterable[str] | None = None,
    columns: Mapping[str, str] | None = None,
    strict: bool = False,
    max_reject_rate: float | None = None,
    encoding: str | None = None,
) -> Experiments:
    """Read and validate an experiments file (CSV, Parquet or NDJSON, by extension).

    Parameters
    ----------
    path
        The experiments file (columns: see the module docstring).
    channels
        The run's channels: an experiment on any other channel is rejected, and a channel
        takes the run's spelling. ``None``: not checked (before a run, to read its priors).
    currency
        The run's currency: amounts with more decimals than its minor unit are rejected.
    segments
        The deals' segment values; ``None``: the deals have no ``segment`` column, so an
        experiment that names a segment is rejected.
    columns
        Canonical column -> the file's column, e.g. ``{"lift": "incremental_revenue"}``.
    strict
        Raise :class:`~attribution.errors.RejectedRowError` on the first bad row.
    max_reject_rate
        Raise :class:`~attribution.errors.RejectRateError` when a larger share of the rows is
        rejected (``None``: no check).
    encoding
        The file's text encoding when it is not UTF-8.

    Examples
    --------
    >>> found = load_experiments("fixtures/experiments/experiments.csv",
    ...                          ["paid_search", "podcast"])      # doctest: +SKIP
    >>> found.rows.columns[:3]                                      # doctest: +SKIP
    ['experiment', 'channel', 'start']
    """
    path = Path(path)
    required = [name for name, needed in EXPERIMENT_COLUMNS.items() if needed]
    frame = read_table(path, INPUT, dict(columns or {}), required, encoding=encoding)
    known = list(dict.fromkeys(channels)) if channels is not None else []
    # a channel is matched through its key (case and separators ignored) and takes the run's
    # spelling; two run channels with one key cannot be told apart, the first one wins
    spelling = pl.DataFrame(
        {"_key": [channel_key(c) for c in known], "_run_channel": known},
        schema={"_key": pl.String, "_run_channel": pl.String},
    ).unique("_key", keep="first", maintain_order=True)
    parsed = frame.select(
        ROW,
        text("channel", frame).alias("_channel"),
        text("start", frame).alias("_start_text"),
        instant("start", frame).dt.date().alias("start"),
        text("end", frame).alias("_end_text"),
        instant("end", frame).dt.date().alias("end"),
        text("metric", frame).alias("_metric_text"),
        text("metric", frame).str.to_lowercase().fill_null("revenue").alias("metric"),
        *[expression for name in ("lift", "lower", "upper") for expression in (
            # in the run's currency's minor unit (fils for KWD, whole yen), not always cents
            minor_units(name, frame, currency_decimals(currency)).alias(name),
            text(name, frame).alias(f"_{name}_text"),
            amount_text(name, frame).alias(f"_{name}_clean"))],
        text("segment", frame).alias("segment"),
    )
    keys = parsed.get_column("_channel").map_elements(channel_key, return_dtype=pl.String) \
        if parsed.height else pl.Series("_channel", [], dtype=pl.String)
    parsed = parsed.with_columns(keys.alias("_key")).join(
        spelling, on="_key", how="left", maintain_order="left")
    if channels is None:
        parsed = parsed.with_columns(pl.col("_channel").alias("_run_channel"))
    segment_values = None if segments is None else sorted(set(segments))
    segment_known = (pl.lit(False) if segment_values is None
                     else pl.col("segment").is_in(segment_values))
    segment_reason = ("unknown segment: the deals have no segment column (map one with "
                      "[columns.deals] segment)" if segment_values is None
                      else "unknown segment: no deal has this segment")
    money_checks = []
    for name in ("lift", "lower", "upper"):
        shown = pl.col(f"_{name}_text")
        money_checks += [
            (shown.is_null(), name, f"missing {name}", shown),
            *amount_checks(pl.col(f"_{name}_clean"), shown, currency, column=name),
            (pl.col(name).is_null(), name, f"{name} is not a number; {NUMBER_HINT}", shown),
        ]
    checked = parsed.with_columns(
        first_failure(
            [
                (pl.col("_channel").is_null(), "channel", "missing channel",
                 pl.col("_channel")),
                (pl.col("_run_channel").is_null(), "channel",
                 "unknown channel: not a channel of the run", pl.col("_channel")),
                (pl.col("_start_text").is_null(), "start", "missing start",
                 pl.col("_start_text")),
                (pl.col("start").is_null(), "start", f"unparseable date; {DATE_HINT}",
                 pl.col("_start_text")),
                (pl.col("_end_text").is_null(), "end", "missing end", pl.col("_end_text")),
                (pl.col("end").is_null(), "end", f"unparseable date; {DATE_HINT}",
                 pl.col("_end_text")),
                (pl.col("end") < pl.col("start"), "end", "end is before start",
                 pl.col("_end_text")),
                (~pl.col("metric").is_in(METRICS), "metric",
                 f"unknown metric; expected {' or '.join(METRICS)}", pl.col("_metric_text")),
                *money_checks,
                (pl.col("lower") > pl.col("upper"), "lower", "lower is above upper",
                 pl.col("_lower_text")),
                ((pl.col("lift") < pl.col("lower")) | (pl.col("lift") > pl.col("upper")),
                 "lift", "lift is outside its interval [lower, upper]", pl.col("_lift_text")),
                (pl.col("segment").is_not_null() & ~segment_known, "segment", segment_reason,
                 pl.col("segment")),
            ]
        )
    )
    good, rejects = split_rejects(checked, str(path), INPUT)
    rejects = rejects.sort("row").cast(dict(REJECT_SCHEMA))  # type: ignore[arg-type]
    if strict and rejects.height:
        first = rejects.row(0, named=True)
        raise RejectedRowError.from_reject(
            first["file"], first["row"], first["column"], first["reason"], first["value"]
        )
    rows = good.select(
        pl.col(ROW).alias("experiment"), pl.col("_run_channel").alias("channel"), "start", "end",
        "metric", "lift", "lower", "upper", "segment",
    ).cast(dict(EXPERIMENT_SCHEMA))  # type: ignore[arg-type]
    accounting = Accounting(INPUT, str(path), read=frame.height, used=rows.height,
                            rejected=reason_counts(rejects))
    if max_reject_rate is not None:
        check_reject_rate([accounting], max_reject_rate)
    return Experiments(rows, rejects, accounting,
                       InputFile(INPUT, str(path), frame.height, file_digest(path)))


__all__ = [
    "EXPERIMENT_COLUMNS",
    "EXPERIMENT_SCHEMA",
    "METRICS",
    "Experiments",
    "load_experiments",
]
