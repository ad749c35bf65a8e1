"""Validate tables: parse values, check every row, split off rejects, count every row.

A row is used, counted as a duplicate, or rejected with its 1-based data row (the header is
row 0), the column, the reason and the value. Each ``validate_*`` function takes a table (a
path, read by :mod:`attribution.reading`, or a frame as read, e.g. a batch inside Spark) and
returns one :class:`Validated`. The parsing expressions (:func:`text`, :func:`instant`,
:func:`minor_units`) and the reject helpers (:func:`first_failure`, :func:`split_rejects`,
:func:`reason_counts`, :func:`flag_duplicates`) are shared with spend and budget files.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from attribution.channels import ChannelRules, unify_spellings
from attribution.errors import (
    AmbiguousTimestampError,
    ColumnNotFoundError,
    RejectRateError,
    quote_input,
)
from attribution.keys import lookup
from attribution.reading import ROW, name_columns, read_file, rechunk_in_place
from attribution.schema import (
    ACCOUNT_JOURNEY_PREFIX,
    CONTACT_COLUMNS,
    DEAL_COLUMNS,
    REJECT_SCHEMA,
    UNMAPPED_CHANNEL,
    UTC_TIME,
    currency_decimals,
)
from attribution.sources import Preset, apply_preset

#: a table to validate: a file's path, or a frame of its columns as read
TableSource = str | Path | pl.DataFrame

_REASON = "_reason"
_COLUMN = "_column"
_VALUE = "_value"

TIMESTAMP_HINT = (
    "expected ISO-8601 like 2025-03-04T10:15:00Z or 2025-03-04, or declare the format with "
    "--timestamp-format"
)
ISO_TIME_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d",
)
STATUS_WORDS = {
    # common open pipeline stages of Salesforce / HubSpot / Pipedrive exports
    "prospecting": "open",
    "qualification": "open",
    "qualified": "open",
    "discovery": "open",
    "needsanalysis": "open",
    "demo": "open",
    "evaluation": "open",
    "proposal": "open",
    "proposalpricequote": "open",
    "negotiation": "open",
    "negotiationreview": "open",
    "contractsent": "open",
    "commit": "open",
    "won": "won",
    "closedwon": "won",
    "win": "won",
    "lost": "lost",
    "closedlost": "lost",
    "open": "open",
    "pipeline": "open",
    "inprogress": "open",
    "active": "open",
    # HubSpot's default sales pipeline: labels and internal ids normalise alike
    # (Appointment Scheduled / appointmentscheduled, Decision Maker Bought-In / ...)
    "appointmentscheduled": "open",
    "qualifiedtobuy": "open",
    "presentationscheduled": "open",
    "decisionmakerboughtin": "open",
    # Salesforce's default opportunity stages
    "valueproposition": "open",
    "iddecisionmakers": "open",
    "perceptionanalysis": "open",
}
def status_words(statuses: Mapping[str, Sequence[str]] | None = None) -> dict[str, str]:
    """Normalised CRM stage word -> won | lost | open: the built-in words plus the user's.

    Words are compared lower-cased with everything but letters removed, so ``Closed Won``,
    ``closed-won`` and ``CLOSED_WON`` are one word.
    """
    words = dict(STATUS_WORDS)
    for status, names in (statuses or {}).items():
        for name in names:
            words[re.sub(r"[^a-z]", "", name.lower())] = status
    return words



@dataclass
class Accounting:
    """Row accounting of one input: read = used + deduplicated + out_of_window + rejected."""

    input: str
    path: str
    read: int = 0
    used: int = 0
    deduplicated: int = 0
    out_of_window: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    #: cells of used rows left blank because they could not be used (an unreadable optional
    #: date): the row is counted as used, and each cell is listed with the rejects (its
    #: reason starts with :data:`BLANKED`)
    blanked: int = 0
    #: deals only: the amount (minor units) of rejected rows whose amount could be read, and of
    #: those marked won; money that is in the file but in no total of the run
    rejected_amount: int = 0
    rejected_won_amount: int = 0

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self, decimals: int = 2) -> dict[str, object]:
        """The accounting as run.json writes it; the rejected amounts in major units of a
        currency with ``decimals`` (its ISO 4217 minor unit)."""
        return {
            "input": self.input,
            "file": self.path,
            "read": self.read,
            "used": self.used,
            "deduplicated": self.deduplicated,
            "out_of_window": self.out_of_window,
            "rejected": self.rejected_total,
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "blanked": self.blanked,
            **({"rejected_amount": self.rejected_amount / 10 ** decimals,
                "rejected_won_amount": self.rejected_won_amount / 10 ** decimals}
               if self.input == "deals" else {}),
        }



@dataclass
class Validated:
    """One validated table.

    ``good`` holds the used rows (with ``_row``), ``rejects`` the rejected ones
    (:data:`~attribution.schema.REJECT_SCHEMA`), ``accounting`` their counts. Touchpoints also
    give ``unmapped`` (utm pairs no rule maps, with their touches) and ``channel_groups``;
    deals give the run's ``currency``.
    """

    good: pl.DataFrame
    rejects: pl.DataFrame
    accounting: Accounting
    unmapped: pl.DataFrame | None = None
    channel_groups: dict[str, str] = field(default_factory=dict)
    currency: str | None = None
    #: the file's column -> the format its timestamps were read in, when inferred
    time_formats: dict[str, TimeFormat] = field(default_factory=dict)
    #: what the caller should tell the user (inferred formats, unknown statuses)
    notes: list[str] = field(default_factory=list)
    #: canonical column -> the file's own name for it, where they differ
    columns: dict[str, str] = field(default_factory=dict)
    #: contacts only: the ids of the rejected contact rows, with their reason (``contact_id``,
    #: ``reason``), so a touch of one says so
    rejected_ids: pl.DataFrame | None = None


@dataclass
class _Named:
    """A table ready to validate (:func:`_named`)."""

    #: canonical column names and ``_row``, without the rows that repeat the header
    frame: pl.DataFrame
    #: the name messages give the table (its path)
    file: str
    #: canonical -> the file's column, as used
    mapping: dict[str, str] | None
    #: canonical -> the file's own header for it (rejects name a column so)
    names: dict[str, str]
    #: the rejects of the rows that repeat the header
    repeated: pl.DataFrame

    @property
    def read(self) -> int:
        """The rows read: the frame's and the header repeats'."""
        return self.frame.height + self.repeated.height


def _named(source: TableSource, file: str | None, input_name: str,
           mapping: dict[str, str] | None, expected: Sequence[str],
           alternatives: Mapping[str, str] | None = None,
           preset: Preset | None = None,
           encoding: str | None = None) -> _Named:
    """The table with canonical column names and ``_row``, the name its messages use, the
    column mapping used and the file's names of the columns; through ``preset``
    (:func:`attribution.sources.apply_preset`) when one is given. Rows that repeat the header
    (exports joined one after another) are set aside as rejects."""
    if isinstance(source, pl.DataFrame):
        where = file if file is not None else f"({input_name} table)"
        raw = source
    else:
        path = Path(source)
        where = file if file is not None else str(path)
        raw = read_file(path, input_name, encoding=encoding)
    repeats = header_repeats(raw)
    header = None
    fills: dict[str, list[str]] = {}
    if preset is not None:
        # the preset renames the file's columns: a missing column's message lists the file's
        header = list(raw.columns)
        _, fills = preset.mapping(input_name, header, mapping)
        raw, mapping = apply_preset(raw, preset, input_name, mapping)
    frame = name_columns(raw, where, input_name, mapping, expected, alternatives, header)
    names = {canonical: " or ".join(fills[canonical]) if canonical in fills else original
             for canonical, original in (mapping or {}).items()}
    repeated = pl.DataFrame(schema=REJECT_SCHEMA)
    if repeats is not None:
        repeated = frame.filter(repeats).select(
            pl.lit(where).alias("file"), pl.lit(input_name).alias("input"),
            pl.col(ROW).alias("row"), pl.lit("").alias("column"),
            pl.lit(HEADER_REPEAT).alias("reason"), pl.lit(None, pl.String).alias("value"),
            pl.lit(None, pl.String).alias("key"),
        ).cast(dict(REJECT_SCHEMA))  # type: ignore[arg-type]
        frame = frame.filter(~repeats)
        rechunk_in_place(frame)
    return _Named(frame, where, mapping, names, repeated)


#: the reason of a row that repeats the header
HEADER_REPEAT = ("repeats the header (exports joined one after another?); "
                 "the row is not data")


def header_repeats(raw: pl.DataFrame) -> pl.Series | None:
    """Which rows of a table as read repeat its header (every cell its column's name,
    trimmed; what joining exports one after another leaves), or None when none does. Only a
    table of text columns can hold one (a CSV); one column is searched first, so a table
    without such a row costs one search of one column."""
    if not raw.height or not raw.width or any(d != pl.String for d in raw.dtypes):
        return None

    def repeats(name: str) -> pl.Expr:
        if not name.strip():  # a column without a name: its cell is empty in the copy
            return pl.col(name).str.strip_chars().replace("", None).is_null()
        return (pl.col(name).str.strip_chars() == name.strip()).fill_null(False)

    named = next((c for c in raw.columns if c.strip()), None)
    # (a search without copying the column first: most files have no cell holding the name)
    if named is None or not raw.select(
            pl.col(named).str.contains(named.strip(), literal=True).any()).item():
        return None
    found = raw.select(pl.all_horizontal(repeats(c) for c in raw.columns)).to_series()
    return found if found.any() else None


def _notes(file: str, found: Mapping[str, TimeFormat]) -> list[str]:
    return [time_format_note(file, found)] if found else []


# -- timestamp formats inferred from the values ---------------------------------------------
_DATE_STYLES = (
    ("%m/%d/%Y", "month/day/year"),
    ("%d/%m/%Y", "day/month/year"),
    ("%m-%d-%Y", "month-day-year"),
    ("%d-%m-%Y", "day-month-year"),
    ("%d.%m.%Y", "day.month.year"),
    ("%Y/%m/%d", "year/month/day"),
    ("%m/%d/%y", "month/day/two-digit year"),
    ("%d/%m/%y", "day/month/two-digit year"),
)
_CLOCK_STYLES = (
    (" %I:%M %p", "12-hour clock"),
    (" %I:%M:%S %p", "12-hour clock"),
    (" %H:%M", "24-hour clock"),
    (" %H:%M:%S", "24-hour clock"),
    ("", "date only"),
)
#: epoch units by digit count: Unix seconds and milliseconds are read without a note (10 and 13
#: digits, see :func:`instant`); microseconds (GA4's event_timestamp) and the others are inferred
_EPOCH_UNITS = {"epoch_s": 1_000_000, "epoch_ms": 1_000, "epoch_us": 1}
_EPOCH_DIGITS = {"epoch_s": r"^\d{9,10}$", "epoch_ms": r"^\d{12,13}$", "epoch_us": r"^\d{15,16}$"}
_EPOCH_NAMES = {"epoch_s": "Unix epoch seconds", "epoch_ms": "Unix epoch milliseconds",
                "epoch_us": "Unix epoch microseconds"}
#: how many distinct unreadable values the inference looks at (the first, in file order)
_INFER_SAMPLE = 20_000
#: how many of them pick the formats worth trying on all
_SHORTLIST_SAMPLE = 500
#: how many of a column's first values decide whether its format is inferred before parsing
_SNIFF_ROWS = 1_000


@dataclass(frozen=True)
class TimeFormat:
    """A timestamp format read off a column's values: a strftime pattern (naive times are
    UTC) or an epoch unit (``epoch_s``, ``epoch_ms``, ``epoch_us``), and what it means."""

    pattern: str
    description: str
    #: taken from the first values for now, checked against them all after the parse
    tentative: bool = field(default=False, compare=False)


def time_format_candidates() -> list[TimeFormat]:
    """Every format :func:`infer_time_format` tries, in order."""
    candidates = [TimeFormat(date + clock, f"{meaning}, {hours}")
                  for date, meaning in _DATE_STYLES for clock, hours in _CLOCK_STYLES]
    return [*candidates, *(TimeFormat(unit, _EPOCH_NAMES[unit]) for unit in _EPOCH_UNITS)]


def parse_time(values: pl.Expr, pattern: str) -> pl.Expr:
    """Text as UTC datetimes in one format (null where a value does not fit it, or gives a
    year outside 1900-2200: ``%Y`` would take ``25`` as the year 25)."""
    if pattern in _EPOCH_UNITS:
        moment = pl.when(values.str.contains(_EPOCH_DIGITS[pattern])).then(
            values.cast(pl.Int64, strict=False) * _EPOCH_UNITS[pattern]
        ).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    else:
        moment = values.str.to_datetime(pattern, strict=False, time_unit="us", time_zone="UTC")
    return pl.when(moment.dt.year().is_between(1900, 2200)).then(moment)


def infer_time_format(values: pl.Series, file: str, column: str,
                      prefer: Sequence[str] = (),
                      readable: Sequence[str] | None = None) -> TimeFormat | None:
    """The one format that reads the most of ``values`` (text a column could not be read as),
    or None when no format reads any.

    Raises :class:`AmbiguousTimestampError` when formats that read as many values give
    different times (``01/02/2025`` is 1 February or 2 January): the message lists them;
    unless exactly one of them is in ``prefer`` (a source preset's usual style), which is taken.
    With ``readable`` (declared formats), values those, ISO-8601 or epoch seconds and
    milliseconds read are left out first.
    """
    readings, example = _readings(values, readable)
    return _settle(readings, example, file, column, prefer)


def _readings(values: pl.Series,
              readable: Sequence[str] | None) -> tuple[list[TimeFormat], str | None]:
    """The formats that read the most of the distinct values, one per distinct reading of
    them (empty when none reads any), and a value two of them read differently."""
    distinct = values.drop_nulls().unique(maintain_order=True)
    if readable is not None:
        # in slices, so that a column of mostly readable values costs no parse of them all
        kept: list[pl.Series] = []
        for start in range(0, distinct.len(), _INFER_SAMPLE):
            part = distinct.slice(start, _INFER_SAMPLE).to_frame("value")
            kept.append(part.filter(instant("value", part, readable).is_null()).to_series())
            if sum(k.len() for k in kept) >= _INFER_SAMPLE:
                break
        distinct = pl.concat(kept) if kept else distinct.clear()
    distinct = distinct.head(_INFER_SAMPLE)
    if not distinct.len():
        return [], None
    frame = distinct.to_frame("value")
    candidates = time_format_candidates()
    # the formats that read the most of the first values are tried on them all (the others
    # were beaten already); when none reads any of the first, every format is tried
    first = frame.head(_SHORTLIST_SAMPLE).select(
        parse_time(pl.col("value"), c.pattern).count().alias(str(i))
        for i, c in enumerate(candidates)
    ).row(0)
    shortlist = ([i for i, n in enumerate(first) if n == max(first)] if max(first)
                 else list(range(len(candidates))))
    parsed = frame.select(
        parse_time(pl.col("value"), candidates[i].pattern).alias(str(i)) for i in shortlist
    )
    counts = {i: parsed.get_column(str(i)).count() for i in shortlist}
    best = max(counts.values())
    if best == 0:
        return [], None
    readings: list[int] = []  # the tied candidates that read the values differently
    for i in (i for i, n in counts.items() if n == best):
        if not any(parsed.get_column(str(i)).equals(parsed.get_column(str(j))) for j in readings):
            readings.append(i)
    example = None
    if len(readings) > 1:
        first_two = [parsed.get_column(str(i)) for i in readings[:2]]
        differs = (first_two[0] != first_two[1]).fill_null(True)
        example = str(frame.get_column("value").filter(differs)[0])
    return [candidates[i] for i in readings], example


def _settle(readings: list[TimeFormat], example: str | None, file: str, column: str,
            prefer: Sequence[str]) -> TimeFormat | None:
    if not readings:
        return None
    if len(readings) == 1:
        return readings[0]
    preferred = [f for f in readings if f.pattern in prefer]
    if len(preferred) == 1:
        others = ", ".join(f.description for f in readings if f is not preferred[0])
        return TimeFormat(preferred[0].pattern,
                          f"{preferred[0].description}; the source's usual style, the values "
                          f"also read as {others}")
    raise AmbiguousTimestampError(
        f"{file}: column {column!r}: timestamps like {example!r} read more than one way: "
        + "; ".join(f"{f.pattern!r} ({f.description})" for f in readings)
        + '; declare the format with [formats] timestamp = "..." in the config or '
        "--timestamp-format"
    )


def sniff_times(frame: pl.DataFrame, columns: Sequence[tuple[str, str]],
                declared: Sequence[str], file: str, infer: bool,
                prefer: Sequence[str] = ()) -> dict[str, TimeFormat]:
    """Formats inferred before the columns are parsed: canonical column -> format, for the
    ``(canonical, the file's column)`` whose first values the declared, ISO and epoch formats
    do not all read (a US export), so that each column is parsed once, in its format.

    The first values settle it when they leave one reading (a day above 12 fixes the order);
    when they leave several and the source prefers one, that one is taken for now
    (``tentative``: :func:`infer_times` checks it against every value after the parse);
    otherwise every distinct value of the columns is read together.
    """
    if not infer:
        return {}
    pending, samples = [], []
    for canonical, shown in columns:
        if canonical not in frame.columns or frame.schema[canonical].is_temporal():
            continue
        sample = frame.get_column(canonical).head(4 * _SNIFF_ROWS).drop_nulls().head(
            _SNIFF_ROWS).to_frame()
        unread = sample.select(
            (instant(canonical, sample, declared).is_null()
             & text(canonical, sample).is_not_null()).any()).item()
        if unread:
            pending.append((canonical, shown))
            samples.append(sample.select(text(canonical, sample)).to_series().rename("value"))
    if not pending:
        return {}
    names = ", ".join(shown for _, shown in pending)
    readings, _example = _readings(pl.concat(samples), declared)
    preferred = [f for f in readings if f.pattern in prefer]
    if len(readings) == 1:
        fitted: TimeFormat | None = readings[0]
    elif len(readings) > 1 and len(preferred) == 1:
        others = ", ".join(f.description for f in readings if f is not preferred[0])
        fitted = TimeFormat(preferred[0].pattern,
                            f"{preferred[0].description}; the source's usual style, the first "
                            f"values also read as {others}", tentative=True)
    else:
        values = pl.concat([frame.select(text(c, frame)).to_series().rename("value")
                            for c, _ in pending])
        fitted = infer_time_format(values, file, names, prefer, readable=declared)
    return {canonical: fitted for canonical, _ in pending} if fitted is not None else {}


def _formats(declared: Sequence[str], early: Mapping[str, TimeFormat],
             canonical: str) -> tuple[str, ...]:
    """The formats a column is parsed with: the declared ones, then the one inferred early."""
    fitted = early.get(canonical)
    return (*declared, fitted.pattern) if fitted is not None else tuple(declared)


def infer_times(parsed: pl.DataFrame, columns: Sequence[tuple[str, str, str]], file: str,
                infer: bool, prefer: Sequence[str] = (),
                early: Mapping[str, TimeFormat] | None = None,
                declared: Sequence[str] = ()) -> tuple[pl.DataFrame, dict[str, TimeFormat]]:
    """Settle the formats of each ``(time column, its text, the file's column)`` after the
    parse; the file's column -> the format inferred.

    * A format :func:`sniff_times` settled stands.
    * A tentative one (the source's usual style, the first values reading either way) stands
      when it read every value; otherwise every distinct value decides, and the columns are
      parsed again in the format that wins.
    * Columns not inferred early whose values the ISO, epoch and declared formats left unread
      are read in the one format those values leave (an export writes its dates in one style,
      so the unread values of all the file's time columns are read together: a close date of
      25/01 settles a created date of 02/01). An ISO file costs one null count per column.

    Values the inferred format cannot read either stay null: the caller rejects them.
    """
    early = early or {}
    found: dict[str, TimeFormat] = {}
    if not infer:
        return parsed, found

    def unread(moment: str, shown: str) -> pl.Expr:
        return pl.col(moment).is_null() & pl.col(shown).is_not_null()

    tentative = [t for t in columns if t[0] in early and early[t[0]].tentative]
    for moment, _, column in columns:
        if moment in early and not early[moment].tentative:
            found[column] = early[moment]
    if tentative:
        guess = early[tentative[0][0]]
        if parsed.select(pl.any_horizontal(unread(m, s).any() for m, s, _ in tentative)).item():
            values = pl.concat([parsed.get_column(s).rename("value") for _, s, _ in tentative])
            fitted = infer_time_format(values, file, ", ".join(c for _, _, c in tentative),
                                       prefer, readable=declared) or guess
            if fitted.pattern != guess.pattern:
                parsed = parsed.with_columns(
                    instant(shown, parsed, (*declared, fitted.pattern)).alias(moment)
                    for moment, shown, _ in tentative
                )
        else:
            fitted = dataclasses.replace(guess, tentative=False)
        found.update({column: fitted for _, _, column in tentative})
    rest = [t for t in columns if t[0] not in early]
    if not rest:
        return parsed, found
    flags = parsed.select(unread(m, s).any().alias(c) for m, s, c in rest).row(0, named=True)
    pending = [(moment, shown, column) for moment, shown, column in rest if flags[column]]
    if not pending:
        return parsed, found
    values = pl.concat([parsed.filter(unread(moment, shown)).get_column(shown).rename("value")
                        for moment, shown, _ in pending])
    late = infer_time_format(values, file, ", ".join(column for _, _, column in pending),
                             prefer)
    if late is None:
        return parsed, found
    found.update({column: late for _, _, column in pending})
    parsed = parsed.with_columns(
        pl.coalesce(moment, parse_time(pl.col(shown), late.pattern)).alias(moment)
        for moment, shown, _ in pending
    )
    return parsed, found


def unparseable_reason(formats: Mapping[str, TimeFormat], column: str) -> str:
    """The reason a timestamp the run could not read is rejected; it names the format the run
    detected for the file's ``column`` when it detected one (a value in another style is then
    what is wrong, not the file's whole column).

    >>> unparseable_reason({}, "Close Date").startswith("unparseable timestamp; expected ISO")
    True
    >>> unparseable_reason({"Close Date": TimeFormat("%d/%m/%Y", "day/month/year, date only")},
    ...                    "Close Date")  # doctest: +NORMALIZE_WHITESPACE
    "unparseable timestamp; does not fit the format detected for this column, '%d/%m/%Y'
    (day/month/year, date only), nor ISO-8601; declare the format with --timestamp-format"
    """
    fitted = formats.get(column)
    if fitted is None:
        return f"unparseable timestamp; {TIMESTAMP_HINT}"
    return (f"unparseable timestamp; does not fit the format detected for this column, "
            f"{fitted.pattern!r} ({fitted.description}), nor ISO-8601; declare the format with "
            "--timestamp-format")


def time_format_note(file: str, formats: Mapping[str, TimeFormat]) -> str:
    """``t.csv: timestamp read as '%m/%d/%Y %I:%M %p' (month/day/year, 12-hour clock)``."""
    by_format: dict[TimeFormat, list[str]] = {}
    for column, fitted in formats.items():
        by_format.setdefault(fitted, []).append(column)
    return f"{file}: " + "; ".join(
        f"{', '.join(columns)} read as {fitted.pattern!r} ({fitted.description})"
        for fitted, columns in by_format.items()
    )


# -- booleans and statuses --------------------------------------------------------------------
_BOOLEAN_WORDS = {"true": True, "t": True, "yes": True, "y": True, "1": True,
                  "false": False, "f": False, "no": False, "n": False, "0": False}


def boolean(name: str, frame: pl.DataFrame) -> pl.Expr:
    """A column as true/false (``true``/``false``, ``yes``/``no``, ``1``/``0``, any case);
    null when absent, empty or another word (checked by the caller)."""
    if name not in frame.columns:
        return pl.lit(None, dtype=pl.Boolean)
    if frame.schema[name] == pl.Boolean:
        return pl.col(name)
    return text(name, frame).str.to_lowercase().replace_strict(
        _BOOLEAN_WORDS, default=None, return_dtype=pl.Boolean
    )


def _guess_status(value: str) -> str:
    word = re.sub(r"[^a-z]", "", value.lower())
    if "won" in word or "win" in word or "signed" in word or "booked" in word:
        return "won"
    if "lost" in word or "dead" in word or "disqualified" in word or "churn" in word:
        return "lost"
    return "open"


def unknown_statuses_message(file: str, counts: Sequence[tuple[str, int]]) -> str:
    """One message for every distinct unknown status value with its rows, and a ``[statuses]``
    block to paste into the config (each value put under the status its words suggest; open
    when they suggest none: check it before pasting).

    >>> unknown_statuses_message("d.csv", [("Signed", 3), ("Stalled", 1)]).splitlines()[1:]
    ['[statuses]', 'won = ["Signed"]', 'open = ["Stalled"]']
    """
    rows = sum(n for _, n in counts)
    listed = ", ".join(f"{value!r} ({n} row{'s' if n != 1 else ''})" for value, n in counts)
    guessed: dict[str, list[str]] = {"won": [], "lost": [], "open": []}
    for value, _ in counts:
        guessed[_guess_status(value)].append(value)
    lines = [
        f"{status} = [{', '.join(_toml_string(v) for v in values)}]"
        for status, values in guessed.items() if values
    ]
    plural = "s" if len(counts) != 1 else ""
    return (
        f"{file}: {len(counts)} unknown status value{plural} "
        f"({rows} row{'s' if rows != 1 else ''}): {listed}; expected won, lost, open or a CRM "
        "stage; map each in the config (check the guesses):\n[statuses]\n" + "\n".join(lines)
    )


def _toml_string(value: str) -> str:
    """A TOML basic string (escaped, so any cell pastes as valid TOML)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", escaped)
    return f'"{escaped}"'



# -- parsing expressions ---------------------------------------------------------------------
def text(name: str, frame: pl.DataFrame) -> pl.Expr:
    """A column as trimmed text with empty strings as null (null when the column is absent)."""
    if name not in frame.columns:
        return pl.lit(None, dtype=pl.String)
    column = pl.col(name)
    dtype = frame.schema[name]
    if dtype.is_temporal():
        # a typed date needs no parsing: only whether it is there matters (and formatting
        # millions of datetimes as text would cost more than the whole load)
        return pl.when(column.is_null()).then(None).otherwise(pl.lit("(typed value)"))
    if dtype != pl.String:
        column = column.cast(pl.String)
    return column.str.strip_chars().replace("", None)


def instant(name: str, frame: pl.DataFrame, formats: Sequence[str] = ()) -> pl.Expr:
    """A column as a UTC datetime; unparseable text becomes null (checked by the caller).

    Text is tried against ``formats`` (strftime patterns the user declared, e.g.
    ``"%m/%d/%Y %I:%M %p"``; naive ones are UTC; or ``epoch_s``, ``epoch_ms``, ``epoch_us``)
    first, then ISO-8601 with or without a zone
    (``Z``, ``+02:00``, a trailing ``UTC``/``GMT``), date only, and Unix epoch seconds or
    milliseconds. Day-first and month-first dates like 02/03/2025 are ambiguous, so they are
    read only with a declared format.
    """
    if name not in frame.columns:
        return pl.lit(None, dtype=UTC_TIME)
    dtype = frame.schema[name]
    column = pl.col(name)
    if dtype == pl.Date:
        return column.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if isinstance(dtype, pl.Datetime):
        column = column.dt.cast_time_unit("us")
        if dtype.time_zone is None:
            return column.dt.replace_time_zone("UTC")
        return column.dt.convert_time_zone("UTC")
    original = text(name, frame)
    declared = [
        parse_time(original, f) if f in _EPOCH_UNITS
        else original.str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC")
        for f in formats
    ]
    raw = original.str.replace(r"\s*(UTC|GMT)$", "").str.replace(" ", "T")
    epoch = pl.when(original.str.contains(r"^\d{13}$")).then(
        original.cast(pl.Int64, strict=False) * 1_000
    ).when(original.str.contains(r"^\d{10}$")).then(
        original.cast(pl.Int64, strict=False) * 1_000_000
    ).otherwise(None).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return pl.coalesce(
        [
            *declared,
            *[raw.str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC")
              for f in ISO_TIME_FORMATS],
            epoch,
        ]
    )


def minor_units(name: str, frame: pl.DataFrame, decimals: int = 2,
                currency: str | None = None) -> pl.Expr:
    """An amount as integer minor units (``decimals``: the currency's ISO 4217 minor unit, so
    cents for USD, fils for KWD: ``1.234`` KWD is 1234); null if not a number.

    Digits beyond the minor unit are rounded half to even, once, on the exact decimal value
    (:func:`amount_checks` rejects such amounts first where the run reads money). A float
    column (Parquet, NDJSON) is read through its shortest decimal text, so ``1.005`` is treated
    like the text ``1.005`` in a CSV and NaN or infinity becomes null (a reject), never a crash.
    With ``currency`` (the run's), a currency sign or code that marks it is read past
    (:func:`amount_text`); one that marks another currency leaves the amount null, and
    :func:`currency_mark_check` says why.
    """
    dtype = frame.schema[name]
    column = pl.col(name)
    if dtype.is_integer():
        # (too large: rejected by its digits)
        return column.cast(pl.Int64, strict=False) * 10 ** decimals
    raw = amount_text(name, frame, currency)
    valid = raw.str.contains(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
    # a wide scale so the cast itself does not round (rounding twice moved 0.0149999 to 2 cents)
    decimal = raw.cast(pl.Decimal(38, 12), strict=False)
    minor = (decimal * 10 ** decimals).round(0).cast(pl.Int64, strict=False)
    return pl.when(valid).then(minor).otherwise(None)


#: currency signs -> the ISO 4217 currencies written with them. ``$`` is every dollar's and
#: most pesos' sign, so it marks any of them (the run's currency decides which it is);
#: a sign with a country's letters (``US$``, ``CA$``, ``A$``) marks that country's alone.
DOLLAR_SIGN_CURRENCIES = (
    "USD", "CAD", "AUD", "NZD", "SGD", "HKD", "TWD", "BSD", "BBD", "BZD", "BMD", "BND", "FJD",
    "GYD", "JMD", "KYD", "LRD", "NAD", "SBD", "SRD", "TTD", "XCD", "MXN", "ARS", "CLP", "COP",
    "CUP", "DOP", "UYU",
)
CURRENCY_SIGNS: dict[str, tuple[str, ...]] = {
    "$": DOLLAR_SIGN_CURRENCIES,
    "US$": ("USD",), "CA$": ("CAD",), "C$": ("CAD",), "A$": ("AUD",), "AU$": ("AUD",),
    "NZ$": ("NZD",), "HK$": ("HKD",), "S$": ("SGD",), "SG$": ("SGD",), "NT$": ("TWD",),
    "MX$": ("MXN",), "R$": ("BRL",),
    "€": ("EUR",), "£": ("GBP", "GIP", "FKP", "SHP"), "¥": ("JPY", "CNY"), "₹": ("INR",),
    "₩": ("KRW",), "₽": ("RUB",), "₪": ("ILS",), "₺": ("TRY",), "₫": ("VND",), "₱": ("PHP",),
    "₦": ("NGN",), "₴": ("UAH",), "฿": ("THB",), "₡": ("CRC",), "₸": ("KZT",),
}
#: a currency sign, or an ISO 4217 code (three capital letters), as a regular expression
_MARK = "|".join([*(re.escape(sign) for sign in sorted(CURRENCY_SIGNS, key=len, reverse=True)),
                  "[A-Z]{3}"])
#: a mark before the number (after a sign, before one), or after it
_MARK_BEFORE = rf"^([+-]?)\s*({_MARK})\s*([+-]?\s*[0-9.])"
_MARK_AFTER = rf"([0-9.])\s*({_MARK})$"


def currency_mark(name: str, frame: pl.DataFrame) -> pl.Expr:
    """The currency sign or ISO 4217 code written with an amount (``$12,500.00``,
    ``USD 15000``, ``15000 USD``, ``9.000 €``), or null when there is none (a number column
    has none)."""
    if name not in frame.columns or frame.schema[name] != pl.String:
        return pl.lit(None, dtype=pl.String)
    cell = text(name, frame)
    return pl.coalesce(cell.str.extract(_MARK_BEFORE, 2), cell.str.extract(_MARK_AFTER, 2))


def marks_of(currency: str) -> list[str]:
    """The signs and the code that mark ``currency`` (``$``, ``US$`` and ``USD`` for USD)."""
    return [currency, *(sign for sign, codes in CURRENCY_SIGNS.items() if currency in codes)]


def currency_mark_check(mark: pl.Expr, shown: pl.Expr, currency: str,
                        column: str = "amount") -> tuple[pl.Expr, str, pl.Expr, pl.Expr]:
    """The check that rejects an amount whose currency sign or code (``mark``:
    :func:`currency_mark`) marks another currency than the run's, with a reason naming both
    (``amount is in EUR ('€'), not the run's currency USD``); ``$`` marks any dollar or peso
    (:data:`DOLLAR_SIGN_CURRENCIES`), so it is another currency only to a run in neither."""
    advice = f", not the run's currency {currency}; convert amounts first or set [money] currency"
    reasons = {}
    for sign, codes in CURRENCY_SIGNS.items():
        what = (f"{' or '.join(codes)} ({sign!r})" if len(codes) <= 4
                else f"a currency written {sign!r} ({', '.join(codes[:3])} and others)")
        reasons[sign] = f"amount is in {what}{advice}"
    reason = pl.when(mark.is_in(list(CURRENCY_SIGNS))).then(
        mark.replace_strict(reasons, default=None, return_dtype=pl.String)
    ).otherwise(pl.format("amount is in {}" + advice, mark))
    return (mark.is_not_null() & ~mark.is_in(marks_of(currency)), column, reason, shown)


def amount_text(name: str, frame: pl.DataFrame, currency: str | None = None) -> pl.Expr:
    """An amount's text as :func:`minor_units` reads it: trimmed, without spaces, underscores
    or thousands separators (only in the unambiguous form 1,234,567.89); a number column as
    its shortest decimal text. With ``currency`` (the run's), without a sign or ISO code that
    marks it (``$``, ``US$`` or ``USD``, before or after the number: :func:`marks_of`); a mark
    of another currency stays, so the amount is not a number. Without, a leading ``$``, ``€``
    or ``£`` is dropped whatever the currency."""
    if name not in frame.columns:
        return pl.lit(None, dtype=pl.String)
    raw = text(name, frame)
    if currency is None:
        raw = raw.str.replace(r"^[$€£]", "")
    elif frame.schema[name] == pl.String:
        own = "|".join(re.escape(mark) for mark in
                       sorted(marks_of(currency.upper()), key=len, reverse=True))
        raw = (raw.str.replace(rf"^([+-]?)\s*(?:{own})\s*([+-]?\s*[0-9.])", "${1}${2}")
               .str.replace(rf"([0-9.])\s*(?:{own})$", "${1}"))
    raw = raw.str.replace_all(r"[ _]", "")
    return pl.when(raw.str.contains(r"^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$")).then(
        raw.str.replace_all(",", "")
    ).otherwise(raw)


#: the most digits an amount may have before the decimal point: the largest amount is below
#: 10**13, so the minor units of a million such amounts still sum inside a 64-bit integer
MAX_AMOUNT_DIGITS = 13


def amount_checks(clean: pl.Expr, shown: pl.Expr, currency: str,
                  column: str = "amount") -> list[tuple[pl.Expr, str, str, pl.Expr]]:
    """Checks that reject an amount the run cannot hold exactly (``clean``: its
    :func:`amount_text`; ``shown``: the cell as the reject shows it), before the "not a
    number" check: exponent notation (``1e30``, a spreadsheet's ``1.23457E+11`` has lost
    digits), more than :data:`MAX_AMOUNT_DIGITS` digits before the point, and more decimals
    than ``currency``'s ISO 4217 minor unit (trailing zeros do not count): the run holds money
    in that minor unit exactly (three decimals for KWD, none for JPY)."""
    minor = currency_decimals(currency)
    decimals = clean.str.extract(r"^[+-]?\d*\.(\d*[1-9])0*$", 1).str.len_chars().fill_null(0)
    places = "no decimals" if minor == 0 else f"{minor} decimals"
    too_fine = f"amount has more decimals than {currency}'s minor unit ({places}, ISO 4217)"
    return [
        (clean.str.contains(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$").fill_null(False), column,
         "amount in exponent notation, which can hide lost digits; expected a plain decimal "
         "like 48250.00", shown),
        (clean.str.contains(rf"^[+-]?0*\d{{{MAX_AMOUNT_DIGITS + 1},}}(\.\d*)?$").fill_null(False),
         column, f"amount too large; expected at most {MAX_AMOUNT_DIGITS} digits before the "
         "decimal point", shown),
        (decimals > minor, column, too_fine, shown),
    ]


#: the earliest instant a timestamp may hold: earlier ones are typing or export errors
EARLIEST_TIME = datetime(1990, 1, 1, tzinfo=UTC)
#: how far past the latest deal event (and past the moment of the run) a timestamp may lie
HORIZON = timedelta(days=365)


def _now() -> datetime:
    return datetime.now(UTC)


def time_checks(moment: str, shown: str, column: str,
                now: datetime | None = None) -> list[tuple[pl.Expr, str, str, pl.Expr]]:
    """Checks that reject a parsed timestamp outside the sane horizon: before 1990, or more
    than a year after ``now`` (the clock: no CRM records an event years ahead). A timestamp
    beyond it would become the run's as-of date and change every open deal's credit; touches
    are checked against the latest deal event as well (:func:`beyond_horizon`)."""
    latest = (now or _now()) + HORIZON
    return [
        (pl.col(moment) < EARLIEST_TIME, column,
         "timestamp before 1990-01-01, outside the run's horizon", pl.col(shown)),
        (pl.col(moment) > latest, column,
         "timestamp more than one year in the future, outside the run's horizon", pl.col(shown)),
    ]


def latest_deal_event(deals: pl.DataFrame) -> datetime | None:
    """The latest ``created_at`` or ``closed_at`` of validated deals (None without deals)."""
    latest = deals.select(pl.max_horizontal(pl.col("created_at").max(),
                                             pl.col("closed_at").max())).item()
    return latest


def beyond_horizon(touchpoints: pl.DataFrame, latest: datetime | None,
                   file: str, column: str = "timestamp") -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(kept, rejects)``: validated touchpoints split at one :data:`HORIZON` (a year) after
    ``latest`` (the latest deal event, :func:`latest_deal_event`), so one touch dated 2200
    never moves the run's as-of date. Nothing is split off without deals. ``column`` is the
    file's name of the timestamp column, which the rejects give."""
    if latest is None:
        return touchpoints, pl.DataFrame(schema=REJECT_SCHEMA)
    limit = latest + HORIZON
    late = pl.col("timestamp") > limit
    if not touchpoints.select(late.any()).item():
        return touchpoints, pl.DataFrame(schema=REJECT_SCHEMA)
    reason = (f"timestamp more than one year after the latest deal event "
              f"({latest:%Y-%m-%d}), outside the run's horizon")
    rejects = touchpoints.filter(late).select(
        pl.lit(file).alias("file"), pl.lit("touchpoints").alias("input"),
        pl.col(ROW).alias("row"), pl.lit(column).alias("column"),
        pl.lit(reason).alias("reason"),
        pl.col("timestamp").dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ").alias("value"),
        pl.lit(None, pl.String).alias("key"),
    ).cast(dict(REJECT_SCHEMA))  # type: ignore[arg-type]
    kept = touchpoints.filter(~late)
    rechunk_in_place(kept)
    return kept, rejects


def first_failure(checks: Sequence[tuple[pl.Expr, str, str | pl.Expr, pl.Expr]],
                  names: tuple[str, str, str] = (_REASON, _COLUMN, _VALUE)) -> list[pl.Expr]:
    """Columns ``_reason``, ``_column``, ``_value`` (or ``names``) for the first failing check
    of each row; a check's message is text, or an expression when it differs by row."""
    reason = column = value = None
    for failed, column_name, message, shown in reversed(checks):
        said = message if isinstance(message, pl.Expr) else pl.lit(message)
        reason = pl.when(failed).then(said).otherwise(
            reason if reason is not None else pl.lit(None, pl.String)
        )
        column = pl.when(failed).then(pl.lit(column_name)).otherwise(
            column if column is not None else pl.lit(None, pl.String)
        )
        value = pl.when(failed).then(shown.cast(pl.String)).otherwise(
            value if value is not None else pl.lit(None, pl.String)
        )
    assert reason is not None and column is not None and value is not None
    return [reason.alias(names[0]), column.alias(names[1]), value.alias(names[2])]


def blank_row(*cells: str) -> pl.Expr:
    """``_empty``: every cell of the row is blank (a trailing ``,,,`` line of a CSV export),
    judged on the parsed text columns (null where the file's cell was empty)."""
    return pl.all_horizontal([pl.col(c).is_null() for c in cells]).alias("_empty")


EMPTY_ROW_CHECK = (pl.col("_empty"), "", "empty row", pl.lit(None, pl.String))


def split_rejects(frame: pl.DataFrame, file: str, input_name: str,
                  names: Mapping[str, str] | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a checked frame into (good rows, rejects); ``names`` (canonical -> the file's
    column) give each reject's column as the file's header names it."""
    bad = frame.filter(pl.col(_REASON).is_not_null())
    column = pl.col(_COLUMN)
    if names:
        column = column.replace(dict(names))
    rejects = bad.select(
        pl.lit(file).alias("file"),
        pl.lit(input_name).alias("input"),
        pl.col(ROW).alias("row"),
        column.alias("column"),
        pl.col(_REASON).alias("reason"),
        pl.col(_VALUE).alias("value"),
        pl.lit(None, pl.String).alias("key"),  # a database source's: db.relabel_rejects
    )
    # (no copy of the frame when nothing was rejected)
    good = frame.filter(pl.col(_REASON).is_null()) if bad.height else frame
    good = good.drop(_REASON, _COLUMN, _VALUE)
    return good, rejects.cast(dict(REJECT_SCHEMA))  # type: ignore[arg-type]


UTM_COLUMNS = ("utm_source", "utm_medium", "utm_campaign")


def distinct_utm(frame: pl.DataFrame) -> tuple[pl.DataFrame | None, set[str]]:
    """The distinct (utm source, medium, campaign) of a file whose three columns are text, and
    which of them need no trimming (no distinct value changes under :func:`text`); (None, no
    column) otherwise. (Collected by the streaming engine, which never holds the three
    columns' copies at once.)"""
    if any(frame.schema.get(c) != pl.String for c in UTM_COLUMNS):
        return None, set()
    distinct = frame.lazy().select(UTM_COLUMNS).unique().collect(engine="streaming")
    clean = {c for c in UTM_COLUMNS
             if distinct.select(text(c, distinct)).to_series().equals(distinct.get_column(c),
                                                                      check_names=False)}
    return distinct, clean


def utm_key() -> pl.Expr:
    """One 64-bit key of a row's utm source, medium and campaign: the three columns' own
    hashes mixed (no struct is built). Only used where the distinct combinations are checked
    to key apart: the key is exact only then."""
    return (pl.col("utm_source").hash(seed=7) ^ (pl.col("utm_medium").hash(seed=8) * 3)
            ^ (pl.col("campaign").hash(seed=9) * 5))




def reason_counts(rejects: pl.DataFrame) -> dict[str, int]:
    counts = rejects.group_by("reason").len().sort("reason")
    return {str(r): int(n) for r, n in counts.iter_rows()}


def flag_duplicates(checked: pl.DataFrame, key: str, content: list[str],
                    reason: str) -> pl.DataFrame:
    """Add ``_copy`` and reject conflicting duplicates of ``key`` in a checked frame.

    Only rows that passed every other check take part, so a rejected row never hides a good one.
    Exact copies are counted as deduplicated (the one with the lowest row number is kept); rows
    sharing a key with different content are all rejected, since keeping either would be a guess.
    """
    ok = pl.col(_REASON).is_null() & pl.col(key).is_not_null()
    # only rows whose key repeats can be copies or conflicts: compare content on those alone
    # rows whose key's hash repeats are a superset of them (equal keys hash alike), and
    # comparing 64-bit hashes is much cheaper than comparing text; the keys decide among those
    hashed = checked.select(pl.when(ok).then(pl.col(key).hash(seed=5))).to_series()
    # equal hashes are neighbours once sorted (measured against is_duplicated: bench/RESULTS.md)
    values = hashed.drop_nulls().sort()
    repeats = values.filter(values == values.shift(1)).unique()
    if not repeats.len():  # no key repeats (the usual case): nothing is a copy or a conflict
        return checked.with_columns(pl.lit(False).alias("_copy"))
    repeated = checked.filter(hashed.is_in(repeats.implode()))
    repeated = repeated.filter(pl.col(key).is_duplicated())
    repeated = repeated.with_columns(
        (pl.struct(content).n_unique().over(key) > 1).alias("_conflict")
    ).with_columns(
        (~pl.col("_conflict") & (pl.col(ROW) != pl.col(ROW).min().over(key))).alias("_copy")
    )
    conflicting_rows = repeated.filter(pl.col("_conflict")).get_column(ROW)
    copy_rows = repeated.filter(pl.col("_copy")).get_column(ROW)
    flagged = checked.with_columns(
        pl.col(ROW).is_in(copy_rows.implode()).alias("_copy")
        if copy_rows.len() else pl.lit(False).alias("_copy"),
        pl.col(ROW).is_in(conflicting_rows.implode()).alias("_conflict")
        if conflicting_rows.len() else pl.lit(False).alias("_conflict"),
    )
    conflict = pl.col("_conflict")
    return flagged.with_columns(
        pl.when(conflict).then(pl.lit(reason)).otherwise(pl.col(_REASON)).alias(_REASON),
        pl.when(conflict).then(pl.lit(key)).otherwise(pl.col(_COLUMN)).alias(_COLUMN),
        pl.when(conflict).then(pl.col(key)).otherwise(pl.col(_VALUE)).alias(_VALUE),
    ).drop("_conflict")


# -- the three inputs ------------------------------------------------------------------------
def validate_contacts(source: TableSource, mapping: dict[str, str] | None = None, *,
                      file: str | None = None, time_formats: Sequence[str] = (),
                      infer_time_formats: bool = True,
                      prefer_time_formats: Sequence[str] = (),
                      preset: Preset | None = None,
                      encoding: str | None = None) -> Validated:
    """Check a contacts table (a path, or a frame as read); see :class:`Validated`.
    ``encoding`` names a text file's encoding when it is not UTF-8 (see
    :func:`attribution.reading.read_file`)."""
    named = _named(source, file, "contacts", mapping,
                   [c for c, req in CONTACT_COLUMNS.items() if req], preset=preset,
                   encoding=encoding)
    frame, file, mapping = named.frame, named.file, named.mapping
    lead_column = _file_column(mapping, "lead_created_at")
    early = sniff_times(frame, [("lead_created_at", lead_column)], time_formats, file,
                        infer_time_formats, prefer_time_formats)
    parsed = frame.select(
        ROW,
        text("contact_id", frame).alias("contact_id"),
        text("account_id", frame).alias("account_id"),
        instant("lead_created_at", frame, _formats(time_formats, early, "lead_created_at")
                ).alias("lead_created_at"),
        text("lead_created_at", frame).alias("_lead_text"),
        *_answer_column(frame),
    ).with_columns(blank_row("contact_id", "account_id", "_lead_text"))
    parsed, found = infer_times(
        parsed, [("lead_created_at", "_lead_text", lead_column)], file, infer_time_formats,
        prefer_time_formats, early, time_formats,
    )
    # the lead-created date is optional: one that cannot be used is left blank and the contact
    # kept (its touches still join its account), and the cell is listed with the rejects
    parsed = parsed.with_columns(first_failure(
        [
            (
                pl.col("_lead_text").is_not_null() & pl.col("lead_created_at").is_null(),
                "lead_created_at", unparseable_reason(found, lead_column), pl.col("_lead_text"),
            ),
            *time_checks("lead_created_at", "_lead_text", "lead_created_at"),
        ],
        names=("_lead_reason", "_lead_column", "_lead_value"),
    )).with_columns(
        pl.when(pl.col("_lead_reason").is_null()).then(pl.col("lead_created_at"))
        .alias("lead_created_at")
    )
    checked = parsed.with_columns(
        first_failure(
            [
                EMPTY_ROW_CHECK,
                (pl.col("contact_id").is_null(), "contact_id", "missing contact_id",
                 pl.col("contact_id")),
                (pl.col("account_id").is_null(), "account_id", "missing account_id",
                 pl.col("account_id")),
            ]
        )
    )
    checked = flag_duplicates(
        checked, "contact_id",
        ["contact_id", "account_id", "lead_created_at", *_answer_name(frame)],
        "duplicate contact_id with different values on another row",
    )
    good, rejects = split_rejects(checked, file, "contacts", named.names)
    rejected_ids = (checked.filter(pl.col(_REASON).is_not_null()
                                   & pl.col("contact_id").is_not_null())
                    .select("contact_id", pl.col(_REASON).alias("reason")))
    copies = int(good["_copy"].sum())
    good = good.filter(~pl.col("_copy")) if copies else good
    blanked = blanked_cells(good, file, "contacts", named.names, "_lead")
    good = good.drop("_copy", "_lead_text", "_empty", "_lead_reason", "_lead_column",
                     "_lead_value")
    notes = _notes(file, found)
    if blanked.height:
        notes.append(blanked_note(blanked, file, lead_column, "each contact is kept with its "
                                  "touches, without a lead-created date"))
    rejected = pl.concat([named.repeated, rejects])
    accounting = Accounting("contacts", file, read=named.read, used=good.height,
                            deduplicated=copies, rejected=reason_counts(rejected),
                            blanked=blanked.height)
    # one chunk per column: touches look contacts up by row, and a gather over a file's many
    # row groups is slow
    return Validated(good.rechunk(), pl.concat([rejected, blanked]).sort("row"), accounting,
                     time_formats=found, notes=notes, columns=named.names,
                     rejected_ids=rejected_ids)


#: how a cell that was left blank (its row kept) starts its reason in the rejects
BLANKED = "cell left blank, the row kept: "
#: how many of a column's blanked cells a note names
BLANKED_LISTED = 3


def blanked_cells(good: pl.DataFrame, file: str, input_name: str, names: Mapping[str, str],
                  prefix: str) -> pl.DataFrame:
    """The rejects (:data:`~attribution.schema.REJECT_SCHEMA`) of the cells of used rows that
    were left blank because they could not be used: ``{prefix}_reason``, ``_column`` and
    ``_value`` say which, and why (the reason starts with :data:`BLANKED`)."""
    reason, column = pl.col(f"{prefix}_reason"), pl.col(f"{prefix}_column")
    return good.filter(reason.is_not_null()).select(
        pl.lit(file).alias("file"), pl.lit(input_name).alias("input"), pl.col(ROW).alias("row"),
        column.replace(dict(names)) if names else column,
        (pl.lit(BLANKED) + reason).alias("reason"),
        pl.col(f"{prefix}_value").alias("value"), pl.lit(None, pl.String).alias("key"),
    ).rename({f"{prefix}_column": "column"}).cast(dict(REJECT_SCHEMA))  # type: ignore[arg-type]


def blanked_note(blanked: pl.DataFrame, file: str, column: str, kept: str) -> str:
    """The note for cells left blank: how many, the first few rows and values, and that the
    rejects list them."""
    shown = ", ".join(f"row {row:,}: {quote_input(str(value), 40)}" for row, value in
                      blanked.head(BLANKED_LISTED).select("row", "value").iter_rows())
    more = (f" and {blanked.height - BLANKED_LISTED:,} more" if blanked.height > BLANKED_LISTED
            else "")
    plural = "s" if blanked.height != 1 else ""
    return (f"{file}: {blanked.height:,} {column} value{plural} could not be used and "
            f"{'are' if plural else 'is'} left blank ({shown}{more}): {kept}; the rejects "
            "list each cell and why")


def validate_touchpoints(source: TableSource, rules: ChannelRules, contacts: pl.DataFrame | None,
                         mapping: dict[str, str] | None = None, *, file: str | None = None,
                         time_formats: Sequence[str] = (),
                         infer_time_formats: bool = True,
                         prefer_time_formats: Sequence[str] = (),
                         preset: Preset | None = None,
                         encoding: str | None = None,
                         unify: bool = True,
                         rejected_contacts: pl.DataFrame | None = None) -> Validated:
    """Check a touchpoints table (a path, or a frame as read) and give each row its channel and
    group; ``contacts`` (validated) give rows without an account their contact's account.

    Channel names keep the file's spelling; spellings of one name that differ only in case or
    separators (:func:`~attribution.channels.channel_key`) become the file's most frequent one
    (:func:`~attribution.channels.unify_spellings`); ``unify=False`` leaves that to the caller
    (a batch of a file must not choose the file's spelling alone).

    ``rejected_contacts`` (:attr:`Validated.rejected_ids` of the contacts) name the contacts
    whose rows were rejected: a touch of one without an account of its own is rejected
    saying so, with the contact's reason, rather than as an unknown contact.
    """
    named = _named(source, file, "touchpoints", mapping, ["timestamp"], preset=preset,
                   encoding=encoding)
    frame, file, mapping = named.frame, named.file, named.mapping
    del source  # the frame is all that is used (a frame given is freed with it below)
    has_channel_info = {"channel", "utm_source", "utm_medium"} & set(frame.columns)
    if not has_channel_info:
        raise ColumnNotFoundError.from_missing(
            file, ["channel"], [c for c in frame.columns if c != ROW],
            hint="touchpoints need 'channel' or 'utm_source'/'utm_medium'",
        )
    if not {"contact_id", "account_id"} & set(frame.columns):
        raise ColumnNotFoundError.from_missing(
            file, ["account_id"], [c for c in frame.columns if c != ROW],
            hint="touchpoints need 'contact_id' and/or 'account_id'",
        )
    # the utm columns' distinct combinations, read first when all three are text: they give
    # the channels below, and when no distinct value has blanks to trim (the usual export) the
    # columns are used as they are, not trimmed row by row
    raw_utm, clean = distinct_utm(frame)
    time_column = _file_column(mapping, "timestamp")
    early = sniff_times(frame, [("timestamp", time_column)], time_formats, file,
                        infer_time_formats, prefer_time_formats)
    utm_text = {c: pl.col(c) if c in clean else text(c, frame) for c in UTM_COLUMNS}
    parsed = frame.select(
        ROW,
        text("touchpoint_id", frame).alias("touchpoint_id"),
        instant("timestamp", frame, _formats(time_formats, early, "timestamp")).alias("timestamp"),
        text("timestamp", frame).alias("_time_text"),
        text("contact_id", frame).alias("contact_id"),
        text("account_id", frame).alias("_row_account"),
        text("channel", frame).alias("_channel"),
        utm_text["utm_source"].alias("utm_source"),
        utm_text["utm_medium"].alias("utm_medium"),
        utm_text["utm_campaign"].alias("campaign"),
        text("touch_type", frame).alias("touch_type"),
    ).with_columns(blank_row("touchpoint_id", "_time_text", "contact_id", "_row_account",
                             "_channel", "utm_source", "utm_medium", "campaign", "touch_type"))
    rows_read = named.read
    named.frame = pl.DataFrame()  # (this reference too: the frame is freed below)
    del frame  # the parsed columns replace the raw ones: free them before the joins
    # "Direct" and "direct" in one file are one channel, under the file's usual spelling
    # (before the duplicate check: two rows differing only in that are copies)
    if unify:
        parsed = parsed.with_columns(unify_spellings(parsed.get_column("_channel")))
    parsed, found = infer_times(
        parsed, [("timestamp", "_time_text", time_column)], file, infer_time_formats,
        prefer_time_formats, early, time_formats,
    )
    contact_account: pl.Series | pl.Expr = pl.lit(None, pl.String).alias("_contact_account")
    row_account = parsed.get_column("_row_account")
    if contacts is not None and row_account.null_count():
        # looked up on the key column alone (joining the wide frame would copy every column),
        # through checked 64-bit hashes (validated contact ids are distinct), for the rows
        # without an account of their own only (the others never read it)
        contact = parsed.get_column("contact_id")
        table = contacts.get_column("contact_id")
        # some rows carry their account: only the others are looked up
        if row_account.null_count() < row_account.len():
            lacking = row_account.is_null().arg_true()
            rows = pl.Series([None], dtype=pl.UInt32).new_from_index(0, contact.len()).scatter(
                lacking, lookup(contact.gather(lacking), table))
        else:
            rows = lookup(contact, table)
        contact_account = contacts.get_column("account_id").gather(rows).alias("_contact_account")
    parsed = parsed.with_columns(contact_account)
    parsed = parsed.with_columns(
        pl.coalesce("_row_account", "_contact_account").alias("account_id")
    )
    content = ["touchpoint_id", "timestamp", "contact_id", "account_id", "_channel",
               "utm_source", "utm_medium", "campaign", "touch_type"]
    unknown_contact = (
        "unknown contact: not in the contacts file, and the row has no account_id"
        if contacts is not None
        else "no account_id, and no contacts file to find the contact's account"
    )
    # a touch of a contact whose row was rejected says so, with the contact's reason
    contact_rejected = pl.lit(None, pl.String)
    if contacts is not None and rejected_contacts is not None and rejected_contacts.height:
        ids = rejected_contacts.unique("contact_id", keep="first", maintain_order=True)
        contact_rejected = pl.col("contact_id").replace_strict(
            ids.get_column("contact_id"), ids.get_column("reason"), default=None,
            return_dtype=pl.String)
    checked = parsed.with_columns(
        first_failure(
            [
                EMPTY_ROW_CHECK,
                (pl.col("_time_text").is_null(), "timestamp", "missing timestamp",
                 pl.col("_time_text")),
                (
                    pl.col("timestamp").is_null(), "timestamp",
                    unparseable_reason(found, time_column), pl.col("_time_text"),
                ),
                *time_checks("timestamp", "_time_text", "timestamp"),
                (
                    pl.col("contact_id").is_null() & pl.col("_row_account").is_null(),
                    "contact_id", "no contact_id and no account_id", pl.lit(None, pl.String),
                ),
                (
                    pl.col("account_id").is_null() & contact_rejected.is_not_null(),
                    "contact_id",
                    pl.format("contact rejected in the contacts file ({}), and the row has no "
                              "account_id", contact_rejected),
                    pl.col("contact_id"),
                ),
                (pl.col("account_id").is_null(), "contact_id", unknown_contact,
                 pl.col("contact_id")),
                (
                    pl.col("_channel").is_null()
                    & pl.col("utm_source").is_null()
                    & pl.col("utm_medium").is_null(),
                    "channel", "no channel and no utm_source/utm_medium", pl.lit(None, pl.String),
                ),
            ]
        )
    )
    checked = flag_duplicates(
        checked, "touchpoint_id", content,
        "duplicate touchpoint_id with different values on another row",
    )
    good, rejects = split_rejects(checked, file, "touchpoints", named.names)
    if named.repeated.height:
        rejects = pl.concat([named.repeated, rejects]).sort("row")
    del checked, parsed
    copies = int(good["_copy"].sum())
    good = good.filter(~pl.col("_copy")) if copies else good
    # map each distinct utm combination once, then join back: rules cost O(distinct pairs)
    # (collected by the streaming engine: no transient copy of the text columns); every row's
    # combination is one of the file's
    if raw_utm is not None and len(clean) == len(UTM_COLUMNS):
        pairs = raw_utm.rename({"utm_campaign": "campaign"})
    else:
        pairs = good.lazy().select("utm_source", "utm_medium", "campaign").unique().collect(
            engine="streaming")
    pairs = pairs.with_columns(
        rules.channel_of(pl.col("utm_source"), pl.col("utm_medium"), pl.col("campaign"))
        .alias("_rule_channel")
    )
    utm = ["utm_source", "utm_medium", "campaign"]
    # each row's channel looked up by one 64-bit key of the three: exact when the distinct
    # combinations key apart, as every row's combination is one of them (else the text join)
    key = utm_key().alias("utm_key")
    pairs = pairs.with_columns(key)
    on: str | list[str] = "utm_key" if pairs["utm_key"].n_unique() == pairs.height else utm
    groups = {**rules.groups, UNMAPPED_CHANNEL: UNMAPPED_CHANNEL}
    group = (  # a channel's group; (unmapped) is its own
        pl.when(pl.col("channel") == UNMAPPED_CHANNEL).then(pl.lit(UNMAPPED_CHANNEL))
        .otherwise(rules.group_of(pl.col("channel"))).alias("channel_group")
    )
    if on == "utm_key" and good.get_column("_channel").null_count() == good.height:
        # no channel column: each row's channel and group are its combination's, read by the
        # combination's row (a lookup in the few distinct combinations, then two gathers from
        # them, instead of mapping the channel and the group row by row); exact because the
        # combinations key apart (on == "utm_key")
        pairs = pairs.with_columns(pl.col("_rule_channel").alias("channel")).with_columns(group)
        combination = good.select(key).to_series().replace_strict(
            pairs.get_column("utm_key"), pl.int_range(pairs.height, dtype=pl.UInt32, eager=True),
            return_dtype=pl.UInt32,
        )
        good = good.with_columns(pairs.get_column(c).gather(combination)
                                 for c in ("channel", "channel_group"))
        del combination
    else:
        if on == "utm_key":  # a lookup in the few distinct combinations, not a join of the rows
            rule_channel = good.select(key).to_series().replace_strict(
                pairs.get_column("utm_key"), pairs.get_column("_rule_channel"),
                return_dtype=pl.String,
            )
        else:
            rule_channel = good.select(utm).join(pairs, on=utm, how="left", nulls_equal=True,
                                                 maintain_order="left").get_column("_rule_channel")
        good = good.with_columns(rule_channel.alias("_rule_channel"))
        del rule_channel
        good = good.with_columns(pl.coalesce("_channel", "_rule_channel").alias("channel"))
        good = good.with_columns(group)
    unmapped = (
        good.filter(pl.col("channel") == UNMAPPED_CHANNEL)
        .group_by("utm_source", "utm_medium")
        .agg(pl.len().alias("touches"))
        .sort(["touches", "utm_source", "utm_medium"], descending=[True, False, False],
              nulls_last=True)
    )
    good = good.select(
        ROW, "touchpoint_id", "timestamp", "contact_id", "account_id", "channel", "channel_group",
        "touch_type", "campaign", "utm_source", "utm_medium",
    )
    rechunk_in_place(good)
    accounting = Accounting("touchpoints", file, read=rows_read, used=good.height,
                            deduplicated=copies, rejected=reason_counts(rejects))
    return Validated(good, rejects, accounting, unmapped=unmapped, channel_groups=groups,
                     time_formats=found, notes=_notes(file, found), columns=named.names)


def most_common_currency(frame: pl.DataFrame) -> str:
    """The most common ``currency`` of a table as read (upper case; ties by code), USD when
    it has none: the run's currency when none is configured."""
    codes = frame.select(text("currency", frame).str.to_uppercase().alias("currency"))
    seen = codes.filter(pl.col("currency").is_not_null()).group_by("currency").len()
    seen = seen.sort(["len", "currency"], descending=[True, False])
    return str(seen["currency"][0]) if seen.height else "USD"


def validate_deals(source: TableSource, known_accounts: pl.Series | None, currency: str | None,
                   mapping: dict[str, str] | None = None, *, file: str | None = None,
                   time_formats: Sequence[str] = (),
                   statuses: Mapping[str, Sequence[str]] | None = None,
                   infer_time_formats: bool = True,
                   prefer_time_formats: Sequence[str] = (),
                   preset: Preset | None = None,
                   encoding: str | None = None) -> Validated:
    """Check a deals table (a path, or a frame as read); ``known_accounts`` (touched or in
    the contacts) decide which accounts exist; ``currency`` None takes the file's most common
    one (USD if none), returned in :attr:`Validated.currency`.

    The status is read from ``status`` (won, lost, open or a CRM stage name), or from boolean
    ``is_won`` and ``is_closed`` columns (Salesforce's IsWon / IsClosed) when ``is_won`` is
    given: won when is_won, lost when closed and not won, open when not closed; without an
    ``is_closed`` column a deal that is not won takes its ``status`` word.

    Amounts must be whole minor units of the run's currency (ISO 4217: no decimals for JPY),
    plain decimals, and below 10**:data:`MAX_AMOUNT_DIGITS`; others are rejected with their
    reason, never rounded. Money is held in the currency's minor units exactly
    (:func:`~attribution.schema.minor_per_major`: ``1234.567`` KWD is 1234567 fils).
    """
    required = [c for c, req in DEAL_COLUMNS.items() if req]
    named = _named(source, file, "deals", mapping, required, {"status": "is_won"}, preset,
                   encoding)
    frame, file, mapping = named.frame, named.file, named.mapping
    status_key = text("status", frame).str.to_lowercase().str.replace_all(r"[^a-z]", "")
    status_word = status_key.replace_strict(status_words(statuses), default=None,
                                            return_dtype=pl.String)
    flags = "is_won" in frame.columns
    early = sniff_times(
        frame, [(c, _file_column(mapping, c)) for c in ("created_at", "closed_at")],
        time_formats, file, infer_time_formats, prefer_time_formats)
    if flags:
        won, closed_flag = boolean("is_won", frame), boolean("is_closed", frame)
        status_word = (
            pl.when(won).then(pl.lit("won"))
            .when(closed_flag).then(pl.lit("lost"))
            .when(closed_flag.not_()).then(pl.lit("open"))
            .otherwise(status_word)
        )
    if currency is None:
        currency = most_common_currency(frame)
    parsed = frame.select(
        ROW,
        text("deal_id", frame).alias("deal_id"),
        text("account_id", frame).alias("account_id"),
        instant("created_at", frame, _formats(time_formats, early, "created_at")
                ).alias("created_at"),
        text("created_at", frame).alias("_created_text"),
        instant("closed_at", frame, _formats(time_formats, early, "closed_at")
                ).alias("closed_at"),
        text("closed_at", frame).alias("_closed_text"),
        status_word.alias("status"),
        text("status", frame).alias("_status_text"),
        minor_units("amount", frame, currency_decimals(currency), currency)  # money: keep name
        .alias("amount_cents"),
        text("amount", frame).alias("_amount_text"),  # money: keep name
        amount_text("amount", frame, currency).alias("_amount_clean"),  # money: keep name
        currency_mark("amount", frame).alias("_amount_mark"),  # money: keep name
        text("currency", frame).str.to_uppercase().alias("currency"),
        *_answer_column(frame),
        *((boolean("is_won", frame).alias("_won"), text("is_won", frame).alias("_won_text"),
           boolean("is_closed", frame).alias("_closed_flag"),
           text("is_closed", frame).alias("_closed_flag_text")) if flags else ()),
    ).with_columns(blank_row("deal_id", "account_id", "_created_text", "_closed_text",
                             "_status_text", "_amount_text", "currency",
                             *(("_won_text", "_closed_flag_text") if flags else ())))
    times = [("created_at", "_created_text", _file_column(mapping, "created_at")),
             ("closed_at", "_closed_text", _file_column(mapping, "closed_at"))]
    parsed, found = infer_times(parsed, times, file, infer_time_formats, prefer_time_formats,
                                early, time_formats)
    notes = _notes(file, found)
    if not flags:
        unknown = (parsed.filter(pl.col("status").is_null() & pl.col("_status_text").is_not_null())
                   .group_by("_status_text").len()
                   .sort(["len", "_status_text"], descending=[True, False]))
        if unknown.height:
            notes.append(unknown_statuses_message(file, unknown.rows()))
    content = ["deal_id", "account_id", "created_at", "closed_at", "status", "amount_cents",
               "currency",
               *_answer_name(frame)]
    closed = pl.col("status").is_in(["won", "lost"])
    # CRMs leave the amount blank until a deal is sized (HubSpot's Amount, Salesforce's
    # Amount): an open or lost deal without one brings no revenue and counts as 0 pipeline,
    # which a note says; a won deal without one is a rejected row (its revenue is unknown)
    unsized = pl.col("_amount_text").is_null() & pl.col("status").is_in(["open", "lost"])
    parsed = parsed.with_columns(
        pl.when(unsized).then(0).otherwise(pl.col("amount_cents")).alias("amount_cents"),
        pl.when(unsized).then(pl.lit("0")).otherwise(pl.col("_amount_clean"))
        .alias("_amount_clean"),
        unsized.alias("_unsized"),
    )
    account_unknown = pl.lit(False)
    if known_accounts is not None:
        # the known accounts this file names: probing millions of touch accounts into the few
        # deal accounts is much cheaper than finding every distinct touch account
        # (through 64-bit hashes first: the few accounts whose hash some deal account shares
        # hold every match, and the text decides among them)
        in_file = parsed.get_column("account_id").drop_nulls().unique()
        hashes = in_file.hash(seed=5).implode()
        known = (known_accounts.filter(known_accounts.hash(seed=5).is_in(hashes)).to_frame()
                 .lazy().unique().collect(engine="streaming").to_series())
        account_unknown = ~pl.col("account_id").is_in(known.implode())
    checked = parsed.with_columns(
        first_failure(
            [
                EMPTY_ROW_CHECK,
                (pl.col("deal_id").is_null(), "deal_id", "missing deal_id", pl.col("deal_id")),
                (
                    pl.col("deal_id").str.starts_with(ACCOUNT_JOURNEY_PREFIX), "deal_id",
                    (f"deal_id starts with {ACCOUNT_JOURNEY_PREFIX!r}, which names the journeys "
                     "of accounts without a deal; rename the deal"),
                    pl.col("deal_id"),
                ),
                (pl.col("account_id").is_null(), "account_id", "missing account_id",
                 pl.col("account_id")),
                (pl.col("_created_text").is_null(), "created_at", "missing created_at",
                 pl.col("_created_text")),
                (
                    pl.col("created_at").is_null(), "created_at",
                    unparseable_reason(found, _file_column(mapping, "created_at")),
                    pl.col("_created_text"),
                ),
                *time_checks("created_at", "_created_text", "created_at"),
                *(_flag_checks() if flags else _status_checks()),
                (
                    pl.col("_closed_text").is_not_null() & pl.col("closed_at").is_null(),
                    "closed_at", unparseable_reason(found, _file_column(mapping, "closed_at")),
                    pl.col("_closed_text"),
                ),
                *time_checks("closed_at", "_closed_text", "closed_at"),
                (
                    closed & pl.col("closed_at").is_null(), "closed_at",
                    "missing closed_at for a won or lost deal", pl.col("_closed_text"),
                ),
                (
                    pl.col("closed_at") < pl.col("created_at"), "closed_at",
                    "closed_at is before created_at", pl.col("_closed_text"),
                ),
                (  # first: the amount checks read the run currency's minor unit
                    pl.col("currency").is_not_null() & (pl.col("currency") != currency),
                    "currency",
                    (f"currency differs from the run's currency {currency}; convert amounts "
                     "first or set [money] currency"),
                    pl.col("currency"),
                ),
                # an amount whose sign or code marks another currency than the run's
                currency_mark_check(pl.col("_amount_mark"), pl.col("_amount_text"), currency),
                # money: keep names from here (a file's column)
                (pl.col("_amount_text").is_null() & ~pl.col("_unsized"), "amount",
                # money: keep names to here
                 "missing amount", pl.col("_amount_text")),
                *amount_checks(pl.col("_amount_clean"), pl.col("_amount_text"), currency),
                (
                    pl.col("amount_cents").is_null(), "amount",  # money: keep name
                    "amount is not a number; expected a decimal like 48250.00",
                    pl.col("_amount_text"),
                ),
                # money: keep names from here (a reject's column is the file's)
                (pl.col("amount_cents") < 0, "amount", "negative amount",
                 pl.col("_amount_text")),
                # money: keep names to here
                (
                    account_unknown, "account_id",
                    "unknown account: not in the contacts file and never touched",
                    pl.col("account_id"),
                ),
            ]
        )
    )
    checked = flag_duplicates(
        checked, "deal_id", content, "duplicate deal_id with different values on another row"
    )
    good, rejects = split_rejects(checked, file, "deals", named.names)
    if named.repeated.height:
        rejects = pl.concat([named.repeated, rejects]).sort("row")
    unsized_used = good.filter(pl.col("_unsized") & ~pl.col("_copy")).group_by("status").len()
    if unsized_used.height:
        counts = dict(unsized_used.iter_rows())
        listed = " and ".join(f"{counts[s]:,} {s}" for s in ("open", "lost") if s in counts)
        notes.append(f"{file}: {listed} deals have no amount; counted as 0 pipeline (a CRM "
                     "leaves the amount blank until a deal is sized): fill the amount to count "
                     "their pipeline")
    copies = int(good["_copy"].sum())
    good = (good.filter(~pl.col("_copy")) if copies else good).select(
        ROW, "deal_id", "account_id", "created_at",
        pl.when(closed).then(pl.col("closed_at")).otherwise(None).alias("closed_at"),
        "status", "amount_cents", *_answer_name(frame),
    )
    # the money the rejected rows would have brought, where it could be read
    # (rows in another currency are not money of this run: not summed with it)
    lost = checked.filter(pl.col(_REASON).is_not_null() & (pl.col("amount_cents") > 0)
                          & (pl.col("currency").is_null() | (pl.col("currency") == currency)))
    accounting = Accounting("deals", file, read=named.read, used=good.height,
                            deduplicated=copies, rejected=reason_counts(rejects),
                            rejected_amount=int(lost.get_column("amount_cents").sum()),
                            rejected_won_amount=int(
                                lost.filter(pl.col("status") == "won")
                                .get_column("amount_cents").sum()
                            ))
    return Validated(good, rejects, accounting, currency=currency, time_formats=found,
                     notes=notes, columns=named.names)


def _answer_name(frame: pl.DataFrame) -> list[str]:
    """``["self_reported"]`` when the table has a self-reported source column (a "How did
    you hear about us?" answer), else nothing: an export without one gets no such column."""
    return ["self_reported"] if "self_reported" in frame.columns else []


def _answer_column(frame: pl.DataFrame) -> list[pl.Expr]:
    """The self-reported answer as trimmed text (blank: null), kept as data whatever it holds
    (mapped to a channel by the ``[self_reported]`` rules later, never here)."""
    return [text(name, frame).alias(name) for name in _answer_name(frame)]


#: the default largest share of an input's rows that may be rejected (``max_reject_rate``)
MAX_REJECT_RATE = 0.2


def check_reject_rate(accounting: Mapping[str, Accounting] | Sequence[Accounting],
                      max_reject_rate: float) -> None:
    """Raise :class:`RejectRateError` when any input's rejected share of its rows read is above
    ``max_reject_rate`` (a fraction: 0.2 allows a fifth); the message names each such input,
    its rate and the reasons.

    >>> check_reject_rate([Accounting("deals", "d.csv", read=10, used=9,
    ...                               rejected={"missing amount": 1})], 0.2)
    """
    counted = list(accounting.values()) if isinstance(accounting, Mapping) else list(accounting)
    over = [a for a in counted if a.read and a.rejected_total / a.read > max_reject_rate]
    if not over:
        return
    parts = []
    for a in over:
        reasons = ", ".join(f"{reason} ({n})" for reason, n in
                            sorted(a.rejected.items(), key=lambda item: (-item[1], item[0])))
        parts.append(f"{a.path}: {a.rejected_total} of {a.read} {a.input} rows rejected "
                     f"({a.rejected_total / a.read:.1%}): {reasons}")
    error = RejectRateError(
        "; ".join(parts) + f"; above the maximum reject rate {max_reject_rate:.0%} "
        "(fix the rows, or raise it with --max-reject-rate or [inputs] max_reject_rate)"
    )
    error.accounting = counted
    raise error


def _status_checks() -> list[tuple[pl.Expr, str, str, pl.Expr]]:
    return [
        (pl.col("_status_text").is_null(), "status", "missing status", pl.col("_status_text")),
        (
            pl.col("status").is_null(), "status",
            "unknown status; expected won, lost or open", pl.col("_status_text"),
        ),
    ]


def _flag_checks() -> list[tuple[pl.Expr, str, str, pl.Expr]]:
    """The status checks when booleans (is_won, is_closed) decide the status."""
    return [
        (pl.col("_won_text").is_null(), "is_won", "missing is_won", pl.col("_won_text")),
        (pl.col("_won").is_null(), "is_won", "is_won is not true or false",
         pl.col("_won_text")),
        (pl.col("_closed_flag_text").is_not_null() & pl.col("_closed_flag").is_null(),
         "is_closed", "is_closed is not true or false", pl.col("_closed_flag_text")),
        (pl.col("status").is_null(), "status",
         ("not won, and no is_closed or known status says lost or open; expected won, lost "
          "or open"), pl.col("_status_text")),
    ]


def _file_column(mapping: Mapping[str, str] | None, canonical: str) -> str:
    """The file's own name of a canonical column (for messages; a column a preset filled
    from several of the file's goes by the canonical name)."""
    name = (mapping or {}).get(canonical, canonical)
    return canonical if name.startswith("\x00") else name


__all__ = [
    "BLANKED",
    "CURRENCY_SIGNS",
    "DOLLAR_SIGN_CURRENCIES",
    "EARLIEST_TIME",
    "EMPTY_ROW_CHECK",
    "HEADER_REPEAT",
    "HORIZON",
    "ISO_TIME_FORMATS",
    "MAX_AMOUNT_DIGITS",
    "MAX_REJECT_RATE",
    "STATUS_WORDS",
    "TIMESTAMP_HINT",
    "UTM_COLUMNS",
    "Accounting",
    "TableSource",
    "Validated",
    "amount_checks",
    "amount_text",
    "beyond_horizon",
    "blank_row",
    "blanked_cells",
    "check_reject_rate",
    "currency_mark",
    "currency_mark_check",
    "distinct_utm",
    "first_failure",
    "flag_duplicates",
    "header_repeats",
    "instant",
    "latest_deal_event",
    "marks_of",
    "minor_units",
    "most_common_currency",
    "reason_counts",
    "split_rejects",
    "status_words",
    "text",
    "time_checks",
    "utm_key",
    "validate_contacts",
    "validate_deals",
    "validate_touchpoints",
]
