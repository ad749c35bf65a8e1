"""Benchmark: touchpoints read from PostgreSQL (loopback) and DuckDB against the same rows read
from Parquet, and a result set written to them against Parquet files.

The PostgreSQL server is started here, as the tests start theirs (``tests/postgres_server.py``:
``initdb`` + ``pg_ctl`` of the Debian package on a free loopback port, password auth), but with
its durable defaults (fsync on). Rows are made with numpy/polars in the shape of an export
(ids, a UTC timestamp, utm columns, touch type), written once as zstd Parquet as
``bench_pipeline`` writes its workloads, and copied into PostgreSQL and DuckDB (not timed).

Measured, median of ``--repeat`` runs, each side doing what a run does with its input:

* **read Parquet**: ``loading.read_table`` (polars reads the file, one chunk per column) and
  the file's SHA-256 (``loading.file_digest``), as ``load_inputs`` does;
* **read PostgreSQL**: ``db.read_source(postgresql://...?table=...)`` (ADBC binary COPY to
  Arrow, the Arrow digest, polars frame); also the driver alone (``fetch_arrow_table``);
* **read DuckDB**: ``db.read_source(duckdb:///...?table=...)``;
* **write Parquet**: ``output.write_table`` of the credit and summary tables;
* **write PostgreSQL / DuckDB**: ``db.write_result_set`` of the same tables (one transaction,
  money as NUMERIC(38,2)); for PostgreSQL also with the table handed to COPY as one record
  batch (the write before ``db.COPY_BATCH_ROWS``), and with the credit scanned lazily from a
  spilled Parquet file (what ``attribution run`` hands over).

Run (from the repository root, with the db extra installed and PostgreSQL binaries present)::

    python bench/bench_db.py --touchpoints 10000000 --repeat 3
    python bench/bench_db.py --touchpoints 100000 --repeat 1      # a quick look
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from attribution import db  # noqa: E402
from attribution.channels import load_rules  # noqa: E402
from attribution.loading import file_digest, load_touchpoints, read_table  # noqa: E402
from attribution.output import write_table  # noqa: E402
from attribution.schema import CREDIT_SCHEMA, SUMMARY_SCHEMA  # noqa: E402
from tests.postgres_server import PostgresServer  # noqa: E402

SOURCES = ["google", "linkedin", "newsletter", "podcast", "bing", "facebook", "g2", "direct"]
MEDIUMS = ["cpc", "paid_social", "email", "audio", "organic", "referral", "(none)"]
TYPES = ["page_view", "ad_click", "email_click", "form_fill", "webinar", "podcast_listen"]


def touchpoints(rows: int, seed: int = 0) -> pl.DataFrame:
    """An export-shaped touchpoints table: 10 touches per contact, 5 contacts per account."""
    rng = np.random.default_rng(seed)
    row = pl.int_range(rows, eager=True)
    start = np.datetime64("2025-01-01T00:00:00", "us").astype(np.int64)
    times = np.sort(start + rng.integers(0, 365 * 86_400_000_000, rows))
    contact = rng.integers(0, max(rows // 10, 1), rows)
    return pl.DataFrame({
        "touchpoint_id": ("T" + row.cast(pl.String).str.zfill(9)),
        "timestamp": pl.Series(times).cast(pl.Datetime("us", "UTC")),
        "contact_id": ("C" + pl.Series(contact).cast(pl.String).str.zfill(8)),
        "account_id": ("A" + pl.Series(contact // 5).cast(pl.String).str.zfill(7)),
        "utm_source": pl.Series(SOURCES).gather(rng.integers(0, len(SOURCES), rows)),
        "utm_medium": pl.Series(MEDIUMS).gather(rng.integers(0, len(MEDIUMS), rows)),
        "utm_campaign": ("campaign-" + pl.Series(rng.integers(0, 40, rows)).cast(pl.String)),
        "touch_type": pl.Series(TYPES).gather(rng.integers(0, len(TYPES), rows)),
    })


def credit_table(touches: pl.DataFrame) -> pl.DataFrame:
    """A credit table with a row per touch (one model), money in cents."""
    rng = np.random.default_rng(1)
    rows = touches.height
    cents = pl.Series(rng.integers(0, 5_000_000, rows))
    return touches.select(
        pl.lit("linear").alias("model"),
        ("deal:" + pl.col("account_id")).alias("journey_id"),
        ("D" + pl.col("account_id").str.slice(1)).alias("deal_id"),
        "account_id",
        pl.lit("won").alias("status"),
        (pl.int_range(pl.len()) % 10).cast(pl.UInt32).alias("touch_index"),
        "touchpoint_id", "timestamp",
        pl.col("utm_source").alias("channel"),
        pl.col("utm_medium").alias("channel_group"),
        pl.lit(0.1).alias("weight"),
        cents.alias("pipeline_credit_cents"),
        cents.alias("revenue_credit_cents"),
        pl.lit(0.1).alias("conversion_credit"),
    ).cast(dict(CREDIT_SCHEMA))  # type: ignore[arg-type]


def summary_table(credit: pl.DataFrame) -> pl.DataFrame:
    return credit.group_by("model", "channel", "channel_group").agg(
        pl.col("deal_id").n_unique().cast(pl.UInt32).alias("deals_touched"),
        pl.col("pipeline_credit_cents").sum(), pl.col("revenue_credit_cents").sum(),
        pl.col("conversion_credit").sum(),
    ).with_columns(
        (pl.col("pipeline_credit_cents") / pl.col("pipeline_credit_cents").sum())
        .alias("pipeline_share"),
        (pl.col("revenue_credit_cents") / pl.col("revenue_credit_cents").sum())
        .alias("revenue_share"),
    ).sort("model", "channel").cast(dict(SUMMARY_SCHEMA))  # type: ignore[arg-type]


def timed(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--touchpoints", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows, repeat = args.touchpoints, args.repeat
    results: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-db-") as scratch:
        folder = Path(scratch)
        began = time.perf_counter()
        touches = touchpoints(rows)
        parquet = folder / "touchpoints.parquet"
        touches.write_parquet(parquet, compression="zstd")
        duck = folder / "crm.duckdb"
        with __import__("duckdb").connect(str(duck)) as connection:
            connection.register("incoming", touches.to_arrow())
            connection.execute("CREATE TABLE touchpoints AS SELECT * FROM incoming")
        server = PostgresServer.start(durable=True)
        try:
            os.environ["PGPASSWORD"] = server.password
            server.sql("CREATE TABLE touchpoints (touchpoint_id TEXT, timestamp TIMESTAMPTZ, "
                       "contact_id TEXT, account_id TEXT, utm_source TEXT, utm_medium TEXT, "
                       "utm_campaign TEXT, touch_type TEXT)")
            import adbc_driver_postgresql.dbapi as postgres

            loaded = time.perf_counter()
            with postgres.connect(server.uri()) as connection, connection.cursor() as cursor:
                cursor.adbc_ingest("touchpoints", touches.to_arrow(
                    compat_level=pl.CompatLevel.oldest()), mode="append")
                connection.commit()
            server.sql("VACUUM ANALYZE touchpoints")
            print(f"setup {time.perf_counter() - began:.1f} s (PostgreSQL load "
                  f"{time.perf_counter() - loaded:.1f} s)", file=sys.stderr)
            source = server.uri(table="public.touchpoints")

            def read_parquet() -> None:
                read_table(parquet, "touchpoints")
                file_digest(parquet)

            def read_driver() -> None:
                with postgres.connect(server.uri()) as connection, \
                        connection.cursor() as cursor:
                    cursor.execute("SELECT * FROM public.touchpoints")
                    cursor.fetch_arrow_table()

            base = timed(read_parquet, repeat)
            results.append(("read Parquet (read_table + file SHA-256)", base, "1.00"))
            for label, action in [
                ("read PostgreSQL (db.read_source)", lambda: db.read_source(source)),
                ("read PostgreSQL, driver only (ADBC fetch_arrow_table)", read_driver),
                ("read DuckDB (db.read_source)",
                 lambda: db.read_source(f"duckdb:///{duck}?table=touchpoints")),
            ]:
                seconds = timed(action, repeat)
                results.append((label, seconds, f"{seconds / base:.2f}"))
            # what a run does with the input: read and validate (load_touchpoints); the
            # database side through the bridge the CLI can use today (db.materialize writes
            # the rows read to an uncompressed Parquet file, which the loader reads)
            rules = load_rules(None)

            def load_materialized() -> None:
                path, _ = db.materialize(source, folder / "materialized", "touchpoints")
                load_touchpoints(path, rules, None)

            base = timed(lambda: load_touchpoints(parquet, rules, None), repeat)
            results.append(("load Parquet (load_touchpoints: read + validate)", base, "1.00"))
            seconds = timed(load_materialized, repeat)
            results.append(("load PostgreSQL (db.materialize + load_touchpoints)", seconds,
                            f"{seconds / base:.2f}"))
            frame, info = db.read_source(source)
            assert frame.height == rows
            print(f"read {info.rows:,} rows, sha256 {info.sha256[:16]}", file=sys.stderr)

            credit = credit_table(touches)
            summary = summary_table(credit)
            del touches, frame
            tables = {"credit": credit, "summary": summary}
            record = {"totals": {"won_revenue_cents": int(summary["revenue_credit_cents"].sum())}}

            def write_parquet() -> None:
                for name, table in tables.items():
                    write_table(table, folder / "out", name, "parquet")

            base = timed(write_parquet, repeat)
            results.append((f"write Parquet (write_table, {credit.height:,} credit rows)",
                            base, "1.00"))
            counter = iter(range(1000))
            for label, uri_of in [
                ("write PostgreSQL (db.write_result_set, one transaction)",
                 lambda: server.uri(schema=f"results_{next(counter)}")),
                ("write DuckDB (db.write_result_set, one transaction)",
                 lambda: str(folder / f"history_{next(counter)}.duckdb")),
            ]:
                seconds = timed(lambda uri_of=uri_of: db.write_result_set(uri_of(), tables,
                                                                          record), repeat)
                results.append((label, seconds, f"{seconds / base:.2f}"))
            # the same write with the whole table handed to COPY as one record batch (as it
            # was before db.COPY_BATCH_ROWS): the driver encodes it all before the server
            # stores a row, so the two take turns instead of overlapping
            batch_rows = db.COPY_BATCH_ROWS
            db.COPY_BATCH_ROWS = max(credit.height, 1)
            try:
                seconds = timed(lambda: db.write_result_set(
                    server.uri(schema=f"results_{next(counter)}"), tables, record), repeat)
            finally:
                db.COPY_BATCH_ROWS = batch_rows
            results.append(("write PostgreSQL, one record batch per COPY (before)", seconds,
                            f"{seconds / base:.2f}"))
            # what `attribution run` hands over: the credit spilled to Parquet and scanned
            # lazily, written db.WRITE_BATCH_ROWS rows at a time
            spilled = folder / "credit-spilled.parquet"
            credit.write_parquet(spilled)
            lazy_tables = {"credit": pl.scan_parquet(spilled), "summary": summary}
            seconds = timed(lambda: db.write_result_set(
                server.uri(schema=f"results_{next(counter)}"), lazy_tables, record), repeat)
            results.append(("write PostgreSQL, credit scanned from a spilled Parquet file",
                            seconds, f"{seconds / base:.2f}"))
        finally:
            server.stop()
    print(f"\n{rows:,} touchpoints, median of {repeat}\n")
    print("| what | seconds | x Parquet |\n|---|---|---|")
    for label, seconds, ratio in results:
        print(f"| {label} | {seconds:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
