"""Read and validate the three exports (CSV, Parquet, NDJSON by extension) into :class:`Inputs`.

Nothing is dropped silently: a row is used, counted as a duplicate, or written to the rejects
table with the file, its 1-based data row (the header is row 0), the column and the reason.
A file-level problem (missing column, unreadable file) raises an :class:`InputError` whose
one-line message names the file and what was expected.

This module is the facade: reading lives in :mod:`attribution.reading` (formats, separator
sniffing, digests, column names) and validation in :mod:`attribution.validation`
(``validate_*`` functions returning one :class:`~attribution.validation.Validated`); their
public names are re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from attribution.channels import ChannelRules
from attribution.errors import ColumnNotFoundError, InputError, RejectedRowError, quote_input
from attribution.reading import (
    CSV_EXTENSIONS,
    NDJSON_EXTENSIONS,
    PARQUET_EXTENSIONS,
    ROW,
    InputFile,
    file_digest,
    name_columns,
    read_file,
    read_header,
    read_table,
    sniff_separator,
)
from attribution.schema import UNMAPPED_CHANNEL, UTC_TIME
from attribution.self_reported import Answers, answers_note, read_answers
from attribution.sources import (
    Preset,
    load_preset,
    preset_hint,
    recognised_hint,
    single_touch_note,
    with_channel_groups,
    with_hint,
)
from attribution.validation import (
    MAX_REJECT_RATE,
    TIMESTAMP_HINT,
    Accounting,
    TableSource,
    TimeFormat,
    Validated,
    beyond_horizon,
    check_reject_rate,
    instant,
    latest_deal_event,
    minor_units,
    status_words,
    text,
    validate_contacts,
    validate_deals,
    validate_touchpoints,
)


@dataclass
class Inputs:
    """Validated inputs.

    ``touchpoints`` has ``_row, touchpoint_id, timestamp, contact_id, account_id, channel,
    channel_group, touch_type, campaign, utm_source, utm_medium``; ``deals`` has ``_row, deal_id,
    account_id, created_at, closed_at, status, amount_cents`` (minor units); ``contacts`` has
    ``contact_id, account_id, lead_created_at``.
    """

    touchpoints: pl.DataFrame
    deals: pl.DataFrame
    contacts: pl.DataFrame
    rejects: pl.DataFrame
    accounting: dict[str, Accounting]
    files: list[InputFile]
    currency: str
    unmapped: pl.DataFrame
    channel_groups: dict[str, str]
    #: ``input.column`` -> the timestamp format inferred from its values (say so to the user)
    time_formats: dict[str, TimeFormat] = field(default_factory=dict)
    #: notes for the user: inferred formats, unknown status values with a [statuses] block
    notes: list[str] = field(default_factory=list)
    #: the self-reported answers ("How did you hear about us?") of the contacts and deals,
    #: mapped to channels (:func:`attribution.self_reported.read_answers`); None when neither
    #: export has a ``self_reported`` column
    answers: Answers | None = None



ProgressCallback = Callable[[str], None]


def load_inputs(
    touchpoints: str | Path,
    deals: str | Path,
    contacts: str | Path | None = None,
    *,
    rules: ChannelRules,
    columns: dict[str, dict[str, str]] | None = None,
    currency: str | None = None,
    strict: bool = False,
    progress: ProgressCallback | None = None,
    time_formats: Sequence[str] = (),
    statuses: Mapping[str, Sequence[str]] | None = None,
    infer_time_formats: bool = True,
    source: str | Path | Preset | None = None,
    max_reject_rate: float | None = None,
    encoding: str | Mapping[str, str | None] | None = None,
) -> Inputs:
    """Read and validate the three exports.

    Parameters
    ----------
    touchpoints, deals, contacts
        Paths; the format is picked by extension (.csv/.tsv, .parquet, .ndjson/.jsonl).
    rules
        Channel rules that turn utm values into channels (see :mod:`attribution.channels`).
    columns
        Per input, canonical column -> the file's column.
    strict
        Raise :class:`RejectedRowError` on the first rejected row instead of collecting rejects.
    infer_time_formats
        Read timestamps that are not ISO-8601, epoch or a declared format in the one format
        their values leave (noted in :attr:`Inputs.time_formats` and :attr:`Inputs.notes`);
        :class:`~attribution.errors.AmbiguousTimestampError` when they leave several.
    source
        A source preset (``hubspot``, ``salesforce``, ``marketo_measure``, ``ga4``,
        ``generic``), the path of an edited preset file, or a loaded
        :class:`~attribution.sources.Preset`: its column names, stages, timestamp styles and
        channel groups are used (the config's ``columns`` and ``statuses`` win). See
        :mod:`attribution.sources`.
    max_reject_rate
        Raise :class:`~attribution.errors.RejectRateError` when any input's rejected share of
        its rows is above it (None: no limit; the CLI's default is
        :data:`~attribution.validation.MAX_REJECT_RATE`).
    encoding
        The text files' encoding when it is not UTF-8 (``latin-1``, ``cp1252``), or each
        input's (``{"contacts": "cp1252"}``; an input not named is UTF-8); UTF-16 and
        UTF-32 files are recognised by their byte-order mark. A file that is not valid in its
        encoding raises :class:`~attribution.errors.FileFormatError` with the byte offset.

    An input without data rows raises :class:`InputError`. Touch timestamps more than a year
    after the latest deal event, and any timestamp before 1990 or more than a year ahead of
    the clock, are rejected rows (:func:`~attribution.validation.time_checks`), so they never
    become the run's as-of date.

    A required column that is missing from a file whose header looks like a known export
    says so, and names the preset (``this looks like a Salesforce Opportunity export: add
    --source salesforce``).
    """
    preset = source if isinstance(source, Preset) or source is None else load_preset(source)
    if preset is not None:
        statuses = {status: (*preset.statuses.get(status, ()), *(statuses or {}).get(status, ()))
                    for status in {*preset.statuses, *(statuses or {})}}
        rules = with_channel_groups(rules, preset)
    # the files' digests are taken on a thread while they load (hashlib lets go of the GIL)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="attribution-digest")
    digests = {name: pool.submit(file_digest, path) for name, path in
               (("contacts", contacts), ("touchpoints", touchpoints), ("deals", deals))
               if path is not None}
    try:
        return _load_inputs(
            touchpoints, deals, contacts, digests, rules=rules, columns=columns,
            currency=currency, strict=strict, progress=progress, time_formats=time_formats,
            statuses=statuses, infer_time_formats=infer_time_formats, preset=preset,
            max_reject_rate=max_reject_rate, encoding=encoding,
        )
    finally:  # all done after a load; after an error, the error is not kept waiting on them
        pool.shutdown(wait=False, cancel_futures=True)


def of(encoding: str | Mapping[str, str | None] | None, input_name: str) -> str | None:
    """``input_name``'s encoding of :func:`load_inputs`' ``encoding`` (one, or one per input)."""
    if encoding is None or isinstance(encoding, str):
        return encoding
    return encoding.get(input_name)


def _load_inputs(
    touchpoints: str | Path,
    deals: str | Path,
    contacts: str | Path | None,
    digests: dict[str, Future[str]],
    *,
    rules: ChannelRules,
    columns: dict[str, dict[str, str]] | None,
    currency: str | None,
    strict: bool,
    progress: ProgressCallback | None,
    time_formats: Sequence[str],
    statuses: Mapping[str, Sequence[str]] | None,
    infer_time_formats: bool,
    preset: Preset | None,
    max_reject_rate: float | None,
    encoding: str | Mapping[str, str | None] | None,
) -> Inputs:
    columns = columns or {}
    inferred: dict[str, TimeFormat] = {}
    notes: list[str] = []
    prefer = preset.time_formats if preset is not None else ()

    def validated(path: str | Path, input_name: str,
                  validate: Callable[[TableSource, dict[str, str] | None], Validated]) -> Validated:
        # the validator reads the file itself, so the raw columns go as soon as it is done
        # with them (a frame passed in would be held here until it returns)
        try:
            return validate(Path(path), columns.get(input_name))
        except ColumnNotFoundError as error:
            header = read_header(path, input_name)
            hints = [recognised_hint(header, input_name,
                                     preset.name if preset is not None else None)]
            if preset is not None:
                hints.insert(0, preset_hint(preset, header, input_name))
            raise with_hint(error, "; ".join(h for h in hints if h)) from None

    def note(input_name: str, checked: Validated) -> None:
        if checked.accounting.read == 0:
            raise InputError(no_rows_message(checked.accounting.path, input_name))
        inferred.update({f"{input_name}.{c}": f for c, f in checked.time_formats.items()})
        notes.extend(checked.notes)

    step = progress or (lambda _stage: None)
    files = []
    accounting: dict[str, Accounting] = {}
    all_rejects = []
    contact_frame = rejected_contacts = None
    if contacts is not None:
        step("contacts")
        checked = validated(contacts, "contacts", lambda table, mapping: validate_contacts(
            table, mapping, file=str(Path(contacts)), time_formats=time_formats,
            infer_time_formats=infer_time_formats, prefer_time_formats=prefer, preset=preset,
            encoding=of(encoding, "contacts")))
        note("contacts", checked)
        contact_frame, rejected_contacts = checked.good, checked.rejected_ids
        accounting["contacts"] = checked.accounting
        all_rejects.append(checked.rejects)
        digest = digests["contacts"].result()
        files.append(InputFile("contacts", str(contacts), checked.accounting.read, digest))
    step("touchpoints")
    checked = validated(touchpoints, "touchpoints", lambda table, mapping: validate_touchpoints(
        table, rules, contact_frame, mapping, file=str(Path(touchpoints)),
        time_formats=time_formats, infer_time_formats=infer_time_formats,
        prefer_time_formats=prefer, preset=preset, encoding=of(encoding, "touchpoints"),
        rejected_contacts=rejected_contacts))
    time_column = checked.columns.get("timestamp", "timestamp")
    note("touchpoints", checked)
    touch_frame, unmapped, groups = checked.good, checked.unmapped, checked.channel_groups
    assert unmapped is not None
    accounting["touchpoints"] = checked.accounting
    all_rejects.append(checked.rejects)
    digest = digests["touchpoints"].result()
    files.append(InputFile("touchpoints", str(touchpoints), checked.accounting.read, digest))
    step("deals")
    known = touch_frame.get_column("account_id")
    if contact_frame is not None:
        known = pl.concat([known, contact_frame.get_column("account_id")])
    checked = validated(deals, "deals", lambda table, mapping: validate_deals(
        table, known, currency, mapping, file=str(Path(deals)), time_formats=time_formats,
        statuses=statuses, infer_time_formats=infer_time_formats, prefer_time_formats=prefer,
        preset=preset, encoding=of(encoding, "deals")))
    note("deals", checked)
    deal_frame, currency = checked.good, checked.currency
    assert currency is not None
    accounting["deals"] = checked.accounting
    all_rejects.append(checked.rejects)
    digest = digests["deals"].result()
    files.append(InputFile("deals", str(deals), checked.accounting.read, digest))
    del checked
    # touches dated past the deals' horizon are rejected rather than made the as-of date
    touch_frame, late = beyond_horizon(touch_frame, latest_deal_event(deal_frame),
                                       str(Path(touchpoints)), time_column)
    if late.height:
        all_rejects.append(late)
        counted = accounting["touchpoints"]
        counted.used -= late.height
        for reason, n in late.group_by("reason").len().iter_rows():
            counted.rejected[reason] = counted.rejected.get(reason, 0) + n
        unmapped = unmapped_touches(touch_frame)
    order = {"contacts": 0, "touchpoints": 1, "deals": 2}
    rejects = (
        pl.concat(all_rejects)
        .with_columns(pl.col("input").replace_strict(order, default=3).alias("_order"))
        .sort(["_order", "row"])
        .drop("_order")
    )
    if strict and rejects.height:
        first = rejects.row(0, named=True)
        raise RejectedRowError.from_reject(
            first["file"], first["row"], first["column"], first["reason"], first["value"]
        )
    if max_reject_rate is not None:
        check_reject_rate(accounting, max_reject_rate)
    single = single_touch_note(touch_frame, str(Path(touchpoints)), preset=preset)
    if single is not None:
        notes.append(single)
    ungrouped = ungrouped_note(rules, touch_frame.get_column("channel").unique())
    if ungrouped is not None:
        notes.append(ungrouped)
    answers = read_answers(contact_frame, deal_frame, rules)
    if answers is not None:
        notes.append(answers_note(answers))
        deal_frame = deal_frame.drop("self_reported", strict=False)
    if contact_frame is None:
        contact_frame = pl.DataFrame(
            schema={"contact_id": pl.String, "account_id": pl.String, "lead_created_at": UTC_TIME}
        )
    return Inputs(
        touchpoints=touch_frame,
        deals=deal_frame,
        contacts=contact_frame.select("contact_id", "account_id", "lead_created_at"),
        rejects=rejects,
        accounting=accounting,
        files=files,
        currency=currency,
        unmapped=unmapped,
        channel_groups=groups,
        time_formats=inferred,
        notes=notes,
        answers=answers,
    )


def no_rows_message(file: str, input_name: str) -> str:
    """The one line for an input without data rows (a header-only touchpoints file would
    credit every deal to ``(no touch)``)."""
    return (f"{file}: no data rows in the {input_name} file (a header only, or nothing); "
            "export it again with its rows")


def unmapped_touches(touchpoints: pl.DataFrame) -> pl.DataFrame:
    """The utm pairs no rule maps, with their touches (as
    :attr:`~attribution.validation.Validated.unmapped`), of validated touchpoints."""
    return (
        touchpoints.filter(pl.col("channel") == UNMAPPED_CHANNEL)
        .group_by("utm_source", "utm_medium")
        .agg(pl.len().alias("touches"))
        .sort(["touches", "utm_source", "utm_medium"], descending=[True, False, False],
              nulls_last=True)
    )


#: how many ungrouped channels the note names (the rest are counted)
UNGROUPED_LISTED = 20


def ungrouped_note(rules: ChannelRules, channels: Iterable[str | None]) -> str | None:
    """The note naming the loaded channels no rule groups (they count as group ``other``),
    each quoted (:func:`~attribution.errors.quote_input`); None when every channel is grouped.

    >>> from attribution.channels import load_rules
    >>> ungrouped_note(load_rules(), ["email", "Quokka"]).split("; ")[0]
    "channels no rule groups (they count as group 'other'): 'Quokka'"
    """
    names = rules.ungrouped(channels)
    if not names:
        return None
    listed = ", ".join(quote_input(name, 80) for name in names[:UNGROUPED_LISTED])
    more = (f" and {len(names) - UNGROUPED_LISTED} more" if len(names) > UNGROUPED_LISTED
            else "")
    return (f"channels no rule groups (they count as group 'other'): {listed}{more}; "
            "add them under [groups] in your channel rules")


# -- the tuple-shaped loaders the Spark engine calls (until it takes Validated) --------------
# They infer no timestamp format: Spark validates an export a batch at a time, and one batch's
# values must not choose a format for itself (the whole column's must).
def load_contacts(source: TableSource, mapping: dict[str, str] | None = None, *,
                  time_formats: Sequence[str] = (), preset: Preset | None = None,
                  rejected: list[pl.DataFrame] | None = None,
                  ) -> tuple[pl.DataFrame, pl.DataFrame, Accounting, int]:
    """:func:`validate_contacts` as ``(good, rejects, accounting, rows read)``; the ids of the
    rejected contact rows (:attr:`Validated.rejected_ids`) are added to ``rejected`` when it
    is given, for :func:`load_touchpoints`."""
    checked = validate_contacts(source, mapping, time_formats=time_formats,
                                infer_time_formats=False, preset=preset)
    if rejected is not None and checked.rejected_ids is not None and checked.rejected_ids.height:
        rejected.append(checked.rejected_ids)
    return checked.good, checked.rejects, checked.accounting, checked.accounting.read


def load_touchpoints(
    source: TableSource, rules: ChannelRules, contacts: pl.DataFrame | None,
    mapping: dict[str, str] | None = None, *, time_formats: Sequence[str] = (),
    preset: Preset | None = None, rejected_contacts: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, Accounting, pl.DataFrame, dict[str, str]]:
    """:func:`validate_touchpoints` as ``(good, rejects, accounting, unmapped, groups)``."""
    # a batch does not unify the spellings of a channel: its own counts would choose them
    checked = validate_touchpoints(source, rules, contacts, mapping, time_formats=time_formats,
                                   infer_time_formats=False, preset=preset, unify=False,
                                   rejected_contacts=rejected_contacts)
    assert checked.unmapped is not None
    return (checked.good, checked.rejects, checked.accounting, checked.unmapped,
            checked.channel_groups)


def load_deals(
    source: TableSource, known_accounts: pl.Series | None, currency: str | None,
    mapping: dict[str, str] | None = None, *, time_formats: Sequence[str] = (),
    statuses: Mapping[str, Sequence[str]] | None = None, preset: Preset | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, Accounting, str]:
    """:func:`validate_deals` as ``(good, rejects, accounting, currency)``."""
    checked = validate_deals(source, known_accounts, currency, mapping,
                             time_formats=time_formats, statuses=statuses,
                             infer_time_formats=False, preset=preset)
    assert checked.currency is not None
    return checked.good, checked.rejects, checked.accounting, checked.currency


__all__ = [
    "CSV_EXTENSIONS",
    "MAX_REJECT_RATE",
    "NDJSON_EXTENSIONS",
    "PARQUET_EXTENSIONS",
    "ROW",
    "TIMESTAMP_HINT",
    "Accounting",
    "InputError",
    "InputFile",
    "Inputs",
    "Validated",
    "check_reject_rate",
    "file_digest",
    "instant",
    "load_contacts",
    "load_deals",
    "load_inputs",
    "load_touchpoints",
    "minor_units",
    "name_columns",
    "no_rows_message",
    "read_file",
    "read_table",
    "sniff_separator",
    "status_words",
    "text",
    "ungrouped_note",
    "unmapped_touches",
    "validate_contacts",
    "validate_deals",
    "validate_touchpoints",
]
