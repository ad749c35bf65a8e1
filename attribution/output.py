"""Write result tables as Parquet, CSV or JSON, with money as decimals.

Inside the library money is integer minor units of the run's currency; here it becomes
``Decimal(38, d)`` for Parquet and CSV (``48250.00``) and a JSON number written with exactly
``d`` decimals (``48250.00``: from the integer, never through a float, so
``json.loads(text, parse_float=Decimal)`` reads it back exactly; :func:`json_text`,
:func:`write_json_table`), ``d`` being the currency's ISO 4217 minor unit (2 for USD, 3 for
KWD, 0 for JPY), so every minor unit is kept exactly. Same input, same
bytes out: the writers are given frames in a fixed order and no timestamps of their own.

CSV is opened by spreadsheets, which run a cell that starts with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return as a formula (``=HYPERLINK(...)``). Every CSV writer here neutralises
such text cells the OWASP way (a single quote before the text, and the cell quoted):
``=1+2`` is written ``"'=1+2"``. Numbers are never touched: number columns are not text, and a
text cell that is a plain signed number (``-12500.00`` in the rejects' ``value``) cannot carry a
formula, so it stays as it is. ``csv_raw=True`` (``--csv-raw``) writes the values exactly;
Parquet and JSON always keep them exact.
"""

from __future__ import annotations

import contextlib
import json
import math
import queue
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from attribution.schema import MONEY_COLUMNS, major_name

EXTENSIONS = {"parquet": ".parquet", "csv": ".csv", "json": ".json"}
FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


#: rows per Parquet row group: fixed, so a file's bytes never depend on how the frame happened
#: to be chunked in memory
ROW_GROUP_ROWS = 250_000
#: zstd level 1 rather than the default 3: a slightly larger file, written faster (the
#: measurements: bench/RESULTS.md)
ZSTD_LEVEL = 1


#: the decimals of money in major units unless a writer is told the run's currency (USD's
#: two; :func:`attribution.schema.currency_decimals` gives every currency's)
DECIMALS = 2


def _minor_unit(decimals: int) -> pl.Expr:
    """One minor unit as ``Decimal(38, decimals)`` (``0.01`` for two decimals): minor units as
    ``Decimal(38, 0)`` times it are the amount, exactly (the scales add, 0 + decimals, and the
    unscaled value is the minor units themselves), with no division."""
    return pl.lit(Decimal(1).scaleb(-decimals), pl.Decimal(38, decimals))


def money_to_decimal(frame: FrameT, columns: Iterable[str] = MONEY_COLUMNS, *,
                     decimals: int = DECIMALS) -> FrameT:
    """Minor-unit money columns as exact ``Decimal(38, decimals)`` major units (of a DataFrame
    or a LazyFrame; ``decimals``: the run's currency's ISO 4217 minor unit, 3 for KWD); float
    ones (estimates such as share x total revenue) as float major units. A column named by
    its unit (``*_cents``) takes its name without the suffix
    (:func:`~attribution.schema.major_name`)."""
    schema = frame.collect_schema()
    present: list[str] = [c for c in schema.names()
                          if c in set(columns) and schema[c].is_integer()]
    estimates: list[str] = [c for c in schema.names()
                            if c in set(columns) and schema[c].is_float()]
    unit = _minor_unit(decimals)
    names = _major_names([*present, *estimates])
    return frame.with_columns(
        *[(pl.col(c).cast(pl.Decimal(38, 0)) * unit).alias(c) for c in present],
        # shares x totals: not exact minor units
        *[(pl.col(c) / 10 ** decimals).alias(c) for c in estimates],
    ).rename(names)


def _major_names(columns: Iterable[str]) -> dict[str, str]:
    """The money columns named by their unit (``*_cents``) -> their names in major units."""
    return {c: major_name(c) for c in columns if major_name(c) != c}


def money_to_float(frame: pl.DataFrame, columns: Iterable[str] = MONEY_COLUMNS, *,
                   decimals: int = DECIMALS) -> pl.DataFrame:
    """Minor-unit money columns (integer or float) as floats in major units (``decimals``: the
    currency's minor unit). An integer column goes through the exact decimal, so each float is
    the one nearest the amount (``5152820`` -> ``51528.2``; polars' division by ``100`` gives
    ``51528.200000000004``)."""
    whole = [c for c in frame.columns if c in set(columns) and frame.schema[c].is_integer()]
    present = [c for c in frame.columns
               if c in set(columns)
               and (frame.schema[c].is_integer() or frame.schema[c].is_float())]
    unit = _minor_unit(decimals)
    return frame.with_columns(
        [(pl.col(c).cast(pl.Decimal(38, 0)) * unit).cast(pl.Float64).alias(c) for c in whole]
        + [(pl.col(c) / 10 ** decimals).alias(c) for c in present if c not in whole]
    ).rename(_major_names(present))


#: what starts a cell a spreadsheet would run as a formula (OWASP, "CSV Injection")
FORMULA_START = r"^[=+\-@\t\r]"
#: a plain signed decimal number: it starts with + or - but holds no formula
PLAIN_NUMBER = r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$"


def _formula(text: pl.Expr) -> pl.Expr:
    return text.str.contains(FORMULA_START) & ~text.str.contains(PLAIN_NUMBER)
#: what makes polars quote a text cell (``quote_style="necessary"``): the separator, a quote, a
#: line break, or nothing at all (an empty text, told apart from a null)
_NEEDS_QUOTES = r'[,"\n\r]'


def _text_columns(schema: pl.Schema) -> list[str]:
    return [name for name, dtype in schema.items() if dtype == pl.String]


def has_formula_cells(frame: pl.DataFrame | pl.LazyFrame) -> bool:
    """Whether any text cell of ``frame`` starts like a formula (one pass over its text
    columns; a LazyFrame is scanned by the streaming engine)."""
    columns = _text_columns(frame.collect_schema())
    if not columns:
        return False
    found = frame.lazy().select(
        pl.any_horizontal([_formula(pl.col(c)).any() for c in columns])
    ).collect(engine="streaming")
    return bool(found.item())


def neutralise_formulas(frame: FrameT) -> FrameT:
    """``frame`` with every text column written out as CSV fields by hand: a cell that starts
    like a formula becomes ``"'=..."`` (quoted, a single quote first, quotes doubled); the
    others are quoted exactly when polars would quote them. Write the result with
    ``quote_style="never"``: the text columns carry their own quotes, and the other columns
    (numbers, decimals, dates, booleans) never need any."""
    def field(name: str) -> pl.Expr:
        text = pl.col(name)
        doubled = text.str.replace_all('"', '""', literal=True)
        formula = _formula(text)
        quoted = formula | text.str.contains(_NEEDS_QUOTES) | (text == "")
        return (
            pl.when(formula).then(pl.concat_str([pl.lit("\"'"), doubled, pl.lit('"')]))
            .when(quoted).then(pl.concat_str([pl.lit('"'), doubled, pl.lit('"')]))
            .otherwise(text)
            .alias(name)
        )

    return frame.with_columns([field(c) for c in _text_columns(frame.collect_schema())])


def write_csv(frame: pl.DataFrame | pl.LazyFrame, path: Path, *, csv_raw: bool = False,
              formulas: bool | None = None) -> Path:
    """Write ``frame`` as CSV to ``path`` as it is (money columns untouched: convert them with
    :func:`money_to_decimal` first when wanted), formula cells neutralised unless
    ``csv_raw``. A frame without a formula cell is written byte for byte as polars writes it.
    ``formulas`` says whether ``frame`` has formula cells when the caller already knows
    (:class:`TableParts` checks each part as it spills it); None checks here, a pass over the
    text columns."""
    if not csv_raw and formulas is None:
        formulas = has_formula_cells(frame)
    if isinstance(frame, pl.DataFrame):
        if csv_raw or not formulas:
            frame.write_csv(path)
        else:
            neutralise_formulas(frame).write_csv(path, quote_style="never")
    elif csv_raw or not formulas:
        frame.sink_csv(path)
    else:
        neutralise_formulas(frame).sink_csv(path, quote_style="never")
    return path


def csv_text(frame: pl.DataFrame, *, csv_raw: bool = False) -> str:
    """``frame`` as CSV text (for stdout), formula cells neutralised unless ``csv_raw``."""
    if csv_raw or not has_formula_cells(frame):
        return frame.write_csv()
    return neutralise_formulas(frame).write_csv(quote_style="never")


def write_table(frame: pl.DataFrame | pl.LazyFrame, directory: Path, stem: str,
                fmt: str, *, csv_raw: bool = False, formulas: bool | None = None,
                decimals: int = DECIMALS) -> Path:
    """Write ``frame`` to ``directory/stem.<ext>`` in ``fmt``, money in major units to
    ``decimals`` (the currency's minor unit); returns the path written. CSV text cells that
    start like a formula are neutralised unless ``csv_raw`` (``formulas`` as in
    :func:`write_csv`)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}{EXTENSIONS[fmt]}"
    width = frame.collect_schema().len()
    # Parquet and CSV are written by the streaming engine, a batch of rows at a time, so the
    # money columns become decimals a batch at a time: converting them on the whole frame
    # first would re-chunk and copy a credit table of millions of rows
    if fmt == "parquet" and width:
        money_to_decimal(frame.lazy(), decimals=decimals).sink_parquet(
            path, compression="zstd", compression_level=ZSTD_LEVEL, statistics=False,
            row_group_size=ROW_GROUP_ROWS,
        )
    elif fmt == "parquet":
        frame.lazy().collect().write_parquet(path, compression="zstd",
                                             compression_level=ZSTD_LEVEL, statistics=False)
    elif fmt == "csv" and width:
        write_csv(money_to_decimal(frame.lazy(), decimals=decimals), path, csv_raw=csv_raw,
                  formulas=formulas)
    elif fmt == "csv":
        frame.lazy().collect().write_csv(path)  # a header alone (no columns: no cells)
    else:
        write_json_table(frame, path, decimals=decimals)
    return path


def write_json_table(frame: pl.DataFrame | pl.LazyFrame, path: Path, *,
                     decimals: int = DECIMALS) -> Path:
    """``frame`` as a JSON list of objects (polars' JSON), money in major units: whole minor
    units as exact decimal numbers with ``decimals`` places (``51528.20``, never through a
    float), estimates as floats. Written :data:`ROW_GROUP_ROWS` rows at a time."""
    table = money_to_decimal(frame.lazy(), decimals=decimals).collect()
    exact = [c for c, t in table.schema.items() if isinstance(t, pl.Decimal)]
    # polars writes a decimal as a JSON string ("51528.20"): written as text and unquoted
    # below, by its key, which JSON escaping makes unambiguous (a quote inside a string is \")
    table = table.with_columns(pl.col(exact).cast(pl.String))
    unquote = (re.compile('"(' + "|".join(re.escape(json.dumps(c)[1:-1]) for c in exact)
                          + ')":"(-?[0-9]+(?:\\.[0-9]+)?)"') if exact else None)
    with path.open("w", encoding="utf-8") as sink:
        sink.write("[")
        for offset in range(0, table.height, ROW_GROUP_ROWS):
            text = table.slice(offset, ROW_GROUP_ROWS).write_json()[1:-1]
            if unquote is not None:
                text = unquote.sub(r'"\1":\2', text)
            sink.write(("," if offset else "") + text)
        sink.write("]")
    return path


class TableParts:
    """Writes a table handed over in parts (each model's credit, as the run allocates it) to
    ``directory/stem.<ext>``, byte for byte as :func:`write_table` writes the parts'
    concatenation, while holding at most two parts (one being spilled, the caller's next).
    Parquet and CSV results are streamed from the spilled parts; a JSON result is one
    document, made from the parts read back whole.

    Each part is spilled to an uncompressed Parquet file in a scratch folder inside
    ``directory`` (on a background thread, while the run goes on: at most one part waits);
    on :meth:`close` the parts stream into the result file, and the scratch folder is removed
    (also when the run fails: use it as a context manager). The scratch folder needs room for
    an uncompressed copy of the table. Of the spill formats measured (bench/RESULTS.md) this
    one cost least, writing and reading back::

        with TableParts(out, "credit", "parquet", CREDIT_SCHEMA) as parts:
            result = pipeline.run(config, keep_credit=False, on_credit=parts.add)
            path = parts.close()

    A Parquet result whose money's minor unit is known before the first part
    (:meth:`stream`) is not spilled at all: each part goes straight into the result file
    (:class:`PartStream`), which saves writing the table twice and reading it back.
    """

    def __init__(self, directory: Path, stem: str, fmt: str, schema: pl.Schema, *,
                 csv_raw: bool = False) -> None:
        self.directory, self.stem, self.fmt, self.schema = directory, stem, fmt, schema
        self.csv_raw = csv_raw
        # whether a part spilled so far has a formula cell (a CSV result is checked part by
        # part on the spill thread, while the run goes on, not by a pass over the spilled parts)
        self._formulas = False
        self._scratch: Path | None = None
        self._parts: list[Path] = []
        self._writer: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None
        self._stream: PartStream | None = None
        self._closed = False

    def stream(self, decimals: int) -> None:
        """Write the parts straight into the result file as they are added, money to
        ``decimals`` (the run's currency's minor unit; :meth:`close` must be given the same),
        instead of spilling them: for a Parquet result, called before the first part (other
        formats, or a call after the first part, keep spilling)."""
        if self.fmt != "parquet" or self._parts or self._stream is not None or self._closed:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self._stream = PartStream(self.directory, self.stem, self.schema, decimals)

    def add(self, frame: pl.DataFrame) -> None:
        """Spill one part (a frame with :attr:`schema`); raises what spilling the previous
        part raised."""
        if self._closed:
            raise RuntimeError(f"{self.stem}: parts added after the table was written")
        if self._stream is not None:
            self._stream.add(frame.select(list(self.schema)).cast(self.schema))
            return
        self._wait()
        if self._scratch is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._scratch = Path(tempfile.mkdtemp(prefix=f".{self.stem}.parts.",
                                                  dir=self.directory))
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="attribution-spill")
        part = self._scratch / f"{len(self._parts):05d}.parquet"
        frame = frame.select(list(self.schema)).cast(self.schema)
        assert self._writer is not None
        self._pending = self._writer.submit(self._spill, frame, part)
        self._parts.append(part)

    def _spill(self, frame: pl.DataFrame, part: Path) -> None:
        frame.write_parquet(part, compression="uncompressed", statistics=False)
        if self.fmt == "csv" and not self.csv_raw and not self._formulas:
            self._formulas = has_formula_cells(frame)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self, *, decimals: int = DECIMALS) -> Path:
        """Write the result file from the parts given so far (none: an empty table with
        :attr:`schema`), money to ``decimals`` (the run's currency's minor unit, known once the
        run is done), and remove the scratch folder; returns the path written."""
        self._closed = True
        try:
            if self._stream is not None:
                return self._stream.close(decimals)
            self._wait()
            if self._parts:  # (paths, not patterns: an out folder may be named "[2025]")
                table: pl.LazyFrame | pl.DataFrame = pl.scan_parquet(self._parts, glob=False)
            else:
                table = pl.DataFrame(schema=self.schema)
            return write_table(table, self.directory, self.stem, self.fmt, csv_raw=self.csv_raw,
                               formulas=self._formulas, decimals=decimals)
        finally:
            self.discard()

    def discard(self) -> None:
        """Remove the scratch folder and its parts (after the part being spilled, if any); a
        result file being streamed and not closed is stopped and removed."""
        if self._stream is not None:
            self._stream.abort()
            self._stream = None
        if self._writer is not None:
            self._writer.shutdown(wait=True)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        self._scratch, self._parts, self._writer, self._pending = None, [], None, None

    def __enter__(self) -> TableParts:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.discard()


class PartStream:
    """A Parquet table written from parts handed over one at a time, as they come: the
    streaming engine's Parquet sink (:func:`write_table`) reads them from a Python source
    (``register_io_source``) on a thread of its own, so the file is written once, while the
    caller makes the next part. The bytes are :func:`write_table`'s of the parts'
    concatenation: its row groups have a fixed size (:data:`ROW_GROUP_ROWS`), whatever the
    parts' sizes.

    A part goes to the sink a row group's worth of rows at a time, and :meth:`add` returns once
    the sink has asked for the part's last rows, so that, but for the few row groups the sink
    is still encoding, the caller holds only the part it makes next (the sink asks for rows as
    it writes them); :meth:`close` waits for the file and raises what writing it raised;
    :meth:`abort` stops the sink and removes the unfinished file.
    """

    #: what the caller puts after the last part (the end of the table) or to stop the write
    _END, _ABORT = object(), object()

    def __init__(self, directory: Path, stem: str, schema: pl.Schema, decimals: int) -> None:
        self.path = directory / f"{stem}{EXTENSIONS['parquet']}"
        self.schema, self.decimals = schema, decimals
        # one slot: a part waits there until the sink takes it; a task is done once the sink
        # asks for the part after it
        self._queue: queue.Queue[object] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._done = False
        self._thread = threading.Thread(
            target=self._write, args=(directory, stem), name="attribution-stream", daemon=True)
        self._thread.start()

    def _parts(self, with_columns: list[str] | None, predicate: pl.Expr | None,
               n_rows: int | None, _batch_size: int | None) -> Iterator[pl.DataFrame]:
        # the sink reads every column and row; a projection or a filter is honoured anyway
        while True:
            part = self._queue.get()
            try:
                if part is self._END:
                    return
                if part is self._ABORT:
                    raise RuntimeError(f"{self.path.name}: the write was stopped")
                assert isinstance(part, pl.DataFrame)
                if with_columns is not None:
                    part = part.select(with_columns)
                if predicate is not None:
                    part = part.filter(predicate)
                if n_rows is not None:
                    part, n_rows = part.head(n_rows), n_rows - min(n_rows, part.height)
                for offset in range(0, part.height, ROW_GROUP_ROWS):
                    yield part.slice(offset, ROW_GROUP_ROWS)
            finally:
                part = None  # not held while the next one is awaited
                self._queue.task_done()

    def _write(self, directory: Path, stem: str) -> None:
        from polars.io.plugins import register_io_source

        try:
            table = register_io_source(self._parts, schema=self.schema)
            write_table(table, directory, stem, "parquet", decimals=self.decimals)
        except BaseException as exc:  # handed to the caller by add() or close()
            self._error = exc

    def _taken(self) -> None:
        """Wait until the sink has asked for the last rows of the part handed over (or has
        stopped)."""
        tasks = self._queue.all_tasks_done
        with tasks:
            while self._queue.unfinished_tasks and self._thread.is_alive():
                tasks.wait(0.1)

    def _put(self, item: object) -> None:
        """Hand ``item`` over once the sink has taken the one before; raises what the sink
        raised when it stopped."""
        self._taken()
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        if self._error is not None:
            raise self._error
        raise RuntimeError(f"{self.path.name}: the writer stopped before the table ended")

    def add(self, frame: pl.DataFrame) -> None:
        """Hand over the next part and wait until the sink has taken it; raises what writing
        the file raised so far."""
        self._put(frame)
        self._taken()
        if self._error is not None:
            raise self._error

    def close(self, decimals: int) -> Path:
        """End the table and wait for the file; returns its path."""
        if decimals != self.decimals:
            raise ValueError(f"{self.path.name}: streamed with {self.decimals} decimals, "
                             f"closed with {decimals}")
        self._put(self._END)
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._done = True
        return self.path

    def abort(self) -> None:
        """Stop the write if it runs and remove the file, unless :meth:`close` finished it."""
        if self._done:
            return
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._put(self._ABORT)
            self._thread.join()
        self.path.unlink(missing_ok=True)


def major_decimal(cents: int, decimals: int = DECIMALS) -> Decimal:
    """Integer minor units as an exact :class:`~decimal.Decimal` in major units with exactly
    ``decimals`` places (``major_decimal(5152820) == Decimal("51528.20")``, ``major_decimal(5,
    3) == Decimal("0.005")``, ``major_decimal(1234, 0) == Decimal("1234")``): no float, so no
    ``51528.200000000004``."""
    return Decimal(int(cents)).scaleb(-decimals)


def _json_value(value: Any, money: bool, decimals: int) -> Any:
    """One cell as a JSON-ready value: money in minor units as an exact decimal in major units
    (an integer) or a float in major units (an estimate)."""
    if not money or value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return major_decimal(value, decimals)
    if isinstance(value, float):  # an estimate (share x total): not whole minor units
        return value / 10 ** decimals
    return value


def json_records(frame: pl.DataFrame, *, decimals: int = DECIMALS,
                 columns: Iterable[str] = MONEY_COLUMNS) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts for :func:`json_text`: money columns in minor units
    (``*_cents``, named without the suffix) in major units to ``decimals`` (the currency's minor
    unit), as exact :class:`~decimal.Decimal` when they are whole minor units (floats when
    they are estimates), datetimes as ISO text (``Z``) and dates as ISO dates."""
    money = set(columns)
    frame = frame.with_columns(
        [pl.col(c).dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ")
         for c, t in frame.schema.items() if isinstance(t, pl.Datetime)]
        + [pl.col(c).dt.to_string("%Y-%m-%d")
           for c, t in frame.schema.items() if isinstance(t, pl.Date)])
    names = {c: (major_name(c) if c in money else c) for c in frame.columns}
    return [{names[c]: _json_value(v, c in money, decimals) for c, v in row.items()}
            for row in frame.iter_rows(named=True)]


def _json_float(value: float) -> str:
    """A float as :func:`json.dumps` writes it (``NaN`` and ``Infinity`` included)."""
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    return float.__repr__(value)


def _json_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is True or key is False or key is None:
        return json.dumps(key)
    if isinstance(key, float):
        return _json_float(key)
    if isinstance(key, int | Decimal):
        return str(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def json_text(document: Any, *, indent: int | None = 2, sort_keys: bool = False,
              default: Callable[[Any], Any] | None = None) -> str:
    """``document`` as JSON text, as :func:`json.dumps` writes it with the same arguments,
    except that a :class:`~decimal.Decimal` is written as the number it is, digit for digit
    (``Decimal("51528.20")`` -> ``51528.20``), never through a float: money from
    :func:`json_records` and :func:`major_decimal` reads back exactly
    (``json.loads(text, parse_float=Decimal)``)."""
    item_separator, key_separator = ("," if indent is not None else ", "), ": "
    parts: list[str] = []
    seen: set[int] = set()

    def encode(value: Any, level: int) -> None:
        if isinstance(value, str):
            parts.append(json.encoder.encode_basestring_ascii(value))
        elif value is None:
            parts.append("null")
        elif value is True:
            parts.append("true")
        elif value is False:
            parts.append("false")
        elif isinstance(value, int):
            parts.append(int.__repr__(value))
        elif isinstance(value, float):
            parts.append(_json_float(value))
        elif isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError(f"{value} is not a JSON number")
            parts.append(format(value, "f"))
        elif isinstance(value, dict | list | tuple):
            if id(value) in seen:
                raise ValueError("circular reference")
            seen.add(id(value))
            is_dict = isinstance(value, dict)
            items: list[Any] = list(value.items()) if isinstance(value, dict) else list(value)
            if is_dict and sort_keys:
                items.sort(key=lambda kv: kv[0])
            opening, closing = ("{", "}") if is_dict else ("[", "]")
            if not items:
                parts.append(opening + closing)
            else:
                inner = "" if indent is None else "\n" + " " * (indent * (level + 1))
                parts.append(opening)
                for index, item in enumerate(items):
                    parts.append((item_separator if index else "") + inner)
                    if is_dict:
                        parts.append(json.encoder.encode_basestring_ascii(_json_key(item[0]))
                                     + key_separator)
                        encode(item[1], level + 1)
                    else:
                        encode(item, level + 1)
                parts.append(("" if indent is None else "\n" + " " * (indent * level))
                             + closing)
            seen.discard(id(value))
        elif default is not None:
            encode(default(value), level)
        else:
            raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    encode(document, 0)
    return "".join(parts)


def write_json_document(document: Any, path: Path) -> Path:
    """``document`` (run.json) as indented JSON, exact decimals as numbers
    (:func:`json_text`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json_text(document, indent=2, default=str) + "\n", "utf-8")
    return path
