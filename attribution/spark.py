"""The Spark engine: the same pipeline, run on Apache Spark for exports that outgrow one machine.

Nothing here redefines a journey, a check or a credit rule. Spark moves rows so that every
piece of the polars pipeline sees *complete* inputs for the keys it depends on, and calls
that piece unchanged inside Arrow UDFs (``applyInArrow`` / ``mapInArrow``):

1. **read** each export with Spark (Parquet, CSV or NDJSON; a file, a folder or a glob, on
   any file system Spark can read) and number its rows in file order, so ``rejects`` name the
   same file and 1-based row as the polars engine;
2. **validate** with a shuffle by the input's id (contact, touchpoint, deal): every group of
   ids goes through :func:`attribution.loading.load_contacts` / ``load_touchpoints`` /
   ``load_deals`` as it stands, so row checks, duplicate ids, the contacts join, unknown
   accounts and the currency check give exactly the same rejects and messages. What a group
   cannot see on its own is brought to it first: each touch carries its contact's account,
   each deal whether its account is known, and the run's currency (the most common one) is
   counted over the whole deals file;
3. **journeys** with a shuffle by account: :func:`attribution.journeys.build_journeys` on
   each batch of accounts with one global ``as_of`` (computed in Spark when not configured),
   which is exactly what it depends on. Each batch also reduces its journeys to distinct
   paths (:func:`attribution.graph.distinct_paths`), and the batches' path counts are summed
   in Spark (collected only when read: the path statistics, a Markov bootstrap);
4. **models**: rule-based models weigh each journey on its own. Markov, Shapley and
   incremental tally each batch (transition counts per state; channel sets; channel sets
   before creation and first-touch ranks), Spark sums the tallies, and they fit
   once on the driver from the sums (bounded by the model, not the data; the polars
   engine's fit to the last bit), then score the journeys of each batch with that fit;
5. **credit** with :func:`attribution.credit.allocate` per batch (exact largest remainder
   per deal), and the channel summary as a Spark aggregation finished by
   :func:`attribution.credit.summarise`.

Money stays integer minor units; results are written back as Parquet with money as
``Decimal(38, 2)``, like the polars writer. Install with
``pip install 'revenue-attribution[spark]'`` (pyspark; Arrow UDFs need pandas on the workers,
which the core library never imports).

>>> import attribution.spark as engine                                  # doctest: +SKIP
>>> result = engine.run(config, master="local[4]")                      # doctest: +SKIP
>>> result.summary                     # polars, as from attribution.run   # doctest: +SKIP
>>> engine.write_results(result, "s3://bucket/attribution/run-1")        # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from attribution.channels import load_rules
from attribution.compare import BASELINE, compare
from attribution.config import Config
from attribution.credit import allocate, summarise
from attribution.errors import (
    AttributionError,
    ConfigError,
    FileFormatError,
    ModelError,
    RejectedRowError,
)
from attribution.graph import time_to_close_distribution
from attribution.journeys import Journeys, JourneyStats, build_journeys
from attribution.loading import (
    CSV_EXTENSIONS,
    NDJSON_EXTENSIONS,
    PARQUET_EXTENSIONS,
    ROW,
    Accounting,
    InputFile,
    Inputs,
    file_digest,
    load_contacts,
    load_deals,
    load_touchpoints,
    read_table,
    sniff_separator,
)
from attribution.models import AttributionModel
from attribution.models.base import Fit
from attribution.models.counts import PATH_COUNTS_SCHEMA, path_counts, path_journeys
from attribution.output import write_json_document
from attribution.pipeline import Progress, RunResult, Scopes, fit_tables, resolve_models
from attribution.results import side_folder, write_rejects
from attribution.results import write_results as write_result_set
from attribution.schema import (
    CREDIT_SCHEMA,
    JOURNEY_SCHEMA,
    MONEY_COLUMNS,
    NO_TOUCH_CHANNEL,
    NO_TOUCH_GROUP,
    REJECT_SCHEMA,
    SUMMARY_SCHEMA,
    TOUCH_SCHEMA,
    UTC_TIME,
    currency_decimals,
    major_name,
)
from attribution.validation import BLANKED, check_reject_rate

try:
    from pyspark.errors import AnalysisException
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigError(
        "the spark engine needs pyspark: pip install 'revenue-attribution[spark]'"
    ) from exc

#: Spark settings the engine relies on (applied to the session it is given, too)
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
#: a batch of accounts (or ids) handed to one polars call holds at most about this many rows
ROWS_PER_BATCH = 200_000
#: ... and, when there are enough rows, at least this many (each call has a fixed cost)
MIN_ROWS_PER_BATCH = 20_000
_KIND = "_kind"
# helper columns the engine adds to every input row
_FILE = "_spark_file"
_FILE_ROW = "_spark_file_row"
_ORDINAL = "_spark_ordinal"
_BUCKET = "_spark_bucket"
_CONTACTS = "_spark_contacts"
_KNOWN = "_spark_known"
_WHITESPACE = r"^\p{IsWhite_Space}+|\p{IsWhite_Space}+$"


# -- sessions -------------------------------------------------------------------------------
def session(
    master: str = "local[*]",
    conf: Mapping[str, str] | None = None,
    app_name: str = "attribution",
) -> SparkSession:
    """A SparkSession for the engine (an existing active session is reused, with ``conf`` set).

    ``master`` is a master URL (``local[4]``, ``spark://host:7077``, ``yarn``) or a Spark
    Connect address (``sc://host:15002``, what ``--spark-remote`` gives): the engine uses only
    the DataFrame API, so a Connect session runs it as a classic one does. In local mode the
    Python workers run this interpreter. On every session the engine ships its own package to
    the executors and checks that they can import what it needs (:func:`ship`).

    >>> spark = session("local[2]", {"spark.sql.shuffle.partitions": "8"})  # doctest: +SKIP
    >>> spark = session("sc://127.0.0.1:15002")                           # doctest: +SKIP
    """
    settings = {**SESSION_CONF, **dict(conf or {})}
    if is_remote_address(master):
        archives = [a for a in settings.pop("spark.archives", "").split(",") if a]
        spark = SparkSession.builder.remote(master).getOrCreate()
        # a Connect server's static settings are its own; session settings travel, and a
        # packed environment goes up as an artifact of the session
        for key, value in settings.items():
            with contextlib.suppress(Exception):
                spark.conf.set(key, value)
        if archives:
            spark.addArtifacts(*archives, archive=True)
    else:
        # A classic session takes the executors' Python from PYSPARK_PYTHON as the driver
        # process sees it; spark.pyspark.python is read only by spark-submit. A run started
        # from Python (the CLI) honours the setting the way spark-submit would.
        if settings.get("spark.pyspark.python"):
            os.environ["PYSPARK_PYTHON"] = settings["spark.pyspark.python"]
        elif master.startswith("local"):
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = SparkSession.builder.master(master).appName(app_name)
        for key, value in settings.items():
            builder = builder.config(key, value)
        spark = builder.getOrCreate()
    ship(spark)
    return spark


#: sessions the package was shipped to and checked on: id(session) -> the zip's digest
_SHIPPED: dict[int, str] = {}
#: what the executors' Python must import besides the shipped package
EXECUTOR_MODULES = ("polars", "pyarrow", "pandas", "numpy")


def package_zip() -> Path:
    """A zip of the running ``attribution`` package (its code and data files), named by its
    content so that one session never gets two different files of one name.

    The entries are sorted and carry a fixed time, so the same code gives the same bytes.
    """
    import hashlib
    import io
    import zipfile

    import attribution

    root = Path(attribution.__file__).resolve().parent
    members = sorted(
        path for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in members:
            name = f"attribution/{path.relative_to(root).as_posix()}"
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    content = buffer.getvalue()
    digest = hashlib.sha256(content).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / "attribution-spark" / f"attribution-{digest}.zip"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_suffix(f".{os.getpid()}.part")
        staged.write_bytes(content)
        staged.replace(target)
    return target


def ship(spark: SparkSession) -> None:
    """Add a zip of this ``attribution`` package to the session's Python path on every
    executor (``addArtifacts(pyfile=True)``: ``addPyFile`` in a classic session, an artifact
    of the session on Spark Connect), then check that the executors can import it and
    :data:`EXECUTOR_MODULES`, so a cluster without them fails here with one line saying what
    to install where, not with a Python worker's traceback in the middle of a stage.

    The executors then run the driver's own code, whatever (if anything) is installed on
    them: pip-installed copies come after the shipped zip on their Python path (only a
    checkout in a worker's working folder, as in local mode from the repository, comes
    first, and that is the driver's code too).
    """
    zipped = package_zip()
    if _SHIPPED.get(id(spark)) == zipped.name:
        return
    spark.addArtifacts(str(zipped), pyfile=True)
    _check_executors(spark, zipped.name)
    _SHIPPED[id(spark)] = zipped.name


# The probe runs in the executors' Python before anything of ours is importable there, so it
# is compiled here from source under a module name that does not exist: cloudpickle then
# ships the function by value instead of by a reference to attribution.spark.
_PROBE_SOURCE = """
def probe(_ignored):
    import importlib, sys
    missing = []
    for name in MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:
            missing.append(name + " (" + type(exc).__name__ + ")")
    try:
        import attribution.credit  # noqa: F401
    except Exception as exc:
        missing.append("attribution from " + ZIP + " (" + type(exc).__name__ + ")")
    return sys.executable + " " + ".".join(map(str, sys.version_info[:2])) + "|" + ",".join(
        missing)
"""


def _probe_function(zip_name: str) -> Callable[[Any], str]:
    namespace: dict[str, Any] = {"__name__": "_attribution_executor_probe",
                                 "MODULES": EXECUTOR_MODULES, "ZIP": zip_name}
    exec(compile(_PROBE_SOURCE, "<attribution executor probe>", "exec"), namespace)
    return namespace["probe"]


def _check_executors(spark: SparkSession, zip_name: str) -> None:
    """Run :data:`_PROBE_SOURCE` in two tasks (a plain Python UDF: it needs no pyarrow)."""
    probe = F.udf(_probe_function(zip_name), T.StringType(), useArrow=False)
    try:
        rows = spark.range(0, 2, 1, 2).select(probe(F.col("id")).alias("probe")).collect()
    except Exception as exc:  # the executors' Python did not start or crashed
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise ConfigError(
            "the spark executors cannot run Python for the engine ("
            + (lines[0] if lines else type(exc).__name__)[:300]
            + "); install Python 3.11+ with 'revenue-attribution[spark]' on every node, or "
            "pass a packed environment with --spark-archives ENV.tar.gz#env and "
            "--spark-conf spark.pyspark.python=./env/bin/python"
        ) from None
    for row in rows:
        python, _, missing = str(row["probe"]).partition("|")
        if missing:
            names = missing.replace(",", ", ")
            raise ConfigError(
                f"the spark executors' Python ({python}) cannot import {names}: "
                "install them there (pip install 'revenue-attribution[spark]' on every node) or "
                "pass a packed environment with --spark-archives ENV.tar.gz#env and "
                "--spark-conf spark.pyspark.python=./env/bin/python"
            )


def is_remote_address(master: str) -> bool:
    """Whether ``master`` names a Spark Connect server (``sc://host:port``)."""
    return master.startswith("sc://")


def _configure(spark: SparkSession) -> None:
    for key, value in SESSION_CONF.items():
        spark.conf.set(key, value)


# -- polars <-> Spark types -------------------------------------------------------------------
def _arrow_type(dtype: Any) -> pa.DataType:
    """The Arrow type Spark exchanges for a polars column (unsigned ints widen to int64)."""
    if dtype in (pl.String, pl.Null, pl.Categorical):
        return pa.string()
    if dtype.is_integer():
        return pa.int64()
    if dtype.is_float():
        return pa.float64()
    if dtype == pl.Boolean:
        return pa.bool_()
    if isinstance(dtype, pl.Datetime):
        return pa.timestamp("us", tz="UTC") if dtype.time_zone else pa.timestamp("us")
    if dtype == pl.Date:
        return pa.date32()
    if isinstance(dtype, pl.List):
        return pa.list_(_arrow_type(dtype.inner))
    if isinstance(dtype, pl.Decimal):
        return pa.decimal128(dtype.precision or 38, dtype.scale or 0)
    raise TypeError(f"no Spark type for polars {dtype}")


def _spark_type(arrow: pa.DataType) -> T.DataType:
    if pa.types.is_timestamp(arrow):
        return T.TimestampType() if arrow.tz else T.TimestampNTZType()
    if pa.types.is_list(arrow):
        return T.ArrayType(_spark_type(arrow.value_type))
    return {
        pa.string(): T.StringType(),
        pa.int64(): T.LongType(),
        pa.float64(): T.DoubleType(),
        pa.bool_(): T.BooleanType(),
        pa.date32(): T.DateType(),
    }.get(arrow) or T.DecimalType(arrow.precision, arrow.scale)


def _struct(schema: pl.Schema) -> T.StructType:
    """The Spark schema of a polars schema."""
    return T.StructType(
        [T.StructField(name, _spark_type(_arrow_type(dtype))) for name, dtype in schema.items()]
    )


def _to_arrow(frame: pl.DataFrame, schema: pa.Schema) -> pa.Table:
    """``frame`` as an Arrow table of exactly ``schema`` (absent columns as nulls)."""
    columns = []
    for target in schema:
        if target.name in frame.columns:
            column = frame.get_column(target.name)
            if isinstance(column.dtype, pl.Datetime) and column.dtype.time_zone:
                column = column.dt.convert_time_zone("UTC")
            columns.append(column.to_arrow().cast(target.type))
        else:
            columns.append(pa.nulls(frame.height, target.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _from_arrow(table: pa.Table, schema: pl.Schema) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.select(
        [
            (pl.col(name).dt.convert_time_zone("UTC")
             if isinstance(dtype, pl.Datetime) and dtype.time_zone
             else pl.col(name)).cast(dtype)
            for name, dtype in schema.items()
        ]
    )


@dataclass(frozen=True)
class _Packing:
    """Several tables of different schemas in one Spark frame: ``_kind`` + ``<kind>__<column>``.

    A UDF returns one schema, so a batch's outputs (good rows, rejects, counts, ...) travel
    side by side and are split again with :meth:`spark_frame` or :meth:`local`.
    """

    kinds: dict[str, pl.Schema]

    @property
    def arrow(self) -> pa.Schema:
        fields = [pa.field(_KIND, pa.string())]
        for kind, schema in self.kinds.items():
            fields += [pa.field(f"{kind}__{name}", _arrow_type(dtype))
                       for name, dtype in schema.items()]
        return pa.schema(fields)

    @property
    def spark(self) -> T.StructType:
        return T.StructType([T.StructField(f.name, _spark_type(f.type)) for f in self.arrow])

    def pack(self, frames: Mapping[str, pl.DataFrame]) -> pa.Table:
        schema = self.arrow
        tables = []
        for kind, frame in frames.items():
            renamed = frame.select(
                pl.lit(kind).alias(_KIND),
                *[pl.col(name).alias(f"{kind}__{name}") for name in self.kinds[kind]
                  if name in frame.columns],
            )
            tables.append(_to_arrow(renamed, schema))
        return pa.concat_tables(tables) if tables else schema.empty_table()

    def local(self, table: pa.Table, kind: str) -> pl.DataFrame:
        mask = pc.equal(table.column(_KIND), pa.scalar(kind))
        chosen = table.filter(mask).select([f"{kind}__{name}" for name in self.kinds[kind]])
        return _from_arrow(chosen.rename_columns(list(self.kinds[kind])), self.kinds[kind])

    def spark_frame(self, frame: DataFrame, kind: str) -> DataFrame:
        return frame.filter(F.col(_KIND) == kind).select(
            [F.col(f"{kind}__{name}").alias(name) for name in self.kinds[kind]]
        )

    def tag(self, frame: DataFrame, kind: str, extra: Sequence[Column] = ()) -> DataFrame:
        """A Spark frame of ``kind`` with its columns renamed into the packing."""
        return frame.select(
            F.lit(kind).alias(_KIND),
            *[F.col(name).alias(f"{kind}__{name}") for name in self.kinds[kind]],
            *extra,
        )


def _collect(frame: DataFrame, schema: pl.Schema | None = None) -> pl.DataFrame:
    """A (small) Spark frame on the driver as polars, through Arrow (time zones kept)."""
    table = frame.toArrow()
    if schema is None:
        collected = pl.from_arrow(table)
        assert isinstance(collected, pl.DataFrame)
        return collected
    return _from_arrow(table, schema)


# -- reading --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Source:
    """One export as Spark reads it, each row numbered as the polars engine numbers it."""

    input: str
    location: str
    frame: DataFrame  # raw columns + _FILE, _FILE_ROW, _ORDINAL
    columns: list[str]  # the raw columns, in file order
    rows: int
    single_file: bool


def _location(path: str | Path) -> str:
    text = str(path)
    # pathlib folds "s3://bucket" into "s3:/bucket"; give the URI its two slashes back
    for scheme in ("s3a:", "s3:", "gs:", "abfss:", "abfs:", "hdfs:", "dbfs:", "wasbs:", "file:"):
        if text.startswith(scheme) and not text.startswith(scheme + "//"):
            return scheme + "//" + text[len(scheme):].lstrip("/") if scheme != "file:" else text
    return text


def _data_files(spark: SparkSession, location: str) -> list[str]:
    """Data files at a location (a file, a folder or a glob), hidden files left out.

    Listed by Spark's own file index through the DataFrame API (the ``binaryFile`` source with
    its ``content`` column never selected, so no file is read), which works in classic and
    Spark Connect sessions alike and on every file system the cluster can read. The list
    grows with the number of files, not rows.
    """
    try:
        listed = (
            spark.read.format("binaryFile").option("recursiveFileLookup", "true")
            .load(location).select("path").toArrow()
        )
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc) or "does not exist" in str(exc):
            return []
        first_line = str(exc).strip().splitlines()[0]
        raise FileFormatError(f"{location}: cannot list files ({first_line})") from None
    files = [str(path) for path in listed.column("path").to_pylist()]
    return sorted(f for f in files if not Path(f).name.startswith(("_", ".")))


def _format(spark: SparkSession, location: str, input_name: str) -> tuple[str, list[str]]:
    files = _data_files(spark, location)
    if not files:
        raise FileFormatError(f"{location}: no such {input_name} file")
    suffixes = {Path(location.rstrip("/")).suffix.lower()} | {Path(f).suffix.lower() for f in files}
    for kind, extensions in (("csv", CSV_EXTENSIONS), ("parquet", PARQUET_EXTENSIONS),
                             ("json", NDJSON_EXTENSIONS)):
        if suffixes & set(extensions):
            return kind, files
    suffix = Path(location).suffix.lower()
    raise FileFormatError(
        f"{location}: unknown file type {suffix or '(none)'!r} for {input_name}; "
        "use .csv, .parquet or .ndjson/.jsonl"
    )


def _separator(spark: SparkSession, first_file: str) -> str:
    """The CSV separator, sniffed from the header line exactly as the polars reader does."""
    header = spark.read.text(first_file).limit(1).collect()
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / f"header{Path(first_file).suffix.lower()}"
        probe.write_text((header[0][0] if header else "") + "\n", "utf-8")
        return sniff_separator(probe)


def read_input(spark: SparkSession, location: str | Path, input_name: str) -> _Source:
    """Read one export with Spark and number its rows (1-based, in file order, per file).

    CSV is read as text (every column a string, like the polars reader), quoted fields may
    hold newlines; NDJSON and Parquet keep their types.
    """
    location = _location(location)
    kind, files = _format(spark, location, input_name)
    try:
        if kind == "csv":
            reader = (
                spark.read.option("header", True)
                .option("sep", _separator(spark, files[0]))
                .option("quote", '"')
                .option("escape", '"')
                .option("multiLine", True)
                .option("mode", "PERMISSIVE")
            )
            raw = reader.csv(location)
        elif kind == "parquet":
            raw = spark.read.parquet(location)
        else:
            raw = spark.read.option("mode", "PERMISSIVE").json(location)
    except AnalysisException as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise FileFormatError(f"{location}: cannot read {input_name} ({first_line})") from None
    columns = list(raw.columns)
    if "_corrupt_record" in columns:
        raise FileFormatError(f"{location}: cannot read {input_name} (a line is not valid JSON)")
    numbered = raw.select(
        "*",
        F.col("_metadata.file_path").alias(_FILE),
        F.col("_metadata.file_block_start").alias("_block"),
        F.monotonically_increasing_id().alias("_id"),
    )
    # rows of one file block are read in order by one task, so their ids are consecutive:
    # counting each block's rows gives every row its place in its file
    blocks = _collect(
        numbered.groupBy(_FILE, "_block").agg(F.count(F.lit(1)).alias("n"),
                                              F.min("_id").alias("first"))
    ).sort(_FILE, "_block")
    blocks = blocks.with_columns(
        (pl.col("n").cum_sum() - pl.col("n")).alias("_ordinal_offset"),
        (pl.col("n").cum_sum().over(_FILE) - pl.col("n")).alias("_file_offset"),
    )
    offsets = spark.createDataFrame(
        blocks.select(_FILE, "_block", "first", "_ordinal_offset", "_file_offset").to_arrow()
    )
    position = F.col("_id") - F.col("first") + 1
    frame = numbered.join(F.broadcast(offsets), [_FILE, "_block"]).select(
        *[F.col(f"`{c}`") for c in columns],
        F.col(_FILE),
        (F.col("_file_offset") + position).alias(_FILE_ROW),
        (F.col("_ordinal_offset") + position).alias(_ORDINAL),
    )
    return _Source(input_name, location, frame, columns, int(blocks["n"].sum()), len(files) == 1)


# -- validation ----------------------------------------------------------------------------------
def _arrow_schema(frame: DataFrame) -> pa.Schema:
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(frame.schema, timezone="UTC")


def _probe(source: _Source, call: Callable[[Path], Any], rows: int) -> Any:
    """Run a loader on a tiny stand-in of the export (0 or 1 row, every value its column's
    name), so file-level errors and column mapping are the polars engine's own."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "probe.parquet"
        if rows:
            pl.DataFrame({c: [c] for c in source.columns}).write_parquet(path)
        else:
            empty = pl.from_arrow(_arrow_schema(
                source.frame.select([F.col(f"`{c}`") for c in source.columns])
            ).empty_table())
            assert isinstance(empty, pl.DataFrame)
            empty.write_parquet(path)
        try:
            return call(path)
        except AttributionError as exc:
            raise type(exc)(str(exc).replace(str(path), source.location)) from None


def _column_of(source: _Source, canonical: str, mapping: dict[str, str] | None,
               expected: Sequence[str]) -> str | None:
    """The raw column that becomes ``canonical`` after the polars reader's renaming."""
    named = _probe(source, lambda path: read_table(path, source.input, mapping, expected), rows=1)
    return str(named[canonical][0]) if canonical in named.columns else None


def _text_key(column: str | None) -> Column:
    """The text a loader compares for ``column`` (cast to text, white space trimmed, empty
    as null), computed in Spark for shuffling and joining; null when the column is absent."""
    if column is None:
        return F.lit(None).cast("string")
    trimmed = F.regexp_replace(F.col(f"`{column}`").cast("string"), _WHITESPACE, "")
    return F.when(trimmed == "", None).otherwise(trimmed)


def _bucket(key: Column, buckets: int) -> Column:
    """Rows of one key go to one group; rows without a key are spread by row."""
    return F.pmod(F.hash(F.coalesce(key, F.concat(F.lit("\x00row"),
                                                  F.col(_ORDINAL).cast("string")))),
                  F.lit(buckets))


_REJECTS = pl.Schema(dict(REJECT_SCHEMA))
#: the additive counts of :class:`Accounting` (read, used, deduplicated, amounts, ...)
_COUNTS = pl.Schema(
    [(f.name, pl.Int64()) for f in dataclasses.fields(Accounting) if f.type in ("int", int)]
)
_UNMAPPED = pl.Schema({"utm_source": pl.String, "utm_medium": pl.String, "touches": pl.Int64})
_REASONS = pl.Schema({"reason": pl.String, "n": pl.Int64})
#: the ids of rejected contact rows, with their reason (a touch of one says so)
_IDS = pl.Schema({"contact_id": pl.String, "reason": pl.String})


@dataclass
class _Validated:
    """One validated input: good rows (Spark), rejects, counts."""

    good: DataFrame
    rejects: DataFrame
    accounting: Accounting
    cached: DataFrame
    unmapped: pl.DataFrame | None = None
    rejected_ids: pl.DataFrame | None = None


def _validate(
    source: _Source,
    key: Column,
    buckets: int,
    good_schema: pl.Schema,
    call: Callable[[Any, pl.DataFrame],
                   tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame | None, Accounting]],
    carried: Sequence[str] = (),
    with_unmapped: bool = False,
    with_ids: bool = False,
) -> _Validated:
    """Shuffle an export by its id and run ``call`` (a polars loader) on every group.

    ``call(raw, helpers)`` validates the group's raw rows (a frame of the export's columns, in
    row order) and returns ``(good, rejects, unmapped, accounting)``; the group-local row numbers
    it reports are mapped back to the file's own rows here, and its accounting is summed.
    With ``with_ids``, the third is the ids of the rejected rows instead (contacts).
    """
    kinds = {"good": good_schema, "reject": _REJECTS, "count": _COUNTS, "reason": _REASONS,
             "unmapped": _UNMAPPED, "ids": _IDS}
    packing = _Packing(kinds)
    columns, location, single = list(source.columns), source.location, source.single_file
    input_name = source.input

    def check(table: pa.Table) -> pa.Table:
        helpers = pl.from_arrow(table.select([_FILE, _FILE_ROW, _ORDINAL, *carried]))
        assert isinstance(helpers, pl.DataFrame)
        helpers = helpers.sort(_ORDINAL).with_row_index("_local", offset=1).with_columns(
            pl.col("_local").cast(pl.Int64)
        )
        raw = pl.from_arrow(table)
        assert isinstance(raw, pl.DataFrame)
        raw = raw.sort(_ORDINAL).select(columns)
        # the loaders validate a frame as read: the batch goes in as it is, no file between
        good, rejects, unmapped, accounting = call(raw, helpers)
        index = helpers.select("_local", _ORDINAL, _FILE_ROW, _FILE)
        good = good.join(index, left_on=ROW, right_on="_local", how="left", maintain_order="left")
        good = good.with_columns(pl.col(_ORDINAL).alias(ROW))
        rejects = rejects.join(index, left_on="row", right_on="_local", how="left",
                               maintain_order="left")
        rejects = rejects.with_columns(
            (pl.lit(location) if single else pl.col(_FILE)).alias("file"),
            pl.col(_FILE_ROW).alias("row"),
        )
        frames = {
            "good": good,
            "reject": rejects,
            "count": pl.DataFrame({name: [getattr(accounting, name)] for name in _COUNTS}),
            # (a cell left blank is listed with the rejects, its row counted as used)
            "reason": rejects.filter(~pl.col("reason").str.starts_with(BLANKED))
            .group_by("reason").len().rename({"len": "n"}),
        }
        if unmapped is not None and with_ids:
            frames["ids"] = unmapped
        elif unmapped is not None:
            frames["unmapped"] = unmapped.with_columns(pl.col("touches").cast(pl.Int64))
        return packing.pack(frames)

    frame = source.frame.withColumn(_BUCKET, _bucket(key, buckets))
    out = frame.groupBy(_BUCKET).applyInArrow(check, packing.spark).persist()
    # one small collect: every group's counts, reject reasons and unmapped utm pairs
    tallies = out.filter(F.col(_KIND).isin("count", "reason", "unmapped", "ids")).toArrow()
    counts = packing.local(tallies, "count").sum()
    reasons = (packing.local(tallies, "reason").group_by("reason").agg(pl.col("n").sum())
               .sort("reason"))
    accounting = Accounting(
        input_name, location,
        rejected={str(r): int(n) for r, n in reasons.iter_rows()},
        **{name: int(counts[name][0] or 0) for name in _COUNTS},
    )
    unmapped = None
    if with_unmapped:
        unmapped = (
            packing.local(tallies, "unmapped").group_by("utm_source", "utm_medium")
            .agg(pl.col("touches").sum().cast(pl.UInt32))
            .sort(["touches", "utm_source", "utm_medium"], descending=[True, False, False],
                  nulls_last=True)
        )
    return _Validated(
        good=packing.spark_frame(out, "good"),
        rejects=packing.spark_frame(out, "reject"),
        accounting=accounting,
        unmapped=unmapped,
        cached=out,
        rejected_ids=packing.local(tallies, "ids") if with_ids else None,
    )


def _schema_of(frame: pl.DataFrame) -> pl.Schema:
    """A probe's output schema, with all-null columns typed as text."""
    return pl.Schema([(c, pl.String() if t == pl.Null else t) for c, t in frame.schema.items()])


@dataclass
class SparkInputs:
    """Validated exports as Spark frames (the columns of :class:`attribution.loading.Inputs`)."""

    touchpoints: DataFrame
    deals: DataFrame
    contacts: DataFrame
    rejects: DataFrame
    accounting: dict[str, Accounting]
    files: list[InputFile]
    currency: str
    unmapped: pl.DataFrame
    channel_groups: dict[str, str]
    schemas: dict[str, pl.Schema]
    #: frames the engine cached; :meth:`SparkRunResult.unpersist` frees them
    cached: list[DataFrame] = field(default_factory=list)
    #: the shuffle partitions of each stage (stated in run.json)
    partitions: _Partitions = field(default_factory=lambda: _Partitions())


_CONTACT_SCHEMA = pl.Schema(
    [("contact_id", pl.String()), ("account_id", pl.String()), ("lead_created_at", UTC_TIME)]
)


def _buckets(partitions: int, rows: int, buckets: int | None) -> int:
    if buckets:
        return int(buckets)
    wanted = min(partitions, -(-rows // MIN_ROWS_PER_BATCH))
    return max(1, wanted, -(-rows // ROWS_PER_BATCH))


#: the most shuffle partitions a derived plan uses (Spark's own default)
MAX_DERIVED_PARTITIONS = 200


@dataclass
class _Partitions:
    """The shuffle partitions of each stage, and where the number came from.

    With ``derive`` (a session the engine made, without ``spark.sql.shuffle.partitions`` in
    its settings), each stage runs with one partition per batch of ids or accounts (20,000 to
    200,000 rows each, at most :data:`MAX_DERIVED_PARTITIONS`), set on the session before the
    stage's shuffle: a small export is not spread over Spark's default 200 partitions (mostly
    empty, each a task). Otherwise the session's setting stands and the batches are sized by
    it. Either way run.json states what each stage used.
    """

    derive: bool = False
    used: dict[str, int] = field(default_factory=dict)

    def plan(self, spark: SparkSession, stage: str, rows: int, buckets: int | None) -> int:
        """The number of batches for ``stage`` (setting the session's partitions if derived)."""
        if self.derive:
            count = _buckets(MAX_DERIVED_PARTITIONS, rows, buckets)
            spark.conf.set("spark.sql.shuffle.partitions", str(count))
        else:
            count = _buckets(int(spark.conf.get("spark.sql.shuffle.partitions") or 200), rows,
                             buckets)
        self.used[stage] = int(spark.conf.get("spark.sql.shuffle.partitions") or 200)
        return count

    def record(self) -> dict[str, Any]:
        return {
            "shuffle_partitions": dict(self.used),
            "shuffle_partitions_from": (
                "input rows: a partition per batch of 20,000 to 200,000 rows"
                if self.derive else "spark.sql.shuffle.partitions"),
        }


def _local_file(location: str) -> Path | None:
    if "://" in location and not location.startswith("file://"):
        return None
    path = Path(location.removeprefix("file://"))
    return path if path.is_file() else None


def _input_file(source: _Source, accounting: Accounting) -> InputFile:
    local = _local_file(source.location) if source.single_file else None
    return InputFile(source.input, source.location, accounting.read,
                     file_digest(local) if local else "")


def load(
    spark: SparkSession,
    config: Config,
    *,
    buckets: int | None = None,
    progress: Progress | None = None,
    partitions: _Partitions | None = None,
) -> SparkInputs:
    """Read and validate the exports named by ``config`` on Spark.

    Gives the same rows, rejects (file, row, column, reason, value), accounting and currency
    as :func:`attribution.pipeline.load`; the loaders themselves run on groups of ids.
    """
    if config.touchpoints is None or config.deals is None:
        missing = "--touchpoints" if config.touchpoints is None else "--deals"
        raise ConfigError(
            f"no {missing[2:]} file: give {missing} FILE or set it under [inputs] in the config"
        )
    report = progress or (lambda _stage, _done, _total: None)
    partitions = partitions or _Partitions()
    _configure(spark)
    rules = load_rules(config.channel_rules)
    columns = config.columns
    # the loaders' options, as pipeline.load passes them
    time_options: dict[str, Any] = {"time_formats": config.time_formats}
    deal_options: dict[str, Any] = {**time_options, "statuses": config.statuses}
    stages = ["contacts", "touchpoints", "deals"] if config.contacts else ["touchpoints", "deals"]
    accounting: dict[str, Accounting] = {}
    files: list[InputFile] = []
    rejects: list[DataFrame] = []
    schemas: dict[str, pl.Schema] = {}
    cached: list[DataFrame] = []

    contacts: DataFrame | None = None
    rejected_contacts: pl.DataFrame | None = None
    contact_schema = _CONTACT_SCHEMA
    if config.contacts is not None:
        report("load contacts", stages.index("contacts"), len(stages))
        mapping = columns.get("contacts")
        source = read_input(spark, config.contacts, "contacts")
        probe = _probe(source, lambda path: load_contacts(path, mapping, **time_options), rows=0)
        contact_schema = _schema_of(probe[0])

        def check_contacts(path: Path, _helpers: pl.DataFrame):
            ids: list[pl.DataFrame] = []
            good, bad, counted, _rows = load_contacts(path, mapping, rejected=ids,
                                                      **time_options)
            return good, bad, pl.concat(ids) if ids else pl.DataFrame(schema=_IDS), counted

        validated = _validate(
            source,
            _text_key(_column_of(source, "contact_id", mapping, ())),
            partitions.plan(spark, "contacts", source.rows, buckets),
            contact_schema,
            check_contacts,
            with_ids=True,
        )
        contacts = validated.good
        rejected_contacts = validated.rejected_ids
        cached.append(validated.cached)
        accounting["contacts"] = validated.accounting
        files.append(_input_file(source, validated.accounting))
        rejects.append(validated.rejects)

    report("load touchpoints", stages.index("touchpoints"), len(stages))
    mapping = columns.get("touchpoints")
    source = read_input(spark, config.touchpoints, "touchpoints")
    empty_contacts = None if contacts is None else pl.DataFrame(schema=contact_schema)
    probe = _probe(
        source, lambda path: load_touchpoints(path, rules, empty_contacts, mapping, **time_options),
        rows=0,
    )
    touch_schema, groups = _schema_of(probe[0]), probe[4]
    frame = source.frame
    carried: list[str] = []
    if contacts is not None:
        contact_key = _text_key(_column_of(source, "contact_id", mapping, ()))
        lookup = contacts.select(
            F.col("contact_id").alias("_contact_key"),
            F.array(F.struct("contact_id", "account_id")).alias(_CONTACTS),
        )
        frame = frame.withColumn("_contact_key", contact_key).join(
            lookup, "_contact_key", "left"
        ).drop("_contact_key")
        carried = [_CONTACTS]

    def check_touchpoints(path: Path, helpers: pl.DataFrame):
        known = None
        if carried:
            known = (
                helpers.select(pl.col(_CONTACTS).explode()).unnest(_CONTACTS)
                .drop_nulls("contact_id").unique(maintain_order=True)
            ).cast({"contact_id": pl.String, "account_id": pl.String})
        good, bad, counted, unmapped, _groups = load_touchpoints(
            path, rules, known, mapping, rejected_contacts=rejected_contacts, **time_options)
        return good, bad, unmapped, counted

    touch_source = dataclasses.replace(source, frame=frame)
    validated = _validate(
        touch_source,
        _text_key(_column_of(source, "touchpoint_id", mapping, ())),
        partitions.plan(spark, "touchpoints", source.rows, buckets),
        touch_schema,
        check_touchpoints,
        carried=carried,
        with_unmapped=True,
    )
    touchpoints = validated.good
    cached.append(validated.cached)
    accounting["touchpoints"] = validated.accounting
    files.append(_input_file(source, validated.accounting))
    rejects.append(validated.rejects)
    unmapped = validated.unmapped
    assert unmapped is not None

    report("load deals", stages.index("deals"), len(stages))
    mapping = columns.get("deals")
    source = read_input(spark, config.deals, "deals")
    probe = _probe(
        source, lambda path: load_deals(path, pl.Series("account_id", [], pl.String),
                                        config.currency or "USD", mapping, **deal_options),
        rows=0,
    )
    deal_schema = _schema_of(probe[0])
    currency = config.currency or _currency(source, mapping)
    known_accounts = touchpoints.select("account_id")
    if contacts is not None:
        known_accounts = known_accounts.union(contacts.select("account_id"))
    lookup = known_accounts.distinct().select(
        F.col("account_id").alias("_account_key"), F.array("account_id").alias(_KNOWN)
    )
    frame = source.frame.withColumn(
        "_account_key", _text_key(_column_of(source, "account_id", mapping, ()))
    ).join(lookup, "_account_key", "left").drop("_account_key")

    def check_deals(path: Path, helpers: pl.DataFrame):
        known = helpers.select(pl.col(_KNOWN).explode()).drop_nulls().unique().to_series()
        good, bad, counted, _currency_used = load_deals(
            path, known.cast(pl.String).rename("account_id"), currency, mapping, **deal_options
        )
        return good, bad, None, counted

    validated = _validate(
        dataclasses.replace(source, frame=frame),
        _text_key(_column_of(source, "deal_id", mapping, ())),
        partitions.plan(spark, "deals", source.rows, buckets),
        deal_schema,
        check_deals,
        carried=[_KNOWN],
    )
    deals = validated.good
    cached.append(validated.cached)
    accounting["deals"] = validated.accounting
    files.append(_input_file(source, validated.accounting))
    rejects.append(validated.rejects)

    all_rejects = rejects[0]
    for more in rejects[1:]:
        all_rejects = all_rejects.unionByName(more)
    if config.strict:
        order = F.when(F.col("input") == "contacts", 0).when(F.col("input") == "touchpoints", 1)
        first = all_rejects.orderBy(order.otherwise(2), "file", "row").limit(1).collect()
        if first:
            row = first[0]
            raise RejectedRowError.from_reject(row["file"], row["row"], row["column"],
                                               row["reason"], row["value"])
    if contacts is None:
        contacts = spark.createDataFrame([], _struct(_CONTACT_SCHEMA))
    report("load", len(stages), len(stages))
    schemas.update(touchpoints=touch_schema, deals=deal_schema, contacts=contact_schema)
    return SparkInputs(
        touchpoints=touchpoints,
        deals=deals,
        contacts=contacts,
        rejects=all_rejects,
        accounting=accounting,
        files=files,
        currency=currency,
        unmapped=unmapped,
        channel_groups=groups,
        schemas=schemas,
        cached=cached,
        partitions=partitions,
    )


def _currency(source: _Source, mapping: dict[str, str] | None) -> str:
    """The run's currency when not configured: the most common one in the deals file, as the
    polars loader picks it (ties to the first name)."""
    column = _column_of(source, "currency", mapping, ())
    if column is None:
        return "USD"
    seen = _collect(
        source.frame.select(F.upper(_text_key(column)).alias("currency"))
        .filter(F.col("currency").isNotNull()).groupBy("currency").agg(F.count(F.lit(1)).alias("len"))
    )
    seen = seen.sort(["len", "currency"], descending=[True, False])
    return str(seen["currency"][0]) if seen.height else "USD"


# -- journeys ---------------------------------------------------------------------------------
_PATHS = PATH_COUNTS_SCHEMA
_STATS = pl.Schema(
    [
        (name, pl.Int64())
        for name in ("touches_deduplicated", "touches_out_of_window", "touches_used",
                     "deals_out_of_window", "deals_without_touch", "deal_journeys",
                     "account_journeys")
    ]
)
_TOTALS = pl.Schema(
    [
        (name, pl.Int64())
        for name in ("deals", "won_deals", "lost_deals", "open_deals", "won_revenue_cents",
                     "pipeline_cents",
                     "deals_without_touch", "journeys", "touches")
    ]
)
_CLOSE = pl.Schema(
    {"bucket": pl.String, "from_days": pl.Int64, "to_days": pl.Int64, "won": pl.Int64,
     "lost": pl.Int64, "won_revenue_cents": pl.Int64}
)
_BUILT = _Packing(
    {
        "touch": TOUCH_SCHEMA,
        "journey": JOURNEY_SCHEMA,
        "path": _PATHS,
        "stats": _STATS,
        "totals": _TOTALS,
        "close": _CLOSE,
        "groups": pl.Schema({"channel": pl.String, "channel_group": pl.String}),
    }
)


def _as_of(inputs: SparkInputs) -> datetime:
    """The default as-of instant of :func:`build_journeys`, over all the data."""
    latest = _collect(
        inputs.touchpoints.agg(F.max("timestamp").alias("t")).crossJoin(
            inputs.deals.agg(F.max("created_at").alias("c"), F.max("closed_at").alias("d"))
        )
    )
    present = [v for v in latest.row(0) if v is not None]
    moment = max(present) if present else datetime(1970, 1, 1, tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class _Journeys:
    built: DataFrame  # the packed output of the journey stage (persisted)
    stats: JourneyStats
    totals: dict[str, int]
    paths: _PathCounts
    time_to_close: pl.DataFrame
    channel_groups: pl.DataFrame

    @property
    def touches(self) -> DataFrame:
        return _BUILT.spark_frame(self.built, "touch")

    @property
    def journeys(self) -> DataFrame:
        return _BUILT.spark_frame(self.built, "journey")


def _build(spark: SparkSession, inputs: SparkInputs, config: Config,
           buckets: int | None) -> _Journeys:
    """Journeys per batch of accounts (one shuffle by account), with their path counts."""
    as_of = config.as_of or _as_of(inputs)
    schemas = inputs.schemas
    packing = _Packing({"touch": schemas["touchpoints"], "deal": schemas["deals"],
                        "contact": schemas["contacts"]})
    rows = inputs.accounting["touchpoints"].used + inputs.accounting["deals"].used
    count = inputs.partitions.plan(spark, "journeys", rows, buckets)
    bucket = F.pmod(F.hash("account_id"), F.lit(count)).alias(_BUCKET)
    stacked = (
        packing.tag(inputs.touchpoints, "touch", [bucket])
        .unionByName(packing.tag(inputs.deals, "deal", [bucket]), allowMissingColumns=True)
        .unionByName(packing.tag(inputs.contacts, "contact", [bucket]), allowMissingColumns=True)
    )
    lookback, dedup = config.lookback_days, config.dedup_minutes
    empty = pl.DataFrame()

    def build(table: pa.Table) -> pa.Table:
        journeys, stats = build_journeys(
            packing.local(table, "touch"),
            packing.local(table, "deal"),
            packing.local(table, "contact"),
            lookback_days=lookback,
            dedup_minutes=dedup,
            as_of=as_of,
        )
        totals = RunResult(config=config, journeys=journeys, models=[], credit=empty,
                           summary=empty).totals()
        stat_values = {name: [getattr(stats, name)] for name in _STATS}
        packed = _BUILT.pack(
            {
                "touch": journeys.touches.collect(),
                "journey": journeys.journeys.collect(),
                "path": path_counts(journeys),
                "stats": pl.DataFrame(stat_values),
                "totals": pl.DataFrame({k: [v] for k, v in totals.items() if k in _TOTALS}),
                "close": time_to_close_distribution(journeys),
                "groups": journeys.touches.select("channel", "channel_group").unique().collect(),
            }
        )
        bucket_of = table.column(_BUCKET)[0] if table.num_rows else None
        return packed.append_column(_BUCKET, pa.array([bucket_of] * packed.num_rows, pa.int32()))

    schema = T.StructType([*_BUILT.spark.fields, T.StructField(_BUCKET, T.IntegerType())])
    built = stacked.groupBy(_BUCKET).applyInArrow(build, schema).persist()

    # one small collect: every batch's counts, time-to-close histogram and channel groups
    tallies = built.filter(F.col(_KIND).isin("stats", "totals", "close", "groups")).toArrow()
    summed = _BUILT.local(tallies, "stats").sum()
    stats = JourneyStats(**{name: int(summed[name][0] or 0) for name in _STATS}, as_of=as_of)
    summed = _BUILT.local(tallies, "totals").sum()
    totals = {name: int(summed[name][0] or 0) for name in _TOTALS}
    close = (
        _BUILT.local(tallies, "close").group_by("bucket", "from_days", "to_days")
        .agg(pl.col("won", "lost", "won_revenue_cents").sum()).sort("from_days")
    )
    groups = pl.concat(
        [_BUILT.local(tallies, "groups").unique().sort("channel", "channel_group", nulls_last=True),
         pl.DataFrame({"channel": [NO_TOUCH_CHANNEL], "channel_group": [NO_TOUCH_GROUP]})],
        how="vertical_relaxed",
    ).unique(subset="channel", keep="first", maintain_order=True)
    paths = _PathCounts(
        _BUILT.spark_frame(built, "path").groupBy("path_key").agg(
            F.first("channels").alias("channels"),
            *[F.sum(c).alias(c) for c in ("conversions", "nulls", "revenue_cents", "opens")],
        )
    )
    return _Journeys(built, stats, totals, paths, close, groups)


class _PathCounts:
    """The summed distinct paths (:data:`PATH_COUNTS_SCHEMA`), summed by the executors and
    brought to the driver only when something reads them (a fit that learns from paths, the
    path statistics): a rule-based run never collects them. The table holds a row per
    distinct path, which on real journeys grows with the input."""

    def __init__(self, frame: DataFrame) -> None:
        self.frame = frame
        self._table: pl.DataFrame | None = None

    def collect(self) -> pl.DataFrame:
        if self._table is None:
            self._table = _collect(self.frame, _PATHS).sort("path_key")
        return self._table

    @property
    def collected(self) -> bool:
        return self._table is not None

    def lazy(self) -> pl.LazyFrame:
        return pl.defer(self.collect, schema=_PATHS)


#: the local engine's order of the inputs' rejects (:func:`attribution.loading.load_inputs`)
_INPUT_ORDER = {"contacts": 0, "touchpoints": 1, "deals": 2}


class _RejectRows:
    """The rejected rows (:data:`~attribution.schema.REJECT_SCHEMA`), left on the executors,
    which write them (:meth:`SparkWriter.rejects`); the driver holds their count by input and
    reason (summed by Spark) and collects the rows only when something reads them as a table
    (:meth:`SparkRunResult.to_local`, ``validate``'s ``--rejects FILE``). A systematically bad
    column makes them as many as the rows of the export."""

    def __init__(self, frame: DataFrame) -> None:
        self.frame = frame
        self._table: pl.DataFrame | None = None
        counted = _collect(frame.groupBy("input", "reason").count(),
                           pl.Schema({"input": pl.String, "reason": pl.String,
                                      "count": pl.Int64}))
        #: ``input, reason, count``: the rows by input and reason
        self.counts = counted.sort("input", "reason")
        self.rows = int(counted.get_column("count").sum())

    def ordered(self) -> DataFrame:
        """The rows with the local engine's order as columns ``_order``, ``file``, ``row``."""
        order = F.lit(3)
        for name, rank in reversed(_INPUT_ORDER.items()):
            order = F.when(F.col("input") == name, rank).otherwise(order)
        return self.frame.withColumn("_order", order)

    def collect(self) -> pl.DataFrame:
        if self._table is None:
            self._table = (
                _collect(self.frame, _REJECTS)
                .with_columns(pl.col("input").replace_strict(_INPUT_ORDER, default=3)
                              .alias("_order"))
                .sort(["_order", "file", "row"])
                .drop("_order")
            )
        return self._table

    @property
    def collected(self) -> bool:
        return self._table is not None


def write_rejects_csv(rejects: _RejectRows, extra: pl.DataFrame, location: str, *,
                      csv_raw: bool = False) -> tuple[int, str]:
    """``location`` (a local path or a URI, :func:`_output_stream`): the rejected rows as the
    local engine's ``rejects.csv`` (:func:`attribution.results.write_rejects`), byte for byte,
    written by one executor task: the rows in the local order (input, file, row; a sort in
    Spark that spills, not the driver's memory), a batch at a time, then ``extra`` (the
    driver's own few: an experiments or spend file's). Returns the data rows written and the
    file's SHA-256, which the task computes as it writes; the driver receives one row.

    Each batch is neutralised and written with ``quote_style="never"``
    (:func:`attribution.output.neutralise_formulas` quotes every other cell exactly as polars
    would), so the bytes do not depend on which batch holds a formula cell."""
    from attribution.output import neutralise_formulas

    columns = list(_REJECTS)

    def text(frame: pl.DataFrame, header: bool) -> bytes:
        if csv_raw:
            return frame.write_csv(include_header=header).encode()
        return neutralise_formulas(frame).write_csv(include_header=header,
                                                    quote_style="never").encode()

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import hashlib

        digest, rows, header = hashlib.sha256(), 0, True
        with _output_stream(location) as stream:
            chunks = (_from_arrow(pa.Table.from_batches([b]).select(columns), _REJECTS)
                      for b in batches)
            for chunk in _then(chunks, extra):
                if not chunk.height:
                    continue
                data = text(chunk.select(columns), header)
                stream.write(data)
                digest.update(data)
                rows, header = rows + chunk.height, False
        yield pa.RecordBatch.from_pydict({"rows": [rows], "sha256": [digest.hexdigest()]},
                                         schema=pa.schema([("rows", pa.int64()),
                                                           ("sha256", pa.string())]))

    one = (rejects.ordered().repartition(1).sortWithinPartitions("_order", "file", "row")
           .select(columns))
    done = one.mapInArrow(write, "rows long, sha256 string").collect()
    return int(done[0]["rows"]), str(done[0]["sha256"])


def _then(first: Iterator[pl.DataFrame], last: pl.DataFrame) -> Iterator[pl.DataFrame]:
    yield from first
    yield last


# -- models and credit ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Scorer:
    """A model ready to weigh any batch of journeys: its fit (from the summed path counts),
    if it fits, made once on the driver and shipped to the executors."""

    model: AttributionModel
    fit: Fit | None = None

    def weights(self, journeys: Journeys) -> pl.LazyFrame:
        return self.model.weights(journeys) if self.fit is None else self.fit.weights(journeys)


def _scorers(models: Sequence[AttributionModel], paths: _PathCounts,
             tallies: Mapping[str, Mapping[str, pl.DataFrame]]) -> tuple[list[_Scorer],
                                                                         dict[str, Fit]]:
    """Fit the models that fit from tallies on their summed tallies, the other ones whose
    fits merge on the summed path counts (collected then); the others fit nothing."""
    scorers: list[_Scorer] = []
    fits: dict[str, Fit] = {}
    for model in models:
        if not supported(model):
            raise ModelError(
                f"model {model.name!r} fits on all journeys at once in a way the spark engine "
                "does not reduce yet; run it without --engine spark"
            )
        if model.fits and model.name in tallies:
            fits[model.name] = model.fit_tallies(tallies[model.name])
            scorers.append(_Scorer(model, fits[model.name]))
        elif model.fits:
            fits[model.name] = model.fit_counts(paths.collect())
            scorers.append(_Scorer(model, fits[model.name]))
        else:
            scorers.append(_Scorer(model))
    return scorers, fits


def supported(model: AttributionModel) -> bool:
    """Whether the spark engine runs ``model``: per-journey models, and fitted models whose fit
    merges over partitions (:attr:`~attribution.models.base.FitInput.merges`) or is made from
    tallies summed over them (:meth:`~attribution.models.base.AttributionModel.
    fits_from_tallies`: ``incremental``, whose fit reads every journey's touch times)."""
    if model.fit_input is not None:
        return model.fit_input.merges or model.fits_from_tallies()
    return not model.uses_population


_REACH = pl.Schema({"channel": pl.String, "deals_touched": pl.Int64})
_TOTAL_CREDIT = pl.Schema(
    {"model": pl.String, "channel": pl.String, "channel_group": pl.String,
     "pipeline_credit_cents": pl.Int64, "revenue_credit_cents": pl.Int64,
     "conversion_credit": pl.Float64}
)
_SCORED = _Packing({"credit": CREDIT_SCHEMA, "reach": _REACH, "total": _TOTAL_CREDIT})


def _deals_touched(journeys: Journeys) -> pl.DataFrame:
    """``deals_touched`` per channel of a batch, by :func:`summarise`'s own definition."""
    channels = pl.concat(
        [journeys.touches.select("channel").unique().collect(),
         pl.DataFrame({"channel": [NO_TOUCH_CHANNEL]})]
    ).unique()
    probe = channels.with_columns(
        pl.lit("reach").alias("model"), pl.lit(None, pl.String).alias("channel_group"),
        pl.lit(1, pl.Int64).alias("pipeline_credit_cents"),
        pl.lit(0, pl.Int64).alias("revenue_credit_cents"),
        pl.lit(0.0).alias("conversion_credit"),
    )
    return summarise(probe, journeys).select("channel", pl.col("deals_touched").cast(pl.Int64))


def _population(built: _Journeys) -> pl.DataFrame:
    """``journey_id, amount_cents, revenue_cents`` of every journey that carries money and has a
    touch: the journeys a fitted model's channel shares weigh (Markov's global allocation), whose
    channel totals :func:`attribution.credit.allocate` splits over all of them, not a batch's
    (one row a deal, collected once on the driver and shipped with the scoring)."""
    journeys = _BUILT.spark_frame(built.built, "journey")
    return _collect(
        journeys.filter((F.col("status") != "none") & (F.col("n_touches") > 0))
        .select("journey_id", "amount_cents", "revenue_cents"),
        pl.Schema({"journey_id": pl.String, "amount_cents": pl.Int64, "revenue_cents": pl.Int64}),
    )


def _score(built: _Journeys, scorers: Sequence[_Scorer], as_of: datetime) -> DataFrame:
    """Credit of every model for every batch of accounts, where the journey stage left it.

    The journey stage wrote each batch's rows contiguously into one partition, so a map over
    those partitions sees whole batches; no second shuffle is needed.
    """
    groups = built.channel_groups
    # only a fit whose credit is defined by channel totals (Markov's global allocation) splits
    # over the whole run's deals; the others' weights are each journey's own
    by_totals = any(s.fit is not None and s.fit.channel_shares() is not None for s in scorers)
    population = _population(built) if by_totals else None

    def score_batch(touches: pl.DataFrame, journeys: pl.DataFrame) -> pa.Table:
        batch = Journeys(touches=touches.lazy(), journeys=journeys.lazy(), as_of=as_of)
        credits = []
        scopes = Scopes(batch, [scorer.model for scorer in scorers])
        for scorer in scorers:
            scope = scopes.of(scorer.model)
            credit = allocate(scope, scorer.weights(scope), scorer.model.name,
                              population=population).collect()
            credits.append(
                credit.drop("channel_group")
                .join(groups, on="channel", how="left", maintain_order="left")
                .select(list(CREDIT_SCHEMA))
            )
        credit = pl.concat(credits) if credits else pl.DataFrame(schema=CREDIT_SCHEMA)
        total = credit.group_by("model", "channel", "channel_group").agg(
            pl.col("pipeline_credit_cents", "revenue_credit_cents", "conversion_credit").sum()
        )
        return _SCORED.pack({"credit": credit, "reach": _deals_touched(batch), "total": total})

    wanted = built.built.filter(F.col(_KIND).isin("touch", "journey"))
    return wanted.mapInArrow(_per_batch(score_batch), _SCORED.spark)


def _per_batch(
    call: Callable[[pl.DataFrame, pl.DataFrame], pa.Table],
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """A ``mapInArrow`` function calling ``call(touches, journeys)`` on each batch of accounts
    of the journey stage's output, where that stage left it: each batch's rows are contiguous
    in one partition, so a map over the partitions sees whole batches with no shuffle."""

    def over(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        pending: list[pa.Table] = []
        current = None
        done: set[int] = set()

        def flush() -> Iterator[pa.RecordBatch]:
            if not pending:
                return
            table = pa.concat_tables(pending)
            pending.clear()
            touches = _BUILT.local(table, "touch")
            journeys = _BUILT.local(table, "journey")
            yield from call(touches, journeys).to_batches()

        for record in batches:
            table = pa.Table.from_batches([record])
            buckets = table.column(_BUCKET).to_numpy(zero_copy_only=False)
            start = 0
            for end in range(1, len(buckets) + 1):
                if end == len(buckets) or buckets[end] != buckets[start]:
                    bucket = int(buckets[start])
                    if bucket != current:
                        yield from flush()
                        if bucket in done:
                            raise RuntimeError(f"account batch {bucket} split across rows of "
                                               "its partition")
                        if current is not None:
                            done.add(current)
                        current = bucket
                    pending.append(table.slice(start, end - start))
                    start = end
        yield from flush()

    return over


def _tallies(built: _Journeys, models: Sequence[AttributionModel],
             as_of: datetime) -> dict[str, dict[str, pl.DataFrame]]:
    """Each model's :meth:`~attribution.models.base.AttributionModel.tally` tables of every
    batch of accounts, summed by Spark (integer columns summed, grouped by the others) and
    only then collected: their size is bounded by the model (Markov: a row per transition and
    per state), not by the journeys or their distinct paths."""
    stub = Journeys.from_frames(pl.DataFrame(schema=TOUCH_SCHEMA),
                                pl.DataFrame(schema=JOURNEY_SCHEMA))
    shapes = {f"m{i}_{name}": (model, name, table.schema)
              for i, model in enumerate(models) for name, table in model.tally(stub).items()}
    packing = _Packing({kind: schema for kind, (_, _, schema) in shapes.items()})

    def tally_batch(touches: pl.DataFrame, journeys: pl.DataFrame) -> pa.Table:
        batch = Journeys(touches=touches.lazy(), journeys=journeys.lazy(), as_of=as_of)
        frames = {}
        for i, model in enumerate(models):
            for name, table in model.tally(batch).items():
                frames[f"m{i}_{name}"] = table
        return packing.pack(frames)

    wanted = built.built.filter(F.col(_KIND).isin("touch", "journey"))
    tallied = wanted.mapInArrow(_per_batch(tally_batch), packing.spark)
    out: dict[str, dict[str, pl.DataFrame]] = {model.name: {} for model in models}
    for kind, (model, name, schema) in shapes.items():
        keys = [c for c, t in schema.items() if not t.is_integer()]
        sums = [F.sum(c).alias(c) for c, t in schema.items() if t.is_integer()]
        summed = packing.spark_frame(tallied, kind).groupBy(*keys).agg(*sums)
        out[model.name][name] = _collect(summed.select(list(schema)), schema)
    return out


def _summary(scored: DataFrame, models: Sequence[AttributionModel]) -> pl.DataFrame:
    """The channel summary: each batch's sums added up, then :func:`summarise` on the totals."""
    tallies = scored.filter(F.col(_KIND).isin("reach", "total")).toArrow()
    totals = (
        _SCORED.local(tallies, "total").group_by("model", "channel", "channel_group")
        .agg(pl.col("pipeline_credit_cents", "revenue_credit_cents", "conversion_credit").sum())
    )
    order = pl.DataFrame({"model": [m.name for m in models]}).with_row_index("_order")
    totals = (totals.join(order, on="model", how="left")
              .sort("_order", "channel", nulls_last=True).drop("_order"))
    reach = _SCORED.local(tallies, "reach").group_by("channel").agg(pl.col("deals_touched").sum())
    nothing = Journeys.from_frames(pl.DataFrame(schema=TOUCH_SCHEMA),
                                   pl.DataFrame(schema=JOURNEY_SCHEMA))
    summary = summarise(totals, nothing)
    return summary.drop("deals_touched").join(
        reach, on="channel", how="left", maintain_order="left"
    ).with_columns(pl.col("deals_touched").fill_null(0)).select(
        [pl.col(name).cast(dtype) for name, dtype in SUMMARY_SCHEMA.items()]
    )


# -- the run --------------------------------------------------------------------------------
@dataclass
class SparkRunResult:
    """What a Spark run produced: small tables on the driver (polars), large ones in Spark.

    It answers what :class:`attribution.pipeline.RunResult` answers for the CLI — ``summary``,
    :meth:`comparison`, :meth:`totals`, ``accounting``, ``rejects``, ``files``, ``stats``,
    ``currency``, ``unmapped``, ``models`` — while touch-level ``credit_frame``,
    ``touches_frame`` and ``journeys_frame`` stay distributed. :meth:`to_local` collects
    everything into a ``RunResult`` (for data that fits on the driver).
    """

    config: Config
    spark: SparkSession
    inputs: SparkInputs
    models: list[AttributionModel]
    summary: pl.DataFrame
    credit_frame: DataFrame | None
    touches_frame: DataFrame
    journeys_frame: DataFrame
    #: summed distinct paths (``path_key, channels, conversions, nulls, revenue_cents, opens``),
    #: collected when first read (:attr:`paths`)
    path_counts: _PathCounts
    #: :func:`attribution.graph.time_to_close_distribution` over all journeys
    time_to_close: pl.DataFrame
    stats: JourneyStats
    accounting: list[Accounting]
    #: the rejected rows, on the executors (counted by input and reason on the driver)
    reject_rows: _RejectRows
    files: list[InputFile]
    currency: str
    unmapped: pl.DataFrame | None
    fits: dict[str, Any] = field(default_factory=dict)
    #: models left out of a run with no models configured, because the engine does not run
    #: them (see :func:`supported`); the CLI should say so
    skipped_models: list[str] = field(default_factory=list)
    _totals: dict[str, int] = field(default_factory=dict)
    _cached: list[DataFrame] = field(default_factory=list)

    def unpersist(self) -> None:
        """Free what the engine cached on the executors (validated rows, journeys, credit)."""
        for frame in self._cached:
            frame.unpersist()

    def comparison(self, baseline: str = BASELINE) -> pl.DataFrame:
        """Per model and channel, the credit next to last-touch's, with the shift."""
        return compare(self.summary, baseline)

    @property
    def rejects(self) -> pl.DataFrame:
        """Every rejected row on the driver, in the polars engine's order (collected on first
        use: a run that writes its result set leaves them to the executors)."""
        return self.reject_rows.collect()

    def totals(self) -> dict[str, Any]:
        """Headline figures, as :meth:`attribution.pipeline.RunResult.totals`."""
        return dict(self._totals)

    def path_journeys(self, *, include_open: bool = False) -> Journeys:
        """Path-table journeys for the path graph and statistics (see :func:`path_journeys`)."""
        return path_journeys(self.paths, include_open=include_open)

    @property
    def paths(self) -> pl.DataFrame:
        """The summed distinct paths on the driver (collected on first use: a row per
        distinct path, which grows with the input)."""
        return self.path_counts.collect()

    def diagnostics(self) -> dict[str, pl.DataFrame]:
        """Markov removal effects and transitions, Shapley values (as
        :func:`attribution.pipeline.model_diagnostics`)."""
        tables: dict[str, pl.DataFrame] = {}
        for model in self.models:
            fitted = self.fits.get(model.name)
            if fitted is not None:
                tables.update(fit_tables(model.name, fitted))
        return tables

    def credit(self) -> pl.DataFrame:
        """Touch-level credit on the driver, in the polars engine's order."""
        if self.credit_frame is None:
            return pl.DataFrame(schema=CREDIT_SCHEMA)
        order = pl.DataFrame({"model": [m.name for m in self.models]}).with_row_index("_order")
        return (
            _collect(self.credit_frame, CREDIT_SCHEMA)
            .join(order, on="model", how="left")
            .sort(["_order", "journey_id", "touch_index", "channel"], nulls_last=True)
            .drop("_order")
        )

    def to_local(self) -> RunResult:
        """Everything collected to the driver as a :class:`RunResult` (for data that fits)."""
        return self.to_result(keep_inputs=True, keep_credit=True)

    def to_result(self, *, keep_inputs: bool = False, keep_credit: bool = False,
                  keep_rejects: bool = True) -> RunResult:
        """The run as the one result type every engine returns.

        The small tables come as they are; the journeys are read from Spark only when asked
        for (a deferred frame: the summary, comparison, path statistics and model tables
        never need them). ``keep_inputs`` and ``keep_credit`` collect the validated exports and
        the touch-level credit to the driver, as the scorecard and the report read them.
        ``keep_rejects=False`` leaves the rejected rows on the executors, for a writer that
        has them write the rejects (:func:`write_credit` hands them over): the result's
        ``rejects`` is then empty and ``rejects_elsewhere`` their number.
        """
        stats = self.stats
        touches_frame, journeys_frame = self.touches_frame, self.journeys_frame
        journeys = Journeys(
            touches=pl.defer(
                lambda: _collect(touches_frame, TOUCH_SCHEMA).sort("journey_id", "touch_index"),
                schema=TOUCH_SCHEMA),
            journeys=pl.defer(
                lambda: _collect(journeys_frame, JOURNEY_SCHEMA).sort("journey_id"),
                schema=JOURNEY_SCHEMA),
            as_of=stats.as_of,
        )
        inputs = None
        if keep_inputs:
            schemas = self.inputs.schemas
            inputs = Inputs(
                touchpoints=_collect(self.inputs.touchpoints, schemas["touchpoints"]).sort(ROW),
                deals=_collect(self.inputs.deals, schemas["deals"]).sort(ROW),
                contacts=_collect(self.inputs.contacts, schemas["contacts"]).select(
                    list(_CONTACT_SCHEMA)),
                rejects=self.rejects,
                accounting={a.input: a for a in self.accounting},
                files=self.files,
                currency=self.currency,
                unmapped=self.unmapped if self.unmapped is not None else pl.DataFrame(),
                channel_groups=self.inputs.channel_groups,
            )
        credit = (self.credit() if keep_credit and self.models
                  else pl.DataFrame(schema=CREDIT_SCHEMA))
        return RunResult(
            config=self.config,
            journeys=journeys,
            models=list(self.models),
            credit=credit if self.models else pl.DataFrame(),
            summary=self.summary,
            accounting=list(self.accounting),
            rejects=self.rejects if keep_rejects else pl.DataFrame(schema=_REJECTS),
            rejects_elsewhere=0 if keep_rejects else self.reject_rows.rows,
            files=list(self.files),
            stats=stats,
            currency=self.currency,
            unmapped=self.unmapped,
            inputs=inputs,
            diagnostics=self.diagnostics(),
            engine="spark",
            path_counts=self.path_counts.lazy(),
            time_to_close=self.time_to_close,
            skipped_models=list(self.skipped_models),
            known_totals=self.totals(),
            engine_settings=self.inputs.partitions.record(),
        )


def _session_for(spark: SparkSession | None, master: str,
                 conf: Mapping[str, str] | None) -> SparkSession:
    if spark is not None:
        for key, value in dict(conf or {}).items():
            spark.conf.set(key, value)
        _configure(spark)
        ship(spark)
        return spark
    return session(master, conf)


def prepare(
    config: Config,
    *,
    spark: SparkSession | None = None,
    master: str = "local[*]",
    conf: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    buckets: int | None = None,
) -> SparkRunResult:
    """Load and validate the exports and build journeys on Spark, without running a model.

    The Spark counterpart of :func:`attribution.pipeline.prepare` (``validate`` and ``paths``
    need no more). ``spark`` is used as given (else a session on ``master`` with ``conf``);
    ``buckets`` is how many batches of ids or accounts the polars steps run on (default:
    one per shuffle partition, with 20,000 to 200,000 rows each where the data allows).
    """
    return _prepare(config, spark=spark, master=master, conf=conf, progress=progress,
                    buckets=buckets)[0]


def _prepare(
    config: Config,
    *,
    spark: SparkSession | None,
    master: str,
    conf: Mapping[str, str] | None,
    progress: Progress | None,
    buckets: int | None,
) -> tuple[SparkRunResult, _Journeys]:
    if config.paths is not None:
        raise ConfigError(
            "the spark engine reads touchpoint, deal and contact exports; a path table is "
            "already aggregated: read it with attribution.pipeline.run (the CLI does so "
            "with --engine spark)"
        )
    derive = spark is None and "spark.sql.shuffle.partitions" not in dict(conf or {})
    spark = _session_for(spark, master, conf)
    report = progress or (lambda _stage, _done, _total: None)
    inputs = load(spark, config, buckets=buckets, progress=report,
                  partitions=_Partitions(derive=derive))
    report("journeys", 0, 1)
    built = _build(spark, inputs, config, buckets)
    report("journeys", 1, 1)
    stats = built.stats
    accounting = {name: dataclasses.replace(a) for name, a in inputs.accounting.items()}
    touch = accounting["touchpoints"]
    touch.deduplicated += stats.touches_deduplicated
    touch.out_of_window = stats.touches_out_of_window
    touch.used = stats.touches_used
    deal = accounting["deals"]
    deal.out_of_window = stats.deals_out_of_window
    deal.used -= stats.deals_out_of_window
    check_reject_rate(accounting, config.max_reject_rate)  # as the polars engine: stop here
    rejects = _RejectRows(inputs.rejects)  # counted here; the rows stay on the executors
    return SparkRunResult(
        config=config,
        spark=spark,
        inputs=inputs,
        models=[],
        summary=pl.DataFrame(),
        credit_frame=None,
        touches_frame=built.touches,
        journeys_frame=built.journeys,
        path_counts=built.paths,
        time_to_close=built.time_to_close,
        stats=stats,
        accounting=list(accounting.values()),
        reject_rows=rejects,
        files=inputs.files,
        currency=inputs.currency,
        unmapped=inputs.unmapped,
        _totals=built.totals,
        _cached=[*inputs.cached, built.built],
    ), built


def run(
    config: Config,
    *,
    spark: SparkSession | None = None,
    master: str = "local[*]",
    conf: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    buckets: int | None = None,
) -> SparkRunResult:
    """The whole pipeline on Spark: the same models, credit and summary as
    :func:`attribution.pipeline.run`, to the cent.

    Examples
    --------
    >>> from attribution import Config
    >>> result = run(Config(touchpoints="s3://lake/touchpoints/", deals="s3://lake/deals.parquet"),
    ...              master="yarn", conf={"spark.executor.memory": "8g"})  # doctest: +SKIP
    >>> result.summary.head()                                              # doctest: +SKIP
    """
    prepared, built = _prepare(config, spark=spark, master=master, conf=conf, progress=progress,
                               buckets=buckets)
    report = progress or (lambda _stage, _done, _total: None)
    stub = Journeys.from_frames(pl.DataFrame(schema=TOUCH_SCHEMA),
                                pl.DataFrame(schema=JOURNEY_SCHEMA))
    models = resolve_models(config, stub)
    skipped = [] if config.models else [m.name for m in models if not supported(m)]
    models = [m for m in models if m.name not in skipped]
    for model in models:
        model.check(stub)
    report("models", 0, len(models))
    tallied = [m for m in models if m.fits and m.fits_from_tallies()]
    tallies = _tallies(built, tallied, prepared.stats.as_of) if tallied else {}
    scorers, fits = _scorers(models, built.paths, tallies)
    scored = _score(built, scorers, prepared.stats.as_of).persist()
    summary = _summary(scored, models)
    report("models", len(models), len(models))
    return dataclasses.replace(
        prepared,
        models=models,
        summary=summary,
        credit_frame=_SCORED.spark_frame(scored, "credit"),
        fits=fits,
        skipped_models=skipped,
        _cached=[*prepared._cached, scored],
    )


# -- writing -----------------------------------------------------------------------------------
def _money_as_decimal(frame: DataFrame, decimals: int = 2) -> DataFrame:
    """Minor-unit money columns as exact ``Decimal(38, decimals)`` major units (``decimals``:
    the currency's ISO 4217 minor unit), float ones (estimates) as float major units (as the
    polars writer)."""
    def major(name: str, dtype: T.DataType) -> Column:
        if name in MONEY_COLUMNS and isinstance(dtype, (T.LongType, T.IntegerType)):
            return ((F.col(name).cast("decimal(38,0)") / F.lit(10 ** decimals))
                    .cast(f"decimal(38,{decimals})").alias(major_name(name)))
        if name in MONEY_COLUMNS and isinstance(dtype, (T.DoubleType, T.FloatType)):
            return (F.col(name) / F.lit(float(10 ** decimals))).alias(major_name(name))
        return F.col(name)

    return frame.select([major(f.name, f.dataType) for f in frame.schema.fields])


def is_uri(location: str) -> bool:
    """Whether an output location is a URI (``s3a://``, ``gs://``, ``file://``, ...) rather
    than a local path."""
    return "://" in location


#: Hadoop scheme -> the scheme pyarrow's file systems know it by
_ARROW_SCHEMES = {"s3a": "s3", "s3n": "s3", "abfss": "abfs"}


def write_file(location: str, content: bytes) -> str:
    """Write one small file (``run.json``, ``rejects.csv``) to a URI with pyarrow's file
    systems (local, S3, GCS, Azure, HDFS): Spark writes folders of part files, and a Spark
    Connect client has no handle on the cluster's Hadoop file systems, so the side files of a
    result set go through the driver's own client of the same store. Credentials come from
    that client's usual places (environment, instance profile), not from Spark's settings."""
    with _output_stream(location) as stream:
        stream.write(content)
    return location


@contextlib.contextmanager
def _output_stream(location: str) -> Iterator[Any]:
    """A binary stream writing ``location``: a local path (its folder made), or a URI through
    pyarrow's file systems (:func:`write_file`). Used on the driver and in executor tasks."""
    if not is_uri(location):
        path = Path(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            yield handle
        return
    import pyarrow.fs as pafs

    scheme, sep, rest = location.partition("://")
    uri = f"{_ARROW_SCHEMES.get(scheme.lower(), scheme)}{sep}{rest}"
    try:
        filesystem, path_in = pafs.FileSystem.from_uri(uri)
        parent = path_in.rsplit("/", 1)[0]
        if parent:
            filesystem.create_dir(parent, recursive=True)
        with filesystem.open_output_stream(path_in) as stream:
            yield stream
    except (pa.ArrowException, OSError, ValueError) as exc:  # opening or writing
        raise ConfigError(
            f"--out {location.rsplit('/', 1)[0]}: cannot write {location.rsplit('/', 1)[-1]} "
            f"there ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
            "write to a local folder or a location pyarrow reaches (s3://, gs://, abfs://, "
            "hdfs://, file://)"
        ) from None


@dataclass
class SparkWriter:
    """A result set where Spark writes (:class:`attribution.results.ResultWriter`): a Parquet
    folder ``location/<table>`` per table, money as ``Decimal(38, 2)`` in major units, the
    touch-level credit written by the executors; ``run.json`` and ``rejects.csv`` beside them,
    in the same location (a local folder, or any URI: :func:`write_file`)."""

    location: str
    #: the local folder of ``run.json`` and ``rejects.csv``; None when ``location`` is a URI
    #: (they are written there)
    side: Path | None
    mode: str = "overwrite"
    written: dict[str, str] = field(default_factory=dict)
    credit: str | None = None
    run_id: str | None = None
    csv_raw: bool = False
    #: the run's currency: money is written to its minor unit
    currency: str = "USD"
    #: the run's session (set by :func:`write_credit`); else the active one
    spark: SparkSession | None = None
    #: the run's rejected rows on the executors (set by :func:`write_credit`), which
    #: :meth:`rejects` has them write; None for a run made on the driver (a path table)
    reject_rows: _RejectRows | None = None
    #: ``--rejects FILE``: where the executors write the rejects too (the driver never holds
    #: them to write it)
    rejects_file: str | None = None

    @contextlib.contextmanager
    def transaction(self, *, wait: bool = False) -> Iterator[None]:
        """Spark writes each table as a folder of its own (not staged: see docs/spark.md)."""
        yield

    def final(self, path: str) -> str:
        return path

    @classmethod
    def for_config(cls, config: Config) -> SparkWriter:
        if config.format != "parquet":
            raise ConfigError(
                f"--out-format {config.format}: the spark engine writes Parquet folders (one "
                "per table, written by the executors); leave out --out-format, or convert "
                "the folders afterwards"
            )
        location = _location(config.out or "out").rstrip("/")
        return cls(location, None if is_uri(location) else side_folder(config),
                   csv_raw=config.csv_raw,
                   rejects_file=None if config.rejects is None else str(config.rejects))

    def frame(self, stem: str, frame: DataFrame, files: int | None = None) -> str:
        """Write a Spark frame as the Parquet folder ``location/stem``."""
        target = f"{self.location}/{stem}"
        frame = _money_as_decimal(frame, currency_decimals(self.currency))
        if files:
            frame = frame.coalesce(files)
        frame.write.mode(self.mode).parquet(target)
        self.written[stem] = target
        return target

    def table(self, stem: str, frame: pl.DataFrame) -> str:
        spark = self.spark or SparkSession.active()
        small = spark.createDataFrame(_to_arrow(frame, pa.schema(
            [pa.field(n, _arrow_type(t)) for n, t in frame.schema.items()]
        )))
        return self.frame(stem, small, 1)

    def document(self, name: str, document: dict[str, Any]) -> str:
        if self.side is not None:
            return str(write_json_document(document, self.side / name))
        with tempfile.TemporaryDirectory() as folder:
            local = write_json_document(document, Path(folder) / name)
            return write_file(f"{self.location}/{name}", local.read_bytes())

    def rejects(self, rejects: pl.DataFrame) -> list[str]:
        """The ``rejects`` Parquet folder and ``rejects.csv`` (the local engine's bytes), both
        written by the executors from the run's rows (:attr:`reject_rows`), with ``rejects``
        (the driver's own: an experiments or spend file's) after them; the driver holds only
        their count. A run made on the driver writes its ``rejects`` as they are."""
        held = self.reject_rows
        if held is not None:
            return self._executor_rejects(held, rejects)
        written = [self.table("rejects",
                              rejects if rejects.height else pl.DataFrame(schema=_REJECTS))]
        if rejects.height and self.side is not None:
            written.append(str(write_rejects(rejects, self.side, csv_raw=self.csv_raw)))
        elif rejects.height:
            with tempfile.TemporaryDirectory() as folder:
                local = write_rejects(rejects, Path(folder), csv_raw=self.csv_raw)
                written.append(write_file(f"{self.location}/{local.name}",
                                          local.read_bytes()))
        return written

    def _executor_rejects(self, held: _RejectRows, extra: pl.DataFrame) -> list[str]:
        spark = self.spark or SparkSession.active()
        frame = held.frame.select(list(_REJECTS))
        if extra.height:
            frame = frame.unionByName(spark.createDataFrame(_to_arrow(extra, pa.schema(
                [pa.field(n, _arrow_type(t)) for n, t in _REJECTS.items()]))))
        written = [self.frame("rejects", frame, 1)]
        if not held.rows + extra.height:
            return written
        target = (str(self.side / "rejects.csv") if self.side is not None
                  else f"{self.location}/rejects.csv")
        for location in (target, self.rejects_file):
            if location is not None:
                write_rejects_csv(held, extra.select(list(_REJECTS)), location,
                                  csv_raw=self.csv_raw)
                written.append(location)
        return written


def write_credit(result: SparkRunResult, writer: SparkWriter) -> str | None:
    """The touch-level credit, written by the executors as ``credit/`` under the writer's
    location (nothing when the run had no model); the writer also takes the run's rejected
    rows, which it has the executors write (:meth:`SparkWriter.rejects`)."""
    writer.spark = result.spark
    writer.reject_rows = result.reject_rows
    if result.credit_frame is None:
        return None
    writer.currency = result.currency
    writer.credit = writer.frame("credit", result.credit_frame)
    return writer.credit


def write_local_credit(result: RunResult, writer: SparkWriter, spark: SparkSession) -> str:
    """The credit of a run made on the driver (a path table) as the ``credit/`` folder."""
    writer.spark = spark
    writer.credit = writer.table("credit", result.credit)
    return writer.credit


def write_results(
    result: SparkRunResult,
    out: str | Path,
    *,
    mode: str = "overwrite",
    journeys: bool = False,
) -> dict[str, str]:
    """Write a Spark run's result set under ``out`` (any location Spark can write).

    ``credit`` (touch-level, written by the executors), then what
    :func:`attribution.results.write_results` writes for every engine: ``summary``,
    ``comparison`` (when last-touch ran), the fitted models' tables, ``rejects``, and
    ``run.json`` (with ``rejects.csv``) beside them in ``out``; with ``journeys=True`` also
    ``journeys`` and ``touches``. Money is ``Decimal(38, 2)`` in major units. Each table is a
    Parquet folder ``out/<name>``; returns ``{name: location}`` of the folders.
    """
    location = _location(out).rstrip("/")
    writer = SparkWriter(location, None if is_uri(location) else Path(location), mode,
                         spark=result.spark)
    write_credit(result, writer)
    write_result_set(result.to_result(keep_rejects=False), writer)
    if journeys:
        writer.frame("journeys", result.journeys_frame)
        writer.frame("touches", result.touches_frame)
    return dict(writer.written)



__all__ = [
    "SESSION_CONF",
    "SparkInputs",
    "SparkRunResult",
    "load",
    "path_journeys",
    "prepare",
    "read_input",
    "run",
    "session",
    "supported",
    "write_results",
]
