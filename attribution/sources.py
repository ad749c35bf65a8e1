"""Source presets: how HubSpot, Salesforce, Marketo Measure and GA4 exports are laid out.

A preset is a readable TOML file (``attribution/presets/<name>.toml``; ``attribution init
--source NAME`` writes a copy to edit). It names, per input, the columns that system's exports
use for each canonical column, its default deal stages, its usual timestamp styles, its
channel vocabulary with groups, and the headers that recognise its exports. Loading through a
preset only renames and fills columns before the usual validation, so every check and every
reject stays the generic loader's.

Column rule: for each canonical column the preset lists the export's names in order; the first
present in the file is used, and when several are present a row takes the first of them that
is not empty (a Salesforce campaign member is a contact, or a lead converted to one). A column
the config maps in ``[columns.<input>]`` wins over the preset's. With a
``multi_value_separator`` (HubSpot's association cells, ``123;456``), an id cell that lists
several records uses the first listed.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

from attribution.channels import ChannelRules, channel_key
from attribution.errors import ColumnNotFoundError, ConfigError
from attribution.schema import INPUT_COLUMNS

PRESET_NAMES = ("generic", "hubspot", "salesforce", "marketo_measure", "ga4")
_INPUTS = ("touchpoints", "deals", "contacts")
#: id columns whose cells may list several records
_ID_COLUMNS = ("account_id", "contact_id")
#: prefix of the columns a preset builds from several of the export's (never a user's name)
_FILLED = "\x00preset:"


@dataclass(frozen=True)
class Recognised:
    """Headers that mark an export: every one present (compared trimmed, any case)."""

    input: str
    export: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Preset:
    """One source system's export layout (see the module docstring)."""

    name: str
    title: str
    origin: str
    touch_export: str = ""
    exports: dict[str, str] = field(default_factory=dict)
    #: input -> canonical column -> the export's names, in order of preference
    columns: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    statuses: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: the usual timestamp styles: chosen when a column's values read more than one way
    time_formats: tuple[str, ...] = ()
    #: channel label -> group, in the system's own spelling
    channel_groups: dict[str, str] = field(default_factory=dict)
    direct_channels: tuple[str, ...] = ()
    multi_value_separator: str | None = None
    recognise: tuple[Recognised, ...] = ()

    def mapping(
        self, input_name: str, header: Sequence[str], user: Mapping[str, str] | None = None,
    ) -> tuple[dict[str, str], dict[str, list[str]]]:
        """``(mapping, fills)`` for a file with ``header``: canonical -> the file's column, and
        canonical -> several of the file's columns whose first non-empty value a row takes
        (:func:`apply_preset` builds those). The user's ``[columns]`` mapping wins."""
        user = dict(user or {})
        present = set(header)
        mapping: dict[str, str] = {}
        fills: dict[str, list[str]] = {}
        for canonical, names in self.columns.get(input_name, {}).items():
            if canonical in user:
                continue
            found = [name for name in dict.fromkeys(names) if name in present]
            if len(found) == 1:
                mapping[canonical] = found[0]
            elif found:
                fills[canonical] = found
                mapping[canonical] = _FILLED + canonical
        return {**mapping, **user}, fills


def preset_names() -> tuple[str, ...]:
    """The built-in presets' names."""
    return PRESET_NAMES


def preset_text(name: str) -> str:
    """A built-in preset's TOML text (what ``attribution init --source NAME`` writes)."""
    if name not in PRESET_NAMES:
        raise ConfigError(_unknown(name))
    return resources.files("attribution").joinpath("presets", f"{name}.toml").read_text("utf-8")


def load_preset(source: str | Path) -> Preset:
    """A preset by name (``hubspot``) or from a TOML file (an edited copy, ``hubspot.toml``).

    >>> load_preset("salesforce").columns["deals"]["is_won"]
    ('IsWon', 'Won', 'IS_WON')
    """
    text_source = str(source)
    if text_source.endswith(".toml") or "/" in text_source or "\\" in text_source:
        path = Path(text_source)
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read source preset ({exc.strerror})") from None
        origin = str(path)
    else:
        text, origin = preset_text(text_source), f"the {text_source} preset"
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML ({exc})") from None
    return _preset_from(document, origin)


def write_preset(name: str, folder: str | Path) -> Path:
    """Write the built-in preset ``name`` to ``folder/<name>.toml`` for editing; the path.

    Point the config at it with ``[inputs] source = "<name>.toml"``. An existing file is kept
    (raises :class:`ConfigError`), so edits are never overwritten.
    """
    path = Path(folder) / f"{name}.toml"
    text = preset_text(name)
    if path.exists():
        raise ConfigError(f"{path}: already exists; remove it or edit it")
    path.write_text(text, "utf-8")
    return path


def apply_preset(frame: pl.DataFrame, preset: Preset, input_name: str,
                 user: Mapping[str, str] | None = None) -> tuple[pl.DataFrame, dict[str, str]]:
    """A table as read, made ready for the generic validation: ``(frame, mapping)``.

    Columns filled from several of the export's are added (a row's first non-empty value),
    id cells listing several records keep the first; the frame's own columns are unchanged
    otherwise, so rejects show the export's values.
    """
    mapping, fills = preset.mapping(input_name, frame.columns, user)
    added = [
        pl.coalesce([_cell(frame, name) for name in names]).alias(_FILLED + canonical)
        for canonical, names in fills.items()
    ]
    if added:
        frame = frame.with_columns(added)
    separator = preset.multi_value_separator
    if separator:
        split = [mapping[c] for c in _ID_COLUMNS
                 if c in mapping and mapping[c] in frame.columns
                 and frame.schema[mapping[c]] == pl.String]
        # only columns where some cell lists several (one scan; splitting every row of a
        # column of single ids would copy it for nothing)
        listed = frame.select(pl.col(c).str.contains(separator, literal=True).any()
                              for c in split).row(0) if split else ()
        split = [c for c, has in zip(split, listed, strict=True) if has]
        if split:
            frame = frame.with_columns(
                pl.col(c).str.split(separator).list.first().str.strip_chars() for c in split
            )
    return frame, mapping


def with_channel_groups(rules: ChannelRules, preset: Preset) -> ChannelRules:
    """Channel rules that also group the preset's channel vocabulary, kept in the preset's
    spelling (groups are looked up through :func:`~attribution.channels.channel_key`, so
    "Paid Social" in a file finds the preset's "Paid Social" whatever its case). The rules'
    own groups win, whatever their spelling."""
    own = {channel_key(name) for name in rules.groups}
    groups = {name: group for name, group in preset.channel_groups.items()
              if channel_key(name) not in own}
    return dataclasses.replace(rules, groups={**groups, **rules.groups})


def source_direct_channels(preset: Preset) -> tuple[str, ...]:
    """The preset's direct channels in its own spelling (``last_non_direct`` compares them
    through :func:`~attribution.channels.channel_key`, whatever the case): add them to
    ``Config.direct_channels``."""
    return tuple(dict.fromkeys(preset.direct_channels))


def recognise(header: Sequence[str], input_name: str,
              presets: Sequence[Preset] | None = None) -> tuple[Preset, Recognised] | None:
    """The preset whose export ``header`` looks like, for ``input_name``; None if none does."""
    names = {name.strip().lower() for name in header}
    for preset in presets if presets is not None else [load_preset(n) for n in PRESET_NAMES]:
        for mark in preset.recognise:
            if mark.input == input_name and all(c.lower() in names for c in mark.columns):
                return preset, mark
    return None


def recognised_hint(header: Sequence[str], input_name: str, current: str | None) -> str:
    """``this looks like a Salesforce Opportunity export: add --source salesforce`` (empty
    when the header matches no known export, or the preset already in use)."""
    found = recognise(header, input_name)
    if found is None or found[0].name == current:
        return ""
    preset, mark = found
    return (f"this looks like a {mark.export}: add --source {preset.name} "
            f'(or [inputs] source = "{preset.name}" in the config)')


def preset_hint(preset: Preset, header: Sequence[str], input_name: str) -> str:
    """``the salesforce preset looks for status in 'StageName' or 'Stage'`` for each required
    column none of whose preset names is in ``header`` (empty when there is none)."""
    present = {name.strip() for name in header}
    required = [c for c, needed in INPUT_COLUMNS.get(input_name, {}).items() if needed]
    wanted = [
        f"{column} in {' or '.join(repr(n) for n in names)}"
        for column, names in preset.columns.get(input_name, {}).items()
        if column in required and not present & set(names)
    ]
    return f"the {preset.name} preset looks for {'; '.join(wanted)}" if wanted else ""


def with_hint(error: ColumnNotFoundError, hint: str) -> ColumnNotFoundError:
    """The same error with ``hint`` appended (when there is one)."""
    return ColumnNotFoundError(f"{error}; {hint}") if hint else error


#: the share of one-touch journeys from which a run is warned that the data is first-touch only
SINGLE_TOUCH_SHARE = 0.95


def single_touch_note(touchpoints: pl.DataFrame | None, file: str, *,
                      journeys: pl.DataFrame | pl.LazyFrame | None = None,
                      preset: Preset | None = None) -> str | None:
    """A warning when the data cannot support multi-touch: every contact has exactly one touch
    (a contact export's Original Source), or at least :data:`SINGLE_TOUCH_SHARE` of the
    journeys that have touches have one (``journeys``: a frame with ``n_touches``). None
    otherwise. The note names the export to pull instead (the preset's ``touch_export``).
    """
    pull = (preset or load_preset("generic")).touch_export
    advice = ("the export carries first-touch data only, and the multi-touch models have no "
              f"paths to weigh; pull {pull}")
    if touchpoints is not None and "contact_id" in touchpoints.columns:
        contacts = touchpoints.get_column("contact_id").drop_nulls()
        # a repeated contact among the first rows settles it without counting them all
        head = contacts.head(10_000)
        distinct = contacts.n_unique() if head.n_unique() == head.len() else 0
        if distinct > 1 and distinct == contacts.len():
            return f"{file}: every contact has exactly one touch ({distinct} contacts): {advice}"
    if journeys is not None:
        counts = journeys.lazy().filter(pl.col("n_touches") > 0).select(
            pl.len().alias("journeys"), (pl.col("n_touches") == 1).sum().alias("single"),
        ).collect().row(0, named=True)
        total, single = int(counts["journeys"]), int(counts["single"] or 0)
        if total > 1 and single >= SINGLE_TOUCH_SHARE * total:
            return (f"{file}: {single} of {total} journeys ({single / total:.0%}) have one "
                    f"touch: {advice}")
    return None


def _cell(frame: pl.DataFrame, name: str) -> pl.Expr:
    column = pl.col(name)
    if frame.schema[name] != pl.String:
        column = column.cast(pl.String)
    return column.str.strip_chars().replace("", None)


def _unknown(name: str) -> str:
    return (f"unknown source {name!r}; valid sources: {', '.join(PRESET_NAMES)}, "
            "or the path of a preset file (.toml)")


# -- reading a preset file ----------------------------------------------------------------------
_SECTIONS = {"source", "exports", "columns", "statuses", "formats", "channels", "recognise"}


def _preset_from(document: dict[str, Any], origin: str) -> Preset:
    unknown = set(document) - _SECTIONS
    if unknown:
        raise ConfigError(f"{origin}: unknown section [{min(unknown)}]; "
                          f"valid sections: {', '.join(sorted(_SECTIONS))}")
    source = _table(document, "source", origin)
    name = source.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{origin}: [source] name must be the preset's name")
    columns: dict[str, dict[str, tuple[str, ...]]] = {}
    for input_name, table in _table(document, "columns", origin).items():
        if input_name not in _INPUTS or not isinstance(table, dict):
            raise ConfigError(f"{origin}: [columns.{input_name}] is not an input; valid: "
                              f"{', '.join(_INPUTS)}")
        canonical = INPUT_COLUMNS[input_name]
        for column in table:
            if column not in canonical:
                raise ConfigError(f"{origin}: unknown {input_name} column {column!r} in "
                                  f"[columns.{input_name}]; valid: {', '.join(canonical)}")
        columns[input_name] = {
            column: _strings(names, f"[columns.{input_name}] {column}", origin)
            for column, names in table.items()
        }
    statuses = {status: _strings(names, f"[statuses] {status}", origin)
                for status, names in _table(document, "statuses", origin).items()}
    bad = set(statuses) - {"won", "lost", "open"}
    if bad:
        raise ConfigError(f"{origin}: [statuses] {min(bad)} is not a status; "
                          "valid: won, lost, open")
    channels = _table(document, "channels", origin)
    groups = channels.get("groups", {})
    if not isinstance(groups, dict) or not all(isinstance(v, str) for v in groups.values()):
        raise ConfigError(f'{origin}: [channels.groups] must map channels to groups, like '
                          '"Paid Social" = "demand_creation"')
    marks = document.get("recognise", [])
    if not isinstance(marks, list) or not all(isinstance(m, dict) for m in marks):
        raise ConfigError(f"{origin}: [[recognise]] must be tables of input, export, columns")
    recognised = tuple(
        Recognised(str(m.get("input")), str(m.get("export")),
                   _strings(m.get("columns"), "[[recognise]] columns", origin))
        for m in marks
    )
    separator = source.get("multi_value_separator")
    return Preset(
        name=name,
        title=str(source.get("title", name)),
        origin=origin,
        touch_export=str(source.get("touch_export", "")),
        exports={str(k): str(v) for k, v in _table(document, "exports", origin).items()},
        columns=columns,
        statuses=statuses,
        time_formats=_strings(_table(document, "formats", origin).get("timestamp", []),
                              "[formats] timestamp", origin),
        channel_groups={str(k): v for k, v in groups.items()},
        direct_channels=_strings(channels.get("direct", []), "[channels] direct", origin),
        multi_value_separator=str(separator) if separator else None,
        recognise=recognised,
    )


def _table(document: dict[str, Any], name: str, origin: str) -> dict[str, Any]:
    table = document.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{origin}: [{name}] must be a table")
    return table


def _strings(value: Any, where: str, origin: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{origin}: {where} must be a string or a list of strings, not {value!r}")


__all__ = [
    "PRESET_NAMES",
    "SINGLE_TOUCH_SHARE",
    "Preset",
    "Recognised",
    "apply_preset",
    "load_preset",
    "preset_hint",
    "preset_names",
    "preset_text",
    "recognise",
    "recognised_hint",
    "single_touch_note",
    "source_direct_channels",
    "with_channel_groups",
    "write_preset",
]
