"""Benchmark: the Spark engine's driver memory as the export grows.

For each size, a simulated export of about that many touchpoints (the simulator's typed
Parquet, written as a folder of parts of at most 100,000 accounts each, ids prefixed per part
so the parts are one export) is run by ``attribution run --engine spark`` (the library call
the CLI makes: :func:`attribution.commands.run` with a :class:`~attribution.engine.SparkEngine`,
credit written by the executors) in a fresh Python process, which reports its own peak RSS
(``ru_maxrss``: the Python driver, where collected tables land; the JVM is another process
whose heap ``spark.driver.memory`` bounds) and the seconds the run took.

Run (from the repository root)::

    python bench/bench_spark_memory.py --touchpoints 100000 1000000 10000000 \\
        --master 'local[2]' --models last_touch linear w_shaped
    python bench/bench_spark_memory.py --touchpoints 700000 --models last_touch linear \\
        --conf spark.driver.maxResultSize=8m
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: touchpoints per simulated account (the simulator's B2B default, measured)
TOUCHES_PER_ACCOUNT = 6.86
PART_ACCOUNTS = 100_000
ISO = "%Y-%m-%dT%H:%M:%SZ"


def export(touchpoints: int, data: Path) -> Path:
    """A folder ``touchpoints/``, ``deals/``, ``contacts/`` of Parquet parts (made once)."""
    from attribution.simulate import simulate

    accounts = max(1, round(touchpoints / TOUCHES_PER_ACCOUNT))
    folder = data / f"touchpoints_{touchpoints}"
    if (folder / "done").exists():
        return folder
    parts = -(-accounts // PART_ACCOUNTS)
    for part in range(parts):
        size = min(PART_ACCOUNTS, accounts - part * PART_ACCOUNTS)
        simulated = simulate(size, seed=part)
        prefix = f"p{part}-"
        ids = ("touchpoint_id", "contact_id", "account_id", "deal_id")
        for name, frame in (("touchpoints", simulated.touchpoints), ("deals", simulated.deals),
                            ("contacts", simulated.contacts)):
            typed = frame.with_columns(
                [(pl.lit(prefix) + pl.col(c)).alias(c) for c in ids if c in frame.columns]
            ).with_columns(
                [pl.col(c).str.to_datetime(ISO, time_zone="UTC", strict=False)
                 for c in ("timestamp", "created_at", "closed_at", "lead_created_at")
                 if c in frame.columns]
            )
            if name == "deals":
                # money: keep names from here (the file's column)
                typed = typed.with_columns(pl.col("amount").cast(pl.Decimal(18, 2)))
                # money: keep names to here
            (folder / name).mkdir(parents=True, exist_ok=True)
            typed.write_parquet(folder / name / f"part-{part:04d}.parquet")
        print(f"  part {part + 1}/{parts}: {size:,} accounts", flush=True)
    (folder / "done").touch()
    return folder


def run_once(folder: Path, models: list[str], master: str, conf: dict[str, str]) -> dict:
    """One run in this process; returns its peak RSS and seconds."""
    from attribution import commands
    from attribution.config import Config
    from attribution.engine import SparkEngine

    with tempfile.TemporaryDirectory() as out:
        config = Config(touchpoints=folder / "touchpoints", deals=folder / "deals",
                        contacts=folder / "contacts", models=tuple(models), out=Path(out))
        start = time.perf_counter()
        outcome = commands.run(config, SparkEngine(master, conf))
        seconds = time.perf_counter() - start
    touches = next(a.read for a in outcome.result.accounting if a.input == "touchpoints")
    return {"touchpoints": touches, "seconds": round(seconds, 1),
            "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                        / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--touchpoints", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--data", type=Path, default=ROOT / "bench" / "data")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--models", nargs="+", default=["last_touch", "linear", "w_shaped"])
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    conf = {"spark.ui.showConsoleProgress": "false", "spark.ui.enabled": "false",
            **dict(item.split("=", 1) for item in args.conf)}
    if args.run is not None:
        print(json.dumps(run_once(args.run, args.models, args.master, conf)), flush=True)
        return
    print(f"models: {', '.join(args.models)}; master {args.master}; conf {conf}", flush=True)
    for touchpoints in args.touchpoints:
        folder = export(touchpoints, args.data)
        command = [sys.executable, __file__, "--run", str(folder), "--master", args.master,
                   "--models", *args.models, *[f"--conf={c}" for c in args.conf]]
        done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        if done.returncode:
            print(f"{touchpoints:>12,}: failed\n{done.stderr[-3000:]}", flush=True)
            continue
        print(f"{touchpoints:>12,}: {done.stdout.strip().splitlines()[-1]}", flush=True)


if __name__ == "__main__":
    main()
