"""Marketing spend: read a spend export, reject bad rows, spread every row over its days.

A spend file has one row per (channel, period) with the amount spent::

    channel,period_start,period_end,amount,currency
    paid_social,2025-01-01,2025-01-31,600.00,USD
    events,2025-01-10,,3000,USD          <- period_end empty: give ``period`` instead

Canonical columns (a ``columns`` mapping renames a file's own names onto them):

* ``channel``, or ``utm_source`` / ``utm_medium`` (and optionally ``utm_campaign``) mapped to a
  channel by the same :class:`~attribution.channels.ChannelRules` as the touchpoints; a
  ``channel`` value wins over the utm columns and keeps its spelling (spellings of one name
  that differ in case or separators become the file's usual one; given the touches' channel
  names, ``labels``, a spend channel takes the touches' spelling of it, so "linkedin ads"
  spend meets "LinkedIn Ads" credit);
* ``period_start`` (required): the first day the amount pays for (an ISO date; a timestamp is
  turned into its UTC date);
* ``period_end``: the last day, **inclusive**; or ``period``: the kind of period that starts at
  ``period_start`` - ``day`` (1 day), ``week`` (7 days), ``month`` (to the day before the same
  day of the next month: 2025-01-15 -> 2025-02-14) or ``quarter`` (3 months). When a row has
  both they must agree;
* ``amount`` (required): a decimal >= 0 in major units, read into integer minor units of the
  run's currency (cents; fils for KWD; :attr:`Spend.rows`' ``amount_cents``); amounts with
  more decimals than the currency's minor unit, in exponent notation or too large are
  rejected (:func:`~attribution.validation.amount_checks`), never rounded;
* ``currency`` (optional): rows in another currency than the run's are rejected.

Every amount is spread evenly over the days of its period, exactly in cents, by the largest
remainder method: each of the ``n`` days gets ``amount // n`` cents and the ``amount % n``
cents left over go one each to the earliest days (all fractional parts are equal, so ties go
to the earlier day). The days of a row therefore sum to the row's amount to the cent, and any
reporting grain (day, week, month, quarter) is a plain sum of days: see
:func:`spend_by_period`.

Nothing is dropped silently: a bad row becomes a row of
:data:`~attribution.schema.REJECT_SCHEMA` (input ``spend``, the 1-based data row, the column,
the reason and the value), and the :class:`~attribution.loading.Accounting` of the file says
``read = used + rejected``. Spend rows are never deduplicated: two equal rows are two line
items (two campaigns of one channel in one month) and both count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from attribution.channels import ChannelRules, load_rules, relabel, unify_spellings
from attribution.errors import ColumnNotFoundError, ConfigError, RejectedRowError
from attribution.reading import ROW, InputFile, file_digest, read_table
from attribution.schema import REJECT_SCHEMA, UNMAPPED_CHANNEL, currency_decimals
from attribution.validation import (
    Accounting,
    amount_checks,
    amount_text,
    currency_mark,
    currency_mark_check,
    first_failure,
    instant,
    minor_units,
    most_common_currency,
    reason_counts,
    split_rejects,
    text,
)

#: canonical spend columns: name -> required?
SPEND_COLUMNS: dict[str, bool] = {
    "channel": False,  # channel, or utm_source / utm_medium
    "utm_source": False,
    "utm_medium": False,
    "utm_campaign": False,
    "period_start": True,
    "period_end": False,  # period_end and/or period
    "period": False,
    "amount": True,  # money: keep name
    "currency": False,
}

#: period kinds a ``period`` cell may name, with the offset from period_start to the next period
PERIOD_KINDS: dict[str, str] = {"day": "1d", "week": "1w", "month": "1mo", "quarter": "1q"}

#: reporting grains: the period a day falls in starts at ``day.dt.truncate(GRAINS[grain])``
#: (weeks start on Monday, months and quarters on the calendar's first day)
GRAINS: dict[str, str] = {"day": "1d", "week": "1w", "month": "1mo", "quarter": "1q"}

DATE_HINT = "expected an ISO date like 2025-03-01"

#: one row per valid spend row
SPEND_ROW_SCHEMA = pl.Schema(
    {
        "row": pl.Int64,  # 1-based data row of the file
        "channel": pl.String,
        "channel_group": pl.String,
        "period_start": pl.Date,
        "period_end": pl.Date,  # inclusive
        "days": pl.Int64,
        "amount_cents": pl.Int64,  # minor units
    }
)

#: spend per channel and day, minor units
DAILY_SPEND_SCHEMA = pl.Schema(
    {
        "channel": pl.String,
        "channel_group": pl.String,
        "day": pl.Date,
        "spend_cents": pl.Int64,
    }
)


@dataclass(frozen=True)
class Spend:
    """A validated spend export.

    Attributes
    ----------
    rows
        :data:`SPEND_ROW_SCHEMA`: the rows that were used, with their inclusive period.
    daily
        :data:`DAILY_SPEND_SCHEMA`: every row spread over its days, summed per channel and day.
    rejects
        :data:`~attribution.schema.REJECT_SCHEMA` rows with input ``spend``.
    accounting
        ``read = used + rejected`` for the file.
    file
        Path, row count and digest, for the run's record.
    currency
        The currency the amounts are in.
    """

    rows: pl.DataFrame
    daily: pl.DataFrame
    rejects: pl.DataFrame
    accounting: Accounting
    file: InputFile
    currency: str
    #: a database source's record (URI without secrets, query, rows, digest, key), for run.json
    source: dict[str, object] | None = None


def check_grain(grain: str) -> str:
    """Return ``grain`` if it is a known reporting grain, else raise :class:`ConfigError`."""
    if grain not in GRAINS:
        raise ConfigError(f"unknown grain {grain!r}; valid grains: {', '.join(GRAINS)}")
    return grain


def period_of(day: pl.Expr, grain: str) -> pl.Expr:
    """The first day of the ``grain`` period that ``day`` (a Date or UTC datetime) falls in.

    >>> import datetime as dt
    >>> pl.select(period_of(pl.lit(dt.date(2025, 1, 1)), "week")).item()
    datetime.date(2024, 12, 30)
    """
    return day.cast(pl.Date).dt.truncate(GRAINS[check_grain(grain)])


def _load_spend_source(uri: str, *, query: str | None, rules: ChannelRules | None,
                       currency: str | None, columns: Mapping[str, str] | None, strict: bool,
                       labels: Iterable[str] | None) -> Spend:
    """Spend from a database table or query: the rows read through Arrow
    (:func:`attribution.db.materialize`), validated exactly as a Parquet export, then named
    by the source (rejects: its URI and each row's key; the file: its rows and digest)."""
    import dataclasses
    import tempfile

    from attribution import db

    with tempfile.TemporaryDirectory(prefix="attribution-db-") as scratch:
        file, source = db.materialize(uri, scratch, "spend_cents", query=query, mapping=columns)
        try:
            spend = load_spend(file, rules=rules, currency=currency, columns=columns,
                               strict=strict, labels=labels)
        except RejectedRowError as exc:  # strict: the first bad row, named by the source
            raise RejectedRowError(str(exc).replace(str(file), source.uri, 1)) from None
    return dataclasses.replace(
        spend,
        rejects=db.relabel_rejects(spend.rejects, {str(file): source}),
        accounting=dataclasses.replace(spend.accounting, path=source.uri),
        file=InputFile("spend_cents", source.uri, source.rows, source.sha256),
        source=source.as_dict(),
    )


def load_spend(
    path: str | Path,
    *,
    rules: ChannelRules | None = None,
    currency: str | None = None,
    columns: Mapping[str, str] | None = None,
    strict: bool = False,
    labels: Iterable[str] | None = None,
    encoding: str | None = None,
    groups: Mapping[str, str] | None = None,
    query: str | None = None,
) -> Spend:
    """Read and validate a spend export (CSV, Parquet or NDJSON, by extension), or a database
    table or query (``postgresql://...?table=marketing.spend``, ``duckdb:///crm.duckdb?
    table=spend``; see :mod:`attribution.db`).

    Parameters
    ----------
    path
        The spend file, or a database URI.
    rules
        Channel rules for utm_source / utm_medium and for channel groups; default: the built-in
        rules (pass the run's rules so spend and touches agree).
    currency
        The run's currency; default: the most common ``currency`` value of the file, else USD.
    columns
        Canonical column -> the file's column, e.g. ``{"amount": "cost"}``.
    strict
        Raise :class:`~attribution.errors.RejectedRowError` on the first bad row.
    labels
        The run's channel names (its touches'): a spend channel whose
        :func:`~attribution.channels.channel_key` one of them shares takes its spelling.
    encoding
        The file's text encoding when it is not UTF-8 (see
        :func:`attribution.reading.read_file`).
    groups
        The run's channel groups (channel -> group, as its touches got them, a preset's
        groups included): a spend channel of the run takes its group; others, the rules'.
    query
        The SQL of a database source given apart from its URI (``[inputs.spend] query``).

    Returns
    -------
    Spend

    Raises
    ------
    ColumnNotFoundError
        ``period_start`` or ``amount`` is missing, or neither ``channel`` nor a utm column, or
        neither ``period_end`` nor ``period`` is present.

    Examples
    --------
    >>> spend = load_spend("fixtures/economics/spend.csv")          # doctest: +SKIP
    >>> spend.daily.group_by("channel").agg(pl.col("spend").sum())  # doctest: +SKIP
    """
    from attribution.db import is_database_uri

    if is_database_uri(path):
        return _load_spend_source(str(path), query=query, rules=rules, currency=currency,
                                  columns=columns, strict=strict, labels=labels)
    path = Path(path)
    rules = rules or load_rules()
    required = [name for name, needed in SPEND_COLUMNS.items() if needed]
    frame = read_table(path, "spend", dict(columns or {}), required,  # money: keep name
                       encoding=encoding)
    available = [c for c in frame.columns if c != ROW]
    if not {"channel", "utm_source", "utm_medium"} & set(frame.columns):
        raise ColumnNotFoundError.from_missing(
            str(path), ["channel"], available,
            hint="spend needs 'channel' or 'utm_source'/'utm_medium'",
        )
    # a period_start like 2025-03 names a month: its first day, the month as the period
    month_label = text("period_start", frame).str.contains(r"^\d{4}-\d{2}$").fill_null(False)
    if currency is None:
        currency = most_common_currency(frame)

    parsed = frame.select(
        ROW,
        text("channel", frame).alias("_channel"),
        text("utm_source", frame).alias("utm_source"),
        text("utm_medium", frame).alias("utm_medium"),
        text("utm_campaign", frame).alias("utm_campaign"),
        pl.when(month_label)
        .then((text("period_start", frame) + "-01").str.to_date("%Y-%m-%d", strict=False))
        .otherwise(instant("period_start", frame).dt.date())
        .alias("period_start"),
        text("period_start", frame).alias("_start_text"),
        month_label.alias("_month_label"),
        instant("period_end", frame).dt.date().alias("_end"),
        text("period_end", frame).alias("_end_text"),
        pl.coalesce(
            text("period", frame).str.to_lowercase(),
            pl.when(month_label & text("period_end", frame).is_null()).then(pl.lit("month")),
        ).alias("_period"),
        minor_units("amount", frame, currency_decimals(currency), currency)  # money: keep name
        .alias("amount_cents"),
        text("amount", frame).alias("_amount_text"),  # money: keep name
        amount_text("amount", frame, currency).alias("_amount_clean"),  # money: keep name
        currency_mark("amount", frame).alias("_amount_mark"),  # money: keep name
        text("currency", frame).str.to_uppercase().alias("currency"),
    )
    channel = unify_spellings(parsed.get_column("_channel"))
    if labels is not None:
        channel = relabel(channel, labels)
    parsed = parsed.with_columns(channel.alias("_channel"))

    # map each distinct utm combination once
    pairs = parsed.select("utm_source", "utm_medium", "utm_campaign").unique()
    pairs = pairs.with_columns(
        rules.channel_of(pl.col("utm_source"), pl.col("utm_medium"), pl.col("utm_campaign"))
        .alias("_rule_channel")
    )
    parsed = parsed.join(
        pairs, on=["utm_source", "utm_medium", "utm_campaign"], how="left", nulls_equal=True
    ).sort(ROW)
    offset = pl.col("_period").replace_strict(PERIOD_KINDS, default=None, return_dtype=pl.String)
    from_kind = (
        pl.when(offset.is_not_null())
        .then(pl.col("period_start").dt.offset_by(offset.fill_null("1d")) - pl.duration(days=1))
        .otherwise(None)
    )
    parsed = parsed.with_columns(
        pl.coalesce("_channel", "_rule_channel").alias("channel"),
        from_kind.alias("_kind_end"),
    ).with_columns(pl.coalesce("_end", "_kind_end").alias("period_end"))

    no_channel = (
        pl.col("_channel").is_null() & pl.col("utm_source").is_null()
        & pl.col("utm_medium").is_null()
    )
    kinds = ", ".join(PERIOD_KINDS)
    checked = parsed.with_columns(
        first_failure(
            [
                (pl.col("_start_text").is_null(), "period_start", "missing period_start",
                 pl.col("_start_text")),
                (pl.col("period_start").is_null(), "period_start", f"unparseable date; {DATE_HINT}",
                 pl.col("_start_text")),
                (pl.col("_end_text").is_not_null() & pl.col("_end").is_null(), "period_end",
                 f"unparseable date; {DATE_HINT}", pl.col("_end_text")),
                (pl.col("_period").is_not_null() & offset.is_null(), "period",
                 f"unknown period kind; expected {kinds}", pl.col("_period")),
                (pl.col("_end").is_null() & pl.col("_period").is_null(), "period_end",
                 ("no period_end and no period (day, week, month or quarter); a period_start "
                 "like 2025-03 means the whole month"), pl.lit(None, pl.String)),
                (pl.col("_end").is_not_null() & pl.col("_kind_end").is_not_null()
                 & (pl.col("_end") != pl.col("_kind_end")), "period_end",
                 "period_end does not match period", pl.col("_end_text")),
                (pl.col("period_end") < pl.col("period_start"), "period_end",
                 "period_end is before period_start", pl.col("_end_text")),
                (pl.col("_amount_text").is_null(), "amount", "missing amount",  # money: keep name
                 pl.col("_amount_text")),
                currency_mark_check(pl.col("_amount_mark"), pl.col("_amount_text"), currency),
                *amount_checks(pl.col("_amount_clean"), pl.col("_amount_text"), currency),
                (pl.col("amount_cents").is_null(), "amount",  # money: keep name
                 "amount is not a number; expected a decimal like 1250.00", pl.col("_amount_text")),
                # money: keep names from here (a reject's column is the file's)
                (pl.col("amount_cents") < 0, "amount", "negative amount",
                 pl.col("_amount_text")),
                # money: keep names to here
                (no_channel, "channel", "no channel and no utm_source/utm_medium",
                 pl.lit(None, pl.String)),
                (pl.col("channel") == UNMAPPED_CHANNEL, "utm_source",
                 ("unmapped channel: no channel rule matches utm_source/utm_medium; add a rule "
                 "with --channel-rules or give a channel column"),
                 pl.concat_str(pl.col("utm_source").fill_null(""), pl.lit("/"),
                               pl.col("utm_medium").fill_null(""))),
                (pl.col("currency").is_not_null() & (pl.col("currency") != currency), "currency",
                 (f"currency differs from the run's currency {currency}; convert amounts first "
                 "or set [money] currency"), pl.col("currency")),
            ]
        )
    )
    good, rejects = split_rejects(checked, str(path), "spend")  # money: keep name
    if strict and rejects.height:
        first = rejects.sort("row").row(0, named=True)
        raise RejectedRowError.from_reject(
            first["file"], first["row"], first["column"], first["reason"], first["value"]
        )
    rows = good.select(
        pl.col(ROW).alias("row"),
        "channel",
        (rules.group_of(pl.col("channel")) if not groups else
         pl.col("channel").replace_strict(dict(groups), default=rules.group_of(pl.col("channel")),
                                          return_dtype=pl.String)).alias("channel_group"),
        "period_start",
        "period_end",
        ((pl.col("period_end") - pl.col("period_start")).dt.total_days() + 1).cast(pl.Int64)
        .alias("days"),
        "amount_cents",
    ).cast(dict(SPEND_ROW_SCHEMA))  # type: ignore[arg-type]
    accounting = Accounting("spend", str(path),  # money: keep name
                            read=frame.height, used=rows.height, rejected=reason_counts(rejects))
    return Spend(
        rows=rows,
        daily=daily_spend(rows),
        rejects=rejects.sort("row").cast(dict(REJECT_SCHEMA)),  # type: ignore[arg-type]
        accounting=accounting,
        file=InputFile("spend", str(path), frame.height, file_digest(path)),  # money: keep name
        currency=currency,
    )


def spread_daily(rows: pl.DataFrame) -> pl.DataFrame:
    """Every spend row spread over its days, exactly: ``row, channel, channel_group, day,
    spend_cents``.

    A row of ``amount_cents`` over ``n`` days gives each day ``amount_cents // n`` and one more
    cent to each of the first ``amount_cents % n`` days, so the days of a row sum to its amount.

    >>> import datetime as dt
    >>> rows = pl.DataFrame({"row": [1], "channel": ["events"], "channel_group": ["x"],
    ...     "period_start": [dt.date(2025, 1, 1)], "period_end": [dt.date(2025, 1, 3)],
    ...     "days": [3], "amount_cents": [100]})
    >>> spread_daily(rows)["spend_cents"].to_list()
    [34, 33, 33]
    """
    exploded = rows.with_columns(
        pl.date_ranges("period_start", "period_end", "1d").alias("day")
    ).explode("day")
    index = pl.int_range(pl.len(), dtype=pl.Int64).over("row")
    return exploded.select(
        "row",
        "channel",
        "channel_group",
        "day",
        (pl.col("amount_cents") // pl.col("days")
         + (index < pl.col("amount_cents") % pl.col("days")).cast(pl.Int64))
        .alias("spend_cents"),
    ).sort(["row", "day"])


def daily_spend(rows: pl.DataFrame) -> pl.DataFrame:
    """Spend per channel and day (:data:`DAILY_SPEND_SCHEMA`), summed over the rows."""
    return (
        spread_daily(rows)
        .group_by("channel", "channel_group", "day")
        .agg(pl.col("spend_cents").sum())
        .sort(["day", "channel"])
        .cast(dict(DAILY_SPEND_SCHEMA))  # type: ignore[arg-type]
        .select(list(DAILY_SPEND_SCHEMA))
    )


def daily_of(spend: Spend | pl.DataFrame) -> pl.DataFrame:
    """The daily frame of a :class:`Spend`, or a frame that already is one."""
    return spend.daily if isinstance(spend, Spend) else spend


def spend_by_period(
    spend: Spend | pl.DataFrame,
    grain: str = "month",
    by: tuple[str, ...] = ("channel", "channel_group"),
) -> pl.DataFrame:
    """Spend summed per ``grain`` period (its first day, column ``period``) and ``by`` columns.

    Because spend is held per day, a monthly row split into weeks that straddle two months
    gives each week exactly its days' cents, and the weeks sum to the row.

    Parameters
    ----------
    spend
        A :class:`Spend` or a :data:`DAILY_SPEND_SCHEMA` frame.
    grain
        ``day``, ``week`` (Monday start), ``month`` or ``quarter``.
    by
        Columns to keep apart (default: channel and its group; ``()`` for the total).
    """
    daily = daily_of(spend)
    return (
        daily.with_columns(period_of(pl.col("day"), grain).alias("period"))
        .group_by("period", *by)
        .agg(pl.col("spend_cents").sum())
        .sort(["period", *by])
    )


def spend_by_channel(spend: Spend | pl.DataFrame) -> pl.DataFrame:
    """Total spend per channel: ``channel, channel_group, spend`` (minor units)."""
    return (
        daily_of(spend)
        .group_by("channel", "channel_group")
        .agg(pl.col("spend_cents").sum())
        .sort("channel")
    )


__all__ = [
    "DAILY_SPEND_SCHEMA",
    "GRAINS",
    "PERIOD_KINDS",
    "SPEND_COLUMNS",
    "SPEND_ROW_SCHEMA",
    "Spend",
    "check_grain",
    "daily_spend",
    "load_spend",
    "period_of",
    "spend_by_channel",
    "spend_by_period",
    "spread_daily",
]
