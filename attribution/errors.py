"""Exceptions raised by `attribution`.

The tree::

    AttributionError (ValueError)          base: the CLI catches it once, exit code 2
    ├── InputError                         a file cannot be used as it is
    │   ├── ColumnNotFoundError            a required column is missing (lists what exists)
    │   ├── FileFormatError                unknown extension, unreadable file
    │   ├── ColumnTypeError                a column's type cannot hold what it must (a table)
    │   ├── RejectedRowError               a bad row while running with ``strict``
    │   ├── AmbiguousTimestampError        timestamps read more than one way (lists the formats)
    │   └── RejectRateError                an input's rejected share is above the maximum
    ├── DatabaseError                      a database cannot be used as given
    │   ├── DatabaseConnectionError        unreachable host, wrong password (names the host)
    │   └── TableNotFoundError             no such table (lists the ones there are)
    ├── ConfigError                        attribution.toml or a flag is wrong
    ├── ChannelRulesError                  a channel-rules file is wrong
    │   └── ChannelRulesLimitError         a rules file beyond the matcher's bounds (names the rule)
    └── ModelError                         a model cannot run on this data
        └── UnknownModelError              no model of that name (lists the valid ones)

Every message says what was wrong, where (file, row, column) and what is valid. A message
that quotes user input quotes it through :func:`quote_input`: escaped, and at most
:data:`QUOTE_LIMIT` characters of it (a 1 GB line is named, not printed).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

#: characters of user input a message quotes at most
QUOTE_LIMIT = 200


def quote_input(value: str, limit: int = QUOTE_LIMIT) -> str:
    """``value`` quoted for an error message: ``repr`` style (control characters escaped, so a
    value cannot split the one-line message or drive the terminal), cut to ``limit`` characters
    with the full length said.

    >>> quote_input("a\\nb")
    "'a\\\\nb'"
    >>> quote_input("x" * 300, limit=3)
    "'xxx'... (300 characters)"
    """
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value):,} characters)"


def listed(names: Iterable[str], limit: int = QUOTE_LIMIT) -> str:
    """A file's column names for an error message, each quoted as :func:`quote_input` does
    (escaped), the whole cut to ``limit`` characters with the count said: a header of
    thousands of columns cannot make the one line a screenful.

    >>> listed(["a", "b"])
    "'a', 'b'"
    >>> listed([f"c{i}" for i in range(100)], limit=20)
    "'c0', 'c1', 'c2', 'c... (100 columns)"
    """
    names = list(names)
    text = ", ".join(quote_input(name) for name in names)
    if not text:
        return "no columns"
    return text if len(text) <= limit else f"{text[:limit]}... ({len(names):,} columns)"


class AttributionError(ValueError):
    """Base class of every error this library raises on purpose."""


class InputError(AttributionError):
    """An input file cannot be used as it is."""


class FileFormatError(InputError):
    """The file's format is unknown or the file cannot be read."""


class ColumnNotFoundError(InputError):
    """A required column is missing from an input file."""

    @classmethod
    def from_missing(
        cls, path: str, missing: Iterable[str], available: Iterable[str], hint: str = ""
    ) -> ColumnNotFoundError:
        available = list(available)
        parts = []
        for name in missing:
            close = difflib.get_close_matches(name, available, n=1)
            guess = f" (did you mean {quote_input(close[0])}?)" if close else ""
            parts.append(f"{quote_input(name)}{guess}")
        message = f"{path}: missing column {', '.join(parts)}; the file has {listed(available)}"
        if hint:
            message += f"; {hint}"
        return cls(message)


class ColumnTypeError(InputError):
    """A column read from a database has a type that cannot hold what the column must."""


class RejectedRowError(InputError):
    """A row was rejected while running in strict mode."""

    @classmethod
    def from_reject(cls, path: str, row: int, column: str, reason: str, value: str | None):
        shown = "empty" if value is None else quote_input(value)
        return cls(f"{path}: row {row}, column {column!r}: {reason} (value {shown})")


class AmbiguousTimestampError(InputError):
    """A timestamp column's values fit more than one format (day/month order)."""


class RejectRateError(InputError):
    """More of an input's rows were rejected than the run allows (``max_reject_rate``);
    ``accounting`` holds every input's row accounting, for the summary shown with it."""

    accounting: list[Any] = []


class DatabaseError(AttributionError):
    """A database cannot be read or written as given (bad URI, failed statement)."""


class DatabaseConnectionError(DatabaseError):
    """The database server cannot be reached or refuses the login; names the host, never
    the password."""


class TableNotFoundError(DatabaseError):
    """A table named by a database source does not exist."""

    @classmethod
    def from_missing(cls, source: str, table: str, available: Iterable[str]) -> TableNotFoundError:
        available = sorted(available)
        close = difflib.get_close_matches(table, available, n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        tables = ", ".join(repr(t) for t in available[:20]) or "no tables"
        more = f" and {len(available) - 20} more" if len(available) > 20 else ""
        return cls(f"{source}: no table {table!r}{guess}; the database has {tables}{more}")


class ConfigError(AttributionError):
    """A configuration file or command-line option is wrong."""


class ChannelRulesError(AttributionError):
    """A channel-rules file is wrong."""


class ChannelRulesLimitError(ChannelRulesError):
    """A channel-rules file goes beyond the bounds that keep matching linear (too many rules, a
    glob too long); the message names the rule."""


class ModelError(AttributionError):
    """A model cannot run on the data it was given."""


class UnknownModelError(ModelError):
    """No model is registered under that name."""

    @classmethod
    def from_name(cls, name: str, valid: Iterable[str]) -> UnknownModelError:
        valid = sorted(valid)
        close = difflib.get_close_matches(name, valid, n=1)
        guess = f" (did you mean {close[0]!r}?)" if close else ""
        return cls(f"unknown model {name!r}{guess}; valid models: {', '.join(valid)}")
