"""Benchmark: the text-key steps of load and journeys, each against the plain text version, and
what the text columns of the run's big tables cost in memory.

On the bench workload (``bench_pipeline.workload``, typed Parquet under ``bench/data/``), the
minimum of ``--repeat`` runs of:

* the window join (every touch against every journey window at its account): polars' join on
  the account text against :func:`attribution.journeys._window_pairs` (checked 64-bit hashes);
* the contact -> account lookup: every row against only the rows without an account;
* the deal-account check: the known accounts probed by text against a hash prefilter;

and, with ``--memory``, the RSS freed by dropping the credit's and the touches' text columns
against their polars categorical copies, at the end of a full run (jemalloc is told to return
freed pages at once, so RSS follows what is held).

Run (from the repository root)::

    python bench/bench_keys.py --accounts 1450000 --repeat 3 --memory
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if "--memory" in sys.argv and "_RJEM_MALLOC_CONF" not in os.environ:
    # read by polars' allocator when it loads: set it, then start again
    os.environ["_RJEM_MALLOC_CONF"] = "dirty_decay_ms:0,muzzy_decay_ms:0"
    os.execv(sys.executable, [sys.executable, *sys.argv])

import polars as pl  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_pipeline import RULE_MODELS, config_for, workload  # noqa: E402

from attribution import pipeline  # noqa: E402
from attribution.journeys import _window_pairs  # noqa: E402
from attribution.keys import lookup  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
UTC = pl.Datetime("us", "UTC")


def best(function: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE / 2**20


def row(name: str, text: float, ours: float) -> None:
    print(f"| {name} | {text:.3f} | {ours:.3f} | {text / ours:.2f} |")


def keys(paths: dict[str, Path], repeat: int) -> None:
    touches = pl.read_parquet(paths["touchpoints"]).rechunk()
    contacts = pl.read_parquet(paths["contacts"]).rechunk()
    deals = pl.read_parquet(paths["deals"]).rechunk()
    print("| step | text (s) | ours (s) | text / ours |")
    print("|---|---:|---:|---:|")

    # windows as journeys builds them: each deal's, and one per touched account
    accounts = touches.select(pl.col("account_id").fill_null(pl.col("contact_id")))
    touched = accounts.with_columns(touches.get_column("timestamp"))
    windows = pl.concat([
        deals.select("account_id", pl.col("created_at").alias("_window_start"),
                     pl.col("closed_at").fill_null(pl.col("created_at")).alias("end_at")),
        accounts.unique().select("account_id", pl.lit(None, UTC).alias("_window_start"),
                                 pl.lit(None, UTC).alias("end_at")),
    ]).with_columns(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_jn")).rechunk()
    windows = windows.with_columns(pl.col("end_at").fill_null(touched["timestamp"].max()))

    def text_join() -> pl.DataFrame:
        return (
            touched.lazy()
            .select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_i"), "account_id", "timestamp")
            .join(windows.lazy(), on="account_id", how="inner")
            .filter(((pl.col("timestamp") >= pl.col("_window_start"))
                     | pl.col("_window_start").is_null())
                    & (pl.col("timestamp") <= pl.col("end_at")))
            .select("_i", "_jn", "timestamp")
            .collect()
            .rechunk()
        )

    row("window join", best(text_join, repeat), best(lambda: _window_pairs(touched, windows),
                                                     repeat))

    contact = touches.get_column("contact_id")
    table = contacts.get_column("contact_id")
    lacking = touches.get_column("account_id").is_null().arg_true()
    row(f"contact lookup (all rows / the {lacking.len():,} without an account)",
        best(lambda: lookup(contact, table), repeat),
        best(lambda: lookup(contact.gather(lacking), table), repeat))

    known = pl.concat([touches.get_column("account_id"), contacts.get_column("account_id")])
    named = deals.get_column("account_id").drop_nulls().unique()

    def by_hash() -> pl.Series:
        hashes = named.hash(seed=5).implode()
        return known.filter(known.hash(seed=5).is_in(hashes)).unique()

    row("deal accounts among the known", best(
        lambda: known.filter(known.is_in(named.implode())).unique(), repeat), best(by_hash, repeat))


def memory(paths: dict[str, Path]) -> None:
    config = config_for(paths).replace(models=(*RULE_MODELS, "markov"))
    result = pipeline.run(config, keep_inputs=False)
    tables = {
        "credit": (result.credit.rechunk(), ["model", "status", "channel", "channel_group"]),
        "touches": (result.journeys.touches.collect(),
                    ["channel", "channel_group", "touch_type", "campaign"]),
    }
    del result
    gc.collect()
    print("\n| table | its text columns as String (MB) | as Categorical (MB) |")
    print("|---|---:|---:|")
    for name in list(tables):
        frame, columns = tables.pop(name)
        before = rss_mb()
        compact = frame.with_columns(pl.col(c).cast(pl.Categorical) for c in columns)
        gc.collect()
        added = rss_mb() - before
        held = rss_mb()
        del frame
        gc.collect()
        freed = held - rss_mb()
        print(f"| {name}: {', '.join(columns)} | {freed:,.0f} | {added:,.0f} |")
        del compact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_450_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    parser.add_argument("--memory", action="store_true")
    args = parser.parse_args()
    paths = workload(args.accounts, args.data)
    print(f"## {args.accounts:,} accounts\n")
    keys(paths, args.repeat)
    if args.memory:
        memory(paths)


if __name__ == "__main__":
    main()
