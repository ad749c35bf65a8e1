"""Write result tables as Parquet, CSV or JSON, with money as decimals.

Inside the library money is integer minor units; here it becomes ``Decimal(38, 2)`` for
Parquet and CSV (``48250.00``) and a JSON number with two decimals for JSON. Same input, same
bytes out: the writers are given frames in a fixed order and no timestamps of their own.
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

from attribution.schema import MONEY_COLUMNS

EXTENSIONS = {"parquet": ".parquet", "csv": ".csv", "json": ".json"}
FrameT = TypeVar("FrameT", pl.DataFrame, pl.LazyFrame)


#: rows per Parquet row group: fixed, so a file's bytes never depend on how the frame happened
#: to be chunked in memory
ROW_GROUP_ROWS = 250_000
#: zstd level 1 rather than the default 3: a slightly larger file, written faster (the
#: measurements: bench/RESULTS.md)
ZSTD_LEVEL = 1


#: one cent, ``Decimal(38, 2)``: cents as ``Decimal(38, 0)`` times it are the amount, exactly
#: (the scales add, 0 + 2, and the unscaled value is the cents themselves), with no division
_CENT = pl.lit(Decimal("0.01"), pl.Decimal(38, 2))


def money_to_decimal(frame: FrameT, columns: Iterable[str] = MONEY_COLUMNS) -> FrameT:
    """Minor-unit money columns as exact ``Decimal(38, 2)`` major units (of a DataFrame or a
    LazyFrame); float ones (estimates such as share x total revenue) as float major units."""
    schema = frame.collect_schema()
    present = [c for c in schema.names() if c in set(columns) and schema[c].is_integer()]
    estimates = [c for c in schema.names() if c in set(columns) and schema[c].is_float()]
    return frame.with_columns(
        *[(pl.col(c).cast(pl.Decimal(38, 0)) * _CENT).alias(c) for c in present],
        *[(pl.col(c) / 100).alias(c) for c in estimates],  # shares x totals: not exact cents
    )


def money_to_float(frame: pl.DataFrame, columns: Iterable[str] = MONEY_COLUMNS) -> pl.DataFrame:
    """Minor-unit money columns (integer or float) as floats in major units."""
    present = [c for c in frame.columns
               if c in set(columns) and (frame.schema[c].is_integer() or frame.schema[c].is_float())]
    return frame.with_columns([(pl.col(c) / 100).alias(c) for c in present])


def write_table(frame: pl.DataFrame | pl.LazyFrame, directory: Path, stem: str,
                fmt: str) -> Path:
    """Write ``frame`` to ``directory/stem.<ext>`` in ``fmt``; returns the path written."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}{EXTENSIONS[fmt]}"
    width = frame.collect_schema().len()
    # Parquet and CSV are written by the streaming engine, a batch of rows at a time, so the
    # money columns become decimals a batch at a time: converting them on the whole frame
    # first would re-chunk and copy a credit table of millions of rows
    if fmt == "parquet" and width:
        money_to_decimal(frame.lazy()).sink_parquet(
            path, compression="zstd", compression_level=ZSTD_LEVEL, statistics=False,
            row_group_size=ROW_GROUP_ROWS,
        )
    elif fmt == "parquet":
        frame.lazy().collect().write_parquet(path, compression="zstd",
                                             compression_level=ZSTD_LEVEL, statistics=False)
    elif fmt == "csv" and width:
        money_to_decimal(frame.lazy()).sink_csv(path)
    elif fmt == "csv":
        frame.lazy().collect().write_csv(path)
    else:
        money_to_float(frame.lazy().collect()).write_json(path)
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

    def __init__(self, directory: Path, stem: str, fmt: str, schema: pl.Schema) -> None:
        self.directory, self.stem, self.fmt, self.schema = directory, stem, fmt, schema
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
        frame = frame.select(list(self.schema)).cast(dict(self.schema))
        assert self._writer is not None
        self._pending = self._writer.submit(frame.write_parquet, part,
                                            compression="uncompressed", statistics=False)
        self._parts.append(part)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> Path:
        """Write the result file from the parts given so far (none: an empty table with
        :attr:`schema`) and remove the scratch folder; returns the path written."""
        self._closed = True
        try:
            self._wait()
            if self._parts:  # (paths, not patterns: an out folder may be named "[2025]")
                table: pl.LazyFrame | pl.DataFrame = pl.scan_parquet(self._parts, glob=False)
            else:
                table = pl.DataFrame(schema=self.schema)
            return write_table(table, self.directory, self.stem, self.fmt)
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


def json_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts, money in major units, datetimes as ISO text."""
    converted = money_to_float(frame)
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
