"""Read exports: CSV (separator sniffed), Parquet, NDJSON by extension; name their columns.

Reading knows formats, not meaning: a file becomes a frame of its own columns (CSV as text),
the config's column mapping renames them to the canonical names, and every row gets its 1-based
data row number ``_row`` (the header is row 0). What the values mean is checked in
:mod:`attribution.validation`.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from attribution.errors import QUOTE_LIMIT, ColumnNotFoundError, FileFormatError, quote_input

ROW = "_row"

CSV_EXTENSIONS = (".csv", ".tsv", ".txt")
PARQUET_EXTENSIONS = (".parquet", ".pq")
NDJSON_EXTENSIONS = (".ndjson", ".jsonl", ".json")

#: byte-order marks of the encodings recognised without being told (longest first: UTF-32's
#: little-endian mark starts with UTF-16's)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
#: the longest header line read to sniff the separator and check the column names
_HEADER_LIMIT = 1 << 20
#: the longest line a text export may hold. No CRM row comes near it; a longer one is a file
#: that is not an export (a dump without line breaks), and reading it would cost several times
#: its size in memory (the reader, then every check's copy of the value).
LINE_LIMIT = 1 << 20


#: file names that make an input or output a DuckDB database (``--out history.duckdb``)
DUCKDB_EXTENSIONS = (".duckdb", ".ddb")


def is_database_uri(text: str | Path) -> bool:
    """Whether an input or ``--out`` names a database rather than a file or folder:
    a ``postgresql://``, ``postgres://`` or ``duckdb://`` URI, or a path ending ``.duckdb``.
    (Here rather than in :mod:`attribution.db`, whose drivers a run on files never loads.)"""
    text = str(text)
    return (text.startswith(("postgresql://", "postgres://", "duckdb://"))
            or text.lower().endswith(DUCKDB_EXTENSIONS))

@dataclass(frozen=True)
class InputFile:
    """Where an input came from, for the run's record."""

    input: str
    path: str
    rows: int
    sha256: str



def read_table(path: str | Path, input_name: str, mapping: dict[str, str] | None = None,
               expected: Sequence[str] = (), *, encoding: str | None = None) -> pl.DataFrame:
    """Read a file by its extension, rename mapped columns to canonical names, add ``_row``."""
    path = Path(path)
    return name_columns(read_file(path, input_name, encoding=encoding), str(path), input_name,
                        mapping, expected)


def is_utf8(encoding: str | None) -> bool:
    """Whether ``encoding`` (None: the default) is UTF-8, which polars reads itself."""
    return encoding is None or codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def text_encoding(path: Path, encoding: str | None) -> str | None:
    """The encoding a text file is read in: the one given, else the one its byte-order mark
    names (UTF-16 and UTF-32 are recognised, never read as UTF-8), else None (UTF-8)."""
    if encoding is not None:
        return encoding
    with path.open("rb") as handle:
        start = handle.read(4)
    return next((name for bom, name in _BOMS if start.startswith(bom)), None)


def invalid_utf8(path: Path) -> tuple[int, int, int, bytes] | None:
    """Where a file stops being UTF-8: ``(byte offset, line, byte of the line, the offending
    bytes)`` (the line and its byte counted from 1), or None when it is valid. Read a megabyte
    at a time through an incremental decoder, so the file is never held whole."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    consumed = lines = line_start = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                offset = consumed + error.start
                before = block.rfind(b"\n", 0, error.start)
                start = consumed + before + 1 if before != -1 else line_start
                return (offset, lines + block.count(b"\n", 0, error.start) + 1,
                        offset - start + 1, block[error.start:error.end])
            last = block.rfind(b"\n")
            if last != -1:
                line_start = consumed + last + 1
            consumed += len(block)
            lines += block.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as error:  # the file ends inside a character
            offset = consumed - 1 + error.start
            return offset, lines + 1, offset - line_start + 1, b""
    return None


def where_not_utf8(found: tuple[int, int, int, bytes]) -> str:
    """Where :func:`invalid_utf8` found a file not UTF-8, in words: ``at byte 127 (line 2,
    byte 17 of the line: 0x96, which cp1252 reads as '–')``.

    >>> where_not_utf8((127, 2, 17, b"\\x96"))
    "at byte 127 (line 2, byte 17 of the line: 0x96, which cp1252 reads as '–')"
    >>> where_not_utf8((2, 2, 1, b""))
    'at byte 2 (line 2, byte 1 of the line: the file ends inside a character)'
    """
    offset, line, column, cut = found
    if not cut:
        what = "the file ends inside a character"
    else:
        what = " ".join(f"0x{b:02x}" for b in cut)
        try:
            read = cut.decode("cp1252")
        except UnicodeDecodeError:
            read = ""
        if read.isprintable() and read:
            what += f", which cp1252 reads as {read!r}"
    return f"at byte {offset:,} (line {line:,}, byte {column:,} of the line: {what})"


def _not_utf8(path: Path, input_name: str) -> FileFormatError:
    """The error for a text file that is not valid UTF-8: where, and how to read it."""
    found = invalid_utf8(path)
    where = f" {where_not_utf8(found)}" if found is not None else ""
    return FileFormatError(
        f"{path}: {input_name} file is not valid UTF-8{where}; if it was saved in another "
        f"encoding, name it: --encoding {input_name}=cp1252 (or [inputs] encoding = "
        f"{{ {input_name} = \"cp1252\" }} in the config) reads a {input_name} file saved by "
        "Windows or Excel (latin-1 for ISO-8859-1), --encoding cp1252 every input"
    )


def _decoded(path: Path, input_name: str, encoding: str) -> io.BytesIO:
    """A file in another encoding as UTF-8 bytes for polars (held in memory: such files are
    read whole once)."""
    try:
        content = path.read_bytes().decode(encoding)
    except UnicodeDecodeError as error:
        raise FileFormatError(
            f"{path}: {input_name} file is not valid {encoding} at byte {error.start}; "
            "name the file's encoding with --encoding (or [inputs] encoding in the config)"
        ) from None
    except LookupError:
        raise FileFormatError(f"{path}: unknown encoding {quote_input(encoding)}") from None
    return io.BytesIO(content.removeprefix("\ufeff").encode("utf-8"))


def read_file(path: str | Path, input_name: str, *, encoding: str | None = None) -> pl.DataFrame:
    """A file's rows as they are, picked by extension (CSV as text, separator sniffed).

    Text (CSV, NDJSON) is UTF-8 unless ``encoding`` names another (``latin-1``) or the file
    starts with a UTF-16 or UTF-32 byte-order mark; text that is not valid in its encoding
    raises :class:`FileFormatError` with the byte offset, never lossy characters. A CSV
    header that names a column twice raises it too.
    """
    path = Path(path)
    if not path.exists():
        raise FileFormatError(f"{path}: no such {input_name} file")
    suffix = path.suffix.lower()
    chosen = None if suffix in PARQUET_EXTENSIONS else text_encoding(path, encoding)
    try:
        source: Path | io.BytesIO = (path if is_utf8(chosen) else
                                     _decoded(path, input_name, str(chosen)))
    except LookupError:
        raise FileFormatError(f"{path}: unknown encoding {quote_input(str(chosen))}") from None
    separator = ","
    if suffix in CSV_EXTENSIONS or suffix in NDJSON_EXTENSIONS:
        check_line_lengths(path, input_name)
    if suffix in CSV_EXTENSIONS:
        try:
            header = _header_text(path, chosen)
        except OSError as exc:
            raise FileFormatError(f"{path}: cannot read {input_name} ({exc.strerror})") from None
        separator = _separator(path, header)
        check_header(_header_names(header, separator), str(path), input_name)
    try:
        if suffix in CSV_EXTENSIONS:
            if isinstance(source, io.BytesIO):
                source.seek(0)
            return pl.read_csv(
                source,
                infer_schema=False,
                separator=separator,
                encoding="utf8",
                truncate_ragged_lines=False,
            )
        if suffix in PARQUET_EXTENSIONS:
            return pl.read_parquet(path)
        if suffix in NDJSON_EXTENSIONS:
            return pl.read_ndjson(source, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        message = str(exc).strip()
        if isinstance(source, Path) and "utf-8" in message.lower():
            raise _not_utf8(path, input_name) from None
        if suffix in CSV_EXTENSIONS:
            # only now, after the fast reader failed: the row it stopped at, found in Python
            found = ragged_row(source, separator, input_name)
            if found is not None:
                raise FileFormatError(f"{path}: {found}") from None
        # the first line of the reader's message, quoted and cut: it can carry a whole row
        first_line = message.splitlines()[0] if message else type(exc).__name__
        shown = (first_line if len(first_line) <= QUOTE_LIMIT and first_line.isprintable()
                 else quote_input(first_line))
        raise FileFormatError(f"{path}: cannot read {input_name} ({shown})") from None
    raise FileFormatError(
        f"{path}: unknown file type {suffix or '(none)'!r} for {input_name}; "
        "use .csv, .parquet or .ndjson/.jsonl"
    )


_SEPARATOR_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}


def ragged_row(source: Path | io.BytesIO, separator: str, input_name: str) -> str | None:
    """What is wrong with the first CSV row that the reader cannot split into the header's
    columns, in words naming the row and the line it starts on (they differ below a quoted
    cell that holds a line break); None when every row fits.

    A row with more fields than the header is one (a cell holding the separator without
    quotes, usually); so is a quoted cell never closed. A row with fewer fields is not: the
    reader takes its missing last cells as blank, as Excel writes a row whose last cells are
    empty. Read here, in Python, only once the fast reader has failed.
    """
    if isinstance(source, io.BytesIO):
        source.seek(0)
        handle: io.TextIOBase = io.TextIOWrapper(source, encoding="utf-8", newline="")
    else:
        handle = source.open("r", encoding="utf-8-sig", errors="replace", newline="")
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, 4 * LINE_LIMIT))
    try:
        reader = csv.reader(handle, delimiter=separator, strict=True)
        header = next(reader, None)
        if header is None:
            return None
        row = 0
        line = reader.line_num  # the last line read: each row starts on the one after it
        try:
            for record in reader:
                row += 1
                if len(record) > len(header):
                    name = _SEPARATOR_NAMES.get(separator, repr(separator))
                    example = ' ("1,234.50")' if separator == "," else ""
                    return (f"row {row:,} (line {line + 1:,}) of the {input_name} file has "
                            f"{len(record):,} fields, the header has {len(header):,}; quote a "
                            f"cell that holds a {name}{example}, or remove the extra cells")
                line = reader.line_num
        except csv.Error:
            return (f"row {row + 1:,} (line {line + 1:,}) of the {input_name} file opens a "
                    "quoted cell that is never closed; close its quote, or double a quote "
                    "inside a cell (\"\")")
        return None
    finally:
        csv.field_size_limit(limit)
        if isinstance(handle, io.TextIOWrapper) and isinstance(source, io.BytesIO):
            handle.detach()
        else:
            handle.close()


def check_line_lengths(path: Path, input_name: str, limit: int = LINE_LIMIT) -> None:
    """Raise :class:`FileFormatError` naming the line when a text file holds a line of more
    than ``limit`` bytes, before anything reads it.

    A line of ``limit`` bytes or more covers at least one whole aligned block of ``limit // 2``
    bytes, so one search per block suffices: in an export each finds a line break within its
    first few hundred bytes, and only a block without one is measured. Reads are bounded
    (:func:`_find_newline`), so a file that is one long line is never held in memory.
    """
    try:
        size = path.stat().st_size
        if size <= limit:
            return
        with path.open("rb") as handle:
            descriptor = handle.fileno()
            block = limit // 2
            for start in range(0, size, block):
                if _find_newline(descriptor, start, min(start + block, size)) != -1:
                    continue
                begin = _find_newline(descriptor, start, 0) + 1
                end = _find_newline(descriptor, start, size)
                length = (size if end == -1 else end) - begin
                if length > limit:
                    line = _count_newlines(descriptor, begin) + 1
                    raise FileFormatError(
                        f"{path}: line {line:,} of the {input_name} file is {length:,} bytes "
                        f"long (from byte {begin:,}), over the {limit:,}-byte limit of a line: "
                        "is it an export with one row per line?"
                    )
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read {input_name} ({exc.strerror})") from None


def _find_newline(descriptor: int, start: int, stop: int) -> int:
    """The offset of the first line break in ``[start, stop)`` (searching backwards from
    ``start`` when ``stop < start``: the last one before it), or -1; read in pieces that start
    small, as a break is usually within the first bytes."""
    step = 1 << 12
    if stop >= start:
        position = start
        while position < stop:
            piece = os.pread(descriptor, min(step, stop - position), position)
            found = piece.find(b"\n")
            if found != -1:
                return position + found
            position += len(piece) or stop - position
            step = min(step * 4, 1 << 20)
        return -1
    position = start
    while position > stop:
        begin = max(stop, position - step)
        found = os.pread(descriptor, position - begin, begin).rfind(b"\n")
        if found != -1:
            return begin + found
        position = begin
        step = min(step * 4, 1 << 20)
    return -1


def _count_newlines(descriptor: int, end: int) -> int:
    """The line breaks before byte ``end``, read a few megabytes at a time."""
    count = 0
    for start in range(0, end, 1 << 22):
        count += os.pread(descriptor, min(1 << 22, end - start), start).count(b"\n")
    return count


def check_header(names: Sequence[str], file: str, input_name: str) -> None:
    """Raise :class:`FileFormatError` when ``names`` (a header, compared trimmed, as the
    columns are used) name a column more than once: which one would be used is a guess."""
    counts = Counter(name.strip() for name in names)
    repeated = [name for name, n in counts.items() if n > 1]
    if repeated:
        listed = ", ".join(f"{quote_input(name)} ({counts[name]} times)" for name in repeated)
        raise FileFormatError(
            f"{file}: {input_name} file names a column more than once: {listed}; "
            "rename or remove the copies"
        )


def read_header(path: str | Path, input_name: str, *, encoding: str | None = None) -> list[str]:
    """A file's column names without reading its rows (its schema, or a CSV's first line)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in CSV_EXTENSIONS:
            header = _header_text(path, text_encoding(path, encoding))
            return [c.strip() for c in _header_names(header, _separator(path, header))]
        if suffix in PARQUET_EXTENSIONS:
            return list(pl.read_parquet_schema(path))
        return [c.strip() for c in read_file(path, input_name, encoding=encoding).columns]
    except (pl.exceptions.PolarsError, OSError, ValueError):
        return []


def name_columns(frame: pl.DataFrame, file: str, input_name: str,
                 mapping: dict[str, str] | None = None,
                 expected: Sequence[str] = (),
                 alternatives: Mapping[str, str] | None = None,
                 header: Sequence[str] | None = None) -> pl.DataFrame:
    """A table as read, with its columns trimmed and renamed by ``mapping`` (canonical ->
    the file's name), the ``expected`` canonical columns checked, and ``_row`` added.

    ``file`` names the table in messages (its path, or where a frame came from);
    ``alternatives`` name, per expected column, another that stands in for it (``status`` is
    not needed when ``is_won`` is there); ``header`` is the file's own column names when
    ``frame``'s were renamed before (by a source preset): a missing column's message lists
    those, the names the user sees in the file.
    """
    check_header(frame.columns, file, input_name)
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
            file, missing, frame.columns if header is None else [c.strip() for c in header],
            hint=f"map a differently named column with [columns.{input_name}] in the config",
        )
    frame = frame.with_row_index(ROW, offset=1).with_columns(pl.col(ROW).cast(pl.Int64))
    # one chunk per column from the start (a Parquet file gives one per row group): what is
    # computed from the columns is then in one chunk too, and is never rechunked later, when
    # the run holds more
    rechunk_in_place(frame)
    return frame


def sniff_separator(path: Path, encoding: str | None = None) -> str:
    """The CSV separator from the header line: tab, semicolon, or comma."""
    path = Path(path)
    return _separator(path, _header_text(path, text_encoding(path, encoding)))


def _header_text(path: Path, encoding: str | None) -> str:
    """A text file's first line (at most :data:`_HEADER_LIMIT` bytes of it), decoded."""
    with path.open("r", encoding=encoding or "utf-8-sig", errors="replace", newline="") as handle:
        return handle.readline(_HEADER_LIMIT).removeprefix("\ufeff")


def _separator(path: Path, header: str) -> str:
    if path.suffix.lower() == ".tsv" or ("\t" in header and "," not in header):
        return "\t"
    if ";" in header and "," not in header:
        return ";"
    return ","


def _header_names(header: str, separator: str) -> list[str]:
    """The column names of a CSV header line, quoting as the CSV reader reads it."""
    return next(csv.reader([header.rstrip("\r\n")], delimiter=separator), [])


def file_digest(path: str | Path) -> str:
    """The file's SHA-256, read a megabyte at a time."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()



def rechunk_in_place(frame: pl.DataFrame) -> None:
    """One chunk per column (a gather by row over a file's many row groups is slow), two
    columns at a time: rechunking the frame at once would hold two copies of it (measured in
    bench/RESULTS.md)."""
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
    "check_header",
    "file_digest",
    "invalid_utf8",
    "where_not_utf8",
    "is_utf8",
    "name_columns",
    "read_file",
    "ragged_row",
    "read_header",
    "read_table",
    "rechunk_in_place",
    "sniff_separator",
    "text_encoding",
]
