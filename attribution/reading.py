"""Read exports: CSV (separator sniffed), Parquet, NDJSON by extension; name their columns.

Reading knows formats, not meaning: a file becomes a frame of its own columns (CSV as text),
the config's column mapping renames them to the canonical names, and every row gets its 1-based
data row number ``_row`` (the header is row 0). What the values mean is checked in
:mod:`attribution.validation`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from attribution.errors import ColumnNotFoundError, FileFormatError

ROW = "_row"

CSV_EXTENSIONS = (".csv", ".tsv", ".txt")
PARQUET_EXTENSIONS = (".parquet", ".pq")
NDJSON_EXTENSIONS = (".ndjson", ".jsonl", ".json")


@dataclass(frozen=True)
class InputFile:
    """Where an input came from, for the run's record."""

    input: str
    path: str
    rows: int
    sha256: str



def read_table(path: str | Path, input_name: str, mapping: dict[str, str] | None = None,
               expected: Sequence[str] = ()) -> pl.DataFrame:
    """Read a file by its extension, rename mapped columns to canonical names, add ``_row``."""
    path = Path(path)
    return name_columns(read_file(path, input_name), str(path), input_name, mapping, expected)


def read_file(path: str | Path, input_name: str) -> pl.DataFrame:
    """A file's rows as they are, picked by extension (CSV as text, separator sniffed)."""
    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"{path}: no such {input_name} file")
    suffix = path.suffix.lower()
    try:
        if suffix in CSV_EXTENSIONS:
            return pl.read_csv(
                path,
                infer_schema=False,
                separator=sniff_separator(path),
                encoding="utf8-lossy",
                truncate_ragged_lines=False,
            )
        if suffix in PARQUET_EXTENSIONS:
            return pl.read_parquet(path)
        if suffix in NDJSON_EXTENSIONS:
            return pl.read_ndjson(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FileFormatError(f"{path}: cannot read {input_name} ({first_line})") from None
    raise FileFormatError(
        f"{path}: unknown file type {suffix or '(none)'!r} for {input_name}; "
        "use .csv, .parquet or .ndjson/.jsonl"
    )


def read_header(path: str | Path, input_name: str) -> list[str]:
    """A file's column names without reading its rows (its schema, or a CSV's first line)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in CSV_EXTENSIONS:
            return [c.strip() for c in pl.read_csv(path, n_rows=0, infer_schema=False,
                                                   separator=sniff_separator(path),
                                                   encoding="utf8-lossy").columns]
        if suffix in PARQUET_EXTENSIONS:
            return list(pl.read_parquet_schema(path))
        return [c.strip() for c in read_file(path, input_name).columns]
    except (pl.exceptions.PolarsError, OSError, ValueError):
        return []


def name_columns(frame: pl.DataFrame, file: str, input_name: str,
                 mapping: dict[str, str] | None = None,
                 expected: Sequence[str] = (),
                 alternatives: Mapping[str, str] | None = None) -> pl.DataFrame:
    """A table as read, with its columns trimmed and renamed by ``mapping`` (canonical ->
    the file's name), the ``expected`` canonical columns checked, and ``_row`` added.

    ``file`` names the table in messages (its path, or where a frame came from);
    ``alternatives`` name, per expected column, another that stands in for it (``status`` is
    not needed when ``is_won`` is there).
    """
    frame = frame.rename({c: c.strip() for c in frame.columns if c != c.strip()})
    mapping = mapping or {}
    renames = {}
    for canonical, original in mapping.items():
        if original not in frame.columns:
            raise ColumnNotFoundError.from_missing(
                file, [original], frame.columns,
                hint=f"the config maps {input_name} column {canonical!r} to it",
            )
        renames[original] = canonical
    # the config names the column to use: a column already called by the canonical name (and
    # not itself mapped elsewhere) is set aside rather than clashing with the renamed one
    shadowed = [
        name for name in renames.values()
        if name in frame.columns and name not in renames
    ]
    frame = frame.drop(shadowed).rename(renames)
    stand_ins = alternatives or {}
    missing = [name for name in expected
               if name not in frame.columns and stand_ins.get(name) not in frame.columns]
    if missing:
        raise ColumnNotFoundError.from_missing(
            file, missing, frame.columns,
            hint=f"map a differently named column with [columns.{input_name}] in the config",
        )
    frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    # one chunk per column from the start (a Parquet file gives one per row group): what is
    # computed from the columns is then in one chunk too, and is never rechunked later, when
    # the run holds more
    rechunk_in_place(frame)
    return frame


def sniff_separator(path: Path) -> str:
    """The CSV separator from the header line: tab, semicolon, or comma."""
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        header = handle.readline()
    if path.suffix.lower() == ".tsv" or ("\t" in header and "," not in header):
        return "\t"
    if ";" in header and "," not in header:
        return ";"
    return ","


def file_digest(path: str | Path) -> str:
    """The file's SHA-256, read a megabyte at a time."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()



def rechunk_in_place(frame: pl.DataFrame) -> None:
    """One chunk per column (a file's row groups made gathers by row 4x slower), two columns at
    a time: rechunking the frame at once held two copies of it (+0.5 GB at 10^7 touchpoints)."""
    chunked = [name for name in frame.columns if frame.get_column(name).n_chunks() > 1]
    for start in range(0, len(chunked), 2):  # two at a time: copied in parallel
        names = chunked[start:start + 2]
        for column in frame.select(names).rechunk().get_columns():
            frame.replace_column(frame.get_column_index(column.name), column)



__all__ = [
    "CSV_EXTENSIONS",
    "NDJSON_EXTENSIONS",
    "PARQUET_EXTENSIONS",
    "ROW",
    "InputFile",
    "file_digest",
    "name_columns",
    "read_file",
    "read_header",
    "read_table",
    "rechunk_in_place",
    "sniff_separator",
]
