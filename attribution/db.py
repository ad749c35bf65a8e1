"""Database inputs and outputs: PostgreSQL (through ADBC) and DuckDB (in process).

Sources and destinations are URIs::

    postgresql://analyst@db.example.com:5432/crm?table=hubspot.touchpoints
    postgresql://analyst@db.example.com:5432/crm?query=SELECT * FROM touchpoints WHERE ...
    postgresql://analyst@db.example.com:5432/crm?schema=attribution        (an output)
    duckdb:///warehouse/crm.duckdb?table=touchpoints     (relative path warehouse/crm.duckdb)
    duckdb:////srv/crm.duckdb?table=touchpoints          (absolute path /srv/crm.duckdb)
    history.duckdb                                       (an output: a path ending .duckdb)

The PostgreSQL password is never part of a URI: libpq takes it from ``PGPASSWORD`` or
``~/.pgpass`` (``PGPASSFILE``), by its own rules, so it is never on a command line, in a run
record or in a message. A URI that holds one is refused. ``query=`` must be the last
parameter: everything after it is the SQL (percent escapes such as ``%26`` are decoded; write a
literal ``%`` as ``%25``; ``+`` stays ``+``). Other parameters (``sslmode``,
``connect_timeout``, ...) go to libpq unchanged.

Rows travel as Arrow, never row by row in Python: PostgreSQL's binary COPY through the ADBC
driver, DuckDB's own Arrow interface. A result set is written in one transaction (PostgreSQL:
``COPY`` through ADBC bulk ingest; DuckDB: ``INSERT ... SELECT`` from the Arrow table), into
tables whose types are declared here, money as exact ``NUMERIC(38,d)`` (``d``: the currency's
minor unit); a run that fails or is killed while writing leaves no rows. Every row carries the
``run_id`` of its run, and the ``runs`` table holds one row per run with its record (JSON), so
the history of a channel's credit is one query (:func:`channel_history`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from attribution.errors import (
    ColumnNotFoundError,
    ColumnTypeError,
    DatabaseConnectionError,
    DatabaseError,
    TableNotFoundError,
)
from attribution.output import json_text, money_to_decimal
from attribution.reading import DUCKDB_EXTENSIONS, is_database_uri
from attribution.schema import MONEY_COLUMNS, currency_decimals

Engine = Literal["postgresql", "duckdb"]

#: seconds libpq waits for a server before giving up (unless the URI sets connect_timeout)
CONNECT_TIMEOUT = 10
#: rows per Arrow IPC batch of the digest: fixed, so the digest never depends on how the driver
#: happened to chunk the rows
DIGEST_BATCH_ROWS = 65_536
#: the scale of the money columns in the database unless the run's currency has another
#: minor unit: a run's money is stored as ``NUMERIC(38, d)``, ``d`` its currency's ISO 4217
#: decimals (:func:`attribution.schema.currency_decimals`: 2 for USD, 3 for KWD), so its minor
#: units are held exactly; a table keeps the scale it was created with, and takes only runs of
#: that scale
MONEY_SCALE = 2
MONEY_SQL = f"NUMERIC(38,{MONEY_SCALE})"
#: the tables a result set may hold besides the fitted models' ones, in the order written
RESULT_TABLES = ("credit", "summary", "comparison", "rejects")
RUNS_TABLE = "runs"

_OUR_PARAMETERS = ("table", "query", "schema")
_SECRET_PARAMETERS = ("password", "sslpassword")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


# -- URIs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DatabaseURI:
    """A parsed database URI. ``display`` is the URI as it may be shown and recorded (it never
    holds a password: one in the URI is refused)."""

    engine: Engine
    display: str
    #: PostgreSQL: the libpq URI (no password: libpq finds it); DuckDB: the database file
    target: str
    host: str = ""
    table: str | None = None
    query: str | None = None
    schema: str | None = None


def _split_parameters(raw: str, shown: str) -> tuple[dict[str, str], str | None]:
    """``a=1&b=2&query=SELECT ...`` -> ({a: 1, b: 2}, the query); query= takes the rest."""
    query = None
    marker = re.search(r"(^|&)query=", raw)
    if marker:
        query = unquote(raw[marker.end():])
        raw = raw[:marker.start()]
    parameters: dict[str, str] = {}
    for item in filter(None, raw.split("&")):
        name, _, value = item.partition("=")
        name = unquote(name)
        if name in parameters:
            raise DatabaseError(f"{shown}: parameter {name!r} is given twice")
        parameters[name] = unquote(value)
    return parameters, query


def parse_uri(uri: str | Path, *, query: str | None = None) -> DatabaseURI:
    """Parse a database URI (see the module docstring); ``query`` is the SQL when it is given
    apart from the URI (the config's ``query =``).

    >>> parse_uri("postgresql://analyst@db:5432/crm?table=hubspot.touchpoints").table
    'hubspot.touchpoints'
    >>> parse_uri("history.duckdb").target
    'history.duckdb'
    """
    text = str(uri)
    if not text.startswith(("postgresql://", "postgres://", "duckdb://")):
        if text.lower().endswith(DUCKDB_EXTENSIONS):
            return DatabaseURI("duckdb", text, text, query=query)
        raise DatabaseError(
            f"{_no_password(text)}: not a database URI; expected postgresql://user@host:port/"
            "db?table=schema.name, duckdb:///path/file.duckdb?table=name or a .duckdb path"
        )
    head, _, raw_parameters = text.partition("?")
    if text.startswith("duckdb://"):
        parameters, in_uri_query = _split_parameters(raw_parameters, head)
        path = head[len("duckdb:///"):] if head.startswith("duckdb:///") else ""
        if not path:
            raise DatabaseError(f"{head}: no database file; write duckdb:///path/file.duckdb "
                                "(relative) or duckdb:////abs/path/file.duckdb")
        unknown = sorted(set(parameters) - set(_OUR_PARAMETERS))
        if unknown:
            raise DatabaseError(f"{head}: unknown parameter {unknown[0]!r}; DuckDB URIs take "
                                "table=, query= or schema=")
        engine: Engine = "duckdb"
        target, host, display_head = unquote(path), "", head
    else:
        parts = urlsplit(head)
        if parts.password is not None:
            raise DatabaseError(
                f"{_no_password(head)}: a password in the URI is not accepted (it would be "
                "seen in the process list and the run record); set PGPASSWORD or add the host "
                "to ~/.pgpass"
            )
        parameters, in_uri_query = _split_parameters(raw_parameters, head)
        secret = [p for p in parameters if p in _SECRET_PARAMETERS]
        if secret:
            raise DatabaseError(f"{head}: parameter {secret[0]!r} is not accepted in the URI; "
                                "set PGPASSWORD or add the host to ~/.pgpass")
        engine = "postgresql"
        hostname = parts.hostname or "localhost"
        host = f"{hostname}:{parts.port}" if parts.port else hostname
        passed = {k: v for k, v in parameters.items() if k not in _OUR_PARAMETERS}
        passed.setdefault("connect_timeout", str(CONNECT_TIMEOUT))
        target = head + "?" + "&".join(f"{k}={v}" for k, v in passed.items())
        display_head = head
    if query is not None and in_uri_query is not None:
        raise DatabaseError(f"{display_head}: a query is given both in the URI and apart")
    sql = query if query is not None else in_uri_query
    table = parameters.get("table")
    if table is not None and sql is not None:
        raise DatabaseError(f"{display_head}: give table= or query=, not both")
    shown = [f"{k}={v}" for k, v in parameters.items()
             if k in _OUR_PARAMETERS or engine == "postgresql"]
    if sql is not None:
        shown.append(f"query={sql}")
    display = display_head + ("?" + "&".join(shown) if shown else "")
    return DatabaseURI(engine, display, target, host, table, sql, parameters.get("schema"))


def _no_password(text: str) -> str:
    """``text`` with any ``user:password@`` cut to ``user@`` (for messages only)."""
    return re.sub(r"(://[^:/@?]*):[^@/?]*@", r"\1@", text)


def quote_identifier(name: str) -> str:
    """A SQL identifier in double quotes (both engines), inner quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def _qualified(name: str) -> str:
    """``schema.table`` (or ``table``) quoted part by part."""
    return ".".join(quote_identifier(part) for part in name.split("."))


# -- connections -----------------------------------------------------------------------------
def _postgres_reason(message: str) -> str:
    """The why of a libpq connection failure, in a few words (libpq never echoes a password)."""
    lowered = message.lower()
    if "password authentication failed" in lowered:
        return ("password authentication failed (the password comes from PGPASSWORD or "
                "~/.pgpass)")
    if "no password supplied" in lowered:
        return "the server asks for a password: set PGPASSWORD or add the host to ~/.pgpass"
    if "connection refused" in lowered:
        return "connection refused: is the server running and listening on that port?"
    if "could not translate host name" in lowered:
        return "unknown host name"
    if "timeout" in lowered or "timed out" in lowered:
        return "timed out"
    if "does not exist" in lowered:
        found = re.search(r'(database|role) "([^"]*)" does not exist', message)
        if found:
            return f"{found.group(1)} {found.group(2)!r} does not exist"
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    last = lines[0] if lines else "failed"
    return re.sub(r"^.*?failed:\s*", "", re.sub(r"^[A-Z_]+: \[libpq\] ", "", last))


@contextmanager
def _connect(location: DatabaseURI, *, write: bool = False) -> Iterator[Any]:
    """A DB-API connection, autocommit off; connection failures as one-line errors."""
    if location.engine == "postgresql":
        try:
            import adbc_driver_postgresql.dbapi as postgres
        except ImportError:
            raise DatabaseError("reading or writing PostgreSQL needs the ADBC driver: pip "
                                "install 'revenue-attribution[db]'") from None
        try:
            connection = postgres.connect(location.target, autocommit=False)
        except postgres.Error as exc:
            raise DatabaseConnectionError(
                f"cannot connect to PostgreSQL at {location.host} as given by "
                f"{location.display}: {_postgres_reason(str(exc))}"
            ) from None
    else:
        try:
            import duckdb
        except ImportError:
            raise DatabaseError("reading or writing DuckDB needs duckdb: pip install "
                                "'revenue-attribution[db]'") from None
        path = Path(location.target)
        if not write and not path.exists():
            raise DatabaseConnectionError(f"{location.display}: no DuckDB database "
                                          f"{str(path)!r}")
        if write:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = duckdb.connect(str(path), read_only=not write)
        except duckdb.Error as exc:
            raise DatabaseConnectionError(
                f"cannot open DuckDB database {str(path)!r}: {_first_line(exc)}") from None
    try:
        yield connection
    finally:
        connection.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _fetch_arrow(connection: Any, location: DatabaseURI, sql: str,
                 parameters: Sequence[Any] = ()) -> pa.Table:
    """Run ``sql`` and take its rows as one Arrow table."""
    if location.engine == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, parameters or None)
            return cursor.fetch_arrow_table()
    return connection.sql(sql, params=list(parameters) or None).to_arrow_table()


# -- reading ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceInfo:
    """Where an input's rows came from, for the run's record: the URI without secrets, the SQL
    run, the rows read, a SHA-256 of them (:func:`arrow_digest`) and the columns that key a
    row (:func:`row_key`); ``keys`` holds each row's key as text, in the order read, so a
    reject found at a row position is named by its key (:func:`relabel_rejects`)."""

    input: str
    uri: str
    query: str
    rows: int
    sha256: str
    key: tuple[str, ...] = ()
    keys: pl.Series | None = dataclasses.field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, object]:
        return {"input": self.input, "uri": self.uri, "query": self.query, "rows": self.rows,
                "sha256": self.sha256, "key": list(self.key)}


#: the columns of each input whose type is checked on a database source, and what they may be
_TIME_KINDS = ("a timestamp", "a date", "text")
_AMOUNT_KINDS = ("a number", "text")
_TEXT_KINDS = ("text", "an integer")
_CHECKED_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "touchpoints": {"timestamp": _TIME_KINDS, "touchpoint_id": _TEXT_KINDS,
                    "contact_id": _TEXT_KINDS, "account_id": _TEXT_KINDS,
                    "channel": ("text",), "utm_source": ("text",), "utm_medium": ("text",),
                    "utm_campaign": ("text",), "touch_type": ("text",)},
    "deals": {"deal_id": _TEXT_KINDS, "account_id": _TEXT_KINDS, "created_at": _TIME_KINDS,
              "closed_at": _TIME_KINDS, "status": ("text",), "amount": _AMOUNT_KINDS,
              "currency": ("text",)},
    "contacts": {"contact_id": _TEXT_KINDS, "account_id": _TEXT_KINDS,
                 "lead_created_at": _TIME_KINDS},
    "spend": {  # money: keep name
        "channel": ("text",), "period_start": _TIME_KINDS, "period_end": _TIME_KINDS,
        "amount": _AMOUNT_KINDS, "currency": ("text",)},
}


def _kind(dtype: pl.DataType) -> str:
    """What a column holds, in the words of the messages."""
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return "text"
    if dtype.is_integer():
        return "an integer"
    if dtype.is_float() or isinstance(dtype, pl.Decimal):
        return "a number"
    if isinstance(dtype, pl.Datetime):
        return "a timestamp"
    if dtype == pl.Date:
        return "a date"
    return f"{dtype}"


def _accepts(kinds: tuple[str, ...], dtype: pl.DataType) -> bool:
    kind = _kind(dtype)
    return kind in kinds or (kind == "an integer" and "a number" in kinds)


def check_types(frame: pl.DataFrame, input_name: str, source: str,
                mapping: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ColumnTypeError` for the first column of ``input_name`` whose type cannot
    hold it (a boolean timestamp, a list of amounts); names the column, its type and what it
    may be. Columns are looked up through ``mapping`` (canonical -> the source's name)."""
    mapping = mapping or {}
    for canonical, kinds in _CHECKED_COLUMNS.get(input_name, {}).items():
        name = mapping.get(canonical, canonical)
        if name not in frame.columns:
            continue
        dtype = frame.schema[name]
        if not _accepts(kinds, dtype):
            kind = _kind(dtype)
            shown = kind if kind == str(dtype) else f"{kind} ({dtype})"
            raise ColumnTypeError(
                f"{source}: column {name!r} is {shown}; {input_name} {canonical} must be "
                f"{' or '.join(kinds)}"
            )


def _zero(dtype: pa.DataType) -> Any:
    """The value put under a null before hashing (None: a type left as it is)."""
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return ""
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return b""
    if pa.types.is_boolean(dtype):
        return False
    if pa.types.is_date32(dtype) or pa.types.is_time32(dtype):
        return pa.scalar(0, pa.int32()).cast(dtype)  # (Arrow casts these from int32 only)
    if (pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_temporal(dtype)
            or pa.types.is_decimal(dtype)):
        try:
            return pa.scalar(0, pa.int64()).cast(dtype)
        except pa.ArrowNotImplementedError:  # an interval: hashed as the driver gave it
            return None
    return None


def _canonical(column: pa.Array) -> pa.Array:
    """``column`` with the bytes Arrow leaves undefined set: the validity bitmap's bits past
    the end, and the values under nulls (drivers leave whatever was in memory there, and
    two reads of the same rows differed in them)."""
    dtype = column.type
    boolean = pa.types.is_boolean(dtype)
    if not (column.null_count or boolean):
        return column
    zero = _zero(dtype)
    if zero is None:
        return column
    bitmap = None
    if column.null_count:
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        bitmap = pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
        column = pc.fill_null(column, zero)
    if boolean:
        data = np.packbits(column.to_numpy(zero_copy_only=False), bitorder="little")
        return pa.Array.from_buffers(dtype, len(column), [bitmap, pa.py_buffer(data.tobytes())],
                                     null_count=len(column) - int(valid.sum())
                                     if bitmap is not None else 0)
    return pa.Array.from_buffers(dtype, len(column), [bitmap, *column.buffers()[1:]],
                                 null_count=len(column) - int(valid.sum())
                                 if bitmap is not None else 0, offset=column.offset)


class _HashSink:
    """A file-like sink that feeds what is written to a hash, not to memory."""

    closed = False

    def __init__(self, digest: Any) -> None:
        self._digest = digest

    def write(self, data: Any) -> int:
        self._digest.update(data)
        return len(data)

    def flush(self) -> None:
        return None


def _exact(column: pa.ChunkedArray) -> pa.Array:
    """``column`` as one array in fresh buffers that hold exactly its rows. (A slice keeps its
    whole buffers, and Arrow's IPC writer writes a string column's whole value buffer when the
    slice starts at 0: the rows after it, in whatever chunk the driver made, would be
    hashed too.)"""
    return pa.concat_arrays([*column.chunks, pa.array([], column.type)])


class ArrowDigest:
    """SHA-256 of rows handed over a record batch at a time, as :func:`arrow_digest` takes it
    of the whole table: the batches are cut again into windows of :data:`DIGEST_BATCH_ROWS`
    rows whatever their own sizes, so a read can be hashed as its batches arrive (while the
    driver decodes the next) and still give the digest of the rows, not of the chunking."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = pa.schema([field.remove_metadata() for field in schema])
        self._hash = hashlib.sha256()
        self._writer = pa.ipc.new_stream(_HashSink(self._hash), self.schema)
        self._tables: list[pa.Table] = []
        self._rows = 0

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        """Hash ``batch``'s rows after the ones added before."""
        if batch.num_rows == 0:
            return
        self._tables.append(pa.Table.from_arrays(batch.columns, schema=self.schema))
        self._rows += batch.num_rows
        while self._rows >= DIGEST_BATCH_ROWS:
            self._write(DIGEST_BATCH_ROWS)

    def _write(self, rows: int) -> None:
        pending = (self._tables[0] if len(self._tables) == 1
                   else pa.concat_tables(self._tables))
        window = pending.slice(0, rows)
        self._writer.write_batch(pa.record_batch(
            [_canonical(_exact(column)) for column in window.columns], schema=self.schema))
        rest = pending.slice(rows)
        self._tables = [rest] if rest.num_rows else []
        self._rows -= rows

    def hexdigest(self) -> str:
        """The digest of every row added (ends the stream: add nothing after)."""
        if self._rows:
            self._write(self._rows)
        self._writer.close()
        return self._hash.hexdigest()


def arrow_digest(table: pa.Table) -> str:
    """SHA-256 of the rows of ``table`` as an Arrow IPC stream: the schema without metadata,
    then batches of :data:`DIGEST_BATCH_ROWS` rows (so it does not depend on how the driver
    chunked them), each column in buffers of exactly its rows (:func:`_exact`) with its
    undefined bytes set (:func:`_canonical`). Equal rows
    of equal types in the same order give the same digest (:class:`ArrowDigest` gives it a
    batch at a time)."""
    digest = ArrowDigest(table.schema)
    for batch in table.to_batches():
        digest.add(batch)
    return digest.hexdigest()


def _plain_field(field: pa.Field) -> pa.Field:
    """An extension column's field as its storage's (PostgreSQL ``numeric`` comes as an opaque
    text extension), without metadata."""
    if isinstance(field.type, pa.ExtensionType) or hasattr(field.type, "storage_type"):
        field = pa.field(field.name, field.type.storage_type, field.nullable)
    return field.remove_metadata()


def _plain_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with extension columns as their storage (``schema``: its plain fields)."""
    columns = [column.storage if isinstance(column, pa.ExtensionArray) else column
               for column in batch.columns]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _plain_arrow(table: pa.Table) -> pa.Table:
    """Extension columns (PostgreSQL ``numeric`` comes as an opaque text extension) as their
    storage, so polars reads ``123.45`` as text, which the loader parses exactly."""
    schema = pa.schema([_plain_field(field) for field in table.schema])
    columns = [pa.chunked_array([chunk.storage for chunk in column.chunks], field.type)
               if field.type != column.type else column
               for field, column in zip(schema, table.columns, strict=True)]
    return pa.Table.from_arrays(columns, schema=schema)


#: record batches the driver decodes ahead of the one being hashed (:func:`_fetch_digested`)
READ_BATCHES_AHEAD = 4


def _fetch_digested(connection: Any, location: DatabaseURI, sql: str) -> tuple[pa.Table, str]:
    """Run ``sql``; its rows as one Arrow table (extension columns as their storage) and their
    :func:`arrow_digest`. PostgreSQL's rows are hashed a record batch at a time as the driver
    hands them over, the driver decoding the next batches on a thread meanwhile (it lets go
    of the GIL), instead of hashing the whole table after the read."""
    if location.engine != "postgresql":
        table = _plain_arrow(_fetch_arrow(connection, location, sql))
        return table, arrow_digest(table)
    with connection.cursor() as cursor:
        cursor.execute(sql)
        reader = cursor.fetch_record_batch()
        schema = pa.schema([_plain_field(field) for field in reader.schema])
        digest = ArrowDigest(schema)
        batches = []
        with _Ahead(iter(reader), READ_BATCHES_AHEAD) as incoming:
            for batch in incoming:
                batch = _plain_batch(batch, schema)
                digest.add(batch)
                batches.append(batch)
    return pa.Table.from_batches(batches, schema=schema), digest.hexdigest()


def _table_names(connection: Any, location: DatabaseURI, schema: str | None) -> list[str]:
    """The tables (and views) of a schema (every user schema when None), as ``schema.name``
    outside the default schema."""
    default = "public" if location.engine == "postgresql" else "main"
    sql = ("SELECT table_schema, table_name FROM information_schema.tables WHERE "
           "table_schema NOT IN ('pg_catalog', 'information_schema')")
    parameters: list[Any] = []
    if schema is not None:
        sql += " AND table_schema = $1"
        parameters.append(schema)
    rows = pl.from_arrow(_fetch_arrow(connection, location, sql, parameters))
    assert isinstance(rows, pl.DataFrame)
    return sorted(name if owner == default else f"{owner}.{name}"
                  for owner, name in rows.iter_rows())


def _read_error(exc: Exception, connection: Any, location: DatabaseURI,
                input_name: str) -> Exception:
    """A failed read as a one-line error naming the table or column."""
    message = str(exc)
    if location.engine == "postgresql":
        connection.rollback()
    table = re.search(r'relation "([^"]+)" does not exist|Table with name (\S+) does not exist',
                      message)
    if table:
        missing = table.group(1) or table.group(2)
        schema = location.table.split(".")[0] if location.table and "." in location.table \
            else None
        return TableNotFoundError.from_missing(
            location.display, location.table or missing, _table_names(connection, location,
                                                                      schema))
    column = re.search(r'column "([^"]+)" does not exist|column "([^"]+)" not found', message)
    if column:
        name = column.group(1) or column.group(2)
        return ColumnNotFoundError(f"{location.display}: no column {name!r} in the tables "
                                   "the query reads")
    first = re.sub(r"^[A-Z_]+: (Failed to prepare query: )?", "", _first_line(exc))
    first = re.sub(r"^\[libpq\] .*?ERROR:\s+", "", first)
    return DatabaseError(f"{location.display}: cannot read {input_name}: {first}")


#: the column that identifies a row of each input when its table has no primary key
ID_COLUMNS = {"touchpoints": "touchpoint_id", "deals": "deal_id", "contacts": "contact_id"}

#: PostgreSQL's catalogue, not information_schema: the latter shows the constraints only of
#: tables the user owns or may change, and an analyst who may only read would see no key
_POSTGRES_PRIMARY_KEY_SQL = (
    "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
    "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass($1) AND i.indisprimary "
    "ORDER BY array_position(i.indkey::int2[], a.attnum)"
)
_PRIMARY_KEY_SQL = (
    "SELECT k.column_name FROM information_schema.table_constraints t "
    "JOIN information_schema.key_column_usage k ON k.constraint_name = t.constraint_name "
    "AND k.table_schema = t.table_schema AND k.table_name = t.table_name "
    "WHERE t.constraint_type = 'PRIMARY KEY' AND t.table_schema = $1 AND t.table_name = $2 "
    "ORDER BY k.ordinal_position"
)


def _primary_key(connection: Any, location: DatabaseURI) -> list[str]:
    """The primary key columns of the table a source reads (none for a query or a view)."""
    if location.table is None:
        return []
    if location.engine == "postgresql":
        rows = _fetch_arrow(connection, location, _POSTGRES_PRIMARY_KEY_SQL,
                            [_qualified(location.table)])
        return [str(v) for v in rows.column(0).to_pylist()]
    schema, _, name = location.table.rpartition(".")
    owner = _owner(connection, location, schema or None)
    rows = _fetch_arrow(connection, location, _PRIMARY_KEY_SQL, [owner, name])
    return [str(v) for v in rows.column(0).to_pylist()]


def row_key(frame: pl.DataFrame, primary_key: Sequence[str],
            candidates: Sequence[str]) -> tuple[tuple[str, ...], pl.Series | None]:
    """The columns that key a row of ``frame`` and each row's key as text: the table's
    primary key when the rows hold all of it (a composite key's values joined by ``|``), else
    the first of ``candidates`` (the input's id column, as mapped) that the rows hold, else
    none."""
    if primary_key and all(c in frame.columns for c in primary_key):
        columns = tuple(primary_key)
    else:
        found = next((c for c in candidates if c in frame.columns), None)
        if found is None:
            return (), None
        columns = (found,)
    keys = frame.select(pl.concat_str([pl.col(c).cast(pl.String) for c in columns],
                                      separator="|").alias("key")).to_series()
    return columns, keys


def read_source(uri: str | Path, *, query: str | None = None, input_name: str = "input",
                mapping: Mapping[str, str] | None = None,
                expected: Sequence[str] = (),
                key_candidates: Sequence[str] = ()) -> tuple[pl.DataFrame, SourceInfo]:
    """Read a database table or query into a DataFrame, through Arrow.

    Parameters
    ----------
    uri
        ``postgresql://user@host:port/db?table=schema.name`` (or ``?query=SELECT ...``), or
        ``duckdb:///path/file.duckdb?table=name``; the password from PGPASSWORD or ~/.pgpass.
    query
        The SQL, when it is given apart from the URI (the config's ``query =``).
    input_name
        ``touchpoints``, ``deals``, ``contacts`` or ``spend``: the columns of that input are
        checked to have a type that can hold them (:func:`check_types`), under ``mapping``.
    expected
        Columns that must be there (canonical names, looked up through ``mapping``).
    key_candidates
        The source's names of the input's id column, tried in order when the table has no
        primary key (default: ``mapping``'s name of :data:`ID_COLUMNS`' column, then that
        column); the key found is :attr:`SourceInfo.key` (:func:`row_key`).

    Returns the rows as read (no validation: that is the loader's) and a :class:`SourceInfo`.
    Errors are one line: :class:`DatabaseConnectionError` (names the host),
    :class:`TableNotFoundError`, :class:`ColumnNotFoundError`, :class:`ColumnTypeError`.

    >>> frame, source = read_source("duckdb:///crm.duckdb?table=touchpoints",
    ...                             input_name="touchpoints")      # doctest: +SKIP
    """
    location = parse_uri(uri, query=query)
    if location.table is None and location.query is None:
        raise DatabaseError(f"{location.display}: say what to read with table=schema.name or "
                            "query=SELECT ...")
    if location.table is not None:
        if not all(location.table.split(".")):
            raise DatabaseError(f"{location.display}: bad table name {location.table!r}")
        sql = f"SELECT * FROM {_qualified(location.table)}"
    else:
        assert location.query is not None
        sql = location.query
    with _connect(location) as connection:
        try:
            table, digest = _fetch_digested(connection, location, sql)
            primary_key = _primary_key(connection, location)
        except Exception as exc:  # the drivers' own errors: turned into one line
            if not _is_driver_error(exc):
                raise
            raise _read_error(exc, connection, location, input_name) from None
    frame = pl.from_arrow(table, rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    mapping = dict(mapping or {})
    missing = [mapping.get(c, c) for c in expected if mapping.get(c, c) not in frame.columns]
    if missing:
        raise ColumnNotFoundError.from_missing(location.display, missing, frame.columns)
    check_types(frame, input_name, location.display, mapping)
    if not key_candidates and input_name in ID_COLUMNS:
        identifier = ID_COLUMNS[input_name]
        key_candidates = [mapping.get(identifier, identifier), identifier]
    key, keys = row_key(frame, primary_key, key_candidates)
    return frame, SourceInfo(input_name, location.display, sql, frame.height, digest, key, keys)


def _is_driver_error(exc: Exception) -> bool:
    module = type(exc).__module__ or ""
    # an error the server raises while the rows stream in reaches us through pyarrow's
    # reader of the driver's stream, as an OSError carrying libpq's message
    return (module.startswith(("adbc_driver", "_duckdb", "duckdb"))
            or (isinstance(exc, OSError) and "[libpq]" in str(exc)))


def materialize(uri: str | Path, directory: str | Path, input_name: str, *,
                query: str | None = None, mapping: Mapping[str, str] | None = None,
                key_candidates: Sequence[str] = ()) -> tuple[Path, SourceInfo]:
    """Read a database source (:func:`read_source`) into ``directory/<input_name>.parquet``,
    for the file loader; returns the file and the source's record.

    A bridge until the loader takes frames: the rows are validated exactly as a Parquet export
    would be (the types read are kept; Parquet holds every type :func:`check_types` lets
    through). Rejects then name the file and the row's 1-based position in the rows read; give
    them the source's label and each row's key with :func:`relabel_rejects`.
    """
    frame, source = read_source(uri, query=query, input_name=input_name, mapping=mapping,
                                key_candidates=key_candidates)
    path = Path(directory) / f"{input_name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path, compression="uncompressed", statistics=False)
    return path, source


def relabel_rejects(rejects: pl.DataFrame, files: Mapping[str, SourceInfo]) -> pl.DataFrame:
    """Rejects whose ``file`` is a materialized source's file (``str(path)`` -> its
    :class:`SourceInfo`) named by the source's URI instead, and each one's ``key`` the key of
    the row it names (``row`` is the 1-based position in the rows read: the key is looked up
    there, by the source's :attr:`SourceInfo.keys`)."""
    keyed = [(path, source) for path, source in files.items() if source.keys is not None]
    keys = pl.col("key")
    for path, source in keyed:
        assert source.keys is not None
        looked_up = pl.lit(source.keys).gather(
            pl.col("row").clip(1, max(source.rows, 1)) - 1)
        keys = pl.when(pl.col("file") == path).then(looked_up).otherwise(keys)
    labels = {path: source.uri for path, source in files.items()}
    return rejects.with_columns(keys.alias("key")).with_columns(pl.col("file").replace(labels))


# -- writing ---------------------------------------------------------------------------------
def new_run_id(now: datetime | None = None) -> str:
    """A run id that sorts by time: ``20250304T101500Z-3f9a1c2b``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def sql_type(dtype: pl.DataType, engine: Engine) -> str:
    """The declared SQL type of a column of ``dtype`` (after money became decimals)."""
    text = "TEXT" if engine == "postgresql" else "VARCHAR"
    double = "DOUBLE PRECISION" if engine == "postgresql" else "DOUBLE"
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return text
    if dtype in (pl.Int8, pl.Int16, pl.Int32, pl.UInt8, pl.UInt16):
        return "INTEGER"
    if dtype in (pl.Int64, pl.UInt32):
        return "BIGINT"
    if dtype == pl.UInt64:
        return "NUMERIC(20,0)" if engine == "postgresql" else "UBIGINT"
    if dtype.is_float():
        return double
    if dtype == pl.Boolean:
        return "BOOLEAN"
    if isinstance(dtype, pl.Decimal):
        return f"NUMERIC({dtype.precision or 38},{dtype.scale})"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    if dtype == pl.Date:
        return "DATE"
    raise DatabaseError(f"a result column of type {dtype} has no database type here")


def _storage_dtype(dtype: pl.DataType) -> pl.DataType:
    """The polars type whose Arrow form matches the declared SQL type exactly (binary COPY
    needs the column's own width)."""
    if dtype in (pl.Int8, pl.Int16, pl.UInt8, pl.UInt16):
        return pl.Int32()
    if dtype == pl.UInt32:
        return pl.Int64()
    if dtype == pl.Float32:
        return pl.Float64()
    if isinstance(dtype, pl.Categorical | pl.Enum):
        return pl.String()
    if isinstance(dtype, pl.Datetime):
        return pl.Datetime("us", dtype.time_zone)
    return dtype


Table = pl.DataFrame | pl.LazyFrame


def _prepared(frame: Table, run_id: str, decimals: int = MONEY_SCALE) -> Table:
    """``run_id`` first, money as exact ``Decimal(38, decimals)``, types as they will be
    stored."""
    # money_to_decimal is generic over the two frame kinds: called on the narrowed one
    frame = (money_to_decimal(frame, MONEY_COLUMNS, decimals=decimals)
             if isinstance(frame, pl.DataFrame)
             else money_to_decimal(frame, MONEY_COLUMNS, decimals=decimals))
    frame = frame.with_columns(pl.col(c).cast(_storage_dtype(t))
                               for c, t in frame.collect_schema().items()
                               if _storage_dtype(t) != t)
    return frame.select(pl.lit(run_id, pl.String).alias("run_id"), pl.all())


#: rows of a LazyFrame table collected and sent at a time (each batch one COPY or INSERT, all in
#: the run's one transaction), so a table larger than memory (the credit of a large run,
#: spilled to Parquet parts) is never held whole
WRITE_BATCH_ROWS = 1_000_000
#: rows per Arrow record batch handed to PostgreSQL's binary COPY. The ADBC driver encodes and
#: sends one record batch at a time, so with small batches the server stores one while the
#: client encodes the next (the two overlap); one batch of a million rows is encoded whole
#: before the server sees a byte, and the two then take turns
COPY_BATCH_ROWS = 65_536
#: record batches converted from polars ahead of the one the driver is sending (:class:`_Ahead`)
COPY_BATCHES_AHEAD = 4


def _batches(frame: Table) -> Iterator[pl.DataFrame]:
    """A DataFrame whole; a LazyFrame :data:`WRITE_BATCH_ROWS` rows at a time, in order. The
    next slice of a LazyFrame is collected in a thread while the caller sends the current one
    (polars and the drivers release the GIL), so reading the spilled credit back overlaps
    the copy instead of preceding it."""
    if isinstance(frame, pl.DataFrame):
        yield frame
        return
    from concurrent.futures import ThreadPoolExecutor

    def collect(offset: int) -> pl.DataFrame:
        return frame.slice(offset, WRITE_BATCH_ROWS).collect()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="attribution-db-read") as pool:
        offset = 0
        pending = pool.submit(collect, offset)
        while True:
            batch = pending.result()
            if batch.height < WRITE_BATCH_ROWS:
                if batch.height:
                    yield batch
                return
            offset += WRITE_BATCH_ROWS
            pending = pool.submit(collect, offset)
            yield batch


def _runs_row(run_id: str, record: Mapping[str, Any], started_at: datetime,
              finished_at: datetime) -> pl.DataFrame:
    """The ``runs`` row: the run's headline figures in columns, the whole record as JSON."""
    totals = dict(record.get("totals") or {})
    models = [m.get("name") if isinstance(m, Mapping) else str(m)
              for m in record.get("models") or []]

    def count(name: str) -> int | None:
        # run.json names its money totals by their unit (won_revenue_cents); a record written
        # before that names them without the suffix
        base = name.removesuffix("_cents")
        value = totals.get(f"{base}_cents", totals.get(base))
        return int(value) if value is not None else None

    return pl.DataFrame(
        {
            "run_id": [run_id],
            "started_at": [started_at],
            "finished_at": [finished_at],
            "currency": [record.get("currency")],
            "models": [",".join(str(m) for m in models)],
            "deals": [count("deals")],
            "won_deals": [count("won_deals")],
            "won_revenue_cents": [count("won_revenue_cents")],
            "pipeline_cents": [count("pipeline_cents")],
            "journeys": [count("journeys")],
            "touches": [count("touches")],
            "record": [json_text(record, indent=None, sort_keys=True, default=str)],
        },
        schema={"run_id": pl.String, "started_at": pl.Datetime("us", "UTC"),
                "finished_at": pl.Datetime("us", "UTC"), "currency": pl.String,
                "models": pl.String, "deals": pl.Int64, "won_deals": pl.Int64,
                "won_revenue_cents": pl.Int64, "pipeline_cents": pl.Int64, "journeys": pl.Int64,
                "touches": pl.Int64, "record": pl.String},
    )


def _columns_sql(frame: Table, engine: Engine, name: str) -> str:
    columns = []
    for column, dtype in frame.collect_schema().items():
        declared = sql_type(dtype, engine)
        if name == RUNS_TABLE and column == "record":
            declared = "JSON"  # (PostgreSQL: binary COPY of JSONB wants a version byte)
        columns.append(f"{quote_identifier(column)} {declared}")
    if name == RUNS_TABLE:
        columns.append("PRIMARY KEY (run_id)")
    return ", ".join(columns)


def _existing_columns(connection: Any, location: DatabaseURI, schema: str | None,
                      name: str) -> list[str]:
    """The columns of a table already there, in order (empty: no such table)."""
    sql = ("SELECT column_name FROM information_schema.columns WHERE table_schema = $1 "
           "AND table_name = $2 ORDER BY ordinal_position")
    rows = _fetch_arrow(connection, location, sql, [_owner(connection, location, schema), name])
    return [str(v) for v in rows.column(0).to_pylist()]


def _owner(connection: Any, location: DatabaseURI, schema: str | None) -> str:
    """``schema``, or the connection's current schema (where unqualified names go)."""
    if schema is not None:
        return schema
    return str(_fetch_arrow(connection, location, "SELECT current_schema()").column(0)[0])


def _create(cursor_or_connection: Any, location: DatabaseURI, table: str, ddl: str) -> None:
    sql = f"CREATE TABLE IF NOT EXISTS {table} ({ddl})"
    _execute(cursor_or_connection, location, sql)


def _execute(connection: Any, location: DatabaseURI, sql: str) -> None:
    if location.engine == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql)
    else:
        connection.execute(sql)


def _append(connection: Any, location: DatabaseURI, schema: str | None, name: str,
            frame: Table) -> None:
    """Append ``frame``'s rows to an existing table: PostgreSQL, one binary COPY (ADBC bulk
    ingest) fed a stream of record batches (:func:`_copy_batches`); DuckDB, one INSERT ...
    SELECT from the Arrow table per batch of :func:`_batches`."""
    if location.engine == "postgresql":
        arrow_schema = _arrow_schema(frame)
        with _Ahead(_copy_batches(frame), COPY_BATCHES_AHEAD) as batches:
            reader = pa.RecordBatchReader.from_batches(arrow_schema, batches)
            try:
                with connection.cursor() as cursor:
                    cursor.adbc_ingest(name, reader, mode="append", db_schema_name=schema)
            except Exception:
                # the driver reports a failure of the batches' making as its own error: the
                # original (a polars error, say) is the one to raise
                batches.raise_error()
                raise
            batches.raise_error()
        return
    for batch in _batches(frame):
        if batch.height == 0:
            continue
        connection.register("_attribution_incoming",
                            batch.to_arrow(compat_level=pl.CompatLevel.oldest()))
        try:
            target = _qualified(f"{schema}.{name}" if schema else name)
            connection.execute(f"INSERT INTO {target} BY NAME SELECT * FROM "
                               "_attribution_incoming")
        finally:
            connection.unregister("_attribution_incoming")


def _arrow_schema(frame: Table) -> pa.Schema:
    """The Arrow schema of ``frame``'s batches as :func:`_copy_batches` makes them."""
    empty = frame.clear() if isinstance(frame, pl.DataFrame) else frame.limit(0).collect()
    return empty.to_arrow(compat_level=pl.CompatLevel.oldest()).schema


def _copy_batches(frame: Table) -> Iterator[pa.RecordBatch]:
    """``frame``'s rows as Arrow record batches of at most :data:`COPY_BATCH_ROWS` rows, in
    order, each converted from polars only when it is asked for (never the whole table at
    once)."""
    for part in _batches(frame):
        for piece in part.iter_slices(COPY_BATCH_ROWS):
            yield from piece.to_arrow(compat_level=pl.CompatLevel.oldest()).to_batches()


class _Ahead(Iterator[Any]):
    """The items of ``items``, made on a thread up to ``depth`` ahead of the one taken.

    Used for the record batches of a COPY (the driver encodes and sends a batch while the
    next ones are converted from polars; polars and pyarrow let go of the GIL, so the
    conversion and the send stop waiting for each other) and of a read (the driver decodes
    the next batches while the one before is hashed). The items are made
    in order by one thread, so they come out as ``items`` gives them. An error of the making
    is raised by the next ``next`` (never a silent end: a COPY that saw its stream end would
    store the rows sent so far) and kept for :meth:`raise_error`; leaving the ``with`` block
    stops the thread."""

    _END = object()

    def __init__(self, items: Iterator[Any], depth: int) -> None:
        import queue
        import threading

        self._items = items
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._done = False
        self._thread = threading.Thread(target=self._make, name="attribution-db-batches",
                                        daemon=True)

    def __enter__(self) -> _Ahead:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        while self._thread.is_alive():  # (unblock a put waiting for room)
            self._drain()
            self._thread.join(timeout=0.05)
        self._drain()

    def _drain(self) -> None:
        import queue

        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def _put(self, item: Any) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _make(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
        except BaseException as exc:  # handed to the consumer's thread
            self._error = exc
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()  # (a generator is closed in the thread that runs it)
        self._put(self._END)

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is self._END:
            self._done = True
            if self._error is not None:  # a failed stream, not a short one: the COPY aborts
                raise self._error
            raise StopIteration
        return item

    def raise_error(self) -> None:
        """Raise the error that stopped the making of the items, if one did."""
        if self._error is not None:
            raise self._error


WriteProgress = Callable[[str, int, int], None]


def write_result_set(uri: str | Path, tables: Mapping[str, pl.DataFrame | pl.LazyFrame],
                     record: Mapping[str, Any], *, run_id: str | None = None,
                     started_at: datetime | None = None, finished_at: datetime | None = None,
                     progress: WriteProgress | None = None) -> str:
    """Write a run's result set to a database, in one transaction; returns the run id.

    Parameters
    ----------
    uri
        ``postgresql://user@host:port/db?schema=attribution`` (the schema is created if
        needed; without one, the connection's current schema), ``duckdb:///file.duckdb`` or a
        path ending ``.duckdb``.
    tables
        Name -> frame, money in minor units as everywhere in the library: ``credit``,
        ``summary``, ``comparison``, ``rejects`` and the fitted models' tables
        (``markov_removal_effects``, ...). A LazyFrame (e.g. ``pl.scan_parquet`` of a run's
        credit spilled in parts) is written :data:`WRITE_BATCH_ROWS` rows at a time, never
        held whole. Each becomes a table of that name whose rows carry
        ``run_id`` first; money columns (:data:`attribution.schema.MONEY_COLUMNS`) are stored
        as exact ``NUMERIC(38,d)``, ``d`` the record's currency's ISO 4217 decimals (2 for
        USD); the types are declared from the frames' schemas. A table that already exists must
        have the same columns, and money of the same scale.
    record
        The run record (as run.json): stored whole as JSON in the ``runs`` row, whose columns
        also hold the currency, model names and totals (``totals``: deals, won_deals,
        won_revenue, pipeline, journeys, touches; money in minor units).
    run_id, started_at, finished_at
        Default: :func:`new_run_id`, and the time of the write.
    progress
        Called ``(f"write {table}", done, total)`` after each table is written (inside the
        transaction).

    A failure at any point (or a killed process) leaves the database as it was: the tables are
    created and the rows copied in one transaction, committed at the end.
    """
    location = parse_uri(uri)
    if location.table is not None or location.query is not None:
        raise DatabaseError(f"{location.display}: an output takes schema=, not table= or query=")
    now = datetime.now(UTC)
    run_id = run_id or new_run_id(now)
    decimals = currency_decimals(str(record.get("currency") or "USD"))
    runs = money_to_decimal(_runs_row(run_id, record, started_at or now, finished_at or now),
                            MONEY_COLUMNS, decimals=decimals)
    prepared: dict[str, Table] = {RUNS_TABLE: runs}
    for name, frame in tables.items():
        if name == RUNS_TABLE or not _IDENTIFIER.match(name):
            raise DatabaseError(f"{location.display}: cannot write a result table named "
                                f"{name!r}")
        prepared[name] = _prepared(frame, run_id, decimals)
    schema = location.schema
    report = progress or (lambda _stage, _done, _total: None)
    with _connect(location, write=True) as connection:
        try:
            if location.engine == "duckdb":
                connection.begin()
            if schema is not None:
                _execute(connection, location,
                         f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}")
            for done, (name, frame) in enumerate(prepared.items()):
                table = _qualified(f"{schema}.{name}" if schema else name)
                existing = _existing_columns(connection, location, schema, name)
                columns = frame.collect_schema().names()
                if existing and existing != columns:
                    raise DatabaseError(
                        f"{location.display}: table {name!r} has columns "
                        f"{', '.join(existing)}; this run's {name} has "
                        f"{', '.join(columns)}; write to another schema or database"
                    )
                scales = set(_numeric_scales(connection, location, schema, name).values())
                if existing and scales - {decimals}:
                    # a NUMERIC column would round this run's money (or read another scale's
                    # runs back in the wrong minor unit)
                    raise DatabaseError(
                        f"{location.display}: table {name!r} holds money to "
                        f"{', '.join(map(str, sorted(scales)))} decimals; this run's currency "
                        f"{record.get('currency')} has {decimals} (ISO 4217); write to "
                        "another schema or database"
                    )
                if not existing:
                    _create(connection, location, table,
                            _columns_sql(frame, location.engine, name))
                _append(connection, location, schema, name, frame)
                report(f"write {name}", done + 1, len(prepared))
            connection.commit()
        except Exception as exc:
            connection.rollback()
            if isinstance(exc, DatabaseError) or not _is_driver_error(exc):
                raise
            raise DatabaseError(f"{location.display}: cannot write the results: "
                                f"{_first_line(exc)}") from None
    return run_id


# -- reading results back --------------------------------------------------------------------
def _numeric_scales(connection: Any, location: DatabaseURI, schema: str | None,
                    name: str) -> dict[str, int]:
    """The money (NUMERIC) columns of a table and their scales (empty: no such table)."""
    sql = ("SELECT column_name, CAST(numeric_scale AS INTEGER) FROM information_schema.columns "
           "WHERE table_schema = $1 AND table_name = $2 "
           "AND (data_type = 'numeric' OR data_type LIKE 'DECIMAL(%') ORDER BY ordinal_position")
    rows = _fetch_arrow(connection, location, sql, [_owner(connection, location, schema), name])
    return {str(c): int(d) for c, d in zip(rows.column(0).to_pylist(),
                                           rows.column(1).to_pylist(), strict=True)}


def _select_with_cents(connection: Any, location: DatabaseURI, schema: str | None, name: str,
                       where: str, parameters: Sequence[Any], order: str) -> pl.DataFrame:
    """``SELECT`` a result table, its money columns back as BIGINT minor units (exact), named
    by their unit as in the library's tables (``revenue_credit`` -> ``revenue_credit_cents``)."""
    columns = _existing_columns(connection, location, schema, name)
    if not columns:
        raise TableNotFoundError.from_missing(
            location.display, name, _table_names(connection, location, schema))
    money = _numeric_scales(connection, location, schema, name)
    selected = ", ".join(
        f"CAST({quote_identifier(c)} * {10 ** money[c]} AS BIGINT) AS "
        f"{quote_identifier(c + '_cents')}"
        if c in money else quote_identifier(c) for c in columns)
    table = _qualified(f"{schema}.{name}" if schema else name)
    sql = f"SELECT {selected} FROM {table} {where} {order}"
    try:
        frame = pl.from_arrow(_plain_arrow(_fetch_arrow(connection, location, sql, parameters)))
    except Exception as exc:
        if not _is_driver_error(exc):
            raise
        raise DatabaseError(f"{location.display}: cannot read {name}: {_first_line(exc)}") \
            from None
    assert isinstance(frame, pl.DataFrame)
    # DuckDB gives TIMESTAMPTZ in the session's zone (e.g. Etc/UTC): the library's is UTC
    return frame.with_columns(pl.col(c).dt.convert_time_zone("UTC")
                              for c, t in frame.schema.items()
                              if isinstance(t, pl.Datetime) and t.time_zone not in (None, "UTC"))


def result_table(uri: str | Path, name: str, run_id: str) -> pl.DataFrame:
    """One result table of one run (without ``run_id``) as its Parquet file holds it: money
    as exact ``Decimal(38,d)`` major units (``d``: the table's scale, its runs' currency's
    decimals), estimates as float major units. The rows' order is
    not kept by a database: sort to compare."""
    location = parse_uri(uri)
    with _connect(location) as connection:
        scales = _numeric_scales(connection, location, location.schema, name)
        frame = _select_with_cents(connection, location, location.schema, name,
                                   "WHERE run_id = $1", [run_id], "")
    # (a table holds money of one scale: write_result_set refuses a run of another)
    decimals = max(scales.values(), default=MONEY_SCALE)
    return money_to_decimal(frame.drop("run_id"), [f"{c}_cents" for c in scales],
                            decimals=decimals)


def history(uri: str | Path) -> pl.DataFrame:
    """One row per run, oldest first: run_id, started_at, finished_at, currency, models, deals,
    won_deals, won_revenue_cents, pipeline_cents (minor units), journeys, touches."""
    location = parse_uri(uri)
    with _connect(location) as connection:
        return _history(connection, location)


def _history(connection: Any, location: DatabaseURI) -> pl.DataFrame:
    runs = _select_with_cents(connection, location, location.schema, RUNS_TABLE, "", [],
                              "ORDER BY started_at, run_id")
    return runs.drop("record")


def run_record(uri: str | Path, run_id: str) -> dict[str, Any]:
    """The record (run.json) of one run."""
    location = parse_uri(uri)
    table = _qualified(f"{location.schema}.{RUNS_TABLE}" if location.schema else RUNS_TABLE)
    with _connect(location) as connection:
        rows = _fetch_arrow(connection, location,
                            f"SELECT CAST(record AS TEXT) FROM {table} WHERE run_id = $1",
                            [run_id])
    values = rows.column(0).to_pylist()
    if not values:
        raise DatabaseError(f"{location.display}: no run {run_id!r}")
    return dict(json.loads(values[0]))


def channel_history(uri: str | Path, channel: str, model: str, *,
                    last: int | None = None) -> pl.DataFrame:
    """That channel's credit and share in every run of ``model``, oldest first (the last
    ``last`` runs when given): run_id, started_at, model, channel, channel_group,
    deals_touched, pipeline_credit_cents, revenue_credit_cents (minor units), pipeline_share,
    revenue_share. A run of the model in which the channel got no credit has zeros.
    An unknown model or channel raises :class:`DatabaseError` listing the known ones."""
    location = parse_uri(uri)
    schema = location.schema
    with _connect(location) as connection:
        summary = _select_with_cents(connection, location, schema, "summary",
                                     "WHERE model = $1", [model], "")
        if summary.is_empty():
            known = _fetch_arrow(connection, location, "SELECT DISTINCT model FROM "
                                 f"{_qualified(f'{schema}.summary' if schema else 'summary')}")
            _unknown("model", model, known.column(0).to_pylist(), location.display)
        runs = _history(connection, location).select("run_id", "started_at")
    if channel not in set(summary.get_column("channel").to_list()):
        _unknown("channel", channel, summary.get_column("channel").unique().to_list(),
                 location.display, f" in the runs of model {model!r}")
    ran = runs.join(summary.select("run_id").unique(), on="run_id", how="semi")
    rows = summary.filter(pl.col("channel") == channel).drop("model", "channel")
    group = rows.get_column("channel_group").drop_nulls()
    trend = ran.join(rows, on="run_id", how="left", maintain_order="left").with_columns(
        pl.lit(model).alias("model"),
        pl.lit(channel).alias("channel"),
        pl.col("channel_group").fill_null(group[0] if group.len() else None),
        *[pl.col(c).fill_null(0) for c in ("deals_touched", "pipeline_credit_cents",
                                           "revenue_credit_cents", "conversion_credit",
                                           "pipeline_share", "revenue_share")
          if c in rows.columns],
    )
    trend = trend.select("run_id", "started_at", "model", "channel", "channel_group",
                         *[c for c in ("deals_touched", "pipeline_credit_cents",
                                       "revenue_credit_cents",
                                       "conversion_credit", "pipeline_share", "revenue_share")
                           if c in trend.columns])
    return trend.tail(last) if last is not None else trend


def channel_trend(uri: str | Path, model: str, *, last: int | None = None) -> pl.DataFrame:
    """Every channel's credit in each of the runs of ``model`` (the last ``last`` runs when
    given), oldest run first: run_id, started_at, channel, channel_group, pipeline_credit,
    revenue_credit (minor units), pipeline_share, revenue_share; a row per run and channel
    credited in any of those runs (a run that did not credit a channel has zeros). The
    same tables :func:`channel_history` reads; empty when no stored run ran ``model``."""
    location = parse_uri(uri)
    schema = location.schema
    with _connect(location) as connection:
        summary = _select_with_cents(connection, location, schema, "summary",
                                     "WHERE model = $1", [model], "")
        runs = _history(connection, location).select("run_id", "started_at")
    ran = runs.join(summary.select("run_id").unique(), on="run_id", how="semi")
    if last is not None:
        ran = ran.tail(last)
    rows = summary.join(ran, on="run_id", how="semi")
    money = ["pipeline_credit_cents", "revenue_credit_cents", "pipeline_share", "revenue_share"]
    channels = (rows.group_by("channel").agg(pl.col("channel_group").drop_nulls().first())
                .sort("channel"))
    grid = ran.with_row_index("_run").join(channels, how="cross")
    trend = grid.join(rows.select("run_id", "channel", *money), on=["run_id", "channel"],
                      how="left").with_columns(pl.col(c).fill_null(0) for c in money)
    return trend.sort("_run", "channel").select("run_id", "started_at", "channel",
                                                "channel_group", *money)


def _unknown(what: str, name: str, known: Sequence[Any], source: str, where: str = "") -> None:
    import difflib

    names = sorted(str(k) for k in known if k is not None)
    close = difflib.get_close_matches(name, names, n=1)
    guess = f" (did you mean {close[0]!r}?)" if close else ""
    raise DatabaseError(f"{source}: no {what} {name!r}{where}{guess}; "
                        f"{what}s: {', '.join(names) or 'none'}")


__all__ = [
    "ArrowDigest",
    "DatabaseURI",
    "SourceInfo",
    "arrow_digest",
    "channel_history",
    "channel_trend",
    "check_types",
    "history",
    "is_database_uri",
    "materialize",
    "new_run_id",
    "parse_uri",
    "read_source",
    "relabel_rejects",
    "result_table",
    "row_key",
    "run_record",
    "write_result_set",
]
