"""Write result tables as Parquet, CSV or JSON, with money as decimals.

Inside the library money is integer minor units of the run's currency; here it becomes
``Decimal(38, d)`` for Parquet and CSV (``48250.00``) and a JSON number for JSON, ``d`` being
the currency's ISO 4217 minor unit (2 for USD, 3 for KWD, 0 for JPY), so every minor unit is
kept exactly. Same input, same
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

import json
import shutil
import tempfile
from collections.abc import Iterable
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
    currency's minor unit)."""
    present = [c for c in frame.columns
               if c in set(columns)
               and (frame.schema[c].is_integer() or frame.schema[c].is_float())]
    return frame.with_columns([(pl.col(c) / 10 ** decimals).alias(c) for c in present]).rename(
        _major_names(present))


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
        money_to_float(frame.lazy().collect(), decimals=decimals).write_json(path)
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
        self._closed = False

    def add(self, frame: pl.DataFrame) -> None:
        """Spill one part (a frame with :attr:`schema`); raises what spilling the previous
        part raised."""
        if self._closed:
            raise RuntimeError(f"{self.stem}: parts added after the table was written")
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
        """Remove the scratch folder and its parts (after the part being spilled, if any)."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        self._scratch, self._parts, self._writer, self._pending = None, [], None, None

    def __enter__(self) -> TableParts:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.discard()


def json_records(frame: pl.DataFrame, *, decimals: int = DECIMALS) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts, money in major units (``decimals``: the currency's minor
    unit), datetimes as ISO text."""
    converted = money_to_float(frame, decimals=decimals)
    converted = converted.with_columns(
        [
            pl.col(c).dt.to_string("%Y-%m-%dT%H:%M:%S%.fZ")
            for c, t in converted.schema.items()
            if isinstance(t, pl.Datetime)
        ]
    )
    return converted.to_dicts()


def write_json_document(document: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n", "utf-8")
    return path
