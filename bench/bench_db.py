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
  money as NUMERIC(38,2)); for PostgreSQL also with the credit scanned lazily from a
  spilled Parquet file (what ``attribution run`` hands over).

And what a user runs, each command a fresh process (``python cli.py ...`` from the repository
root), the commands rotated so that each repeat starts with another one, on a workload of the
project's simulator (``bench_pipeline.workload``: ``--command-accounts`` accounts, about 6.9
touchpoints each, so 1,450,000 accounts is 10^7 touchpoints), its touchpoints copied into
PostgreSQL (not timed); deals and contacts are Parquet files on both sides:

* ``attribution validate`` with ``--touchpoints`` the Parquet file, then the PostgreSQL table;
* ``attribution run --model linear --out DIR`` with ``--touchpoints`` the file, then the table;
* ``attribution run --model linear`` from the file with ``--out postgresql://...?schema=...``.

Run (from the repository root, with the db extra installed and PostgreSQL binaries present)::

    python bench/bench_db.py --touchpoints 10000000 --repeat 3
    python bench/bench_db.py --touchpoints 100000 --repeat 1      # a quick look
    python bench/bench_db.py --touchpoints 0 --command-accounts 1450000 --command-repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
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


def load_average() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def command_rows(server: PostgresServer, accounts: int, repeat: int,
                 folder: Path) -> list[tuple[str, float, str]]:
    """The whole commands, side by side (see the module docstring): fresh processes, rotated;
    median seconds of each, and its ratio to the command on the Parquet file."""
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_pipeline import workload

    paths = workload(accounts, ROOT / "bench" / "data")
    touches = pl.read_parquet(paths["touchpoints"])
    import adbc_driver_postgresql.dbapi as postgres

    with postgres.connect(server.uri()) as connection, connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS public.sim_touchpoints")
        cursor.adbc_ingest("sim_touchpoints", touches.to_arrow(
            compat_level=pl.CompatLevel.oldest()), mode="create", db_schema_name="public")
        connection.commit()
    server.sql("VACUUM ANALYZE public.sim_touchpoints")
    count = touches.height
    del touches
    table = server.uri(table="public.sim_touchpoints")
    others = ["--deals", str(paths["deals"]), "--contacts", str(paths["contacts"])]
    counter = iter(range(10_000))

    def run_out(out: str) -> list[str]:
        return ["-q", "run", "--model", "linear", "--format", "json", "--out", out]

    commands: dict[str, Callable[[], list[str]]] = {
        "validate, touchpoints from Parquet": lambda: [
            "-q", "validate", "--touchpoints", str(paths["touchpoints"]), *others],
        "validate, touchpoints from PostgreSQL": lambda: [
            "-q", "validate", "--touchpoints", table, *others],
        "run --out DIR, touchpoints from Parquet": lambda: [
            *run_out(str(folder / f"out-{next(counter)}")),
            "--touchpoints", str(paths["touchpoints"]), *others],
        "run --out DIR, touchpoints from PostgreSQL": lambda: [
            *run_out(str(folder / f"out-{next(counter)}")), "--touchpoints", table, *others],
        "run --out postgresql://, touchpoints from Parquet": lambda: [
            *run_out(server.uri(schema=f"bench_{next(counter)}")),
            "--touchpoints", str(paths["touchpoints"]), *others],
    }
    names = list(commands)
    times: dict[str, list[float]] = {name: [] for name in names}
    print(f"commands on {count:,} touchpoints ({accounts:,} accounts), load average "
          f"{load_average()}", file=sys.stderr, flush=True)
    for index in range(repeat):
        for name in names[index % len(names):] + names[:index % len(names)]:
            began = time.perf_counter()
            completed = subprocess.run([sys.executable, str(ROOT / "cli.py"), *commands[name]()],
                                       cwd=ROOT, capture_output=True, text=True, check=False)
            seconds = time.perf_counter() - began
            if completed.returncode:
                raise SystemExit(f"{name} failed: {completed.stderr[-2000:]}")
            times[name].append(seconds)
            print(f"  {name}: {seconds:.2f} s (load {os.getloadavg()[0]:.1f})", file=sys.stderr,
                  flush=True)
    medians = {name: statistics.median(values) for name, values in times.items()}
    validate = medians["validate, touchpoints from Parquet"]
    run = medians["run --out DIR, touchpoints from Parquet"]
    rows = []
    for name in names:
        base = validate if name.startswith("validate") else run
        shown = ", ".join(f"{value:.1f}" for value in times[name])
        rows.append((f"`attribution {name}` ({count:,} touchpoints; runs: {shown})",
                     medians[name], f"{medians[name] / base:.2f}"))
    print(f"load average after the commands {load_average()}", file=sys.stderr, flush=True)
    return rows


def low_level_rows(server: PostgresServer, rows: int, repeat: int,
                   folder: Path) -> list[tuple[str, float, str]]:
    """The reads and writes of ``rows`` touchpoints, each beside its Parquet counterpart."""
    results: list[tuple[str, float, str]] = []
    began = time.perf_counter()
    touches = touchpoints(rows)
    parquet = folder / "touchpoints.parquet"
    touches.write_parquet(parquet, compression="zstd")
    duck = folder / "crm.duckdb"
    with __import__("duckdb").connect(str(duck)) as connection:
        connection.register("incoming", touches.to_arrow())
        connection.execute("CREATE TABLE touchpoints AS SELECT * FROM incoming")
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
        with postgres.connect(server.uri()) as connection, connection.cursor() as cursor:
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
    # what a run does with the input: read and validate (load_touchpoints); the database side
    # through the bridge the CLI uses (db.materialize writes the rows read to an uncompressed
    # Parquet file, which the loader reads)
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
    results.append((f"write Parquet (write_table, {credit.height:,} credit rows)", base, "1.00"))
    counter = iter(range(1000))
    for label, uri_of in [
        ("write PostgreSQL (db.write_result_set, one transaction)",
         lambda: server.uri(schema=f"results_{next(counter)}")),
        ("write DuckDB (db.write_result_set, one transaction)",
         lambda: str(folder / f"history_{next(counter)}.duckdb")),
    ]:
        seconds = timed(lambda uri_of=uri_of: db.write_result_set(uri_of(), tables, record),
                        repeat)
        results.append((label, seconds, f"{seconds / base:.2f}"))
    # what `attribution run` hands over: the credit spilled to Parquet and scanned lazily,
    # written db.WRITE_BATCH_ROWS rows at a time
    spilled = folder / "credit-spilled.parquet"
    credit.write_parquet(spilled)
    lazy_tables = {"credit": pl.scan_parquet(spilled), "summary": summary}
    seconds = timed(lambda: db.write_result_set(
        server.uri(schema=f"results_{next(counter)}"), lazy_tables, record), repeat)
    results.append(("write PostgreSQL, credit scanned from a spilled Parquet file", seconds,
                    f"{seconds / base:.2f}"))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--touchpoints", type=int, default=10_000_000,
                        help="touchpoints of the read and write rows (0: none)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--command-accounts", type=int, default=0,
                        help="accounts of the whole-command workload (0: no command rows)")
    parser.add_argument("--command-repeat", type=int, default=3)
    args = parser.parse_args()
    results: list[tuple[str, float, str]] = []
    before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-db-") as scratch:
        server = PostgresServer.start(durable=True)
        try:
            os.environ["PGPASSWORD"] = server.password
            if args.touchpoints:
                results += low_level_rows(server, args.touchpoints, args.repeat, Path(scratch))
            if args.command_accounts:
                results += command_rows(server, args.command_accounts, args.command_repeat,
                                        Path(scratch))
        finally:
            server.stop()
    print(f"\n{args.touchpoints:,} touchpoints, median of {args.repeat}; load average "
          f"(1 / 5 / 15 min) before {before}, after {load_average()}\n")
    print("| what | seconds | x Parquet |\n|---|---|---|")
    for label, seconds, ratio in results:
        print(f"| {label} | {seconds:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
