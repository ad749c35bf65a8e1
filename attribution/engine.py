"""Engines: where a run's journeys, models and credit are computed.

Every engine answers the same two calls with the one result type,
:class:`~attribution.pipeline.RunResult`:

* ``prepare(config)``: load, validate and build journeys (no model);
* ``run(config, writer=...)``: the whole pipeline; with a :class:`~attribution.results.ResultWriter`
  of its own (:meth:`Engine.writer`) it writes the touch-level credit as it computes it, so no
  engine has to hold it.

``polars`` (:class:`LocalEngine`) runs on this machine; ``spark`` (:class:`SparkEngine`) runs
the same definitions on Apache Spark (the ``spark`` extra), to the same cent. The verbs of
:mod:`attribution.commands` take an engine and never ask which one it is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import polars as pl

from attribution import pipeline
from attribution.config import Config
from attribution.errors import ConfigError
from attribution.pipeline import Progress, RunResult
from attribution.results import DatabaseWriter, LocalWriter, ResultWriter, side_folder
from attribution.schema import currency_decimals

ENGINES = ("polars", "spark")


def is_database(location: object) -> bool:
    """Whether an input or ``--out`` names a database (``postgresql://``, ``duckdb://``, a
    ``.duckdb`` file) rather than files."""
    from attribution.reading import is_database_uri

    return is_database_uri(str(location))


class Engine(Protocol):
    """What every engine does (see the module docstring)."""

    name: ClassVar[str]

    def prepare(self, config: Config, progress: Progress | None = None, *,
                keep_inputs: bool = True) -> RunResult:
        ...

    def run(self, config: Config, progress: Progress | None = None, *,
            writer: ResultWriter | None = None, keep_inputs: bool = True,
            keep_credit: bool = True) -> RunResult:
        ...

    def writer(self, config: Config) -> ResultWriter:
        """The writer of a result set at the config's ``out``, in its format."""
        ...


@dataclass(frozen=True)
class LocalEngine:
    """The pipeline on this machine (polars)."""

    name: ClassVar[str] = "polars"
    #: account partitions of ``run`` (``--partitions``); None: the run decides
    #: (:func:`attribution.partitioned.partitions_for`: a dataset or a large file partitions)
    partitions: int | None = None

    def prepare(self, config: Config, progress: Progress | None = None, *,
                keep_inputs: bool = True) -> RunResult:
        return pipeline.prepare(config, progress, keep_inputs=keep_inputs)

    def run(self, config: Config, progress: Progress | None = None, *,
            writer: ResultWriter | None = None, keep_inputs: bool = True,
            keep_credit: bool = True) -> RunResult:
        from attribution import partitioned

        count = partitioned.partitions_for(config, self.partitions)
        if count is not None:
            result = self._partitioned(config, count, progress, writer, keep_credit)
            # said on stderr and kept in run.json: how many partitions, and why
            return dataclasses.replace(result, engine_settings={
                **result.engine_settings, "partitions": count,
                "partitions_from": partitioned.partitions_basis(config, self.partitions)})
        if writer is None:
            return pipeline.run(config, progress, keep_inputs=keep_inputs, keep_credit=keep_credit)
        if not isinstance(writer, LocalWriter | DatabaseWriter):
            raise ConfigError("the polars engine writes to a local folder or a database")
        # each model's credit goes to the credit file as soon as it is allocated
        # (a Parquet credit file is written as it comes, in the currency the inputs give)
        with writer.credit_parts() as parts:
            result = pipeline.run(
                config, progress, keep_inputs=keep_inputs, keep_credit=keep_credit,
                on_credit=parts.add,
                on_prepared=lambda run: parts.stream(currency_decimals(run.currency)))
            writer.currency = result.currency  # the credit file's money: its minor unit
        return result

    @staticmethod
    def _partitioned(config: Config, count: int, progress: Progress | None,
                     writer: ResultWriter | None, keep_credit: bool) -> RunResult:
        """The run past memory (:mod:`attribution.partitioned`): the same result set, the
        accounts a partition at a time; it keeps no inputs, and the credit only without a
        writer and with ``keep_credit``. A folder's credit file is written from the run's
        spilled parts, in one stream (as :class:`~attribution.output.TableParts` writes its
        own parts)."""
        from attribution import partitioned
        from attribution.output import has_formula_cells, write_table
        from attribution.schema import CREDIT_SCHEMA, currency_decimals

        kept: list[pl.DataFrame] = []

        def to_writer(paths: list[Path], currency: str) -> None:
            table = (pl.scan_parquet(paths, glob=False) if paths
                     else pl.DataFrame(schema=CREDIT_SCHEMA))
            if isinstance(writer, LocalWriter):
                writer.currency = currency
                formulas = (writer.fmt == "csv" and not writer.csv_raw
                            and has_formula_cells(table))
                writer.credit = str(write_table(table, writer.directory, "credit", writer.fmt,
                                                csv_raw=writer.csv_raw, formulas=formulas,
                                                decimals=currency_decimals(currency)))
            elif writer is not None:
                assert isinstance(writer, DatabaseWriter)
                with writer.credit_parts() as parts:
                    for path in paths:
                        parts.add(pl.read_parquet(path))
                    writer.currency = currency
            elif keep_credit:
                kept.append(table.lazy().collect())

        if writer is not None and not isinstance(writer, LocalWriter | DatabaseWriter):
            raise ConfigError("the polars engine writes to a local folder or a database")
        result = partitioned.run(config, count, progress, on_credit=to_writer)
        if kept:
            result = dataclasses.replace(result, credit=kept[0])
        return result

    def writer(self, config: Config) -> LocalWriter | DatabaseWriter:
        if config.out is not None and is_database(config.out):
            return DatabaseWriter(str(config.out))
        if isinstance(config.out, str):
            raise ConfigError(
                f"--out {config.out}: the polars engine writes to a local folder; write to a "
                "remote location with --engine spark"
            )
        return LocalWriter(side_folder(config), config.format, config.csv_raw)


@dataclass(frozen=True)
class SparkEngine:
    """The pipeline on Apache Spark (:mod:`attribution.spark`)."""

    name: ClassVar[str] = "spark"
    #: a master URL, or a Spark Connect address (``sc://host:port``)
    master: str = "local[*]"
    conf: Mapping[str, str] = field(default_factory=dict)

    def _module(self) -> Any:
        try:
            from attribution import spark as spark_engine
        except ImportError as exc:
            raise ConfigError(
                f"--engine spark needs PySpark ({exc}); install the extra: "
                "pip install 'revenue-attribution[spark]'"
            ) from None
        return spark_engine

    @staticmethod
    def _check(config: Config) -> None:
        """Refuse what the Spark engine does not read yet, rather than ignore it."""
        if config.source not in (None, "generic"):
            raise ConfigError(f"--source {config.source} is read by the polars engine only for "
                              "now; run without --engine spark, or map the columns with "
                              "[columns.*]")
        for name in ("touchpoints", "deals", "contacts", "spend", "paths"):
            location = getattr(config, name)
            if location is not None and is_database(location):
                raise ConfigError(f"--{name} {location}: the spark engine reads files; read "
                                  "database tables without --engine spark")
        if config.out is not None and is_database(config.out):
            raise ConfigError(f"--out {config.out}: the spark engine writes Parquet folders; "
                              "write to a database without --engine spark")

    def prepare(self, config: Config, progress: Progress | None = None, *,
                keep_inputs: bool = True) -> RunResult:
        self._check(config)
        if config.paths is not None:  # see run()
            return pipeline.prepare(config, progress, keep_inputs=keep_inputs)
        prepared = self._module().prepare(config, master=self.master, conf=dict(self.conf),
                                          progress=progress)
        return prepared.to_result(keep_inputs=keep_inputs)

    def run(self, config: Config, progress: Progress | None = None, *,
            writer: ResultWriter | None = None, keep_inputs: bool = True,
            keep_credit: bool = True) -> RunResult:
        self._check(config)
        spark_engine = self._module()
        if config.paths is not None:
            # A path table is already the aggregate the engine reduces exports to (a row per
            # distinct path and its counts): it is fitted on the driver by the polars pipeline,
            # the same definitions, and the result set goes where Spark writes.
            result = pipeline.run(config, progress, keep_inputs=keep_inputs, keep_credit=True)
            if writer is not None:
                session = spark_engine.session(self.master, dict(self.conf))
                spark_engine.write_local_credit(result, writer, session)
            if keep_credit:
                return result
            return dataclasses.replace(result, credit=result.credit.clear())
        done = spark_engine.run(config, master=self.master, conf=dict(self.conf),
                                progress=progress)
        if writer is not None:  # the writer has the executors write the credit and rejects
            spark_engine.write_credit(done, writer)
        return done.to_result(keep_inputs=keep_inputs, keep_credit=keep_credit,
                              keep_rejects=writer is None)

    def writer(self, config: Config) -> ResultWriter:
        self._check(config)
        return self._module().SparkWriter.for_config(config)


def get_engine(name: str = "polars", *, spark_master: str = "local[*]",
               spark_conf: Mapping[str, str] | None = None, spark_remote: str | None = None,
               spark_archives: tuple[str, ...] = (), partitions: int | None = None) -> Engine:
    """The engine called ``name`` (``polars`` or ``spark``, with its master and settings).

    ``spark_remote`` (``sc://host:port``) runs on a Spark Connect server instead of
    ``spark_master``; ``spark_archives`` are packed environments unpacked on every executor
    (Spark's ``spark.archives``). ``partitions`` is how many account partitions a polars
    ``run`` takes (:mod:`attribution.partitioned`; default: its own choice).
    """
    if name == "polars":
        return LocalEngine(partitions)
    if partitions is not None:
        raise ConfigError("--partitions is the polars engine's; Spark partitions on its own "
                          "(set spark.sql.shuffle.partitions with --spark-conf)")
    if name == "spark":
        conf = dict(spark_conf or {})
        if spark_remote is not None and not spark_remote.startswith("sc://"):
            raise ConfigError(f"--spark-remote {spark_remote}: expected a Spark Connect "
                              "address, sc://HOST:PORT")
        if spark_archives:
            conf["spark.archives"] = ",".join(
                [*filter(None, [conf.get("spark.archives", "")]), *spark_archives])
        return SparkEngine(spark_remote or spark_master, conf)
    raise ConfigError(f"unknown engine {name!r}; valid: {', '.join(ENGINES)}")


def parse_spark_conf(items: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``KEY=VALUE`` settings as a dict."""
    conf = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--spark-conf {item!r}: expected KEY=VALUE, e.g. "
                              "spark.executor.memory=8g")
        conf[key.strip()] = value.strip()
    return conf


__all__ = ["ENGINES", "Engine", "LocalEngine", "SparkEngine", "get_engine", "parse_spark_conf"]


