"""A run's outputs: what a result set holds and how it is written, for every engine.

A result set is the credit (touch-level, written by the engine as it computes it), the channel
``summary``, the ``comparison`` with last-touch (when last-touch ran), every fitted model's own
tables (``<model>_<table>``: Markov removal effects and transitions, Shapley values,
incremental effects), ``rejects.csv`` (when a row was rejected) and ``run.json``, the run
record: what was read, assumed and produced.

An engine hands over a :class:`ResultWriter` for its destination (:class:`LocalWriter`: a
folder of Parquet, CSV or JSON files; the Spark engine's writer: Parquet folders where Spark
writes), and :func:`write_results` writes the same tables through either. The CLI only says
what was written.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from attribution.compare import BASELINE
from attribution.config import Config
from attribution.output import (
    TableParts,
    major_decimal,
    write_csv,
    write_json_document,
    write_table,
)
from attribution.pipeline import RunResult, model_diagnostics
from attribution.resultset import RECORD, ResultSetError, Staging, manifest, staged
from attribution.schema import CREDIT_SCHEMA, currency_decimals

if TYPE_CHECKING:
    from attribution.spend import Spend


def record_totals(totals: dict[str, Any]) -> dict[str, Any]:
    """A run's headline totals (:meth:`RunResult.totals`) as run.json writes them: the money
    ones integer minor units, named ``*_cents`` (as the totals name them), the counts as they
    are."""
    return dict(totals)


def accounting_record(item: Any, decimals: int) -> dict[str, Any]:
    """One input's row accounting as run.json (and ``validate --format json``) write it: the
    deals' rejected amounts in major units as exact decimals to the currency's minor unit
    (``decimals``), from their integer minor units."""
    record = item.as_dict(decimals)
    for name in ("rejected_amount", "rejected_won_amount"):
        if name in record:
            record[name] = major_decimal(getattr(item, name), decimals)
    return record


def run_record(result: RunResult) -> dict[str, Any]:
    """What a run read, assumed and produced, for run.json and the report."""
    config = result.config
    return {
        "currency": result.currency,
        "totals": record_totals(result.totals()),
        "accounting": [accounting_record(a, currency_decimals(result.currency))
                       for a in result.accounting],
        "files": [f.__dict__ for f in result.files],
        "options": {
            "lookback_days": config.lookback_days,
            "dedup_minutes": config.dedup_minutes,
            "as_of": result.stats.as_of.isoformat() if result.stats else None,
            "channel_rules": str(config.channel_rules) if config.channel_rules else "built-in",
            "direct_channels": list(config.direct_channels),
            # the intervals' settings, when the run has intervals (same seed, same intervals)
            **({"bootstrap": config.bootstrap, "interval": config.interval,
                "seed": config.seed, "min_deals": config.min_deals}
               if config.bootstrap else {}),
        },
        "models": [{"name": m.name, "params": m.params()} for m in result.models],
        **({"sources": list(result.sources)} if result.sources else {}),
        **({"self_reported": answered(result)} if result.journeys.stated is not None else {}),
        **({"engine": {"name": result.engine, **result.engine_settings}}
           if result.engine_settings else {}),
    }


def answered(result: RunResult) -> dict[str, Any]:
    """How many deals have a stated channel (a self-reported answer the rules map), for
    run.json: the self-reported models credit the others by the recommended model."""
    assert result.journeys.stated is not None
    deals = result.journeys.money.height
    stated = result.journeys.stated.height
    return {"deals": deals, "deals_answered": stated,
            "answered_share": stated / deals if deals else None}


def side_folder(config: Config) -> Path:
    """The local folder for the side files (rejects.csv, run.json): ``--out``, or ``out`` when
    the result set goes to a remote location only an engine writes to."""
    out = config.out or Path("out")
    return Path("out") if isinstance(out, str) else out


class ResultWriter(Protocol):
    """Where one engine writes a result set."""

    #: where the engine wrote the touch-level credit, once it has (it writes it as it goes)
    credit: str | None
    #: the run's id where the destination keeps runs (a database), once written
    run_id: str | None
    #: the run's currency, once known (:func:`write_results` sets it): money is written in its
    #: major units, to its ISO 4217 minor unit
    currency: str

    def transaction(self, *, wait: bool = False) -> contextlib.AbstractContextManager[None]:
        """Everything written inside is one result set (all of it, or none of it, lands);
        ``wait``: queue behind another run writing the same place."""
        ...

    def final(self, path: str) -> str:
        """Where a file written inside :meth:`transaction` is once the set has landed."""
        ...

    def table(self, stem: str, frame: pl.DataFrame) -> str:
        """Write one table named ``stem``; returns where it went."""
        ...

    def document(self, name: str, document: dict[str, Any]) -> str:
        """Write a JSON document (``run.json``); returns where it went."""
        ...

    def rejects(self, rejects: pl.DataFrame) -> list[str]:
        """Write the rejected rows; returns where they went (nothing when there are none)."""
        ...


@dataclass
class LocalWriter:
    """A result set as files in one local folder, ``out``: tables in ``fmt`` (``parquet``,
    ``csv``, ``json``), ``rejects.csv`` and ``run.json`` with the manifest of every file.

    Inside :meth:`transaction` the files go to a staging folder beside ``out`` that is swapped
    in whole when the block ends (:mod:`attribution.resultset`): ``out`` holds the previous
    complete result set until then, whatever happens to the run."""

    out: Path
    fmt: str = "parquet"
    #: CSV cells written as they are, formula-leading text not neutralised
    csv_raw: bool = False
    #: where the engine wrote the credit, once it has
    credit: str | None = None
    #: a folder keeps one run: no id
    run_id: str | None = None
    #: the run's currency (money is written to its minor unit), once the run knows it
    currency: str = "USD"
    _staging: Staging | None = field(default=None, repr=False)

    @property
    def directory(self) -> Path:
        """Where files are written now: the staging folder inside a transaction."""
        return self._staging.directory if self._staging is not None else self.out

    @contextmanager
    def transaction(self, *, wait: bool = False) -> Iterator[None]:
        """Stage everything written in the block; swap it in as ``out`` when the block ends
        without an error (the lock on ``out`` is held throughout; ``wait``: queue behind
        another run holding it instead of stopping)."""
        with staged(self.out, wait=wait) as staging:
            self._staging = staging
            try:
                yield
            finally:
                self._staging = None

    def final(self, path: str) -> str:
        """Where a file written in the transaction is once it is swapped in."""
        return self._staging.final(path) if self._staging is not None else path

    def table(self, stem: str, frame: pl.DataFrame) -> str:
        return str(write_table(frame, self.directory, stem, self.fmt, csv_raw=self.csv_raw,
                               decimals=currency_decimals(self.currency)))

    def document(self, name: str, document: dict[str, Any]) -> str:
        if name == RECORD and self._staging is not None:
            document = {**document, "manifest": manifest(self.directory)}
        return str(write_json_document(document, self.directory / name))

    def rejects(self, rejects: pl.DataFrame) -> list[str]:
        if not rejects.height:
            return []
        return [str(write_rejects(rejects, self.directory, csv_raw=self.csv_raw))]

    @contextmanager
    def credit_parts(self) -> Iterator[TableParts]:
        """The credit file, written a model at a time as the run allocates it (see
        :class:`~attribution.output.TableParts`); its scratch parts go when the block ends.
        The file is written when the block ends, in :attr:`currency` (set it inside the block
        once the run knows it)."""
        with TableParts(self.directory, "credit", self.fmt, CREDIT_SCHEMA,
                        csv_raw=self.csv_raw) as parts:
            yield parts
            self.credit = str(parts.close(decimals=currency_decimals(self.currency)))


@dataclass
class DatabaseWriter:
    """A result set as tables in a database (:func:`attribution.db.write_result_set`):
    ``runs``, ``credit``, ``summary``, ``comparison``, ``rejects`` and the fitted models'
    tables, every row keyed by the run's id, written in one transaction when
    :meth:`transaction` ends without an error (a failed or killed run leaves no rows).

    The credit is spilled to a scratch Parquet file as the run allocates it and copied from
    there in batches, so it is never held whole."""

    uri: str
    #: the run's id in the database, once the set is written
    run_id: str | None = None
    credit: str | None = None
    #: the run's currency (the record's ``currency`` decides the money columns' scale)
    currency: str = "USD"
    _tables: dict[str, pl.DataFrame | pl.LazyFrame] = field(default_factory=dict, repr=False)
    _record: dict[str, Any] | None = field(default=None, repr=False)
    _scratch: Path | None = field(default=None, repr=False)
    _started: Any = field(default=None, repr=False)

    @contextmanager
    def transaction(self, *, wait: bool = False) -> Iterator[None]:
        import tempfile
        from datetime import UTC, datetime

        from attribution import db

        self._started = datetime.now(UTC)
        with tempfile.TemporaryDirectory(prefix="attribution-credit-") as scratch:
            self._scratch = Path(scratch)
            try:
                yield
                if self._record is None:
                    raise ResultSetError(f"{self.uri}: the run wrote no record; nothing stored")
                self.run_id = db.write_result_set(self.uri, self._tables, self._record,
                                                  started_at=self._started)
            finally:
                self._tables, self._scratch = {}, None

    def final(self, path: str) -> str:
        return f"{path} table"

    def table(self, stem: str, frame: pl.DataFrame) -> str:
        self._tables[stem] = frame
        return stem

    def document(self, name: str, document: dict[str, Any]) -> str:
        self._record = document
        return "runs"

    def rejects(self, rejects: pl.DataFrame) -> list[str]:
        self._tables["rejects"] = rejects
        return ["rejects"]

    @contextmanager
    def credit_parts(self) -> Iterator[TableParts]:
        """The credit spilled a model at a time to a scratch Parquet file, read back in
        batches by the database write."""
        if self._scratch is None:
            raise ResultSetError(f"{self.uri}: credit written outside the transaction")
        with TableParts(self._scratch, "credit", "parquet", CREDIT_SCHEMA) as parts:
            yield parts
            path = parts.close(decimals=currency_decimals(self.currency))
        self._tables = {"credit": pl.scan_parquet(path, glob=False), **self._tables}
        self.credit = "credit"


def write_rejects(rejects: pl.DataFrame, directory: Path, *, csv_raw: bool = False) -> Path:
    """``directory/rejects.csv``: every rejected row with its file, row, column and reason
    (formula-leading cells neutralised unless ``csv_raw``)."""
    path = directory / "rejects.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_csv(rejects, path, csv_raw=csv_raw)


def write_results(result: RunResult, writer: ResultWriter) -> list[str]:
    """Write a run's result set through ``writer``: the credit is the engine's to write as it
    goes (listed first when it did), then summary, comparison (when last-touch ran), the
    fitted models' tables, the rejects and run.json. Returns what was written, in order."""
    writer.currency = result.currency
    written = [writer.credit] if writer.credit else []
    written.append(writer.table("summary", result.summary))
    if BASELINE in {m.name for m in result.models}:
        written.append(writer.table("comparison", result.comparison()))
    for stem, table in model_diagnostics(result).items():
        written.append(writer.table(stem, table))
    if result.dark_funnel is not None:  # self-reported answers: tracked vs stated, per channel
        written.append(writer.table("dark_funnel", result.dark_funnel))
    written.extend(writer.rejects(result.rejects))
    written.append(writer.document(RECORD, run_record(result)))
    return written


def with_spend(result: RunResult, spend: Spend) -> RunResult:
    """The run with a spend export's accounting, file and rejects added (a new result; the
    run given is not changed)."""
    return _with_input(result, spend.accounting, spend.file, spend.rejects, spend.source)


def with_experiments(result: RunResult, experiments: Any) -> RunResult:
    """The run with an experiments file's accounting, file and rejects added (a new result),
    as :func:`with_spend` does for spend."""
    return _with_input(result, experiments.accounting, experiments.file, experiments.rejects)


def _with_input(result: RunResult, accounting: Any, file: Any, rejects: pl.DataFrame,
                source: Any = None) -> RunResult:
    """The run with one more input read beside it (its accounting, file, rejects, source)."""
    return dataclasses.replace(
        result,
        accounting=[*result.accounting, accounting],
        files=[*result.files, file],
        rejects=pl.concat([result.rejects, rejects]) if rejects.height else result.rejects,
        sources=[*result.sources, source] if source else result.sources,
    )


def unspent_channels(result: RunResult, spend: Spend) -> list[str]:
    """Channels with spend that no touch of the run carries (they earn no credit)."""
    touched = set(result.summary.get_column("channel").unique())
    spent = set(spend.rows.get_column("channel").unique())
    return sorted(spent - touched)


__all__ = [
    "LocalWriter",
    "accounting_record",
    "ResultWriter",
    "record_totals",
    "run_record",
    "side_folder",
    "unspent_channels",
    "with_experiments",
    "with_spend",
    "write_rejects",
    "write_results",
]
