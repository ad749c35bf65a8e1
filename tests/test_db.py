"""Database inputs and outputs against a real PostgreSQL server (started here) and DuckDB."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from attribution import db, pipeline
from attribution.config import Config
from attribution.errors import (
    AttributionError,
    ColumnNotFoundError,
    ColumnTypeError,
    DatabaseConnectionError,
    DatabaseError,
    TableNotFoundError,
)
from attribution.output import money_to_decimal, write_table
from tests.postgres_server import PostgresServer, postgres_server  # noqa: F401

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("adbc_driver_postgresql")

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "demo"
MODELS = ("last_touch", "linear", "w_shaped", "markov", "shapley")

pytestmark = pytest.mark.slow  # a real PostgreSQL server, started by the tests


# -- fixtures --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(postgres_server: PostgresServer) -> PostgresServer:  # noqa: F811
    """The session's server, with the demo exports as tables of schema ``crm``."""
    postgres_server.sql("DROP SCHEMA IF EXISTS crm CASCADE", *_demo_tables_sql())
    return postgres_server


@pytest.fixture
def postgres(server, monkeypatch, tmp_path):
    """The server, with the analyst's password in PGPASSWORD and no ~/.pgpass around."""
    monkeypatch.setenv("PGPASSWORD", server.password)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    return server


def _demo_frames() -> dict[str, pl.DataFrame]:
    """The demo exports as text columns, as read from the CSV files (bad rows and all)."""
    return {name: pl.read_csv(DEMO / f"{name}.csv", infer_schema=False)
            for name in ("touchpoints", "deals", "contacts")}


def _typed_deals() -> pl.DataFrame:
    """The demo deals whose cells fit typed columns, as a CRM sync would hold them: times
    TIMESTAMPTZ, amounts NUMERIC(12,2)."""
    deals = _demo_frames()["deals"].with_columns(
        pl.col("created_at", "closed_at").str.to_datetime(time_zone="UTC", strict=False),
        pl.col("amount").cast(pl.Decimal(12, 2), strict=False))  # money: keep name
    # money: keep names from here (the file's column)
    return deals.filter(pl.col("created_at").is_not_null() & pl.col("amount").is_not_null())
    # money: keep names to here


def _insert_sql(table: str, frame: pl.DataFrame) -> str:
    rows = []
    for row in frame.iter_rows():
        cells = ["NULL" if v is None else "'" + str(v).replace("'", "''") + "'" for v in row]
        rows.append("(" + ", ".join(cells) + ")")
    return f"INSERT INTO {table} VALUES {', '.join(rows)}"


def _demo_tables_sql() -> list[str]:
    """The demo exports as tables of schema ``crm`` (text columns, like the files), a typed
    deals table, and a deals table with two bad rows; created by the analyst."""
    statements = ["CREATE SCHEMA crm"]
    for name, frame in _demo_frames().items():
        columns = ", ".join(f"{c} TEXT" for c in frame.columns)
        statements += [f"CREATE TABLE crm.{name} ({columns})", _insert_sql(f"crm.{name}", frame)]
    typed = _typed_deals()
    statements += [
        ("CREATE TABLE crm.typed_deals (deal_id TEXT, account_id TEXT, "
         "created_at TIMESTAMPTZ, closed_at TIMESTAMPTZ, status TEXT, amount NUMERIC(12,2), "
         "currency TEXT)"),
        _insert_sql("crm.typed_deals", typed),
        "CREATE TABLE crm.bad_deals AS SELECT * FROM crm.deals ORDER BY deal_id LIMIT 5",
        "UPDATE crm.bad_deals SET status = 'maybe' WHERE deal_id = 'D000002'",
        "UPDATE crm.bad_deals SET amount = '-5' WHERE deal_id = 'D000004'",
    ]
    return statements


def _duckdb_with_demo(path: Path) -> Path:
    frames = _demo_frames()
    with duckdb.connect(str(path)) as connection:
        for name, frame in frames.items():
            arrow = frame.to_arrow()
            connection.register("incoming", arrow)
            connection.execute(f"CREATE TABLE {name} AS SELECT * FROM incoming")
            connection.unregister("incoming")
    return path


def _record(result: pipeline.RunResult) -> dict:
    return {"currency": result.currency, "totals": result.totals(),
            "models": [{"name": m.name, "params": m.params()} for m in result.models]}


def _result_tables(result: pipeline.RunResult) -> dict[str, pl.DataFrame]:
    return {"credit": result.credit, "summary": result.summary,
            "comparison": result.comparison(), "rejects": result.rejects,
            **pipeline.model_diagnostics(result)}


@pytest.fixture(scope="module")
def demo_run():
    config = Config(touchpoints=DEMO / "touchpoints.csv", deals=DEMO / "deals.csv",
                    contacts=DEMO / "contacts.csv", models=MODELS)
    return pipeline.run(config)


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns, nulls_last=True)


# -- URIs ------------------------------------------------------------------------------------
def test_uri_forms():
    source = db.parse_uri("postgresql://analyst@db.example.com:6543/crm?table=hubspot.touches"
                          "&sslmode=require")
    assert (source.engine, source.host, source.table) == ("postgresql", "db.example.com:6543",
                                                          "hubspot.touches")
    assert "sslmode=require" in source.target and "connect_timeout=10" in source.target
    assert "table=" not in source.target
    # query= takes the rest: & and = and + are the SQL's
    query = db.parse_uri("postgres://a@h/crm?query=SELECT a+b AS c FROM t WHERE x = 'p&q'")
    assert query.query == "SELECT a+b AS c FROM t WHERE x = 'p&q'"
    assert db.parse_uri("postgresql://a@h/crm?query=SELECT%201").query == "SELECT 1"
    assert db.parse_uri("duckdb:///data/crm.duckdb?table=touches").target == "data/crm.duckdb"
    assert db.parse_uri("duckdb:////srv/crm.duckdb").target == "/srv/crm.duckdb"
    assert db.parse_uri("history.duckdb").engine == "duckdb"
    assert db.parse_uri("postgresql://a@h/crm", query="SELECT 2").query == "SELECT 2"
    assert [db.is_database_uri(u) for u in ("out", "run.parquet", "h.duckdb",
                                            "postgresql://a@h/d", "duckdb:///x.duckdb")] == \
        [False, False, True, True, True]


@pytest.mark.parametrize("uri", [
    "postgresql://analyst:hunter2secret@db:5432/crm?table=t",
    "postgresql://analyst@db:5432/crm?table=t&password=hunter2secret",
])
def test_a_password_in_the_uri_is_refused_without_echoing_it(uri):
    with pytest.raises(DatabaseError) as caught:
        db.read_source(uri)
    message = str(caught.value)
    assert "hunter2secret" not in message and "PGPASSWORD" in message
    assert "\n" not in message


def test_table_and_query_together_are_refused():
    with pytest.raises(DatabaseError, match="table= or query=, not both"):
        db.parse_uri("postgresql://a@h/crm?table=t&query=SELECT 1")


# -- reading ---------------------------------------------------------------------------------
def test_read_table_from_postgres(postgres):
    frame, source = db.read_source(postgres.uri(table="crm.touchpoints"),
                                   input_name="touchpoints")
    expected = _demo_frames()["touchpoints"]
    assert_frame_equal(_sorted(frame), _sorted(expected))  # (a table has no row order)
    assert source.rows == expected.height
    assert source.uri == f"{postgres.uri()}?table=crm.touchpoints"
    assert postgres.password not in str(source.as_dict())
    assert source.query == 'SELECT * FROM "crm"."touchpoints"'
    # the same rows give the same digest; a changed row changes it
    assert db.read_source(postgres.uri(table="crm.touchpoints"))[1].sha256 == source.sha256
    other = db.read_source(postgres.uri(
        query="SELECT * FROM crm.touchpoints WHERE touchpoint_id <> 'T00000001'"))[1]
    assert other.sha256 != source.sha256


def test_numeric_amounts_are_read_exactly(postgres):
    frame, _ = db.read_source(postgres.uri(table="crm.typed_deals"), input_name="deals")
    typed = _typed_deals()
    assert frame.schema["created_at"] == pl.Datetime("us", "UTC")
    frame, typed = frame.sort("deal_id"), typed.sort("deal_id")
    assert_frame_equal(frame.drop("amount"), typed.drop("amount"))
    # NUMERIC comes as its exact text, which the loader parses to cents
    assert frame.schema["amount"] == pl.String
    # money: keep names from here (the database's own column)
    assert [Decimal(a) for a in frame.get_column("amount")] == \
        [Decimal(str(a)) for a in typed.get_column("amount")]
    # money: keep names to here


def test_read_query_from_postgres(postgres):
    sql = ("SELECT touchpoint_id, timestamp, contact_id, utm_source, utm_medium "
           "FROM crm.touchpoints WHERE utm_source = 'linkedin' ORDER BY touchpoint_id")
    frame, source = db.read_source(postgres.uri(query=sql), input_name="touchpoints")
    expected = (_demo_frames()["touchpoints"].filter(pl.col("utm_source") == "linkedin")
                .select("touchpoint_id", "timestamp", "contact_id", "utm_source", "utm_medium")
                .sort("touchpoint_id"))
    assert frame.height > 0
    assert_frame_equal(frame, expected)
    assert source.query == sql


def test_a_query_that_fails_while_its_rows_stream_in_is_one_line(postgres):
    """The rows are decoded on a thread while the ones before are hashed: an error the server
    raises part-way through the rows still comes out as one line naming the source."""
    sql = ("SELECT touchpoint_id, 1 / (row_number() OVER (ORDER BY touchpoint_id) - 150) "
           "AS ratio FROM crm.touchpoints")
    with pytest.raises(DatabaseError) as error:
        db.read_source(postgres.uri(query=sql), input_name="touchpoints")
    assert "division by zero" in _one_line(error)
    assert str(error.value).startswith(postgres.uri())


def test_read_table_and_query_from_duckdb(tmp_path):
    path = _duckdb_with_demo(tmp_path / "crm.duckdb")
    frame, source = db.read_source(f"duckdb:///{path}?table=deals", input_name="deals")
    assert frame.height == _demo_frames()["deals"].height
    assert source.uri == f"duckdb:///{path}?table=deals"
    frame, _ = db.read_source(f"duckdb:///{path}",
                              query="SELECT deal_id, amount FROM deals WHERE status = 'won'")
    assert frame.height == _demo_frames()["deals"].filter(pl.col("status") == "won").height


def test_digest_does_not_depend_on_chunks():
    table = pa.table({"a": list(range(200_000)), "b": [str(i % 7) for i in range(200_000)]})
    rechunked = pa.Table.from_batches(table.to_batches(max_chunksize=12_345))
    assert rechunked.column("a").num_chunks > 1
    assert db.arrow_digest(rechunked) == db.arrow_digest(table)
    changed = table.set_column(1, "b", pa.array(["x"] + table.column("b").to_pylist()[1:]))
    assert db.arrow_digest(changed) != db.arrow_digest(table)


def _reference_digest(table: pa.Table) -> str:
    """The digest the plain way: the schema without metadata, then each window of
    DIGEST_BATCH_ROWS rows built afresh from its Python values (buffers of exactly its rows,
    zeros under nulls), canonical, as one IPC stream in memory."""
    import hashlib

    schema = pa.schema([field.remove_metadata() for field in table.schema])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        for start in range(0, table.num_rows, db.DIGEST_BATCH_ROWS):
            window = table.slice(start, db.DIGEST_BATCH_ROWS)
            writer.write_batch(pa.record_batch(
                [db._canonical(pa.array(column.to_pylist(), field.type))
                 for field, column in zip(schema, window.columns, strict=True)],
                schema=schema))
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(0, 400), window=st.integers(1, 50),
       cuts=st.lists(st.integers(0, 400), max_size=6), seed=st.integers(0, 2**16))
def test_digest_a_batch_at_a_time_is_the_whole_tables(rows, window, cuts, seed):
    """ArrowDigest, fed the rows in batches of any sizes (as a driver hands them over), gives
    the digest of the whole table as the reference takes it."""
    rng = np.random.default_rng(seed)
    table = pa.table({
        "n": pa.array(rng.integers(0, 9, rows), mask=rng.random(rows) < 0.2),
        "s": pa.array([f"v{i}" for i in rng.integers(0, 99, rows)], mask=rng.random(rows) < 0.2),
        "f": pa.array(rng.random(rows) < 0.5, mask=rng.random(rows) < 0.2),
    })
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "DIGEST_BATCH_ROWS", window)
        digest = db.ArrowDigest(table.schema)
        bounds = sorted({0, rows, *(min(c, rows) for c in cuts)})
        for start, end in zip(bounds, bounds[1:], strict=False):
            for batch in table.slice(start, end - start).to_batches():
                digest.add(batch)
        assert digest.hexdigest() == _reference_digest(table) == db.arrow_digest(table)


def test_digest_ignores_the_bytes_arrow_leaves_undefined():
    """Two reads of one table differed in the validity bitmap's bits past the end and could in
    the values under nulls: neither is part of the rows."""
    def ints(bitmap: int, hidden: int) -> pa.Array:
        values = np.array([1, hidden, 3, 4, 5], dtype=np.int64)
        return pa.Array.from_buffers(pa.int64(), 5, [pa.py_buffer(bytes([bitmap])),
                                                     pa.py_buffer(values.tobytes())], 1)

    clean, dirty = ints(0b0001_1101, 0), ints(0b1111_1101, 987)
    assert clean.to_pylist() == dirty.to_pylist() == [1, None, 3, 4, 5]
    strings = pa.array(["a", None, "c", "d", "e"])
    flags = pa.array([True, None, False, True, True])
    assert db.arrow_digest(pa.table({"n": clean, "s": strings, "f": flags})) == \
        db.arrow_digest(pa.table({"n": dirty, "s": strings, "f": flags}))
    assert db.arrow_digest(pa.table({"n": clean})) != \
        db.arrow_digest(pa.table({"n": ints(0b0001_1111, 0)}))  # the null became a 0


def _inputs_from(uri_of, tmp_path: Path) -> tuple[Config, dict[str, db.SourceInfo]]:
    sources = {}
    paths = {}
    for name in ("touchpoints", "deals", "contacts"):
        path, source = db.materialize(uri_of(name), tmp_path / "inputs", name)
        paths[name], sources[str(path)] = path, source
    return Config(models=MODELS, **paths), sources


def test_a_run_from_postgres_tables_equals_the_run_from_the_files(postgres, demo_run,
                                                                  tmp_path):
    config, _ = _inputs_from(lambda name: postgres.uri(table=f"crm.{name}"), tmp_path)
    result = pipeline.run(config)
    assert_frame_equal(result.summary, demo_run.summary)
    assert result.totals() == demo_run.totals()


def test_a_run_from_duckdb_tables_equals_the_run_from_the_files(demo_run, tmp_path):
    path = _duckdb_with_demo(tmp_path / "crm.duckdb")
    config, _ = _inputs_from(lambda name: f"duckdb:///{path}?table={name}", tmp_path)
    assert_frame_equal(pipeline.run(config).summary, demo_run.summary)


def test_rejects_from_a_table_name_the_source(postgres, tmp_path):
    path, source = db.materialize(postgres.uri(table="crm.bad_deals"), tmp_path, "deals")
    frame, _ = db.read_source(postgres.uri(table="crm.bad_deals"))
    config = Config(touchpoints=DEMO / "touchpoints.csv", deals=path,
                    contacts=DEMO / "contacts.csv", models=("linear",), max_reject_rate=1.0)
    rejects = db.relabel_rejects(pipeline.validate(config).rejects, {str(path): source})
    deals = rejects.filter(pl.col("input") == "deals")
    assert deals.get_column("file").unique().to_list() == [source.uri]
    # each reject's row is its position in the rows read: the key is found there
    keys = frame.get_column("deal_id").gather(deals.get_column("row") - 1).to_list()
    assert sorted(zip(keys, deals.get_column("reason").to_list(), strict=True)) == [
        ("D000002", "unknown status; expected won, lost or open"),
        ("D000004", "negative amount"),
    ]
    # no primary key: the reject carries the row's deal_id
    assert source.key == ("deal_id",)
    assert deals.get_column("key").to_list() == keys
    assert rejects.filter(pl.col("input") != "deals").get_column("key").null_count() == \
        rejects.filter(pl.col("input") != "deals").height  # files: the row number finds it


# -- errors ----------------------------------------------------------------------------------
def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    assert isinstance(error.value, AttributionError)
    return message


def test_wrong_password_names_the_host_and_not_the_password(server, monkeypatch, tmp_path):
    monkeypatch.setenv("PGPASSWORD", "not-the-password-9x")
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    with pytest.raises(DatabaseConnectionError) as caught:
        db.read_source(server.uri(table="crm.deals"))
    message = _one_line(caught)
    assert f"127.0.0.1:{server.port}" in message
    assert "password authentication failed" in message
    assert "not-the-password-9x" not in message and server.password not in message


def test_no_password_says_where_it_comes_from(server, monkeypatch, tmp_path):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "none"))
    with pytest.raises(DatabaseConnectionError) as caught:
        db.read_source(server.uri(table="crm.deals"))
    assert "set PGPASSWORD or add the host to ~/.pgpass" in _one_line(caught)


def test_password_from_pgpass(server, monkeypatch, tmp_path):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.delenv("PGPASSFILE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    pgpass = tmp_path / ".pgpass"
    pgpass.write_text(f"127.0.0.1:{server.port}:crm:{server.user}:{server.password}\n")
    pgpass.chmod(0o600)  # libpq ignores a pgpass others can read
    frame, _ = db.read_source(server.uri(table="crm.contacts"))
    assert frame.height == _demo_frames()["contacts"].height


@pytest.mark.parametrize("uri", ["postgresql://analyst@127.0.0.1:{closed}/crm?table=t",
                                 "postgresql://analyst@no-such-host.invalid:5432/crm?table=t"])
def test_unreachable_host_is_one_line_naming_it(postgres, uri):
    with socket_closed() as closed:
        uri = uri.format(closed=closed)
        with pytest.raises(DatabaseConnectionError) as caught:
            db.read_source(uri)
    message = _one_line(caught)
    host = uri.split("@")[1].split("/")[0]
    assert f"at {host} " in message
    assert ("connection refused" in message) or ("unknown host name" in message)


class socket_closed:
    """A loopback port nobody listens on."""

    def __enter__(self) -> int:
        import socket

        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        return self.port

    def __exit__(self, *_exc: object) -> None:
        return None


def test_missing_table_is_named_with_what_there_is(postgres, tmp_path):
    with pytest.raises(TableNotFoundError) as caught:
        db.read_source(postgres.uri(table="crm.touchpoint"))
    message = _one_line(caught)
    assert "no table 'crm.touchpoint' (did you mean 'crm.touchpoints'?)" in message
    path = _duckdb_with_demo(tmp_path / "crm.duckdb")
    with pytest.raises(TableNotFoundError, match="no table 'deal' .*did you mean 'deals'"):
        db.read_source(f"duckdb:///{path}?table=deal")


def test_missing_column_is_named(postgres, tmp_path):
    with pytest.raises(ColumnNotFoundError) as caught:
        db.read_source(postgres.uri(query="SELECT deal_idd, amount FROM crm.deals"))
    assert "column 'deal_idd'" in _one_line(caught)
    with pytest.raises(ColumnNotFoundError) as caught:
        db.read_source(postgres.uri(query="SELECT deal_id AS id, amount FROM crm.deals"),
                       input_name="deals", expected=["deal_id", "amount"])
    assert "missing column 'deal_id'" in _one_line(caught)
    path = _duckdb_with_demo(tmp_path / "crm.duckdb")
    with pytest.raises(ColumnNotFoundError, match="column 'amountt'"):
        db.read_source(f"duckdb:///{path}?query=SELECT amountt FROM deals")


def test_a_query_of_the_wrong_types_is_refused(postgres, tmp_path):
    sql = ("SELECT deal_id, account_id, created_at, status, amount > 0 AS amount "
           "FROM crm.typed_deals")
    with pytest.raises(ColumnTypeError) as caught:
        db.read_source(postgres.uri(query=sql), input_name="deals")
    assert "column 'amount' is Boolean" in _one_line(caught)
    sql = "SELECT touchpoint_id, ARRAY[timestamp] AS timestamp FROM crm.touchpoints"
    with pytest.raises(ColumnTypeError, match="column 'timestamp' is .*must be a timestamp"):
        db.read_source(postgres.uri(query=sql), input_name="touchpoints")
    path = _duckdb_with_demo(tmp_path / "crm.duckdb")
    with pytest.raises(ColumnTypeError, match="column 'created_at' is Boolean"):
        db.read_source(f"duckdb:///{path}",
                       query="SELECT deal_id, true AS created_at FROM deals", input_name="deals")


def test_a_missing_duckdb_file_is_one_line(tmp_path):
    with pytest.raises(DatabaseConnectionError, match="no DuckDB database"):
        db.read_source(f"duckdb:///{tmp_path}/none.duckdb?table=t")


# -- writing ---------------------------------------------------------------------------------
@pytest.fixture(params=["postgresql", "duckdb", "duckdb-path"])
def destination(request, tmp_path):
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres")
        schema = f"attribution_{tmp_path.name[-12:].replace('-', '_').lower()}"
        return server.uri(schema=schema)
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path}/history.duckdb"
    return str(tmp_path / "history.duckdb")


def test_result_set_reads_back_as_the_parquet_files_to_the_cent(destination, demo_run,
                                                                tmp_path):
    tables = _result_tables(demo_run)
    assert {"markov_removal_effects", "shapley_values"} <= set(tables)
    run_id = db.write_result_set(destination, tables, _record(demo_run))
    for name, frame in tables.items():
        parquet = pl.read_parquet(write_table(frame, tmp_path / "files", name, "parquet"))
        back = db.result_table(destination, name, run_id)
        back = back.cast({c: t for c, t in parquet.schema.items() if back.schema[c] != t})
        assert back.columns == parquet.columns, name
        assert_frame_equal(_sorted(back), _sorted(parquet), check_exact=True)
    # money as exact decimals in the database itself
    # (a result table reads back as its file: money in major units, named without _cents)
    credit = db.result_table(destination, "credit", run_id)
    # money: keep names from here
    by_deal = credit.group_by("model", "deal_id").agg(pl.col("pipeline_credit").sum())
    deals = demo_run.journeys.journeys.collect().filter(pl.col("status") != "none")
    joined = by_deal.join(money_to_decimal(deals.select("deal_id", "amount_cents")), on="deal_id")
    assert joined.height == by_deal.height
    assert (joined["pipeline_credit"] == joined["amount"]).all()
    # money: keep names to here


def test_a_lazy_table_is_written_in_batches_as_the_whole_frame(destination, demo_run,
                                                               tmp_path, monkeypatch):
    """The credit spilled in parts (a model per file, as the CLI spills it) and scanned lazily
    is written a batch at a time, row for row what the whole frame gives."""
    parts = []
    for index, (_, part) in enumerate(demo_run.credit.group_by("model", maintain_order=True)):
        parts.append(tmp_path / f"part-{index}.parquet")
        part.write_parquet(parts[-1])
    monkeypatch.setattr(db, "WRITE_BATCH_ROWS", 1_000)
    monkeypatch.setattr(db, "COPY_BATCH_ROWS", 97)  # several record batches per COPY
    assert demo_run.credit.height > 5 * db.WRITE_BATCH_ROWS
    lazy = db.write_result_set(destination, {"credit": pl.scan_parquet(parts)}, {})
    whole = db.write_result_set(destination, {"credit": demo_run.credit}, {})
    assert_frame_equal(_sorted(db.result_table(destination, "credit", lazy)),
                       _sorted(db.result_table(destination, "credit", whole)))
    assert db.result_table(destination, "credit", lazy).height == demo_run.credit.height



def test_a_table_that_fails_while_its_batches_are_made_leaves_no_rows(destination, demo_run,
                                                                      monkeypatch):
    """The record batches of a COPY are made on a thread ahead of the driver: an error there
    (here, a slice of a lazily scanned table that cannot be cast) is raised as itself, and the
    transaction leaves nothing, not the rows sent before it."""
    monkeypatch.setattr(db, "WRITE_BATCH_ROWS", 1_000)
    monkeypatch.setattr(db, "COPY_BATCH_ROWS", 97)
    kept = db.write_result_set(destination, {"credit": demo_run.credit}, {})
    good = demo_run.credit.lazy()
    bad = pl.concat([good, good.with_columns(  # (deal ids are not numbers)
        pl.col("deal_id").cast(pl.UInt32, strict=True).alias("touch_index"))])
    with pytest.raises(pl.exceptions.InvalidOperationError):
        db.write_result_set(destination, {"credit": bad}, {})
    assert db.history(destination).get_column("run_id").to_list() == [kept]

def test_money_columns_are_declared_numeric(postgres, demo_run, tmp_path):
    uri = postgres.uri(schema="declared")
    db.write_result_set(uri, {"summary": demo_run.summary}, _record(demo_run))
    rows = postgres.sql("SELECT table_name, column_name, data_type, numeric_precision, "
                        "numeric_scale FROM information_schema.columns WHERE table_schema = "
                        "'declared' ORDER BY table_name, ordinal_position")[0]
    declared = {(t, c): (d, p, s) for t, c, d, p, s in rows}
    # the database's columns are the files': major units, named without _cents
    # money: keep names from here
    assert declared[("summary", "revenue_credit")] == ("numeric", 38, 2)
    assert declared[("summary", "pipeline_credit")] == ("numeric", 38, 2)
    assert declared[("summary", "revenue_share")][0] == "double precision"
    assert declared[("summary", "deals_touched")][0] == "bigint"
    assert declared[("summary", "run_id")][0] == "text"
    assert declared[("runs", "record")][0] == "json"
    assert declared[("runs", "won_revenue")] == ("numeric", 38, 2)
    # money: keep names to here
    total = postgres.sql("SELECT CAST(won_revenue AS TEXT) FROM declared.runs")[0][0][0]
    assert Decimal(total) == Decimal(demo_run.totals()["won_revenue_cents"]) / 100


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(-(10**17), 10**17), min_size=1, max_size=50))
def test_money_round_trips_exactly(tmp_path, cents):
    path = tmp_path / f"money-{abs(hash(tuple(cents)))}.duckdb"
    frame = pl.DataFrame({"channel": [f"c{i}" for i in range(len(cents))],
                          "revenue_credit_cents": cents}, schema={"channel": pl.String,
                                                            "revenue_credit_cents": pl.Int64})
    run_id = db.write_result_set(path, {"summary": frame}, {})
    with duckdb.connect(str(path), read_only=True) as connection:
        stored = connection.execute("SELECT CAST(revenue_credit AS VARCHAR) FROM summary "
                                    "ORDER BY channel").fetchall()
    expected = sorted(zip(frame["channel"], cents, strict=True))
    assert [Decimal(s) for (s,) in stored] == [Decimal(c) / 100 for _, c in expected]
    back = db.result_table(path, "summary", run_id).sort("channel")
    assert back.get_column("revenue_credit").to_list() == [  # money: keep name (the file's)
        Decimal(c) / 100 for _, c in expected]


def test_a_three_decimal_currency_is_stored_to_the_fil(destination):
    """A KWD run's money is NUMERIC(38,3), read back to the fil; a table of that scale refuses
    a run of another (its NUMERIC columns would round a USD run's money or read it in fils)."""
    summary = pl.DataFrame({"model": ["linear", "linear"], "channel": ["podcast", "events"],
                            "channel_group": ["audio", "events"],
                            "revenue_credit_cents": [1_234_567, 5]})
    record = {"currency": "KWD", "totals": {"won_revenue_cents": 1_234_572}}
    run_id = db.write_result_set(destination, {"summary": summary}, record)
    back = db.result_table(destination, "summary", run_id)  # as the files: major units
    # money: keep names from here
    assert back.schema["revenue_credit"] == pl.Decimal(38, 3)
    assert back.sort("channel")["revenue_credit"].to_list() == [Decimal("0.005"),
                                                                Decimal("1234.567")]
    # money: keep names to here
    assert db.history(destination)["won_revenue_cents"].to_list() == [1_234_572]
    trend = db.channel_history(destination, "podcast", "linear")
    assert trend["revenue_credit_cents"].to_list() == [1_234_567]
    with pytest.raises(DatabaseError, match=r"table 'runs' holds money to 3 decimals; this "
                                            r"run's currency USD has 2 \(ISO 4217\); write to "
                                            "another schema or database"):
        db.write_result_set(destination, {"summary": summary}, {"currency": "USD"})
    assert db.history(destination).height == 1  # the refused run left nothing


def test_two_runs_and_history(destination, demo_run):
    record = _record(demo_run)
    first = db.write_result_set(destination, _result_tables(demo_run), record)
    time.sleep(0.01)
    second = db.write_result_set(destination, _result_tables(demo_run), record)
    runs = db.history(destination)
    assert runs.get_column("run_id").to_list() == [first, second]
    assert runs.get_column("won_revenue_cents").to_list() == \
        [demo_run.totals()["won_revenue_cents"]] * 2
    assert runs.get_column("models").to_list() == [",".join(MODELS)] * 2
    assert db.run_record(destination, second) == json.loads(json.dumps(record))
    trend = db.channel_history(destination, "podcast", "linear")
    expected = demo_run.summary.filter((pl.col("model") == "linear")
                                       & (pl.col("channel") == "podcast"))
    assert trend.get_column("run_id").to_list() == [first, second]
    assert trend.get_column("revenue_credit_cents").to_list() == \
        expected["revenue_credit_cents"].to_list() * 2
    assert trend.get_column("revenue_share").to_list() == expected["revenue_share"].to_list() * 2
    assert db.channel_history(destination, "podcast", "linear", last=1)["run_id"].to_list() == \
        [second]
    with pytest.raises(DatabaseError, match="no channel 'podcasts'.*did you mean 'podcast'"):
        db.channel_history(destination, "podcasts", "linear")
    with pytest.raises(DatabaseError, match="no model 'lineer'.*did you mean 'linear'"):
        db.channel_history(destination, "podcast", "lineer")


def test_a_run_without_the_channel_shows_zero(tmp_path):
    path = tmp_path / "h.duckdb"
    summary = pl.DataFrame({"model": ["linear", "linear"], "channel": ["podcast", "webinar"],
                            "channel_group": ["audio", "events"], "revenue_credit_cents": [500,
                                                                                           700],
                            "revenue_share": [0.4, 0.6]})
    first = db.write_result_set(path, {"summary": summary}, {})
    second = db.write_result_set(path, {"summary": summary.filter(pl.col("channel") ==
                                                                  "webinar")}, {})
    trend = db.channel_history(path, "podcast", "linear")
    assert trend.select("run_id", "channel_group", "revenue_credit_cents",
                        "revenue_share").rows() == [
        (first, "audio", 500, 0.4), (second, "audio", 0, 0.0)]


def test_channel_trend_is_every_channel_in_every_run(tmp_path):
    """The report's trend: a row per stored run of the model and channel, zeros where a run
    did not credit the channel, other models' runs left out, the last N runs."""
    path = tmp_path / "h.duckdb"

    def summary(model: str, credits: dict[str, int]) -> pl.DataFrame:
        total = sum(credits.values())
        return pl.DataFrame({"model": model, "channel": list(credits),
                             "channel_group": [f"{c}_group" for c in credits],
                             "pipeline_credit_cents": list(credits.values()),
                             "revenue_credit_cents": list(credits.values()),
                             "pipeline_share": [v / total for v in credits.values()],
                             "revenue_share": [v / total for v in credits.values()]})

    first = db.write_result_set(path, {"summary": summary("linear", {"ads": 300, "seo": 100})},
                                {})
    db.write_result_set(path, {"summary": summary("w_shaped", {"ads": 1, "tv": 3})}, {})
    second = db.write_result_set(path, {"summary": summary("linear", {"seo": 200})}, {})
    third = db.write_result_set(path, {"summary": summary("linear", {"ads": 50, "seo": 150})},
                                {})
    trend = db.channel_trend(path, "linear")
    assert trend.select("run_id", "channel", "channel_group", "revenue_credit_cents",
                        "revenue_share").rows() == [
        (first, "ads", "ads_group", 300, 0.75), (first, "seo", "seo_group", 100, 0.25),
        (second, "ads", "ads_group", 0, 0.0), (second, "seo", "seo_group", 200, 1.0),
        (third, "ads", "ads_group", 50, 0.25), (third, "seo", "seo_group", 150, 0.75)]
    assert db.channel_trend(path, "linear", last=2)["run_id"].unique(
        maintain_order=True).to_list() == [second, third]
    # the report's trend is what history --channel gives, channel by channel
    for channel in ("ads", "seo"):
        history = db.channel_history(path, channel, "linear")
        assert history["revenue_credit_cents"].to_list() == \
            trend.filter(pl.col("channel") == channel)["revenue_credit_cents"].to_list()
    assert db.channel_trend(path, "markov").is_empty()


def test_row_key_primary_key_then_id_column():
    frame = pl.DataFrame({"region": ["eu", "us"], "n": [7, 7], "deal_id": ["D1", "D2"],
                          "Record ID": ["11", "12"]})
    assert db.row_key(frame, ["region", "n"], ["deal_id"])[0] == ("region", "n")
    assert db.row_key(frame, ["region", "n"], ["deal_id"])[1].to_list() == ["eu|7", "us|7"]
    # a primary key the rows do not hold (a query's columns): the id column
    assert db.row_key(frame, ["sync_id"], ["Record ID", "deal_id"])[1].to_list() == \
        ["11", "12"]
    assert db.row_key(frame, [], ["opportunity"]) == ((), None)


def test_a_table_with_other_columns_is_refused(tmp_path):
    path = tmp_path / "h.duckdb"
    db.write_result_set(path, {"summary": pl.DataFrame({"channel": ["a"]})}, {})
    with pytest.raises(DatabaseError, match="table 'summary' has columns run_id, channel"):
        db.write_result_set(path, {"summary": pl.DataFrame({"model": ["m"]})}, {})
    assert db.history(path).height == 1  # the refused run left nothing


_KILLED_WRITER = textwrap.dedent("""
    import sys, time
    import polars as pl
    from attribution import db
    credit = pl.read_parquet(sys.argv[2])
    tables = {"credit": credit, "summary": pl.read_parquet(sys.argv[3])}

    def stall(stage, done, total):
        if stage == sys.argv[4]:
            print("stalled", flush=True)
            time.sleep(600)

    db.write_result_set(sys.argv[1], tables, {"note": "killed"}, progress=stall)
    print("committed", flush=True)
""")


def _start_writer(tmp_path: Path, destination: str, demo_run, stall_at: str,
                  copies: int = 1) -> subprocess.Popen:
    credit = pl.concat([demo_run.credit] * copies)
    credit.write_parquet(tmp_path / "credit.parquet")
    demo_run.summary.write_parquet(tmp_path / "summary.parquet")
    script = tmp_path / "writer.py"
    script.write_text(_KILLED_WRITER)
    return subprocess.Popen(
        [sys.executable, str(script), destination, str(tmp_path / "credit.parquet"),
         str(tmp_path / "summary.parquet"), stall_at],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})


def _assert_only(destination: str, run_id: str, demo_run, server=None) -> None:
    """The database holds the run ``run_id`` and nothing of any other: its runs row, and as
    many credit rows in the whole table as that run wrote."""
    runs = db.history(destination)
    assert runs.get_column("run_id").to_list() == [run_id]
    assert db.result_table(destination, "credit", run_id).height == demo_run.credit.height
    location = db.parse_uri(destination)
    table = f"{location.schema}.credit" if location.schema else "credit"
    if location.engine == "duckdb":
        with duckdb.connect(location.target, read_only=True) as connection:
            count = connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    else:
        count = server.sql(f"SELECT count(*) FROM {table}")[0][0][0]
    assert count == demo_run.credit.height


def test_a_killed_write_leaves_no_rows(destination, demo_run, tmp_path, request):
    kept = db.write_result_set(destination, {"credit": demo_run.credit,
                                             "summary": demo_run.summary}, _record(demo_run))
    # killed with the runs row and the whole credit table written, before the commit
    writer = _start_writer(tmp_path, destination, demo_run, "write credit")
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "stalled"
    writer.send_signal(signal.SIGKILL)
    writer.wait(30)
    if db.parse_uri(destination).engine == "postgresql":
        time.sleep(0.5)  # the server notices the dropped connection and rolls back
    server = (request.getfixturevalue("postgres")
              if db.parse_uri(destination).engine == "postgresql" else None)
    _assert_only(destination, kept, demo_run, server)
    # and the database takes the next run as usual
    after = db.write_result_set(destination, {"summary": demo_run.summary}, {})
    assert db.history(destination).get_column("run_id").to_list() == [kept, after]


def test_a_write_killed_in_the_middle_of_a_copy_leaves_no_rows(postgres, demo_run, tmp_path):
    destination = postgres.uri(schema="killed_copy")
    kept = db.write_result_set(destination, {"credit": demo_run.credit,
                                             "summary": demo_run.summary}, _record(demo_run))
    writer = _start_writer(tmp_path, destination, demo_run, "never", copies=300)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the server is taking the credit rows
            # (not this query itself: the driver runs a SELECT as COPY (SELECT ...) TO STDOUT)
            copying = postgres.sql("SELECT count(*) FROM pg_stat_activity WHERE state = "
                                   "'active' AND pid <> pg_backend_pid() AND query LIKE "
                                   "'COPY %credit%FROM STDIN%'")[0][0][0]
            if copying:
                break
            assert writer.poll() is None, "the writer ended before its COPY was seen"
            time.sleep(0.02)
        else:
            pytest.fail("no COPY seen")
        writer.send_signal(signal.SIGKILL)
        writer.wait(30)
    finally:
        if writer.poll() is None:
            writer.kill()
    deadline = time.monotonic() + 30
    while postgres.sql("SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                       "AND datname = 'crm'")[0][0][0]:  # until the server has rolled back
        if time.monotonic() > deadline:
            pytest.fail(str(postgres.sql("SELECT pid, state, left(query, 60) FROM "
                                         "pg_stat_activity WHERE datname = 'crm'")))
        time.sleep(0.05)
    _assert_only(destination, kept, demo_run, postgres)


@pytest.mark.slow
def test_database_benchmark_smoke_run(postgres_server):  # noqa: F811
    """A tiny run of bench/bench_db.py, so it cannot rot (timings are not asserted)."""
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_db.py"), "--touchpoints", "2000",
         "--repeat", "1", "--command-accounts", "300", "--command-repeat", "1"], check=False,
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr
    rows = [line.split("|")[1].strip() for line in completed.stdout.splitlines()
            if line.startswith("| ") and "---" not in line]
    assert rows[0] == "what"
    assert {"read PostgreSQL (db.read_source)", "read DuckDB (db.read_source)",
            "write PostgreSQL (db.write_result_set, one transaction)"} <= set(rows)
    commands = [row.split(" (")[0] for row in rows if row.startswith("`attribution ")]
    assert commands == [
        "`attribution validate, touchpoints from Parquet`",
        "`attribution validate, touchpoints from PostgreSQL`",
        "`attribution run --out DIR, touchpoints from Parquet`",
        "`attribution run --out DIR, touchpoints from PostgreSQL`",
        "`attribution run --out postgresql://, touchpoints from Parquet`",
    ]


def test_end_to_end_postgres_tables_to_duckdb_history(postgres, demo_run, tmp_path):
    """What `attribution run --touchpoints postgresql://... --out history.duckdb` does through
    the library, twice: the inputs read from PostgreSQL tables, the result set and the
    sources' record written to DuckDB, two runs in its history, no password anywhere."""
    out = tmp_path / "history.duckdb"
    run_ids = []
    for _ in range(2):
        config, sources = _inputs_from(lambda name: postgres.uri(table=f"crm.{name}"),
                                       tmp_path / f"run{len(run_ids)}")
        result = pipeline.run(config)
        result.rejects = db.relabel_rejects(result.rejects, sources)
        record = {**_record(result), "sources": [s.as_dict() for s in sources.values()]}
        run_ids.append(db.write_result_set(out, _result_tables(result), record))
    runs = db.history(out)
    assert runs.get_column("run_id").to_list() == run_ids
    assert runs.get_column("won_revenue_cents").to_list() == \
        [demo_run.totals()["won_revenue_cents"]] * 2
    stored = db.run_record(out, run_ids[1])
    assert {s["input"] for s in stored["sources"]} == {"touchpoints", "deals", "contacts"}
    assert all(s["uri"].startswith(postgres.uri()) for s in stored["sources"])
    rejects = db.result_table(out, "rejects", run_ids[1])
    assert rejects.height == demo_run.rejects.height
    assert set(rejects.get_column("file")) <= {s["uri"] for s in stored["sources"]}
    with duckdb.connect(str(out), read_only=True) as connection:
        everything = connection.execute("SELECT string_agg(CAST(record AS VARCHAR), '') "
                                        "FROM runs").fetchone()[0]
    assert postgres.password not in everything


# -- through the command line: the "done when" --------------------------------------
def _cli(*arguments: str, env: dict | None = None) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, str(root / "cli.py"), *arguments],
                          capture_output=True, text=True, env=env, cwd=root)


def test_run_from_postgres_tables_into_history_duckdb_twice_and_history(postgres, tmp_path):
    env = {**os.environ, "PGPASSWORD": postgres.password}
    history = tmp_path / "history.duckdb"
    inputs = ["--touchpoints", postgres.uri(table="crm.touchpoints"),
              "--deals", postgres.uri(table="crm.deals"),
              "--contacts", postgres.uri(table="crm.contacts")]
    for _ in range(2):
        done = _cli("run", *inputs, "--model", "last_touch", "--model", "linear",
                    "--out", str(history), "--format", "json", env=env)
        assert done.returncode == 0, done.stderr
        assert f"to {history}: credit table, summary table" in done.stderr
        assert postgres.password not in done.stderr + done.stdout
    listed = _cli("history", "--out", str(history), "--format", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert len(runs) == 2 and runs[0]["run_id"] != runs[1]["run_id"]
    # the record names each source without the password, with the rows read and a digest
    record = db.run_record(history, runs[0]["run_id"])
    sources = {s["input"]: s for s in record["sources"]}
    assert sources["deals"]["uri"] == postgres.uri(table="crm.deals")
    assert sources["deals"]["rows"] == _demo_frames()["deals"].height
    trend = _cli("history", "--out", str(history), "--channel", "podcast", "--model", "linear",
                 "--format", "json", env=env)
    assert trend.returncode == 0, trend.stderr
    # the CLI's JSON: major units, named without _cents
    credits = [row["revenue_credit"] for row in json.loads(trend.stdout)]  # money: keep name
    # the same inputs give the same credit in both runs, and it is the file run's
    files = pipeline.run(Config(touchpoints=DEMO / "touchpoints.csv", deals=DEMO / "deals.csv",
                                contacts=DEMO / "contacts.csv", models=("last_touch", "linear")))
    podcast = files.summary.filter((pl.col("model") == "linear") & (pl.col("channel") == "podcast"))
    assert credits == [podcast["revenue_credit_cents"].item() / 100] * 2


def test_a_wrong_password_through_the_command_line_is_one_line_without_it(postgres, tmp_path):
    env = {**os.environ, "PGPASSWORD": "not-the-password"}
    done = _cli("validate", "--touchpoints", postgres.uri(table="crm.touchpoints"),
                "--deals", postgres.uri(table="crm.deals"), env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot connect to PostgreSQL at ")
    assert "not-the-password" not in done.stderr and "Traceback" not in done.stderr


def test_history_of_a_folder_is_refused(tmp_path):
    done = _cli("history", "--out", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"Error: --out {tmp_path}: history is kept in a database "
                                   "(postgresql://... or a .duckdb file); a folder holds one run")


# -- rejects keyed, presets on tables, spend, the report's trend -----------------------------
def test_rejects_carry_the_tables_primary_key(postgres, tmp_path):
    """A table with a primary key: each reject names the row by it (not by deal_id); a query
    has none, so its rejects take the input's id column as the config maps it."""
    postgres.sql(
        "DROP TABLE IF EXISTS crm.keyed_deals",
        "CREATE TABLE crm.keyed_deals (sync_id INTEGER PRIMARY KEY, deal_id TEXT, "
        "account_id TEXT, created_at TEXT, closed_at TEXT, status TEXT, amount TEXT, "
        "currency TEXT)",
        "INSERT INTO crm.keyed_deals SELECT 500 + row_number() OVER (ORDER BY deal_id), * "
        "FROM crm.bad_deals",
    )
    base = {"touchpoints": DEMO / "touchpoints.csv", "contacts": DEMO / "contacts.csv",
            "models": ("linear",), "max_reject_rate": 1.0}
    keyed = pipeline.validate(Config(deals=postgres.uri(table="crm.keyed_deals"), **base))
    deals = keyed.rejects.filter(pl.col("input") == "deals").sort("key")
    # bad_deals sorted by deal_id: D000002 is the 2nd row (sync_id 502), D000004 the 4th
    assert deals.select("key", "column").rows() == [("502", "status"), ("504", "amount")]
    assert deals.get_column("file").unique().to_list() == \
        [f"{postgres.uri()}?table=crm.keyed_deals"]
    stored = {s["input"]: s for s in keyed.sources}
    assert stored["deals"]["key"] == ["sync_id"]
    # a table the analyst may only read: its key is still found (the catalogue, not
    # information_schema, which hides the constraints of tables the user cannot change)
    postgres.admin_sql("DROP TABLE IF EXISTS public.readonly_deals",
                       "CREATE TABLE public.readonly_deals (deal_id TEXT, account_id TEXT, "
                       "created_at TEXT, closed_at TEXT, status TEXT, amount TEXT, "
                       "currency TEXT, sync_id INTEGER, PRIMARY KEY (sync_id, deal_id))",
                       "INSERT INTO public.readonly_deals VALUES ('D9', 'A000001', "
                       "'2025-01-01', '', 'maybe', '10', 'USD', 7)",
                       "GRANT SELECT ON public.readonly_deals TO analyst", database="crm")
    frame, source = db.read_source(postgres.uri(table="public.readonly_deals"),
                                   input_name="deals")
    assert source.key == ("sync_id", "deal_id")
    assert source.keys is not None and source.keys.to_list() == ["7|D9"]
    query = ("SELECT deal_id AS opportunity, account_id, created_at, closed_at, status, amount, "
             "currency FROM crm.bad_deals")
    mapped = pipeline.validate(Config(deals=postgres.uri(query=query),
                                      columns={"deals": {"deal_id": "opportunity"}}, **base))
    deals = mapped.rejects.filter(pl.col("input") == "deals").sort("key")
    assert deals.select("key", "column").rows() == [("D000002", "status"),
                                                    ("D000004", "amount")]


def test_rejects_from_a_database_are_written_with_their_key(tmp_path):
    path = tmp_path / "crm.duckdb"
    deals = _demo_frames()["deals"].sort("deal_id").head(5).with_columns(
        pl.when(pl.col("deal_id") == "D000003").then(pl.lit("maybe")).otherwise("status")
        .alias("status"))
    with duckdb.connect(str(path)) as connection:
        connection.register("incoming", deals.to_arrow())
        connection.execute("CREATE TABLE deals AS SELECT * FROM incoming")
    done = _cli("validate", "--touchpoints", str(DEMO / "touchpoints.csv"),
                "--deals", f"duckdb:///{path}?table=deals", "--contacts",
                str(DEMO / "contacts.csv"), "--max-reject-rate", "1",
                "--rejects", str(tmp_path / "rejects.csv"))
    assert done.returncode == 0, done.stderr
    rejects = pl.read_csv(tmp_path / "rejects.csv", infer_schema=False)
    assert rejects.columns[-1] == "key"
    from_table = rejects.filter(pl.col("input") == "deals")
    assert from_table.select("file", "row", "column", "key").rows() == [
        (f"duckdb:///{path}?table=deals", "3", "status", "D000003")]
    assert from_table.get_column("key").to_list() == ["D000003"]


HUBSPOT = ROOT / "fixtures" / "hubspot"


def _hubspot_frames() -> dict[str, pl.DataFrame]:
    return {name: pl.read_csv(HUBSPOT / f"{name}.csv", infer_schema=False)
            for name in ("touchpoints", "deals", "contacts")}


def _hubspot_in_postgres(postgres) -> None:
    """The HubSpot exports as tables of schema ``hubspot``, their columns named as the
    exports name them ("Record ID", "Deal Stage"): text, as a CRM sync keeps them; the deals
    keyed by their record id."""
    statements = ["DROP SCHEMA IF EXISTS hubspot CASCADE", "CREATE SCHEMA hubspot"]
    for name, frame in _hubspot_frames().items():
        columns = ", ".join(f"{db.quote_identifier(c)} TEXT" for c in frame.columns)
        if name == "deals":
            columns += ', PRIMARY KEY ("Record ID")'
        statements += [f"CREATE TABLE hubspot.{name} ({columns})",
                       _insert_sql(f"hubspot.{name}", frame)]
    postgres.sql(*statements)


def _hubspot_in_duckdb(path: Path) -> Path:
    with duckdb.connect(str(path)) as connection:
        for name, frame in _hubspot_frames().items():
            connection.register("incoming", frame.to_arrow())
            connection.execute(f"CREATE TABLE {name} AS SELECT * FROM incoming")
            connection.unregister("incoming")
    return path


@pytest.mark.parametrize("engine", ["postgresql", "duckdb"])
def test_source_preset_on_tables_gives_the_credit_of_the_csv_export(engine, postgres,
                                                                    tmp_path):
    """`attribution run --source hubspot` on HubSpot-layout tables (PostgreSQL, DuckDB):
    the preset renames the tables' columns, reads their US dates and stages as it does the
    CSV export's, and the run credits every deal to the cent as the CSV run does."""
    if engine == "postgresql":
        _hubspot_in_postgres(postgres)

        def uri(name: str) -> str:
            return postgres.uri(table=f"hubspot.{name}")
    else:
        database = _hubspot_in_duckdb(tmp_path / "hubspot.duckdb")

        def uri(name: str) -> str:
            return f"duckdb:///{database}?table={name}"
    env = {**os.environ, "PGPASSWORD": postgres.password}
    outputs = {}
    for label, inputs in [("files", {n: str(HUBSPOT / f"{n}.csv") for n in _hubspot_frames()}),
                          ("tables", {n: uri(n) for n in _hubspot_frames()})]:
        out = tmp_path / label
        done = _cli("run", "--source", "hubspot", "--as-of", "2025-06-30",
                    *[a for n, v in inputs.items() for a in (f"--{n}", v)],
                    "--out", str(out), "--format", "json", env=env)
        assert done.returncode == 0, done.stderr
        assert not (out / "rejects.csv").exists()
        outputs[label] = out
    for name in ("summary", "credit"):
        files = pl.read_parquet(outputs["files"] / f"{name}.parquet")
        tables = pl.read_parquet(outputs["tables"] / f"{name}.parquet")
        assert_frame_equal(_sorted(tables), _sorted(files), check_exact=True)
    record = json.loads((outputs["tables"] / "run.json").read_text())
    assert {s["input"] for s in record["sources"]} == {"touchpoints", "deals", "contacts"}
    keys = {s["input"]: s["key"] for s in record["sources"]}
    if engine == "postgresql":
        assert keys["deals"] == ["Record ID"]  # the table's primary key
    assert keys["contacts"] == ["Record ID"]  # the preset's name of contact_id


ECONOMICS = ROOT / "fixtures" / "economics"


def _economics_inputs() -> list[str]:
    return [a for n in ("touchpoints", "deals", "contacts")
            for a in (f"--{n}", str(ECONOMICS / f"{n}.csv"))]


@pytest.mark.parametrize("engine", ["postgresql", "duckdb"])
def test_spend_from_a_table_gives_the_scorecard_of_the_spend_file(engine, postgres, tmp_path):
    """`scorecard --spend URI` reads a typed spend table (DATE periods, NUMERIC amounts) with
    one bad row: the scorecard is the spend file's, the bad row rejected with its key."""
    spend = pl.read_csv(ECONOMICS / "spend.csv", infer_schema=False)
    bad = ("99", "events", "2025-02-01", "2025-02-01", None, "-5.00", "USD")
    ddl = ("CREATE TABLE spend_rows (spend_id INTEGER PRIMARY KEY, channel TEXT, "
           "period_start DATE, period_end DATE, period TEXT, amount NUMERIC(12,2), "
           "currency TEXT)")
    rows = [(str(10 + i), *row) for i, row in enumerate(spend.iter_rows())] + [bad]
    values = ", ".join("(" + ", ".join("NULL" if v is None else f"'{v}'" for v in row) + ")"
                       for row in rows)
    if engine == "postgresql":
        postgres.sql("DROP TABLE IF EXISTS crm.spend_rows",
                     ddl.replace("spend_rows", "crm.spend_rows"),
                     f"INSERT INTO crm.spend_rows VALUES {values}")
        uri = postgres.uri(table="crm.spend_rows")
    else:
        path = tmp_path / "marketing.duckdb"
        with duckdb.connect(str(path)) as connection:
            connection.execute(ddl)
            connection.execute(f"INSERT INTO spend_rows VALUES {values}")
        uri = f"duckdb:///{path}?table=spend_rows"
    env = {**os.environ, "PGPASSWORD": postgres.password}
    from_file = _cli("scorecard", *_economics_inputs(), "--spend", str(ECONOMICS / "spend.csv"),
                     "--format", "csv", env=env)
    from_table = _cli("scorecard", *_economics_inputs(), "--spend", uri, "--format", "csv",
                      "--rejects", str(tmp_path / "rejects.csv"), env=env)
    assert from_file.returncode == 0 and from_table.returncode == 0, from_table.stderr
    assert from_table.stdout == from_file.stdout
    rejects = pl.read_csv(tmp_path / "rejects.csv", infer_schema=False)
    assert rejects.select("file", "input", "column", "reason", "key").rows() == [
        (db.parse_uri(uri).display, "spend", "amount", "negative amount", "99")]


def test_spend_query_in_the_config_for_budget(postgres, tmp_path):
    """[inputs.spend] uri + query, as the other inputs: `budget` reads the query's rows and
    recommends what it does from the spend file."""
    spend = pl.read_csv(ECONOMICS / "spend.csv", infer_schema=False)
    postgres.sql("DROP TABLE IF EXISTS crm.marketing_spend",
                 "CREATE TABLE crm.marketing_spend (channel TEXT, period_start TEXT, "
                 "period_end TEXT, period TEXT, cost TEXT, currency TEXT, team TEXT)",
                 _insert_sql("crm.marketing_spend", spend.with_columns(pl.lit("growth")
                                                                       .alias("team"))),
                 "INSERT INTO crm.marketing_spend VALUES ('events', '2025-01-01', "
                 "'2025-01-31', NULL, '99999.00', 'USD', 'other team')")
    config = tmp_path / "attribution.toml"
    config.write_text(textwrap.dedent(f"""\
        [inputs.spend]
        uri = "{postgres.uri()}"
        query = '''SELECT channel, period_start, period_end, period, cost, currency
                   FROM crm.marketing_spend WHERE team = 'growth''''

        [columns.spend]
        amount = "cost"
        """))
    env = {**os.environ, "PGPASSWORD": postgres.password}
    from_file = _cli("budget", *_economics_inputs(), "--spend", str(ECONOMICS / "spend.csv"),
                     "--model", "linear", "--format", "json", env=env)
    from_query = _cli("budget", *_economics_inputs(), "--config", str(config),
                      "--model", "linear", "--format", "json", env=env)
    assert from_file.returncode == 0, from_file.stderr
    assert from_query.returncode == 0, from_query.stderr
    assert json.loads(from_query.stdout) == json.loads(from_file.stdout)


def _trend_section(html_text: str) -> str:
    start = html_text.index('<section id="trend">')
    return html_text[start:html_text.index("</section>", start)]


@pytest.mark.parametrize("engine", ["postgresql", "duckdb"])
def test_report_shows_the_credit_across_stored_runs(engine, postgres, tmp_path):
    """Three runs kept in a database (two alike, one with a shorter lookback), then
    `report --history URI`: a section with the recommended model's credit per channel in
    each stored run, the figures `attribution history --channel` prints for the same runs."""
    env = {**os.environ, "PGPASSWORD": postgres.password}
    history = (postgres.uri(schema=f"trend_{tmp_path.name[-8:].lower().replace('-', '_')}")
               if engine == "postgresql" else str(tmp_path / "history.duckdb"))
    inputs = [a for n in ("touchpoints", "deals", "contacts")
              for a in (f"--{n}", str(DEMO / f"{n}.csv"))]
    models = ["--model", "last_touch", "--model", "linear", "--max-reject-rate", "1"]
    for lookback in ("180", "180", "30"):
        done = _cli("run", *inputs, *models, "--lookback-days", lookback, "--out", history,
                    env=env)
        assert done.returncode == 0, done.stderr
    output = tmp_path / "report.html"
    done = _cli("report", *inputs, *models, "--budget-model", "linear", "--history", history,
                "--history-runs", "2", "-o", str(output), env=env)
    assert done.returncode == 0, done.stderr
    section = _trend_section(output.read_text())
    runs = db.history(history).tail(2)
    assert "the last 2 runs of linear" in section
    for channel in ("paid_search", "content"):
        shown = db.channel_history(history, channel, "linear", last=2)
        assert shown.get_column("run_id").to_list() == runs.get_column("run_id").to_list()
        from attribution.render import money, percent
        cells = [f"{money(c, 'USD')} ({percent(s)})" for c, s in
                 shown.select("revenue_credit_cents", "revenue_share").iter_rows()]
        row = section[section.index(f">{channel}</span>"):]
        row = row[:row.index("</tr>")]
        assert [cell.split(">")[-1] for cell in row.split("</td>")[1:-1]] == cells
    # the shorter lookback moved the credit: the two runs differ
    assert len(set(cells)) == 2
    # the same history named by the config's [output] dir
    config = tmp_path / "attribution.toml"
    config.write_text(f'[output]\ndir = "{history}"\n')
    done = _cli("report", *inputs, *models, "--budget-model", "linear", "--config",
                str(config), "-o", str(tmp_path / "default.html"), env=env)
    assert done.returncode == 0, done.stderr
    assert "the last 3 runs of linear" in _trend_section((tmp_path / "default.html").read_text())


def test_report_history_of_another_model_says_none_is_stored(tmp_path):
    history = tmp_path / "history.duckdb"
    inputs = [a for n in ("touchpoints", "deals", "contacts")
              for a in (f"--{n}", str(DEMO / f"{n}.csv"))]
    done = _cli("run", *inputs, "--model", "last_touch", "--max-reject-rate", "1", "--out",
                str(history))
    assert done.returncode == 0, done.stderr
    done = _cli("report", *inputs, "--model", "last_touch", "--model", "linear",
                "--budget-model", "linear", "--max-reject-rate", "1", "--history",
                str(history), "-o", str(tmp_path / "r.html"))
    assert done.returncode == 0, done.stderr
    assert "No run of linear is stored in" in _trend_section((tmp_path / "r.html").read_text())
    refused = _cli("report", *inputs, "--history", str(tmp_path), "-o", str(tmp_path / "x.html"))
    assert refused.returncode == 2 and "--history" in refused.stderr
